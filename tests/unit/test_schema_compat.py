"""The published event versions stay backward compatible with their committed JSON Schemas."""

from __future__ import annotations

import copy

from schemas.compat import breaking_changes, check_all, committed_schemas, current_schemas


def test_every_event_type_has_a_committed_schema() -> None:
    """Each event type the code publishes has its JSON Schema committed under schemas/jsonschema/."""
    missing = set(current_schemas()) - set(committed_schemas())
    assert not missing, f"run `python -m schemas.compat write` and commit: {sorted(missing)}"


def test_models_are_compatible_with_committed_schemas() -> None:
    """No published event version changed in a way that breaks its readers."""
    assert check_all() == {}


def _case_schema() -> dict:
    return copy.deepcopy(current_schemas()["jp.tsunagu.case.opened.v1"])


def test_removing_a_property_is_breaking() -> None:
    """Dropping a property that readers may rely on is reported."""
    old = _case_schema()
    new = _case_schema()
    del new["properties"]["topics"]
    assert any("topics: property removed" in p for p in breaking_changes(old, new))


def test_adding_a_required_property_is_breaking() -> None:
    """A new required property would make old events invalid, so it is reported."""
    old = _case_schema()
    new = _case_schema()
    new["properties"]["priority"] = {"type": "integer"}
    new["required"] = [*new["required"], "priority"]
    assert any("new required" in p for p in breaking_changes(old, new))


def test_retyping_and_removing_enum_values_are_breaking() -> None:
    """Changing a property's type or dropping a code from a code list is reported."""
    old = _case_schema()
    new = _case_schema()
    new["properties"]["opened_on"] = {"type": "integer"}
    new["$defs"]["CaseStatus"]["enum"] = [v for v in new["$defs"]["CaseStatus"]["enum"] if v != "closed"]
    problems = breaking_changes(old, new)
    assert any("opened_on: type changed" in p for p in problems)
    assert any("enum values removed" in p for p in problems)


def test_adding_an_optional_property_is_compatible() -> None:
    """Adding an optional property is the allowed way to evolve a version."""
    old = _case_schema()
    new = _case_schema()
    new["properties"]["note_count"] = {"type": "integer", "default": 0}
    assert breaking_changes(old, new) == []
