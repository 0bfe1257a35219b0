"""``tsunagu identity``: the review queue of identity resolution, for the people who decide it.

``tsunagu identity review`` lists the pending pairs (a record, and the hub person it may be);
``tsunagu identity decide REVIEW_ID link|keep-apart --user NAME`` records a decision, re-attributes
the record's cases and events and re-evaluates the alerts of the households involved
(:mod:`hub.pipeline.reattribute`), all in one transaction. ``--json`` prints the same for tooling.

What a reviewer is shown, and why no more (data minimisation, 個人情報保護法 and the feeds'
要配慮個人情報): a terminal's scroll-back, a pasted screenshot, a CI log or a ticket keeps whatever
is printed, far outside the hub's protected store. The decision rests on the *evidence* (which
features agreed or differed, and the score they add up to); the reviewer who needs the full
records opens them in the agency systems they are entitled to, by the **record keys**, which name
them without ambiguity. So each side shows:

* the record key and its feed: to find the record at its source, and because a pair from the
  same feed is itself a signal;
* the feature agreement and points per feature, and the total score;
* the reasons a pattern needs a human (``氏が異なる（婚姻・離婚・旧氏の可能性）``, a birth-date slip):
  named from the evidence, no personal data;
* a masked name, the family name's first character and a fixed ``○ ○○`` (``高○ ○○``): enough to
  notice that the right person was opened in the source system, never enough to identify
  anyone. The shape is fixed, so it does not reveal the length of a name, and it does not need
  to know where family and given name split (most feeds store the name without a separator);
* the birth year only: it tells a parent from a child with the same given name at a glance; the
  full date adds nothing to the decision (the evidence already says whether the dates agree) and
  is, with a name, the classic key to re-identify someone.

Readings, addresses, phone numbers, resident numbers and case contents are never printed.

The database: ``--database URL``, else ``TSUNAGU_DATABASE_URL``, else ``<state>/hub.sqlite`` of a
batch run's ``--state`` folder (:func:`hub.migrate.database_url_for`). Alert events go to the hub
outbox for the alerts topic of the deployment's prefix (``--topic-prefix``, else the prefix the
batch run of ``--state`` used, else ``TSUNAGU_TOPIC_PREFIX``); the hub service relays the outbox
when it (re)starts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from hub.cli.common import database_url, topic_prefix
from hub.settings import get_settings

identity_app = typer.Typer(no_args_is_help=True, add_completion=False,
                           help="Identity review queue: list pending pairs, decide them.")

MASK = "○ ○○"

StateOpt = Annotated[Path | None, typer.Option("--state", help="state folder of a batch run (<state>/hub.sqlite)")]
DatabaseOpt = Annotated[str | None, typer.Option("--database", help="SQLAlchemy URL of the hub's database")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


class Choice(StrEnum):
    link = "link"
    keep_apart = "keep-apart"


def _fail(message: str) -> None:
    typer.echo(f"tsunagu identity: {message}", err=True)
    raise typer.Exit(2)


def mask_name(name: str | None) -> str:
    """``髙橋　義雄`` → ``髙○ ○○``; no name → ``○○ ○○``. Fixed shape: no length, no given name."""
    text = "".join((name or "").split())
    return f"{text[0]}{MASK}" if text else f"○{MASK}"


# --------------------------------------------------------------------------- what a reviewer sees
@dataclass(frozen=True, slots=True)
class Side:
    key: str
    feed: str
    name: str  # masked
    birth_year: int | None
    person: str | None
    records: int

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "feed": self.feed, "name": self.name, "birth_year": self.birth_year,
                "person": self.person, "records": self.records}


def _record_side(s: Session, record: str) -> Side:
    from hub.identity.tables import PersonRecordRow, Resident

    if record.startswith("registry:"):
        res = s.get(Resident, record.split(":", 1)[1])
        if res is not None:
            return Side(record, "registry", mask_name(res.name), _year(res.birth_date), res.person_id, 1)
    else:
        row = s.get(PersonRecordRow, record)
        if row is not None:
            return Side(record, row.feed, mask_name(row.name_key), _year(row.birth_date), row.person_id, 1)
    return Side(record, record.split(":", 1)[0], mask_name(None), None, None, 0)


def _person_side(s: Session, person_id: str) -> Side:
    """The candidate person, shown by one of its records: its registry record if it has one."""
    from hub.identity.tables import Person, PersonRecordRow, Resident

    residents = s.scalars(select(Resident).where(Resident.person_id == person_id).order_by(Resident.resident_no)).all()
    rows = s.scalars(select(PersonRecordRow).where(PersonRecordRow.person_id == person_id)
                     .order_by(PersonRecordRow.record)).all()
    n = len(residents) + len(rows)
    if residents:
        r = residents[0]
        return Side(f"registry:{r.resident_no}", "registry", mask_name(r.name), _year(r.birth_date), person_id, n)
    if rows:
        p = s.get(Person, person_id)
        first = next((x for x in rows if p is not None and x.record == p.created_by), rows[0])
        return Side(first.record, first.feed, mask_name(first.name_key), _year(first.birth_date), person_id, n)
    return Side("-", "-", mask_name(None), None, person_id, 0)


def _year(d: Any) -> int | None:
    return d.year if d is not None else None


def review_items(s: Session) -> list[dict[str, Any]]:
    """The pending reviews as a reviewer sees them (masked: see the module docstring)."""
    from hub.identity.review import list_reviews
    from hub.identity.scoring import WEIGHTS, reasons
    from hub.identity.tables import IdentityReview

    out: list[dict[str, Any]] = []
    for v in list_reviews(s):
        row = s.get(IdentityReview, v.id)
        evidence = {
            feature: {"value": str(value), "points": WEIGHTS.get(feature, {}).get(str(value), 0.0)}
            for feature, value in sorted(v.evidence.items())
        }
        out.append({
            "id": v.id,
            "score": v.score,
            "created_at": row.created_at.isoformat() if row is not None else None,
            "record": _record_side(s, v.record).to_json(),
            "candidate": _person_side(s, v.candidate_person).to_json(),
            "evidence": evidence,
            "reasons": reasons({k: str(v) for k, v in v.evidence.items()}),
        })
    return out


def _format_side(label: str, side: dict[str, Any]) -> str:
    born = side["birth_year"] if side["birth_year"] is not None else "?"
    extra = f"  person {side['person']} ({side['records']} records)" if label == "candidate" else ""
    return f"  {label:<9} {side['key']:<32} feed {side['feed']:<9} name {side['name']}  born {born}{extra}"


def _format_evidence(evidence: dict[str, dict[str, Any]]) -> str:
    parts = []
    for feature, e in evidence.items():
        pts = e["points"]
        parts.append(f"{feature}={e['value']}" + (f"({pts:+g})" if pts else ""))
    return "  evidence  " + " ".join(parts)


# --------------------------------------------------------------------------- commands
@identity_app.command("review")
def review(state: StateOpt = None, database: DatabaseOpt = None, as_json: JsonOpt = False) -> None:
    """List the pending pairs with their evidence (masked names, birth years only)."""
    from hub.bootstrap import Database

    db = Database.open(database_url(state, database, get_settings()), migrate=False)
    try:
        with db.sessions() as s:
            items = review_items(s)
    except SQLAlchemyError as exc:
        _fail(f"cannot read the review queue ({type(exc).__name__}); is the database migrated?")
        return
    finally:
        db.close()
    if as_json:
        typer.echo(json.dumps({"pending": items}, ensure_ascii=False, indent=2))
        return
    if not items:
        typer.echo("no pending reviews")
        return
    for item in items:
        typer.echo(f"review {item['id']}  score {item['score']:+g}  pending since {item['created_at']}")
        typer.echo(_format_side("record", item["record"]))
        typer.echo(_format_side("candidate", item["candidate"]))
        typer.echo(_format_evidence(item["evidence"]))
        for reason in item["reasons"]:
            typer.echo(f"  reason    {reason}")
    typer.echo(f"{len(items)} pending; decide with: tsunagu identity decide REVIEW_ID link|keep-apart --user NAME")


@identity_app.command("decide")
def decide(
    review_id: Annotated[int, typer.Argument(help="the review's id (from `tsunagu identity review`)")],
    decision: Annotated[Choice, typer.Argument(help="link: same person; keep-apart: never propose again")],
    user: Annotated[str, typer.Option("--user", help="who decides (recorded in the audit trail)")],
    state: StateOpt = None,
    database: DatabaseOpt = None,
    prefix: Annotated[str | None, typer.Option("--topic-prefix", help="topic prefix of the deployment")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Decide one pending review; its cases and events follow, and the households' alerts are re-evaluated."""
    from hub.bootstrap import Database, alert_settings
    from hub.identity.review import ReviewError
    from hub.pipeline.reattribute import decide as decide_and_reattribute

    settings = get_settings()
    db = Database.open(database_url(state, database, settings), migrate=False)
    try:
        with db.sessions.begin() as s:
            result = decide_and_reattribute(
                s, review_id, "link" if decision is Choice.link else "keep_apart", user,
                prefix=topic_prefix(state, prefix, settings), alert_settings=alert_settings(settings),
            )
    except ReviewError as exc:
        _fail(str(exc))
        return
    except SQLAlchemyError as exc:
        _fail(f"the decision was not recorded ({type(exc).__name__})")
        return
    finally:
        db.close()
    if as_json:
        typer.echo(json.dumps(result.to_json(), ensure_ascii=False, indent=2))
        return
    verb = "linked" if result.decision == "link" else "kept apart"
    typer.echo(f"review {result.review_id}: {result.record} {verb} "
               f"{'to' if result.decision == 'link' else 'from'} {result.candidate_person} "
               f"by {result.decided_by} at {_iso(result.decided_at)}")
    typer.echo(f"  moved: {len(result.records)} records, {result.cases} cases, {result.events} events; "
               f"alerts re-evaluated for {len(result.households)} households ({result.alert_events} alert events "
               f"queued); {result.released} held events released to the team")


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


@identity_app.command("score")
def score(
    export: Annotated[Path, typer.Argument(help="export folder of `tsunagu run` (its persons.jsonl)")],
    truth: Annotated[Path, typer.Argument(help="truth.json of `tsunagu generate` (its records → person)")],
    state: StateOpt = None,
    database: DatabaseOpt = None,
) -> None:
    """Pairwise precision, recall and F1 of a run's persons against a generated truth, as one JSON object;
    with ``--state``/``--database`` also the pending reviews and their share of the records."""
    from hub.identity.pairwise import score_run

    try:
        predicted: dict[str, str] = {}
        with (export / "persons.jsonl").open(encoding="utf-8") as lines:
            for line in lines:
                if line.strip():
                    row = json.loads(line)
                    predicted[row["record"]] = row["person"]
        records = json.loads(truth.read_text(encoding="utf-8"))["records"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        _fail(f"cannot read the export or the truth ({type(exc).__name__})")
        return
    pending = None
    if state is not None or database is not None:
        from hub.bootstrap import Database
        from hub.identity.review import list_reviews

        db = Database.open(database_url(state, database, get_settings()), migrate=False)
        try:
            with db.sessions() as s:
                pending = len(list_reviews(s))
        except SQLAlchemyError as exc:
            _fail(f"cannot read the review queue ({type(exc).__name__}); is the database migrated?")
            return
        finally:
            db.close()
    typer.echo(json.dumps(score_run(predicted, records, pending)))
