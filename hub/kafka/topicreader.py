"""Read a whole topic back (for the export) or one message at its offset (for a replay), with kafka-python.

Tansu's ``end_offsets`` is wrong after batched produces, so "the end" is found by
fetching: a partition is done when its position reached the highwater the broker reported
in a fetch response, and the read stops when every partition is done or nothing new
arrived for ``idle_s``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from kafka import KafkaConsumer, TopicPartition

from hub.kafka.security import kafka_python_config


def read_topic(bootstrap: str, topic: str, *, idle_s: float = 1.0, max_s: float = 120.0) -> Iterator[bytes]:
    consumer = KafkaConsumer(
        **kafka_python_config(bootstrap),
        client_id="tsunagu-export",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
        max_poll_records=5000,
        consumer_timeout_ms=int(idle_s * 1000),
    )
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        start = time.monotonic()
        last_data = time.monotonic()
        while time.monotonic() - start < max_s:
            batch = consumer.poll(timeout_ms=200)
            if batch:
                last_data = time.monotonic()
                for records in batch.values():
                    for rec in records:
                        yield rec.value
            if all(_done(consumer, tp) for tp in tps) or time.monotonic() - last_data > idle_s:
                return
    finally:
        consumer.close()


def _done(consumer: KafkaConsumer, tp: TopicPartition) -> bool:
    hw = consumer.highwater(tp)
    return hw is not None and consumer.position(tp) >= hw


def group_lag(bootstrap: str, group: str, topic: str) -> int:
    """Records on ``topic`` after the group's committed offsets (0 when it has handled everything)."""
    return sum(partition_lags(bootstrap, group, topic).values())


def partition_lags(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """Per partition of ``topic``: records after the group's committed offset.

    The highwater comes from a real fetch (Tansu's ``end_offsets`` is wrong after batched produces);
    committed offsets come from kafka-python's admin client, which Tansu answers correctly.
    """
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(**kafka_python_config(bootstrap), client_id="tsunagu-lag")
    try:
        committed = admin.list_group_offsets(group).get(group, {})
    finally:
        admin.close()
    consumer = KafkaConsumer(**kafka_python_config(bootstrap), client_id="tsunagu-lag", enable_auto_commit=False,
                             fetch_max_wait_ms=20, max_poll_records=1)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or set())]
        if not tps:
            return {}
        consumer.assign(tps)
        for tp in tps:
            meta = committed.get(tp)
            if meta is not None and meta.offset >= 0:
                consumer.seek(tp, meta.offset)
            else:
                consumer.seek_to_beginning(tp)
        lags: dict[int, int] = {}
        for tp in tps:
            start = consumer.position(tp)
            deadline = time.monotonic() + 2.0
            hw = consumer.highwater(tp)
            while hw is None and time.monotonic() < deadline:
                consumer.poll(timeout_ms=50)
                hw = consumer.highwater(tp)
            if hw is None:  # nothing fetched for an empty partition: no lag there
                lags[tp.partition] = 0
                continue
            lags[tp.partition] = max(0, hw - start)
        return lags
    finally:
        consumer.close()


@dataclass(frozen=True)
class StoredMessage:
    """One message as the broker keeps it: key, value and headers."""

    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


def read_at(bootstrap: str, topic: str, partition: int, offset: int, *, max_s: float = 15.0) -> StoredMessage | None:
    """The message at ``topic``/``partition``/``offset``; ``None`` when the broker no longer (or never) had it."""
    consumer = KafkaConsumer(**kafka_python_config(bootstrap), client_id="tsunagu-replay", enable_auto_commit=False,
                             auto_offset_reset="earliest", fetch_max_wait_ms=50, max_poll_records=500)
    try:
        tp = TopicPartition(topic, partition)
        if partition not in (consumer.partitions_for_topic(topic) or set()):
            return None
        consumer.assign([tp])
        consumer.seek(tp, offset)
        deadline = time.monotonic() + max_s
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                for rec in records:
                    if rec.offset == offset:
                        return StoredMessage(rec.key, rec.value, [(k, v) for k, v in (rec.headers or [])])
                    if rec.offset > offset:  # gone (retention) or compacted away
                        return None
            hw = consumer.highwater(tp)
            if hw is not None and hw <= offset:
                return None
        return None
    finally:
        consumer.close()
