"""An alert route: alerts of a severity (and projects) go to a channel of an interface.

Its own module because both ``[alerts]`` (``config.alerts``) and every chat platform's
section (whose ``alert_chats`` / ``alert_channels`` stand for routes) make them, and
``config.alerts`` also lists the chat platforms (``config.chats``).
"""

from __future__ import annotations

from dataclasses import dataclass

from farmbot.messages import Severity


@dataclass(frozen=True, slots=True)
class AlertRoute:
    """Alerts of at least ``min_severity`` (of ``projects``, if given) go to a channel."""

    interface: str
    channel: str
    min_severity: Severity = Severity.WARNING
    projects: tuple[str, ...] = ()  # empty: every project

    def matches(self, severity: Severity, project: str | None) -> bool:
        """Whether an alert of that severity and project takes this route."""
        if severity < self.min_severity:
            return False
        return not self.projects or project in self.projects
