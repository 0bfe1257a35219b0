"""Where the consent service publishes its events: straight to Kafka, or into the hub's outbox."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from connectors.runner import CE_HEADERS
from hub.kafka.security import aiokafka_config
from hub.pipeline.tables import HubOutbox
from schemas.envelope import CloudEvent


# --------------------------------------------------------------------------- publishers
class KafkaEventPublisher:
    """``publish_event`` onto a Kafka topic (aiokafka; acks=all, keyed by the event's record key)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self._producer: Any = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        # no idempotent producer: Tansu refuses aiokafka's InitProducerId (../shared/kafka/TANSU.md); one
        # event per request, awaited, and the hub drops a redelivered copy by its CloudEvents source + id
        self._producer = AIOKafkaProducer(**aiokafka_config(self.bootstrap), client_id="tsunagu-consent-api",
                                          acks="all", request_timeout_ms=10000)
        try:
            await self._producer.start()
        except Exception:
            await self._producer.stop()
            self._producer = None
            raise

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def __call__(self, event: CloudEvent) -> None:
        if self._producer is None:
            raise RuntimeError("publisher not started")
        await self._producer.send_and_wait(self.topic, event.to_json_bytes(), key=event.sourcerecord.encode(),
                                          headers=CE_HEADERS)


class OutboxEventPublisher:
    """``publish_event`` through the hub's outbox: the hub service relays it when it (re)starts.

    For ``tsunagu consent`` without a broker at hand; the event reaches the intake topic later.
    """

    def __init__(self, sessions: sessionmaker[Session], topic: str) -> None:
        self.sessions = sessions
        self.topic = topic

    async def __call__(self, event: CloudEvent) -> None:

        def write() -> None:
            with self.sessions.begin() as s:
                s.add(HubOutbox(topic=self.topic, key=event.sourcerecord, value=event.to_json_bytes(),
                                created_at=datetime.now(UTC)))

        await asyncio.to_thread(write)
