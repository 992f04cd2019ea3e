"""Reloading the configuration in a running daemon (SIGHUP, ``farmbot reload``).

``Reloader.reload()`` reads the file again (``load``, the very loader the daemon started
with, command-line overrides included), compares it with the configuration in force and
then either applies it (``apply``: every component takes the new one, farmbot.build's
``Farm.reconfigure`` and the daemon's schedules) or refuses it. Either way it publishes a
typed event (``config.reloaded`` or ``config.refused``, which raise alerts), logs one line
and writes the outcome to ``state_dir/last-reload.json`` for ``farmbot reload`` to show.

Refused, and the old configuration stays in force, when the file does not validate (the
error names the key), or when a setting changed that only a restart applies:
``RESTART_ONLY``. Everything else applies live: users and roles, projects, agent
profiles, alert rules and routes, cron jobs, QA, supervisor limits, ``[limits]``,
retention and the metrics token.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from farmbot.bus import EventBus
from farmbot.config import chats
from farmbot.config.schema import Config
from farmbot.errors import ConfigError, StorageError
from farmbot.events import ConfigRefused, ConfigReloaded

__all__ = ["OUTCOME_FILE", "RESTART_ONLY", "Outcome", "Reloader", "changes", "restart_needed"]

log = logging.getLogger(__name__)

OUTCOME_FILE = "last-reload.json"  # lifecycle.RELOAD_FILE (a test keeps them equal)
# Settings read once, at start: what listens, where state is, what connects to chats.
RESTART_ONLY = (
    "server.host",
    "server.port",
    "server.state_dir",
    "storage.url",
    "storage.password",
    "storage.pool_min",
    "storage.pool_max",
    "tmux.socket",
    "supervisor.tick_seconds",
    *chats.RESTART,  # [telegram], [slack], ...: what connects to chats
    "webhooks",
)


def changes(old: object, new: object, prefix: str = "") -> list[str]:
    """The dotted settings that differ between two configs (or parts of one).

    A section (dataclass) is compared field by field, a table of named entries (agent
    profiles) entry by entry; anything else, lists included, as one value. The chat
    platforms' sections are named as they are written: ``telegram.token``.
    """
    if old == new:
        return []
    found: list[str] = []
    if isinstance(old, Mapping) and isinstance(new, Mapping) and prefix == "chats":
        for name in dict.fromkeys([*old, *new]):
            found += changes(old.get(name), new.get(name), name)
        return found
    if dataclasses.is_dataclass(old) and type(old) is type(new):
        for f in dataclasses.fields(old):
            if f.name == "source":
                continue
            key = f"{prefix}.{f.name}" if prefix else f.name
            found += changes(getattr(old, f.name), getattr(new, f.name), key)
        return found
    if isinstance(old, Mapping) and isinstance(new, Mapping) and prefix == "agents":
        names = sorted({*old, *new})
        return [f"{prefix}.{n}" for n in names if old.get(n) != new.get(n)]
    return [prefix]


def restart_needed(changed: list[str]) -> list[str]:
    """The changed settings that only a restart applies."""
    return [
        key for key in changed if any(key == r or key.startswith(r + ".") for r in RESTART_ONLY)
    ]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one reload did."""

    applied: bool
    message: str  # one line for people: what changed, or why it was refused
    changed: tuple[str, ...] = ()
    restart: tuple[str, ...] = ()
    at: float = 0.0
    number: int = 0  # the how-many-th reload since start

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"pid": os.getpid()}


class Reloader:
    """Reads, checks and applies a new configuration; see the module docstring."""

    def __init__(
        self,
        *,
        load: Callable[[], Awaitable[Config]],
        current: Callable[[], Config],
        apply: Callable[[Config], Awaitable[None]],
        bus: EventBus,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._load = load
        self._current = current
        self._apply = apply
        self._bus = bus
        self._clock = clock
        self.applied = 0
        self.refused = 0
        self.last: Outcome | None = None

    def __repr__(self) -> str:
        return f"<Reloader applied={self.applied} refused={self.refused}>"

    def statistics(self) -> dict[str, int | float | str]:
        return {"applied": self.applied, "refused": self.refused}

    async def reload(self) -> Outcome:
        """Read the file again; apply it, or refuse it and keep the one in force."""
        old = self._current()
        source = str(old.source) if old.source else "the embedded defaults"
        try:
            new = await self._load()
        except ConfigError as exc:
            return await self._refuse(source, str(exc), ())
        changed = changes(old, new)
        restart = restart_needed(changed)
        if restart:
            reason = (
                f"{', '.join(restart)} changed, which only a restart applies "
                "(farmbot restart, or systemctl --user restart farmbot); nothing was changed"
            )
            return await self._refuse(source, reason, tuple(restart))
        await self._apply(new)
        self.applied += 1
        what = ", ".join(changed) or "nothing"
        outcome = self._outcome(True, f"reloaded {source}: changed {what}", changed=changed)
        log.info("config: %s", outcome.message)
        await self._publish(ConfigReloaded(source=source, changed=tuple(changed)))
        return self._record(new.server.state_dir, outcome)

    async def _refuse(self, source: str, reason: str, restart: tuple[str, ...]) -> Outcome:
        self.refused += 1
        outcome = self._outcome(False, f"refused {source}: {reason}", restart=restart)
        log.error("config: %s; the configuration in force stays", outcome.message)
        await self._publish(ConfigRefused(source=source, reason=reason, restart=restart))
        return self._record(self._current().server.state_dir, outcome)

    def _outcome(
        self,
        applied: bool,
        message: str,
        *,
        changed: Sequence[str] = (),
        restart: Sequence[str] = (),
    ) -> Outcome:
        return Outcome(
            applied,
            message,
            tuple(changed),
            tuple(restart),
            at=self._clock(),
            number=self.applied + self.refused,
        )

    async def _publish(self, event: ConfigReloaded | ConfigRefused) -> None:
        try:
            await self._bus.publish(event)
        except StorageError as exc:  # the log line stands; the alert is what is lost
            log.error("config: the %s event was not stored: %s", event.kind, exc)

    def _record(self, state_dir: Path, outcome: Outcome) -> Outcome:
        self.last = outcome
        write_outcome(state_dir, outcome)
        return outcome


def write_outcome(state_dir: Path, outcome: Outcome) -> None:
    """``state_dir/last-reload.json``, replaced atomically (``farmbot reload`` reads it)."""
    path = state_dir / OUTCOME_FILE
    temporary = path.with_name(f".{OUTCOME_FILE}.{os.getpid()}")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(outcome.to_json(), f)
        os.replace(temporary, path)
    except OSError as exc:  # the event and the log line still tell
        log.warning("config: cannot write %s: %s", path, exc.strerror or exc)
