"""A synthetic, hard registry and source feeds for identity resolution, with the truth behind them.

Deterministic for a seed. Hard on purpose: twins (same family name, birth date, address and
household, other given names), common names in other years, parent and child with the same
given name, 斎藤/斉藤 and 齋藤/齊藤 families, homophone kanji slips (裕子 for 祐子, reading kept),
旧字体 in one system and the plain form in another, half-width / hiragana / legacy large kana,
names with and without separators, addresses spelled three ways with or without prefecture and
city, missing resident numbers, a few wrong resident numbers (pointing at someone born on
another day), houkatsu 同居家族 entries without reading or sex, and households the registry does
not know (moved in recently) that appear in several feeds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

import jaconv

from schemas.codes import CaseStatus, Feed, Relation, Sex
from schemas.events import CaseV1, HouseholdMember, PersonRecord, RelatedPerson, ResidentObservedV1

PREFIXES = ("さくら県", "みなと市")

# (plain form, 旧字体 form or None, reading)
FAMILIES: tuple[tuple[str, str | None, str], ...] = (
    ("高橋", "髙橋", "タカハシ"), ("渡辺", "渡邊", "ワタナベ"), ("渡辺", "渡邉", "ワタナベ"),
    ("斎藤", "齋藤", "サイトウ"), ("斉藤", "齊藤", "サイトウ"), ("山崎", "山﨑", "ヤマザキ"),
    ("浜田", "濱田", "ハマダ"), ("広田", "廣田", "ヒロタ"), ("島田", "嶋田", "シマダ"), ("沢田", "澤田", "サワダ"),
    ("桜井", "櫻井", "サクライ"), ("佐藤", None, "サトウ"), ("鈴木", None, "スズキ"), ("田中", None, "タナカ"),
    ("伊藤", None, "イトウ"), ("中村", None, "ナカムラ"), ("小林", None, "コバヤシ"), ("加藤", None, "カトウ"),
    ("吉田", None, "ヨシダ"), ("山田", None, "ヤマダ"), ("松本", None, "マツモト"), ("井上", None, "イノウエ"),
    ("林", None, "ハヤシ"), ("森", None, "モリ"), ("橋本", None, "ハシモト"), ("石川", None, "イシカワ"),
)  # fmt: skip
# (given name, reading, homophones with the same reading)
MALE: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("義雄", "ヨシオ", ("芳雄", "良雄")), ("正", "タダシ", ("忠",)), ("昭二", "ショウジ", ("昭次", "正二")),
    ("弘", "ヒロシ", ("博", "浩")), ("健一", "ケンイチ", ("賢一",)), ("誠", "マコト", ("真",)),
    ("隆", "タカシ", ("孝", "崇")), ("大翔", "ヒロト", ("大斗",)), ("蓮", "レン", ("廉",)),
    ("翔", "ショウ", ("将",)), ("和雄", "カズオ", ("一夫",)), ("修", "オサム", ("治",)), ("勇", "イサム", ("勲",)),
    ("俊介", "シュンスケ", ("駿介",)), ("湊", "ミナト", ("港",)),
)  # fmt: skip
FEMALE: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("祐子", "ユウコ", ("裕子", "優子")), ("花子", "ハナコ", ("華子",)), ("恵子", "ケイコ", ("啓子",)),
    ("久子", "ヒサコ", ("寿子",)), ("美代子", "ミヨコ", ("三代子",)), ("節子", "セツコ", ("節子",)),
    ("幸子", "サチコ", ("幸子",)), ("陽子", "ヨウコ", ("洋子", "葉子")), ("美穂", "ミホ", ("美保",)),
    ("智子", "トモコ", ("知子",)), ("直美", "ナオミ", ("尚美",)), ("美月", "ミツキ", ("美槻",)),
    ("結菜", "ユイナ", ("唯菜",)), ("杏", "アン", ("杏",)), ("京子", "キョウコ", ("恭子",)),
)  # fmt: skip
TOWNS = ("中央", "本町", "栄町", "東町", "西町", "港南", "若葉", "桜台", "緑が丘", "旭町", "松原", "青葉")
KANJI_NUM = "〇一二三四五六七八九"
FEEDS = (Feed.HOUKATSU, Feed.JIRITSU, Feed.SHOGAI, Feed.KODOMO)


@dataclass
class SynthPerson:
    pid: str
    family: str  # the legal family name as the registry writes it
    family_plain: str
    family_kana: str
    given: str
    given_kana: str
    homophones: tuple[str, ...]
    birth: date
    sex: Sex
    relation: Relation
    resident_no: str


@dataclass
class SynthHousehold:
    household_no: str
    address: tuple[str, int, int, int]
    members: list[SynthPerson]
    registered: bool = True


@dataclass
class SynthData:
    registry: list[ResidentObservedV1] = field(default_factory=list)
    #: what the feeds say, in arrival order: a case, or (person, feed, source household_no)
    observations: list[CaseV1 | tuple[PersonRecord, str, str | None]] = field(default_factory=list)
    truth: dict[str, str] = field(default_factory=dict)
    households: list[SynthHousehold] = field(default_factory=list)


class _Gen:
    def __init__(self, seed: int) -> None:
        self.rnd = random.Random(seed)
        self.next_no = 1_000_000_000
        self.next_hh = 5_000_000_000
        self.next_pid = 0
        self.next_rec = 0
        self.data = SynthData()
        self.slips = 0

    # ------------------------------------------------------------------ people
    def _resident_no(self) -> str:
        self.next_no += self.rnd.randint(1, 40)
        return str(self.next_no)

    def person(self, fam: tuple[str, str | None, str], sex: Sex, birth: date, relation: Relation,
               given: tuple[str, str, tuple[str, ...]] | None = None) -> SynthPerson:
        plain, old, fkana = fam
        g = given or self.rnd.choice(MALE if sex is Sex.MALE else FEMALE)
        self.next_pid += 1
        legal = old if old and self.rnd.random() < 0.5 else plain
        return SynthPerson(f"T{self.next_pid:06d}", legal, plain, fkana, g[0], g[1], g[2], birth, sex, relation,
                           self._resident_no())

    def birth(self, age_low: int, age_high: int) -> date:
        ref = date(2025, 4, 1)
        return ref - timedelta(days=self.rnd.randint(age_low * 365, age_high * 365 + 364))

    def household(self) -> SynthHousehold:
        fam = self.rnd.choice(FAMILIES)
        kind = self.rnd.random()
        members: list[SynthPerson] = []
        if kind < 0.35:  # elderly couple, maybe with a middle-aged child (8050)
            head = self.person(fam, Sex.MALE, self.birth(65, 92), Relation.HEAD)
            members += [head, self.person(fam, Sex.FEMALE, self.birth(63, 90), Relation.WIFE)]
            if self.rnd.random() < 0.4:
                same_name = self.rnd.random() < 0.25  # parent and child with the same given name
                g = next(m for m in MALE if m[0] == head.given) if same_name else None
                members.append(self.person(fam, Sex.MALE, self.birth(40, 60), Relation.CHILD, g))
        elif kind < 0.8:  # young family, sometimes twins, sometimes a grandmother
            members.append(self.person(fam, Sex.MALE, self.birth(28, 48), Relation.HEAD))
            members.append(self.person(fam, Sex.FEMALE, self.birth(26, 46), Relation.WIFE))
            for _ in range(self.rnd.randint(1, 3)):
                sex = self.rnd.choice((Sex.MALE, Sex.FEMALE))
                members.append(self.person(fam, sex, self.birth(0, 17), Relation.CHILD))
            if self.rnd.random() < 0.2:
                members.append(self._twin(members[-1], fam))
            if self.rnd.random() < 0.3:
                members.append(self.person(fam, Sex.FEMALE, self.birth(60, 88), Relation.MOTHER))
        else:  # living alone
            sex = self.rnd.choice((Sex.MALE, Sex.FEMALE))
            members.append(self.person(fam, sex, self.birth(20, 95), Relation.HEAD))
        self.next_hh += self.rnd.randint(1, 30)
        addr = (self.rnd.choice(TOWNS), self.rnd.randint(1, 5), self.rnd.randint(1, 30), self.rnd.randint(1, 20))
        return SynthHousehold(str(self.next_hh), addr, members, registered=self.rnd.random() > 0.03)

    def _twin(self, sibling: SynthPerson, fam: tuple[str, str | None, str]) -> SynthPerson:
        pool = MALE if sibling.sex is Sex.MALE else FEMALE
        other = self.rnd.choice([g for g in pool if g[1] != sibling.given_kana])
        twin = self.person(fam, sibling.sex, sibling.birth, Relation.CHILD, other)
        twin.family = sibling.family
        return twin

    # ------------------------------------------------------------------ spellings
    def address(self, a: tuple[str, int, int, int], *, registry: bool = False) -> str:
        town, c, b, g = a
        if registry:
            return f"さくら県みなと市{town}{c}丁目{b}番{g}号"
        prefix = self.rnd.choice(("", "さくら県みなと市", "みなと市"))
        style = self.rnd.randrange(3)
        if style == 0:
            body = f"{town}{KANJI_NUM[c]}丁目{b}番{g}号"
        elif style == 1:
            body = f"{town}{c}-{b}-{g}"
        else:
            body = jaconv.h2z(f"{town}{c}-{b}-{g}", digit=True, ascii=True).replace("-", "－")
        return prefix + body

    def name(self, p: SynthPerson, *, slip: bool) -> str:
        family = p.family if self.rnd.random() < 0.5 else p.family_plain
        given = p.given
        homophones = [h for h in p.homophones if h != p.given]
        if slip and homophones:
            given = self.rnd.choice(homophones)
            self.slips += 1
        sep = self.rnd.choice(("　", " ", ""))
        return f"{family}{sep}{given}"

    def kana(self, p: SynthPerson) -> str:
        full = p.family_kana + self.rnd.choice(("　", " ", "")) + p.given_kana
        style = self.rnd.randrange(4)
        if style == 0:
            return jaconv.z2h(full, kana=True)
        if style == 1:
            return jaconv.kata2hira(full)
        if style == 2:  # legacy system without small kana
            return jaconv.z2h(full.translate(str.maketrans("ァィゥェォッャュョ", "アイウエオツヤユヨ")), kana=True)
        return full

    def phone(self) -> str:
        digits = f"0{self.rnd.randint(10, 99)}{self.rnd.randint(1000, 9999)}{self.rnd.randint(1000, 9999)}"
        return digits if self.rnd.random() < 0.5 else f"{digits[:3]}-{digits[3:7]}-{digits[7:]}"

    def record(self, p: SynthPerson, feed: Feed, hh: SynthHousehold, *, bare: bool = False) -> PersonRecord:
        """One source's view of a person; ``bare`` = a 同居家族 entry (name and birth date only)."""
        self.next_rec += 1
        key = f"{feed.value}:S{self.next_rec:06d}"
        self.data.truth[key] = p.pid
        slip = self.rnd.random() < 0.02
        resident_no: str | None = None
        if hh.registered and not bare and self.rnd.random() < 0.4:
            resident_no = p.resident_no
        if hh.registered and not bare and self.rnd.random() < 0.005:
            resident_no = self._wrong_resident_no(p)
        if bare:
            return PersonRecord(record=key, name=self.name(p, slip=slip), birth_date=p.birth, relation=p.relation)
        sex = p.sex if self.rnd.random() < 0.8 else Sex.UNKNOWN
        return PersonRecord(
            record=key,
            name=self.name(p, slip=slip),
            kana=self.kana(p) if self.rnd.random() < 0.97 else None,
            birth_date=p.birth,
            sex=sex,
            address=self.address(hh.address) if feed is not Feed.KODOMO else None,
            phone=self.phone() if self.rnd.random() < 0.5 else None,
            resident_no=resident_no,
        )

    def _wrong_resident_no(self, p: SynthPerson) -> str:
        others = [m for h in self.data.households if h.registered for m in h.members if m.birth != p.birth]
        return self.rnd.choice(others).resident_no if others else p.resident_no

    # ------------------------------------------------------------------ feeds
    def registry(self) -> None:
        for hh in self.data.households:
            if not hh.registered:
                continue
            for p in hh.members:
                key = f"registry:{p.resident_no}"
                self.data.truth[key] = p.pid
                rec = PersonRecord(record=key, name=f"{p.family}　{p.given}", family_name=p.family,
                                   given_name=p.given, kana=f"{p.family_kana}　{p.given_kana}", birth_date=p.birth,
                                   sex=p.sex, address=self.address(hh.address, registry=True),
                                   resident_no=p.resident_no, household_no=hh.household_no, relation=p.relation)
                self.data.registry.append(ResidentObservedV1(resident=rec, moved_on=date(2024, 4, 1),
                                                             snapshot="synth"))

    def cases(self) -> None:
        for hh in self.data.households:
            if self.rnd.random() < 0.45:
                self._houkatsu(hh)
            for p in hh.members:
                if self.rnd.random() < 0.25:
                    feed = self.rnd.choice((Feed.JIRITSU, Feed.SHOGAI))
                    self.data.observations.append((self.record(p, feed, hh), feed.value, None))
            kids = [m for m in hh.members if (date(2025, 4, 1) - m.birth).days < 18 * 365]
            if kids and self.rnd.random() < 0.5:
                self._kodomo(hh, kids)
        self.rnd.shuffle(self.data.observations)

    def _case(self, feed: Feed, subject: PersonRecord, **kw: object) -> CaseV1:
        self.next_rec += 1
        return CaseV1(feed=feed, case=f"{feed.value}:case:{self.next_rec}", opened_on=date(2025, 4, 1),
                      status=CaseStatus.IN_PROGRESS, subject=subject, revision="2025-04-01T00:00:00+09:00",
                      **kw)  # type: ignore[arg-type]

    def _houkatsu(self, hh: SynthHousehold) -> None:
        subject = max(hh.members, key=lambda m: (date(2025, 4, 1) - m.birth).days)
        rec = self.record(subject, Feed.HOUKATSU, hh)
        members = [HouseholdMember(person=self.record(m, Feed.HOUKATSU, hh, bare=True))
                   for m in hh.members if m is not subject and self.rnd.random() < 0.8]
        self.data.observations.append(self._case(Feed.HOUKATSU, rec, household_members=members))

    def _kodomo(self, hh: SynthHousehold, kids: list[SynthPerson]) -> None:
        child = self.rnd.choice(kids)
        adults = [m for m in hh.members if m.relation in (Relation.HEAD, Relation.WIFE)]
        related = [RelatedPerson(person=self.record(a, Feed.KODOMO, hh), role="guardian") for a in adults]
        related += [RelatedPerson(person=self.record(k, Feed.KODOMO, hh), role="child") for k in kids
                    if k is not child]
        setai = hh.household_no if self.rnd.random() < 0.9 else None
        self.data.observations.append(self._case(Feed.KODOMO, self.record(child, Feed.KODOMO, hh),
                                                 related_persons=related, source_household_no=setai))


def generate(seed: int = 7, households: int = 600) -> SynthData:
    gen = _Gen(seed)
    gen.data.households = [gen.household() for _ in range(households)]
    gen.registry()
    gen.cases()
    return gen.data
