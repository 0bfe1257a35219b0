"""The kodomo webhook core against hostile deliveries: signatures with replay window, sizes, reused ids, odd files."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from connectors.contract import Item
from connectors.kodomo import (
    BodyTooLarge,
    InMemoryLedger,
    KodomoReplayConnector,
    KodomoWebhook,
    SqlLedger,
    body_too_large,
    make_router,
    read_limited,
    sign,
    sign_delivery,
)
from connectors.ratelimit import TokenBucket
from unit.test_kodomo import SECRET, body_of

NOW = 1_780_000_000.0


def v2_headers(
    body: bytes, delivery: str = "d-test-0001", stamp: float = NOW, secret: bytes = SECRET
) -> dict[str, str]:
    ts = str(int(stamp))
    return {"X-Delivery-Id": delivery, "X-Timestamp": ts, "X-Signature": sign_delivery(secret, delivery, ts, body)}


def hook(**kw: object) -> KodomoWebhook:
    return KodomoWebhook(SECRET, clock=lambda: NOW, **kw)  # type: ignore[arg-type]


# -- the current signature scheme -------------------------------------------------------------------


def test_signature_over_id_timestamp_and_body_is_accepted() -> None:
    """A delivery signed over delivery id, timestamp and body, sent now, is accepted."""
    body = body_of()
    result = hook().handle(v2_headers(body), body)
    assert (result.status, result.outcome) == (202, "accepted") and len(result.events) == 2


def test_during_a_rotation_the_previous_secret_still_counts() -> None:
    """With the old secret configured as previous, deliveries signed with either secret are accepted; others not."""
    body = body_of()
    old = b"the-old-shared-secret"
    rotating = KodomoWebhook(SECRET, clock=lambda: NOW, previous_secret=old)
    assert rotating.handle(v2_headers(body, delivery="d-old-0001", secret=old), body).status == 202
    assert rotating.handle(v2_headers(body, delivery="d-new-0001"), body).status == 202
    assert hook().handle(v2_headers(body, delivery="d-old-0002", secret=old), body).status == 401
    other = rotating.handle(v2_headers(body, delivery="d-bad-0001", secret=b"someone-else"), body)
    assert other.status == 401


@pytest.mark.parametrize("change", ["delivery", "timestamp", "body"])
def test_changing_any_signed_part_is_refused(change: str) -> None:
    """Moving the signature to another id, timestamp or body breaks it."""
    body = body_of()
    headers = v2_headers(body)
    if change == "delivery":
        headers["X-Delivery-Id"] = "d-test-0002"
    elif change == "timestamp":
        headers["X-Timestamp"] = str(int(NOW) + 1)
    else:
        body = body_of(joukyou="対応中")
    result = hook().handle(headers, body)
    assert (result.status, result.outcome) == (401, "bad signature")


@pytest.mark.parametrize(("offset", "outcome"), [(-301, "stale timestamp"), (301, "stale timestamp"),
                                                  (-300, "accepted"), (299, "accepted")])
def test_replay_window(offset: int, outcome: str) -> None:
    """A timestamp more than the window (300 s) away from now is refused as stale; within it, accepted."""
    body = body_of()
    result = hook().handle(v2_headers(body, stamp=NOW + offset), body)
    assert result.outcome == outcome
    assert result.status == (401 if outcome == "stale timestamp" else 202)


def test_replay_window_is_configurable() -> None:
    """A one-hour window accepts a delivery 20 minutes old."""
    body = body_of()
    assert hook(replay_window_s=3600).handle(v2_headers(body, stamp=NOW - 1200), body).outcome == "accepted"


def test_body_only_signature_needs_the_legacy_flag() -> None:
    """The vendor's body-only signature is refused by default and accepted where configured."""
    body = body_of()
    headers = {"X-Delivery-Id": "d-test-0001", "X-Signature": sign(SECRET, body)}
    assert hook().handle(headers, body).outcome == "bad signature"
    assert hook(legacy_signature=True).handle(headers, body).outcome == "accepted"


def test_unauthenticated_failures_can_skip_the_dead_letter() -> None:
    """With dead_letter_unauthenticated=False, bad signatures, stale and oversize posts yield no item."""
    body = body_of()
    quiet = hook(dead_letter_unauthenticated=False, max_body_bytes=100_000)
    results = [
        quiet.handle(v2_headers(body, secret=b"wrong"), body),
        quiet.handle(v2_headers(body, stamp=NOW - 3600), body),
        quiet.handle(v2_headers(b"x" * 100_001), b"x" * 100_001),
    ]
    assert [(r.outcome, r.authenticated, r.items) for r in results] == [
        ("bad signature", False, []), ("stale timestamp", False, []), ("too large", False, [])]
    loud = hook().handle(v2_headers(body, secret=b"wrong"), body)
    assert [d.reason for d in loud.dead_letters] == ["bad signature"]


# -- sizes ------------------------------------------------------------------------------------------


def test_oversize_body_is_413_without_checking_the_signature() -> None:
    """A body over max_body_bytes (default 1 MB) is refused with 413 and a dead letter naming the limit."""
    body = b"{" + b" " * 1_000_000 + b"}"
    result = hook().handle(v2_headers(body), body)
    assert (result.status, result.outcome) == (413, "too large")
    assert [d.reason for d in result.dead_letters] == ["delivery larger than 1000000 bytes"]


@pytest.mark.parametrize(("header", "too_large"), [(None, False), ("10", False), ("1000000", False),
                                                   ("1000001", True), ("abc", True), ("-1", True), ("１０", True)])
def test_content_length_check(header: str | None, too_large: bool) -> None:
    """A declared Content-Length over the limit, or one that is not a plain number, is refused up front."""
    assert body_too_large(header) is too_large


def test_read_limited_stops_as_soon_as_the_limit_is_passed() -> None:
    """Reading a stream stops at the first chunk past the limit; what fits is returned whole."""
    pulled: list[int] = []

    async def stream(n: int) -> AsyncIterator[bytes]:
        for i in range(n):
            pulled.append(i)
            yield b"x" * 1000

    assert asyncio.run(read_limited(stream(5), limit=5000)) == b"x" * 5000
    pulled.clear()
    with pytest.raises(BodyTooLarge):
        asyncio.run(read_limited(stream(1000), limit=5000))
    assert pulled == list(range(6))  # never read further than needed


# -- reused delivery ids ----------------------------------------------------------------------------


@pytest.mark.parametrize("ledger_kind", ["memory", "sql"])
def test_delivery_id_reused_with_different_content_is_a_dead_letter(tmp_path: Path, ledger_kind: str) -> None:
    """The same delivery id with another body is a 409 and a dead letter; the same body again stays a duplicate."""
    ledger = InMemoryLedger() if ledger_kind == "memory" else SqlLedger(f"sqlite:///{tmp_path / 'l.sqlite'}")
    h = hook(ledger=ledger)
    first = body_of()
    result = h.handle(v2_headers(first), first)
    h.acknowledge(result)
    again = h.handle(v2_headers(first), first)
    assert again.outcome == "duplicate" and again.items == []
    other = body_of(joukyou="対応中")
    reused = h.handle(v2_headers(other), other)
    assert (reused.status, reused.outcome) == (409, "conflict")
    assert [(d.where, d.reason) for d in reused.dead_letters] == [
        ("delivery:d-test-0001", "delivery id reused with different content")]
    h.acknowledge(reused)
    assert h.handle(v2_headers(first), first).outcome == "duplicate"  # the first content still rules


def write_delivery(folder: Path, name: str, body: str, delivery: str, secret: bytes = SECRET) -> None:
    headers = {"X-Delivery-Id": delivery, "X-Signature": sign(secret, body.encode("utf-8"))}
    (folder / name).write_text(json.dumps({"headers": headers, "body": body}), encoding="utf-8")


def replay(folder: Path) -> KodomoReplayConnector:
    return KodomoReplayConnector(folder, SECRET)


def test_replayed_file_reusing_a_delivery_id_with_other_content_is_counted(tmp_path: Path) -> None:
    """A second delivery file with the same id and other content is a dead letter, not silently dropped."""
    write_delivery(tmp_path, "d-1.json", body_of().decode(), "d-1")
    write_delivery(tmp_path, "d-1.retry.json", body_of().decode(), "d-1")
    write_delivery(tmp_path, "d-1.z.json", body_of(joukyou="対応中").decode(), "d-1")
    connector = replay(tmp_path)
    items = list(connector.read({}))
    assert [r.outcome for _, r in connector.results] == ["accepted", "duplicate", "conflict"]
    assert [i.dead_letter.reason for i in items if i.dead_letter] == ["delivery id reused with different content"]
    assert len([i for i in items if i.event]) == 2


# -- hostile files ----------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [300, 5000, 200_000])
def test_deeply_nested_delivery_file_is_a_dead_letter(tmp_path: Path, depth: int) -> None:
    """A delivery file (or its body) nested thousands deep is a dead letter, not a RecursionError."""
    deep = "[" * depth + "]" * depth
    (tmp_path / "d-a.json").write_text('{"headers": {}, "body": "x", "pad": ' + deep + "}", encoding="utf-8")
    write_delivery(tmp_path, "d-b.json", '{"event": "record.created", "record": ' + deep + "}", "d-b")
    items = list(replay(tmp_path).read({}))
    assert len(items) == 2 and all(i.dead_letter is not None for i in items)
    for item in items:
        assert item.dead_letter is not None
        item.dead_letter.to_json_bytes()


def test_lone_surrogate_in_a_delivery_file_is_a_dead_letter(tmp_path: Path) -> None:
    """A body holding a lone surrogate (escaped in the file) cannot be signed bytes: a dead letter naming the file."""
    (tmp_path / "d-a.json").write_text(
        '{"headers": {"X-Delivery-Id": "d-a", "X-Signature": "sha256=00"}, "body": "{\\"x\\": \\"\\ud800\\"}"}',
        encoding="utf-8",
    )
    write_delivery(tmp_path, "d-b.json", body_of().decode(), "d-b")
    items = list(replay(tmp_path).read({}))
    assert items[0].dead_letter is not None
    assert items[0].dead_letter.reason == "unreadable delivery file (not valid Unicode)"
    assert len([i for i in items if i.event]) == 2


def test_escaped_lone_surrogate_inside_the_signed_body_is_a_dead_letter() -> None:
    """A signed body whose JSON escapes a lone surrogate in a name is refused as malformed."""
    body = body_of().replace("試験　一郎".encode(), b"\\ud800")
    result = hook().handle(v2_headers(body), body)
    assert result.status == 400 and result.dead_letters
    result.dead_letters[0].to_json_bytes()


def test_nul_in_a_name_is_a_dead_letter() -> None:
    """A NUL inside a child's name is a dead letter naming no value."""
    body = body_of().replace("試験　一郎".encode(), "試験\\u0000一郎".encode())
    result = hook().handle(v2_headers(body), body)
    assert (result.status, result.outcome) == (400, "invalid")
    assert [d.reason for d in result.dead_letters] == ["control character in a JSON string"]
    assert "一郎" not in result.dead_letters[0].model_dump_json()


def test_delivery_file_name_that_is_not_utf8(tmp_path: Path) -> None:
    """A delivery file whose name is not UTF-8 is replayed; a dead letter shows the name escaped."""
    with open(os.path.join(os.fsencode(tmp_path), b"d-\xff.json"), "wb") as f:
        f.write(b"{")
    items = list(KodomoReplayConnector(os.fsencode(tmp_path), SECRET).read({}))
    [item] = items
    assert item.dead_letter is not None and item.dead_letter.where == "file:d-\\xff.json"
    item.dead_letter.to_json_bytes()


# -- the router's limits ----------------------------------------------------------------------------


def router_client(refusals: list[str], *, limiter: TokenBucket | None = None, max_body_bytes: int = 1_000_000):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    published: list[list[Item]] = []

    async def publish(items: list[Item]) -> None:
        published.append(items)

    webhook = KodomoWebhook(SECRET, max_body_bytes=max_body_bytes, dead_letter_unauthenticated=False)
    app = FastAPI()
    app.include_router(make_router(webhook, publish, limiter=limiter, on_refused=refusals.append))
    return TestClient(app), published


def test_router_refuses_an_oversize_body_with_413() -> None:
    """A post over the limit is 413, counted, and publishes nothing (declared or streamed without a length)."""
    refusals: list[str] = []
    client, published = router_client(refusals, max_body_bytes=1000)
    big = b"x" * 1001
    assert client.post("/webhooks/kodomo", content=big, headers=v2_headers(big)).status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(50):
            yield b"x" * 100

    assert client.post("/webhooks/kodomo", content=chunks(), headers=v2_headers(b"")).status_code == 413
    assert refusals == ["too large", "too large"] and published == []


def test_router_rate_limits_unauthenticated_failures_only() -> None:
    """After `burst` bad signatures a client gets 429; the failures are counted, not dead-lettered."""
    import time

    refusals: list[str] = []
    limiter = TokenBucket(rate_per_s=0.001, burst=3)
    client, published = router_client(refusals, limiter=limiter)
    body = body_of()
    bad = {**v2_headers(body, stamp=time.time()), "X-Signature": "sha256=" + "0" * 64}
    codes = [client.post("/webhooks/kodomo", content=body, headers=bad).status_code for _ in range(5)]
    assert codes == [401, 401, 401, 429, 429]
    assert refusals == ["bad signature"] * 3 + ["rate limited"] * 2
    assert published == []
    other = TokenBucket(rate_per_s=0.001, burst=3)
    good_client, good_published = router_client([], limiter=other)
    for i in range(5):  # good deliveries never spend the budget
        b = body_of(kiroku_id=f"K2026-01{i:02d}")
        assert good_client.post("/webhooks/kodomo", content=b,
                                headers=v2_headers(b, f"d-ok-{i}", time.time())).status_code == 202
    assert len(good_published) == 5
