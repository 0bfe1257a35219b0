"""The hub commits exactly a delivered batch's offsets, never the consumer's position (which may be a later batch's)."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from hub.kafka.broker import ensure_topics
from hub.kafka.service import HubService
from hub.topics import Topics


def test_a_batch_commits_its_own_offsets_while_a_later_batch_is_already_read(kafka: str) -> None:
    topics = Topics(f"offsets-{uuid.uuid4().hex[:8]}")
    ensure_topics(kafka, topics, 1)

    async def run() -> tuple[int | None, int | None, int]:
        producer = AIOKafkaProducer(bootstrap_servers=kafka)
        await producer.start()
        try:
            for i in range(10):
                await producer.send_and_wait(topics.intake, value=f"m{i}".encode(), partition=0)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topics.intake, bootstrap_servers=kafka, group_id=f"g-{uuid.uuid4().hex[:8]}",
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        try:
            records: list = []
            while len(records) < 10:
                for recs in (await consumer.getmany(timeout_ms=1000)).values():
                    records += recs
            tp = TopicPartition(topics.intake, 0)
            first, second = records[:4], records[4:]  # both read; only the first is delivered
            await HubService._commit(SimpleNamespace(consumer=consumer), first)  # type: ignore[arg-type]
            after_first = await consumer.committed(tp)
            await HubService._commit(SimpleNamespace(consumer=consumer), second)  # type: ignore[arg-type]
            return after_first, await consumer.committed(tp), await consumer.position(tp)
        finally:
            await consumer.stop()

    after_first, after_second, position = asyncio.run(run())
    assert position == 10
    assert after_first == 4  # not the position: records 4..9 are not durable yet
    assert after_second == 10
