"""The names of every topic tsunagu uses, under the prefix of one deployment."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    """Every topic tsunagu uses, with the prefix of one deployment."""

    prefix: str = "tsunagu"

    @property
    def intake(self) -> str:
        """Connectors → hub; keyed by the person's record key."""
        return f"{self.prefix}.intake.v1"

    @property
    def resolved(self) -> str:
        """Hub stage 1 → stage 2; keyed by hub household id, so one household's work stays in order."""
        return f"{self.prefix}.resolved.v1"

    @property
    def team(self) -> str:
        """Consented events for the multi-agency team (重層的支援会議)."""
        return f"{self.prefix}.team.v1"

    @property
    def support_meeting(self) -> str:
        """Minimal-form events for designated 支援会議 households (第106条の6)."""
        return f"{self.prefix}.support_meeting.v1"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}.alerts.v1"

    @property
    def deadletter(self) -> str:
        return f"{self.prefix}.deadletter.v1"

    def all(self) -> list[str]:
        return [self.intake, self.resolved, self.team, self.support_meeting, self.alerts, self.deadletter]
