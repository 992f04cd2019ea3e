"""The notifier: delivers the outbox through the interfaces, each alert exactly once.

Per channel, an (interface, channel) pair, it takes the head of the queue, claims it
(``mark_sending``), calls the interface's ``send`` and records the delivery
(``mark_delivered``). A ``DeliveryError`` puts the item back with exponential backoff
and jitter, never sooner than the platform's ``retry_after``; after ``max_attempts``
(or at once on ``PermanentDeliveryError``) it becomes a dead letter and the channel
moves on. Channels are delivered concurrently, so a slow or failing one never holds
another back.

Exactly once: an item is sent only after it was claimed in the database, and claimed
again only if a crash left it in ``sending`` between ``send`` and ``mark_delivered``;
``requeue_sending`` at start sends those again (at least once in that window).

``send`` returns the platform's handle of the message, kept with the item
(``message_ref``). A queued ``AlertEdit`` (``queue_edit``: a decided or stale gate) is
carried out on the notifier's own task: every delivered copy of the alert on an
interface that ``EditsAlerts`` is rewritten without the gate's buttons and with a note
saying who decided; copies not yet delivered, and edits that fail for a reason a retry
may help, are tried again a few times. Each copy is marked once edited, or once it can
never be (``mark_edited``), and is not edited again. What is still owed comes from an
injected ``EditsOwed`` (alerts/edits.py): at start and every ``OWED_EVERY`` seconds the
edits a stop, a crash or an outage left undone (one after the other, not all at once),
and right after a delivery the edit that copy owes already (its gate was decided while
it waited). A copy that stays unedited still works: its button answers "already
approved by ...".
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal, ParamSpec, Protocol

from farmbot.config.alerts import AlertsConfig
from farmbot.durations import DELIVERY_BUCKETS, Durations
from farmbot.errors import DeliveryError, PermanentDeliveryError, StorageError
from farmbot.messages import EditsAlerts, Interface, OutboundMessage
from farmbot.models import Alert, Destination, OutboxItem, OutboxStatus
from farmbot.storage.outbox import OutboxStore

log = logging.getLogger(__name__)
P = ParamSpec("P")

POLL_SECONDS = 0.5  # how often due retries are looked for without a new alert
BATCH = 100  # channels served per pass
MAX_RETRY_AFTER = 86400.0  # a platform's wait hint is honoured up to a day
EDIT_ATTEMPTS = 4  # rounds of edits of one alert's copies before the rest are left alone
EDIT_PAUSE = 1.0  # seconds before the second round; doubles per round
OWED_EVERY = 600.0  # seconds between looks for edits left undone (and at start)


@dataclass(frozen=True, slots=True)
class AlertEdit:
    """Rewrite every copy of an alert: these buttons off, this note added."""

    dedupe_key: str  # the alert's, e.g. "gate.opened:7"
    drop: tuple[str, ...]  # buttons whose command is one of these, or starts with one + " "
    note: str  # "✅ approved by alice at 12:03 UTC"

    def keeps(self, command: str) -> bool:
        return not any(command == d or command.startswith(d + " ") for d in self.drop)


class EditsOwed(Protocol):
    """Which edits delivered copies still owe, beyond those queued (alerts/edits.py)."""

    async def owed(self) -> list[AlertEdit]:
        """Every edit a delivered copy still owes, one per alert."""

    async def owed_by(self, item: OutboxItem) -> AlertEdit | None:
        """The edit a copy just delivered owes already, if any."""


class Notifier:
    """Delivers due outbox items; ``run()`` is a long-lived task of the app's TaskGroup."""

    def __init__(
        self,
        outbox: OutboxStore,
        interfaces: Mapping[str, Interface],
        config: AlertsConfig,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        *,
        owed: EditsOwed | None = None,
    ) -> None:
        self._store = outbox
        self._interfaces = interfaces
        self._config = config
        self._clock = clock
        self._sleep = sleep
        self._rand = rand
        self._owed = owed
        self._wake = asyncio.Event()
        self._busy: set[Destination] = set()  # channels with a delivery in flight
        self._unsettled: list[Callable[[], Awaitable[bool]]] = []  # marks the db refused
        self._recovered = False
        self._closed = False
        self._last_storage_error = ""
        self._edits: deque[AlertEdit] = deque()
        self._backlog: list[AlertEdit] = []  # owed edits found, to make one after the other
        self._sweeping = False  # the backlog is being worked through
        self._next_look = -math.inf  # when to look for owed edits again
        self._editing: set[str] = set()  # dedupe keys with an edit in flight
        self._again: dict[str, AlertEdit] = {}  # ... and the edit to make after it
        self.delivered = 0
        self.retried = 0
        self.dead = 0
        # From when a message was due (queued, or its dedupe window ended) to delivered.
        self.latency = Durations(DELIVERY_BUCKETS)
        self.edited = 0
        self.edits_failed = 0

    def __repr__(self) -> str:
        stats = " ".join(f"{k}={v}" for k, v in self.statistics().items())
        return f"<Notifier {stats}>"

    def statistics(self) -> dict[str, int]:
        """Live counters for the status page."""
        return {
            "delivered": self.delivered,
            "retried": self.retried,
            "dead": self.dead,
            "in_flight": len(self._busy),
            "edited": self.edited,
            "edits_failed": self.edits_failed,
        }

    def reconfigure(self, config: AlertsConfig) -> None:
        """New attempts and backoff (a reloaded config), from the next failure on."""
        self._config = config

    def notify_new(self, alerts: Sequence[Alert] = ()) -> None:
        """Look at the outbox now (new alerts, or a dead letter put back)."""
        self._wake.set()

    def queue_edit(self, edit: AlertEdit) -> None:
        """Rewrite an alert's copies soon, on the notifier's task (safe from a listener)."""
        self._edits.append(edit)
        self._wake.set()

    def close(self) -> None:
        """Make ``run()`` return once the deliveries in flight end."""
        self._closed = True
        self._wake.set()

    def reopen(self) -> None:
        """Before ``run()`` again (a node leads anew): recover what a crash left in
        ``sending`` first, then deliver until ``close()``."""
        self._closed = False
        self._recovered = False

    async def run(self) -> None:
        """Deliver until ``close()`` (or cancellation), each channel on its own."""
        await self._recover()
        async with asyncio.TaskGroup() as tasks:
            ticker = tasks.create_task(self._tick())
            try:
                while not self._closed:
                    self._wake.clear()
                    await self._look_for_owed()
                    while self._edits:
                        tasks.create_task(self._edit_alert(self._edits.popleft()))
                    if self._backlog and not self._sweeping:
                        self._sweeping = True
                        backlog, self._backlog = self._backlog, []
                        tasks.create_task(self._edit_in_turn(backlog))
                    for item in await self._due():
                        route = (item.interface, item.channel)
                        if route not in self._busy:
                            self._busy.add(route)
                            tasks.create_task(self._channel(route, item))
                    await self._wake.wait()
            finally:
                ticker.cancel()

    async def deliver_due(self) -> int:
        """Deliver the due head of every channel once, concurrently; return how many."""
        await self._recover()
        items = [i for i in await self._due() if (i.interface, i.channel) not in self._busy]
        async with asyncio.TaskGroup() as tasks:
            done = [tasks.create_task(self._deliver(item)) for item in items]
        return sum(task.result() for task in done)

    async def edit_queued(self) -> int:
        """Carry out the queued and owed edits now (tests, ``run()`` does it itself); how
        many copies were edited."""
        await self._recover()
        await self._look_for_owed()
        done = 0
        while self._backlog or self._edits:
            edit = self._backlog.pop(0) if self._backlog else self._edits.popleft()
            done += await self._edit_alert(edit)
        return done

    def backoff(self, attempts: int, retry_after: float | None) -> float:
        """Seconds to wait after a failure, given the attempts made before it."""
        config = self._config
        # min() before the jitter keeps the exponent from overflowing the float.
        step = min(config.backoff_max, config.backoff_base * 2.0 ** min(attempts, 64))
        delay = step * (0.5 + self._rand() / 2)
        if retry_after is not None and math.isfinite(retry_after):
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
        return delay

    # internals ------------------------------------------------------------------------
    async def _tick(self) -> None:
        while True:
            await self._sleep(POLL_SECONDS)
            self._wake.set()

    async def _recover(self) -> None:
        if self._recovered:
            return
        requeued = await self._store.requeue_sending(self._clock())
        self._recovered = True
        if requeued:
            log.warning(
                "outbox: %d alerts were being sent when farmbot stopped; sending them again",
                requeued,
            )
        await self._look_for_owed()
        if self._backlog:
            log.warning(
                "outbox: %d alerts have copies still owed an edit; editing them",
                len(self._backlog),
            )

    async def _look_for_owed(self) -> None:
        """At start and every OWED_EVERY seconds: the edits still owed, into the backlog
        (unless the last ones are still being made)."""
        if self._owed is None or self._sweeping or self._clock() < self._next_look:
            return
        try:
            owed = await self._owed.owed()
        except StorageError as exc:
            self._storage_failed(exc)  # and again on the next pass
            return
        self._next_look = self._clock() + OWED_EVERY
        queued = {e.dedupe_key for e in self._edits}
        self._backlog = [e for e in owed if e.dedupe_key not in queued]

    async def _due(self) -> list[OutboxItem]:
        try:
            await self._settle_pending()
            return await self._store.due_outbox(self._clock(), BATCH)
        except StorageError as exc:
            self._storage_failed(exc)
            return []

    async def _channel(self, route: Destination, item: OutboxItem) -> None:
        try:
            await self._deliver(item)
        finally:
            self._busy.discard(route)
            self._wake.set()  # its next item may be due now

    async def _deliver(self, item: OutboxItem) -> bool:
        """Try one item once; True when it was delivered. Raises only on cancellation."""
        try:
            return await self._attempt(item)
        except StorageError as exc:
            self._storage_failed(exc)
            return False

    async def _attempt(self, item: OutboxItem) -> bool:
        where = f"{item.interface}:{item.channel}"
        interface = self._interfaces.get(item.interface)
        if interface is None:
            known = ", ".join(sorted(self._interfaces)) or "none"
            error = f"no interface named '{item.interface}' is running (running: {known})"
            await self._give_up(item, where, error)
            return False
        # Send the item as claimed, not as due_outbox read it: a repeat may have folded
        # into it in between (a newer alert, a higher count).
        claimed = await self._store.mark_sending(item.id)
        if claimed is None:
            return False  # no longer pending: it was moved meanwhile
        item = claimed
        try:
            ref = await interface.send(item.channel, outbound(item, self._clock()))
        except PermanentDeliveryError as exc:
            await self._give_up(item, where, str(exc))
            return False
        except DeliveryError as exc:
            await self._failed(item, where, str(exc), exc.retry_after)
            return False
        except Exception as exc:
            # The per-item boundary: a bug in one interface must neither stop the other
            # channels nor lose the alert, so it counts as a failed, retryable attempt.
            log.exception("alert %d to %s: unexpected error in %r", item.alert.id, where, interface)
            await self._failed(item, where, f"{type(exc).__name__}: {exc}", None, logged=True)
            return False
        self.delivered += 1
        now = self._clock()
        self.latency.observe(now - max(item.created_at, item.not_before or 0.0))
        await self._settle(self._store.mark_delivered, item.id, now, ref)
        if ref is not None:
            await self._edit_if_owed(item)
        return True

    async def _edit_if_owed(self, item: OutboxItem) -> None:
        """A copy just delivered: edited at once if it is outdated already (its gate was
        decided while it waited), not at the next look for owed edits."""
        if self._owed is None:
            return
        try:
            edit = await self._owed.owed_by(item)
        except StorageError as exc:
            self._storage_failed(exc)  # the next look for owed edits finds it
            return
        if edit is not None:
            self.queue_edit(edit)

    async def _edit_in_turn(self, edits: Sequence[AlertEdit]) -> None:
        # One alert after the other: a backlog of edits must not flood a platform.
        try:
            for edit in edits:
                await self._edit_alert(edit)
        finally:
            self._sweeping = False

    async def _edit_alert(self, edit: AlertEdit) -> int:
        """Edit an alert's copies, one edit of an alert at a time: a second one waits for
        the first and then reads the copies again, so no copy is edited twice."""
        key = edit.dedupe_key
        if key in self._editing:
            self._again[key] = edit
            return 0
        self._editing.add(key)
        try:
            done = await self._edit_copies(edit)
            while (again := self._again.pop(key, None)) is not None:
                done += await self._edit_copies(again)
            return done
        finally:
            self._editing.discard(key)
            self._again.pop(key, None)

    async def _edit_copies(self, edit: AlertEdit) -> int:
        """Edit every copy of the alert not edited yet; undelivered ones and retryable
        failures again a few times. Each copy edited, or found impossible to edit, is
        marked so (a copy whose interface cannot edit has nothing to wait for either).

        Returns how many copies were edited, and raises only on cancellation.
        """
        done: set[int] = set()  # edited, or given up on
        edited = 0
        for attempt in range(EDIT_ATTEMPTS):
            if attempt:
                await self._sleep(EDIT_PAUSE * 2 ** (attempt - 1))
            try:
                items = await self._store.items_with_key(edit.dedupe_key)
            except StorageError as exc:
                self._storage_failed(exc)
                continue
            waiting = 0
            for item in items:
                if item.id in done or item.status is OutboxStatus.DEAD:
                    continue
                if item.edited_at is not None:
                    continue  # edited before (another round, or before a restart)
                interface = self._interfaces.get(item.interface)
                if interface is None:
                    continue  # not running now: the copy stays owed its edit
                if item.status is not OutboxStatus.DELIVERED:
                    if isinstance(interface, EditsAlerts):
                        waiting += 1  # not out yet: perhaps by the next round
                    continue
                if item.message_ref is None:
                    continue  # no handle kept (the web console, webhooks): nothing to edit
                outcome: Literal["edited", "gone", "retry"] = "gone"
                if isinstance(interface, EditsAlerts):
                    outcome = await self._edit_one(interface, item, item.message_ref, edit)
                if outcome == "retry":
                    waiting += 1
                    continue
                done.add(item.id)
                edited += outcome == "edited"
                await self._settle(self._store.mark_edited, item.id, self._clock())
            if not waiting:
                break
        else:
            log.warning("alert %s: some copies were not edited (%s)", edit.dedupe_key, edit.note)
        return edited

    async def _edit_one(
        self, interface: EditsAlerts, item: OutboxItem, ref: str, edit: AlertEdit
    ) -> Literal["edited", "gone", "retry"]:
        """Edit one copy: edited, gone (it cannot be edited), or to retry."""
        message = outbound(item, self._clock())
        rows = tuple(tuple(b for b in row if edit.keeps(b.command)) for row in message.buttons)
        message = replace(message, buttons=tuple(r for r in rows if r), note=edit.note)
        where = f"{item.interface}:{item.channel}"
        try:
            await interface.edit(item.channel, ref, message)
        except PermanentDeliveryError as exc:
            self.edits_failed += 1
            log.info("alert %d in %s not edited: %s", item.alert.id, where, exc)
            return "gone"
        except DeliveryError as exc:
            log.info("alert %d in %s not edited yet: %s", item.alert.id, where, exc)
            return "retry"
        except Exception:  # a bug in one interface must not stop the others' edits
            self.edits_failed += 1
            log.exception("alert %d in %s: editing failed in %r", item.alert.id, where, interface)
            return "gone"
        self.edited += 1
        return "edited"

    async def _failed(
        self,
        item: OutboxItem,
        where: str,
        error: str,
        retry_after: float | None,
        *,
        logged: bool = False,
    ) -> None:
        attempts = item.attempts + 1
        if attempts >= self._config.max_attempts:
            await self._give_up(item, where, f"gave up after {attempts} attempts: {error}")
            return
        delay = self.backoff(item.attempts, retry_after)
        self.retried += 1
        await self._settle(self._store.mark_retry, item.id, error, self._clock() + delay)
        if not logged:
            log.warning(
                "alert %d to %s failed (attempt %d of %d), next try in %.0fs: %s",
                item.alert.id,
                where,
                attempts,
                self._config.max_attempts,
                delay,
                error,
            )

    async def _give_up(self, item: OutboxItem, where: str, error: str) -> None:
        self.dead += 1
        await self._settle(self._store.mark_dead, item.id, error)
        log.error(
            "alert %d to %s is a dead letter (/retry %d sends it again): %s",
            item.alert.id,
            where,
            item.id,
            error,
        )

    async def _settle(
        self, mark: Callable[P, Awaitable[bool]], *args: P.args, **kwargs: P.kwargs
    ) -> None:
        # A mark the database refused is kept and tried again before the next pass, so a
        # sent item is not left in ``sending`` (which would hold its channel back).
        call = functools.partial(mark, *args, **kwargs)
        try:
            await call()
        except StorageError as exc:
            self._storage_failed(exc)
            self._unsettled.append(call)

    async def _settle_pending(self) -> None:
        while self._unsettled:
            await self._unsettled[0]()
            self._unsettled.pop(0)

    def _storage_failed(self, exc: StorageError) -> None:
        if str(exc) != self._last_storage_error:  # once per distinct error, not per poll
            self._last_storage_error = str(exc)
            log.error("outbox: the database failed: %s", exc)


def outbound(item: OutboxItem, now: float) -> OutboundMessage:
    """The message an interface sends for an outbox item."""
    alert = item.alert
    text = alert.text
    if item.count > 1:
        text += f"\n(repeated {item.count}× in the last {_span(now - item.created_at)})"
    return OutboundMessage(
        alert_id=alert.id,
        outbox_id=item.id,
        severity=alert.severity,
        title=alert.title,
        text=text,
        pre=alert.pre,
        buttons=alert.buttons,
        agent_id=alert.agent_id,
        project=alert.project,
        count=item.count,
    )


def _span(seconds: float) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return f"{minutes} min" if minutes < 120 else f"{round(minutes / 60)} h"
