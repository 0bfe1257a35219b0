"""Synthetic residents and households, each derived deterministically from (seed, household index).

Nothing here writes files: :func:`household` builds one household (its members, kind, the
agencies that know it) from the seed and its index alone, so a generator can stream any
number of households in constant memory and the same seed always gives the same people.
Spelling helpers render one true value the way a given agency system writes it.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

import jaconv

REFERENCE = date(2026, 3, 31)  # end of the generated year (2025-04-01 .. 2026-03-31)
YEAR_START = date(2025, 4, 1)
PREFECTURE, CITY = "さくら県", "みなと市"

# (plain form, 旧字体 form or None, reading)
FAMILIES: tuple[tuple[str, str | None, str], ...] = (
    ("高橋", "髙橋", "タカハシ"), ("渡辺", "渡邊", "ワタナベ"), ("渡辺", "渡邉", "ワタナベ"),
    ("斎藤", "齋藤", "サイトウ"), ("山崎", "山﨑", "ヤマザキ"), ("浜田", "濱田", "ハマダ"),
    ("広田", "廣田", "ヒロタ"), ("島田", "嶋田", "シマダ"), ("沢田", "澤田", "サワダ"), ("桜井", "櫻井", "サクライ"),
    ("国分", "國分", "コクブ"), ("徳永", "德永", "トクナガ"), ("佐藤", None, "サトウ"), ("鈴木", None, "スズキ"),
    ("田中", None, "タナカ"), ("伊藤", None, "イトウ"), ("中村", None, "ナカムラ"), ("小林", None, "コバヤシ"),
    ("加藤", None, "カトウ"), ("吉田", None, "ヨシダ"), ("山田", None, "ヤマダ"), ("松本", None, "マツモト"),
    ("井上", None, "イノウエ"), ("木村", None, "キムラ"), ("林", None, "ハヤシ"), ("清水", None, "シミズ"),
    ("山口", None, "ヤマグチ"), ("森", None, "モリ"), ("池田", None, "イケダ"), ("橋本", None, "ハシモト"),
    ("阿部", None, "アベ"), ("石川", None, "イシカワ"), ("前田", None, "マエダ"), ("藤田", None, "フジタ"),
    ("小川", None, "オガワ"), ("岡田", None, "オカダ"), ("後藤", None, "ゴトウ"), ("長谷川", None, "ハセガワ"),
    ("村上", None, "ムラカミ"), ("近藤", None, "コンドウ"), ("石井", None, "イシイ"), ("坂本", None, "サカモト"),
    ("遠藤", None, "エンドウ"), ("青木", None, "アオキ"), ("藤井", None, "フジイ"), ("西村", None, "ニシムラ"),
    ("福田", None, "フクダ"), ("太田", None, "オオタ"), ("三浦", None, "ミウラ"), ("藤原", None, "フジワラ"),
    ("岡本", None, "オカモト"), ("松田", None, "マツダ"), ("中川", None, "ナカガワ"), ("中野", None, "ナカノ"),
    ("原田", None, "ハラダ"), ("小野", None, "オノ"), ("田村", None, "タムラ"), ("竹内", None, "タケウチ"),
    ("金子", None, "カネコ"), ("和田", None, "ワダ"), ("中山", None, "ナカヤマ"), ("石田", None, "イシダ"),
    ("上田", None, "ウエダ"), ("森田", None, "モリタ"), ("原", None, "ハラ"), ("柴田", None, "シバタ"),
    ("酒井", None, "サカイ"), ("工藤", None, "クドウ"), ("横山", None, "ヨコヤマ"), ("宮崎", "宮﨑", "ミヤザキ"),
    ("宮本", None, "ミヤモト"), ("内田", None, "ウチダ"), ("高木", "髙木", "タカギ"), ("安藤", None, "アンドウ"),
    ("谷口", None, "タニグチ"), ("大野", None, "オオノ"), ("丸山", None, "マルヤマ"), ("今井", None, "イマイ"),
    ("河野", None, "コウノ"), ("藤本", None, "フジモト"), ("村田", None, "ムラタ"), ("武田", None, "タケダ"),
    ("上野", None, "ウエノ"), ("杉山", None, "スギヤマ"), ("増田", None, "マスダ"), ("平野", None, "ヒラノ"),
    ("大塚", None, "オオツカ"), ("千葉", None, "チバ"), ("久保", None, "クボ"), ("松井", None, "マツイ"),
    ("小島", "小嶋", "コジマ"), ("岩崎", "岩﨑", "イワサキ"), ("桜田", "櫻田", "サクラダ"), ("野口", None, "ノグチ"),
    ("神田", None, "カンダ"), ("都築", None, "ツヅキ"), ("塚本", None, "ツカモト"), ("長尾", None, "ナガオ"),
)  # fmt: skip
# (given name, reading, homophones with the same reading)
MALE: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("義雄", "ヨシオ", ("芳雄", "良雄")), ("正", "タダシ", ("忠",)), ("昭二", "ショウジ", ("昭次", "正二")),
    ("弘", "ヒロシ", ("博", "浩")), ("健一", "ケンイチ", ("賢一",)), ("誠", "マコト", ("真",)),
    ("隆", "タカシ", ("孝", "崇")), ("大翔", "ヒロト", ("大斗",)), ("蓮", "レン", ("廉",)),
    ("翔", "ショウ", ("将",)), ("和雄", "カズオ", ("一夫",)), ("修", "オサム", ("治",)), ("勇", "イサム", ("勲",)),
    ("俊介", "シュンスケ", ("駿介",)), ("湊", "ミナト", ("港",)), ("清", "キヨシ", ("潔",)),
    ("茂", "シゲル", ("繁",)), ("実", "ミノル", ("稔",)), ("進", "ススム", ("晋",)), ("豊", "ユタカ", ("裕",)),
    ("明", "アキラ", ("彰", "晃")), ("勝", "マサル", ("優",)), ("徹", "トオル", ("亨",)), ("聡", "サトシ", ("智",)),
    ("大輔", "ダイスケ", ("大介",)), ("拓也", "タクヤ", ("卓也",)), ("健太", "ケンタ", ("健汰",)),
    ("陽翔", "ハルト", ("晴斗",)), ("悠真", "ユウマ", ("優真",)), ("朗", "アキラ", ("明",)),
    ("晴彦", "ハルヒコ", ("治彦",)), ("祐介", "ユウスケ", ("裕介", "雄介")), ("浩二", "コウジ", ("耕司", "孝二")),
)  # fmt: skip
FEMALE: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("祐子", "ユウコ", ("裕子", "優子")), ("花子", "ハナコ", ("華子",)), ("恵子", "ケイコ", ("啓子",)),
    ("久子", "ヒサコ", ("寿子",)), ("美代子", "ミヨコ", ("三代子",)), ("節子", "セツコ", ("節子",)),
    ("幸子", "サチコ", ("幸子",)), ("陽子", "ヨウコ", ("洋子", "葉子")), ("美穂", "ミホ", ("美保",)),
    ("智子", "トモコ", ("知子",)), ("直美", "ナオミ", ("尚美",)), ("美月", "ミツキ", ("美槻",)),
    ("結菜", "ユイナ", ("唯菜",)), ("杏", "アン", ("杏",)), ("京子", "キョウコ", ("恭子",)),
    ("和子", "カズコ", ("一子",)), ("洋子", "ヨウコ", ("陽子",)), ("順子", "ジュンコ", ("純子",)),
    ("由美", "ユミ", ("裕美",)), ("真由美", "マユミ", ("麻由美",)), ("明美", "アケミ", ("朱美",)),
    ("千代", "チヨ", ("千世",)), ("静江", "シズエ", ("静枝",)), ("芳子", "ヨシコ", ("良子", "好子")),
    ("さくら", "サクラ", ("桜",)), ("陽菜", "ヒナ", ("日菜",)), ("葵", "アオイ", ("碧",)),
    ("凛", "リン", ("鈴",)), ("愛", "アイ", ("藍",)), ("晴美", "ハルミ", ("春美",)), ("恵美", "エミ", ("絵美",)),
)  # fmt: skip
TOWNS = ("中央", "本町", "栄町", "東町", "西町", "港南", "若葉", "桜台", "緑が丘", "旭町", "松原", "青葉",
         "北町", "南町", "新町", "大通", "駅前", "城山", "川端", "宮前")  # fmt: skip
KANJI_DIGITS = "〇一二三四五六七八九"
COMPAT_IDEOGRAPHS = {"都": "\ufa26", "福": "\ufa1b", "神": "\ufa19", "隆": "\uf9dc", "晴": "\ufa12", "塚": "\ufa10",
                     "祐": "\ufa4f", "朗": "\uf929"}  # fmt: skip
IVS_BASES = "邉邊辺崎髙葛祇"
KINDS: tuple[tuple[str, int], ...] = (
    ("elderly_single", 20), ("elderly_couple", 14), ("p8050", 10), ("double_care", 7), ("young_carer", 5),
    ("family", 24), ("single_adult", 14), ("disabled_child", 4), ("twins", 2),
)  # fmt: skip
PAD_KINDS: tuple[tuple[str, int], ...] = (("single_adult", 30), ("elderly_single", 12), ("elderly_couple", 12),
                                          ("family", 40), ("couple", 6))  # fmt: skip


@dataclass(frozen=True)
class Options:
    """Identity variance: fractions (0..1) of the people concerned."""

    glyph_variants: float = 0.0
    changed_surnames: float = 0.0
    birth_slips: float = 0.0
    outside_registry: float = 0.0


@dataclass
class Person:
    pid: str
    family: str  # plain form, as agencies type it
    family_old: str | None  # 旧字体 form the registry may hold
    family_kana: str
    given: str
    given_kana: str
    homophones: tuple[str, ...]
    birth: date
    sex: int  # 1 male, 2 female
    rel: str  # 続柄 to the head as the registry writes it
    atena: str | None
    registry_family: str = ""  # the registry's spelling (old form / glyph variant / IVS)
    registry_given: str = ""
    maiden: str | None = None  # 旧氏 (reading is not kept: agencies that know her by it spell it)
    maiden_kana: str | None = None
    slip: date | None = None  # a keyed birth date agencies hold instead of the true one
    notes: str = ""  # 備考 a houkatsu 同居家族 entry gives


@dataclass
class Household:
    index: int
    number: str  # 世帯番号
    kind: str
    address: tuple[str, int, int, int]
    phone: str
    members: list[Person]
    registered: bool = True
    agencies: set[str] = field(default_factory=set)
    rng: random.Random | None = None  # the household's own stream, continued by the feed writers


def atena_for(index: int, member: int) -> str:
    return f"{1_000_000_000 + index * 8 + member:010d}"


def household_no(index: int) -> str:
    return f"{5_000_000_000 + index:010d}"


def pid_for(index: int, member: int) -> str:
    return f"P{index:08d}{member}"


def rng_for(seed: int, index: int) -> random.Random:
    return random.Random(seed * 1_000_003 + index)


def _randint(rng: random.Random, lo: int, hi: int) -> int:
    """``lo..hi`` inclusive; cheaper than ``Random.randint`` in the hot loop."""
    return lo + int(rng.random() * (hi - lo + 1))


def _pick(rng: random.Random, table: tuple[tuple[str, int], ...]) -> str:
    total = sum(w for _, w in table)
    x = int(rng.random() * total)
    for name, w in table:
        if x < w:
            return name
        x -= w
    return table[-1][0]


def _birth(rng: random.Random, age_lo: int, age_hi: int) -> date:
    return REFERENCE - timedelta(days=_randint(rng, age_lo * 365 + 1, age_hi * 365 + 300))


@lru_cache(maxsize=1)
def old_forms() -> dict[str, list[str]]:
    """Plain kanji → its old/variant forms, from the folding table the identity resolver uses."""
    path = Path(__file__).resolve().parents[2] / "schemas" / "data" / "kanji_variants.tsv"
    out: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) >= 2 and len(parts[0]) == 1 and len(parts[1]) == 1:
            out.setdefault(parts[1], []).append(parts[0])
    for v in out.values():
        v.sort()
    return out


def glyph_variant(rng: random.Random, text: str) -> str:
    """The name as a registry keeping 外字 may hold it: an old form, a compatibility ideograph or an IVS."""
    chars = list(text)
    for i, ch in enumerate(chars):
        if ch in COMPAT_IDEOGRAPHS and rng.random() < 0.8:
            chars[i] = COMPAT_IDEOGRAPHS[ch]
        elif ch in IVS_BASES and rng.random() < 0.5:
            chars[i] = ch + chr(0xE0100 + int(rng.random() * 2))
        elif ch in old_forms() and rng.random() < 0.6:
            chars[i] = rng.choice(old_forms()[ch])
    return "".join(chars)


class _Maker:
    def __init__(self, rng: random.Random, index: int, family: tuple[str, str | None, str]) -> None:
        self.rng, self.index, self.family = rng, index, family
        self.members: list[Person] = []
        self.used_given: set[str] = set()

    def add(self, rel: str, sex: int, age_lo: int, age_hi: int, *, birth: date | None = None,
            family: tuple[str, str | None, str] | None = None, notes: str = "") -> Person:
        rng = self.rng
        pool = MALE if sex == 1 else FEMALE
        for _ in range(20):
            given, gkana, homs = pool[int(rng.random() * len(pool))]
            if gkana not in self.used_given:
                break
        self.used_given.add(gkana)
        fam = family or self.family
        n = len(self.members)
        p = Person(pid=pid_for(self.index, n), family=fam[0], family_old=fam[1], family_kana=fam[2], given=given,
                   given_kana=gkana, homophones=homs, birth=birth or _birth(rng, age_lo, age_hi), sex=sex, rel=rel,
                   atena=atena_for(self.index, n), notes=notes)
        self.members.append(p)
        return p


def household(seed: int, index: int, opts: Options, *, padding: bool = False,
              rng: random.Random | None = None) -> Household:
    """Household ``index`` of ``seed``: its kind, members and the agencies that know it (none when ``padding``).

    Drawn from its own random stream seeded by (seed, index), or from ``rng`` when a caller streams
    a block of padding households from one stream (see :func:`padding_households`).
    """
    rng = rng or rng_for(seed, index)
    kind = _pick(rng, PAD_KINDS if padding else KINDS)
    fam = FAMILIES[int(rng.random() * len(FAMILIES))]
    m = _Maker(rng, index, fam)
    s = int(rng.random() * 2) + 1
    if kind == "elderly_single":
        m.add("世帯主", s, 70, 95)
    elif kind == "elderly_couple":
        m.add("世帯主", 1, 70, 92)
        m.add("妻", 2, 66, 90)
    elif kind == "p8050":
        m.add("世帯主", 2 if rng.random() < 0.6 else 1, 78, 93)
        m.add("子", s, 47, 60, notes=rng.choice(("ひきこもり", "無職", "ひきこもり", "障害")))
    elif kind == "double_care":
        m.add("世帯主", 1, 40, 52)
        m.add("妻", 2, 38, 50)
        m.add("母", 2, 75, 92, family=fam, notes="要介護")
        m.add("子", s, 2, 12)
    elif kind == "young_carer":
        m.add("世帯主", 2, 38, 52, notes="障害")
        m.add("子", s, 11, 17, notes="就学中")
        if rng.random() < 0.5:
            m.add("子", 3 - s, 5, 10)
    elif kind in ("family", "twins", "disabled_child"):
        m.add("世帯主", 1, 30, 48)
        m.add("妻", 2, 28, 46)
        first = m.add("子", s, 0, 16)
        if kind == "twins":
            m.add("子", 3 - s if rng.random() < 0.5 else s, 0, 0, birth=first.birth)
        elif rng.random() < 0.5:
            m.add("子", int(rng.random() * 2) + 1, 0, 16)
    elif kind == "couple":
        m.add("世帯主", 1, 25, 65)
        m.add("妻", 2, 25, 65)
    else:  # single_adult
        m.add("世帯主", s, 20, 64)
    hh = Household(index=index, number=household_no(index), kind=kind,
                   address=(TOWNS[int(rng.random() * len(TOWNS))], _randint(rng, 1, 5), _randint(rng, 1, 30),
                            _randint(rng, 1, 20)),
                   phone=f"0{_randint(rng, 10, 99)}-{_randint(rng, 100, 9999)}-{_randint(rng, 1000, 9999)}",
                   members=m.members)
    for p in hh.members:
        old = p.family_old if p.family_old and rng.random() < 0.4 else p.family
        p.registry_family, p.registry_given = old, p.given
        if opts.glyph_variants and rng.random() < opts.glyph_variants:
            p.registry_family = glyph_variant(rng, old)
            p.registry_given = glyph_variant(rng, p.given)
        if opts.birth_slips and rng.random() < opts.birth_slips:
            p.slip = _slip(rng, p.birth)
    hh.rng = rng
    if padding:
        return hh
    wife = next((p for p in hh.members if p.rel == "妻"), None)
    if wife is not None and opts.changed_surnames and rng.random() < opts.changed_surnames:
        maiden = FAMILIES[int(rng.random() * len(FAMILIES))]
        if maiden[2] != wife.family_kana:
            wife.maiden, wife.maiden_kana = maiden[0], maiden[2]
    if opts.outside_registry and rng.random() < opts.outside_registry:
        hh.registered = False
        for p in hh.members:
            p.atena = None
    hh.agencies = _agencies(rng, hh)
    return hh


PAD_BLOCK = 1024


def padding_households(seed: int, start: int, opts: Options) -> Iterator[Household]:
    """Registry-only households from index ``start`` on, one random stream per block of PAD_BLOCK indexes.

    Seeding a stream costs more than drawing a household, so blocks keep 2,000,000 residents fast;
    the households are still a pure function of (seed, index) as long as they are read in order
    from the block's start, which is how the generator reads them.
    """
    index = start
    rng = random.Random((seed * 1_000_003 + index) ^ 0xB10C)
    while True:
        if index % PAD_BLOCK == 0:
            rng = random.Random((seed * 1_000_003 + index) ^ 0xB10C)
        yield household(seed, index, opts, padding=True, rng=rng)
        index += 1


def _slip(rng: random.Random, d: date) -> date | None:
    if rng.random() < 0.5 and d.day <= 12 and d.day != d.month:
        return date(d.year, d.day, d.month)
    return d + timedelta(days=rng.choice((-1, 1)))


# the share of each kind's households each field's agency knows (realistic, not exhaustive)
COVERAGE: dict[str, dict[str, float]] = {
    "elderly_single": {"houkatsu": 0.55, "jiritsu": 0.05},
    "elderly_couple": {"houkatsu": 0.45},
    "p8050": {"houkatsu": 0.85, "jiritsu": 0.35, "shogai": 0.2},
    "double_care": {"houkatsu": 0.8, "kodomo": 0.7},
    "young_carer": {"kodomo": 0.85, "shogai": 0.6, "jiritsu": 0.2},
    "family": {"kodomo": 0.25, "jiritsu": 0.05},
    "twins": {"kodomo": 0.6},
    "disabled_child": {"kodomo": 0.7, "shogai": 0.8},
    "single_adult": {"jiritsu": 0.35, "shogai": 0.2},
}


def _agencies(rng: random.Random, hh: Household) -> set[str]:
    return {feed for feed, share in COVERAGE.get(hh.kind, {}).items() if rng.random() < share}


# -- spellings ---------------------------------------------------------------------------------


def agency_family(p: Person, rng: random.Random) -> str:
    if p.maiden and rng.random() < 0.8:
        return p.maiden
    if p.family_old and rng.random() < 0.15:
        return p.family_old
    return p.family


def agency_family_kana(p: Person, family: str) -> str:
    return p.maiden_kana if p.maiden and family == p.maiden and p.maiden_kana else p.family_kana


def agency_given(p: Person, rng: random.Random) -> str:
    if p.homophones and rng.random() < 0.02:
        return p.homophones[0]
    return p.given


def join_name(family: str, given: str, rng: random.Random) -> str:
    return family + rng.choice(("　", "　", " ", "")) + given


def half_kana(family_kana: str, given_kana: str, rng: random.Random) -> str:
    text = family_kana + rng.choice((" ", "", " ")) + given_kana
    if rng.random() < 0.2:  # older systems have no small kana
        text = text.translate(_LARGE)
    return jaconv.z2h(text, kana=True, ascii=False, digit=False)


_LARGE = str.maketrans("ァィゥェォャュョッ", "アイウエオヤユヨツ")


def full_kana(family_kana: str, given_kana: str, rng: random.Random) -> str:
    return family_kana + rng.choice(("　", "　", "")) + given_kana


def hira_kana(family_kana: str, given_kana: str, rng: random.Random) -> str:
    return jaconv.kata2hira(family_kana + rng.choice(("　", " ", "")) + given_kana)


_ERAS = (("R", "令和", date(2019, 5, 1)), ("H", "平成", date(1989, 1, 8)), ("S", "昭和", date(1926, 12, 25)),
         ("T", "大正", date(1912, 7, 30)))  # fmt: skip


def wareki(d: date, rng: random.Random) -> str:
    """``d`` in one of the 和暦 spellings the README lists (or 西暦, as some rows are)."""
    era = next((e for e in _ERAS if d >= e[2]), None)
    if era is None:
        return d.strftime("%Y/%m/%d")
    letter, kanji, start = era
    y = d.year - start.year + 1
    style = int(rng.random() * 6)
    if style == 0:
        return f"{letter}{y:02d}.{d.month:02d}.{d.day:02d}"
    if style == 1:
        return f"{letter}{y}.{d.month}.{d.day}"
    if style == 2:
        return f"{kanji}{'元' if y == 1 else y}年{d.month}月{d.day}日"
    if style == 3:
        return f"{kanji}{y}年{d.month}月{d.day}日"
    if style == 4:
        return f"{letter}{y}.{d.month:02d}.{d.day:02d}"
    return d.strftime("%Y/%m/%d")


def _kanji_number(n: int) -> str:
    return "".join(KANJI_DIGITS[int(c)] for c in str(n)) if n < 10 else str(n)


def registry_address(a: tuple[str, int, int, int]) -> str:
    town, chome, ban, go = a
    return f"{PREFECTURE}{CITY}{town}{chome}丁目{ban}番{go}号"


def agency_address(a: tuple[str, int, int, int], rng: random.Random) -> str:
    town, chome, ban, go = a
    style = int(rng.random() * 4)
    if style == 0:
        body = f"{town}{_kanji_number(chome)}丁目{ban}番{go}号"
    elif style == 1:
        body = f"{town}{chome}-{ban}-{go}"
    elif style == 2:
        body = unicodedata.normalize("NFKC", f"{town}") + f"{chome}-{ban}-{go}".translate(_FULL)
    else:
        body = f"{town}{chome}丁目{ban}番{go}号"
    prefix = rng.choice(("", "", CITY, PREFECTURE + CITY))
    return prefix + body


_FULL = str.maketrans("0123456789-", "０１２３４５６７８９－")


def agency_phone(phone: str, rng: random.Random) -> str:
    style = int(rng.random() * 4)
    if style == 0:
        return phone.replace("-", "")
    if style == 1:
        return phone.translate(_FULL)
    if style == 2:
        return ""
    return phone


def agency_birth(p: Person) -> date:
    return p.slip or p.birth
