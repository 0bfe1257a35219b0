"""Every route of the workspace × every role × anonymous: who gets in, who gets 403, who is sent to /login.

The routes are read from the app itself, so a route added later is covered without editing this
file; a path that matches no rule below fails the test (every screen needs a decision).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.routing import APIRoute
from sqlalchemy import select
from workspace.support import BUNDLED_SAMPLES, ROLES, Workspace, csrf_in

from hub.pipeline.tables import AlertState

TEAM = frozenset({"coordinator", "admin"})
CONSENT_READERS = frozenset({"consent_officer", "coordinator", "admin"})
CONSENT_WRITERS = frozenset({"consent_officer", "admin"})
OPS = frozenset({"ops", "admin"})
ADMIN = frozenset({"admin"})
EVERYONE = frozenset(ROLES)

#: (path regex, method or None for any, roles allowed; None = public) — first match wins
RULES: list[tuple[str, str | None, frozenset[str] | None]] = [
    (r"^/login$", None, None),
    (r"^/logout$", None, EVERYONE),
    (r"^/$", None, EVERYONE),
    (r"^/consents(/.*)?$", "GET", CONSENT_READERS),
    (r"^/consents(/.*)?$", "POST", CONSENT_WRITERS),
    (r"^/ops(\.json|/checkpoints\.json)?$", None, OPS),
    (r"^/admin/users(/.*)?$", None, ADMIN),
    (r"^/(alerts|households|meetings|referrals|plans|reports)(/.*|\.csv)?$", None, TEAM),
]


def rule_for(path: str, method: str) -> frozenset[str] | None:
    for pattern, m, roles in RULES:
        if re.match(pattern, path) and (m is None or m == method):
            return roles
    raise AssertionError(f"no access rule for {method} {path}: decide who may use it (tests/workspace/test_ws_access)")


@dataclass(frozen=True)
class Endpoint:
    method: str
    template: str
    path: str


def all_routes(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, set[str]]]:
    """(path, methods) of every API route, through included routers (FastAPI keeps them nested)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, set(route.methods or ())
        elif hasattr(route, "original_router"):  # fastapi.routing._IncludedRouter
            yield from all_routes(route.original_router.routes, prefix + route.include_context.prefix)


def endpoints(ws: Workspace, ids: dict[str, str]) -> Iterator[Endpoint]:
    seen: set[tuple[str, str]] = set()
    for template, methods in all_routes(ws.app.routes):
        if template.startswith("/api/"):
            continue
        path = re.sub(r"\{(\w+)(:\w+)?\}", lambda m: ids.get(m.group(1), "unknown-id"), template)
        for method in sorted(methods):
            if method in ("GET", "POST") and (method, template) not in seen:
                seen.add((method, template))
                yield Endpoint(method, template, path)


@pytest.fixture(scope="module")
def names() -> list[str]:
    """Every resident's name and kana in the bundled registry (what ops must never see)."""
    with (BUNDLED_SAMPLES / "registry" / "jumin.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    out = []
    for row in rows:
        for key in ("氏名", "氏名カナ"):
            out += [row[key], row[key].replace("\u3000", "")]
        out += [part for part in row["氏名"].split("\u3000") if len(part) >= 2]  # kanji family / given names
    return sorted(set(out))


def _ids(ws: Workspace) -> dict[str, str]:
    with ws.sessions() as s:
        alert = s.scalars(select(AlertState).order_by(AlertState.alert_id)).first()
    assert alert is not None, "the seeded database has alerts"
    return {"household": alert.household_id, "household_id": alert.household_id, "alert_id": alert.alert_id}


def _call(client, ep: Endpoint, csrf: str | None):  # type: ignore[no-untyped-def]
    if ep.method == "GET":
        return client.get(ep.path, follow_redirects=False)
    return client.post(ep.path, data={"csrf_token": csrf or ""}, follow_redirects=False)


def test_every_route_for_every_role_and_anonymous(seeded_workspace: Workspace, names: list[str]) -> None:
    """Anonymous → /login (pages) or 401 (JSON); a role outside a route's rule → 403; inside → not refused."""
    ws = seeded_workspace
    ids = _ids(ws)
    eps = list(endpoints(ws, ids))
    templates = {e.template for e in eps}
    assert {"/login", "/logout", "/", "/consents", "/ops", "/ops.json"} <= templates  # WA's own, at least
    anonymous = ws.client()
    clients = {role: ws.client(role) for role in ROLES}
    tokens: dict[str, str | None] = {role: _token_for(c) for role, c in clients.items()}
    failures: list[str] = []
    for ep in eps:
        allowed = rule_for(ep.template, ep.method)
        r = _call(anonymous, ep, None)
        if allowed is not None:
            if ep.template.endswith(".json"):
                ok = r.status_code == 401
            else:
                ok = r.status_code == 303 and r.headers["location"].startswith("/login")
            if not ok:
                failures.append(f"anonymous {ep.method} {ep.template} → {r.status_code}")
        for role, c in clients.items():
            token = tokens[role] or _token_for(c)
            r = _call(c, ep, token)
            if allowed is None:  # /login: a logged-in user's POST carries no login-form token → refused
                if r.status_code >= 500:
                    failures.append(f"{role} {ep.method} {ep.template} → {r.status_code}")
            elif role in allowed:
                if r.status_code in (401, 403) or (r.status_code == 303 and
                                                    r.headers["location"].startswith("/login?next")):
                    failures.append(f"{role} {ep.method} {ep.template} refused ({r.status_code})")
                if r.status_code >= 500:
                    failures.append(f"{role} {ep.method} {ep.template} → {r.status_code}")
            elif r.status_code != 403:
                failures.append(f"{role} {ep.method} {ep.template} → {r.status_code}, expected 403")
            if role == "ops" and ep.method == "GET":
                body = r.text
                leaked = [n for n in names if n in body]
                if ids["household"] in body or leaked:
                    failures.append(f"ops saw household data at {ep.template}: {leaked[:3]}")
        # logout ends the session: log the clients in again for the routes that follow
        if ep.template == "/logout":
            clients = {role: ws.client(role) for role in ROLES}
            tokens = {role: None for role in ROLES}
    assert not failures, "\n".join(failures)


def _token_for(client) -> str:  # type: ignore[no-untyped-def]
    """The session's CSRF token, read from a page the client may open (the logout form is on every page)."""
    for path in ("/consents", "/alerts", "/ops"):
        r = client.get(path, follow_redirects=False)
        if r.status_code == 200 and 'name="csrf_token"' in r.text:
            return csrf_in(r.text)
    raise AssertionError("no page with a csrf token for this user")


def test_ops_is_refused_every_household_page(seeded_workspace: Workspace) -> None:
    """The ops role gets 403 on every household's page and export, and its menu offers only /ops."""
    ws = seeded_workspace
    with ws.sessions() as s:
        households = sorted(set(s.scalars(select(AlertState.household_id))))
    c = ws.client("ops")
    for hh in households:
        for path in (f"/households/{hh}", f"/households/{hh}/fhir"):
            assert c.get(path, follow_redirects=False).status_code == 403
    page = c.get("/ops")
    assert page.status_code == 200 and 'id="feeds"' in page.text and "運用状況" in page.text
    assert c.get("/ops.json").json()["topics"]["intake"] == "wstest.intake.v1"
    nav = re.search(r'<nav class="main".*?</nav>', page.text, re.S)
    menu = re.findall(r'href="([^"]+)"', nav.group(0)) if nav else []
    assert menu in ([], ["/ops"])
    home = c.get("/", follow_redirects=False)
    assert home.headers["location"] == "/ops"


def test_posts_without_csrf_are_refused_for_every_role(seeded_workspace: Workspace) -> None:
    """Every POST route refuses a logged-in user's request without the csrf_token field (403), whatever the role."""
    ws = seeded_workspace
    ids = _ids(ws)
    posts = [e for e in endpoints(ws, ids) if e.method == "POST" and e.template != "/login"]
    assert posts
    for role in ROLES:
        c = ws.client(role)
        for ep in posts:
            r = c.post(ep.path, data={}, follow_redirects=False)
            assert r.status_code == 403, f"{role} POST {ep.template} without csrf → {r.status_code}"
            r = c.post(ep.path, data={"csrf_token": "forged"}, follow_redirects=False)
            assert r.status_code == 403, f"{role} POST {ep.template} with a forged csrf → {r.status_code}"


def test_malformed_form_input_is_a_readable_page_not_json(workspace: Workspace) -> None:
    """A form field of the wrong type gets the Japanese error page (400) naming the field; /api keeps JSON 422."""
    c = workspace.client("consent_officer")
    page = c.get("/consents")
    r = c.post("/admin/users", data={"csrf_token": csrf_in(page.text)})  # admin-only: 403 before any parsing
    assert r.status_code == 403
    team = workspace.client("coordinator")
    r = team.get("/alerts?page=abc")
    assert r.status_code == 400 and "text/html" in r.headers["content-type"]
    assert "入力に誤りがあります（page）" in r.text and "ログアウト" in r.text
    r = team.get("/api/persons/123/consents", headers={"Authorization": "Bearer none"})
    assert r.status_code == 401 and r.headers["content-type"].startswith("application/json")
