"""A readable summary of a run, in Japanese and English (counts only: no personal data)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

FEED_NAMES = {
    "registry": "住民記録 (resident registry)",
    "houkatsu": "地域包括支援センター (elderly)",
    "shogai": "障害者相談支援 (disability)",
    "kodomo": "こども家庭センター (child)",
    "jiritsu": "自立相談支援 (livelihood)",
    "consent": "同意書 (consent documents)",
    "hub": "ハブ (hub)",
}
ALERT_NAMES = {
    "multi_field": "複数分野 (multi-field)",
    "8050": "8050",
    "double_care": "ダブルケア (double care)",
    "young_carer": "ヤングケアラー (young carer)",
}


def render_summary(summary: dict[str, Any], export: Path) -> str:
    lines = ["", "tsunagu デモ結果 / demo result", "=" * 40]
    lines.append(f"住民・人物 persons: {summary['persons']}  (記録 records: {summary['records']})")
    lines.append("フィード別 per feed:  読込 read / 送信 published / 処理 processed / 保留 dead letters")
    for feed, c in summary["feeds"].items():
        name = FEED_NAMES.get(feed, feed)
        lines.append(f"  {name:<34} {c['read']:>5} / {c['published']:>5} / {c['processed']:>5} / "
                     f"{c['dead_lettered']:>3}")
    lines.append(f"チームへの共有 team events (同意あり with consent): {summary['team_events']}")
    lines.append(f"デッドレター dead letters (理由付き with reasons): {summary['dead_letters']}")
    alerts = summary.get("alerts") or {}
    total = sum(alerts.values())
    lines.append(f"分野横断アラート cross-field alerts: {total}")
    for kind, n in alerts.items():
        lines.append(f"  {ALERT_NAMES.get(kind, kind):<30} {n}")
    lines.append(f"監査記録 audit entries: {summary['audit_entries']}")
    lines.append(f"所要時間 wall time: {summary['wall_time_s']} s")
    lines.append(f"出力先 export folder: {export}")
    lines.append("  persons.jsonl team.jsonl alerts.jsonl deadletter.jsonl audit.jsonl summary.json")
    return "\n".join(lines)


def print_summary(summary: dict[str, Any], export: Path) -> None:
    typer.echo(render_summary(summary, export))
