"""Unit tests for schemas.normalize: comparable keys for names, readings, addresses, phones and sex."""

from __future__ import annotations

import ast
import re
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import schemas.normalize as normalize
from schemas.normalize import (
    KANJI_VARIANTS,
    address_key,
    fold_kanji,
    kana_key,
    name_agreement,
    name_key,
    nfkc_digits,
    phone_key,
    sex_from_label,
    split_name,
)

_FULL = str.maketrans({chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)} | {" ": "\u3000"})


def full_width(text: str) -> str:
    return text.translate(_FULL)


# --- nfkc_digits -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("０７３－５１８１－８２４１", "073-5181-8241"),
        ("ＡＢＣ１２３ａｂｃ", "ABC123abc"),
        ("Ｓ１９．５．３", "S19.5.3"),
        ("１\u2010２\u2011３\u2012４\u2013５\u2212６\ufe63７", "1-2-3-4-5-6-7"),
        ("１ー２ー３", "1-2-3"),  # long-vowel mark typed as a dash between digits
        ("1ｰ2", "1-2"),
        ("1―2─3", "1-2-3"),
        ("ユーコ", "ユーコ"),  # long-vowel mark inside kana stays
        ("ｼﾞｮｰｼﾞ", "ｼﾞｮｰｼﾞ"),
        ("ー1", "ー1"),  # not between two digits
        ("1ーア", "1ーア"),
        ("加藤\u3000正", "加藤 正"),
        ("髙橋", "髙橋"),  # kanji untouched
        ("\uf9dc", "\uf9dc"),  # CJK compatibility ideograph untouched (NFKC would change it)
        ("ﾀｶﾊｼ", "ﾀｶﾊｼ"),  # half-width kana untouched
    ],
)
def test_nfkc_digits_narrows_ascii_and_unifies_dashes(text: str, expected: str) -> None:
    """Full-width ASCII and dash variants become ASCII, but kana (including ー inside kana) and kanji stay."""
    assert nfkc_digits(text) == expected


@given(st.text())
def test_nfkc_digits_is_idempotent(text: str) -> None:
    """Applying nfkc_digits twice changes nothing more than applying it once."""
    assert nfkc_digits(nfkc_digits(text)) == nfkc_digits(text)


# --- kana_key ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variants",
    [
        [
            "ﾀｶﾊｼ ﾖｼｵ",
            "ﾀｶﾊｼﾖｼｵ",
            "タカハシ　ヨシオ",
            "タカハシ ヨシオ",
            "タカハシヨシオ",
            "たかはし　よしお",
            "たかはしよしお",
        ],
        ["ｼﾖｳｼﾞ", "ｼｮｳｼﾞ", "ショウジ", "シヨウジ", "しょうじ", "しようじ"],
        ["ﾁﾊﾞ ﾖｼｵ", "チバ　ヨシオ", "ちば よしお"],
        ["ｽｽﾞｷ ｼｮｳｼﾞ", "ｽｽﾞｷｼｮｳｼﾞ", "スズキ　ショウジ"],
        ["ﾊﾟﾝ", "パン", "ぱん", "ハ゜ン", "ハ\u309aン"],
        ["ｶﾞｯｺｳ", "ガッコウ", "カ゛ツコウ", "か\u3099っこう"],
        ["ｷｬﾘｰ", "キャリー", "キヤリー", "きゃりー"],
        ["ジョン・スミス", "ｼﾞｮﾝ･ｽﾐｽ", "じょん すみす"],
        ["ヴァイオリン", "ｳﾞｧｲｵﾘﾝ", "ゔぁいおりん"],
        ["ケイコ", "ヶイコ", "ゖいこ"],
        ["サイキ\u3000トモコ", "サイキトモコ", "ｻｲｷ ﾄﾓｺ", " サイキ  トモコ "],
    ],
)
def test_kana_key_maps_every_reading_spelling_to_one_key(variants: list[str]) -> None:
    """Half-width, full-width and hiragana readings, with any spacing and with or without small kana, compare equal."""
    keys = {kana_key(v) for v in variants}
    assert len(keys) == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ﾀｶﾊｼ ﾖｼｵ", "タカハシヨシオ"),
        ("ｼﾖｳｼﾞ", "シヨウジ"),
        ("ショウジ", "シヨウジ"),
        ("ｶﾞ", "ガ"),
        ("ﾊﾟ", "パ"),
        ("ゆーこ", "ユーコ"),
        ("ァィゥェォッャュョヮヵヶ", "アイウエオツヤユヨワカケ"),
        ("ぁぃぅぇぉっゃゅょゎゕゖ", "アイウエオツヤユヨワカケ"),
        ("", ""),
    ],
)
def test_kana_key_produces_full_width_katakana_without_small_kana(text: str, expected: str) -> None:
    """The key is full-width katakana, with dakuten combined, small kana folded and the long-vowel mark kept."""
    assert kana_key(text) == expected


def test_kana_key_distinguishes_different_readings() -> None:
    """Readings that differ in more than width, script, spacing or kana size keep different keys."""
    assert kana_key("サイトウ") != kana_key("サイキ")
    assert kana_key("カ") != kana_key("ガ")
    assert kana_key("ハ") != kana_key("パ")
    assert kana_key("ユーコ") != kana_key("ユウコ")


@given(st.text())
def test_kana_key_is_idempotent(text: str) -> None:
    """kana_key(kana_key(x)) == kana_key(x) for any text."""
    once = kana_key(text)
    assert kana_key(once) == once


KANA = "".join(chr(c) for c in range(0x3041, 0x3097)) + "".join(chr(c) for c in range(0x30A1, 0x30FB)) + "ー"
HALF_KANA = "".join(chr(c) for c in range(0xFF66, 0xFF9E)) + "ﾞﾟ"


@given(st.text(alphabet=KANA + HALF_KANA + " \u3000", max_size=30))
def test_kana_key_output_has_no_spaces_small_kana_hiragana_or_half_width(text: str) -> None:
    """For any kana text the key contains only large full-width katakana, ー and unvoiceable marks."""
    key = kana_key(text)
    assert not re.search(r"[\s\u3041-\u309f\uff61-\uff9fァィゥェォッャュョヮヵヶ]", re.sub("[\u3099\u309a]", "", key))


@given(st.text(alphabet=KANA + "ー", max_size=20))
def test_kana_key_agrees_for_hiragana_and_katakana(text: str) -> None:
    """A reading in hiragana and the same reading in katakana give the same key."""
    katakana = "".join(chr(ord(c) + 0x60) if "\u3041" <= c <= "\u3096" else c for c in text)
    assert kana_key(text) == kana_key(katakana)


# --- split_name and name_key -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("加藤\u3000正", ("加藤", "正")),
        ("加藤 正", ("加藤", "正")),
        ("加藤 \u3000 正", ("加藤", "正")),
        ("\u3000加藤\u3000正\u3000", ("加藤", "正")),
        ("加藤正", ("加藤正", None)),
        ("  加藤正 ", ("加藤正", None)),
        ("佐々木\u3000直美", ("佐々木", "直美")),
        ("大塚\u3000ハル", ("大塚", "ハル")),
        ("ﾀｶﾊｼ ﾖｼｵ", ("ﾀｶﾊｼ", "ﾖｼｵ")),
        ("スミス　ジョン ポール", ("スミス", "ジョン ポール")),
        ("", ("", None)),
        ("\u3000", ("", None)),
    ],
)
def test_split_name_splits_on_first_space_of_either_width(text: str, expected: tuple[str, str | None]) -> None:
    """The first run of full- or half-width spaces separates family from given name; no space gives (whole, None)."""
    assert split_name(text) == expected


@pytest.mark.parametrize(
    ("variants", "expected"),
    [
        (["加藤\u3000正", "加藤 正", "加藤正", " 加藤 \u3000正 "], "加藤正"),
        (["大塚\u3000ハル", "大塚ﾊﾙ", "大塚 ﾊﾙ"], "大塚ハル"),
        (["ＪＯＨＮ　ＳＭＩＴＨ", "JOHN SMITH"], "JOHNSMITH"),
        (["髙橋\u3000正", "髙橋正"], "髙橋正"),
    ],
)
def test_name_key_removes_spaces_and_unifies_widths(variants: list[str], expected: str) -> None:
    """Names written with a full-width space, a half-width space or none give the same key."""
    assert {name_key(v) for v in variants} == {expected}


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("髙橋\u3000正", "高橋\u3000正"),
        ("齊木\u3000智子", "斉木\u3000智子"),
        ("斎藤\u3000裕子", "斉藤\u3000裕子"),
        ("山﨑\u3000健一", "山崎\u3000健一"),
        ("大塚\u3000ハル", "大塚\u3000はる"),
        ("杉本\u3000裕子", "杉本\u3000祐子"),
    ],
)
def test_name_key_keeps_kanji_variants_and_scripts_distinct(a: str, b: str) -> None:
    """name_key never folds kanji variants, homophones or hiragana/katakana: those are different legal names."""
    assert name_key(a) != name_key(b)


@pytest.mark.parametrize(
    ("char", "unified"),
    [("\uf9dc", "隆"), ("\ufa10", "塚"), ("\uf91d", "欄"), ("\ufa26", "都"), ("\U0002f800", "丽")],
)
def test_name_key_maps_compatibility_ideographs_to_their_unified_ideograph(char: str, unified: str) -> None:
    """A CJK compatibility ideograph keys as the unified ideograph it is canonically equal to (NFC)."""
    assert name_key(f"{char}田 太郎") == f"{unified}田太郎"
    assert name_key(f"{char}田 太郎") == name_key(f"{unified}田 太郎")


def test_name_key_keeps_the_unified_ideographs_of_the_compatibility_block() -> None:
    """﨑 U+FA11 is a unified ideograph without decomposition: the exact key keeps it (folding maps it to 崎)."""
    assert name_key("山\ufa11 健一") == "山\ufa11健一"
    assert fold_kanji(name_key("山\ufa11 健一")) == "山崎健一"


@pytest.mark.parametrize("selector", ["\ufe00", "\ufe0f", "\U000e0100", "\U000e0110", "\U000e01ef"])
def test_name_key_drops_variation_selectors(selector: str) -> None:
    """An ideographic variation sequence keys as its base character (渡邉+VS = 渡邉), and folds with it."""
    assert name_key(f"渡邉{selector}　一郎") == "渡邉一郎"
    assert fold_kanji(name_key(f"渡邉{selector} 一郎")) == fold_kanji(name_key("渡辺 一郎")) == "渡辺一郎"


@given(st.text())
def test_name_key_is_idempotent_and_spaceless(text: str) -> None:
    """name_key output has no whitespace and is a fixed point of name_key."""
    key = name_key(text)
    assert not re.search(r"\s", key)
    assert name_key(key) == key


# --- kanji variants ----------------------------------------------------------------------------

REQUIRED_VARIANTS = {
    "髙": "高", "﨑": "崎", "邊": "辺", "邉": "辺", "澤": "沢", "濱": "浜", "廣": "広", "國": "国", "嶋": "島",
    "櫻": "桜", "齋": "斎", "齊": "斉", "德": "徳", "惠": "恵", "壽": "寿", "榮": "栄", "藏": "蔵", "實": "実",
    "淺": "浅", "眞": "真", "瀧": "滝", "豐": "豊", "戶": "戸", "冨": "富", "舘": "館", "槇": "槙", "嵜": "崎",
    "峯": "峰", "條": "条", "邨": "村", "冩": "写", "繪": "絵", "彌": "弥", "與": "与", "莊": "荘", "團": "団",
    "會": "会", "驛": "駅", "聰": "聡", "曻": "昇", "靜": "静", "淸": "清", "增": "増",
}  # fmt: skip


@pytest.mark.parametrize(("old", "common"), sorted(REQUIRED_VARIANTS.items()))
def test_kanji_variants_contain_the_common_name_variants(old: str, common: str) -> None:
    """Each 旧字体/異体字 the feeds use folds to its common form."""
    assert KANJI_VARIANTS[old] == common
    assert fold_kanji(old) == common


def test_kanji_variants_table_is_large_and_well_formed() -> None:
    """The table has at least 44 pairs, each of two different single characters, and is never its own input."""
    assert len(KANJI_VARIANTS) >= 44
    for old, common in KANJI_VARIANTS.items():
        assert len(old) == 1 and len(common) == 1 and old != common
    assert not set(KANJI_VARIANTS) & set(KANJI_VARIANTS.values()), "folding must be idempotent"


def test_kanji_variants_keep_distinct_characters_apart() -> None:
    """斎 and 斉 (distinct legal names), 部 and 辺, and 人名用漢字 in their own right (堺/界, 李/梅, 耀/輝,
    which KANJIDIC2 lists as variants) are never folded together; 常用漢字 are never folded at all."""
    assert fold_kanji("斎藤") != fold_kanji("斉藤")
    assert fold_kanji("齋藤") == "斎藤"
    assert fold_kanji("齊藤") == "斉藤"
    assert fold_kanji("渡部") != fold_kanji("渡邊")
    for a, b in [("堺", "界"), ("李", "梅"), ("耀", "輝"), ("云", "言")]:
        assert fold_kanji(a) != fold_kanji(b)
    for ch in "斎斉竜部堺李耀云":
        assert ch not in KANJI_VARIANTS
    assert not set(KANJI_VARIANTS) & set(KANJI_VARIANTS.values())  # one step: folding is idempotent


def test_legal_variant_pairs_fold_but_stay_distinguishable_for_scoring() -> None:
    """龍 is the 人名用 異体字 of 竜 (別表第二(二)): they fold together for finding, but name_agreement says
    "folded", never "exact"; 斎藤/斉藤 say "differ"."""
    assert fold_kanji("龍也") == fold_kanji("竜也")
    assert name_agreement(name_key("龍也"), name_key("竜也")) == "folded"
    assert name_agreement(name_key("齋藤"), name_key("斎藤")) == "folded"
    assert name_agreement(name_key("斎藤"), name_key("斉藤")) == "differ"
    assert name_agreement(name_key("\ufa26築"), name_key("都築")) == "exact"


def test_kanji_variants_mapping_is_read_only() -> None:
    """KANJI_VARIANTS cannot be modified by a caller."""
    with pytest.raises(TypeError):
        KANJI_VARIANTS["X"] = "Y"  # type: ignore[index]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("渡邊\u3000直美", "渡辺\u3000直美"),
        ("渡邉勇", "渡辺勇"),
        ("髙橋\u3000正", "高橋\u3000正"),
        ("齊木\u3000德治", "斉木\u3000徳治"),
        ("山﨑\u3000さくら", "山崎\u3000さくら"),
        ("廣田\u3000紬", "広田\u3000紬"),
        ("濱田\u3000義雄", "浜田\u3000義雄"),
        ("小嶋\u3000清", "小島\u3000清"),
        ("橋本\u3000櫻子", "橋本\u3000桜子"),
        ("松本\u3000惠美", "松本\u3000恵美"),
        ("𠮷田", "吉田"),
        ("佐藤\u3000花子", "佐藤\u3000花子"),
    ],
)
def test_fold_kanji_folds_sample_names_for_candidate_lookup(text: str, expected: str) -> None:
    """Names spelled with 旧字体 in one feed fold to the plain spelling used in another (samples)."""
    assert fold_kanji(text) == expected


def test_fold_kanji_docstring_warns_it_is_not_identity() -> None:
    """fold_kanji documents that a folded match is never proof of identity (斎藤 vs 斉藤)."""
    doc = fold_kanji.__doc__ or ""
    assert "never proof of identity" in doc
    assert "斎藤" in doc and "斉藤" in doc


@given(st.text())
def test_fold_kanji_is_idempotent(text: str) -> None:
    """Folding twice gives the same result as folding once."""
    assert fold_kanji(fold_kanji(text)) == fold_kanji(text)


# --- address_key -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "中央一丁目2番3号",
        "中央1-2-3",
        "中央１－２－３",
        "中央１‐２‐３",
        "中央1−2−3",
        "中央１ー２ー３",
        "中央1丁目2番3号",
        "中央1丁目2番地3",
        "中央一丁目二番三号",
        "中央一丁目２番３号",
        "中央 1 - 2 - 3",
        "さくら県みなと市中央1丁目2番3号",
        "さくら県みなと市中央一丁目2番3号",
        "さくら県\u3000みなと市\u3000中央１－２－３",
        "中央1-2-3号",
    ],
)
def test_address_key_unifies_spellings_of_one_address(text: str) -> None:
    """丁目/番/号 or dash spellings, kanji or full-width numbers, with or without prefecture and city: 中央1-2-3."""
    assert address_key(text) == "中央1-2-3"


@pytest.mark.parametrize(
    ("text", "prefixes"),
    [
        ("みなと市中央一丁目２番３号", ["さくら県", "みなと市"]),
        ("さくら県みなと市中央一丁目２番３号", ["さくら県", "みなと市"]),
        ("みなと市中央1-2-3", ["みなと市"]),
        ("みなと市\u3000中央1-2-3", ["みなと市"]),
        ("みなと市中央1-2-3", ["ｻｸﾗ県", "みなと市"]),
        ("中央1-2-3", ["さくら県", "みなと市"]),
    ],
)
def test_address_key_strips_known_prefixes(text: str, prefixes: list[str]) -> None:
    """Prefixes passed in known_prefixes are removed even without a prefecture in front of them."""
    assert address_key(text, known_prefixes=prefixes) == "中央1-2-3"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("さくら県みなと市栄町4丁目21番2号", "栄町4-21-2"),
        ("栄町4丁目21番2号", "栄町4-21-2"),
        ("栄町４－２１－２", "栄町4-21-2"),
        ("みなと市中央1-2-3", "みなと市中央1-2-3"),  # no prefecture, no known prefix: city kept
        ("東京都新宿区西新宿二丁目8番1号", "西新宿2-8-1"),
        ("神奈川県横浜市中区山下町1番地の2", "山下町1-2"),
        ("三重県四日市市諏訪町1番5号", "諏訪町1-5"),
        ("東京都町田市中町一丁目20番23号", "中町1-20-23"),
        ("長野県北安曇郡白馬村北城1-2", "北城1-2"),
        ("北海道札幌市中央区北一条西二丁目1番地", "北一条西2-1"),
        ("東京都千代田区五番町12-3", "五番町12-3"),  # 番町 is a place name, not a block number
        ("本町二十三番地", "本町23"),
        ("若葉二十三番地の四", "若葉23-4"),
        ("中央一丁目", "中央1"),
        ("中央二丁目三", "中央2-3"),
        ("中央1番千代田ビル", "中央1番千代田ビル"),
        ("中央1号ー2", "中央1-2"),  # removing 号 makes ー a dash between digits
        ("中央 1 ー 2 ー 3", "中央1-2-3"),
        ("中央1丁目2番", "中央1-2"),
        ("中央十丁目百五番", "中央10-105"),
        ("中央1-2-3 みなとハイツ101号室", "中央1-2-3みなとハイツ101号室"),
        ("さくら県", "さくら県"),  # nothing after the prefecture: nothing stripped
    ],
)
def test_address_key_examples(text: str, expected: str) -> None:
    """Prefecture and city are stripped only when a prefecture is present; town names like 栄町 and 番町 stay."""
    assert address_key(text) == expected


@pytest.mark.parametrize(
    "spellings",
    [
        # the same address as it appears in registry, houkatsu, jiritsu and shogai samples
        ["さくら県みなと市中央2丁目2番18号", "さくら県みなと市中央２－２－１８"],
        [
            "さくら県みなと市桜台1丁目11番8号",
            "さくら県みなと市桜台1-11-8",
            "桜台１－１１－８",
            "さくら県みなと市桜台一丁目11番8号",
        ],
        ["さくら県みなと市若葉4丁目10番19号", "若葉4-10-19", "さくら県みなと市若葉四丁目10番19号"],
        ["さくら県みなと市松原3丁目24番9号", "松原3-24-9", "さくら県みなと市松原３－２４－９"],
        [
            "さくら県みなと市栄町5丁目13番11号",
            "栄町5-13-11",
            "さくら県みなと市栄町五丁目13番11号",
            "栄町五丁目13番11号",
        ],
        ["さくら県みなと市中央4丁目6番6号", "中央四丁目6番6号", "中央４－６－６", "さくら県みなと市中央４－６－６"],
        ["さくら県みなと市緑が丘2丁目13番12号", "緑が丘2-13-12", "緑が丘２－１３－１２"],
        ["さくら県みなと市港南5丁目2番4号", "さくら県みなと市港南五丁目2番4号"],
    ],
)
def test_address_key_matches_sample_addresses_across_feeds(spellings: list[str]) -> None:
    """Addresses of one place as spelled by the different sample feeds yield one key."""
    assert len({address_key(s) for s in spellings}) == 1


def test_address_key_keeps_different_addresses_apart() -> None:
    """Different towns or numbers keep different keys (twins share an address, neighbours do not)."""
    assert address_key("中央1-2-3") != address_key("中央1-2-4")
    assert address_key("中央1-2-3") != address_key("本町1-2-3")
    assert address_key("中央1-2-3") != address_key("中央1-23")
    assert address_key("中央一丁目2番3号") != address_key("中央二丁目2番3号")


TOWNS = ["中央", "栄町", "本町", "緑が丘", "五番町", "北一条西", "若葉", "みなと"]
PREFIXES = ["", "さくら県みなと市", "東京都新宿区", "さくら県みなと郡うみ町", "神奈川県横浜市中区", "みなと市"]
KANJI_NUMBERS = ["一", "二", "三", "四", "五", "六", "七", "八", "九", "十", "十一", "二十三", "百五"]


@st.composite
def addresses(draw: st.DrawFn) -> str:
    number = st.one_of(st.integers(1, 200).map(str), st.sampled_from(KANJI_NUMBERS))
    n1, n2, n3 = draw(number), draw(number), draw(number)
    body = draw(
        st.sampled_from(
            [
                f"{n1}丁目{n2}番{n3}号",
                f"{n1}丁目{n2}番地{n3}",
                f"{n1}-{n2}-{n3}",
                f"{n1}－{n2}－{n3}",
                f"{n1}番地の{n2}",
                f"{n1}丁目",
                f"{n1}番{n2}号",
            ]
        )
    )
    text = draw(st.sampled_from(PREFIXES)) + draw(st.sampled_from(TOWNS)) + body
    if draw(st.booleans()):
        text = full_width(text)
    return text


@given(addresses())
def test_address_key_is_idempotent_on_addresses(text: str) -> None:
    """address_key(address_key(a)) == address_key(a) for generated addresses in every spelling."""
    once = address_key(text)
    assert address_key(once) == once


@given(addresses())
def test_address_key_output_is_narrow_and_spaceless(text: str) -> None:
    """The key never contains spaces, full-width digits, dash variants or 丁目/番地 between numbers."""
    key = address_key(text)
    assert not re.search(r"[\s０-９－‐−]", key)
    assert not re.search(r"[0-9](丁目|番地|番|号)[0-9]", key)


@given(st.text(max_size=40))
def test_address_key_is_idempotent_on_any_text(text: str) -> None:
    """Even on arbitrary text, address_key is a fixed point after one application."""
    once = address_key(text)
    assert address_key(once) == once


def to_kanji_number(n: int) -> str:
    digits = "〇一二三四五六七八九"
    out = ""
    for value, unit in ((1000, "千"), (100, "百"), (10, "十")):
        q, n = divmod(n, value)
        if q:
            out += ("" if q == 1 else digits[q]) + unit
    return out + (digits[n] if n else "")


@given(st.integers(1, 9999))
def test_address_key_reads_kanji_numbers(n: int) -> None:
    """Any kanji number written with 十/百/千 as a block number becomes the arabic number."""
    assert address_key(f"中央{to_kanji_number(n)}番") == f"中央{n}"


# --- phone_key ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("073-5181-8241", "07351818241"),
        ("07351818241", "07351818241"),
        ("０７３－５１８１－８２４１", "07351818241"),
        ("(073) 5181 8241", "07351818241"),
        ("073‐5181‐8241", "07351818241"),
        ("０７３ー５１８１ー８２４１", "07351818241"),
        ("", None),
        ("   ", None),
        ("なし", None),
        (None, None),
    ],
)
def test_phone_key_keeps_only_digits(text: str | None, expected: str | None) -> None:
    """Phone numbers with or without hyphens, in either width, compare by their digits; no digits gives None."""
    assert phone_key(text) == expected


@given(st.text())
def test_phone_key_is_digits_or_none(text: str) -> None:
    """phone_key returns None or a non-empty string of ASCII digits, and is stable when re-applied."""
    key = phone_key(text)
    if key is not None:
        assert re.fullmatch(r"[0-9]+", key)
        assert phone_key(key) == key


# --- sex_from_label ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("男", "male"),
        ("男性", "male"),
        ("1", "male"),
        ("１", "male"),
        (1, "male"),
        ("女", "female"),
        ("女性", "female"),
        ("2", "female"),
        (2, "female"),
        ("9", "unknown"),
        (9, "unknown"),
        ("回答しない", "not_stated"),
        (" 女性 ", "female"),
    ],
)
def test_sex_from_label_reads_every_feed_code(label: str | int, expected: str) -> None:
    """Each feed's sex label (houkatsu 男/女, jiritsu 男性/女性/回答しない, registry and shogai 1/2/9) is understood."""
    assert sex_from_label(label) == expected


@pytest.mark.parametrize("label", ["7", 7, "", "M", "F", "不明", "0", "男女", True])
def test_sex_from_label_rejects_unknown_codes_without_echoing(label: str | int) -> None:
    """An unknown code (shogai's planted 7 among them) raises ValueError("unknown sex code") without the input."""
    with pytest.raises(ValueError) as info:
        sex_from_label(label)
    assert str(info.value) == "unknown sex code"


# --- module contract ---------------------------------------------------------------------------


def test_normalize_imports_only_stdlib_and_jaconv() -> None:
    """schemas.normalize imports only the standard library, jaconv and schemas.digits (importlib only to
    read its own committed variant table), nothing outside schemas."""
    source = Path(__file__).resolve().parents[2] / "schemas" / "normalize.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    imported = {
        (node.module or "").split(".")[0] if isinstance(node, ast.ImportFrom) else alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"__future__", "re", "unicodedata", "collections", "importlib", "types", "typing", "jaconv",
                        "schemas"}
    assert {m for m in modules if m and m.startswith("schemas")} <= {"schemas.digits"}


def test_module_docstring_explains_library_choice() -> None:
    """The module docstring says why jaconv is used and why neologdn and mojimoji are not."""
    doc = normalize.__doc__ or ""
    assert "jaconv" in doc and "neologdn" in doc and "mojimoji" in doc
    assert "space" in doc


def test_kana_key_never_uses_nfc_on_kanji() -> None:
    """kana_key leaves CJK compatibility ideographs alone (only kana marks are composed)."""
    assert kana_key("\uf9dc") == "\uf9dc"
    assert unicodedata.normalize("NFC", "\uf9dc") != "\uf9dc"
