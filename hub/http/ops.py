"""The operations view: every flow at a glance, without anyone's personal data.

``GET /ops`` (HTML, refreshes itself every 10 s) and ``GET /ops.json`` (the same data) for
municipal IT staff. Everything shown is a count, a code, a time or a record *key*:

* per feed: events the hub handled (``processed_events`` by stage and outcome), the hub's
  dead letters, the connector's outbox (items read but not yet acknowledged by the broker,
  events and dead letters) and its checkpoints (scope and when it last moved);
* the last 20 hub dead letters: source, where, record key, reason (reasons name failing
  locations and error types, never values — see ``hub.pipeline.stages.validation_reason``);
* open alerts by kind, pending identity reviews and the hub outbox: counts only.

Identity, case and consent tables are read for counts only (``count(*)`` queries; no other
column of them is selected), so a name, birth date, address or case text cannot reach a page.
The template is rendered with Jinja2 autoescaping on.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, JSONResponse
from jinja2 import Environment, FileSystemLoader
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from connectors.runner import CheckpointRow, ConnectorState, OutboxRow
from hub.identity.tables import IdentityReview
from hub.pipeline.stages import HOUSEHOLD, INTAKE
from hub.pipeline.tables import AlertState, HubDeadLetter, HubOutbox, ProcessedEvent
from hub.topics import Topics
from schemas.codes import Feed

#: feeds in display order
FEEDS: tuple[str, ...] = tuple(f.value for f in Feed)
#: label of a row for what belongs to no feed (e.g. a message that was not even JSON)
OTHER = "other"
FEED_LABELS: dict[str, str] = {
    "registry": "住民基本台帳 Resident registry",
    "houkatsu": "地域包括支援センター Community support centres",
    "shogai": "障害者相談支援 Disability support",
    "kodomo": "こども家庭センター Child & family centre",
    "jiritsu": "生活困窮者自立支援 Self-reliance support",
    "consent": "同意 Consent",
    OTHER: "その他 Other / unidentified",
}
RECENT_DEAD_LETTERS = 20
REFRESH_S = 10
TEMPLATES = Path(__file__).resolve().parents[1] / "templates"

_env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, trim_blocks=True, lstrip_blocks=True)


@dataclass
class Checkpoint:
    scope: str
    updated_at: str | None


@dataclass
class FeedRow:
    feed: str
    label: str
    #: stage → outcome → count
    processed: dict[str, dict[str, int]] = field(default_factory=dict)
    processed_total: int = 0
    hub_dead_letters: int = 0
    #: connector outbox, by kind (event | dead_letter)
    outbox_pending: dict[str, int] = field(default_factory=dict)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    last_checkpoint_at: str | None = None


@dataclass
class DeadLetterRow:
    at: str | None
    source: str
    where: str
    record: str | None
    reason: str
    event_id: str | None


@dataclass
class OpsSnapshot:
    generated_at: str
    feeds: list[FeedRow]
    stages: list[str]
    dead_letters_total: int
    recent_dead_letters: list[DeadLetterRow]
    open_alerts: dict[str, int]
    identity_reviews_pending: int
    hub_outbox_pending: int
    connector_outbox_pending: int | None
    topics: dict[str, str]
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="seconds")


def _feed(value: str | None) -> str:
    return value if value in FEEDS else OTHER


def _topic_names(topics: Topics) -> dict[str, str]:
    names = ("intake", "resolved", "team", "support_meeting", "deadletter", "alerts")
    return {n: str(getattr(topics, n)) for n in names if isinstance(getattr(topics, n, None), str)}


def collect(sessions: sessionmaker[Session], connector_state: ConnectorState | None, topics: Topics) -> OpsSnapshot:
    """Read the counts the view shows. Only aggregate queries and personal-data-free columns."""
    rows: dict[str, FeedRow] = {f: FeedRow(f, FEED_LABELS.get(f, f)) for f in (*FEEDS, OTHER)}
    errors: list[str] = []
    with sessions() as s:
        for feed, stage, outcome, n in s.execute(
            select(ProcessedEvent.feed, ProcessedEvent.stage, ProcessedEvent.outcome, func.count())
            .group_by(ProcessedEvent.feed, ProcessedEvent.stage, ProcessedEvent.outcome)
        ).all():
            row = rows[_feed(feed)]
            by_outcome = row.processed.setdefault(str(stage), {})
            by_outcome[str(outcome)] = by_outcome.get(str(outcome), 0) + int(n)
            row.processed_total += int(n)
        for source, n in s.execute(
            select(HubDeadLetter.source, func.count()).group_by(HubDeadLetter.source)
        ).all():
            rows[_feed(source)].hub_dead_letters += int(n)
        recent = [
            DeadLetterRow(at=_iso(at), source=str(source), where=f"hub.{stage}", record=record, reason=str(reason),
                          event_id=event_id)
            for at, source, stage, record, reason, event_id in s.execute(
                select(HubDeadLetter.at, HubDeadLetter.source, HubDeadLetter.stage, HubDeadLetter.record,
                       HubDeadLetter.reason, HubDeadLetter.event_id)
                .order_by(HubDeadLetter.seq.desc()).limit(RECENT_DEAD_LETTERS)
            ).all()
        ]
        dead_total = int(s.scalar(select(func.count()).select_from(HubDeadLetter)) or 0)
        open_alerts = {
            str(kind): int(n)
            for kind, n in s.execute(
                select(AlertState.kind, func.count()).where(AlertState.status == "open")
                .group_by(AlertState.kind).order_by(AlertState.kind)
            ).all()
        }
        reviews = int(s.scalar(select(func.count()).select_from(IdentityReview)
                               .where(IdentityReview.status == "pending")) or 0)
        hub_outbox = int(s.scalar(select(func.count()).select_from(HubOutbox)) or 0)

    connector_pending: int | None = None
    if connector_state is not None:
        try:
            with connector_state.sessions() as s:
                connector_pending = 0
                for connector, kind, n in s.execute(
                    select(OutboxRow.connector, OutboxRow.kind, func.count())
                    .group_by(OutboxRow.connector, OutboxRow.kind)
                ).all():
                    row = rows[_feed(connector)]
                    row.outbox_pending[str(kind)] = row.outbox_pending.get(str(kind), 0) + int(n)
                    connector_pending += int(n)
                latest: dict[str, datetime] = {}
                by_feed: dict[str, list[Checkpoint]] = defaultdict(list)
                for connector, scope, updated_at in s.execute(
                    select(CheckpointRow.connector, CheckpointRow.scope, CheckpointRow.updated_at)
                    .order_by(CheckpointRow.connector, CheckpointRow.scope)
                ).all():
                    feed = _feed(connector)
                    by_feed[feed].append(Checkpoint(str(scope), _iso(updated_at)))
                    if updated_at is not None and (feed not in latest or _aware(updated_at) > latest[feed]):
                        latest[feed] = _aware(updated_at)
                for feed, cps in by_feed.items():
                    rows[feed].checkpoints = cps
                    rows[feed].last_checkpoint_at = _iso(latest.get(feed))
        except Exception as exc:  # the view must still show the hub's side
            errors.append(f"connector state not readable ({type(exc).__name__})")
            connector_pending = None

    feed_rows = [rows[f] for f in FEEDS]
    other = rows[OTHER]
    if other.processed_total or other.hub_dead_letters or other.outbox_pending or other.checkpoints:
        feed_rows.append(other)
    stages = [INTAKE, HOUSEHOLD]
    for r in feed_rows:
        stages.extend(st for st in r.processed if st not in stages)
    return OpsSnapshot(
        generated_at=_iso(datetime.now(UTC)) or "",
        feeds=feed_rows,
        stages=stages,
        dead_letters_total=dead_total,
        recent_dead_letters=recent,
        open_alerts=open_alerts,
        identity_reviews_pending=reviews,
        hub_outbox_pending=hub_outbox,
        connector_outbox_pending=connector_pending,
        topics=_topic_names(topics),
        errors=errors,
    )


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def render(snapshot: OpsSnapshot) -> str:
    return _env.get_template("ops.html").render(ops=snapshot, refresh_s=REFRESH_S)


def make_ops_router(sessions: sessionmaker[Session], connector_state: ConnectorState | None,
                    topics: Topics) -> APIRouter:
    """``GET /ops`` (HTML) and ``GET /ops.json``; handlers are sync so FastAPI runs the queries off the loop."""
    router = APIRouter()

    @router.get("/ops", response_class=HTMLResponse)
    def ops_page() -> HTMLResponse:
        return HTMLResponse(render(collect(sessions, connector_state, topics)),
                            headers={"Cache-Control": "no-store"})

    @router.get("/ops.json")
    def ops_json() -> JSONResponse:
        return JSONResponse(collect(sessions, connector_state, topics).as_dict(),
                            headers={"Cache-Control": "no-store"})

    return router
