"""A readable summary of a run, in Japanese and English (counts, codes and reasons only: no personal data)."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import Any

import typer

FEED_NAMES = {
    "registry": "住民記録 resident registry",
    "consent": "同意書 consent documents",
    "houkatsu": "地域包括 elderly",
    "shogai": "障害相談 disability",
    "kodomo": "こども家庭センター child",
    "jiritsu": "自立相談 livelihood",
    "hub": "ハブ hub",
}
ALERT_NAMES = {
    "multi_field": "複数分野 multi-field",
    "8050": "8050",
    "double_care": "ダブルケア double care",
    "young_carer": "ヤングケアラー young carer",
}
FIELD_NAMES = {"elderly": "高齢", "disability": "障害", "child": "子ども", "livelihood": "生活困窮"}


def width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def pad(text: str, to: int) -> str:
    return text + " " * max(0, to - width(text))


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def render_summary(summary: dict[str, Any], export: Path) -> str:
    out = ["", "tsunagu デモ結果 / demo result", "=" * 60]
    out.append(f"人物 persons: {summary['persons']}   記録 records: {summary['records']}")
    out.append("")
    out.append(pad("フィード feed", 30) + "読込 read  送信 published  処理 processed  不備 dead letters")
    order = [f for f in FEED_NAMES if f in summary["feeds"]] + [f for f in summary["feeds"] if f not in FEED_NAMES]
    for feed in order:
        c = summary["feeds"][feed]
        out.append(pad(FEED_NAMES.get(feed) or feed, 30) + f"{c['read']:>9}  {c['published']:>14}  {c['processed']:>15}"
                   f"  {c['dead_lettered']:>17}")
    out.append("")
    out.append(f"チームへ共有 team events (本人同意あり with consent): {summary['team_events']}")
    out.append(f"監査記録 audit entries (許可・不許可 permit and deny): {summary['audit_entries']}")
    out.append("")
    alerts = summary.get("alerts") or {}
    out.append(f"分野横断アラート cross-field alerts: {sum(alerts.values())}")
    for kind, n in alerts.items():
        out.append("  " + pad(ALERT_NAMES.get(kind, kind), 30) + f"{n:>4}")
    raised = [a for a in _lines(export / "alerts.jsonl") if a["type"].endswith("raised.v1")]
    shareable = sum(1 for a in raised if a["data"].get("shareable"))
    out.append(f"  うち同意のある世帯 shareable with the team: {shareable}; "
               f"支援会議の候補 support-meeting candidates: {len(raised) - shareable}")
    out.append("")
    out.append(f"不備レコード dead letters: {summary['dead_letters']}  (理由 reasons, no personal data)")
    for d in _lines(export / "deadletter.jsonl"):
        out.append(f"  {d['source']:<9} {d['where']:<32} {d['reason']}")
    out.append("")
    out.append(f"所要時間 wall time: {summary['wall_time_s']} s")
    out.append(f"出力先 export folder: {export}")
    out.append("  persons.jsonl team.jsonl alerts.jsonl deadletter.jsonl audit.jsonl summary.json")
    return "\n".join(out)


def print_summary(summary: dict[str, Any], export: Path) -> None:
    typer.echo(render_summary(summary, export))
