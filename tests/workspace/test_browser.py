"""The workspace in a real browser (Playwright driving Debian's chromium) over the seeded sample run.

A coordinator logs in, sees an alert, acknowledges it, opens the household, puts the 支援会議
candidate on an agenda, records the meeting's decision and then sees the household's shared
timeline; an ops user logs in and is refused at the household page. Screenshots of the key
screens go to ``$TSUNAGU_SCREENSHOT_DIR`` when set (docs/screenshots/ is made that way), else to
the test's temporary folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import chromium, serving
from workspace.support import PASSWORD, Workspace


@pytest.fixture
def server(seeded_workspace: Workspace) -> Iterator[str]:
    """The workspace app on a real HTTP port (uvicorn in a thread) over a copy of the seeded database."""
    with serving(seeded_workspace.app, "workspace-uvicorn") as base:
        yield base


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("TSUNAGU_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _login(page: Any, base: str, username: str, shot: Path | None = None) -> None:
    page.goto(f"{base}/login", wait_until="load")
    page.get_by_label("ユーザー名").fill(username)
    page.get_by_label("パスワード").fill(PASSWORD)
    if shot is not None:
        page.screenshot(path=str(shot), full_page=True)
    page.get_by_role("button", name="ログイン").click()
    page.wait_for_load_state("load")


def test_coordinator_takes_a_support_meeting_candidate_through(server: str, shots: Path) -> None:
    """Login → inbox → acknowledge → household → 支援会議 agenda → decision → shared timeline, in chromium."""
    from playwright.sync_api import expect

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="ja-JP")
        _login(page, server, "coordinator", shots / "login.png")
        assert page.url.endswith("/alerts")
        expect(page.locator("h1")).to_have_text("アラート")
        page.screenshot(path=str(shots / "inbox.png"), full_page=False)

        # a 支援会議 candidate that nobody has looked at yet
        row = page.locator("tr[id^='alert-']").filter(has=page.locator(".badge", has_text="支援会議候補")).filter(
            has=page.get_by_role("button", name="確認する")).first
        alert_row_id = row.get_attribute("id")
        assert alert_row_id
        household_href = row.get_by_role("link", name="世帯の画面を開く").get_attribute("href")
        assert household_href and household_href.startswith("/households/")
        assert "確認済み" not in row.locator("td").nth(2).inner_text()
        row.get_by_role("button", name="確認する").click()
        page.wait_for_load_state("load")
        row = page.locator(f"#{alert_row_id}")
        expect(row.locator("td").nth(2)).to_contain_text("確認済み")

        # the household as the rules allow before any meeting: no names of the unconsented
        row.get_by_role("link", name="世帯の画面を開く").click()
        page.wait_for_load_state("load")
        assert page.url.endswith(household_href)
        expect(page.locator("h1")).to_contain_text("世帯")
        before = page.content()
        assert "表示の根拠" in before and "支援会議による最小限の情報" not in before

        # put it on a 支援会議 agenda from the inbox and record the meeting's decision
        page.goto(f"{server}/alerts", wait_until="load")
        page.locator(f"#{alert_row_id}").get_by_role("button", name="支援会議の議題にする").click()
        page.wait_for_load_state("load")
        assert re.search(r"/meetings/[^/]+$", page.url), page.url
        expect(page.locator("h1")).to_contain_text("支援会議")
        boxes = page.locator("input[name='members_present']")
        assert boxes.count() == 4
        for i in range(boxes.count()):
            boxes.nth(i).check()
        page.get_by_label("決定").select_option("designate")
        page.screenshot(path=str(shots / "meeting.png"), full_page=True)
        page.get_by_role("button", name="記録する").click()
        page.wait_for_load_state("load")
        expect(page.locator("main")).to_contain_text("開催済み")
        page.goto(f"{server}/meetings", wait_until="load")
        expect(page.locator("h1")).to_contain_text("会議")
        page.screenshot(path=str(shots / "meetings.png"), full_page=True)

        # the household's shared timeline under the 支援会議 route
        page.goto(f"{server}{household_href}", wait_until="load")
        expect(page.locator("main")).to_contain_text("支援会議による最小限の情報")
        expect(page.get_by_role("heading", name="経過（新しい順）")).to_be_visible()
        page.screenshot(path=str(shots / "household.png"), full_page=True)
        assert "支援会議（社会福祉法第106条の6）" in page.content() or "支援会議" in page.locator(
            "p[role='note']").inner_text()


def test_ops_is_refused_at_a_household_page(server: str, seeded_workspace: Workspace) -> None:
    """An ops user lands on /ops after login and gets 権限がありません (403) at a household's page."""
    from hub.pipeline.tables import AlertState

    with seeded_workspace.sessions() as s:
        household = s.query(AlertState.household_id).first()
    assert household is not None
    with chromium() as browser:
        page = browser.new_page(locale="ja-JP")
        _login(page, server, "ops")
        assert page.url.endswith("/ops")
        response = page.goto(f"{server}/households/{household[0]}", wait_until="load")
        assert response is not None and response.status == 403
        assert "権限がありません" in page.locator("h1").inner_text()
        assert household[0] not in page.content()
