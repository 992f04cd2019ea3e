"""The event bus: every event is stored (with the alerts it raises) before anyone hears of it.

One path for every event, from a hook event at thousands a second to an agent dying:
``publish`` queues the event and returns once it is committed. One writer task commits
whatever is queued in one transaction (group commit) as soon as it is free -- so an
event arriving while the disk is idle is written at once, and events arriving during a
commit are batched into the next one. Each event's alert drafts come from the injected
``rules`` (pure) and are written in the same transaction, so an alert is never lost and
never sent for an event that was not stored. After the commit, listeners are called
with the stored record and the typed event.

``async with EventBus(...) as bus:`` starts the writer; leaving the block commits what
was published and refuses more.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Self

from farmbot.errors import StorageError
from farmbot.events import DomainEvent, HookReceived
from farmbot.models import Alert, AlertDraft, Event, NewEvent
from farmbot.storage.events import EventStore

log = logging.getLogger(__name__)

Rules = Callable[[DomainEvent], list[AlertDraft]]
Listener = Callable[[Event, DomainEvent, Sequence[Alert]], None]
_Queued = tuple[DomainEvent, NewEvent, "asyncio.Future[Event]"]


class EventBus:
    """Stores events in group commits and tells listeners; see the module docstring."""

    def __init__(
        self,
        events: EventStore,
        clock: Callable[[], float] = time.time,
        *,
        rules: Rules | None = None,
        dedupe_window: float = 300.0,
        max_batch: int = 500,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        self._events = events
        self._clock = clock
        self._rules = rules
        self._dedupe_window = dedupe_window
        self._max_batch = max_batch
        self._queue: deque[_Queued] = deque()
        self._queued = asyncio.Event()
        self._listeners: list[Listener] = []
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self.published = 0
        self.batches = 0
        self.alerts = 0
        self.failed = 0

    def __repr__(self) -> str:
        stats = " ".join(f"{k}={v}" for k, v in self.statistics().items())
        return f"<EventBus {stats}>"

    def statistics(self) -> dict[str, int | float | str]:
        return {
            "published": self.published,
            "batches": self.batches,
            "alerts": self.alerts,
            "failed": self.failed,
            "queued": len(self._queue),
        }

    async def __aenter__(self) -> Self:
        self._writer = asyncio.create_task(self._write(), name="event-bus-writer")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Commit what was published, refuse anything more, and stop the writer."""
        self._closing = True
        self._queued.set()
        writer, self._writer = self._writer, None
        if writer is not None:
            await writer

    def reconfigure(self, *, dedupe_window: float) -> None:
        """A new dedupe window for the next commits."""
        self._dedupe_window = dedupe_window

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` after every commit; returns the unsubscribe function.

        A listener runs on the writer's task: it must be quick and must not raise.
        """
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def publish(self, event: DomainEvent, *, ts: float | None = None) -> Event:
        """Store ``event`` (and its alerts); return it as stored once committed.

        Raises ``StorageError`` when it could not be stored.
        """
        if self._closing or self._writer is None:
            raise StorageError(f"the event bus is not running; {event.kind} not stored")
        new = NewEvent(event.kind, event.agent_id, event.project, event.data(), ts)
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._queue.append((event, new, future))
        self._queued.set()
        stored = await future
        if not isinstance(event, HookReceived):
            log.info("event %s %s %s", event.kind, event.agent_id or "-", new.data or "")
        return stored

    async def _write(self) -> None:
        while True:
            await self._queued.wait()
            if not self._queue:
                self._queued.clear()
                if self._closing:
                    return
                continue
            count = min(len(self._queue), self._max_batch)
            batch = [self._queue.popleft() for _ in range(count)]
            try:
                await self._commit(batch)
            except BaseException:
                for _, _, future in batch:  # nobody may wait forever for this batch
                    future.cancel()
                for _, _, future in self._queue:
                    future.cancel()
                raise

    async def _commit(self, batch: list[_Queued]) -> None:
        now = self._clock()
        pairs = [(new, self._drafts(event)) for event, new, _ in batch]
        try:
            stored = await self._events.add_events(pairs, now, dedupe_window=self._dedupe_window)
        except StorageError as exc:
            self.failed += len(batch)
            log.error("%d events not stored: %s", len(batch), exc)
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        self.batches += 1
        self.published += len(batch)
        for (event, _, future), (record, alerts) in zip(batch, stored, strict=True):
            self.alerts += len(alerts)
            if not future.done():
                future.set_result(record)
            for listener in list(self._listeners):
                try:
                    listener(record, event, alerts)
                except Exception:  # a listener's bug must not stop the event path
                    log.exception("event listener %r failed on %s", listener, record.kind)

    def _drafts(self, event: DomainEvent) -> list[AlertDraft]:
        if self._rules is None:
            return []
        try:
            return self._rules(event)
        except Exception:  # the event is kept even when a rule has a bug
            log.exception("alert rules failed on %s; stored without alerts", event.kind)
            return []
