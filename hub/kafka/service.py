"""The hub as a FastStream service: two consumer stages on Kafka, manual commits after durable work.

Stage ``intake`` (group ``<hub_group>``) reads the intake topic (keyed by the person's
record key), validates, resolves identity and re-keys each event by household onto the
``resolved`` topic. Stage ``household`` (group ``<hub_group>-household``) reads the
resolved topic, so one household's events are handled in order by one instance; it keeps
case state, asks the consent gate, writes the audit trail and publishes team, 支援会議
and alert events. Several hub instances in the same groups share the partitions.

Each batch: process and commit to the database (state, dedupe markers and an outbox of
what to publish, in one transaction) → publish the outbox and await the broker's
acknowledgements → delete those outbox rows → commit the Kafka offsets. A crash anywhere
in between redelivers the batch; dedupe on (source, id) makes that harmless, and outbox
leftovers are published at the next batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage, KafkaRouter

from hub.kafka.security import faststream_security
from hub.logging import get_logger
from hub.pipeline.deadletters import record_messages
from hub.pipeline.stages import HubCore, RawMessage
from hub.settings import Settings
from hub.topics import Topics

log = get_logger("tsunagu.hub")


def deadletter_group(settings: Settings) -> str:
    """The consumer group that files the dead-letter topic into the dead-letter store."""
    return f"{settings.hub_group}-deadletter"


def _raw(records: Sequence[Any]) -> list[RawMessage]:
    return [RawMessage(r.topic, r.partition, r.offset, r.key, r.value) for r in records]


class HubService:
    """Both hub stages on one KafkaBroker; ``relay`` publishes the core's outbox."""

    def __init__(self, core: HubCore, settings: Settings, bootstrap: str, *, instance: str = "hub") -> None:
        self.core = core
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
        self._relay_lock = asyncio.Lock()
        common: dict[str, Any] = {
            "batch": True,
            "max_records": 500,
            "batch_timeout_ms": 50,
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

    def _record_dead_letters(self, batch: Sequence[RawMessage]) -> None:
        record_messages(self.core.sessions, [(m.value, m.topic, m.partition, m.offset) for m in batch])

    def _stage_router(self, topic: str, group: str, step: Callable[[Sequence[RawMessage]], None],
                      common: dict[str, Any]) -> KafkaRouter:
        """One FastStream router per stage: its topic, its consumer group, its step of the hub core."""
        router = KafkaRouter()

        @router.subscriber(topic, group_id=group, **common)  # type: ignore[untyped-decorator]
        async def on_batch(_body: Any, message: KafkaMessage) -> None:
            await self._handle(message, step)

        return router

    async def _handle(self, message: KafkaMessage, step: Any) -> None:
        records = message.raw_message
        if not isinstance(records, (list, tuple)):
            records = [records]
        t0 = time.perf_counter()
        try:
            await asyncio.to_thread(step, _raw(records))
            t1 = time.perf_counter()
            await self.relay()
        except Exception as exc:
            log.error("batch failed; it will be redelivered", error_type=type(exc).__name__, count=len(records))
            await message.nack()
            await asyncio.sleep(0.5)
            return
        await message.ack()
        log.debug("batch done", stage=getattr(step, "__name__", "?"), count=len(records),
                  elapsed_s=round(t1 - t0, 4), rate=round(time.perf_counter() - t1, 4))

    async def relay(self) -> int:
        """Publish outbox rows in order, await acknowledgements, then delete them."""
        total = 0
        async with self._relay_lock:
            while True:
                rows = await asyncio.to_thread(self.core.outbox_batch, 2000)
                if not rows:
                    return total
                futures = [
                    await self.broker.publish(r.value, r.topic, key=r.key, no_confirm=True) for r in rows
                ]
                await asyncio.gather(*futures)
                await asyncio.to_thread(self.core.outbox_done, [r.seq for r in rows])
                total += len(rows)

    async def start(self) -> None:
        await self.broker.start()
        await self.relay()  # leftovers of a crash between commit and publish
        log.info("hub started", group=self.settings.hub_group)

    async def stop(self) -> None:
        await self.broker.stop()
        log.info("hub stopped")
