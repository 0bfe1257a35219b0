"""`tsunagu bench identity`: identity resolution rate against a small and a large registry.

For each size a synthetic registry is bulk-loaded into a fresh SQLite file (Core executemany,
secondary indexes built after the load), then the same number of source observations (spelled
as the feeds spell them: half-width kana, plain kanji for 旧字体, other address forms, mostly
without resident number, some people the registry does not know) are resolved one by one
through :class:`hub.identity.resolver.IdentityService`, committing every 100. Resolution uses indexed
look-ups only, so the rate should barely depend on the registry size: the result reports both
rates, their ratio (large / small) and the process's peak RSS.

Data is generated from the row number alone (a splitmix64 hash), so nothing of the registry is
kept in memory while loading, and an observation about row ``j`` is built from ``j`` again.
"""

from __future__ import annotations

import hashlib
import random
import resource
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import Engine, Index, Table, event, insert
from sqlalchemy.orm import Session

from hub.db import Base, make_engine
from hub.identity.resolver import IdentityService
from hub.identity.tables import Household, Person, Resident, household_id_for_no, registry_record
from hub.progress import PHASES, Progress
from schemas.codes import Sex
from schemas.events import PersonRecord
from schemas.normalize import address_key, fold_kanji, kana_key

FAMILIES = (
    ("髙橋", "高橋", "タカハシ"), ("渡邊", "渡辺", "ワタナベ"), ("齋藤", "斎藤", "サイトウ"),
    ("齊藤", "斉藤", "サイトウ"), ("山﨑", "山崎", "ヤマザキ"), ("濱田", "浜田", "ハマダ"),
    ("廣田", "広田", "ヒロタ"), ("佐藤", "佐藤", "サトウ"), ("鈴木", "鈴木", "スズキ"),
    ("田中", "田中", "タナカ"), ("伊藤", "伊藤", "イトウ"), ("中村", "中村", "ナカムラ"),
    ("小林", "小林", "コバヤシ"), ("加藤", "加藤", "カトウ"), ("吉田", "吉田", "ヨシダ"),
    ("山田", "山田", "ヤマダ"), ("松本", "松本", "マツモト"), ("井上", "井上", "イノウエ"),
    ("木村", "木村", "キムラ"), ("林", "林", "ハヤシ"), ("清水", "清水", "シミズ"),
    ("森", "森", "モリ"), ("池田", "池田", "イケダ"), ("橋本", "橋本", "ハシモト"),
    ("石川", "石川", "イシカワ"), ("前田", "前田", "マエダ"), ("藤田", "藤田", "フジタ"),
    ("後藤", "後藤", "ゴトウ"), ("岡田", "岡田", "オカダ"), ("長谷川", "長谷川", "ハセガワ"),
    ("村上", "村上", "ムラカミ"), ("近藤", "近藤", "コンドウ"),
)  # fmt: skip
GIVEN = (
    ("義雄", "ヨシオ", 1), ("正", "タダシ", 1), ("昭二", "ショウジ", 1), ("弘", "ヒロシ", 1), ("健一", "ケンイチ", 1),
    ("誠", "マコト", 1), ("隆", "タカシ", 1), ("大翔", "ヒロト", 1), ("蓮", "レン", 1), ("翔", "ショウ", 1),
    ("和雄", "カズオ", 1), ("修", "オサム", 1), ("勇", "イサム", 1), ("俊介", "シュンスケ", 1), ("湊", "ミナト", 1),
    ("祐子", "ユウコ", 2), ("花子", "ハナコ", 2), ("恵子", "ケイコ", 2), ("久子", "ヒサコ", 2), ("美代子", "ミヨコ", 2),
    ("節子", "セツコ", 2), ("幸子", "サチコ", 2), ("陽子", "ヨウコ", 2), ("美穂", "ミホ", 2), ("智子", "トモコ", 2),
    ("直美", "ナオミ", 2), ("美月", "ミツキ", 2), ("結菜", "ユイナ", 2), ("杏", "アン", 2), ("京子", "キョウコ", 2),
)  # fmt: skip
TOWNS = ("中央", "本町", "栄町", "東町", "西町", "港南", "若葉", "桜台", "緑が丘", "旭町", "松原", "青葉")
PREFIXES = ("さくら県", "みなと市")
EPOCH = date(1925, 1, 1)
CHUNK = 20_000
_MASK = (1 << 64) - 1
_IDENTITY_TABLES = ("persons", "households", "residents", "person_records", "identity_reviews", "identity_decisions",
                    "resident_names", "resident_observations")


def _mix(x: int) -> int:
    """splitmix64: a well-spread 64-bit hash of a row number."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


@dataclass(frozen=True, slots=True)
class SynthResident:
    resident_no: str
    household_no: str
    family: int
    given: int
    birth: date
    town: int
    chome: int
    ban: int
    go: int

    @property
    def sex(self) -> str:
        return "male" if GIVEN[self.given][2] == 1 else "female"

    def address(self) -> str:
        return f"さくら県みなと市{TOWNS[self.town]}{self.chome}丁目{self.ban}番{self.go}号"

    def address_key(self) -> str:
        return f"{TOWNS[self.town]}{self.chome}-{self.ban}-{self.go}"


def _household_index(i: int) -> int:
    return i * 5 // 11


def synth_resident(i: int, seed: int = 1) -> SynthResident:
    """Row ``i`` of the synthetic registry; households of ~2.2 members share the address."""
    h = _mix(i * 7919 + seed)
    hh = _household_index(i)
    a = _mix(hh * 104729 + seed)
    return SynthResident(
        resident_no=str(1_000_000_000 + i),
        household_no=str(5_000_000_000 + hh),
        family=a % len(FAMILIES),
        given=(h >> 8) % len(GIVEN),
        birth=EPOCH + timedelta(days=(h >> 20) % 36_500),
        town=(a >> 8) % len(TOWNS),
        chome=1 + (a >> 16) % 5,
        ban=1 + (a >> 24) % 30,
        go=1 + (a >> 32) % 20,
    )


class _Keys:
    """name / folded / kana keys per (family, given) pair, computed once."""

    def __init__(self) -> None:
        self.cache: dict[tuple[int, int], tuple[str, str, str]] = {}

    def of(self, r: SynthResident) -> tuple[str, str, str]:
        k = (r.family, r.given)
        got = self.cache.get(k)
        if got is None:
            name = FAMILIES[r.family][0] + GIVEN[r.given][0]
            got = (name, fold_kanji(name), kana_key(FAMILIES[r.family][2] + GIVEN[r.given][1]))
            self.cache[k] = got
        return got


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _rows(start: int, stop: int, keys: _Keys, seed: int) -> tuple[list[dict[str, Any]], ...]:
    residents, persons, households = [], [], []
    for i in range(start, stop):
        r = synth_resident(i, seed)
        nk, fk, kk = keys.of(r)
        pid = "p-" + _digest(registry_record(r.resident_no))
        hid = household_id_for_no(r.household_no)
        if i == 0 or _household_index(i - 1) != _household_index(i):  # the household's first member
            households.append({"id": hid, "household_no": r.household_no, "origin": "registry", "named_by": None})
        persons.append({"id": pid, "resident_no": r.resident_no, "household_id": hid,
                        "created_by": registry_record(r.resident_no), "merged_into": None, "created_at": _BUILT})
        residents.append({"resident_no": r.resident_no, "household_no": r.household_no, "relation": None,
                          "name": FAMILIES[r.family][0] + "　" + GIVEN[r.given][0], "name_key": nk, "folded_key": fk,
                          "kana_key": kk, "birth_date": r.birth, "sex": r.sex, "address_key": r.address_key(),
                          "phone_key": None, "moved_on": date(2024, 4, 1), "person_id": pid})
    return residents, persons, households


_BUILT = datetime(2025, 4, 1, tzinfo=UTC)


def _tables() -> list[Table]:
    return [Base.metadata.tables[name] for name in _IDENTITY_TABLES]


def build_registry(engine: Engine, size: int, seed: int = 1, progress: Progress | None = None) -> float:
    """Bulk-load ``size`` residents (and their persons and households); seconds taken. ``progress`` shows the
    residents loaded (one bar per size)."""
    assert address_key(synth_resident(0, seed).address(), PREFIXES) == synth_resident(0, seed).address_key()
    t0 = time.perf_counter()
    tables = _tables()
    Base.metadata.create_all(engine, tables=tables)
    deferred: list[Index] = [ix for t in tables for ix in t.indexes]
    keys = _Keys()
    with engine.connect() as conn:  # a bulk load: durability per row is not needed here
        conn.connection.dbapi_connection.execute("PRAGMA synchronous=OFF")  # type: ignore[union-attr]
    with engine.begin() as conn:
        for ix in deferred:
            ix.drop(conn)
        for start in range(0, size, CHUNK):
            residents, persons, households = _rows(start, min(size, start + CHUNK), keys, seed)
            conn.execute(insert(Household), households)
            conn.execute(insert(Person), persons)
            conn.execute(insert(Resident), residents)
            if progress is not None:
                progress.show(f"registry-{size}", min(size, start + CHUNK), size,
                              label=f"{PHASES['registry']} ({size:,})")
        for ix in deferred:
            ix.create(conn)
        conn.exec_driver_sql("ANALYZE")
    return time.perf_counter() - t0


def observations(size: int, n: int, seed: int = 1) -> Iterator[PersonRecord]:
    """``n`` source records about registry rows (spelled differently) and some unknown people."""
    rnd = random.Random(seed * 31 + 17)
    for k in range(n):
        if rnd.random() < 0.1:  # someone the registry does not know (yet)
            r = synth_resident(size + rnd.randrange(10**6), seed + 1)
        else:
            r = synth_resident(rnd.randrange(size), seed)
        family = FAMILIES[r.family][1] if rnd.random() < 0.5 else FAMILIES[r.family][0]
        sep = rnd.choice(("　", " ", ""))
        kana = FAMILIES[r.family][2] + " " + GIVEN[r.given][1]
        yield PersonRecord(
            record=f"jiritsu:B{k:07d}",
            name=f"{family}{sep}{GIVEN[r.given][0]}",
            kana=kana if rnd.random() < 0.5 else kana_to_halfwidth(kana),
            birth_date=r.birth,
            sex=Sex.MALE if r.sex == "male" else Sex.FEMALE,
            address=f"{TOWNS[r.town]}{r.chome}-{r.ban}-{r.go}",
            resident_no=r.resident_no if rnd.random() < 0.3 else None,
        )


def kana_to_halfwidth(text: str) -> str:
    import jaconv

    out: str = jaconv.z2h(text, kana=True, ascii=False, digit=False)
    return out


def _tune(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA cache_size=-65536")  # 64 MB page cache, the same for every size
        cur.execute("PRAGMA temp_store=MEMORY")
        cur.close()


def time_resolution(engine: Engine, size: int, n: int, seed: int = 1) -> tuple[float, Counter[str]]:
    """Observations resolved per second, and how they were resolved."""
    outcomes: Counter[str] = Counter()
    obs = list(observations(size, n, seed))
    with Session(engine) as s:
        svc = IdentityService(s, address_prefixes=PREFIXES)
        t0 = time.perf_counter()
        for k, person in enumerate(obs, 1):
            outcomes[svc.resolve(person, feed="jiritsu").outcome] += 1
            if k % 100 == 0:
                s.commit()
        s.commit()
        elapsed = time.perf_counter() - t0
    return n / elapsed, outcomes


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


def run_identity_bench(
    sizes: tuple[int, int] = (10_000, 1_000_000),
    observations: int = 2000,
    db_dir: Path | None = None,
    seed: int = 1,
    progress: TextIO | None = None,
) -> dict[str, Any]:
    """Build a registry of each size, resolve ``observations`` against each; rates, ratio, peak RSS.

    ``progress``: a stream for the registry build's bars (drawn only when it is a terminal)."""
    import tempfile

    own = tempfile.TemporaryDirectory(prefix="tsunagu-bench-identity-") if db_dir is None else None
    folder = Path(own.name) if own is not None else Path(str(db_dir))
    rates: list[float] = []
    builds: list[float] = []
    outcomes: dict[str, dict[str, int]] = {}
    bars = Progress(progress)
    try:
        for size in sizes:
            path = folder / f"identity-{size}.sqlite"
            path.unlink(missing_ok=True)
            engine = make_engine(f"sqlite:///{path}")
            _tune(engine)
            builds.append(round(build_registry(engine, size, seed, bars), 1))
            rate, out = time_resolution(engine, size, observations, seed)
            rates.append(round(rate, 1))
            outcomes[str(size)] = dict(out)
            engine.dispose()
            path.unlink(missing_ok=True)
    finally:
        bars.end()
        if own is not None:
            own.cleanup()
    return {
        "sizes": list(sizes),
        "observations": observations,
        "rates_per_s": rates,
        "ratio": round(rates[-1] / rates[0], 3) if rates[0] else None,
        "build_s": builds,
        "outcomes": outcomes,
        "peak_rss_mb": peak_rss_mb(),
        "goal": {"ratio_at_least": 0.8, "peak_rss_mb_below": 2048},
    }

