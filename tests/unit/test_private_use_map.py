"""A municipality's 外字 table from the settings: installed at start-up, used by every matching key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.bootstrap import ConfigError, install_private_use_map
from hub.settings import Settings
from schemas.normalize import fold_kanji, name_agreement, name_key

GAIJI = "\ue001"  # a registry's private-use code for 髙


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    yield
    install_private_use_map(Settings(private_use_map=""))


def test_without_a_table_a_private_use_character_equals_nothing() -> None:
    """With no table, 外字 stays itself: it never equals 髙 or 高, and neither confirms nor breaks a name."""
    install_private_use_map(Settings(private_use_map=""))
    assert name_key(GAIJI + "橋") != name_key("髙橋")
    assert name_agreement(name_key(GAIJI + "橋"), name_key("高橋")) == "private_use"


def test_the_configured_table_maps_the_code_in_every_key(tmp_path: Path) -> None:
    """TSUNAGU_PRIVATE_USE_MAP names the table; keys then read the 外字 as the standard character it stands for."""
    table = tmp_path / "gaiji.tsv"
    table.write_text("# 外字 table\nU+E001\t髙\n", encoding="utf-8")
    install_private_use_map(Settings(private_use_map=str(table)))
    assert name_key(GAIJI + "橋") == name_key("髙橋")
    assert fold_kanji(GAIJI + "橋") == fold_kanji("高橋")
    assert name_agreement(name_key(GAIJI + "橋"), name_key("髙橋")) == "exact"


@pytest.mark.parametrize("content", [b"U+E001\n", b"\xff\xfe", b"U+0041\tA\n"])
def test_an_unusable_table_is_a_one_line_error(tmp_path: Path, content: bytes) -> None:
    """A malformed, undecodable or non-private-use table is refused with one line naming the setting."""
    table = tmp_path / "gaiji.tsv"
    table.write_bytes(content)
    with pytest.raises(ConfigError, match=r"^TSUNAGU_PRIVATE_USE_MAP: ") as info:
        install_private_use_map(Settings(private_use_map=str(table)))
    assert "\n" not in str(info.value)


def test_a_missing_table_is_a_one_line_error(tmp_path: Path) -> None:
    """A table path that does not exist is refused before anything starts."""
    with pytest.raises(ConfigError, match="cannot read"):
        install_private_use_map(Settings(private_use_map=str(tmp_path / "none.tsv")))
