"""Alerts, one component: the rules decide what a person must hear about (rules.py), the
outbox holds it durably (storage/outbox.py, written with its event by the bus), and the
notifier delivers it through the interfaces exactly once (notifier.py).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence

from farmbot.alerts.notifier import Notifier, outbound
from farmbot.alerts.rules import WEB_CONSOLE, AlertRules
from farmbot.config.alerts import AlertsConfig
from farmbot.events import DomainEvent
from farmbot.messages import Interface
from farmbot.models import Alert, AlertDraft, Event
from farmbot.storage.outbox import OutboxStore

__all__ = ["WEB_CONSOLE", "AlertRules", "Alerts", "Notifier", "outbound"]


class Alerts:
    """Rules and notifier over one outbox; ``run()`` delivers until ``close()``."""

    def __init__(
        self,
        config: AlertsConfig,
        outbox: OutboxStore,
        interfaces: Mapping[str, Interface],
        clock: Callable[[], float] = time.time,
        *,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.rules = AlertRules(config)
        self.notifier = Notifier(outbox, interfaces, config, clock=clock, rand=rand)

    def __repr__(self) -> str:
        return f"<Alerts {self.rules!r} {self.notifier!r}>"

    def statistics(self) -> dict[str, int | float | str]:
        return dict(self.notifier.statistics())

    def drafts_for(self, event: DomainEvent) -> list[AlertDraft]:
        """The alerts an event raises (the bus stores them with it)."""
        return self.rules.drafts_for(event)

    def on_event(self, record: Event, event: DomainEvent, alerts: Sequence[Alert]) -> None:
        """A bus listener: new alerts are in the outbox, look at it now."""
        if alerts:
            self.notifier.notify_new()

    async def run(self) -> None:
        await self.notifier.run()

    def close(self) -> None:
        self.notifier.close()

    def reopen(self) -> None:
        """Deliver again after ``close()`` (a new term as chat leader)."""
        self.notifier.reopen()
