"""Replies are values: text, an optional preformatted block, and buttons.

Each interface renders them its own way (Telegram HTML, Slack Block Kit, the web
console). A button is a command: pressing it runs that command as the presser.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

Style = Literal["primary", "danger"] | None


@dataclass(frozen=True, slots=True)
class Button:
    label: str
    command: str  # e.g. "/approve 7"
    style: Style = None


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    pre: str | None = None  # terminal output and the like, shown monospaced
    buttons: tuple[tuple[Button, ...], ...] = field(default=())  # rows of buttons
    ok: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "text": self.text,
            "pre": self.pre,
            "buttons": [
                [{"label": b.label, "command": b.command, "style": b.style} for b in row]
                for row in self.buttons
            ],
        }

    @property
    def plain(self) -> str:
        """Text and preformatted block as one plain string (CLI, logs)."""
        return f"{self.text}\n{self.pre}" if self.pre else self.text


def utc_time(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 90:
        return f"{seconds}s"
    if seconds < 90 * 60:
        return f"{seconds // 60}m"
    if seconds < 36 * 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d"
