"""The kodomo webhook: signature check, ledger, case events, FastAPI router and sample replay."""

from __future__ import annotations

import hmac
import json
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from connectors import kodomo
from connectors.contract import Item
from connectors.kodomo import (
    InMemoryLedger,
    KodomoReplayConnector,
    KodomoWebhook,
    SqlLedger,
    make_router,
    sign,
    verify_signature,
)
from schemas.events import CaseV1

SECRET = b"kodomo-sample-secret"
STATE_TYPE = {"open": "jp.tsunagu.case.opened.v1", "mid": "jp.tsunagu.case.updated.v1",
              "closed": "jp.tsunagu.case.closed.v1"}


def body_of(event: str = "record.created", **over: Any) -> bytes:
    record: dict[str, Any] = {
        "kiroku_id": "K2026-0100",
        "setai_no": "5033100001",
        "koushin": "2026-04-01T10:00:00+09:00",
        "uketsuke_bi": "2026-04-01",
        "joukyou": "受付",
        "soudan_naiyou": ["養育相談", "ヤングケアラー"],
        "kodomo": [
            {"taishosha_no": "T200001", "atena_no": "1055400001", "shimei": "試験　一郎", "kana": "シケン　イチロウ",
             "seinengappi": "2014-03-28", "seibetsu": "男"},
            {"taishosha_no": "T200002", "atena_no": None, "shimei": "試験　二葉", "kana": "シケン　フタバ",
             "seinengappi": "2016-07-01", "seibetsu": "女"},
        ],
        "hogosha": [
            {"taishosha_no": "T200003", "atena_no": "1055400003", "shimei": "試験　花子", "kana": "シケン　ハナコ",
             "seinengappi": "1985-08-11", "zokugara": "母"},
        ],
        "shuuketsu_bi": None,
    }
    record.update(over)
    return json.dumps({"event": event, "record": record}, ensure_ascii=False).encode("utf-8")


def headers_for(body: bytes, delivery: str = "d-test-0001", secret: bytes = SECRET) -> dict[str, str]:
    return {"X-Delivery-Id": delivery, "X-Signature": sign(secret, body), "Content-Type": "application/json"}


def deliver(hook: KodomoWebhook, body: bytes, delivery: str = "d-test-0001") -> kodomo.HandleResult:
    """Handle and, as the router does after publishing, acknowledge."""
    result = hook.handle(headers_for(body, delivery), body)
    hook.acknowledge(result)
    return result


# -- signature -------------------------------------------------------------------------------


def test_good_signature_is_accepted() -> None:
    """A body signed with the shared secret is accepted with 202 and its events."""
    body = body_of()
    result = KodomoWebhook(SECRET, legacy_signature=True).handle(headers_for(body), body)
    assert (result.status, result.outcome) == (202, "accepted")
    assert len(result.events) == 2 and not result.dead_letters


def test_tampered_body_is_refused() -> None:
    """Changing one byte of a signed body gives 401 and a dead letter without body content."""
    body = body_of()
    headers = headers_for(body, "d-tamper-1")
    tampered = body.replace("受付".encode(), "終結".encode())
    result = KodomoWebhook(SECRET, legacy_signature=True).handle(headers, tampered)
    assert (result.status, result.outcome, result.events) == (401, "bad signature", [])
    [letter] = result.dead_letters
    assert (letter.source, letter.where, letter.record, letter.reason) == (
        "kodomo", "delivery:d-tamper-1", None, "bad signature")
    assert "試験" not in letter.model_dump_json() and "T200001" not in letter.model_dump_json()


def test_tampered_signature_is_refused() -> None:
    """A signature made with another secret, or altered, is refused."""
    body = body_of()
    hook = KodomoWebhook(SECRET, legacy_signature=True)
    assert hook.handle(headers_for(body, secret=b"other-secret"), body).status == 401
    good = sign(SECRET, body)
    flipped = good[:-1] + ("0" if good[-1] != "0" else "1")
    assert hook.handle({**headers_for(body), "X-Signature": flipped}, body).status == 401
    assert hook.handle({**headers_for(body), "X-Signature": good.removeprefix("sha256=")}, body).status == 401


def test_missing_signature_is_refused() -> None:
    """A delivery without X-Signature is refused with 401 and recorded."""
    body = body_of()
    headers = headers_for(body)
    del headers["X-Signature"]
    result = KodomoWebhook(SECRET, legacy_signature=True).handle(headers, body)
    assert result.status == 401 and result.dead_letters[0].reason == "bad signature"


def test_signature_compare_is_constant_time() -> None:
    """The signature check goes through hmac.compare_digest, never ``==``."""
    body = body_of()
    with mock.patch("hmac.compare_digest", wraps=hmac.compare_digest) as spy:
        assert verify_signature(SECRET, body, sign(SECRET, body))
        assert not verify_signature(SECRET, body, "sha256=00")
    assert spy.call_count == 2


def test_headers_are_case_insensitive() -> None:
    """Header names arrive lower-cased from HTTP servers; that is the same delivery."""
    body = body_of()
    headers = {k.lower(): v for k, v in headers_for(body).items()}
    assert KodomoWebhook(SECRET, legacy_signature=True).handle(headers, body).status == 202


def test_refused_delivery_does_not_shadow_the_real_one() -> None:
    """A forged delivery id with a bad signature is not remembered, so the genuine delivery still counts."""
    body = body_of()
    hook = KodomoWebhook(SECRET, legacy_signature=True)
    forged = hook.handle({**headers_for(body, "d-x"), "X-Signature": "sha256=" + "0" * 64}, body)
    hook.acknowledge(forged)
    assert deliver(hook, body, "d-x").status == 202


# -- content ---------------------------------------------------------------------------------


def test_one_case_event_per_child() -> None:
    """Each child gets a case event naming the others as children and the guardians with their relation."""
    result = KodomoWebhook(SECRET, legacy_signature=True).handle(headers_for(body_of()), body_of())
    by_key = {i.key: i.event for i in result.items}
    assert set(by_key) == {"kodomo:T200001", "kodomo:T200002"}
    first = by_key["kodomo:T200001"]
    assert first is not None
    assert first.type == "jp.tsunagu.case.opened.v1" and first.field == "child"
    assert first.source == "urn:tsunagu:connector:kodomo" and first.sourcerecord == "kodomo:T200001"
    assert first.time == datetime.fromisoformat("2026-04-01T10:00:00+09:00")
    case = CaseV1.model_validate(first.data)
    assert case.case == "kodomo:case:K2026-0100" and case.source_household_no == "5033100001"
    assert [t.value for t in case.topics] == ["child_rearing", "young_carer"]
    assert case.status == "intake" and case.subject.sex == "male"
    assert [(r.person.record, r.role, r.person.relation) for r in case.related_persons] == [
        ("kodomo:T200002", "child", None),
        ("kodomo:T200003", "guardian", "mother"),
    ]


@pytest.mark.parametrize(
    ("event", "joukyou", "type_"),
    [("record.created", "受付", "opened"), ("record.updated", "支援中", "updated"),
     ("record.closed", "終結", "closed")],
)
def test_event_kind_gives_the_case_type(event: str, joukyou: str, type_: str) -> None:
    """record.created / updated / closed become case.opened / updated / closed."""
    body = body_of(event, joukyou=joukyou, shuuketsu_bi="2026-04-01" if type_ == "closed" else None)
    result = KodomoWebhook(SECRET, legacy_signature=True).handle(headers_for(body), body)
    assert {e.type for e in result.events} == {f"jp.tsunagu.case.{type_}.v1"}


@pytest.mark.parametrize(
    ("body", "outcome"),
    [
        (b"{not json", "malformed"),
        (body_of(joukyou="保留"), "invalid"),
        (body_of(soudan_naiyou=["借金"]), "invalid"),
        (body_of(uketsuke_bi="2026-02-30"), "invalid"),
        (body_of(kodomo=[]), "invalid"),
        (body_of(koushin="2026-04-01T10:00:00"), "invalid"),
        (json.dumps({"event": "record.deleted", "record": {}}).encode(), "invalid"),
    ],
)
def test_bad_body_is_400_and_a_dead_letter(body: bytes, outcome: str) -> None:
    """Signed but unusable bodies give 400 and a dead letter whose reason names no value."""
    result = KodomoWebhook(SECRET, legacy_signature=True).handle(headers_for(body, "d-bad-1"), body)
    assert (result.status, result.outcome, result.events) == (400, outcome, [])
    [letter] = result.dead_letters
    assert letter.where == "delivery:d-bad-1" and letter.reason
    for personal in ("試験", "シケン", "1055400001", "保留", "借金", "2026-02-30"):
        assert personal not in letter.reason


def test_same_content_gives_same_ids() -> None:
    """Handling the same body twice (fresh ledgers) yields the same event ids."""
    body = body_of()
    a = KodomoWebhook(SECRET, legacy_signature=True).handle(headers_for(body), body).events
    b = KodomoWebhook(SECRET, legacy_signature=True).handle(headers_for(body, "d-other"), body).events
    assert [e.id for e in a] == [e.id for e in b]


# -- ledger: duplicates and order ------------------------------------------------------------


@pytest.fixture(params=["memory", "sql"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """Both ledger implementations."""
    if request.param == "memory":
        yield InMemoryLedger()
        return
    sql = SqlLedger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    yield sql
    sql.dispose()


def test_repeated_delivery_is_a_duplicate(ledger: Any) -> None:
    """A delivery id seen before answers 200 duplicate and is not processed again."""
    hook = KodomoWebhook(SECRET, ledger, legacy_signature=True)
    body = body_of()
    assert deliver(hook, body, "d-1").status == 202
    again = deliver(hook, body, "d-1")
    assert (again.status, again.outcome, again.items) == (200, "duplicate", [])


def test_unacknowledged_delivery_is_processed_on_retry(ledger: Any) -> None:
    """Until its items are published (acknowledge), a delivery is not remembered: a retry is processed."""
    hook = KodomoWebhook(SECRET, ledger, legacy_signature=True)
    body = body_of()
    first = hook.handle(headers_for(body, "d-1"), body)
    retry = hook.handle(headers_for(body, "d-1"), body)
    assert first.status == retry.status == 202 and first.events == retry.events


def test_older_koushin_is_stale(ledger: Any) -> None:
    """A change older than one already accepted for the record is reported stale, its own time kept."""
    hook = KodomoWebhook(SECRET, ledger, legacy_signature=True)
    newer = body_of("record.updated", joukyou="支援中", koushin="2026-05-01T09:00:00+09:00")
    older = body_of("record.created", koushin="2026-04-01T10:00:00+09:00")
    assert deliver(hook, newer, "d-2").outcome == "accepted"
    late = deliver(hook, older, "d-1")
    assert (late.status, late.outcome) == (202, "stale")
    assert {e.time for e in late.events} == {datetime.fromisoformat("2026-04-01T10:00:00+09:00")}
    assert ledger.last_koushin("K2026-0100") == datetime.fromisoformat("2026-05-01T09:00:00+09:00")


def test_stale_without_emitting(ledger: Any) -> None:
    """With emit_stale=False a stale delivery answers 200 stale and yields no event."""
    hook = KodomoWebhook(SECRET, ledger, emit_stale=False, legacy_signature=True)
    deliver(hook, body_of("record.updated", joukyou="支援中", koushin="2026-05-01T09:00:00+09:00"), "d-2")
    late = deliver(hook, body_of(), "d-1")
    assert (late.status, late.outcome, late.items) == (200, "stale", [])


def test_sql_ledger_persists(tmp_path: Path) -> None:
    """The SQL ledger remembers deliveries and the newest koushin across instances."""
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    first = SqlLedger(url)
    first.mark("d-1")
    first.set_koushin("K1", datetime.fromisoformat("2026-05-01T09:00:00+09:00"))
    first.set_koushin("K1", datetime.fromisoformat("2026-04-01T09:00:00+09:00"))
    first.dispose()
    second = SqlLedger(url)
    assert second.seen("d-1") and not second.seen("d-2")
    assert second.last_koushin("K1") == datetime.fromisoformat("2026-05-01T09:00:00+09:00")
    assert second.last_koushin("K2") is None
    second.dispose()


# -- FastAPI router --------------------------------------------------------------------------


def make_app(published: list[list[Item]], fail: bool = False) -> TestClient:
    async def publish(items: list[Item]) -> None:
        if fail:
            raise ConnectionError("broker away")
        published.append(items)

    app = FastAPI()
    app.include_router(make_router(KodomoWebhook(SECRET, legacy_signature=True), publish))
    return TestClient(app)


def test_router_accepts_refuses_and_deduplicates() -> None:
    """POST /webhooks/kodomo answers 202 after publishing, 401 for a bad signature, 200 for a repeat."""
    published: list[list[Item]] = []
    client = make_app(published)
    body = body_of()
    ok = client.post("/webhooks/kodomo", content=body, headers=headers_for(body, "d-http-1"))
    assert ok.status_code == 202 and ok.json() == {"status": "accepted"}
    assert len(published) == 1 and len(published[0]) == 2
    dup = client.post("/webhooks/kodomo", content=body, headers=headers_for(body, "d-http-1"))
    assert dup.status_code == 200 and dup.json() == {"status": "duplicate"}
    assert len(published) == 1
    bad = client.post("/webhooks/kodomo", content=body,
                      headers={**headers_for(body, "d-http-2"), "X-Signature": "sha256=" + "0" * 64})
    assert bad.status_code == 401
    assert published[-1][0].dead_letter is not None and published[-1][0].dead_letter.reason == "bad signature"


def test_router_does_not_acknowledge_before_publishing() -> None:
    """When publishing fails the answer is 503 and the retry is processed, not taken as a duplicate."""
    body = body_of()
    failing = make_app([], fail=True)
    assert failing.post("/webhooks/kodomo", content=body, headers=headers_for(body, "d-1")).status_code == 503
    hook = KodomoWebhook(SECRET, legacy_signature=True)
    published: list[list[Item]] = []

    async def publish(items: list[Item]) -> None:
        published.append(items)

    calls = {"n": 0}

    async def flaky(items: list[Item]) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("broker away")
        await publish(items)

    app = FastAPI()
    app.include_router(make_router(hook, flaky))
    client = TestClient(app)
    assert client.post("/webhooks/kodomo", content=body, headers=headers_for(body, "d-1")).status_code == 503
    assert client.post("/webhooks/kodomo", content=body, headers=headers_for(body, "d-1")).status_code == 202
    assert len(published) == 1


def test_router_signs_the_raw_bytes() -> None:
    """The router verifies the exact bytes received (non-ASCII, unusual spacing), not a re-encoding."""
    published: list[list[Item]] = []
    client = make_app(published)
    body = body_of().replace(b", ", b",   ")
    resp = client.post("/webhooks/kodomo", content=body, headers=headers_for(body, "d-raw"))
    assert resp.status_code == 202


# -- sample replay ---------------------------------------------------------------------------


def replay(folder: Path, checkpoints: dict[str, str] | None = None) -> list[Item]:
    return list(KodomoReplayConnector(folder, "kodomo-sample-secret").read(checkpoints or {}))


def test_sample_replay_counts(samples_dir: Path) -> None:
    """41 sample files: 32 first deliveries, 8 retried duplicates, 1 bad signature → 32 events, 1 dead letter."""
    connector = KodomoReplayConnector(samples_dir / "kodomo", "kodomo-sample-secret")
    items = list(connector.read({}))
    outcomes = [r.outcome for _, r in connector.results]
    assert len(outcomes) == 41
    assert outcomes.count("duplicate") == 8
    assert outcomes.count("bad signature") == 1
    assert outcomes.count("accepted") + outcomes.count("stale") == 32
    assert sum(i.event is not None for i in items) == 32
    assert sum(i.dead_letter is not None for i in items) == 1


def test_every_truth_event_is_emitted(samples_dir: Path, truth: dict[str, Any]) -> None:
    """Each kodomo change in samples.truth.json is a case event with that record, time and state."""
    seen = {(e.sourcerecord, e.time, e.type) for i in replay(samples_dir / "kodomo") if (e := i.event)}
    expected = [t for t in truth["events"] if t["record"].startswith("kodomo:")]
    assert expected
    for t in expected:
        assert (t["record"], datetime.fromisoformat(t["at"]), STATE_TYPE[t["state"]]) in seen, t


def test_truth_bad_delivery_is_a_dead_letter_only(samples_dir: Path, truth: dict[str, Any]) -> None:
    """The planted bad-signature delivery becomes one dead letter and its record never an event."""
    items = replay(samples_dir / "kodomo")
    bad = [b for b in truth["bad"] if b["source"] == "kodomo"]
    assert bad
    letters = [i.dead_letter for i in items if i.dead_letter]
    for b in bad:
        assert f"delivery:{b['delivery']}" in {d.where for d in letters}
        assert not [i for i in items if i.event and i.event.sourcerecord == b["record"]]
        assert not [i for i in items if i.event and b["record"] in json.dumps(i.event.data)]


def test_replay_resumes_after_checkpoint(samples_dir: Path) -> None:
    """Resuming from a saved index yields exactly the items after it, with the same ids."""
    items = replay(samples_dir / "kodomo")
    for cut in (0, 5, 17, len(items)):
        checkpoints = {"kodomo": items[cut - 1].checkpoint.position} if cut else {}
        assert replay(samples_dir / "kodomo", checkpoints) == items[cut:]


def test_replay_retry_file_is_a_duplicate(tmp_path: Path, samples_dir: Path) -> None:
    """A *.retry.json repeating a delivery id is not processed again."""
    folder = tmp_path / "kodomo"
    folder.mkdir()
    for name in ("d-2ae39fda1b48bda3.json", "d-2ae39fda1b48bda3.retry.json"):
        shutil.copy(samples_dir / "kodomo" / name, folder / name)
    connector = KodomoReplayConnector(folder, "kodomo-sample-secret")
    items = list(connector.read({}))
    assert [r.outcome for _, r in connector.results] == ["accepted", "duplicate"]
    assert len(items) == 1


def test_unreadable_delivery_file_is_a_dead_letter(tmp_path: Path) -> None:
    """A delivery file that is not {headers, body} JSON becomes a dead letter naming the file."""
    (tmp_path / "d-broken.json").write_text("{nope", encoding="utf-8")
    [item] = replay(tmp_path)
    assert item.dead_letter is not None and item.dead_letter.where == "file:d-broken.json"
