"""Small helpers shared by the tests."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar, overload

from farmbot.adapters.shared import InterfaceDeps
from farmbot.models import Alert, AlertDraft, Event, NewEvent
from farmbot.storage import Storage

T = TypeVar("T")


@overload
async def retry_until(
    probe: Callable[[], Awaitable[T | None]],
    *,
    timeout: float = ...,
    interval: float = ...,
    message: str = ...,
) -> T: ...


@overload
async def retry_until(
    probe: Callable[[], T | None],
    *,
    timeout: float = ...,
    interval: float = ...,
    message: str = ...,
) -> T: ...


async def retry_until(
    probe: Callable[[], Any],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str = "condition",
) -> Any:
    """Poll ``probe`` (sync or async) until it returns a truthy value; return that value.

    Raises AssertionError naming ``message`` and the last value when ``timeout`` passes.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {message}; last: {result!r}"
            )
        await asyncio.sleep(interval)


def environ_of(pid: int) -> dict[str, str]:
    """A process's environment as it was started (``/proc/<pid>/environ``)."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(): v.decode() for k, v in pairs}


class FakeClock:
    """An injectable clock that only moves when told to (``clock.advance(60)``)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def store_event(
    storage: Storage,
    new: NewEvent,
    drafts: Sequence[AlertDraft] = (),
    now: float = 1_700_000_000.0,
    *,
    dedupe_window: float = 300.0,
) -> tuple[Event, list[Alert]]:
    """Store one event with its alerts (what the event bus does for a published event)."""
    [stored] = await storage.events.add_events([(new, drafts)], now, dedupe_window=dedupe_window)
    return stored


async def store_events(storage: Storage, events: Sequence[NewEvent], now: float) -> list[int]:
    """Store events that raise no alerts in one transaction; return their ids."""
    stored = await storage.events.add_events([(e, ()) for e in events], now, dedupe_window=300.0)
    return [event.id for event, _ in stored]


def deps(clock: Callable[[], float] = time.time, actions: Any = None) -> InterfaceDeps:
    """What the builder gives an interface, for a test that builds one alone.

    ``actions``: a store of button commands, when the test presses long buttons.
    """
    return InterfaceDeps(actions=actions, threads=None, clock=clock)  # type: ignore[arg-type]
