"""The hub as a FastStream service: two consumer stages on Kafka, manual commits after durable work.

Stage ``intake`` (group ``<hub_group>``) reads the intake topic (keyed by the person's
record key), validates, resolves identity and re-keys each event by household onto the
``resolved`` topic. Stage ``household`` (group ``<hub_group>-household``) reads the
resolved topic, so one household's events are handled in order by one instance; it keeps
case state, asks the consent gate, writes the audit trail and publishes team, 支援会議
and alert events. Several hub instances in the same groups share the partitions.

Each batch: process and commit to the database (state, dedupe markers and an outbox of
what to publish, in one transaction) → publish exactly the outbox rows that batch wrote (no
re-read) and await the broker's acknowledgements → commit exactly that batch's Kafka offsets;
the published rows are deleted in the next batch's transaction (or after a short idle time).
Publishing and the offset commit of one batch run while the stage processes its next batch
(one batch in delivery per stage, in order). A crash
anywhere in between redelivers the batch; dedupe on (source, id) makes that harmless, and outbox
leftovers are relayed at start-up and after a failed batch. A message ``tsunagu deadletter replay``
put back on its topic (header ``tsunagu-replay-of``) is handed to the core at its original position.

Every message the hub publishes is a CloudEvent in structured mode (CloudEvents Kafka protocol
binding): the value is the event, the header ``content-type`` is
``application/cloudevents+json; charset=UTF-8``, the key is the partitioning key; no other headers.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage, KafkaRouter
from faststream.message import AckStatus

from hub.kafka.security import faststream_security
from hub.logging import get_logger
from hub.pipeline.deadletters import record_messages
from hub.pipeline.stages import HubCore, OutboxMessage, RawMessage
from hub.settings import Settings
from hub.topics import Topics

log = get_logger("tsunagu.hub")

#: CloudEvents Kafka protocol binding, structured content mode
CLOUDEVENTS_HEADERS: list[tuple[str, bytes]] = [("content-type", b"application/cloudevents+json; charset=UTF-8")]


def deadletter_group(settings: Settings) -> str:
    """The consumer group that files the dead-letter topic into the dead-letter store."""
    return f"{settings.hub_group}-deadletter"


#: header of a message ``tsunagu deadletter replay`` put back on its topic: ``topic:partition:offset`` of the
#: original, so the hub names the original's position (a still-bad event dead-letters again with the same id)
REPLAY_HEADER = "tsunagu-replay-of"


#: the cyclic GC's first-generation threshold while the hub runs (Python's default is 700): a batch allocates
#: tens of thousands of short-lived objects, and a collection every 700 of them cost stage 2 about a third of its time
GC_GEN0_THRESHOLD = 10_000


def tune_gc() -> None:
    """Fewer, cheaper cyclic collections for a long-running hub: what start-up loaded (modules, table metadata)
    is moved out of the collected generations, and the first generation is collected less often."""
    gc.freeze()
    gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(max(gen0, GC_GEN0_THRESHOLD), gen1, gen2)


def _raw(records: Sequence[Any]) -> list[RawMessage]:
    return [_origin(r) for r in records]


def _origin(r: Any) -> RawMessage:
    """The record as the hub core sees it; a replayed one at its original position (on the same topic only)."""
    for name, value in getattr(r, "headers", None) or ():
        if name == REPLAY_HEADER:
            try:
                topic, partition, offset = bytes(value).decode("ascii").rsplit(":", 2)
                if topic == r.topic:
                    return RawMessage(topic, int(partition), int(offset), r.key, r.value)
            except ValueError:
                pass
            break
    return RawMessage(r.topic, r.partition, r.offset, r.key, r.value)


class HubService:
    """Both hub stages on one KafkaBroker; ``relay`` publishes the core's outbox."""

    #: how long ``stop`` waits for the deliveries in flight
    STOP_DELIVERY_S = 10.0

    def __init__(self, core: HubCore, settings: Settings, bootstrap: str, *, instance: str = "hub") -> None:
        self.core = core
        core.defer_outbox_delete = True  # published rows go with the next batch (see ``_forget``)
        self.settings = settings
        self.topics = Topics(settings.topic_prefix)
        self.broker = KafkaBroker(
            bootstrap,
            security=faststream_security(bootstrap),
            client_id=f"tsunagu-{instance}",
            linger_ms=5,
            max_batch_size=512 * 1024,
            logger=None,
            acks="all",
        )
        self.bootstrap = bootstrap
        self.instance = instance
        self._producer: AIOKafkaProducer | None = None
        self._relay_lock = asyncio.Lock()
        self._cleanup: set[asyncio.Task[None]] = set()
        #: per stage, the delivery (publish, acknowledgements, offset commit) of its last processed batch
        self._delivering: dict[str, asyncio.Task[None]] = {}
        common: dict[str, Any] = {
            "batch": True,
            "max_records": 500,
            "batch_timeout_ms": settings.batch_timeout_ms,
            "ack_policy": AckPolicy.MANUAL,  # never ACK_FIRST: offsets move only after durable work
            "auto_offset_reset": "earliest",  # Tansu's "latest" is wrong; committed offsets decide
            "session_timeout_ms": settings.session_timeout_ms,
            "heartbeat_interval_ms": settings.heartbeat_interval_ms,
            "fetch_max_wait_ms": settings.fetch_max_wait_ms,
        }

        self.broker.include_router(
            self._stage_router(self.topics.intake, settings.hub_group, self.core.process_intake, common))
        self.broker.include_router(
            self._stage_router(self.topics.resolved, f"{settings.hub_group}-household", self.core.process_household,
                               common))
        # every stage's dead letters into the dead-letter store (/ops, /metrics, `tsunagu deadletter`)
        self.broker.include_router(
            self._stage_router(self.topics.deadletter, deadletter_group(settings), self._record_dead_letters, common))

    def _record_dead_letters(self, batch: Sequence[RawMessage]) -> list[OutboxMessage]:
        record_messages(self.core.sessions, [(m.value, m.topic, m.partition, m.offset) for m in batch])
        return []  # filing dead letters publishes nothing

    def _stage_router(self, topic: str, group: str, step: Callable[[Sequence[RawMessage]], list[OutboxMessage]],
                      common: dict[str, Any]) -> KafkaRouter:
        """One FastStream router per stage: its topic, its consumer group, its step of the hub core."""
        router = KafkaRouter()

        @router.subscriber(topic, group_id=group, **common)  # type: ignore[untyped-decorator]
        async def on_batch(_body: Any, message: KafkaMessage) -> None:
            await self._handle(message, step, group)

        return router

    async def _handle(self, message: KafkaMessage, step: Any, stage: str = "") -> None:
        """Process one batch (committed to the database), then hand its outbox to the stage's delivery chain:
        published and acknowledged, then the batch's offsets committed, while the next batch is processed.

        At most one batch per stage is being delivered while the next one is processed; deliveries (and so
        offset commits) run in batch order, and the offsets committed are exactly this batch's."""
        records = message.raw_message
        if not isinstance(records, (list, tuple)):
            records = [records]
        t0 = time.perf_counter()
        try:
            written = await asyncio.to_thread(step, _raw(records))
        except Exception as exc:
            log.error("batch failed; it will be redelivered", error_type=type(exc).__name__, count=len(records))
            await message.nack()
            await asyncio.sleep(0.5)
            try:
                await self.relay()  # what the failed batch may have committed but not published
            except Exception as relay_exc:
                log.error("relay failed", error_type=type(relay_exc).__name__)
            return
        log.debug("batch processed", stage=getattr(step, "__name__", "?"), count=len(records),
                  elapsed_s=round(time.perf_counter() - t0, 4))
        previous = self._delivering.get(stage)
        delivery = asyncio.create_task(self._deliver(previous, message, records, written or []))
        self._delivering[stage] = delivery
        if previous is not None:
            await previous  # back-pressure: the batch before this one is delivered before the next is read

    async def _deliver(self, previous: asyncio.Task[None] | None, message: KafkaMessage, records: Sequence[Any],
                       written: Sequence[OutboxMessage]) -> None:
        """Publish a committed batch's outbox, await the acknowledgements, then commit its offsets."""
        if previous is not None:
            await previous  # in batch order: outputs per key and offset commits stay ordered
        t1 = time.perf_counter()
        delay = 0.5
        while True:
            try:
                await self._publish(written)
                break
            except Exception as exc:  # the rows are durable in the outbox: relay them until the broker takes them
                log.error("publish failed; relaying the outbox", error_type=type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                try:
                    await self.relay()
                    break
                except Exception as relay_exc:
                    log.error("relay failed", error_type=type(relay_exc).__name__)
        await self._commit(message, records)  # offsets only now: the batch's outbox is acknowledged
        if written:
            self._forget([m.seq for m in written])
        log.debug("batch delivered", count=len(records), publish_s=round(time.perf_counter() - t1, 4))

    @staticmethod
    async def _commit(message: KafkaMessage, records: Sequence[Any]) -> None:
        """Commit exactly this batch's offsets (not the consumer's position, which may be a later batch's)."""
        offsets: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
        consumer = getattr(message, "consumer", None)
        if consumer is None or not offsets:
            await message.ack()
            return
        try:
            await consumer.commit(offsets)
        except Exception as exc:  # e.g. a rebalance took the partition: its new owner gets it again (dedupe)
            log.warning("offset commit failed; the batch will be redelivered", error_type=type(exc).__name__)
        message.committed = AckStatus.ACKED

    async def _publish(self, rows: Sequence[OutboxMessage]) -> None:
        """Send the rows in order with the CloudEvents headers and await every acknowledgement."""
        if not rows:
            return
        assert self._producer is not None, "start() the service first"
        futures = [await self._producer.send(r.topic, value=r.value, key=r.key, headers=CLOUDEVENTS_HEADERS)
                   for r in rows]
        await asyncio.gather(*futures)

    #: how long published rows may wait for a next batch to delete them before an idle hub deletes them itself
    IDLE_FLUSH_S = 0.5

    def _forget(self, seqs: list[int]) -> None:
        """Published outbox rows go with the next batch's transaction (a crash first only means a re-publish);
        when no batch follows soon, they are deleted in the background."""
        self.core.outbox_done(seqs)
        if not self._cleanup:
            task = asyncio.create_task(self._idle_flush())
            self._cleanup.add(task)
            task.add_done_callback(self._cleanup.discard)

    async def _idle_flush(self) -> None:
        await asyncio.sleep(self.IDLE_FLUSH_S)
        try:
            await asyncio.to_thread(self.core.outbox_flush)
        except Exception as exc:  # the rows stay queued: the next batch or flush deletes them
            log.warning("outbox clean-up failed", error_type=type(exc).__name__)

    async def relay(self) -> int:
        """Publish every outbox row in order, await acknowledgements, then delete them."""
        total = 0
        async with self._relay_lock:
            await asyncio.to_thread(self.core.outbox_flush)  # rows already published are not published again
            while True:
                rows = await asyncio.to_thread(self.core.outbox_batch, 2000)
                if not rows:
                    return total
                await self._publish(rows)
                await asyncio.to_thread(self.core.outbox_done, [r.seq for r in rows])
                await asyncio.to_thread(self.core.outbox_flush)
                total += len(rows)

    async def start(self) -> None:
        tune_gc()
        # no linger: a batch's outbox is appended in one go (no await yields in between) and then awaited,
        # so lingering would only delay its acknowledgement
        self._producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, client_id=f"tsunagu-{self.instance}",
                                          acks="all", linger_ms=0,
                                          max_batch_size=512 * 1024, request_timeout_ms=30000)
        await self._producer.start()
        await self.relay()  # leftovers of a crash between commit and publish
        await self.broker.start()
        log.info("hub started", group=self.settings.hub_group)

    async def stop(self) -> None:
        pending = [t for t in self._delivering.values() if not t.done()]
        if pending:  # the last batches' outboxes and offsets, before the consumers leave (bounded: a broker
            # that stays away leaves them in the outbox and uncommitted, relayed and redelivered next start)
            _done, late = await asyncio.wait(pending, timeout=self.STOP_DELIVERY_S)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self.broker.stop()
        for task in list(self._cleanup):
            task.cancel()
        await asyncio.gather(*self._cleanup, return_exceptions=True)
        try:
            await asyncio.to_thread(self.core.outbox_flush)
        except Exception as exc:  # left in the outbox: relayed (again) at the next start
            log.warning("outbox clean-up failed", error_type=type(exc).__name__)
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        log.info("hub stopped")
