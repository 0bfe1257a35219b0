"""The notification message: says only that something needs attention, how much of each kind, and a link.

Built from :class:`~hub.workspace.attention.Attention` kinds alone — never from a key, so no
name, record key, field, household or case text can reach a webhook or a mailbox.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from hub.workspace.attention import KINDS, Attention, AttentionKind

LABELS: dict[AttentionKind, str] = {
    "alert": "新しいアラート・状況が変わったアラート",
    "referral_overdue": "受入れの確認がないまま期限を過ぎたつなぎ",
    "monitoring_due": "モニタリング期日を過ぎたプラン",
}
SUBJECT = "[つなぐ] 確認が必要な項目があります"


@dataclass(frozen=True)
class Message:
    subject: str
    text: str
    link: str
    counts: dict[str, int]

    def as_json(self) -> dict[str, object]:
        """The webhook body (``text`` is what chat tools such as Teams or Slack incoming webhooks show)."""
        return {"text": self.text, "subject": self.subject, "link": self.link, "counts": dict(self.counts)}


def inbox_link(base_url: str) -> str:
    """The workspace inbox under ``base_url`` (http or https, no query or fragment of ours)."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("workspace_base_url must be an http(s) URL")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}/alerts"


def build_message(items: Sequence[Attention], base_url: str) -> Message:
    """One message for everything in ``items``: counts per kind and the inbox link, nothing else."""
    counts = Counter(a.kind for a in items)
    link = inbox_link(base_url)
    lines = ["つなぐ（重層的支援体制整備事業 ワークスペース）で確認が必要な項目があります。", ""]
    lines += [f"・{LABELS[k]}: {counts[k]}件" for k in KINDS if counts[k]]
    lines += ["", f"ログインして確認してください: {link}",
              "（このお知らせには個人を特定する情報を含めていません）"]
    return Message(subject=SUBJECT, text="\n".join(lines), link=link, counts={k: counts[k] for k in KINDS if counts[k]})
