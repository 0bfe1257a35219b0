"""The hub's processing core, synchronous and testable without a broker.

``process_intake`` and ``process_household`` each take one batch of raw Kafka messages,
do all their work in ONE database transaction (state, dedupe markers, audit, and an outbox
of the messages to publish) and commit it. The service publishes the outbox afterwards and
only then commits the Kafka offsets.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import and_, delete, event, insert, or_, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from connectors.runner import dead_letter_event, dead_letter_id
from hub.db import get_row
from hub.logging import get_logger
from hub.pipeline import adapters, bulk
from hub.pipeline.ordering import correct_after_consent
from hub.pipeline.reattribute import current_attribution, reattribute
from hub.pipeline.tables import CaseEvent, CaseState, HubDeadLetter, HubOutbox, ProcessedEvent
from hub.pipeline.timers import StageTimers
from hub.topics import Topics
from schemas.codes import Field
from schemas.deadletter import DeadLetter
from schemas.envelope import CloudEvent
from schemas.events import (
    EVENT_TYPES,
    CaseV1,
    ConsentV1,
    PersonObservedV1,
    ReferralRequestedV1,
    ResidentObservedV1,
    UnknownEventType,
    parse_payload,
)
from schemas.wareki import parse_jst_datetime

log = get_logger("tsunagu.hub")

INTAKE = "intake"
HOUSEHOLD = "household"


@dataclass(frozen=True, slots=True)
class RawMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes

    @property
    def where(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    seq: int
    topic: str
    key: bytes | None
    value: bytes


class Rejected(Exception):
    """A message that can never be processed: it becomes a dead letter with this reason."""

    def __init__(self, reason: str, record: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.record = record


def validation_reason(exc: ValidationError, what: str) -> str:
    """Name the failing locations and error types only: pydantic messages can quote input values."""
    parts = sorted({".".join(str(p) for p in e["loc"]) + ":" + e["type"] for e in exc.errors()})
    return f"{what} failed validation ({'; '.join(parts[:5])})"


def now() -> datetime:
    return datetime.now(UTC)


def _parse_payload(ev: CloudEvent) -> BaseModel | UnknownEventType | ValidationError:
    """The event's payload model, or why it has none."""
    try:
        return parse_payload(ev.type, ev.data)
    except (UnknownEventType, ValidationError) as exc:
        return exc


class HubCore:
    def __init__(self, sessions: sessionmaker[Session], topics: Topics, *, alert_settings: Any = None,
                 today: Callable[[], date] | None = None, seal: Callable[[bytes], str] | None = None) -> None:
        self.sessions = sessions
        #: seals a dead letter's original message (``hub.ops.deadletters.sealer_of``); None: not kept
        self.seal = seal
        self.topics = topics
        self.alert_settings = alert_settings
        self.today = today or (lambda: datetime.now(adapters.JST).date())
        #: seconds spent deciding consent, auditing and evaluating alerts (read by ``tsunagu bench``)
        self.timers = StageTimers()
        # per-batch work queues; thread-local because stages and instances run batches in threads
        self._local = threading.local()
        if not event.contains(sessions, "before_flush", _collect_outbox):
            event.listen(sessions, "before_flush", _collect_outbox)
        bulk.install(sessions)
        bind = sessions.kw.get("bind")
        self._sqlite = bind is not None and bind.dialect.name == "sqlite"
        self._sqlite_writer = threading.Lock()
        #: whether ``outbox_done`` leaves the deletion to the next batch's transaction (the service sets it: a small
        #: batch then pays no write transaction of its own for it) or deletes at once (the default)
        self.defer_outbox_delete = False
        #: outbox rows published and acknowledged, to be deleted in the next batch's transaction or by ``outbox_flush``
        self._done: list[int] = []
        self._done_lock = threading.Lock()

    def _writing(self) -> contextlib.AbstractContextManager[Any]:
        """On SQLite (one writer at a time), this core's write transactions take turns on a lock of the process,
        so a waiting stage starts the moment the other commits instead of polling SQLite's busy handler."""
        return self._sqlite_writer if self._sqlite else contextlib.nullcontext()

    @property
    def _audit(self) -> list[tuple[CloudEvent, Any]]:
        return self._local.__dict__.setdefault("audit", [])  # type: ignore[no-any-return]

    @_audit.setter
    def _audit(self, value: list[tuple[CloudEvent, Any]]) -> None:
        self._local.audit = value

    @property
    def _households(self) -> set[str]:
        return self._local.__dict__.setdefault("households", set())  # type: ignore[no-any-return]

    @_households.setter
    def _households(self, value: set[str]) -> None:
        self._local.households = value

    # ------------------------------------------------------------------ outbox
    def outbox_batch(self, limit: int) -> list[OutboxMessage]:
        """The oldest ``limit`` outbox rows not yet published (those ``outbox_done`` named are left out)."""
        with self._done_lock:
            done = set(self._done)
        with self.sessions() as s:
            stmt = select(HubOutbox).order_by(HubOutbox.seq)
            rows = [r for r in s.scalars(stmt.limit(limit + len(done))) if r.seq not in done][:limit]
            return [OutboxMessage(r.seq, r.topic, r.key.encode() if r.key else None, r.value) for r in rows]

    def outbox_done(self, seqs: Sequence[int]) -> None:
        """These rows are published: deleted now, or with ``defer_outbox_delete`` in the next batch's transaction
        (a crash first only means a re-publish; ``outbox_batch`` leaves them out meanwhile)."""
        with self._done_lock:
            self._done.extend(seqs)
        if not self.defer_outbox_delete:
            self.outbox_flush()

    def outbox_flush(self) -> None:
        """Delete the rows ``outbox_done`` was told of now, in a transaction of their own (idle, relay, stop)."""
        done = self._take_done()
        if not done:
            return
        try:
            with self._writing(), self.sessions.begin() as s:
                self._delete_done(s, done)
        except BaseException:
            self._requeue_done(done)
            raise

    def _take_done(self) -> list[int]:
        with self._done_lock:
            done, self._done = self._done, []
        return done

    def _requeue_done(self, done: list[int]) -> None:
        with self._done_lock:
            self._done[:0] = done

    @staticmethod
    def _delete_done(s: Session, done: list[int]) -> None:
        for chunk in _chunks(done, 500):
            s.execute(delete(HubOutbox).where(HubOutbox.seq.in_(chunk)))

    @staticmethod
    def emit(s: Session, topic: str, key: str | None, value: bytes) -> None:
        bulk.add_row(s, HubOutbox, {"topic": topic, "key": key, "value": value, "created_at": now()})

    def dead_letter(self, s: Session, stage: str, msg: RawMessage, reason: str, *, source: str | None = None,
                    event: CloudEvent | None = None, record: str | None = None) -> None:
        """File ``msg`` as a dead letter in the batch's transaction: its row (the same dead letter again — a
        still-bad replay, named at its original position — counts in ``occurrences``), its message on the
        dead-letter topic (via the outbox) with the original value and key sealed when a key is set, and the
        event's ``dead`` marker."""
        feed = adapters.feed_of(event.source) if event else None
        dl = DeadLetter(
            source=feed or source or "hub",
            where=msg.where,
            record=record or (event.sourcerecord if event else None),
            reason=reason,
            stage=f"hub.{stage}",
            event=event.id if event else None,
            at=now(),
        )
        ident = dead_letter_id(dl, "hub")
        same = HubDeadLetter.dead_letter == ident
        if dl.event is not None:  # a row from before ids were kept: the same event dead at the same stage
            same = or_(same, and_(HubDeadLetter.dead_letter.is_(None), HubDeadLetter.stage == stage,
                                  HubDeadLetter.event_id == dl.event))
        row = s.scalars(select(HubDeadLetter).where(same).limit(1)).first()
        if row is None:
            s.add(HubDeadLetter(stage=stage, source=dl.source, event_id=dl.event, record=dl.record,
                                reason=reason, at=now(), dead_letter=ident, occurrences=1))
        else:
            row.dead_letter = ident
            row.occurrences += 1
        sealed = self.seal(msg.value) if self.seal is not None else None
        sealed_key = self.seal(msg.key) if self.seal is not None and msg.key is not None else None
        self.emit(s, self.topics.deadletter, dl.record, dead_letter_event(
            dl, stage="hub", topic=msg.topic, partition=msg.partition, offset=msg.offset, sealed=sealed,
            sealed_key=sealed_key))
        if event is not None:
            self._mark(s, stage, event, "dead")
        log.warning("dead letter", stage=stage, where=msg.where, reason=reason, event_id=dl.event)

    @staticmethod
    def _mark(s: Session, stage: str, ev: CloudEvent, outcome: str) -> None:
        bulk.add_row(s, ProcessedEvent, {"stage": stage, "source": ev.source, "event_id": ev.id, "outcome": outcome,
                                         "feed": adapters.feed_of(ev.source), "processed_at": now()})

    # ------------------------------------------------------------------ batches
    def _seen_keys(self, s: Session, stage: str, events: Sequence[CloudEvent]) -> set[tuple[str, str]]:
        """The batch's events already durably handled: one IN query per source on the full primary key."""
        by_source: dict[str, set[str]] = {}
        for ev in events:
            by_source.setdefault(ev.source, set()).add(ev.id)
        seen: set[tuple[str, str]] = set()
        for source, ids in by_source.items():
            for chunk in _chunks(sorted(ids), 500):
                stmt = select(ProcessedEvent.event_id).where(
                    ProcessedEvent.stage == stage, ProcessedEvent.source == source, ProcessedEvent.event_id.in_(chunk))
                seen.update((source, i) for (i,) in s.execute(stmt))
        return seen

    def _run_batch(self, stage: str, batch: Sequence[RawMessage],
                   handle: Callable[[Session, RawMessage, CloudEvent, BaseModel], None]) -> list[OutboxMessage]:
        """One transaction for the whole batch; returns the outbox rows it wrote (to publish after commit).
        It also deletes the outbox rows published since the last batch (``outbox_done``)."""
        done = self._take_done()
        try:
            return self._run_batch_tx(stage, batch, handle, done)
        except BaseException:
            self._requeue_done(done)
            raise

    def _run_batch_tx(self, stage: str, batch: Sequence[RawMessage],
                      handle: Callable[[Session, RawMessage, CloudEvent, BaseModel], None],
                      done: list[int]) -> list[OutboxMessage]:
        self._audit = []
        self._households = set()
        with self._writing(), self.sessions.begin() as s:
            if done:
                self._delete_done(s, done)
            written: list[Any] = []
            s.info[bulk.OUTBOX] = written
            appended: _Bulk = s.info.setdefault(_BULK, _Bulk())
            if stage == INTAKE and s.get_bind().dialect.name == "postgresql":
                # Identity resolution reads then creates persons: serialize it across hub instances,
                # or two instances could each create a person for the same human at the same time.
                s.execute(text("SELECT pg_advisory_xact_lock(7200501)"))
            parsed: list[tuple[RawMessage, CloudEvent | str]] = []  # the event, or why its envelope is bad
            for msg in batch:
                try:
                    parsed.append((msg, CloudEvent.from_json_bytes(msg.value)))
                except ValidationError as exc:
                    parsed.append((msg, validation_reason(exc, "CloudEvent envelope")))
                except ValueError:
                    parsed.append((msg, "message is not JSON"))
            events = [ev for _, ev in parsed if isinstance(ev, CloudEvent)]
            seen = self._seen_keys(s, stage, events)
            fresh = [ev for ev in events if ev.dedupe_key not in seen]
            # each payload parsed once: the read-ahead and the handler use the same model
            payloads: dict[tuple[str, str], BaseModel | Exception] = {}
            for fresh_ev in fresh:
                if fresh_ev.dedupe_key not in payloads:
                    payloads[fresh_ev.dedupe_key] = _parse_payload(fresh_ev)
            if stage == INTAKE:
                adapters.read_ahead_identity(s, fresh, [(e, p) for e in fresh
                                                        if isinstance(p := payloads[e.dedupe_key], BaseModel)])
            else:
                adapters.read_ahead_household(s, fresh)
                adapters.read_ahead_gate(s, fresh)
                s.info[_FRESH] = ({ev.dedupe_key: i for i, ev in enumerate(fresh)}, fresh)
            for msg, ev in parsed:
                if isinstance(ev, str):
                    self.dead_letter(s, stage, msg, ev)
                    continue
                if ev.dedupe_key in seen:
                    continue  # redelivery (or a repeat within the batch): already handled
                seen.add(ev.dedupe_key)
                payload = payloads.pop(ev.dedupe_key, None) or _parse_payload(ev)
                if isinstance(payload, UnknownEventType):
                    self.dead_letter(s, stage, msg, "unknown event type", event=ev)
                    continue
                if isinstance(payload, ValidationError):
                    self.dead_letter(s, stage, msg, validation_reason(payload, ev.type), event=ev)
                    continue
                assert isinstance(payload, BaseModel)
                try:
                    handle(s, msg, ev, payload)  # raises Rejected before it writes anything
                except Rejected as exc:
                    self.dead_letter(s, stage, msg, exc.reason, event=ev, record=exc.record)
            sent = appended.write(s)
            self._finish_batch(s)
            s.flush()
            bulk.write_pending(s)
            out = _published(written)
            return sorted([*out, *sent], key=lambda o: o.seq) if sent else out

    def _finish_batch(self, s: Session) -> None:
        """Once per batch: evaluate touched households, then append the queued decisions to the audit chain
        (last, so the chain's head is locked only until the commit that follows)."""
        try:
            if self._households:
                for household, alert_event in adapters.evaluate_alerts_many(
                        s, sorted(self._households), self.today(), self.alert_settings, timers=self.timers):
                    self.emit(s, self.topics.alerts, household, alert_event)
            if self._audit:
                bulk.write_pending(s)
                s.flush()  # everything else first: the head stays locked only for the chain's rows and the commit
                adapters.audit_many(s, self._audit, timers=self.timers)
        finally:
            self._audit = []
            self._households = set()

    #: a message that fails alone is retried this many times (capped, jittered backoff) before it is dead-lettered
    RETRIES = 3
    BACKOFF_BASE_S = 0.05
    BACKOFF_CAP_S = 1.0

    def _backoff(self, attempt: int) -> float:
        """Full jitter: a random wait up to min(cap, base·2^attempt) seconds."""
        return random.uniform(0, min(self.BACKOFF_CAP_S, self.BACKOFF_BASE_S * (2 ** attempt)))

    def _process(self, stage: str, batch: Sequence[RawMessage],
                 handle: Callable[[Session, RawMessage, CloudEvent, BaseModel], None]) -> list[OutboxMessage]:
        """One transaction per batch; if it fails, halves of it, down to single messages, so a poison
        message cannot block the partition: alone, it is retried ``RETRIES`` times with capped, jittered
        backoff and then dead-lettered with its topic, partition and offset while the rest flows.

        A database that is unreachable (OperationalError) fails the whole batch, which is then
        redelivered; the error of a single message is named by its type only (no personal data).
        """
        try:
            return self._run_batch(stage, batch, handle)
        except OperationalError:
            raise
        except Exception as exc:
            if len(batch) > 1:
                mid = len(batch) // 2
                return self._process(stage, batch[:mid], handle) + self._process(stage, batch[mid:], handle)
            error = exc
        [msg] = batch
        for attempt in range(self.RETRIES):
            time.sleep(self._backoff(attempt))
            try:
                return self._run_batch(stage, [msg], handle)
            except OperationalError:
                raise
            except Exception as exc:
                error = exc
        with self._writing(), self.sessions.begin() as s:
            written: list[Any] = []
            s.info[bulk.OUTBOX] = written
            ev = _try_event(msg)
            if ev is not None and self._seen_keys(s, stage, [ev]):
                return []
            self.dead_letter(s, stage, msg, f"internal error ({type(error).__name__}) after {self.RETRIES + 1} "
                                            "attempts", event=ev)
            s.flush()
            bulk.write_pending(s)
            return _published(written)

    def process_intake(self, batch: Sequence[RawMessage]) -> list[OutboxMessage]:
        """Stage 1 on one batch, committed; the outbox rows written (the caller publishes them)."""
        return self._process(INTAKE, batch, self._intake_one)

    def process_household(self, batch: Sequence[RawMessage]) -> list[OutboxMessage]:
        """Stage 2 on one batch, committed; the outbox rows written (the caller publishes them)."""
        return self._process(HOUSEHOLD, batch, self._household_one)

    # ------------------------------------------------------------------ stage 1: identity
    def _intake_one(self, s: Session, msg: RawMessage, ev: CloudEvent, payload: BaseModel) -> None:
        person, household = adapters.resolve_identity(s, ev, payload)
        out = ev.model_copy(update={"person": person, "household": household})
        key = household or person or ev.sourcerecord
        appended: _Bulk = s.info[_BULK]  # written in bulk at the end of the batch, in this order
        at = now()
        appended.outbox.append({"topic": self.topics.resolved, "key": key, "value": out.to_json_bytes(),
                                "created_at": at})
        appended.marks.append({"stage": INTAKE, "source": ev.source, "event_id": ev.id, "outcome": "forwarded",
                               "feed": adapters.feed_of(ev.source), "processed_at": at})

    # ------------------------------------------------------------------ stage 2: household
    def _household_one(self, s: Session, msg: RawMessage, ev: CloudEvent, payload: BaseModel) -> None:
        handler = HOUSEHOLD_HANDLERS.get(type(payload))
        if handler is None:
            raise Rejected("event type not handled at the household stage")
        if isinstance(payload, (ResidentObservedV1, PersonObservedV1)):
            adapters.forget_gate(s)  # identity may have changed meanwhile: read it again for what follows
        elif isinstance(payload, ConsentV1):
            pass  # the gate learns the stored version (adapters.store_consent)
        elif not adapters.has_gate(s):
            adapters.read_ahead_gate(s, _gate_window(s, ev))
        self._mark(s, HOUSEHOLD, ev, handler(self, s, ev, payload))

    def _on_case(self, s: Session, ev: CloudEvent, payload: Any) -> str:
        return self._case(s, ev, payload)

    def _on_referral(self, s: Session, ev: CloudEvent, payload: Any) -> str:
        self._share(s, ev, payload)
        return "applied"

    def _on_consent(self, s: Session, ev: CloudEvent, payload: Any) -> str:
        self._consent(s, ev, payload)
        return "applied"

    def _on_resident(self, s: Session, ev: CloudEvent, payload: Any) -> str:
        if ev.person:
            self._follow_move(s, ev.person)
        return self._on_person(s, ev, payload)

    def _on_person(self, s: Session, ev: CloudEvent, payload: Any) -> str:
        if ev.household:
            self._alerts(s, ev.household)
        return "applied"

    def _follow_move(self, s: Session, person: str) -> None:
        """A registry update moved a person to another household: their cases and alerts follow."""
        if not adapters.may_have_cases(s, person):
            return
        records = {r for (r,) in s.execute(select(CaseState.record).where(CaseState.person_id == person))}
        if records:
            reattribute(s, records, prefix=self.topics.prefix, today=self.today(), alert_settings=self.alert_settings)

    def _case(self, s: Session, ev: CloudEvent, case: CaseV1) -> str:
        revision = parse_jst_datetime(case.revision)
        state = get_row(s, CaseState, case.case)
        stale = state is not None and adapters.aware(state.revision) > revision
        if not stale:
            if state is None:
                state = CaseState(case=case.case, record=ev.sourcerecord, feed=case.feed.value,
                                  field=(ev.field or adapters.field_of_feed(case.feed)).value,
                                  opened_on=case.opened_on, status=case.status.value, revision=revision)
                s.add(state)
            # identity may have changed since stage 1 resolved this event (a review decision)

            now_at = current_attribution(s, ev.sourcerecord)
            state.person_id, state.household_id = now_at if now_at else (ev.person, ev.household)
            adapters.has_cases(s, state.person_id)
            state.status = case.status.value
            state.opened_on = case.opened_on
            state.closed_on = case.closed_on if case.closed_on else (
                revision.astimezone(adapters.JST).date() if case.status.is_terminal else None)
            state.topics = [t.value for t in case.topics]
            state.members = {
                m.person.record: {"relation": m.person.relation.value if m.person.relation else None,
                                  "notes": [n.value for n in m.notes]}
                for m in case.household_members
            }
            state.revision = revision
        self._share(s, ev, case)
        if ev.household:
            self._alerts(s, ev.household)
        return "stale" if stale else "applied"

    def _share(self, s: Session, ev: CloudEvent, payload: CaseV1 | ReferralRequestedV1) -> None:
        """Keep the event, ask the consent gate, audit the decision, publish what it permits."""
        published = self._decide_and_publish(s, ev, payload)
        bulk.add_row(s, CaseEvent, {
            "event_id": ev.id, "source": ev.source, "record": ev.sourcerecord, "person_id": ev.person,
            "household_id": ev.household, "field": ev.field.value if ev.field else None, "type": ev.type,
            "time": ev.time, "team_published": published, "payload": ev.to_json_bytes()})

    def _decide_and_publish(self, s: Session, ev: CloudEvent, payload: CaseV1 | ReferralRequestedV1) -> bool:
        """Whether the event went to the team."""
        decision = adapters.decide_for(s, ev, timers=self.timers)
        self._audit.append((ev, decision))
        if decision.permit and decision.route in ("team", "emergency"):
            self.emit(s, self.topics.team, ev.household or ev.person, adapters.team_event(ev))
            return True
        if decision.permit and decision.route == "support_meeting" and isinstance(payload, CaseV1):
            self.emit(s, self.topics.support_meeting, ev.household,
                      adapters.support_meeting_event(ev, payload, self.today()))
        return False

    def _consent(self, s: Session, ev: CloudEvent, consent: ConsentV1) -> None:
        adapters.store_consent(s, ev, consent)
        if consent.status != "active" and ev.person:
            self.emit(s, self.topics.team, ev.household or ev.person, adapters.withdrawal_notice(ev, consent))
        if ev.person is None:
            return
        # the person's kept events of these fields, read once for both steps below
        kept = s.scalars(
            select(CaseEvent)
            .where(CaseEvent.person_id == ev.person)
            .where(CaseEvent.field.in_([f.value for f in consent.fields]))
            .order_by(CaseEvent.time)
        ).all()
        # Events the team got that this version (arriving late) no longer permits are retracted.
        correct_after_consent(self, s, ev, consent, kept)
        # A consent may release events that arrived before it (or just retracted): decide them again.
        held = [row for row in kept if not row.team_published]
        held_events = [CloudEvent.from_json_bytes(row.payload) for row in held]
        adapters.ensure_gate(s, held_events)  # one set read for every held event's decision
        for row, held_ev in zip(held, held_events, strict=True):
            decision = adapters.decide_for(s, held_ev, timers=self.timers)
            if decision.permit and decision.route == "team":
                self._audit.append((held_ev, decision))
                self.emit(s, self.topics.team, held_ev.household or held_ev.person, adapters.team_event(held_ev))
                row.team_published = True

    def _alerts(self, s: Session, household: str) -> None:
        """Alerts are evaluated once per touched household at the end of the batch."""
        self._households.add(household)


_FRESH = "tsunagu_fresh"
#: event types that keep the gate (a consent updates it; resident and person events make it read again)
_GATED_TYPES = frozenset(t for t, model in EVENT_TYPES.items() if model in (CaseV1, ReferralRequestedV1, ConsentV1))


def _gate_window(s: Session, ev: CloudEvent) -> list[CloudEvent]:
    """The batch's events from ``ev`` on up to the next one that makes the gate forget (a resident or person
    event): the consent gate after a forget is read again for these, in set queries."""
    index: dict[tuple[str, str], int]
    fresh: list[CloudEvent]
    index, fresh = s.info.get(_FRESH, ({}, []))
    start = index.get(ev.dedupe_key)
    if start is None:
        return [ev]
    end = start
    while end < len(fresh) and fresh[end].type in _GATED_TYPES:
        end += 1
    return fresh[start:max(end, start + 1)]


def _try_event(msg: RawMessage) -> CloudEvent | None:
    try:
        return CloudEvent.from_json_bytes(msg.value)
    except ValueError:
        return None


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


_BULK = "tsunagu_bulk"


@dataclass(slots=True)
class _Bulk:
    """Rows a batch appends (outbox messages, dedupe markers), written with one multi-row INSERT each."""

    outbox: list[dict[str, Any]] = field(default_factory=list)
    marks: list[dict[str, Any]] = field(default_factory=list)

    def write(self, s: Session) -> list[OutboxMessage]:
        """Insert the queued rows; the outbox messages written (with their seq)."""
        sent: list[OutboxMessage] = []
        if self.outbox:
            # each returned row names its own message, so no row-by-row insert is needed to pair seq and message
            stmt = insert(HubOutbox).returning(HubOutbox.seq, HubOutbox.topic, HubOutbox.key, HubOutbox.value)
            sent = sorted((OutboxMessage(seq, topic, key.encode() if key else None, value)
                           for seq, topic, key, value in s.execute(stmt, self.outbox)), key=lambda o: o.seq)
            if len(sent) != len(self.outbox):
                raise RuntimeError("outbox insert returned fewer rows than it wrote")
        if self.marks:
            s.execute(insert(ProcessedEvent), self.marks)
        self.outbox, self.marks = [], []
        return sent


def _published(written: Sequence[Any]) -> list[OutboxMessage]:
    """The outbox rows a batch wrote (bulk rows and ORM objects alike), in ``seq`` order: the order to publish."""
    return [OutboxMessage(o.seq, o.topic, o.key.encode() if o.key else None, o.value)
            for o in sorted(written, key=lambda o: o.seq)]


def _collect_outbox(session: Session, _context: Any, _instances: Any) -> None:
    """Before each flush: keep the batch's new outbox rows (their seq is known after the flush)."""
    written = session.info.get(bulk.OUTBOX)
    if written is not None:
        written.extend(o for o in session.new if isinstance(o, HubOutbox))


def fields_of(values: Iterable[str]) -> list[Field]:
    return [Field(v) for v in values]


#: the household stage's handler per payload model (its outcome is recorded with the dedupe marker)
HOUSEHOLD_HANDLERS: dict[type[BaseModel], Callable[[HubCore, Session, CloudEvent, Any], str]] = {
    CaseV1: HubCore._on_case,
    ReferralRequestedV1: HubCore._on_referral,
    ConsentV1: HubCore._on_consent,
    ResidentObservedV1: HubCore._on_resident,
    PersonObservedV1: HubCore._on_person,
}
