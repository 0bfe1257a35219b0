"""Adversarial synthetic data for identity resolution: the look-alikes, concentrated, with the truth.

Where :mod:`identity_synth` draws a realistic town with a few hard cases in it, this module builds
the hard cases on purpose, many times over, each from a seed:

* ``namesake``: many 佐藤 花子 (same kanji, same reading), born on other days, some a day apart;
* ``twins``: same family name, birth date, sex, address and household, other given names, seen
  in 同居家族 entries with a name and a birth date only, and (one pair in ten) a wrong resident
  number that names the twin on a record without reading or sex (``twins_wrong_no``);
* ``same_given``: a parent and a child with the same given name in one household;
* ``saito``: 斎藤 花子 and 斉藤 花子 (or 齋藤/齊藤 in the registry), distinct legal names with the same
  reading and birth date, at different addresses;
* ``legacy_kana``: readings with small kana written by old systems in large half-width kana (ｼﾖｳｼﾞ);
* ``slip``: homophone kanji slips (裕子 for 祐子, reading kept), next to a real 伊藤 裕子 born on
  another day;
* every record: addresses in three spellings (full-width ``中央１－２－３`` among them) with or without
  prefecture and city, mostly without resident numbers (30 % carry the right one), and a few that
  name someone born on another day (``wrong_no``, 1.5 % of registered homes; with the twins'
  numbers, about 0.75 % of source records carry a wrong number: by design every such record waits
  for a reviewer, so these are the only links a correct engine misses);
* ``newcomer``: households the registry does not know yet, seen in several feeds.

:func:`generate` returns the registry, the observations in arrival order and the truth
(record key → true person) for :func:`e2e.identity_scorer.pairwise_scores`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

import jaconv

from schemas.codes import CaseStatus, Feed, Relation, Sex
from schemas.events import CaseV1, HouseholdMember, PersonRecord, RelatedPerson, ResidentObservedV1

PREFIXES = ("さくら県", "みなと市")
KANJI_NUM = "〇一二三四五六七八九"
TOWNS = ("中央", "本町", "栄町", "東町", "西町", "港南", "若葉", "桜台", "緑が丘", "旭町", "松原", "青葉")
REF = date(2025, 4, 1)

Observation = CaseV1 | tuple[PersonRecord, str, str | None]


@dataclass
class Human:
    pid: str
    family: str  # legal family name (may be 旧字体)
    plain: str  # the plain form clerks often write
    family_kana: str
    given: str
    given_kana: str
    slips: tuple[str, ...]  # homophone given names (same reading)
    birth: date
    sex: Sex
    relation: Relation
    resident_no: str


@dataclass
class Home:
    household_no: str
    address: tuple[str, int, int, int]
    members: list[Human]
    registered: bool = True


@dataclass
class AdversarialData:
    registry: list[ResidentObservedV1] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    truth: dict[str, str] = field(default_factory=dict)
    #: record key → the scenario that made it (for failure messages)
    scenario: dict[str, str] = field(default_factory=dict)
    homes: list[Home] = field(default_factory=list)


class _Gen:
    def __init__(self, seed: int) -> None:
        self.rnd = random.Random(seed)
        self.data = AdversarialData()
        self.no = 2_000_000_000
        self.hh = 6_000_000_000
        self.pid = 0
        self.rec = 0
        self.addresses: set[tuple[str, int, int, int]] = set()
        self.taken: set[tuple[str, str, date]] = set()

    # ------------------------------------------------------------------ people and homes
    def human(self, family: tuple[str, str, str], given: tuple[str, str, tuple[str, ...]], birth: date, sex: Sex,
              relation: Relation = Relation.HEAD, *, same_as: Human | None = None) -> Human:
        """A new person; nobody else gets the same reading and birth date unless ``same_as`` asks for it
        (such a pair differs only where no record may show it: beyond what any matcher can tell)."""
        if same_as is None:
            while (family[2], given[1], birth) in self.taken:
                birth += timedelta(days=1)
        self.taken.add((family[2], given[1], birth))
        self.pid += 1
        self.no += self.rnd.randint(1, 30)
        legal, plain, kana = family
        return Human(f"A{self.pid:05d}", legal, plain, kana, given[0], given[1], given[2], birth, sex, relation,
                     str(self.no))

    def address(self) -> tuple[str, int, int, int]:
        while True:
            a = (self.rnd.choice(TOWNS), self.rnd.randint(1, 5), self.rnd.randint(1, 30), self.rnd.randint(1, 20))
            if a not in self.addresses:
                self.addresses.add(a)
                return a

    def home(self, members: list[Human], *, registered: bool = True) -> Home:
        self.hh += self.rnd.randint(1, 20)
        h = Home(str(self.hh), self.address(), members, registered)
        self.data.homes.append(h)
        return h

    def birth(self, low: int, high: int) -> date:
        return REF - timedelta(days=self.rnd.randint(low * 365, high * 365 + 364))

    # ------------------------------------------------------------------ spellings
    def spell_address(self, a: tuple[str, int, int, int]) -> str:
        town, c, b, g = a
        prefix = self.rnd.choice(("", "さくら県みなと市", "みなと市"))
        style = self.rnd.randrange(3)
        if style == 0:
            body = f"{town}{KANJI_NUM[c]}丁目{b}番{g}号"
        elif style == 1:
            body = f"{town}{c}-{b}-{g}"
        else:
            body = jaconv.h2z(f"{town}{c}-{b}-{g}", digit=True, ascii=True).replace("-", "－")
        return prefix + body

    def spell_name(self, h: Human, *, slip: bool = False) -> str:
        family = h.family if self.rnd.random() < 0.5 else h.plain
        given = self.rnd.choice(h.slips) if slip and h.slips else h.given
        return f"{family}{self.rnd.choice(('　', ' ', ''))}{given}"

    def spell_kana(self, h: Human, *, legacy: bool | None = None) -> str:
        full = h.family_kana + self.rnd.choice(("　", " ", "")) + h.given_kana
        style = 2 if legacy else self.rnd.randrange(4)
        if style == 0:
            return jaconv.z2h(full, kana=True)
        if style == 1:
            return jaconv.kata2hira(full)
        if style == 2:  # an old system without small kana
            return jaconv.z2h(full.translate(str.maketrans("ァィゥェォッャュョ", "アイウエオツヤユヨ")), kana=True)
        return full

    def phone(self) -> str:
        d = f"0{self.rnd.randint(10, 99)}{self.rnd.randint(1000, 9999)}{self.rnd.randint(1000, 9999)}"
        return d if self.rnd.random() < 0.5 else f"{d[:3]}-{d[3:7]}-{d[7:]}"

    # ------------------------------------------------------------------ records
    def key(self, feed: Feed, h: Human, scenario: str) -> str:
        self.rec += 1
        k = f"{feed.value}:X{self.rec:06d}"
        self.data.truth[k] = h.pid
        self.data.scenario[k] = scenario
        return k

    def record(self, h: Human, home: Home, feed: Feed, scenario: str, *, slip: bool = False,
               legacy: bool | None = None, kana: bool = True, address: bool | None = None, sex: bool | None = None,
               resident_no: str | bool | None = None) -> PersonRecord:
        """One source's view; ``resident_no`` True = the right number, a string = that (wrong) number."""
        k = self.key(feed, h, scenario)
        if resident_no is None:
            resident_no = home.registered and self.rnd.random() < 0.3
        no = h.resident_no if resident_no is True else (resident_no or None)
        with_address = (self.rnd.random() < 0.7) if address is None else address
        with_sex = (self.rnd.random() < 0.8) if sex is None else sex
        return PersonRecord(
            record=k,
            name=self.spell_name(h, slip=slip),
            kana=self.spell_kana(h, legacy=legacy) if kana else None,
            birth_date=h.birth,
            sex=h.sex if with_sex else Sex.UNKNOWN,
            address=self.spell_address(home.address) if with_address and feed is not Feed.KODOMO else None,
            phone=self.phone() if self.rnd.random() < 0.3 else None,
            resident_no=no if isinstance(no, str) else None,
        )

    def bare(self, h: Human, feed: Feed, scenario: str) -> PersonRecord:
        """A houkatsu 同居家族 entry: a name and a birth date only."""
        return PersonRecord(record=self.key(feed, h, scenario), name=self.spell_name(h), birth_date=h.birth,
                            relation=h.relation)

    def observe(self, rec: PersonRecord, feed: Feed, home: Home | None = None) -> None:
        self.data.observations.append((rec, feed.value, home.household_no if home is not None else None))

    def case(self, feed: Feed, subject: PersonRecord, **kw: object) -> None:
        self.rec += 1
        self.data.observations.append(CaseV1(
            feed=feed, case=f"{feed.value}:case:{self.rec}", opened_on=REF, status=CaseStatus.IN_PROGRESS,
            subject=subject, revision="2025-04-01T00:00:00+09:00", **kw))  # type: ignore[arg-type]

    def several(self, h: Human, home: Home, scenario: str, n: int, **kw: object) -> None:
        for _ in range(n):
            feed = self.rnd.choice((Feed.HOUKATSU, Feed.JIRITSU, Feed.SHOGAI))
            self.observe(self.record(h, home, feed, scenario, **kw), feed)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ scenarios
    def namesakes(self) -> None:
        """佐藤 花子 × 6: other birth dates (two of them a day apart), other homes."""
        first = self.birth(20, 90)
        births = [first, first + timedelta(days=1)] + [self.birth(20, 90) for _ in range(4)]
        for b in births:
            h = self.human(("佐藤", "佐藤", "サトウ"), ("花子", "ハナコ", ("華子",)), b, Sex.FEMALE)
            home = self.home([h], registered=self.rnd.random() < 0.9)
            self.several(h, home, "namesake", self.rnd.randint(1, 4))

    def twins(self) -> None:
        """Twins in one home; 同居家族 entries without reading; one wrong number naming the twin."""
        fam = self.rnd.choice((("髙橋", "高橋", "タカハシ"), ("渡邊", "渡辺", "ワタナベ"), ("田中", "田中", "タナカ")))
        b = self.birth(40, 60)
        mother = self.human(fam, ("久子", "ヒサコ", ("寿子",)), self.birth(75, 90), Sex.FEMALE)
        a = self.human(fam, ("義雄", "ヨシオ", ("芳雄",)), b, Sex.MALE, Relation.CHILD)
        c = self.human(fam, ("和雄", "カズオ", ("一夫",)), b, Sex.MALE, Relation.CHILD)
        home = self.home([mother, a, c])
        subject = self.record(mother, home, Feed.HOUKATSU, "twins")
        self.case(Feed.HOUKATSU, subject, household_members=[
            HouseholdMember(person=self.bare(a, Feed.HOUKATSU, "twins")),
            HouseholdMember(person=self.bare(c, Feed.HOUKATSU, "twins")),
        ])
        self.several(a, home, "twins", 2)
        self.several(c, home, "twins", 2)
        if self.rnd.random() < 0.1:  # a clerk typed the twin's number on a record without reading or sex
            self.observe(self.record(a, home, Feed.JIRITSU, "twins_wrong_no", kana=False, sex=False,
                                     resident_no=c.resident_no), Feed.JIRITSU)

    def same_given(self) -> None:
        """Father and son both 昭二 (ショウジ), same home; readings in legacy large kana too."""
        fam = self.rnd.choice((("齋藤", "斎藤", "サイトウ"), ("山﨑", "山崎", "ヤマザキ"), ("森", "森", "モリ")))
        given = ("昭二", "ショウジ", ("昭次", "正二"))
        father = self.human(fam, given, self.birth(72, 90), Sex.MALE)
        son = self.human(fam, given, self.birth(40, 55), Sex.MALE, Relation.CHILD)
        home = self.home([father, son])
        subject = self.record(father, home, Feed.HOUKATSU, "same_given", legacy=True)
        self.case(Feed.HOUKATSU, subject, household_members=[HouseholdMember(person=self.bare(son, Feed.HOUKATSU,
                                                                                              "same_given"))])
        self.several(father, home, "same_given", 1, legacy=True)
        self.several(son, home, "same_given", 2)

    def saito(self) -> None:
        """斎藤 花子 and 斉藤 花子: same reading and birth date, distinct legal names, other addresses."""
        sai = self.human(self.rnd.choice((("齋藤", "斎藤", "サイトウ"), ("斎藤", "斎藤", "サイトウ"))),
                         ("花子", "ハナコ", ("華子",)), self.birth(30, 85), Sex.FEMALE)
        sei = self.human(self.rnd.choice((("齊藤", "斉藤", "サイトウ"), ("斉藤", "斉藤", "サイトウ"))),
                         ("花子", "ハナコ", ("華子",)), sai.birth, Sex.FEMALE, same_as=sai)
        for h in (sai, sei):
            home = self.home([h])
            self.several(h, home, "saito", 3)

    def legacy_kana(self) -> None:
        """Readings with small kana (キョウコ, シュンスケ, ジュン) written ｷﾖｳｺ by an old system."""
        fam = self.rnd.choice((("中村", "中村", "ナカムラ"), ("櫻井", "桜井", "サクライ"),
                               ("小林", "小林", "コバヤシ")))
        given = self.rnd.choice((("京子", "キョウコ", ("恭子",)), ("俊介", "シュンスケ", ("駿介",)),
                                 ("順", "ジュン", ("純",)), ("翔", "ショウ", ("将",))))
        sex = Sex.FEMALE if given[0] == "京子" else Sex.MALE
        h = self.human(fam, given, self.birth(20, 80), sex)
        home = self.home([h], registered=self.rnd.random() < 0.85)
        self.several(h, home, "legacy_kana", 2, legacy=True)
        self.several(h, home, "legacy_kana", 1)

    def slip(self) -> None:
        """伊藤 祐子 written 裕子/優子 (reading kept), and a real 伊藤 裕子 born on another day."""
        yuko = self.human(("伊藤", "伊藤", "イトウ"), ("祐子", "ユウコ", ("裕子", "優子")), self.birth(30, 60),
                          Sex.FEMALE)
        other = self.human(("伊藤", "伊藤", "イトウ"), ("裕子", "ユウコ", ("祐子",)), self.birth(30, 60), Sex.FEMALE)
        home, other_home = self.home([yuko]), self.home([other])
        self.several(yuko, home, "slip", 1, slip=True, address=True)
        self.several(yuko, home, "slip", 2)
        self.several(other, other_home, "slip", 2)

    def wrong_numbers(self) -> None:
        """Records that carry the resident number of someone born on another day."""
        registered = [m for h in self.data.homes if h.registered for m in h.members]
        for home in list(self.data.homes):
            if not home.registered or self.rnd.random() > 0.015:
                continue
            h = self.rnd.choice(home.members)
            wrong = self.rnd.choice([m for m in registered if m.birth != h.birth])
            feed = self.rnd.choice((Feed.JIRITSU, Feed.SHOGAI))
            self.observe(self.record(h, home, feed, "wrong_no", resident_no=wrong.resident_no), feed)

    def newcomers(self) -> None:
        """A family the registry does not know yet: kodomo (setai_no) and the other feeds."""
        fam = self.rnd.choice((("浜田", "浜田", "ハマダ"), ("廣田", "広田", "ヒロタ"), ("嶋田", "島田", "シマダ")))
        mother = self.human(fam, ("陽子", "ヨウコ", ("洋子",)), self.birth(28, 45), Sex.FEMALE, Relation.WIFE)
        child = self.human(fam, ("湊", "ミナト", ("港",)), self.birth(3, 12), Sex.MALE, Relation.CHILD)
        home = self.home([mother, child], registered=False)
        self.case(Feed.KODOMO, self.record(child, home, Feed.KODOMO, "newcomer"), source_household_no=home.household_no,
                  related_persons=[RelatedPerson(person=self.record(mother, home, Feed.KODOMO, "newcomer"),
                                                 role="guardian")])
        self.several(mother, home, "newcomer", 2)
        self.several(child, home, "newcomer", 1)

    # ------------------------------------------------------------------ the registry
    def registry(self) -> None:
        for home in self.data.homes:
            if not home.registered:
                continue
            town, c, b, g = home.address
            for h in home.members:
                key = f"registry:{h.resident_no}"
                self.data.truth[key] = h.pid
                self.data.scenario[key] = "registry"
                rec = PersonRecord(record=key, name=f"{h.family}　{h.given}", kana=f"{h.family_kana}　{h.given_kana}",
                                   birth_date=h.birth, sex=h.sex, address=f"さくら県みなと市{town}{c}丁目{b}番{g}号",
                                   resident_no=h.resident_no, household_no=home.household_no, relation=h.relation)
                self.data.registry.append(ResidentObservedV1(resident=rec, moved_on=date(2024, 4, 1), snapshot="adv"))


def generate(seed: int = 11, rounds: int = 60) -> AdversarialData:
    """``rounds`` of every scenario, the registry built from the registered homes, observations shuffled."""
    gen = _Gen(seed)
    for _ in range(rounds):
        gen.namesakes()
        gen.twins()
        gen.same_given()
        gen.saito()
        gen.legacy_kana()
        gen.slip()
        gen.newcomers()
    gen.wrong_numbers()
    gen.registry()
    gen.rnd.shuffle(gen.data.observations)
    return gen.data
