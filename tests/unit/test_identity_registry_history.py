"""Resident status history and other names as identity evidence (issue 13 items 2 and 3), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from sqlalchemy.orm import Session

from hub.db import Base, make_engine
from hub.identity.membership import household_at, intervals_of
from hub.identity.resolver import IdentityService
from hub.identity.review import list_reviews
from hub.identity.tables import Resident, household_id_for_no
from schemas.codes import Relation, Sex
from schemas.events import PersonRecord, ResidentObservedV1
from schemas.registry_codes import MoveReason, ResidentStatus

PREFIXES = ("さくら県", "みなと市")


@pytest.fixture
def session(database_url: str) -> Iterator[Session]:
    """Fresh hub tables on SQLite and on PostgreSQL."""
    engine = make_engine(database_url)
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        yield s
    engine.dispose()


def resident(no: str, household: str, name: str, kana: str, birth: date | None, sex: Sex, *,
             relation: Relation = Relation.HEAD, moved_on: date | None = None, **extra: object) -> ResidentObservedV1:
    person = PersonRecord(record=f"registry:{no}", name=name, kana=kana, birth_date=birth, sex=sex,
                          address="さくら県みなと市中央二丁目7番3号", resident_no=no, household_no=household,
                          relation=relation)
    return ResidentObservedV1(resident=person, moved_on=moved_on, snapshot="test", **extra)


def agency(record: str, name: str, kana: str | None, birth: date | None, sex: Sex) -> PersonRecord:
    return PersonRecord(record=record, name=name, kana=kana, birth_date=birth, sex=sex,
                        address="みなと市中央2-7-3")


def test_married_woman_known_to_an_agency_by_her_former_surname(session: Session) -> None:
    """An agency record in the 旧氏 (佐藤 文子 / サトウ フミコ) links to the resident 千葉 文子 whose 旧氏 is 佐藤."""
    svc = IdentityService(session, address_prefixes=PREFIXES)
    r = svc.observe_resident(resident("1055433267", "5033103324", "千葉　文子", "チバ　フミコ", date(1938, 8, 20),
                                      Sex.FEMALE, former_surname="佐藤", former_surname_kana="サトウ"), "e1")
    got = svc.resolve(agency("houkatsu:K-1", "佐藤 文子", "サトウ フミコ", date(1938, 8, 20), Sex.FEMALE),
                      feed="houkatsu")
    assert (got.person_id, got.outcome) == (r.person_id, "matched")


def test_former_surname_alone_does_not_link_another_woman(session: Session) -> None:
    """The 旧氏 is evidence, not a wildcard: another 佐藤 文子 born on another day is a new person."""
    svc = IdentityService(session, address_prefixes=PREFIXES)
    r = svc.observe_resident(resident("1055433267", "5033103324", "千葉　文子", "チバ　フミコ", date(1938, 8, 20),
                                      Sex.FEMALE, former_surname="佐藤", former_surname_kana="サトウ"), "e1")
    got = svc.resolve(agency("houkatsu:K-2", "佐藤 文子", "サトウ フミコ", date(1941, 2, 3), Sex.FEMALE),
                      feed="houkatsu")
    assert got.person_id != r.person_id and got.outcome == "new"


def test_foreign_resident_known_by_alias_in_one_system_and_alphabet_name_in_another(session: Session) -> None:
    """王 秀英 (WANG XIUYING) with the 通称 大山 秀子: a record by the 通称, one by the alphabet name and one by
    the kanji name all link to the same resident."""
    svc = IdentityService(session, address_prefixes=PREFIXES)
    r = svc.observe_resident(resident(
        "1099000021", "5099000021", "WANG XIUYING", "ワン　シウイン", date(1979, 12, 3), Sex.FEMALE,
        foreign_name_alphabet="WANG XIUYING", foreign_name_kanji="王　秀英",
        alias_name="大山　秀子", alias_kana="オオヤマ　ヒデコ"), "e1")
    by_alias = svc.resolve(agency("jiritsu:J-1", "大山 秀子", "オオヤマ ヒデコ", date(1979, 12, 3), Sex.FEMALE),
                           feed="jiritsu")
    by_alphabet = svc.resolve(agency("houkatsu:K-3", "WANG XIUYING", "ワン シウイン", date(1979, 12, 3),
                                     Sex.FEMALE), feed="houkatsu")
    by_kanji = svc.resolve(agency("shogai:9", "王 秀英", None, date(1979, 12, 3), Sex.FEMALE), feed="shogai")
    assert {by_alias.person_id, by_alphabet.person_id, by_kanji.person_id} == {r.person_id}
    assert by_alias.outcome == "matched" and by_kanji.outcome == "matched"


def test_alias_without_the_resident_in_the_registry_stays_apart(session: Session) -> None:
    """Before the registry knows the alias, a record by the 通称 is not merged with the alphabet name."""
    svc = IdentityService(session, address_prefixes=PREFIXES)
    r = svc.observe_resident(resident("1099000021", "5099000021", "WANG XIUYING", "ワン　シウイン",
                                      date(1979, 12, 3), Sex.FEMALE), "e1")
    got = svc.resolve(agency("jiritsu:J-1", "大山 秀子", "オオヤマ ヒデコ", date(1979, 12, 3), Sex.FEMALE),
                      feed="jiritsu")
    assert got.person_id != r.person_id


def test_unknown_birth_date_is_no_evidence_rather_than_a_mismatch(session: Session) -> None:
    """A resident whose 生年月日 is 不詳 is found for an agency record with a birth date, and goes to review
    (not a contradiction, not a new stranger; never an automatic link on no birth evidence)."""
    svc = IdentityService(session, address_prefixes=PREFIXES)
    r = svc.observe_resident(resident("1099000043", "5099000041", "NGUYEN THI LAN", "グエン　ティ　ラン", None,
                                      Sex.FEMALE, relation=Relation.MOTHER, birth_date_unknown=True), "e1")
    row = session.get(Resident, "1099000043")
    assert row is not None and row.birth_date_unknown and row.birth_date is None
    got = svc.resolve(agency("houkatsu:K-9", "NGUYEN THI LAN", "グエン ティ ラン", date(1950, 5, 5), Sex.FEMALE),
                      feed="houkatsu")
    assert got.outcome == "review"
    assert [v.candidate_person for v in list_reviews(session) if v.record == "houkatsu:K-9"] == [r.person_id]


def test_observations_apply_in_move_date_order_whatever_the_arrival_order(session: Session) -> None:
    """The newer observation (通称 from 09-15) arriving before the older 転入 row still wins the current row."""
    svc = IdentityService(session, address_prefixes=PREFIXES)
    newer = resident("1099000041", "5099000041", "NGUYEN VAN AN", "グエン　ヴァン　アン", date(1985, 7, 20), Sex.MALE,
                     moved_on=date(2026, 9, 15), move_reason=MoveReason.NAME_CHANGED,
                     alias_name="中村　安男", alias_kana="ナカムラ　ヤスオ")
    older = resident("1099000041", "5099000041", "NGUYEN VAN AN", "グエン　ヴァン　アン", date(1985, 7, 20), Sex.MALE,
                     moved_on=date(2026, 9, 1), move_reason=MoveReason.MOVED_IN)
    r = svc.observe_resident(newer, "e2")
    svc.observe_resident(older, "e1")
    row = session.get(Resident, "1099000041")
    assert row is not None and row.moved_on == date(2026, 9, 15) and row.move_reason == "name_changed"
    got = svc.resolve(agency("jiritsu:J-7", "中村 安男", "ナカムラ ヤスオ", date(1985, 7, 20), Sex.MALE),
                      feed="jiritsu")
    assert got.person_id == r.person_id
    hid = household_id_for_no("5099000041")
    assert household_at(session, r.person_id, date(2026, 8, 31)) == (True, None)
    assert household_at(session, r.person_id, date(2026, 9, 1)) == (True, hid)


def test_death_closes_the_membership_at_the_status_day(session: Session) -> None:
    """死亡 on 2026-07-10 ends the stay: a member until 07-09, in no household from 07-10."""
    svc = IdentityService(session, address_prefixes=PREFIXES)
    alive = resident("1055433743", "5033103552", "山田 一郎", "ヤマダ イチロウ", date(1940, 1, 1), Sex.MALE)
    dead = resident("1055433743", "5033103552", "山田 一郎", "ヤマダ イチロウ", date(1940, 1, 1), Sex.MALE,
                    moved_on=date(2026, 7, 10), status=ResidentStatus.DECEASED, status_on=date(2026, 7, 10),
                    move_reason=MoveReason.DIED)
    r = svc.observe_resident(dead, "e2")
    svc.observe_resident(alive, "e1")
    hid = household_id_for_no("5033103552")
    assert household_at(session, r.person_id, date(2026, 7, 9)) == (True, hid)
    assert household_at(session, r.person_id, date(2026, 7, 10)) == (True, None)
    row = session.get(Resident, "1055433743")
    assert row is not None and row.status == "deceased"


def test_resident_removed_before_any_observation_never_becomes_a_member(session: Session) -> None:
    """A former 世帯主 already 死亡 in the first extract is history only: never a member of the household."""
    svc = IdentityService(session, address_prefixes=PREFIXES)
    r = svc.observe_resident(resident("1099000011", "5033103190", "鈴木 次郎", "スズキ ジロウ", date(1930, 1, 1),
                                      Sex.MALE, status=ResidentStatus.DECEASED, status_on=date(2023, 11, 2),
                                      moved_on=date(2023, 11, 2), move_reason=MoveReason.DIED), "e1")
    assert intervals_of(session, [r.person_id])[r.person_id] == []
    assert household_at(session, r.person_id, date(2020, 1, 1)) == (True, None)


def test_resident_number_with_the_alias_name_is_trusted(session: Session) -> None:
    """A record carrying the resident's 宛名番号 and written in the 通称 is that resident (the number fits a name
    the registry knows), not an inconsistent number sent to review."""
    svc = IdentityService(session, address_prefixes=PREFIXES)
    r = svc.observe_resident(resident("1099000021", "5099000021", "WANG XIUYING", "ワン　シウイン",
                                      date(1979, 12, 3), Sex.FEMALE, alias_name="大山　秀子",
                                      alias_kana="オオヤマ　ヒデコ"), "e1")
    record = PersonRecord(record="kodomo:X-1", name="大山 秀子", kana="オオヤマ ヒデコ", birth_date=date(1979, 12, 3),
                          sex=Sex.FEMALE, resident_no="1099000021")
    got = svc.resolve(record, feed="kodomo")
    assert (got.person_id, got.outcome) == (r.person_id, "resident_no")
