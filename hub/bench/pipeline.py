"""``tsunagu bench``: the full pipeline against a raw produce→consume passthrough, same broker, same run.

Both legs move the same N synthetic houkatsu case events (≈1 KB JSON each) on the same broker:

* passthrough: an aiokafka producer (linger, large batches) → an aiokafka consumer with manual
  partition assignment (no group join to time) doing the same CloudEvent parse the hub does
  first; it stops only when every event id was seen.
* pipeline: the connectors' producer publishes to intake → K hub processes (both stages) →
  the team topic; timed until every one of the N events was read back from the team topic.
  Every subject has a consent, so every event really reaches the team.
* latency: M further events published at a steady rate (100/s), each timed from its publish
  to its arrival on the team topic (p50/p99).

The hubs run in their own processes on a scratch database whose tables the bench creates and
drops (a given ``--database`` must have no tables yet). Group joins and a warm-up happen
before any clock starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.synchronize
import random
import resource
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from kafka import KafkaProducer
from sqlalchemy import MetaData, create_engine, inspect

from connectors.runner import CE_HEADERS, make_producer
from consent.store import ConsentRepository
from hub.bootstrap import Database, make_core, open_kafka
from hub.kafka.broker import ensure_topics
from hub.kafka.security import aiokafka_config, kafka_python_security
from hub.kafka.service import HubService
from hub.logging import configure_logging
from hub.migrate import upgrade
from hub.settings import Settings
from hub.topics import Topics
from schemas.codes import CaseStatus, Feed, Field, Sex, Topic
from schemas.envelope import CloudEvent, content_hash, stable_event_id
from schemas.events import CASE_TYPES, CaseV1, ConsentV1, PersonRecord, Sensitive
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


def synthetic_events(n: int, seed: int = 7, start: int = 0) -> list[CloudEvent]:
    """``n`` houkatsu case-opened events, one new subject each (records ``start`` … ``start+n-1``)."""
    rnd = random.Random(seed * 1_000_003 + start)
    out = []
    base = datetime(2026, 4, 1, 9, 0, tzinfo=JST)
    for i in range(start, start + n):
        f, g = rnd.randrange(len(FAMILY)), rnd.randrange(len(GIVEN))
        record = f"houkatsu:B01-2026-{i:07d}"
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



def consents_for(events: Iterable[CloudEvent]) -> list[ConsentV1]:
    """A permit for the elderly field, filed under each event's subject record (so every event may flow)."""
    return [
        ConsentV1(consent_id=f"bench-{ev.sourcerecord}", version=datetime(2026, 1, 5, tzinfo=JST), status="active",
                  subject_record=ev.sourcerecord, grantor="self", fields=[Field.ELDERLY],
                  period_start=date(2026, 1, 1), origin="tsunagu")
        for ev in events
    ]


def count_new(batch: Mapping[Any, Sequence[Any]], seen: dict[str, float], at: float) -> tuple[int, int]:
    """Parse every record of a ``getmany`` batch (all partitions); note first-seen ids with ``at``.

    Returns (records, duplicates). Counting is per record over every partition, so a loop on
    it cannot stop before each id was seen.
    """
    records = duplicates = 0
    for recs in batch.values():
        for rec in recs:
            ev = CloudEvent.from_json_bytes(rec.value)
            records += 1
            if ev.id in seen:
                duplicates += 1
            else:
                seen[ev.id] = at
    return records, duplicates


class TopicWatch:
    """Reads a topic from the beginning with manual assignment (no group) and notes when each event id arrived."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self.bootstrap, self.topic, self.partitions = bootstrap, topic, partitions
        self.seen: dict[str, float] = {}
        self.records = self.duplicates = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(**aiokafka_config(self.bootstrap), enable_auto_commit=False,
                                          auto_offset_reset="earliest", fetch_max_wait_ms=10)
        await self._consumer.start()
        self._consumer.assign([TopicPartition(self.topic, p) for p in range(self.partitions)])
        await self._consumer.seek_to_beginning()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batch = await self._consumer.getmany(timeout_ms=100, max_records=2000)
            if batch:
                records, dups = count_new(batch, self.seen, time.perf_counter())
                self.records += records
                self.duplicates += dups

    async def wait_for(self, ids: Iterable[str], timeout_s: float) -> float:
        """The time the last of ``ids`` arrived; raises TimeoutError naming how many are missing."""
        wanted = set(ids)
        deadline = time.perf_counter() + timeout_s
        while True:
            missing = wanted.difference(self.seen)
            if not missing:
                return max(self.seen[i] for i in wanted)
            if self._task is not None and self._task.done():
                self._task.result()
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{len(missing)} of {len(wanted)} events never reached {self.topic}")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()


async def passthrough(bootstrap: str, topic: str, partitions: int, events: Sequence[CloudEvent]) -> dict[str, Any]:
    """aiokafka produce (linger, large batches) → manually assigned consumer with the hub's first parse."""
    watch = TopicWatch(bootstrap, topic, partitions)
    await watch.start()  # assignment and metadata before the clock
    producer = AIOKafkaProducer(**aiokafka_config(bootstrap), acks="all", linger_ms=20,
                                max_batch_size=1024 * 1024, max_request_size=8 * 1024 * 1024)
    await producer.start()
    payloads = [(ev.sourcerecord.encode(), ev.to_json_bytes()) for ev in events]
    try:
        t0 = time.perf_counter()
        futures = [await producer.send(topic, value=v, key=k, headers=CE_HEADERS) for k, v in payloads]
        await asyncio.gather(*futures)
        t1 = await watch.wait_for((ev.id for ev in events), timeout_s=120 + len(events) / 100)
    finally:
        await producer.stop()
        await watch.stop()
    return {"seconds": t1 - t0, "records": watch.records, "duplicates": watch.duplicates, "ids": len(watch.seen)}


# --------------------------------------------------------------------------- hub processes
def _hub_process(settings: Settings, bootstrap: str, url: str, instance: str,
                 ready: multiprocessing.synchronize.Event, stop: multiprocessing.synchronize.Event,
                 results: Queue[dict[str, Any]]) -> None:
    """One hub (both stages) in its own process until ``stop``; reports its timers, busy time and peak RSS."""
    configure_logging("WARNING")
    db = Database.open(url, migrate=False)
    core = make_core(settings, db.sessions, Topics(settings.topic_prefix))
    busy = {"intake": 0.0, "household": 0.0}

    def timed_step(name: str, step: Any) -> Any:
        def run(batch: Any) -> Any:
            t = time.perf_counter()
            try:
                return step(batch)
            finally:
                busy[name] += time.perf_counter() - t
        run.__name__ = step.__name__
        return run

    core.process_intake = timed_step("intake", core.process_intake)  # type: ignore[method-assign]
    core.process_household = timed_step("household", core.process_household)  # type: ignore[method-assign]

    async def main() -> None:
        service = HubService(core, settings, bootstrap, instance=instance)
        await service.start()
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await service.stop()

    try:
        asyncio.run(main())
    finally:
        db.close()
        results.put({"instance": instance, "busy_s": sum(busy.values()), "busy": busy,
                     "consent_s": core.timers.get("decide") + core.timers.get("audit"),
                     "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


@contextlib.contextmanager
def scratch_database(url: str | None, tmp: Path) -> Iterator[str]:
    """A migrated database for the bench: a SQLite file in ``tmp``, or ``url`` (which must have no tables),
    whose tables are dropped again at the end."""
    if url is None:
        url = f"sqlite:///{tmp / 'bench.sqlite'}"
    engine = create_engine(url)
    try:
        existing = inspect(engine).get_table_names()
        if existing:
            raise ValueError(f"--database must be a scratch database without tables (it has {len(existing)})")
        upgrade(url)
        try:
            yield url
        finally:
            meta = MetaData()
            meta.reflect(engine)
            meta.drop_all(engine)
    finally:
        engine.dispose()


def _preload_consents(url: str, events: Iterable[CloudEvent]) -> None:
    db = Database.open(url, migrate=False)
    try:
        with db.sessions.begin() as s:
            repo = ConsentRepository(s)
            for consent in consents_for(events):
                repo.add_version(consent, recorded_at=consent.version)
    finally:
        db.close()


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]


async def _publish(producer: KafkaProducer, topic: str, events: Sequence[CloudEvent],
                   rate: float | None = None) -> dict[str, float]:
    """Publish with the connectors' producer, all at once or at ``rate`` per second; the send time of each id."""
    sent: dict[str, float] = {}
    t0 = time.perf_counter()
    for i, ev in enumerate(events):
        if rate:
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        value = ev.to_json_bytes()
        sent[ev.id] = time.perf_counter()
        producer.send(topic, key=ev.sourcerecord.encode(), value=value, headers=CE_HEADERS)
        if rate:
            producer.flush(timeout=30)
    await asyncio.to_thread(producer.flush, 60)
    return sent


async def _pipeline(bootstrap: str, topics: Topics, partitions: int, warmup: list[CloudEvent], load: list[CloudEvent],
                    steady: list[CloudEvent], rate: float) -> dict[str, Any]:
    watch = TopicWatch(bootstrap, topics.team, partitions)
    await watch.start()
    producer = make_producer(bootstrap, "tsunagu-bench", **kafka_python_security(bootstrap))
    try:
        await _publish(producer, topics.intake, warmup)
        await watch.wait_for((ev.id for ev in warmup), timeout_s=300)
        t0 = time.perf_counter()
        await _publish(producer, topics.intake, load)
        t1 = await watch.wait_for((ev.id for ev in load), timeout_s=300 + len(load) / 10)
        await asyncio.sleep(0.5)  # let the hubs go idle before the steady leg
        sent = await _publish(producer, topics.intake, steady, rate=rate)
        await watch.wait_for(sent, timeout_s=300)
        latencies = [(watch.seen[i] - at) * 1000 for i, at in sent.items()]
    finally:
        producer.close()
        await watch.stop()
    load_ids = {ev.id for ev in load}
    return {"seconds": t1 - t0, "team_events": sum(1 for i in watch.seen if i in load_ids),
            "team_duplicates": watch.duplicates, "latencies_ms": latencies}


def pipeline_bench(settings: Settings, n: int = 5000, *, hubs: int = 1, database_url: str | None = None,
                   latency_events: int = 1000, rate: float = 100.0) -> dict[str, Any]:
    """Run both legs and the steady-rate latency in one run on one broker; the bench's JSON result."""
    rid = str(time.time_ns())
    warm_n = 4 * settings.partitions
    load = synthetic_events(n, start=0)
    steady = synthetic_events(latency_events, start=n)
    warmup = synthetic_events(warm_n, start=n + latency_events)
    # short group joins (Tansu takes half the session timeout to finish a join)
    settings = settings.model_copy(update={"topic_prefix": f"bench-{rid}", "hub_group": f"bench-hub-{rid}",
                                           "session_timeout_ms": 3000, "heartbeat_interval_ms": 300})
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="tsunagu-bench-") as tmp, open_kafka(settings) as kafka, \
            scratch_database(database_url, Path(tmp)) as url:
        bootstrap, topics = kafka.bootstrap, kafka.topics
        raw_topic = Topics(f"bench-raw-{rid}")
        ensure_topics(bootstrap, raw_topic, settings.partitions)

        raw = asyncio.run(passthrough(bootstrap, raw_topic.intake, settings.partitions, load))

        _preload_consents(url, [*load, *steady, *warmup])
        ready = [ctx.Event() for _ in range(hubs)]
        stop = ctx.Event()
        results: Queue[dict[str, Any]] = ctx.Queue()
        procs = [ctx.Process(target=_hub_process, args=(settings, bootstrap, url, f"bench-{k}", ready[k], stop,
                                                        results), daemon=True) for k in range(hubs)]
        for p in procs:
            p.start()
        reports: list[dict[str, Any]] = []
        try:
            for k, ev in enumerate(ready):
                if not ev.wait(120):
                    raise RuntimeError(f"hub process {k} did not start")
            pipe = asyncio.run(_pipeline(bootstrap, topics, settings.partitions, warmup, load, steady, rate))
        finally:
            stop.set()
            for _ in procs:
                with contextlib.suppress(Exception):
                    reports.append(results.get(timeout=60))
            for p in procs:
                p.join(30)
                if p.is_alive():
                    p.kill()
    raw_rate = n / raw["seconds"]
    pipe_rate = n / pipe["seconds"]
    busy = sum(r["busy_s"] for r in reports)
    consent_s = sum(r["consent_s"] for r in reports)
    lat = pipe["latencies_ms"]
    return {
        "events": n,
        "hubs": hubs,
        "database": url.split(":", 1)[0].split("+", 1)[0],
        "passthrough_events_per_s": round(raw_rate, 1),
        "passthrough_records": raw["records"],
        "pipeline_events_per_s": round(pipe_rate, 1),
        "pipeline_team_events": pipe["team_events"],
        "team_duplicates": pipe["team_duplicates"],
        "ratio": round(pipe_rate / raw_rate, 4),
        "latency_events": len(lat),
        "latency_rate_per_s": rate,
        "latency_p50_ms": round(_percentile(lat, 0.50), 1),
        "latency_p99_ms": round(_percentile(lat, 0.99), 1),
        "consent_share": round(consent_s / busy, 4) if busy else 0.0,
        "peak_rss_mb": round(max([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                                  *(r["peak_rss_mb"] for r in reports)]), 1),
    }
