"""Identity resolution rules, one hard case at a time (SQLite in memory)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from itertools import count

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from hub.db import Base
from hub.identity.resolver import IdentityService, persons_export
from hub.identity.review import decide_review, list_reviews
from hub.identity.scoring import LINK, REVIEW, Features, compare, contradicts, points
from hub.identity.tables import IdentityDecision, Person, PersonRecordRow
from schemas.codes import CaseStatus, Feed, Relation, Sex
from schemas.events import CaseV1, HouseholdMember, PersonRecord, RelatedPerson, ResidentObservedV1

PREFIXES = ("さくら県", "みなと市")
ADDR = "さくら県みなと市中央1丁目2番3号"
YOSHIO = date(1944, 5, 3)
_seq = count(1)


@pytest.fixture
def s() -> Iterator[Session]:
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        yield session
    engine.dispose()


@pytest.fixture
def svc(s: Session) -> IdentityService:
    return IdentityService(s, address_prefixes=PREFIXES)


def resident(svc: IdentityService, no: str, name: str, kana: str, birth: date, sex: Sex = Sex.MALE,
             household: str = "5000000001", address: str = ADDR, relation: Relation = Relation.HEAD) -> str:
    rec = PersonRecord(record=f"registry:{no}", name=name, kana=kana, birth_date=birth, sex=sex, address=address,
                       resident_no=no, household_no=household, relation=relation)
    return svc.observe_resident(ResidentObservedV1(resident=rec, moved_on=date(2024, 4, 1), snapshot="t")).person_id


def source(name: str, kana: str | None, birth: date | None, *, sex: Sex = Sex.UNKNOWN, address: str | None = None,
           resident_no: str | None = None, record: str | None = None) -> PersonRecord:
    return PersonRecord(record=record or f"houkatsu:C01-{next(_seq):04d}", name=name, kana=kana, birth_date=birth,
                        sex=sex, address=address, resident_no=resident_no)


@pytest.fixture
def takahashi(svc: IdentityService) -> dict[str, str]:
    """髙橋 義雄, his twin brother 髙橋 和雄, his son 髙橋 義雄 (same given name) and a namesake born 1950."""
    return {
        "yoshio": resident(svc, "1000000001", "髙橋　義雄", "タカハシ　ヨシオ", YOSHIO),
        "twin": resident(svc, "1000000002", "髙橋　和雄", "タカハシ　カズオ", YOSHIO, relation=Relation.ELDER_BROTHER),
        "son": resident(svc, "1000000003", "髙橋　義雄", "タカハシ　ヨシオ", date(1975, 8, 1), relation=Relation.CHILD),
        "namesake": resident(svc, "1000000004", "高橋　義雄", "タカハシ　ヨシオ", date(1950, 1, 9),
                             household="5000000002", address="さくら県みなと市本町3丁目1番1号"),
    }


# --------------------------------------------------------------------------- the examples
def test_one_man_three_spellings(svc: IdentityService, takahashi: dict[str, str]) -> None:
    a = svc.resolve(source("髙橋 義雄", "ﾀｶﾊｼ ﾖｼｵ", YOSHIO, sex=Sex.MALE, address="中央一丁目2番3号"), feed="houkatsu")
    b = svc.resolve(source("高橋義雄", "たかはしよしお", YOSHIO, address="中央1-2-3", record="jiritsu:J1"),
                    feed="jiritsu")
    assert (a.person_id, a.outcome) == (takahashi["yoshio"], "matched")
    assert (b.person_id, b.outcome) == (takahashi["yoshio"], "matched")
    assert a.score is not None and a.score >= LINK


def test_twin_brother_son_and_namesake_stay_apart(svc: IdentityService, takahashi: dict[str, str]) -> None:
    twin = svc.resolve(source("高橋　和雄", "ﾀｶﾊｼ ｶｽﾞｵ", YOSHIO, address="中央１－２－３"), feed="houkatsu")
    son = svc.resolve(source("高橋義雄", "ﾀｶﾊｼ ﾖｼｵ", date(1975, 8, 1)), feed="houkatsu")
    namesake = svc.resolve(source("高橋　義雄", "ﾀｶﾊｼ ﾖｼｵ", date(1950, 1, 9)), feed="houkatsu")
    stranger = svc.resolve(source("高橋　義雄", "ﾀｶﾊｼ ﾖｼｵ", date(1961, 2, 2), address="中央1-2-3"), feed="houkatsu")
    assert twin.person_id == takahashi["twin"]
    assert son.person_id == takahashi["son"]
    assert namesake.person_id == takahashi["namesake"]
    assert stranger.outcome == "new" and stranger.person_id not in takahashi.values()


def test_twin_without_reading_in_household_members(svc: IdentityService, takahashi: dict[str, str]) -> None:
    """同居家族 entries have a name and a birth date only: the subject's household decides among twins."""
    subject = source("高橋義雄", "ﾀｶﾊｼ ﾖｼｵ", YOSHIO, sex=Sex.MALE, address="中央1-2-3")
    member = PersonRecord(record=f"{subject.record}:family:1", name="高橋和雄", birth_date=YOSHIO)
    case = CaseV1(feed=Feed.HOUKATSU, case=subject.record, opened_on=date(2025, 4, 1), status=CaseStatus.IN_PROGRESS,
                  subject=subject, household_members=[HouseholdMember(person=member)],
                  revision="2025-04-01T00:00:00+09:00")
    out = svc.resolve_case(case)
    assert out[subject.record].person_id == takahashi["yoshio"]
    assert out[member.record].person_id == takahashi["twin"]
    assert out[member.record].household_id == out[subject.record].household_id


def test_homophone_slip_kana_decides(svc: IdentityService) -> None:
    yuko = resident(svc, "1000000011", "伊藤　祐子", "イトウ　ユウコ", date(1983, 5, 7), Sex.FEMALE)
    slip = svc.resolve(source("伊藤 裕子", "ｲﾄｳ ﾕｳｺ", date(1983, 5, 7), sex=Sex.FEMALE, address="中央1-2-3"),
                       feed="houkatsu")
    assert (slip.person_id, slip.outcome) == (yuko, "matched")
    other_reading = svc.resolve(source("伊藤 裕子", "ｲﾄｳ ﾋﾛｺ", date(1983, 5, 7), address="中央1-2-3"), feed="jiritsu")
    assert other_reading.person_id != yuko


def test_slip_without_reading_is_not_linked(svc: IdentityService) -> None:
    yuko = resident(svc, "1000000011", "伊藤　祐子", "イトウ　ユウコ", date(1983, 5, 7), Sex.FEMALE)
    r = svc.resolve(source("伊藤裕子", None, date(1983, 5, 7)), feed="houkatsu")
    assert r.person_id != yuko and r.outcome in ("review", "new")


def test_variants_find_but_do_not_prove(svc: IdentityService) -> None:
    """齋藤 folds to 斎藤 and 齊藤 to 斉藤, never to each other; the reading and other evidence decide."""
    sai = resident(svc, "1000000021", "齋藤　花子", "サイトウ　ハナコ", date(1960, 3, 3), Sex.FEMALE)
    sei = resident(svc, "1000000022", "齊藤　花子", "サイトウ　ハナコ", date(1960, 3, 3), Sex.FEMALE,
                   household="5000000009", address="さくら県みなと市本町1丁目1番1号")
    a = svc.resolve(source("斎藤花子", "ｻｲﾄｳ ﾊﾅｺ", date(1960, 3, 3), sex=Sex.FEMALE, address="中央1-2-3"),
                    feed="houkatsu")
    b = svc.resolve(source("斉藤花子", "ｻｲﾄｳ ﾊﾅｺ", date(1960, 3, 3), sex=Sex.FEMALE, address="本町1-1-1"),
                    feed="houkatsu")
    assert (a.person_id, b.person_id) == (sai, sei)
    other_reading = svc.resolve(source("斎藤花子", "ｻｲﾄｳ ﾊﾙｺ", date(1960, 3, 3)), feed="jiritsu")
    assert other_reading.person_id not in (sai, sei)


def test_sex_disagreement_vetoes(svc: IdentityService) -> None:
    hiro = resident(svc, "1000000031", "林　ひろみ", "ハヤシ　ヒロミ", date(1990, 1, 1), Sex.FEMALE)
    r = svc.resolve(source("林ひろみ", "ﾊﾔｼ ﾋﾛﾐ", date(1990, 1, 1), sex=Sex.MALE, address="中央1-2-3"), feed="shogai")
    assert r.person_id != hiro


# --------------------------------------------------------------------------- resident numbers
def test_consistent_resident_no_decides(svc: IdentityService, takahashi: dict[str, str]) -> None:
    r = svc.resolve(source("高橋ヨシオ", None, YOSHIO, resident_no="1000000001"), feed="kodomo")
    assert (r.person_id, r.outcome) == (takahashi["yoshio"], "resident_no")


def test_resident_no_with_other_birth_date_is_not_trusted(svc: IdentityService, takahashi: dict[str, str]) -> None:
    """The son's number on the father's record (name, reading, birth date, no address): never the son; the
    father only through a reviewer."""
    r = svc.resolve(source("高橋　義雄", "ﾀｶﾊｼ ﾖｼｵ", YOSHIO, resident_no="1000000003"), feed="houkatsu")
    assert r.outcome == "review"
    assert r.person_id not in takahashi.values()
    assert {v.candidate_person for v in list_reviews(svc.s)} >= {takahashi["yoshio"]}


def test_a_number_naming_someone_born_another_day_is_overruled_by_full_agreement(
        svc: IdentityService, takahashi: dict[str, str]) -> None:
    """The son's number on a record that agrees with the father on name, reading, birth date and address:
    the number was picked wrongly, the record is the father's. The twin's number (born the same day) is
    never overruled: that record waits for a reviewer."""
    r = svc.resolve(source("高橋　義雄", "ﾀｶﾊｼ ﾖｼｵ", YOSHIO, address="中央1-2-3", resident_no="1000000003"),
                    feed="houkatsu")
    assert (r.person_id, r.outcome) == (takahashi["yoshio"], "matched")
    twin = svc.resolve(source("高橋　義雄", "ﾀｶﾊｼ ﾖｼｵ", YOSHIO, address="中央1-2-3", resident_no="1000000002"),
                       feed="houkatsu")
    assert twin.outcome == "review" and twin.person_id not in takahashi.values()


def test_different_resident_numbers_never_merge(svc: IdentityService) -> None:
    a = svc.resolve(source("森　博", "ﾓﾘ ﾋﾛｼ", date(1940, 2, 4), address="中央1-2-3", resident_no="1000000041"),
                    feed="houkatsu")
    b = svc.resolve(source("森　博", "ﾓﾘ ﾋﾛｼ", date(1940, 2, 4), address="中央1-2-3", resident_no="1000000042"),
                    feed="jiritsu")
    assert a.person_id != b.person_id and b.outcome == "review"


# --------------------------------------------------------------------------- persons the registry does not know
def test_unknown_persons_link_across_feeds_and_to_a_late_registry(svc: IdentityService) -> None:
    first = svc.resolve(source("山本　湊", "ヤマモト　ミナト", date(2014, 3, 28), sex=Sex.MALE), feed="kodomo",
                        source_household_no="5000000077")
    second = svc.resolve(source("山本湊", "やまもとみなと", date(2014, 3, 28), record="shogai:9"), feed="shogai")
    assert first.outcome == "new" and second.outcome == "matched"
    assert second.person_id == first.person_id
    late = resident(svc, "1000000051", "山本　湊", "ヤマモト　ミナト", date(2014, 3, 28), household="5000000077")
    assert late == first.person_id
    assert svc.s.get(Person, late).resident_no == "1000000051"  # type: ignore[union-attr]


def test_kodomo_household_from_setai_no_and_houkatsu_members_in_subject_household(svc: IdentityService) -> None:
    child = source("佐藤　蓮", "サトウ　レン", date(2021, 2, 9), sex=Sex.MALE, record="kodomo:T1")
    guardian = source("佐藤　陽子", "サトウ　ヨウコ", date(1990, 1, 1), record="kodomo:T2")
    case = CaseV1(feed=Feed.KODOMO, case="kodomo:K1", opened_on=date(2025, 4, 1), status=CaseStatus.INTAKE,
                  subject=child, related_persons=[RelatedPerson(person=guardian, role="guardian")],
                  source_household_no="5000000088", revision="2025-04-01T00:00:00+09:00")
    out = svc.resolve_case(case)
    assert out["kodomo:T1"].household_id == out["kodomo:T2"].household_id is not None
    assert out["kodomo:T1"].person_id != out["kodomo:T2"].person_id


# --------------------------------------------------------------------------- seen again, reviews, households
def test_record_seen_again_keeps_its_person_unless_contradicted(svc: IdentityService,
                                                                 takahashi: dict[str, str]) -> None:
    rec = source("高橋義雄", "ﾀｶﾊｼ ﾖｼｵ", YOSHIO, address="中央1-2-3", record="jiritsu:J7")
    assert svc.resolve(rec, feed="jiritsu").person_id == takahashi["yoshio"]
    again = svc.resolve(rec.model_copy(update={"phone": "03-1234-5678"}), feed="jiritsu")
    assert (again.person_id, again.outcome) == (takahashi["yoshio"], "known")
    changed = svc.resolve(rec.model_copy(update={"birth_date": date(1944, 6, 3)}), feed="jiritsu")
    assert changed.outcome == "review" and changed.person_id != takahashi["yoshio"]


def test_review_link_and_keep_apart(svc: IdentityService) -> None:
    yuko = resident(svc, "1000000011", "伊藤　祐子", "イトウ　ユウコ", date(1983, 5, 7), Sex.FEMALE)
    r1 = svc.resolve(source("伊藤裕子", "ｲﾄｳﾕｳｺ", date(1983, 5, 7), record="kodomo:T5"), feed="kodomo")
    r2 = svc.resolve(source("伊藤優子", "ｲﾄｳﾕｳｺ", date(1983, 5, 7), record="kodomo:T6"), feed="kodomo")
    assert r1.outcome == r2.outcome == "review"
    by_record = {v.record: v for v in list_reviews(svc.s) if v.candidate_person == yuko}
    decide_review(svc.s, by_record["kodomo:T5"].id, "link", "clerk-1")
    decide_review(svc.s, by_record["kodomo:T6"].id, "keep_apart", "clerk-1")
    export = {rec: pid for rec, pid, _ in persons_export(svc.s)}
    assert export["kodomo:T5"] == yuko and export["kodomo:T6"] != yuko
    assert not [v for v in list_reviews(svc.s) if v.candidate_person == yuko]
    again = svc.resolve(source("伊藤祐子", "ｲﾄｳﾕｳｺ", date(1983, 5, 7), record="kodomo:T6", resident_no="1000000011"),
                        feed="kodomo")
    assert again.person_id != yuko
    assert not [v for v in list_reviews(svc.s) if v.candidate_person == yuko]
    decisions = svc.s.scalars(select(IdentityDecision.decision).order_by(IdentityDecision.id)).all()
    assert decisions == ["link", "keep_apart"]


def test_household_change_moves_the_person_and_their_records(svc: IdentityService, s: Session) -> None:
    pid = resident(svc, "1000000061", "松井　ハル", "マツイ　ハル", date(1947, 12, 20), Sex.FEMALE)
    r = svc.resolve(source("松井ハル", "ﾏﾂｲ ﾊﾙ", date(1947, 12, 20), address="中央1-2-3"), feed="houkatsu")
    moved = resident(svc, "1000000061", "松井　ハル", "マツイ　ハル", date(1947, 12, 20), Sex.FEMALE,
                     household="5000000099")
    assert moved == pid == r.person_id
    rows = s.scalars(select(PersonRecordRow.household_id).where(PersonRecordRow.person_id == pid)).all()
    household = s.get(Person, pid).household_id  # type: ignore[union-attr]
    assert rows == [household] and household != r.household_id


def test_ids_are_deterministic() -> None:
    def run() -> list[tuple[str, str, str | None]]:
        engine = create_engine("sqlite://")
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            svc = IdentityService(session, address_prefixes=PREFIXES)
            resident(svc, "1000000001", "髙橋　義雄", "タカハシ　ヨシオ", YOSHIO)
            svc.resolve(source("高橋義雄", "ﾀｶﾊｼﾖｼｵ", YOSHIO, record="jiritsu:A"), feed="jiritsu")
            svc.resolve(source("森博", "ﾓﾘﾋﾛｼ", date(1940, 2, 4), record="jiritsu:B"), feed="jiritsu")
            return list(persons_export(session))

    first = run()
    assert first == run()
    assert [r for r, _, _ in first] == sorted(r for r, _, _ in first)
    assert all(p.startswith("p-") and len(p) == 18 for _, p, _ in first)


def test_blocking_uses_indexes(svc: IdentityService, s: Session) -> None:
    """Every candidate look-up is an index search, never a table scan (SQLite EXPLAIN QUERY PLAN)."""
    f = Features("高橋義雄", "高橋義雄", "タカハシヨシオ", YOSHIO, "male", "中央1-2-3", None)
    bare = Features("高橋義雄", "高橋義雄", None, None, None, None, None)
    stmts = svc.blocking_statements(f, household_no="5000000001", household_id="h-1")
    stmts += svc.blocking_statements(bare)
    assert len(stmts) == 10  # 6, and 4 for other names and 不詳 birth dates
    conn = s.connection()
    for stmt in stmts:
        sql = str(stmt.compile(conn, compile_kwargs={"literal_binds": True}))
        plan = " | ".join(row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
        assert "USING INDEX" in plan, plan
        assert "SCAN" not in plan, plan


# --------------------------------------------------------------------------- pure scoring
keys = st.one_of(st.none(), st.sampled_from(["a", "b"]))
dates = st.one_of(st.none(), st.sampled_from([date(1944, 5, 3), date(1975, 8, 1)]))
sexes = st.one_of(st.none(), st.sampled_from(["male", "female"]))
features = st.builds(Features, keys, keys, keys, dates, sexes, keys, keys)


@given(features, features)
def test_scoring_is_symmetric(a: Features, b: Features) -> None:
    assert compare(a, b) == compare(b, a)
    assert points(compare(a, b)) == points(compare(b, a))


@given(features, features)
def test_a_hard_contradiction_never_reaches_review(a: Features, b: Features) -> None:
    ev = compare(a, b)
    if contradicts(ev):
        assert points(ev) + 2.0 < LINK  # even with the household bonus
    if ev["birth"] == "differ":
        assert points(ev) + 2.0 < REVIEW


def test_bench_smoke(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from hub.bench.identity import run_identity_bench

    result = run_identity_bench(sizes=(300, 3000), observations=40, db_dir=tmp_path)
    assert result["sizes"] == [300, 3000] and len(result["rates_per_s"]) == 2
    assert result["ratio"] > 0 and result["peak_rss_mb"] > 0
    assert sum(result["outcomes"]["3000"].values()) == 40


def test_a_wrong_resident_number_claim_is_released(svc: IdentityService) -> None:
    """A source claimed a resident number the registry later gives to someone born on another day."""
    early = svc.resolve(source("森　博", "ﾓﾘ ﾋﾛｼ", date(1940, 2, 4), resident_no="1000000071"), feed="jiritsu")
    assert svc.s.get(Person, early.person_id).resident_no == "1000000071"  # type: ignore[union-attr]
    real = resident(svc, "1000000071", "佐藤　花子", "サトウ　ハナコ", date(1961, 6, 1), Sex.FEMALE)
    assert real != early.person_id
    assert svc.s.get(Person, early.person_id).resident_no is None  # type: ignore[union-attr]
    assert [v.candidate_person for v in list_reviews(svc.s)] == [early.person_id]
