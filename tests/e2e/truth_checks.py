"""What samples.truth.json says the export must contain, as small functions the e2e tests share."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any


def load_export(out: Path) -> dict[str, Any]:
    def lines(name: str) -> list[dict[str, Any]]:
        path = out / name
        return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]

    return {
        "persons": lines("persons.jsonl"),
        "team": lines("team.jsonl"),
        "alerts": lines("alerts.jsonl"),
        "deadletter": lines("deadletter.jsonl"),
        "audit": lines("audit.jsonl"),
        "summary": json.loads((out / "summary.json").read_text(encoding="utf-8")),
    }


def _jst(day: str) -> datetime:
    return datetime.fromisoformat(day + "T00:00:00+09:00")


def consented(truth: dict[str, Any], event: dict[str, Any]) -> bool:
    """Whether a truth event is covered by a consent at its source time (sharing-rules.md)."""
    at = datetime.fromisoformat(event["at"])
    for c in truth["consents"].get(event["pid"], []):
        if event["field"] in c["fields"] and _jst(c["start"]) <= at and (c["end"] is None or at < _jst(c["end"])):
            return True
    agreed = truth["jiritsu_consent"].get(event["record"])
    return bool(agreed and event["field"] == "livelihood" and at >= _jst(agreed))


STATE_OF_TYPE = {"jp.tsunagu.case.opened.v1": "open", "jp.tsunagu.case.updated.v1": "mid",
                 "jp.tsunagu.case.closed.v1": "closed"}


def team_case_events(team: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """(record, day, state) of every case event the team received."""
    return {(e["sourcerecord"], e["time"][:10], STATE_OF_TYPE[e["type"]]) for e in team if e["type"] in STATE_OF_TYPE}


def truth_key(event: dict[str, Any]) -> tuple[str, str, str]:
    # jiritsu exports dates only: its events are compared by day (the truth has times of day)
    return (event["record"], event["at"][:10], event["state"])


def grouping(persons: list[dict[str, Any]]) -> frozenset[frozenset[str]]:
    """The partition of record keys into persons, independent of the (opaque) person ids."""
    groups: dict[str, set[str]] = {}
    for p in persons:
        groups.setdefault(p["person"], set()).add(p["record"])
    return frozenset(frozenset(g) for g in groups.values())


def truth_alert_set(truth: dict[str, Any]) -> set[tuple[str, str]]:
    return {(a["household"], a["kind"]) for a in truth["alerts"]}


def export_alert_set(export: dict[str, Any], truth: dict[str, Any]) -> set[tuple[str, str]]:
    """(true household, kind) of every alert raised; hub households are named through registry records."""
    true_household = {}
    for p in export["persons"]:
        if p["record"].startswith("registry:") and p["household"]:
            pid = truth["records"][p["record"]]
            true_household[p["household"]] = truth["persons"][pid]["household"]
    return {(true_household.get(a["data"]["household"], a["data"]["household"]), a["data"]["kind"])
            for a in export["alerts"] if a["type"] == "jp.tsunagu.alert.raised.v1"}
