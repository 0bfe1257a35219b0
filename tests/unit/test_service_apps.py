"""The service's two HTTP apps: the public webhook listener counts and rate-limits strangers, /metrics takes a token."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient

from connectors.contract import Item
from connectors.kodomo import KodomoWebhook, sign_delivery
from connectors.ratelimit import TokenBucket
from hub.http.app import make_staff_app, make_webhook_app
from hub.serve.metrics import Metrics

SECRET = b"unit-secret"


class Recorder:
    """A publisher that keeps what it was given."""

    def __init__(self) -> None:
        self.items: list[Item] = []

    async def __call__(self, items: list[Item]) -> None:
        self.items.extend(items)


def _webhook_app(metrics: Metrics, publisher: Recorder, **webhook: Any) -> TestClient:
    hook = KodomoWebhook(SECRET, dead_letter_unauthenticated=False, **webhook)
    app = make_webhook_app(hook, publisher, metrics, lambda: ({"status": "running"}, True),  # type: ignore[arg-type]
                           limiter=TokenBucket(rate_per_s=0.001, burst=5))
    return TestClient(app)


def _value(metrics: Metrics, reason: str) -> float:
    return metrics.webhook_refused.labels(reason=reason)._value.get()  # type: ignore[no-any-return]


def test_unauthenticated_flood_is_counted_and_rate_limited_not_dead_lettered() -> None:
    """300 forged posts from one address: 5 are judged (401), the rest get 429; every one is counted by
    reason in tsunagu_webhook_refused_total and none is handed to the publisher as a dead letter."""
    metrics, publisher = Metrics(), Recorder()
    client = _webhook_app(metrics, publisher)
    body = b'{"x": 1}'
    codes = []
    for i in range(300):
        stamp = str(int(time.time()))
        r = client.post("/webhooks/kodomo", content=body, headers={
            "X-Delivery-Id": f"d{i}", "X-Timestamp": stamp,
            "X-Signature": sign_delivery(b"wrong", f"d{i}", stamp, body)})
        codes.append(r.status_code)
    assert codes.count(401) == 5 and codes.count(429) == 295
    assert _value(metrics, "bad signature") == 5 and _value(metrics, "rate limited") == 295
    assert publisher.items == []


def test_body_limit_and_replay_window_come_from_the_settings() -> None:
    """A body over max_body_bytes is 413 and a stale timestamp is refused, both counted by reason."""
    metrics, publisher = Metrics(), Recorder()
    client = _webhook_app(metrics, publisher, max_body_bytes=2048, replay_window_s=60)
    big = b"x" * 4096
    assert client.post("/webhooks/kodomo", content=big).status_code == 413
    body = b"{}"
    old = str(int(time.time()) - 3600)
    r = client.post("/webhooks/kodomo", content=body, headers={
        "X-Delivery-Id": "d1", "X-Timestamp": old, "X-Signature": sign_delivery(SECRET, "d1", old, body)})
    assert r.status_code == 401
    assert _value(metrics, "too large") == 1 and _value(metrics, "stale timestamp") == 1
    assert publisher.items == []


def test_metrics_needs_the_bearer_token_when_one_is_set() -> None:
    """With metrics_token set, /metrics is 401 without or with a wrong token and 200 with it; /healthz stays open."""
    metrics = Metrics()
    app = make_staff_app(metrics, lambda: ({"status": "running"}, True), metrics_token="tok")
    client = TestClient(app)
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    ok = client.get("/metrics", headers={"Authorization": "Bearer tok"})
    assert ok.status_code == 200 and "tsunagu_webhook_refused" in ok.text
    assert client.get("/healthz").status_code == 200
    open_app = make_staff_app(metrics, lambda: ({}, True))
    assert TestClient(open_app).get("/metrics").status_code == 200


def test_webhook_listener_has_no_staff_pages() -> None:
    """The public listener answers 404 for /ops, /ops.json and /metrics."""
    client = _webhook_app(Metrics(), Recorder())
    for path in ("/ops", "/ops.json", "/metrics"):
        assert client.get(path).status_code == 404
