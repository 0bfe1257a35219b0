"""The dead-letter store as operations use it (the table and its queries live in ``hub.pipeline.deadletters``,
where the hub's dead-letter consumer fills it), and the sealing of originals with the configured key."""

from __future__ import annotations

from collections.abc import Callable

from connectors.sealing import Sealer
from hub.pipeline.deadletters import OPEN as OPEN
from hub.pipeline.deadletters import REPLAYED as REPLAYED
from hub.pipeline.deadletters import DeadLetterAccess as DeadLetterAccess
from hub.pipeline.deadletters import DeadLetterRow as DeadLetterRow
from hub.pipeline.deadletters import audit_access as audit_access
from hub.pipeline.deadletters import counts as counts
from hub.pipeline.deadletters import listing as listing
from hub.pipeline.deadletters import mark_replayed as mark_replayed
from hub.pipeline.deadletters import parse_message as parse_message
from hub.pipeline.deadletters import public_view as public_view
from hub.pipeline.deadletters import record_messages as record_messages
from hub.settings import Settings


def sealer_of(settings: Settings) -> Callable[[bytes], str] | None:
    """The function that seals dead letters' originals with TSUNAGU_DEADLETTER_KEY (None: key not set)."""
    key = settings.deadletter_key.get_secret_value()
    return Sealer(key).seal if key else None
