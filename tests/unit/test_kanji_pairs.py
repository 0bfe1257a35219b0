"""Public kanji pair lists fold together in candidate keys; 外字 (private use) never equal another character."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.normalize import (
    KANJI_VARIANTS,
    canonical_name,
    fold_kanji,
    has_private_use,
    name_agreement,
    name_key,
    parse_private_use_map,
)

PAIRS = Path(__file__).resolve().parents[1] / "data" / "kanji_pairs"
LISTS = ["jinmeiyo_beppyo2_itaiji", "joyo_kyujitai", "compat_ideographs", "ivs", "name_variants"]


def _pairs(name: str) -> list[tuple[str, str]]:
    out = []
    for line in (PAIRS / f"{name}.tsv").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            a, b = line.split("\t")[:2]
            out.append((a, b))
    return out


def _key(text: str) -> str:
    return fold_kanji(name_key(text))


@pytest.mark.parametrize("name", LISTS)
def test_public_pair_list_folds_together(name: str) -> None:
    """At least 95% of each public pair list gets one candidate key per pair; the misses are printed."""
    pairs = _pairs(name)
    misses = [(a, b, f"U+{ord(a[0]):04X}") for a, b in pairs if _key(a) != _key(b)]
    rate = 1 - len(misses) / len(pairs)
    print(f"{name}: {len(pairs) - len(misses)}/{len(pairs)} fold together ({rate:.1%}); misses: {misses}")
    assert len(pairs) >= 30
    assert rate >= 0.95, misses


def test_all_public_pair_lists_fold_together_overall() -> None:
    """Over every list together at least 95% of the name-relevant pairs fold together."""
    pairs = [p for name in LISTS for p in _pairs(name)]
    folded = sum(_key(a) == _key(b) for a, b in pairs)
    print(f"all lists: {folded}/{len(pairs)} ({folded / len(pairs):.1%})")
    assert folded / len(pairs) >= 0.95


def test_pair_lists_stay_apart_in_the_exact_key_where_the_characters_differ() -> None:
    """Folding is for finding only: a 旧字体 and its 常用 form are 'folded', never 'exact', in scoring."""
    for a, b in _pairs("jinmeiyo_beppyo2_itaiji"):
        if canonical_name(a) != canonical_name(b):
            assert name_agreement(name_key(a), name_key(b)) in ("folded", "differ")


def test_compatibility_ideographs_and_variation_sequences_are_exact_matches() -> None:
    """Canonically equal characters and variation sequences score as the exact name, not a fold."""
    for a, b in _pairs("compat_ideographs"):
        assert name_agreement(name_key(a), name_key(b)) == "exact"
    assert name_agreement(name_key("渡邉\U000e0110"), name_key("渡邉")) == "exact"
    assert name_agreement(name_key("葛\U000e0100西"), name_key("葛西")) == "exact"


def test_folding_table_is_one_step_and_never_folds_a_joyo_pair_together() -> None:
    """No folded form is itself folded again, and the distinct legal names 斎/斉 keep distinct keys."""
    assert not set(KANJI_VARIANTS) & set(KANJI_VARIANTS.values())
    assert _key("斎藤") != _key("斉藤")
    assert _key("齋藤") == _key("斎藤") and _key("齊藤") == _key("斉藤")


def test_raw_name_keeps_what_the_key_drops() -> None:
    """The key drops variation selectors and NFC-maps compatibility ideographs; the input string is untouched."""
    raw = "渡邉\U000e0110\u3000\ufa1b子"
    assert name_key(raw) == "渡邉福子"
    assert raw == "渡邉\U000e0110\u3000\ufa1b子"


# --- 外字 (private-use characters) -------------------------------------------------------------


def test_unmapped_private_use_character_never_equals_another_character() -> None:
    """An unmapped 外字 stays in both keys: it neither equals the standard kanji nor disappears."""
    gaiji = "\ue001橋 義雄"
    assert name_key(gaiji) == "\ue001橋義雄"
    assert _key(gaiji) != _key("高橋 義雄")
    assert _key(gaiji) != _key("橋 義雄")
    assert has_private_use(name_key(gaiji))


def test_unmapped_private_use_character_contributes_nothing_to_name_agreement() -> None:
    """Names equal except at a 外字 position are 'private_use' (neither confirmed nor broken), never exact."""
    assert name_agreement(name_key("\ue001橋 義雄"), name_key("髙橋 義雄")) == "private_use"
    assert name_agreement(name_key("\ue001橋 義雄"), name_key("\ue001橋 義雄")) == "private_use"
    assert name_agreement(name_key("\ue001橋 義雄"), name_key("高田 義雄")) == "differ"
    assert name_agreement(name_key("\ue001橋"), name_key("髙橋 義雄")) == "differ"
    assert name_agreement("\ue001", "高") == "differ"  # nothing else to agree on: no evidence at all


def test_municipality_private_use_map_maps_gaiji_to_standard_characters() -> None:
    """With the municipality's 外字 table the registry's code becomes the character it stands for."""
    table = parse_private_use_map("# 外字表\nU+E001\t髙\n\ue002\t邉\U000e0110  # 渡邉 glyph\n")
    assert name_key("\ue001橋 義雄", table) == "髙橋義雄"
    assert name_key("渡\ue002 一郎", table) == "渡邉一郎"
    assert fold_kanji("\ue001橋", table) == "高橋"
    assert name_key("\ue003橋", table) == "\ue003橋"  # not in the table: kept


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("U+E001", "expected code<TAB>character"),
        ("U+4E00\t一", "not a private-use character"),
        ("髙\t高", "not a private-use character"),
        ("U+E001\t\ue002", "must be standard"),
        ("U+E001\t髙\nU+E001\t高", "code given twice"),
    ],
)
def test_private_use_map_rejects_malformed_lines_with_a_reason(text: str, problem: str) -> None:
    """A malformed 外字 table is rejected with the line's problem, never half applied."""
    with pytest.raises(ValueError, match=problem):
        parse_private_use_map(text)


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20))
def test_name_key_and_fold_are_idempotent_on_any_text(text: str) -> None:
    """Keys are fixed points: keying a key changes nothing (NFC, selectors, folding are one step)."""
    k = name_key(text)
    assert name_key(k) == k
    assert fold_kanji(fold_kanji(k)) == fold_kanji(k)


@given(st.text(alphabet=st.characters(min_codepoint=0xE000, max_codepoint=0xF8FF), min_size=1, max_size=3),
       st.sampled_from(["高", "崎", "辺", "斎", "吉"]))
def test_private_use_never_folds_to_a_standard_kanji(gaiji: str, kanji: str) -> None:
    """No private-use character, alone or in a run, keys or folds equal to a standard kanji."""
    assert _key(gaiji) != _key(kanji)
    assert name_agreement(name_key(gaiji), name_key(kanji)) != "exact"
