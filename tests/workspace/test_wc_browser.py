"""Referrals, plans and yearly figures in a real browser (Playwright driving Debian's chromium) over the seeded run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from browser_support import chromium, serving
from sqlalchemy import select
from workspace.support import PASSWORD, Workspace

from hub.pipeline.tables import CaseEvent
from hub.workspace.models import Meeting, Referral
from hub.workspace.referrals import sync_referrals


@pytest.fixture
def served(seeded_workspace: Workspace) -> Iterator[tuple[str, Workspace]]:
    """The seeded workspace (referrals synced, one household taken into 多機関協働) on a real HTTP port."""
    ws = seeded_workspace
    now = datetime.now(UTC)
    with ws.sessions.begin() as s:
        sync_referrals(s, now=now, prefix="wstest")
        row = s.scalars(select(CaseEvent).where(CaseEvent.type == "jp.tsunagu.referral.requested.v1",
                                                CaseEvent.team_published.is_(True))).first()
        assert row is not None and row.household_id
        s.add(Meeting(id="m-wc", household_id=row.household_id, kind="team_meeting", state="held", alert_id=None,
                      planned_on=None, held_on=date.today(), members_present=["elderly", "livelihood"],
                      decision="take_into_team", note_code=None, designation_id=None, created_by="coordinator",
                      created_at=now, updated_at=now))
    with serving(ws.app, "wc-uvicorn") as base:
        yield base, ws


def test_coordinator_answers_a_referral_makes_a_plan_and_downloads_the_figures(
        served: tuple[str, Workspace], tmp_path: Path) -> None:
    """Login → /referrals (overdue) → accept one → make a plan routed to 参加支援 → /reports → CSV download."""
    base, ws = served
    shots = Path(os.environ.get("TSUNAGU_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    with ws.sessions() as s:
        household = s.scalars(select(Meeting.household_id).where(Meeting.id == "m-wc")).one()
    with chromium() as browser:
        page: Any = browser.new_page(locale="ja-JP", viewport={"width": 1280, "height": 900}, accept_downloads=True)
        page.goto(f"{base}/login", wait_until="load")
        page.get_by_label("ユーザー名").fill("coordinator")
        page.get_by_label("パスワード").fill(PASSWORD)
        page.get_by_role("button", name="ログイン").click()
        page.wait_for_load_state("load")

        page.goto(f"{base}/referrals", wait_until="load")
        assert page.get_by_role("heading", name="つなぎ（紹介）").is_visible()
        assert "期限超過" in page.content()
        page.screenshot(path=str(shots / "wc-referrals.png"), full_page=True)
        page.get_by_role("link", name="詳細・履歴").first.click()
        page.wait_for_load_state("load")
        page.get_by_label("新しい状態").select_option("accepted")
        page.get_by_role("button", name="変更する").click()
        page.wait_for_load_state("load")
        assert "保存しました" in page.content() and "受理" in page.content()

        page.goto(f"{base}/plans/new?household={household}", wait_until="load")
        page.get_by_label("主担当機関", exact=True).select_option("livelihood")
        page.get_by_label("自立相談の役割").fill("家計改善と就労準備の支援")
        page.get_by_label("地域包括の役割").fill("介護サービスの調整")
        page.get_by_label("支援目標（1行に1つ）").fill("世帯の家計を安定させる\n長男の就労準備")
        page.get_by_label("参加支援事業").check()
        page.get_by_label("次回モニタリング日").fill("2027-01-15")
        page.get_by_role("button", name="プランを作成する").click()
        page.wait_for_load_state("load")
        assert "家計改善と就労準備の支援" in page.content() and "2027年1月15日" in page.content()
        page.screenshot(path=str(shots / "wc-plan.png"), full_page=True)

        page.goto(f"{base}/reports", wait_until="load")
        assert page.get_by_role("heading", name="相談受付件数（分野別）").is_visible()
        page.screenshot(path=str(shots / "wc-reports.png"), full_page=True)
        with page.expect_download() as info:
            page.get_by_role("link", name="CSVをダウンロードする", exact=False).click()
        path = info.value.path()
        text = Path(path).read_bytes().decode("utf-8-sig")
        assert text.splitlines()[0] == "年度,区分,項目,件数"
    with ws.sessions() as s:
        assert s.scalars(select(Referral).where(Referral.target == "participation")).first() is not None
