"""JSON Schema generation for the published event versions, and a backward-compatibility check.

A consumer written against a published version must keep reading every later event of
that version. So, against the committed schema, a new schema may add optional properties
and enum values, but may not remove or retype a property, add a required one, or drop an
enum value. ``python -m schemas.compat write`` regenerates ``schemas/jsonschema/``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from schemas.events import EVENT_TYPES

SCHEMA_DIR = Path(__file__).parent / "jsonschema"


def current_schemas() -> dict[str, dict[str, Any]]:
    return {etype: model.model_json_schema(mode="validation") for etype, model in EVENT_TYPES.items()}


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for etype, schema in current_schemas().items():
        path = directory / f"{etype}.json"
        path.write_text(json.dumps(schema, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written


def committed_schemas(directory: Path = SCHEMA_DIR) -> dict[str, dict[str, Any]]:
    return {p.name.removesuffix(".json"): json.loads(p.read_text(encoding="utf-8")) for p in directory.glob("*.json")}


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = root.get("$defs", {}).get(ref.removeprefix("#/$defs/"), {})
        return _resolve(target, root) if isinstance(target, dict) else {}
    return schema


def _types(schema: dict[str, Any], root: dict[str, Any]) -> set[str]:
    s = _resolve(schema, root)
    if "anyOf" in s:
        out: set[str] = set()
        for sub in s["anyOf"]:
            out |= _types(sub, root)
        return out
    t = s.get("type")
    if isinstance(t, list):
        return set(t)
    if isinstance(t, str):
        return {t}
    if "enum" in s or "const" in s:
        return {"enum"}
    return {"any"}


def _enum(schema: dict[str, Any], root: dict[str, Any]) -> set[Any]:
    s = _resolve(schema, root)
    vals: set[Any] = set()
    for sub in s.get("anyOf", []):
        vals |= _enum(sub, root)
    if "enum" in s:
        vals |= {json.dumps(v) for v in s["enum"]}
    if "const" in s:
        vals.add(json.dumps(s["const"]))
    return vals


def breaking_changes(old: dict[str, Any], new: dict[str, Any], old_root: dict[str, Any] | None = None,
                     new_root: dict[str, Any] | None = None, path: str = "") -> list[str]:
    """What in ``new`` would break a reader of ``old`` (empty when compatible)."""
    old_root = old_root or old
    new_root = new_root or new
    o, n = _resolve(old, old_root), _resolve(new, new_root)
    problems: list[str] = []
    ot, nt = _types(o, old_root), _types(n, new_root)
    if not ot <= nt and "any" not in nt:
        problems.append(f"{path or '/'}: type changed from {sorted(ot)} to {sorted(nt)}")
    oe, ne = _enum(o, old_root), _enum(n, new_root)
    if oe and ne and not oe <= ne:
        problems.append(f"{path or '/'}: enum values removed {sorted(oe - ne)}")
    new_required = set(n.get("required", [])) - set(o.get("required", []))
    if new_required:
        problems.append(f"{path or '/'}: new required properties {sorted(new_required)}")
    for name, osub in o.get("properties", {}).items():
        nsub = n.get("properties", {}).get(name)
        if nsub is None:
            problems.append(f"{path}/{name}: property removed")
            continue
        problems += breaking_changes(osub, nsub, old_root, new_root, f"{path}/{name}")
    if "items" in o and "items" in n:
        problems += breaking_changes(o["items"], n["items"], old_root, new_root, f"{path}[]")
    for key in ("anyOf",):
        for i, (a, b) in enumerate(zip(o.get(key, []), n.get(key, []), strict=False)):
            if _resolve(a, old_root).get("properties") and _resolve(b, new_root).get("properties"):
                problems += breaking_changes(a, b, old_root, new_root, f"{path}<{i}>")
    return problems


def check_all(directory: Path = SCHEMA_DIR) -> dict[str, list[str]]:
    """Breaking changes per published event type; a published type that disappeared is one too."""
    current = current_schemas()
    out: dict[str, list[str]] = {}
    for etype, old in committed_schemas(directory).items():
        if etype not in current:
            out[etype] = ["event type no longer published"]
            continue
        problems = breaking_changes(old, current[etype])
        if problems:
            out[etype] = problems
    return out


if __name__ == "__main__":  # pragma: no cover
    if sys.argv[1:] == ["write"]:
        for p in write_schemas():
            print(p)
    else:
        print(json.dumps(check_all(), indent=2))
