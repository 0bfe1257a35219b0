"""The operations view: every flow at a glance, without anyone's personal data.

``GET /ops`` (HTML, refreshes itself every 10 s) and ``GET /ops.json`` (the same data) for
municipal IT staff. Everything shown is a count, a code, a time (JST) or a position — never a
name, a record key or case text:

* the flows feed → intake → hub → team / alerts with counts and per-minute rates;
* per feed: events the hub handled (``processed_events`` by stage and outcome), dead letters of
  every stage, the connector's outbox, records read and dead letters written (its counters), its
  checkpoints summarized (scopes, newest; the detail is ``GET /ops/checkpoints.json``), the last
  success and the expected interval — from the connector state, which a standalone
  ``tsunagu connector run --state`` on the same folder writes too;
* dead letters of every stage (connector, webhook, hub) by reason code — read from the same
  store as ``tsunagu_dead_letters_total``, so the two agree — and the latest 20 (origin, reason);
* consumer lag per group and partition, the hub outbox, open alerts by kind, identity reviews,
  and the operations health alerts.

Identity, case and consent tables are read for counts only (``count(*)`` queries; no other
column of them is selected), so a name, birth date, address or case text cannot reach a page.
The template (``hub/workspace/templates/ops.html``, the one the workspace serves at ``/ops``) is
rendered with Jinja2 autoescaping on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from connectors.runner import CheckpointRow, ConnectorState, OutboxRow
from connectors.safety import display_name
from hub.identity.tables import IdentityReview
from hub.ops import deadletters
from hub.ops.health import RULE_LABELS, HealthAlert
from hub.ops.readings import Lag, feed_last_success
from hub.pipeline.stages import HOUSEHOLD, INTAKE
from hub.pipeline.tables import AlertState, CaseEvent, HubDeadLetter, HubOutbox, ProcessedEvent
from hub.settings import Settings
from hub.topics import Topics
from hub.workspace.labels import ALERT_KIND
from schemas.codes import Feed
from schemas.deadletter import REASON_CODES

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


JST = timezone(timedelta(hours=9), "JST")
#: window of the per-minute rates
RATE_WINDOW = timedelta(minutes=15)

STAGE_LABELS: dict[str, str] = {
    "connector": "連携 (connector)", "webhook": "Webhook受信 (webhook)", "hub": "ハブ (hub)",
    INTAKE: "取込 (intake)", HOUSEHOLD: "世帯処理 (household)",
}
OUTCOME_LABELS: dict[str, str] = {
    "forwarded": "転送", "dead": "デッドレター", "stale": "古い更新", "applied": "反映", "duplicate": "重複",
}
#: alert kinds in the workspace's words
ALERT_LABELS: dict[str, str] = ALERT_KIND


def jst(value: datetime | None) -> str | None:
    """A time as JST ISO 8601 (``2026-12-01T11:05:29+09:00``)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(JST).isoformat(timespec="seconds")


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
    #: events the hub handled at intake in the last 15 minutes, per minute
    rate_per_min: float = 0.0
    hub_dead_letters: int = 0
    #: dead letters of every stage for this feed (the store /metrics counts)
    dead_letters: int = 0
    #: connector outbox, by kind (event | dead_letter)
    outbox_pending: dict[str, int] = field(default_factory=dict)
    #: checkpoints summarized: how many scopes and when the newest moved (detail: /ops/checkpoints.json)
    checkpoint_scopes: int = 0
    last_checkpoint_at: str | None = None
    #: when the brokers last acknowledged one of its items, and the silence allowed
    last_success_at: str | None = None
    expected_interval_s: float = 86400.0
    #: the connector's own counts over every pass on the connector state (``tsunagu serve`` or a standalone
    #: ``tsunagu connector run`` sharing the state folder): records read, dead letters written
    records_read: int = 0
    connector_dead_letters: int = 0


@dataclass
class Flow:
    """One arrow of feed → intake → hub → team / support_meeting / alerts."""

    source: str
    target: str
    count: int
    rate_per_min: float


@dataclass
class DeadLetterCount:
    stage: str
    stage_label: str
    feed: str
    reason: str
    reason_label: str
    count: int


@dataclass
class RecentDeadLetter:
    id: str
    at: str | None
    stage: str
    feed: str
    where: str
    reason: str
    reason_label: str
    detail: str


@dataclass
class LagRow:
    group: str
    topic: str
    partition: int
    lag: int


@dataclass
class HealthRow:
    rule: str
    label: str
    subject: str
    message: str
    since: str | None


@dataclass
class OpsSnapshot:
    generated_at: str
    feeds: list[FeedRow]
    stages: list[str]
    flows: list[Flow]
    dead_letters_total: int
    dead_letters_by_reason: list[DeadLetterCount]
    recent_dead_letters: list[RecentDeadLetter]
    open_alerts: dict[str, int]
    open_alert_labels: dict[str, str]
    identity_reviews_pending: int
    hub_outbox_pending: int
    connector_outbox_pending: int | None
    consumer_lag: list[LagRow] | None
    health: list[HealthRow]
    topics: dict[str, str]
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _feed(value: str | None) -> str:
    return value if value in FEEDS else OTHER


def _topic_names(topics: Topics) -> dict[str, str]:
    names = ("intake", "resolved", "team", "support_meeting", "deadletter", "alerts")
    return {n: str(getattr(topics, n)) for n in names if isinstance(getattr(topics, n, None), str)}


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def collect(sessions: sessionmaker[Session], connector_state: ConnectorState | None, topics: Topics, *,
            settings: Settings | None = None, lags: Callable[[], list[Lag]] | None = None,
            health: Callable[[], list[tuple[HealthAlert, datetime]]] | None = None) -> OpsSnapshot:
    """Read what the view shows. Only aggregate queries and personal-data-free columns."""
    settings = settings or Settings()
    now = datetime.now(UTC)
    since = now - RATE_WINDOW
    rows: dict[str, FeedRow] = {
        f: FeedRow(f, FEED_LABELS.get(f, f), expected_interval_s=settings.expected_interval_s(f))
        for f in (*FEEDS, OTHER)
    }
    errors: list[str] = []
    flows: list[Flow] = []
    with sessions() as s:
        for feed, stage, outcome, n in s.execute(
            select(ProcessedEvent.feed, ProcessedEvent.stage, ProcessedEvent.outcome, func.count())
            .group_by(ProcessedEvent.feed, ProcessedEvent.stage, ProcessedEvent.outcome)
        ).all():
            row = rows[_feed(feed)]
            by_outcome = row.processed.setdefault(str(stage), {})
            by_outcome[str(outcome)] = by_outcome.get(str(outcome), 0) + int(n)
            row.processed_total += int(n)
        recent_counts: dict[tuple[str, str], int] = {}
        for feed, stage, n in s.execute(
            select(ProcessedEvent.feed, ProcessedEvent.stage, func.count()).where(ProcessedEvent.processed_at >= since)
            .group_by(ProcessedEvent.feed, ProcessedEvent.stage)
        ).all():
            key = (_feed(feed), str(stage))
            recent_counts[key] = recent_counts.get(key, 0) + int(n)
        minutes = RATE_WINDOW.total_seconds() / 60
        for f, row in rows.items():
            row.rate_per_min = round(recent_counts.get((f, INTAKE), 0) / minutes, 2)
            for stage, target in ((INTAKE, "intake"), (HOUSEHOLD, "hub")):
                n = sum(row.processed.get(stage, {}).values())
                if n:
                    flows.append(Flow(f if stage == INTAKE else "intake", target if stage == INTAKE else "hub",
                                      n, round(recent_counts.get((f, stage), 0) / minutes, 2)))
        team = int(s.scalar(select(func.count()).select_from(CaseEvent).where(CaseEvent.team_published)) or 0)
        team_recent = int(s.scalar(
            select(func.count()).select_from(CaseEvent).join(
                ProcessedEvent, (ProcessedEvent.source == CaseEvent.source)
                & (ProcessedEvent.event_id == CaseEvent.event_id) & (ProcessedEvent.stage == HOUSEHOLD))
            .where(CaseEvent.team_published, ProcessedEvent.processed_at >= since)) or 0)
        alerts_n = int(s.scalar(select(func.count()).select_from(AlertState)) or 0)
        alerts_recent = int(s.scalar(select(func.count()).select_from(AlertState)
                                     .where(AlertState.updated_at >= since)) or 0)
        flows.append(Flow("hub", "team", team, round(team_recent / minutes, 2)))
        flows.append(Flow("hub", "alerts", alerts_n, round(alerts_recent / minutes, 2)))
        for source, n in s.execute(
            select(HubDeadLetter.source, func.count()).group_by(HubDeadLetter.source)
        ).all():
            rows[_feed(source)].hub_dead_letters += int(n)
        by_reason = [DeadLetterCount(stage, STAGE_LABELS.get(stage, stage), feed, reason,
                                     REASON_CODES.get(reason, reason), n)
                     for stage, feed, reason, n in deadletters.counts(s)]
        for c in by_reason:
            rows[_feed(c.feed)].dead_letters += c.count
        recent = [
            RecentDeadLetter(id=r.id, at=jst(r.last_at), stage=r.stage, feed=r.feed, where=r.where, reason=r.reason,
                             reason_label=REASON_CODES.get(r.reason, r.reason), detail=r.detail)
            for r in s.scalars(select(deadletters.DeadLetterRow)
                               .order_by(deadletters.DeadLetterRow.last_at.desc(), deadletters.DeadLetterRow.id)
                               .limit(RECENT_DEAD_LETTERS))
        ]
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
                for connector, scopes, latest in s.execute(
                    select(CheckpointRow.connector, func.count(), func.max(CheckpointRow.updated_at))
                    .group_by(CheckpointRow.connector)
                ).all():
                    row = rows[_feed(connector)]
                    row.checkpoint_scopes += int(scopes)
                    row.last_checkpoint_at = jst(_aware(latest)) if latest is not None else row.last_checkpoint_at
            for feed, at in feed_last_success(connector_state).items():
                rows[_feed(feed)].last_success_at = jst(at)
            for feed, counts in connector_state.totals().items():
                rows[_feed(feed)].records_read += counts.get("read", 0)
                rows[_feed(feed)].connector_dead_letters += counts.get("dead_letters", 0)
        except Exception as exc:  # the view must still show the hub's side
            errors.append(f"connector state not readable ({type(exc).__name__})")
            connector_pending = None

    lag_rows: list[LagRow] | None = None
    if lags is not None:
        try:
            lag_rows = [LagRow(x.group, x.topic, x.partition, x.lag) for x in lags()]
        except Exception as exc:
            errors.append(f"consumer lag not readable: brokers unreachable ({type(exc).__name__})")
    health_rows = [HealthRow(a.rule, RULE_LABELS.get(a.rule, a.rule), a.subject, a.message, jst(at))
                   for a, at in (health() if health is not None else [])]

    feed_rows = [rows[f] for f in FEEDS]
    other = rows[OTHER]
    if other.processed_total or other.hub_dead_letters or other.dead_letters or other.outbox_pending \
            or other.checkpoint_scopes:
        feed_rows.append(other)
    stages = [INTAKE, HOUSEHOLD]
    for r in feed_rows:
        stages.extend(st for st in r.processed if st not in stages)
    return OpsSnapshot(
        generated_at=jst(now) or "",
        feeds=feed_rows,
        stages=stages,
        flows=flows,
        dead_letters_total=sum(c.count for c in by_reason),
        dead_letters_by_reason=by_reason,
        recent_dead_letters=recent,
        open_alerts=open_alerts,
        open_alert_labels={k: ALERT_LABELS.get(k, k) for k in open_alerts},
        identity_reviews_pending=reviews,
        hub_outbox_pending=hub_outbox,
        connector_outbox_pending=connector_pending,
        consumer_lag=lag_rows,
        health=health_rows,
        topics=_topic_names(topics),
        errors=errors,
    )


def checkpoints(connector_state: ConnectorState, feed: str | None = None) -> list[dict[str, Any]]:
    """The detail behind the per-feed summary: each checkpoint's feed, scope, positions and time (JST)."""
    with connector_state.sessions() as s:
        q = select(CheckpointRow).order_by(CheckpointRow.connector, CheckpointRow.scope)
        if feed:
            q = q.where(CheckpointRow.connector == feed)
        return [{"feed": r.connector, "scope": display_name(r.scope), "read_position": r.read_position,
                 "published_position": r.position, "updated_at": jst(r.updated_at)} for r in s.scalars(q)]


def render(snapshot: OpsSnapshot) -> str:
    """The page on its own (no login, no menu): the workspace's one ``ops.html``, in its layout."""
    from hub.workspace.web import templates  # the workspace mounts this module's router: imported late

    return templates.env.get_template("ops.html").render(ops=snapshot, refresh_s=REFRESH_S, nav=[], user=None,
                                                         current_path="/ops")


def make_ops_router(sessions: sessionmaker[Session], connector_state: ConnectorState | None,
                    topics: Topics, *, settings: Settings | None = None, lags: Callable[[], list[Lag]] | None = None,
                    health: Callable[[], list[tuple[HealthAlert, datetime]]] | None = None,
                    static: bool = True) -> APIRouter:
    """``GET /ops`` (HTML), ``GET /ops.json`` and ``GET /ops/checkpoints.json[?feed=F]``; with ``static``, also
    ``/static/`` (the workspace's stylesheet the page links), for an app that does not serve it already.

    The router has no access control of its own: whoever mounts it (the staff workspace) puts it
    behind the ``ops``/``admin`` roles. Handlers are sync so FastAPI runs the queries off the loop.
    """
    router = APIRouter()
    if static:
        from fastapi.staticfiles import StaticFiles

        from hub.workspace.web import STATIC_DIR  # imported late, as in ``render``

        router.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")

    def snapshot() -> OpsSnapshot:
        return collect(sessions, connector_state, topics, settings=settings, lags=lags, health=health)

    @router.get("/ops", response_class=HTMLResponse)
    def ops_page() -> HTMLResponse:
        return HTMLResponse(render(snapshot()), headers={"Cache-Control": "no-store"})

    @router.get("/ops.json")
    def ops_json() -> JSONResponse:
        return JSONResponse(snapshot().as_dict(), headers={"Cache-Control": "no-store"})

    @router.get("/ops/checkpoints.json")
    def ops_checkpoints(feed: str | None = None) -> JSONResponse:
        rows = checkpoints(connector_state, feed) if connector_state is not None else []
        return JSONResponse({"checkpoints": rows}, headers={"Cache-Control": "no-store"})

    return router
