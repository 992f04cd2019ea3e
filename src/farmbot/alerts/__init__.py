"""Alerts, one component: the rules decide what a person must hear about (rules.py), the
outbox holds it durably (storage/outbox.py, written with its event by the bus), and the
notifier delivers it through the interfaces exactly once (notifier.py).

A decided or stale gate's alert is edited wherever it was delivered: the bus listener
only queues the edit (``gate_edit``), the notifier's task carries it out, and the edits
a restart or an outage left owed come from the outbox (``GateEdits``, edits.py). Whether
the chat interfaces still hear is watched by ``Ears`` (hearing.py), whose events have
rules of their own.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

from farmbot.alerts.edits import GateEdits, decided_edit, gate_edit
from farmbot.alerts.hearing import Ears
from farmbot.alerts.notifier import AlertEdit, EditsOwed, Notifier, outbound
from farmbot.alerts.rules import WEB_CONSOLE, AlertRules
from farmbot.config.alerts import AlertsConfig
from farmbot.events import DomainEvent
from farmbot.messages import Interface
from farmbot.models import Alert, AlertDraft, Event
from farmbot.storage.outbox import OutboxStore

__all__ = [
    "WEB_CONSOLE",
    "AlertEdit",
    "AlertRules",
    "Alerts",
    "Ears",
    "EditsOwed",
    "GateEdits",
    "Notifier",
    "decided_edit",
    "gate_edit",
    "outbound",
]


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
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self.rules = AlertRules(config)
        self.notifier = Notifier(
            outbox,
            interfaces,
            config,
            clock=clock,
            sleep=sleep,
            rand=rand,
            owed=GateEdits(outbox),
        )

    def __repr__(self) -> str:
        return f"<Alerts {self.rules!r} {self.notifier!r}>"

    def statistics(self) -> dict[str, int | float | str]:
        return dict(self.notifier.statistics())

    def reconfigure(self, config: AlertsConfig) -> None:
        """New rules and routes for the next events, new retries for the next failures;
        alerts already in the outbox keep the routes they were given."""
        self.config = config
        self.rules = AlertRules(config)
        self.notifier.reconfigure(config)

    def drafts_for(self, event: DomainEvent) -> list[AlertDraft]:
        """The alerts an event raises (the bus stores them with it)."""
        return self.rules.drafts_for(event)

    def on_event(self, record: Event, event: DomainEvent, alerts: Sequence[Alert]) -> None:
        """A bus listener: new alerts are in the outbox, look at it now; a decided gate's
        alerts are to be edited (queued: the notifier's task does it)."""
        if alerts:
            self.notifier.notify_new()
        edit = gate_edit(event, record.ts)
        if edit is not None:
            self.notifier.queue_edit(edit)

    async def run(self) -> None:
        await self.notifier.run()

    def close(self) -> None:
        self.notifier.close()

    def reopen(self) -> None:
        """Deliver again after ``close()`` (a new term as chat leader)."""
        self.notifier.reopen()
