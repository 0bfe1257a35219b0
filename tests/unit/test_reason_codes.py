"""Dead-letter reason phrases map to the fixed reason codes that /metrics and /ops count by."""

from __future__ import annotations

import pytest

from schemas.deadletter import REASON_CODES, DeadLetter, reason_code


@pytest.mark.parametrize(("phrase", "code"), [
    ("impossible date in 受付日", "date"),
    ("bad signature", "signature"),
    ("wrong column count (expected 17, got 6)", "parse"),
    ("empty name", "missing"),
    ("delivery id reused with different content", "duplicate"),
    ("event larger than the message limit (2000000 > 900000 bytes)", "size"),
    ("broker refused the record (MessageSizeTooLargeError)", "refused"),
    ("undecodable bytes", "encoding"),
    ("something nobody planned for", "other"),
])
def test_phrases_get_their_code(phrase: str, code: str) -> None:
    """Each known kind of phrase gets its code; an unknown one is 'other', never free text."""
    assert reason_code(phrase) == code
    assert code in REASON_CODES


def test_an_explicit_code_wins_and_an_unknown_one_is_ignored() -> None:
    """A stage that knows the code sets it; a code outside the fixed set falls back to the phrase."""
    assert DeadLetter(source="kodomo", where="delivery:d-1", reason="stale timestamp", code="signature").reason_code \
        == "signature"
    assert DeadLetter(source="houkatsu", where="f:1", reason="empty name", code="made-up").reason_code == "missing"
