"""Ears: whether each chat interface still hears, and an alert when one goes deaf.

Bots are often "healthy while deaf": a second poller on the same Telegram token, a Slack
socket that stopped delivering, a Discord gateway that never resumed. Every interface
that ``Hears`` says whether its inbound path works (``Hearing``); ``Ears.check()`` reads
them all, and one that has not been hearing for longer than its ``deaf_after`` raises
``InterfaceDeaf`` (routed to the other interfaces by its rule), once; when it hears
again, ``InterfaceHears``. ``check`` decides from the readings and the clock alone; the
daemon runs ``run()``, which publishes what ``check`` found every few seconds.

What the status page shows comes from ``status()``: each interface's hearing, and since
when it has not heard.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from farmbot.errors import StorageError
from farmbot.events import DomainEvent, InterfaceDeaf, InterfaceHears
from farmbot.messages import Hearing, Hears

log = logging.getLogger(__name__)

CHECK_EVERY = 5.0  # seconds between two looks at the interfaces


@dataclass(slots=True)
class _Ear:
    """What is known of one interface between checks."""

    hearing: Hearing
    bad_since: float | None = None  # when it stopped hearing (None: it hears)
    deaf: bool = False  # InterfaceDeaf was published and no InterfaceHears since


class Ears:
    """Watches the interfaces that can tell whether they hear (see the module docstring)."""

    def __init__(
        self,
        interfaces: Mapping[str, object],
        publish: Callable[[DomainEvent], Awaitable[Any]],
        deaf_after: Callable[[str], float],
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._interfaces = interfaces  # the builder's live mapping: read at each check
        self._publish = publish
        self._deaf_after = deaf_after
        self._clock = clock
        self._sleep = sleep
        self._ears: dict[str, _Ear] = {}
        self.checks = 0
        self.deafened = 0
        self.recovered = 0

    def __repr__(self) -> str:
        deaf = sorted(name for name, ear in self._ears.items() if ear.deaf)
        return f"<Ears checks={self.checks} watching={sorted(self._ears)} deaf={deaf}>"

    def statistics(self) -> dict[str, int | float | str]:
        return {
            "checks": self.checks,
            "watching": len(self._ears),
            "deaf": sum(ear.deaf for ear in self._ears.values()),
            "deafened": self.deafened,
            "recovered": self.recovered,
        }

    def readings(self) -> dict[str, Hearing]:
        """Each listening interface's hearing right now, by name."""
        return {
            name: component.hearing()
            for name, component in self._interfaces.items()
            if isinstance(component, Hears)
        }

    def check(self) -> list[DomainEvent]:
        """Read every interface's hearing; return the events it calls for (not published)."""
        now = self._clock()
        self.checks += 1
        found: list[DomainEvent] = []
        for name, hearing in self.readings().items():
            ear = self._ears.setdefault(name, _Ear(hearing))
            ear.hearing = hearing
            if hearing.ok:
                if ear.deaf:
                    deaf_for = now - (ear.bad_since if ear.bad_since is not None else now)
                    found.append(
                        InterfaceHears(interface=name, detail=hearing.detail, deaf_for=deaf_for)
                    )
                    self.recovered += 1
                ear.bad_since, ear.deaf = None, False
                continue
            if ear.bad_since is None:
                ear.bad_since = now
            limit = self._deaf_after(name)
            silent = now - ear.bad_since
            if not ear.deaf and limit > 0 and silent >= limit:
                ear.deaf = True
                self.deafened += 1
                found.append(
                    InterfaceDeaf(
                        interface=name,
                        detail=hearing.detail,
                        silent_for=silent,
                        last_heard=hearing.last_heard,
                    )
                )
        return found

    async def round(self) -> int:
        """One check, its events published; how many there were."""
        events = self.check()
        for event in events:
            try:
                await self._publish(event)
            except StorageError as exc:  # logged by the bus too; the next change says more
                log.error("%s of %s not stored: %s", event.kind, event.data(), exc)
        return len(events)

    async def run(self, every: float = CHECK_EVERY) -> None:
        """Check every ``every`` seconds until cancelled."""
        while True:
            try:
                await self.round()
            except Exception:  # this loop's one boundary: an interface's bug is logged
                log.exception("checking the interfaces' hearing failed")
            await self._sleep(every)

    def status(self) -> dict[str, dict[str, Any]]:
        """What the status page shows: each interface's hearing and how long it is deaf."""
        shown: dict[str, dict[str, Any]] = {}
        for name, hearing in self.readings().items():
            ear = self._ears.get(name)
            since = ear.bad_since if ear is not None and not hearing.ok else None
            shown[name] = {
                "ok": hearing.ok,
                "last_heard": hearing.last_heard,
                "detail": hearing.detail,
                "not_hearing_since": since,
                "deaf": ear is not None and ear.deaf and not hearing.ok,
                "deaf_after": self._deaf_after(name),
            }
        return shown
