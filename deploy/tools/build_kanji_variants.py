"""Build schemas/data/kanji_variants.tsv (old and variant kanji → the form to fold to) from KANJIDIC2.

Run at build time only, never by tsunagu itself:

    .venv/bin/pip install -e '.[kanji-build]'      # jamdict-data: KANJIDIC2 in an SQLite file
    .venv/bin/python deploy/tools/build_kanji_variants.py            # rewrite the table
    .venv/bin/python deploy/tools/build_kanji_variants.py --check    # exit 1 if the table is stale

Source: KANJIDIC2 (the Electronic Dictionary Research and Development Group, EDRDG), as compiled
into the ``jamdict-data`` package on PyPI. Licence: Creative Commons Attribution-ShareAlike
(EDRDG General Dictionary Licence, https://www.edrdg.org/edrdg/licence.html); the derived table
carries the same licence and names its source in its header.

How the table is derived (every rule is in :func:`derive`):

* KANJIDIC2 lists for a character its ``variant`` characters, by JIS X 0208/0212/0213 code, by
  Unicode code point or by a dictionary index (Nelson, O'Neill, NJECD); each is resolved to a
  character through KANJIDIC2's own code tables, and the relation is taken in both directions.
  A variant named by its code is exact; one named only by a dictionary index is looser (an index
  entry can be a related character) and is used only when no code-named variant is 常用.
* The form to fold to is a 常用漢字 (KANJIDIC2 grade 1–8). A character that is not 常用 and has
  exactly one 常用 variant folds to it; one whose variants are not 常用 but all fold to the same
  常用 character folds to that one too. A 常用漢字 never folds, so two 常用 characters that are
  distinct legal names (斎/斉, 竜 and 滝 …) stay apart; a character with two different 常用
  variants is ambiguous and left alone.
* A 人名用漢字 of 別表第二(一) (KANJIDIC2 grade 9) is a name character in its own right and never
  folds (KANJIDIC2 lists 堺/界, 李/梅, 耀/輝 as variants: related meanings, different names); it
  can be the form a non-name character folds to when it is its only name-character variant
  (晉 → 晋).
* Each row carries its kind: ``jinmeiyo_itaiji`` (人名用漢字 別表第二(二), KANJIDIC2 grade 10: the
  variants of 常用漢字 allowed in names), ``hyogai`` (neither, e.g. 邊 邉 濵 — 外字 that
  registry systems hold), and ``curated`` for the few pairs KANJIDIC2 does not have (髙, 﨑 …:
  characters outside its JIS X 0208/0212/0213 set or without a variant entry), listed in
  :data:`CURATED` with their reason.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections import defaultdict
from importlib import resources
from pathlib import Path

OUT = Path(__file__).resolve().parents[2] / "schemas" / "data" / "kanji_variants.tsv"

#: Pairs the rules cannot give from KANJIDIC2 (missing character, no variant entry, or ambiguous).
#: Each is a well-known 異体字 of a surname character in Japanese registry systems.
CURATED: tuple[tuple[str, str, str], ...] = (
    ("髙", "高", "はしご高 U+9AD9: not in KANJIDIC2 (an IBM extension of CP932)"),
    ("﨑", "崎", "たつさき U+FA11: in KANJIDIC2 without a variant entry"),
    ("嵜", "崎", "U+5D5C: KANJIDIC2 makes it a variant of both 崎 and 埼 (both 常用), so ambiguous"),
    ("碕", "崎", "U+7895: KANJIDIC2 makes it a variant of both 崎 and 埼 (both 常用); in surnames it is 崎"),
    ("𠮷", "吉", "つちよし U+20BB7: outside KANJIDIC2 (not in JIS X 0208/0212/0213)"),
    ("栁", "柳", "U+6801: in KANJIDIC2 without a variant entry"),
    ("槇", "槙", "U+69C7 and 槙 are both 人名用 (grade 9), which never fold by the rules above"),
    ("巖", "巌", "U+5DD6 and 巌 are both 人名用 (grade 9), which never fold by the rules above"),
    ("戶", "戸", "U+6236: a Unicode-only form, outside JIS X 0208/0212/0213 and so outside KANJIDIC2"),
    ("淸", "清", "U+6DF8: a Unicode-only form, outside KANJIDIC2"),
    ("靑", "青", "U+9751: a Unicode-only form, outside KANJIDIC2"),
    ("鄕", "郷", "U+9115: a Unicode-only form, outside KANJIDIC2"),
    ("彥", "彦", "U+5F65: a Unicode-only form, outside KANJIDIC2"),
    ("敎", "教", "U+654E: a Unicode-only form, outside KANJIDIC2"),
    ("旣", "既", "U+65E3: the 常用漢字表's 旧字体 of 既, outside KANJIDIC2"),
    ("薗", "園", "U+8597: 人名用 異体字 of 園 (KANJIDIC2 grade 10) without a variant entry"),
)

#: Folds KANJIDIC2 would make that are wrong for names: distinct characters it lists as variants.
EXCLUDED: frozenset[str] = frozenset()

_JOYO = {str(g) for g in range(1, 9)}


def _norm(kind: str, value: str) -> tuple[str, str]:
    if kind == "ucs":
        return kind, value.lower()
    if kind.startswith("jis"):
        return kind, "-".join(str(int(p)) for p in value.split("-"))
    return kind, value


def load(db: Path) -> tuple[dict[str, str | None], dict[str, set[str]], dict[str, set[str]]]:
    """Characters with their grade, and each character's variants (both directions): those named by
    a code (JIS X 0208/0212/0213, Unicode), and those named only by a dictionary index number."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    lit: dict[int, str] = {}
    grade: dict[str, str | None] = {}
    for cid, literal, g in con.execute("SELECT id, literal, grade FROM character"):
        lit[cid] = literal
        grade[literal] = g
    by_code: dict[tuple[str, str], set[str]] = defaultdict(set)
    for cid, kind, value in con.execute("SELECT cid, cp_type, value FROM codepoint"):
        by_code[_norm(kind, value)].add(lit[cid])
    index_kind = {"nelson_c": "nelson_c", "oneill": "oneill_names", "njecd": "halpern_njecd"}
    for cid, kind, value in con.execute("SELECT cid, dr_type, value FROM dic_ref"):
        if kind in index_kind.values():
            by_code[(kind, value)].add(lit[cid])
    variants: dict[str, set[str]] = defaultdict(set)
    by_index: dict[str, set[str]] = defaultdict(set)
    for cid, kind, value in con.execute("SELECT cid, var_type, value FROM variant"):
        key = (index_kind[kind], value) if kind in index_kind else _norm(kind, value)
        targets = by_code.get(key, set())
        if len(targets) != 1:  # unresolvable or ambiguous index reference
            continue
        (target,) = targets
        if target != lit[cid]:
            edges = by_index if kind in index_kind else variants
            edges[lit[cid]].add(target)
            edges[target].add(lit[cid])
    con.close()
    return grade, variants, by_index


def derive(grade: dict[str, str | None], by_code: dict[str, set[str]],
           by_index: dict[str, set[str]] | None = None) -> dict[str, tuple[str, str]]:
    """variant → (form to fold to, kind), by the rules in the module docstring."""
    joyo = {c for c, g in grade.items() if g in _JOYO}
    names = {c for c, g in grade.items() if g == "9"}  # 人名用漢字 in their own right: never folded
    by_index = by_index or {}
    variants: dict[str, set[str]] = defaultdict(set)
    for edges in (by_code, by_index):
        for c, vs in edges.items():
            variants[c] |= vs
    table: dict[str, str] = {}
    for c, vs in variants.items():
        if c in joyo or c in names or c in EXCLUDED:
            continue
        # a variant named by its code is exact; one named by a dictionary index only breaks a tie-less gap
        targets = by_code.get(c, set()) & joyo or vs & joyo
        if len(targets) == 1:
            table[c] = next(iter(targets))
    for c, vs in variants.items():  # through variants that fold to one 常用 form, else to one 人名用 form
        if c in joyo or c in names or c in table or c in EXCLUDED or vs & joyo:
            continue
        targets = {table[v] for v in vs if v in table} or vs & names
        if len(targets) == 1:
            table[c] = next(iter(targets))
    kinds = {"10": "jinmeiyo_itaiji"}
    out = {c: (t, kinds.get(grade.get(c) or "", "hyogai")) for c, t in table.items()}
    for variant, target, _why in CURATED:
        out.setdefault(variant, (target, "curated"))
    return out


def render(table: dict[str, tuple[str, str]], db_version: str) -> str:
    lines = [
        "# Old and variant kanji -> the form tsunagu folds them to for candidate search (never proof).",
        f"# Derived from KANJIDIC2 ({db_version}, EDRDG) as shipped in the PyPI package jamdict-data 1.5",
        "# by deploy/tools/build_kanji_variants.py; rows of kind 'curated' are listed in that script.",
        "# Licence: Creative Commons Attribution-ShareAlike (EDRDG licence, https://www.edrdg.org/edrdg/licence.html).",
        "# columns: variant<TAB>folded<TAB>kind<TAB>variant code point",
    ]
    for c in sorted(table):
        target, kind = table[c]
        lines.append(f"{c}\t{target}\t{kind}\tU+{ord(c):04X}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--db", type=Path, help="jamdict.db (default: the one in the jamdict-data package)")
    parser.add_argument("--check", action="store_true", help="exit 1 when the committed table differs")
    args = parser.parse_args(argv)
    db = args.db or Path(str(resources.files("jamdict_data") / "jamdict.db"))
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    meta = dict(con.execute("SELECT key, value FROM meta"))
    con.close()
    text = render(derive(*load(db)), f"file version {meta.get('kanjidic2.version', '?')}")
    if args.check:
        same = OUT.exists() and OUT.read_text(encoding="utf-8") == text
        print("up to date" if same else f"stale: rebuild {OUT}")
        return 0 if same else 1
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(OUT)
    print(f"{OUT}: {text.count(chr(10)) - 5} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
