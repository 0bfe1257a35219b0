"""The seeded database fixture holds the pipeline's alerts, households and consents (the other tests rely on it)."""

from __future__ import annotations

from sqlalchemy import func, select
from workspace.support import Workspace

from hub.pipeline.tables import AlertState


def test_seeded_state_has_alerts_and_households(seeded_workspace: Workspace) -> None:
    """A real run over hub/samples leaves alerts in the hub database, so the workspace has something to show."""
    with seeded_workspace.sessions() as s:
        alerts = s.scalar(select(func.count()).select_from(AlertState)) or 0
    assert alerts > 0
