"""Per-person rate limits: so many spawns, sends and other commands a minute (``[limits]``).

A sliding window per person and kind: a command is allowed while the person ran fewer than
the limit of its kind in the last 60 seconds, and is then counted. A refusal says in how
many seconds the oldest of those leaves the window (when the next one is allowed); the
router audits it with the outcome ``limited``. Exactly "N a minute": no burst on top.

The kind is the command's: ``/spawn`` is a spawn, ``/send`` a send, everything else a
command. A button press is the command it carries and counts the same. A person is their
``[users.<name>]`` across every platform; cron jobs count against the user they run as and
the local console (web, ``farmbot cmd``) against its user, unless ``[limits] exempt``
names "cron" or "console". Pure bookkeeping on an injected clock; no I/O.
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from collections.abc import Callable

from farmbot.bot.authz import LOCAL_PLATFORMS
from farmbot.config.limits import LimitsConfig
from farmbot.errors import RateLimited

__all__ = ["WINDOW", "RateLimiter", "kind_of", "origin_of"]

WINDOW = 60.0  # seconds
_PLURAL = {"spawn": "spawns", "send": "sends", "command": "commands"}


def kind_of(command_name: str) -> str:
    """The kind a command counts as: "spawn", "send" or "command"."""
    return command_name if command_name in ("spawn", "send") else "command"


def origin_of(platform: str) -> str:
    """Where a command came from, as ``[limits] exempt`` names it: cron, console or chat."""
    if platform == "scheduler":
        return "cron"
    return "console" if platform in LOCAL_PLATFORMS else "chat"


class RateLimiter:
    """The windows of every person and kind; ``check`` counts or refuses one command."""

    def __init__(self, config: LimitsConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._clock = clock
        self._windows: dict[tuple[str, str], deque[float]] = {}
        self.refused: Counter[str] = Counter()  # by kind

    def __repr__(self) -> str:
        return f"<RateLimiter people={len({p for p, _ in self._windows})} refused={self.total}>"

    @property
    def total(self) -> int:
        return sum(self.refused.values())

    def statistics(self) -> dict[str, int | float | str]:
        return {"limited": self.total, "windows": len(self._windows)}

    def reconfigure(self, config: LimitsConfig) -> None:
        """New limits, from the next command on; what was counted stays counted."""
        self._config = config

    def check(self, person: str, command_name: str, platform: str) -> None:
        """Count one command of ``person``; raise ``RateLimited`` when over the limit."""
        if origin_of(platform) in self._config.exempt:
            return
        kind = kind_of(command_name)
        limit = self._config.per_minute(kind)
        if limit <= 0:
            return
        now = self._clock()
        window = self._windows.setdefault((person, kind), deque())
        while window and window[0] <= now - WINDOW:
            window.popleft()
        if len(window) >= limit:
            self.refused[kind] += 1
            wait = max(1, math.ceil(window[len(window) - limit] + WINDOW - now))
            raise RateLimited(
                f"{person}: that is more than {limit} {_PLURAL[kind]} a minute; "
                f"try again in {wait} s",
                retry_after=wait,
            )
        window.append(now)
        self._forget_idle(now)

    def _forget_idle(self, now: float) -> None:
        # Keeps memory to the people active in the last minute (checked now and then).
        if len(self._windows) < 64:
            return
        for key in [k for k, w in self._windows.items() if not w or w[-1] <= now - WINDOW]:
            del self._windows[key]
