"""``tsunagu bench``: the full pipeline against a raw produce→consume passthrough, same broker, same run.

Both legs move the same N synthetic houkatsu case events (≈1 KB JSON each). The
passthrough is what Kafka and the Python clients cost by themselves; the ratio says how
much of that rate the hub keeps while validating, resolving identity, deciding consent,
auditing, evaluating alerts and publishing.
"""

from __future__ import annotations

import asyncio
import random
import resource
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from kafka import KafkaProducer

from connectors.runner import CE_HEADERS, make_producer
from hub.bootstrap import open_runtime
from hub.kafka.broker import ensure_topics
from hub.kafka.security import aiokafka_config, kafka_python_security
from hub.kafka.service import HubService
from hub.pipeline.stages import HOUSEHOLD
from hub.pipeline.tables import ProcessedEvent
from hub.settings import Settings
from hub.topics import Topics
from schemas.codes import CaseStatus, Feed, Field, Sex, Topic
from schemas.envelope import CloudEvent, content_hash, stable_event_id
from schemas.events import CASE_TYPES, CaseV1, PersonRecord, Sensitive
from schemas.wareki import JST

_F = [("佐藤", "サトウ"), ("鈴木", "スズキ"), ("高橋", "タカハシ"), ("田中", "タナカ"), ("伊藤", "イトウ"),
      ("渡辺", "ワタナベ"), ("山本", "ヤマモト"), ("中村", "ナカムラ"), ("小林", "コバヤシ"), ("加藤", "カトウ"),
      ("吉田", "ヨシダ"), ("山田", "ヤマダ"), ("佐々木", "ササキ"), ("山口", "ヤマグチ"), ("松本", "マツモト"),
      ("井上", "イノウエ"), ("木村", "キムラ"), ("林", "ハヤシ"), ("斎藤", "サイトウ"), ("清水", "シミズ")]
_G = [("花子", "ハナコ"), ("太郎", "タロウ"), ("一郎", "イチロウ"), ("洋子", "ヨウコ"), ("正", "タダシ"),
      ("節子", "セツコ"), ("博", "ヒロシ"), ("幸子", "サチコ"), ("茂", "シゲル"), ("和子", "カズコ"),
      ("清", "キヨシ"), ("美代子", "ミヨコ"), ("勇", "イサム"), ("久子", "ヒサコ"), ("進", "ススム"),
      ("恵子", "ケイコ"), ("実", "ミノル"), ("京子", "キョウコ"), ("明", "アキラ"), ("静子", "シズコ")]
FAMILY, KANA_F = [f for f, _ in _F], [k for _, k in _F]
GIVEN, KANA_G = [g for g, _ in _G], [k for _, k in _G]


def synthetic_events(n: int, seed: int = 7) -> list[CloudEvent]:
    rnd = random.Random(seed)
    out = []
    base = datetime(2026, 4, 1, 9, 0, tzinfo=JST)
    for i in range(n):
        f, g = rnd.randrange(len(FAMILY)), rnd.randrange(len(GIVEN))
        record = f"houkatsu:B01-2026-{i:06d}"
        when = base + timedelta(minutes=i)
        case = CaseV1(
            feed=Feed.HOUKATSU,
            case=record,
            agency="B01",
            opened_on=when.date(),
            status=CaseStatus.IN_PROGRESS,
            topics=[Topic.LONG_TERM_CARE, Topic.FAMILY],
            subject=PersonRecord(
                record=record,
                name=f"{FAMILY[f]}　{GIVEN[g]}",
                family_name=FAMILY[f],
                given_name=GIVEN[g],
                kana=f"{KANA_F[f]} {KANA_G[g]}",
                birth_date=date(1930 + rnd.randrange(40), 1 + rnd.randrange(12), 1 + rnd.randrange(28)),
                sex=Sex.FEMALE if g % 2 else Sex.MALE,
                address=f"中央{1 + rnd.randrange(5)}-{1 + rnd.randrange(30)}-{1 + rnd.randrange(20)}",
                phone=f"0{rnd.randrange(10**9, 10**10)}",
            ),
            sensitive=Sensitive(summary="本人・家族より相談。状況を確認し支援を継続。" * 3),
            revision=when.isoformat(),
        )
        data = case.model_dump(mode="json")
        out.append(
            CloudEvent(
                id=stable_event_id("houkatsu", record, case.revision, content_hash(data)),
                source="urn:tsunagu:connector:houkatsu:B01",
                type=CASE_TYPES["opened"],
                time=when,
                sourcerecord=record,
                field=Field.ELDERLY,
                data=data,
            )
        )
    return out


def _produce(producer: KafkaProducer, topic: str, events: list[CloudEvent]) -> None:
    for ev in events:
        producer.send(topic, key=ev.sourcerecord.encode(), value=ev.to_json_bytes(), headers=CE_HEADERS)
    producer.flush(timeout=60)


async def _passthrough(bootstrap: str, topic: str, n: int, settings: Settings) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        **aiokafka_config(bootstrap),
        group_id=f"bench-passthrough-{time.time_ns()}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=settings.heartbeat_interval_ms,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
    )
    await consumer.start()
    try:
        got = 0
        while got < n:
            batch = await consumer.getmany(timeout_ms=500, max_records=500)
            for records in batch.values():
                for rec in records:
                    CloudEvent.from_json_bytes(rec.value)  # the same parse the hub does first
                got += sum(len(r) for r in batch.values())
            if batch:
                await consumer.commit()
    finally:
        await consumer.stop()
    return time.perf_counter()


def _processed(core: Any) -> int:
    from sqlalchemy import func, select

    with core.sessions() as s:
        return s.scalar(select(func.count()).select_from(ProcessedEvent).where(ProcessedEvent.stage == HOUSEHOLD)) or 0


async def _pipeline(core: Any, settings: Settings, bootstrap: str, n: int, events: list[CloudEvent],
                    topics: Topics) -> tuple[float, float]:
    service = HubService(core, settings, bootstrap, instance="bench")
    await service.start()
    try:
        producer = make_producer(bootstrap, "tsunagu-bench", **kafka_python_security(bootstrap))
        t0 = time.perf_counter()
        await asyncio.to_thread(_produce, producer, topics.intake, events)
        producer.close()
        while await asyncio.to_thread(_processed, core) < n:
            await asyncio.sleep(0.05)
        t1 = time.perf_counter()
    finally:
        await service.stop()
    return t0, t1


def pipeline_bench(settings: Settings, n: int = 5000) -> dict[str, Any]:
    events = synthetic_events(n)
    rid = str(time.time_ns())
    # short group joins on both legs (Tansu takes half the session timeout to finish a join)
    settings = settings.model_copy(update={"topic_prefix": f"bench-{rid}", "hub_group": f"bench-hub-{rid}",
                                           "session_timeout_ms": 1000, "heartbeat_interval_ms": 100})
    with tempfile.TemporaryDirectory(prefix="tsunagu-bench-") as tmp, open_runtime(settings, Path(tmp)) as rt:
        bootstrap, topics, core, url = rt.bootstrap, rt.topics, rt.core, rt.database.url
        raw_topic = Topics(f"bench-raw-{rid}")
        ensure_topics(bootstrap, raw_topic, settings.partitions)

        # leg 1: raw produce → consume on the same broker
        producer = make_producer(bootstrap, "tsunagu-bench-raw", **kafka_python_security(bootstrap))
        t0 = time.perf_counter()
        _produce(producer, raw_topic.intake, events)
        producer.close()
        t1 = asyncio.run(_passthrough(bootstrap, raw_topic.intake, n, settings))
        raw_rate = n / (t1 - t0)

        # leg 2: the full pipeline (connector-style produce → hub stage 1 → stage 2 → team/alerts)
        core.timers.clear()
        p0, p1 = asyncio.run(_pipeline(core, settings, bootstrap, n, events, topics))
        pipe_s = p1 - p0
        consent_s = core.timers.get("decide") + core.timers.get("audit")
    return {
        "events": n,
        "passthrough_per_s": round(raw_rate, 1),
        "pipeline_per_s": round(n / pipe_s, 1),
        "ratio": round((n / pipe_s) / raw_rate, 4),
        "consent_stage_s": round(consent_s, 3),
        "consent_stage_share": round(consent_s / pipe_s, 4),
        "database": url.split(":", 1)[0],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
