"""Replies are values: text, an optional preformatted block, and buttons.

Each interface renders them its own way (Telegram HTML, Slack Block Kit, the web
console). A button is a command: pressing it runs that command as the presser.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from farmbot.errors import UsageError

if TYPE_CHECKING:  # models imports this module for Button
    from farmbot.models import Severity

Style = Literal["primary", "danger"] | None
ELLIPSIS = "…"
_MARKS = {"critical": "🔴", "warning": "⚠️", "info": "ℹ️"}  # keyed by str(Severity)


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


def clip(text: str, n: int) -> str:
    """``text`` if it has at most ``n`` characters, else its start and "…" (``n`` in all)."""
    return text if len(text) <= n else text[: n - 1] + ELLIPSIS


def severity_mark(severity: Severity) -> str:
    """The emoji an alert's title starts with, the same on every platform."""
    return _MARKS[str(severity)]


def decision(command: str) -> bool | None:
    """True for an approval, False for a rejection, None for any other command."""
    from farmbot.bot import commands as c  # late: commands -> models -> this module

    try:
        parsed = c.parse(command)
    except UsageError:
        return None
    if isinstance(parsed, c.Approve | c.Reject):
        return isinstance(parsed, c.Approve)
    return None


def decided_line(approved: bool, text: str) -> str:
    """The line a decided Approve/Reject message gets: "✅ <reply>" or "❌ <reply>"."""
    return f"{'✅' if approved else '❌'} {text}"
