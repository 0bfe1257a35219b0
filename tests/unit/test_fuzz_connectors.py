"""Fuzzing every feed's parser and whole source folders: nothing escapes, nothing hangs, everything is accounted for.

Fixed budget and derandomized (the same examples on every run, so CI is stable). Each example is
bounded by an alarm. Whole folders go through the real ``ConnectorRunner`` with an SQLite state and
an in-memory producer, so the check "read = published + dead-lettered" is the runner's own count.
A canary string stands for personal data: it must never reach a dead letter or a log line.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import os
import signal
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.errors import MessageSizeTooLargeError
from structlog.testing import capture_logs

from connectors.contract import Connector
from connectors.csv_export import read_csv
from connectors.fhir_consent import FhirConsentConnector
from connectors.houkatsu import COLUMNS as H_COLUMNS
from connectors.houkatsu import HoukatsuConnector, parse_household
from connectors.jiritsu import COLUMNS as J_COLUMNS
from connectors.jiritsu import JiritsuConnector
from connectors.kodomo import KodomoReplayConnector, KodomoWebhook, sign, sign_delivery
from connectors.mapping import MappingError, load_mapping
from connectors.registry import COLUMNS as R_COLUMNS
from connectors.registry import RegistryConnector
from connectors.runner import ConnectorRunner, ConnectorState
from connectors.safety import json_problem
from connectors.shogai import RowError, ShogaiConnector, client_from_row
from schemas.deadletter import DEADLETTER_TYPE, DeadLetterV1
from schemas.envelope import CloudEvent
from schemas.events import parse_payload
from schemas.fhir_consent import InvalidConsentDocument, parse_consent
from unit.test_csv_connectors import H_DEFAULTS, J_DEFAULTS
from unit.test_fhir_consent_robustness import BASE as CONSENT
from unit.test_kodomo import body_of
from unit.test_shogai import SQLITE_DDL, case, client

#: stands for personal data in every generated input; it must never come out in a reason or a log
CANARY = "秘匿ZQ"
SECRET = b"fuzz-secret"
SECONDS_PER_EXAMPLE = 20

FUZZ = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
CHEAP = settings(FUZZ, max_examples=120)

R_DEFAULTS = dict(zip(R_COLUMNS, ["1055433006", "5033103023", "世帯主", "加藤　正", "カトウ　タダシ", "1933-01-10",
                                  "1", "栄町4丁目21番2号", "2024-04-01"], strict=True))


@contextlib.contextmanager
def bounded(seconds: int = SECONDS_PER_EXAMPLE) -> Iterator[None]:
    """Fail an example that runs longer than ``seconds`` (a hang) instead of waiting forever."""

    def alarm(_sig: int, _frame: Any) -> None:
        raise TimeoutError(f"example took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# -- generators ------------------------------------------------------------------------------------

TRICKY = [
    CANARY, f"{CANARY}\x00", "\x00", "\x1b[31m", "S99.99.99", "R7.4.1", "令和元年5月1日", "2025/02/30", "9999-12-31",
    "0001-01-01", "1" * 10, "１２３４５６７８９０", "", " ", '"', '""', "a,b", "a\nb", "a\rb", "／", "：", "\ufeff",
    "0", "-1", "男", "女", "終結", "対応中", "他機関へつなぎ", "子:" + CANARY + ":S45.1.1:無職",
]
cell = st.one_of(st.sampled_from(TRICKY), st.text(max_size=12), st.just(CANARY))


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """Bytes with a few random flips, insertions, deletions or a truncation."""
    out = bytearray(data)
    for _ in range(draw(st.integers(0, 3))):
        if not out:
            break
        i = draw(st.integers(0, len(out) - 1))
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        b = draw(st.sampled_from([0x00, 0x0D, 0x0A, 0x22, 0x2C, 0x81, 0xFF, 0xE3, 0x5B, 0x7B]))
        if op == "flip":
            out[i] = b
        elif op == "insert":
            out.insert(i, b)
        elif op == "delete":
            del out[i]
        else:
            del out[i:]
    return bytes(out)


@st.composite
def csv_file(draw: st.DrawFn, columns: tuple[str, ...], defaults: dict[str, str], encodings: list[str]) -> bytes:
    header = list(columns)
    if draw(st.booleans()):
        header = draw(st.permutations(header))
    rows = []
    for _ in range(draw(st.integers(0, 4))):
        row = dict(defaults)
        for col in draw(st.lists(st.sampled_from(columns), max_size=3)):
            row[col] = draw(cell)
        if draw(st.booleans()):
            row["氏名"] = CANARY + draw(st.sampled_from(["", "", "\x00", "\x1b"])) + row.get("氏名", "")
        rows.append([row.get(c, "") for c in header])
    buf = io.StringIO()
    csv.writer(buf, lineterminator=draw(st.sampled_from(["\r\n", "\n", "\r"]))).writerows([header, *rows])
    encoding = draw(st.sampled_from([*encodings, "utf-8-sig", "utf-16"]))
    data = buf.getvalue().encode(encoding, errors="replace")
    return draw(mutated(data)) if draw(st.booleans()) else data


def json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), cell,
                        st.sampled_from(["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "2025-11-07"]))
    return st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(cell, inner, max_size=3)), max_leaves=6)


def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += paths(v, (*prefix, i))
    return out


@st.composite
def mutated_doc(draw: st.DrawFn, base: dict[str, Any]) -> Any:
    """A JSON document with a few random subtrees replaced (or deleted), sometimes very deep."""
    doc: Any = copy.deepcopy(base)
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(paths(doc)))
        if not path:
            doc = draw(json_values())
            continue
        parent = doc
        for p in path[:-1]:
            parent = parent[p]
        if draw(st.integers(0, 9)) == 0 and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values())
    if draw(st.integers(0, 15)) == 0:
        depth = draw(st.sampled_from([70, 3000, 100_000]))
        doc = {"deep": json.loads("[" * min(depth, 900) + "]" * min(depth, 900)) if depth < 900 else None,
               **(doc if isinstance(doc, dict) else {})}
    return doc


def dumps(doc: Any, draw: st.DrawFn) -> bytes:
    if isinstance(doc, dict) and "deep" in doc and doc["deep"] is None:
        text = json.dumps({k: v for k, v in doc.items() if k != "deep"})
        return (text[:-1] + (", " if len(text) > 2 else "") + '"deep": ' + "[" * 100_000 + "]" * 100_000 + "}").encode()
    data = json.dumps(doc, ensure_ascii=draw(st.booleans())).encode("utf-8")
    return draw(mutated(data)) if draw(st.integers(0, 3)) == 0 else data


# -- the runner with an in-memory producer ------------------------------------------------------------


class _Future:
    def get(self, timeout: float | None = None) -> None:
        return None


class MemoryProducer:
    """Takes what a broker would (up to its limit), keeps it in memory."""

    def __init__(self, max_request_size: int = 1_048_576) -> None:
        self.max_request_size = max_request_size
        self.sent: list[tuple[str, bytes]] = []

    def send(self, topic: str, key: bytes | None = None, value: bytes = b"", headers: object = None) -> _Future:
        if len(value) + len(key or b"") > self.max_request_size:
            raise MessageSizeTooLargeError("too large")
        self.sent.append((topic, value))
        return _Future()

    def flush(self, timeout: float | None = None) -> None:
        return None


def run_feed(make: Callable[[], Connector], state_dir: Path) -> None:
    """Run a connector to exhaustion through the runner and check everything it read was accounted for."""
    state = ConnectorState.in_dir(state_dir)
    producer = MemoryProducer()
    try:
        with capture_logs() as logs:
            connector = make()
            try:
                runner = ConnectorRunner(connector, state, producer, intake_topic="intake",  # type: ignore[arg-type]
                                         deadletter_topic="deadletter")
                stats = runner.run_once()
            finally:
                connector.close()
        assert state.pending() == 0
        assert stats.read == stats.published + stats.published_dead_letters, stats.as_dict()
        assert len(producer.sent) == stats.read
        for topic, value in producer.sent:
            text = value.decode("utf-8")
            if topic == "intake":
                event = CloudEvent.from_json_bytes(value)
                parse_payload(event.type, event.data)
                assert json_problem(event.data) is None, "control character or lone surrogate published"
            else:
                envelope = CloudEvent.from_json_bytes(value)
                assert envelope.type == DEADLETTER_TYPE
                letter = DeadLetterV1.model_validate(envelope.data)
                assert CANARY not in letter.detail and CANARY not in letter.origin.where, letter
                assert CANARY not in (letter.record or "") and CANARY not in (letter.origin.scope or ""), letter
                assert "秘匿" not in text or topic == "intake"
        assert CANARY not in repr(logs)

        # a second pass with the saved checkpoints publishes no event again
        connector = make()
        try:
            again = ConnectorRunner(connector, state, producer, intake_topic="intake",  # type: ignore[arg-type]
                                    deadletter_topic="deadletter").run_once()
        finally:
            connector.close()
        assert again.events == 0, again.as_dict()
    finally:
        state.dispose()


# -- parsers -------------------------------------------------------------------------------------------


@CHEAP
@given(data=st.binary(max_size=400) | csv_file(H_COLUMNS, H_DEFAULTS, ["cp932"]))
def test_fuzz_read_csv(data: bytes) -> None:
    """read_csv never raises on any bytes, and every error is one of its fixed phrases."""
    with bounded():
        for rec in read_csv(data, "f.csv", encodings=["cp932", "utf-8"], required=list(H_COLUMNS)):
            assert rec.line >= 1
            assert rec.error is None or CANARY not in rec.error


@CHEAP
@given(text=st.one_of(cell, st.lists(cell, max_size=4).map("／".join)))
def test_fuzz_parse_household(text: str) -> None:
    """The 同居家族 parser either returns members or raises RowError without the text."""
    from connectors.csv_export import RowError as CsvRowError

    with bounded():
        try:
            parse_household(text, "houkatsu:C01-1")
        except CsvRowError as exc:
            assert CANARY not in exc.reason


@CHEAP
@given(data=st.binary(max_size=300) | st.sampled_from([
    b'name = "x"\nfeed = "houkatsu"\nfile_pattern = "^a$"\n', b'feed = "houkatsu"\nfile_pattern = "("\n',
    b'feed = "houkatsu"\nfile_pattern = "^a$"\nencodings = ["nope"]\n']).flatmap(mutated))
def test_fuzz_load_mapping(data: bytes) -> None:
    """A mapping file of any bytes loads or raises a one-line MappingError."""
    with bounded(), tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.mapping.toml"
        path.write_bytes(data)
        try:
            load_mapping(path)
        except MappingError as exc:
            assert "\n" not in str(exc)


@FUZZ
@given(doc=mutated_doc(CONSENT))
def test_fuzz_parse_consent(doc: Any) -> None:
    """parse_consent maps or raises InvalidConsentDocument, never anything else, never quoting a value."""
    with bounded():
        try:
            consent = parse_consent(doc)
        except InvalidConsentDocument as exc:
            assert CANARY not in str(exc)
        else:
            consent.model_dump_json()


ROW_VALUES = st.one_of(st.none(), st.integers(-5, 2**40), st.floats(allow_nan=False), cell, st.binary(max_size=8))


@CHEAP
@given(over=st.dictionaries(st.sampled_from(list(client(1, "2026-01-10 09:00:00"))), ROW_VALUES, max_size=4))
def test_fuzz_shogai_client_row(over: dict[str, Any]) -> None:
    """A t_riyousha row of any values maps or raises RowError naming columns only."""
    with bounded():
        try:
            client_from_row({**client(1, "2026-01-10 09:00:00"), **over})
        except RowError as exc:
            assert CANARY not in str(exc)


@FUZZ
@given(data=st.data())
def test_fuzz_kodomo_handle(data: st.DataObject) -> None:
    """The webhook core answers every signed or unsigned body with a result whose items serialize."""
    doc = data.draw(mutated_doc(json.loads(body_of())))
    body = dumps(doc, data.draw)
    headers = {"X-Delivery-Id": data.draw(st.sampled_from(["d-1", "", "../x", CANARY])), "X-Timestamp": "1000"}
    headers["X-Signature"] = sign_delivery(SECRET, headers["X-Delivery-Id"], "1000", body)
    with bounded():
        result = KodomoWebhook(SECRET, clock=lambda: 1000.0).handle(headers, body)
    for item in result.items:
        if item.event is not None:
            item.event.to_json_bytes()
        else:
            assert item.dead_letter is not None
            assert CANARY not in item.dead_letter.to_json_bytes().decode("utf-8")


# -- whole source folders --------------------------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_fuzz_csv_folders(data: st.DataObject) -> None:
    """Folders of generated and mutated CSV files of each CSV feed: everything read is published or dead-lettered."""
    feeds = [
        ("houkatsu", HoukatsuConnector, H_COLUMNS, H_DEFAULTS, ["cp932"], "C0{n}_soudan_2025040{n}.csv"),
        ("jiritsu", JiritsuConnector, J_COLUMNS, J_DEFAULTS, ["utf-8"], "jiritsu_20250{n}.csv"),
        ("registry", RegistryConnector, R_COLUMNS, R_DEFAULTS, ["utf-8"], "jumin.csv"),
    ]
    _, cls, columns, defaults, encodings, pattern = data.draw(st.sampled_from(feeds))
    with tempfile.TemporaryDirectory() as tmp, bounded():
        folder = Path(tmp) / "feed"
        folder.mkdir()
        for n in range(1, data.draw(st.integers(1, 3)) + 1):
            (folder / pattern.format(n=n)).write_bytes(data.draw(csv_file(columns, defaults, encodings)))
        run_feed(lambda: cls(folder), Path(tmp) / "state")


@FUZZ
@given(data=st.data())
def test_fuzz_consent_folders(data: st.DataObject) -> None:
    """Folders of mutated consent documents: everything read is published or dead-lettered."""
    with tempfile.TemporaryDirectory() as tmp, bounded():
        folder = Path(tmp) / "consent"
        folder.mkdir()
        for n in range(data.draw(st.integers(1, 3))):
            doc = data.draw(mutated_doc(CONSENT))
            name = data.draw(st.sampled_from([f"consent-{n}.json".encode(), f"consent-{n}\xff.json".encode("latin-1")]))
            with open(os.path.join(os.fsencode(folder), name), "wb") as f:
                f.write(dumps(doc, data.draw))
        run_feed(lambda: FhirConsentConnector(folder), Path(tmp) / "state")


@FUZZ
@given(data=st.data())
def test_fuzz_kodomo_folders(data: st.DataObject) -> None:
    """Folders of mutated (mostly well-signed) delivery files, ids sometimes reused: all accounted for."""
    with tempfile.TemporaryDirectory() as tmp, bounded():
        folder = Path(tmp) / "kodomo"
        folder.mkdir()
        for n in range(data.draw(st.integers(1, 3))):
            body = dumps(data.draw(mutated_doc(json.loads(body_of()))), data.draw)
            delivery = data.draw(st.sampled_from(["d-1", "d-2", f"d-{n}x", ""]))
            signature = sign(SECRET if data.draw(st.integers(0, 4)) else b"wrong", body)
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                text = body.decode("utf-8", "surrogateescape")
            raw = json.dumps({"headers": {"X-Delivery-Id": delivery, "X-Signature": signature}, "body": text})
            file_bytes = raw.encode("utf-8")
            if data.draw(st.integers(0, 5)) == 0:
                file_bytes = data.draw(mutated(file_bytes))
            name = data.draw(st.sampled_from([f"d-{n}.json".encode(), f"d-{n}\xfe.json".encode("latin-1")]))
            with open(os.path.join(os.fsencode(folder), name), "wb") as f:
                f.write(file_bytes)
        run_feed(lambda: KodomoReplayConnector(folder, SECRET), Path(tmp) / "state")


SHOGAI_VALUES = st.one_of(st.none(), st.integers(-5, 10**6), cell, st.binary(max_size=6),
                          st.sampled_from(["2026-01-10 09:00:00", "2026-13-40 99:00", "R8.1.10", "2026/01/10"]))


@FUZZ
@given(data=st.data())
def test_fuzz_shogai_databases(data: st.DataObject) -> None:
    """Databases with random values (and sometimes broken files): every row is published or dead-lettered."""
    stamp = "2026-01-10 09:00:00"
    with tempfile.TemporaryDirectory() as tmp, bounded():
        path = Path(tmp) / "soudan.sqlite"
        con = sqlite3.connect(path)
        for stmt in SQLITE_DDL:
            con.execute(stmt)
        for rid in range(1, data.draw(st.integers(1, 4)) + 1):
            row = {**client(rid, stamp, shimei=CANARY),
                   **data.draw(st.dictionaries(st.sampled_from(list(client(1, stamp))[1:]), SHOGAI_VALUES,
                                               max_size=3))}
            con.execute(f"INSERT INTO t_riyousha VALUES ({', '.join('?' * len(row))})", list(row.values()))
            srow = {**case(100 + rid, rid, stamp),
                    **data.draw(st.dictionaries(st.sampled_from(list(case(1, 1, stamp))[1:]), SHOGAI_VALUES,
                                                max_size=3))}
            with contextlib.suppress(sqlite3.IntegrityError):  # NOT NULL columns given NULL
                con.execute(f"INSERT INTO t_soudan VALUES ({', '.join('?' * len(srow))})", list(srow.values()))
        con.commit()
        con.close()
        if data.draw(st.integers(0, 5)) == 0:
            path.write_bytes(data.draw(mutated(path.read_bytes())))
        run_feed(lambda: ShogaiConnector(f"sqlite:///{path}"), Path(tmp) / "state")
