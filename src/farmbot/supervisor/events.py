"""The event log: everything that happens to agents is stored first, then announced.

With alert rules, an event and the alerts it raises (and their outbox items) are stored
in one transaction, so an alert is never lost and never sent for an event that was not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from farmbot.models import Alert, Event, NewEvent
from farmbot.storage.base import Store
from farmbot.supervisor.alerts import AlertRules

log = logging.getLogger(__name__)

Listener = Callable[[Event], None]
OnAlerts = Callable[[list[Alert]], None]  # e.g. Notifier.notify_new


class EventLog:
    """Stores events (with their alerts) and tells in-process listeners."""

    def __init__(
        self,
        store: Store,
        clock: Callable[[], float],
        rules: AlertRules | None = None,
        on_alerts: OnAlerts | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._rules = rules
        self._on_alerts = on_alerts
        self._listeners: list[Listener] = []
        self.emitted = 0
        self.alerts = 0

    def __repr__(self) -> str:
        return (
            f"<EventLog emitted={self.emitted} alerts={self.alerts}"
            f" listeners={len(self._listeners)}>"
        )

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with every stored event; returns the unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def emit(
        self, kind: str, /, agent_id: str | None = None, project: str | None = None, **data: Any
    ) -> Event:
        """Store an event and the alerts it raises; then tell the notifier and listeners.

        ``kind`` is positional-only, so the data may carry an agent's ``kind`` too.
        """
        now = self._clock()
        new = NewEvent(kind=kind, agent_id=agent_id, project=project, data=data, ts=now)
        rules = self._rules
        alerts: list[Alert] = []
        if rules is not None and (drafts := rules.drafts_for(new)):
            event, alerts = await self._store.add_event_with_alerts(
                new, drafts, now, dedupe_window=rules.config.dedupe_window
            )
        else:
            [event_id] = await self._store.add_events([new], now)
            event = Event(event_id, now, kind, agent_id, project, data)
        self.emitted += 1
        self.alerts += len(alerts)
        log.info("event %s %s %s", kind, agent_id or "-", data or "")
        if alerts and self._on_alerts is not None:
            self._on_alerts(alerts)
        for listener in list(self._listeners):
            listener(event)
        return event
