"""Registry spellings with glyph variants: what a 外字-keeping registry holds where the agencies type plain kanji.

Deterministic for a seed. Each kanji of a registry name becomes, with some probability, its CJK
compatibility ideograph (都 → U+FA26), its 旧字体 from the public pair lists (郎 → 郞, 斉 → 齊), or
itself followed by a variation selector (辺 + U+E0100). The pair lists are the test data in
tests/data/kanji_pairs/, so the variants come from the public tables, not from the folding table.
"""

from __future__ import annotations

import random
import unicodedata
from pathlib import Path

from schemas.events import ResidentObservedV1

PAIRS = Path(__file__).resolve().parents[1] / "data" / "kanji_pairs"


def _pairs(name: str) -> list[tuple[str, str]]:
    out = []
    for line in (PAIRS / f"{name}.tsv").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            a, b = line.split("\t")[:2]
            out.append((a, b))
    return out


OLD_FORM: dict[str, str] = {}
for _list in ("jinmeiyo_beppyo2_itaiji", "joyo_kyujitai"):
    for _old, _new in _pairs(_list):
        if len(_old) == 1 and unicodedata.normalize("NFC", _old) == _old:
            OLD_FORM.setdefault(_new, _old)
COMPAT_FORM: dict[str, str] = {}
for _compat, _unified in _pairs("compat_ideographs"):
    COMPAT_FORM.setdefault(_unified, _compat)


def vary_name(name: str, rng: random.Random) -> str:
    """The name as a glyph-keeping registry might store it (every kanji has a chance to change)."""
    out = []
    for ch in name:
        r = rng.random()
        if ch in COMPAT_FORM and r < 0.4:
            out.append(COMPAT_FORM[ch])
        elif ch in OLD_FORM and r < 0.7:
            out.append(OLD_FORM[ch])
        elif "\u4e00" <= ch <= "\u9fff" and r < 0.8:
            out.append(ch + "\U000e0100")
        else:
            out.append(ch)
    return "".join(out)


def with_registry_glyphs(registry: list[ResidentObservedV1], seed: int = 5) -> tuple[list[ResidentObservedV1], int]:
    """The registry events with varied names, and how many names changed."""
    rng = random.Random(seed)
    out, changed = [], 0
    for ev in registry:
        name = vary_name(ev.resident.name, rng)
        changed += name != ev.resident.name
        out.append(ev.model_copy(update={"resident": ev.resident.model_copy(update={"name": name})}))
    return out, changed
