"""A decided gate's alert is edited on every copy exactly once, across restarts: the alerts
component over real storage (each backend), a real event bus and real gates, delivering
to a test interface that can edit what it sent. Each rig opens the test's one database
again, as a restarted farmbot does.

Time is a FakeClock and the notifier's pauses between rounds of edits return at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import pytest

from farmbot.alerts import Alerts, Notifier, gate_edit
from farmbot.alerts.notifier import OWED_EVERY
from farmbot.bus import EventBus
from farmbot.config.alerts import AlertRoute, AlertsConfig
from farmbot.errors import DeliveryError, PermanentDeliveryError
from farmbot.events import GateDecided
from farmbot.messages import Interface, OnIncoming, OutboundMessage, Severity
from farmbot.models import Decision, Gate
from farmbot.storage import Storage
from farmbot.supervisor.gates import Gates
from tests.backends import Backend
from tests.helpers import FakeClock, retry_until

CONFIG = AlertsConfig(routes=(AlertRoute("chat", "A", Severity.INFO), AlertRoute("chat", "B")))
APPROVED = "✅ approved by alice at 22:13 UTC"  # FakeClock's start


@dataclass
class EditingChat:
    """A test interface that keeps a handle of what it sends and can edit it; per channel,
    scripts of exceptions to raise before a send or an edit succeeds."""

    name: str = "chat"
    send_failures: dict[str, list[BaseException]] = field(default_factory=dict)
    edit_failures: dict[str, list[BaseException]] = field(default_factory=dict)
    hold_edits: asyncio.Event | None = None  # edits hang until it is set
    sent: list[tuple[str, OutboundMessage]] = field(default_factory=list)
    edits: list[tuple[str, str, str]] = field(default_factory=list)  # (channel, ref, note)
    tried: list[str] = field(default_factory=list)  # refs of every edit attempted

    async def start(self, on_incoming: OnIncoming) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send(self, channel: str, message: OutboundMessage) -> str:
        script = self.send_failures.get(channel)
        if script:
            raise script.pop(0)
        self.sent.append((channel, message))
        return f"{channel}-{message.outbox_id}"

    async def edit(self, channel: str, ref: str, message: OutboundMessage) -> None:
        self.tried.append(ref)
        if self.hold_edits is not None:
            await self.hold_edits.wait()
        script = self.edit_failures.get(channel)
        if script:
            raise script.pop(0)
        assert [b.command for row in message.buttons for b in row] == []  # Approve is gone
        self.edits.append((channel, ref, message.note))


@dataclass
class Console:
    """The web console's part: every alert goes there too; it keeps no handle to edit."""

    name: str = "web"
    sent: int = 0

    async def start(self, on_incoming: OnIncoming) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send(self, channel: str, message: OutboundMessage) -> None:
        self.sent += 1


@dataclass
class Rig:
    """One farmbot's alerts over the test's database."""

    storage: Storage
    chat: EditingChat
    clock: FakeClock
    notifier: Notifier
    gates: Gates
    pauses: list[float]  # the notifier's sleeps between rounds of edits

    async def drain(self) -> int:
        """Deliver until nothing more is due now; how many were delivered."""
        total = 0
        while delivered := await self.notifier.deliver_due():
            total += delivered
        return total

    async def gate(self, title: str = "deploy") -> Gate:
        return await self.gates.open("manual", title, project="farm")

    async def approve(self, gate: Gate) -> None:
        await self.gates.decide(gate.id, Decision(approved=True), "alice")

    async def edited_at(self, gate: Gate) -> list[float | None]:
        items = await self.storage.outbox.items_with_key(f"gate.opened:{gate.id}")
        return [i.edited_at for i in items if i.interface == "chat"]


Build = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def rig(backend: Backend) -> AsyncIterator[Build]:
    """Make a farmbot's alerts (storage, bus, gates, notifier), closed after the test; all
    on one FakeClock. The notifier's sleeps return at once, unless ``sleep`` is given (its
    ``run()`` ticks with it)."""
    shared = FakeClock()
    async with AsyncExitStack() as stack:

        async def build(
            chat: EditingChat | None = None,
            sleep: Callable[[float], Awaitable[None]] | None = None,
        ) -> Rig:
            chat = chat or EditingChat()
            own = AsyncExitStack()
            stack.push_async_callback(own.aclose)
            storage = await own.enter_async_context(backend.open())
            pauses: list[float] = []

            async def pause(seconds: float) -> None:
                pauses.append(seconds)

            interfaces: dict[str, Interface] = {"chat": chat, "web": Console()}
            alerts = Alerts(CONFIG, storage.outbox, interfaces, shared, rand=lambda: 1.0,
                            sleep=sleep or pause)  # fmt: skip
            bus = await own.enter_async_context(
                EventBus(storage.events, shared, rules=alerts.drafts_for)
            )
            bus.subscribe(alerts.on_event)
            gates = Gates(storage.gates, bus, shared)
            return Rig(storage, chat, shared, alerts.notifier, gates, pauses)

        yield build


async def test_a_gate_decided_before_a_stop_is_edited_after_the_restart_exactly_once(
    rig: Build,
) -> None:
    first = await rig()
    gate = await first.gate()
    assert await first.drain() == 3  # A, B and the web console
    await first.approve(gate)  # the edit is queued, then farmbot stops before making it
    assert first.chat.edits == [] and await first.edited_at(gate) == [None, None]

    second = await rig()
    assert await second.drain() == 0
    assert await second.notifier.edit_queued() == 2
    refs = [f"{ch}-{m.outbox_id}" for ch, m in first.chat.sent]
    assert second.chat.edits == [("A", refs[0], APPROVED), ("B", refs[1], APPROVED)]
    assert await second.edited_at(gate) == [second.clock(), second.clock()]
    assert await second.notifier.edit_queued() == 0  # edited is edited

    third = await rig()
    assert await third.drain() == 0 and await third.notifier.edit_queued() == 0
    third.clock.advance(OWED_EVERY)  # nor at its next look for edits owed
    assert await third.notifier.edit_queued() == 0
    assert third.chat.tried == []


async def test_every_gate_decided_before_a_stop_is_edited_after_the_restart(rig: Build) -> None:
    first = await rig()
    gates = [await first.gate(f"q{n}") for n in range(3)]
    await first.drain()
    for gate in gates:
        await first.approve(gate)
    second = await rig()
    assert await second.notifier.edit_queued() == 6
    assert [ref for _, ref, _ in second.chat.edits] == [
        f"{ch}-{m.outbox_id}" for ch, m in sorted(first.chat.sent, key=lambda s: s[1].outbox_id)
    ]


async def test_a_copy_delivered_after_the_decision_is_edited_right_after_delivery(
    rig: Build,
) -> None:
    chat = EditingChat(send_failures={"B": [DeliveryError("HTTP 502")]})
    r = await rig(chat)
    gate = await r.gate()
    assert await r.drain() == 2  # the web console and A: B is down
    await r.approve(gate)
    assert await r.notifier.edit_queued() == 1  # A; B is not out, and the rounds end
    assert [ch for ch, _, _ in chat.edits] == ["A"] and r.pauses == [1.0, 2.0, 4.0]

    r.clock.advance(60)  # B is back
    assert await r.drain() == 1
    assert await r.notifier.edit_queued() == 1  # queued by its delivery, not a look later
    assert [ch for ch, _, _ in chat.edits] == ["A", "B"]
    assert chat.edits[1] == ("B", f"B-{chat.sent[1][1].outbox_id}", APPROVED)
    assert await r.edited_at(gate) == [r.clock() - 60, r.clock()]


async def test_a_copy_delivered_after_a_restart_is_edited_though_its_gate_was_decided_before(
    rig: Build,
) -> None:
    down = EditingChat(send_failures={"B": [DeliveryError("HTTP 502")]})
    first = await rig(down)
    gate = await first.gate()
    await first.drain()
    await first.approve(gate)  # A's edit is queued, then farmbot stops

    chat = EditingChat()
    second = await rig(chat)
    second.clock.advance(60)
    assert await second.drain() == 1  # B
    assert await second.notifier.edit_queued() == 2
    assert sorted(ch for ch, _, _ in chat.edits) == ["A", "B"]
    assert second.pauses == []  # nothing left to wait for


async def test_a_permanent_edit_failure_is_not_retried_even_after_a_restart(rig: Build) -> None:
    gone = PermanentDeliveryError("message to edit not found")
    first = await rig(EditingChat(edit_failures={"A": [gone]}))
    gate = await first.gate()
    await first.drain()
    await first.approve(gate)
    assert await first.notifier.edit_queued() == 1  # B; A cannot be edited
    stats = first.notifier.statistics()
    assert (stats["edited"], stats["edits_failed"]) == (1, 1)
    assert None not in await first.edited_at(gate)  # both are settled
    assert first.pauses == []  # a lost message is not waited for

    second = await rig()
    assert await second.notifier.edit_queued() == 0
    second.clock.advance(OWED_EVERY)
    assert await second.notifier.edit_queued() == 0
    assert second.chat.tried == []


async def test_an_edit_that_may_succeed_later_is_tried_again_at_the_next_look(
    rig: Build,
) -> None:
    busy: list[BaseException] = [DeliveryError("HTTP 502") for _ in range(4)]
    r = await rig(EditingChat(edit_failures={"A": busy}))
    gate = await r.gate()
    await r.drain()
    await r.approve(gate)
    assert await r.notifier.edit_queued() == 1  # B; A failed each of the four rounds
    assert await r.edited_at(gate) == [None, r.clock()]  # A still owes its edit
    r.clock.advance(OWED_EVERY - 1)
    assert await r.notifier.edit_queued() == 0 and len(r.chat.tried) == 5
    r.clock.advance(1)
    assert await r.notifier.edit_queued() == 1
    assert [ch for ch, _, _ in r.chat.edits] == ["B", "A"]
    assert None not in await r.edited_at(gate)


async def test_two_edits_of_one_alert_at_once_edit_each_copy_once(rig: Build) -> None:
    """The decision's edit and the one a late delivery asks for overlap in ``run()``: the
    second waits for the first, then finds every copy edited."""
    hold = asyncio.Event()
    r = await rig(EditingChat(hold_edits=hold), sleep=asyncio.sleep)
    gate = await r.gate()
    await r.drain()
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(r.notifier.run())
        await r.approve(gate)  # queues the decision's edit: A's is made, and held
        await retry_until(lambda: r.chat.tried, message="the first edit")
        again = gate_edit(GateDecided(gate_id=gate.id, approved=True, by="alice"), r.clock())
        assert again is not None
        r.notifier.queue_edit(again)  # as a copy delivered meanwhile asks
        for _ in range(5):  # the notifier's loop takes it up (a database round trip each)
            await r.storage.outbox.outbox_summary()
        assert len(r.chat.tried) == 1  # not made alongside
        hold.set()
        await retry_until(lambda: len(r.chat.edits) == 2, message="both copies edited")
        r.notifier.close()
    assert sorted(r.chat.tried) == sorted(ref for _, ref, _ in r.chat.edits)  # once each
    assert None not in await r.edited_at(gate)
