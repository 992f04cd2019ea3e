"""The notifier and the durable outbox: retries, backoff, dead letters, folding, restarts,
and the webhook interface against a small aiohttp server on 127.0.0.1.

Time is a FakeClock; nothing here waits for a real backoff.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from farmbot import events as ev
from farmbot.adapters.web import WebInterface
from farmbot.adapters.webhook import WebhookInterface
from farmbot.alerts import Alerts, Notifier
from farmbot.bot import commands as c
from farmbot.bus import EventBus
from farmbot.config.alerts import AlertRoute, AlertsConfig, WebhookConfig
from farmbot.config.schema import UserConfig
from farmbot.errors import DeliveryError, PermanentDeliveryError
from farmbot.messages import Incoming, Interface, OnIncoming, OutboundMessage, Severity
from farmbot.models import OutboxItem, OutboxStatus, Role
from farmbot.storage import Storage
from farmbot.storage.outbox import SqlOutboxStore
from tests.backends import Backend
from tests.farm import farm_for, make_config
from tests.helpers import FakeClock, deps, retry_until

ROUTES = (AlertRoute("chat", "A", Severity.INFO), AlertRoute("chat", "B", Severity.INFO))


@dataclass
class ChatInterface:
    """A test interface: per channel, a script of exceptions to raise before succeeding."""

    name: str = "chat"
    failures: dict[str, list[BaseException]] = field(default_factory=dict)
    hold: dict[str, asyncio.Event] = field(default_factory=dict)  # a channel hangs until set
    sent: list[tuple[str, OutboundMessage]] = field(default_factory=list)
    calls: list[tuple[str, int]] = field(default_factory=list)  # (channel, outbox id)

    async def start(self, on_incoming: OnIncoming) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send(self, channel: str, message: OutboundMessage) -> None:
        self.calls.append((channel, message.outbox_id))
        if channel in self.hold:
            await self.hold[channel].wait()
        script = self.failures.get(channel)
        if script:
            raise script.pop(0)
        self.sent.append((channel, message))

    def titles(self, channel: str) -> list[str]:
        return [m.title for ch, m in self.sent if ch == channel]


@dataclass
class Rig:
    """The alerts component over real storage, fed by a real event bus."""

    storage: Storage
    outbox: SqlOutboxStore
    clock: FakeClock
    chat: ChatInterface
    config: AlertsConfig
    notifier: Notifier
    bus: EventBus
    close: Callable[[], Awaitable[None]]

    async def gate(self, number: int) -> None:
        """An alert: gate ``number`` opened (titled "gate #<n> ...")."""
        await self.bus.publish(
            ev.GateOpened(
                agent_id="builder-1",
                project="farm",
                gate_id=number,
                gate_kind="permission",
                title=f"q{number}",
            )
        )

    async def stuck(self, reason: str = "no output", last: tuple[str, ...] = ()) -> None:
        await self.bus.publish(
            ev.AgentStuck(agent_id="builder-1", project="farm", reason=reason, last_lines=last)
        )

    async def drain(self) -> int:
        """Deliver until nothing more is due now; return how many were delivered."""
        total = 0
        for _ in range(100):
            delivered = await self.notifier.deliver_due()
            if not delivered:
                return total
            total += delivered
        raise AssertionError("the outbox never settled")


Build = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def rig(backend: Backend) -> AsyncIterator[Build]:
    """Make storage + an alerts component + an event bus; closed after the test. Each rig
    opens the test's one database again (on each backend), as a restarted farmbot does."""
    async with AsyncExitStack() as stack:

        async def build(
            config: AlertsConfig | None = None,
            chat: ChatInterface | None = None,
            interfaces: dict[str, Interface] | None = None,
            clock: FakeClock | None = None,
            outbox_type: type[SqlOutboxStore] = SqlOutboxStore,
        ) -> Rig:
            config = config or AlertsConfig(routes=ROUTES)
            chat = chat or ChatInterface()
            clock = clock or FakeClock()
            own = AsyncExitStack()
            storage = await own.enter_async_context(backend.open())
            outbox = outbox_type(storage.db)
            found: dict[str, Interface] = {"chat": chat, "web": ChatInterface("web")}
            found.update(interfaces or {})
            alerts = Alerts(config, outbox, found, clock, rand=lambda: 1.0)
            bus = await own.enter_async_context(
                EventBus(storage.events, clock, rules=alerts.drafts_for)
            )
            bus.subscribe(alerts.on_event)
            stack.push_async_callback(own.aclose)
            return Rig(storage, outbox, clock, chat, config, alerts.notifier, bus, own.aclose)

        yield build


async def test_a_failing_channel_delivers_each_alert_once_in_order(rig: Build) -> None:
    chat = ChatInterface(
        failures={
            "A": [
                DeliveryError("HTTP 502"),
                DeliveryError("timed out"),
                DeliveryError("HTTP 429", retry_after=30),
            ]
        }
    )
    web = WebInterface("127.0.0.1", 0, "k" * 20, status=_no_status)
    r = await rig(chat=chat, interfaces={"web": web})
    for n in (1, 2, 3):
        await r.gate(n)

    # A fails; B and the web console keep flowing.
    assert await r.drain() == 6
    assert chat.titles("B") == [f"gate #{n} waits for a decision: q{n}" for n in (1, 2, 3)]
    assert [m.title for m in web.alerts] == chat.titles("B")
    assert chat.titles("A") == []
    # backoff: base 2 s doubling, jitter factor 1.0 in this test
    r.clock.advance(1.9)
    assert await r.drain() == 0
    r.clock.advance(0.1)
    assert await r.drain() == 0  # second failure: next try in 4 s
    r.clock.advance(4)
    assert await r.drain() == 0  # third: 429 asks for 30 s, more than the 8 s of backoff
    r.clock.advance(29)
    attempts = len(chat.calls)
    assert await r.drain() == 0 and len(chat.calls) == attempts  # retry-after is honoured
    r.clock.advance(1)
    assert await r.drain() == 3
    assert chat.titles("A") == chat.titles("B")  # each once, in order
    assert [ch for ch, _ in chat.calls].count("A") == 6
    stats = {
        "delivered": 9,
        "retried": 3,
        "dead": 0,
        "in_flight": 0,
        "edited": 0,
        "edits_failed": 0,
    }
    assert r.notifier.statistics() == stats
    assert await r.outbox.outbox_summary() == {
        "pending": 0,
        "sending": 0,
        "delivered": 9,
        "dead": 0,
    }
    [first_a] = [m for ch, m in chat.sent if ch == "A"][:1]
    item = await r.outbox.get_outbox(first_a.outbox_id)
    assert item is not None and (item.attempts, item.last_error) == (4, "HTTP 429")


async def test_a_slow_channel_never_blocks_another(rig: Build) -> None:
    chat = ChatInterface(hold={"A": asyncio.Event()})
    r = await rig(chat=chat)
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(r.notifier.run())
        await r.gate(1)
        await retry_until(lambda: len(chat.titles("B")) == 1, message="B gets gate 1")
        await r.gate(2)
        await retry_until(lambda: len(chat.titles("B")) == 2, message="B gets gate 2")
        assert chat.titles("A") == [] and r.notifier.statistics()["in_flight"] == 1
        chat.hold.pop("A").set()
        await retry_until(lambda: len(chat.titles("A")) == 2, message="A catches up")
        r.notifier.close()
    assert chat.titles("A") == chat.titles("B")
    assert await r.outbox.outbox_summary() == {
        "pending": 0,
        "sending": 0,
        "delivered": 6,
        "dead": 0,
    }


async def test_a_permanent_error_is_a_dead_letter_that_can_be_retried(
    rig: Build, caplog: pytest.LogCaptureFixture
) -> None:
    error = PermanentDeliveryError("channel_not_found: invite the bot to #ops")
    chat = ChatInterface(failures={"A": [error]})
    r = await rig(chat=chat)
    await r.gate(1)
    await r.gate(2)
    with caplog.at_level(logging.WARNING, "farmbot.alerts.notifier"):
        await r.drain()
    assert chat.titles("A") == ["gate #2 waits for a decision: q2"]  # the channel moved on
    [dead] = await r.outbox.dead_letters()
    assert (dead.status, dead.attempts, dead.channel) == (OutboxStatus.DEAD, 1, "A")
    assert dead.last_error == "channel_not_found: invite the bot to #ops"
    [record] = caplog.records
    assert "chat:A" in record.getMessage() and "channel_not_found" in record.getMessage()
    assert r.notifier.statistics()["dead"] == 1

    revived = await r.outbox.retry_dead(dead.id, r.clock())
    assert revived is not None
    assert await r.drain() == 1
    assert chat.titles("A") == [
        "gate #2 waits for a decision: q2",
        "gate #1 waits for a decision: q1",
    ]
    assert await r.outbox.dead_letters() == []


async def test_max_attempts_makes_a_dead_letter(rig: Build) -> None:
    chat = ChatInterface(failures={"A": [DeliveryError(f"HTTP 503 #{i}") for i in range(9)]})
    r = await rig(AlertsConfig(routes=ROUTES, max_attempts=3), chat)
    await r.gate(1)
    for _ in range(5):
        await r.drain()
        r.clock.advance(1000)
    [dead] = await r.outbox.dead_letters()
    assert dead.attempts == 3 and dead.last_error == "gave up after 3 attempts: HTTP 503 #2"
    assert [ch for ch, _ in chat.calls].count("A") == 3
    await r.gate(2)
    chat.failures["A"].clear()
    await r.drain()
    assert chat.titles("A") == ["gate #2 waits for a decision: q2"]


async def test_an_unknown_interface_is_a_dead_letter_naming_it(rig: Build) -> None:
    r = await rig(AlertsConfig(routes=(AlertRoute("pager", "ops"),)))
    await r.gate(1)
    await r.drain()
    [dead] = await r.outbox.dead_letters()
    assert dead.interface == "pager" and dead.attempts == 0
    assert dead.last_error == "no interface named 'pager' is running (running: chat, web)"


async def test_an_unexpected_error_is_logged_and_retried(
    rig: Build, caplog: pytest.LogCaptureFixture
) -> None:
    chat = ChatInterface(failures={"A": [KeyError("bug in the adapter")]})
    r = await rig(chat=chat)
    await r.gate(1)
    with caplog.at_level(logging.WARNING, "farmbot.alerts.notifier"):
        await r.drain()
    [record] = caplog.records
    assert record.exc_info is not None and "chat:A" in record.getMessage()
    r.clock.advance(2)
    assert await r.drain() == 1
    assert chat.titles("A") == ["gate #1 waits for a decision: q1"]


# -- folding repeats ----------------------------------------------------------------------


async def test_repeats_fold_into_a_pending_message(rig: Build) -> None:
    r = await rig(AlertsConfig(routes=(AlertRoute("chat", "A"),)))
    for _ in range(4):
        await r.stuck()
        r.clock.advance(30)
    alerts = await r.outbox.recent_alerts()
    assert len(alerts) == 4  # every alert is on record ...
    [item, console] = sorted(await r.outbox.due_outbox(r.clock()), key=lambda i: i.interface)
    assert (item.count, item.alert.id) == (4, alerts[0].id)  # ... in one message, the newest
    assert console.count == 4
    await r.drain()
    [(_, message)] = r.chat.sent
    assert message.count == 4
    assert message.text.endswith("(repeated 4× in the last 2 min)")


async def test_a_repeat_after_delivery_waits_out_the_window(rig: Build) -> None:
    r = await rig(AlertsConfig(routes=(AlertRoute("chat", "A"),), dedupe_window=300))
    t0 = r.clock()
    await r.stuck()
    await r.drain()
    for _ in range(2):
        r.clock.advance(10)
        await r.stuck()
    assert await r.drain() == 0  # the summary waits for the window ...
    r.clock.advance(10)
    await r.stuck("something else")
    await r.drain()  # ... without holding back other alerts
    assert [m.count for _, m in r.chat.sent] == [1, 1]
    assert "something else" in r.chat.sent[-1][1].text
    r.clock.now = t0 + 299
    assert await r.drain() == 0
    r.clock.now = t0 + 300
    assert await r.drain() == 2  # chat and console
    summary = r.chat.sent[-1][1]
    assert summary.count == 2 and "(repeated 2×" in summary.text

    # A steady repeat is sent once per window, not more.
    for _ in range(60):
        r.clock.advance(10)
        await r.stuck()
        await r.drain()
    sent_at = [m.count for _, m in r.chat.sent if "no output" in m.text]
    assert sent_at == [1, 2, 30, 30]  # at t0, t0+300, t0+600 and t0+900


class RepeatAfterDueStore(SqlOutboxStore):
    """The real outbox, running ``after_due`` once right after the notifier reads what is due."""

    after_due: Callable[[], Awaitable[None]] | None = None

    async def due_outbox(self, now: float, limit: int = 100) -> list[OutboxItem]:
        found = await super().due_outbox(now, limit)
        hook, self.after_due = self.after_due, None
        if hook is not None:
            await hook()
        return found


async def test_a_repeat_folded_after_the_due_read_is_what_gets_sent(rig: Build) -> None:
    r = await rig(AlertsConfig(routes=(AlertRoute("chat", "A"),)), outbox_type=RepeatAfterDueStore)
    assert isinstance(r.outbox, RepeatAfterDueStore)

    async def stuck(output: str) -> None:  # one dedupe key; the output shown differs
        await r.stuck("", (output,))

    await stuck("first")
    r.clock.advance(30)
    # Folds into the pending message after the notifier read it, before it is claimed.
    r.outbox.after_due = lambda: stuck("second")
    assert await r.drain() == 2  # chat and console, once each
    [(_, message)] = r.chat.sent
    assert (message.pre, message.count) == ("second", 2)
    assert message.text.endswith("(repeated 2× in the last 1 min)")
    delivered = await r.outbox.get_outbox(message.outbox_id)
    assert delivered is not None and delivered.status is OutboxStatus.DELIVERED
    assert (delivered.count, delivered.alert.id) == (2, message.alert_id)


# -- restarts -----------------------------------------------------------------------------


async def test_a_restart_delivers_what_was_pending_and_resends_a_crashed_send(
    rig: Build,
) -> None:
    first = await rig(AlertsConfig(routes=(AlertRoute("chat", "A"),)))
    for n in (1, 2, 3):
        await first.gate(n)
    [head] = [i for i in await first.outbox.due_outbox(first.clock()) if i.channel == "A"]
    assert await first.outbox.mark_sending(head.id) is not None  # then farmbot died
    await first.close()

    chat = ChatInterface()
    second = await rig(AlertsConfig(routes=(AlertRoute("chat", "A"),)), chat)
    await second.drain()
    assert chat.titles("A") == [f"gate #{n} waits for a decision: q{n}" for n in (1, 2, 3)]
    await second.close()

    third = await rig(AlertsConfig(routes=(AlertRoute("chat", "A"),)), ChatInterface())
    assert await third.drain() == 0  # delivered is delivered, across restarts
    assert third.chat.sent == []


# -- /alerts and /retry -------------------------------------------------------------------


async def test_alerts_and_retry_commands(tmp_path: Path, tmux_socket: str) -> None:
    chat = ChatInterface(failures={"A": [PermanentDeliveryError("channel_not_found")]})
    users = (
        UserConfig("vera", Role.VIEWER, ids={"telegram": 1}),
        UserConfig("ada", Role.ADMIN, ids={"telegram": 2}),
    )
    config = dataclasses.replace(
        make_config(tmp_path, tmux_socket, users=users),
        alerts=AlertsConfig(routes=(AlertRoute("chat", "A"),)),
    )
    async with farm_for(config, tmp_path, interfaces=[chat]) as farm:
        notifier = farm.graph.alerts.notifier
        gate = await farm.gates.open("permission", "q1", agent_id="builder-1", project="proj")
        await notifier.deliver_due()
        [dead] = await farm.storage.outbox.dead_letters()
        router = farm.router

        shown = await router.handle(Incoming("telegram", "1", "c", "/alerts"))
        assert shown.ok, shown.text
        assert "1 dead" in shown.text and f"gate #{gate.id} waits for a decision: q1" in shown.text
        assert f"#{dead.id} to chat:A" in shown.text and "channel_not_found" in shown.text
        assert [b.command for row in shown.buttons for b in row] == [f"/retry {dead.id}"]

        refused = await router.handle(Incoming("telegram", "1", "c", f"/retry {dead.id}"))
        assert not refused.ok and "needs admin" in refused.text
        done = await router.handle(Incoming("telegram", "2", "c", f"/retry {dead.id}"))
        assert done.ok and "goes to chat:A again" in done.text, done.text
        again = await router.handle(Incoming("telegram", "2", "c", f"/retry {dead.id}"))
        assert not again.ok and again.text == f"{dead.id} is not a dead letter: it is pending"
        missing = await router.handle(Incoming("telegram", "2", "c", "/retry 999"))
        assert not missing.ok and "no dead letter 999" in missing.text
        await notifier.deliver_due()
        assert chat.titles("A") == [f"gate #{gate.id} waits for a decision: q1"]
    assert c.parse("/retry 5") == c.Retry(5) and c.parse("/alerts") == c.Alerts()


# -- the webhook interface ----------------------------------------------------------------


@dataclass
class FakeHook:
    """A webhook receiver answering a script of statuses, then 200."""

    statuses: list[int]
    bodies: list[Any] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    delay: float = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        self.headers.append(dict(request.headers))
        if self.delay:
            await asyncio.sleep(self.delay)
        status = self.statuses.pop(0) if self.statuses else 200
        headers = {"Retry-After": "2"} if status == 429 else {}
        return web.Response(status=status, text="nope" if status >= 400 else "ok", headers=headers)


@pytest.fixture
async def hook_server() -> AsyncIterator[Callable[[FakeHook], Awaitable[str]]]:
    runners: list[web.AppRunner] = []

    async def serve(hook: FakeHook) -> str:
        app = web.Application()
        app.router.add_post("/hook", hook.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{runner.addresses[0][1]}/hook"

    yield serve
    for runner in runners:
        await runner.cleanup()


async def test_webhook_retries_429_and_500_then_delivers_once(
    rig: Build, hook_server: Callable[[FakeHook], Awaitable[str]]
) -> None:
    hook = FakeHook([429, 500])
    url = await hook_server(hook)
    config = WebhookConfig("ops", url, {"Authorization": "Bearer s3cret"})
    clock = FakeClock()
    interface = WebhookInterface(config, deps(clock))
    try:
        r = await rig(
            AlertsConfig(routes=(AlertRoute("ops", "default"),)),
            interfaces={"ops": interface},
            clock=clock,
        )
        await r.stuck("no output", ("a", "b"))
        await r.drain()
        assert len(hook.bodies) == 1  # 429, Retry-After: 2 (backoff alone would be 2 s too)
        clock.advance(1.9)
        await r.drain()
        assert len(hook.bodies) == 1
        clock.advance(0.1)
        await r.drain()
        assert len(hook.bodies) == 2  # 500
        clock.advance(4)
        assert await r.drain() == 1
        assert len(hook.bodies) == 3
        clock.advance(1000)
        assert await r.drain() == 0 and len(hook.bodies) == 3  # delivered once
    finally:
        await interface.stop()
    [alert] = await r.outbox.recent_alerts()
    assert hook.bodies[-1] == {
        "title": "builder-1 is stuck",
        "text": "builder-1 in project farm looks stuck: no output",
        "severity": "warning",
        "agent": "builder-1",
        "project": "farm",
        "pre": "a\nb",
        "buttons": [
            {"label": "Tail", "command": "/tail builder-1"},
            {"label": "Kill", "command": "/kill builder-1"},
        ],
        "count": 1,
        "alert_id": alert.id,
    }
    assert hook.headers[-1]["Authorization"] == "Bearer s3cret"
    assert "s3cret" not in repr(interface) and url not in repr(interface)


async def test_webhook_errors_are_classified(
    hook_server: Callable[[FakeHook], Awaitable[str]],
) -> None:
    hook = FakeHook([404, 503], delay=0.0)
    url = await hook_server(hook)
    interface = WebhookInterface(WebhookConfig("ops", url, timeout=0.5), deps())
    slow = FakeHook([], delay=0.6)
    slow_url = await hook_server(slow)
    slow_interface = WebhookInterface(WebhookConfig("slow", slow_url, timeout=0.2), deps())
    closed = WebhookInterface(WebhookConfig("closed", "http://127.0.0.1:1/hook"), deps())
    message = OutboundMessage(1, 1, Severity.INFO, "t", "x", None, (), None, None)
    try:
        with pytest.raises(PermanentDeliveryError, match=r"webhook ops \(127.0.0.1\): HTTP 404"):
            await interface.send("default", message)
        with pytest.raises(DeliveryError, match="HTTP 503") as caught:
            await interface.send("default", message)
        assert not isinstance(caught.value, PermanentDeliveryError)
        with pytest.raises(DeliveryError, match="timed out"):
            await slow_interface.send("default", message)
        with pytest.raises(DeliveryError, match="webhook closed") as caught:
            await closed.send("default", message)
        assert str(caught.value) == "webhook closed (127.0.0.1): ClientConnectorError"
    finally:
        for i in (interface, slow_interface, closed):
            await i.stop()


async def test_a_webhook_url_aiohttp_refuses_is_permanent_and_never_shown() -> None:
    url = "http://127.0.0.1:99999/x?token=SECRET123"  # no such port
    interface = WebhookInterface(WebhookConfig("ops", url), deps())
    message = OutboundMessage(1, 1, Severity.INFO, "t", "x", None, (), None, None)
    try:
        with pytest.raises(PermanentDeliveryError) as caught:
            await interface.send("default", message)
    finally:
        await interface.stop()
    assert str(caught.value).startswith("webhook ops (127.0.0.1): InvalidUrlClientError")
    assert "SECRET123" not in str(caught.value) and "99999" not in str(caught.value)
    assert interface.failed == 1


async def _no_status() -> dict[str, Any]:
    return {}
