"""The event log: everything that happens to agents is stored first, then announced."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from farmbot.models import Event, NewEvent
from farmbot.storage.base import Store

log = logging.getLogger(__name__)

Listener = Callable[[Event], None]


class EventLog:
    """Stores events and tells in-process listeners (the web console's live feed)."""

    def __init__(self, store: Store, clock: Callable[[], float]) -> None:
        self._store = store
        self._clock = clock
        self._listeners: list[Listener] = []
        self.emitted = 0

    def __repr__(self) -> str:
        return f"<EventLog emitted={self.emitted} listeners={len(self._listeners)}>"

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with every stored event; returns the unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def emit(
        self, kind: str, agent_id: str | None = None, project: str | None = None, **data: Any
    ) -> Event:
        now = self._clock()
        new = NewEvent(kind=kind, agent_id=agent_id, project=project, data=data, ts=now)
        [event_id] = await self._store.add_events([new], now)
        event = Event(event_id, now, kind, agent_id, project, data)
        self.emitted += 1
        log.info("event %s %s %s", kind, agent_id or "-", data or "")
        for listener in list(self._listeners):
            listener(event)
        return event
