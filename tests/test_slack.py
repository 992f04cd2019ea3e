"""The Slack interface against a fake Slack on 127.0.0.1, driven by the real slack-bolt and
slack-sdk, with the real farmbot stack (router, supervisor, demo agents in real tmux,
SQLite, the notifier and its outbox).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from farmbot import events as ev
from farmbot.adapters.shared import InterfaceDeps
from farmbot.adapters.slack import EVENTS_PATH, SlackInterface
from farmbot.adapters.slack_render import (
    MAX_BLOCKS,
    SECTION_CHARS,
    command_text,
    escape,
    reply_message,
)
from farmbot.adapters.web import WebInterface
from farmbot.alerts import Alerts, Notifier
from farmbot.bot.router import Router
from farmbot.bus import EventBus
from farmbot.config import reader as tk
from farmbot.config.alerts import AlertRoute, AlertsConfig
from farmbot.config.schema import Config, UserConfig
from farmbot.config.slack import SlackConfig, parse_slack, slack_routes
from farmbot.errors import ConfigError, DeliveryError, PermanentDeliveryError, StorageError
from farmbot.messages import Button, Incoming, Interface, OutboundMessage, Reply, Severity
from farmbot.models import AgentKind, AgentState, Decision, GateStatus, Role
from farmbot.storage import Storage, open_sqlite
from tests.fakes.slack_api import (
    FakeSlack,
    Message,
    app_mention_payload,
    block_actions_payload,
    interactive_body,
    sign_request,
    slash_command_body,
)
from tests.farm import Farm, farm_for, make_config, received_prompts
from tests.helpers import FakeClock, retry_until

JSON = dict[str, Any]
ADMIN, OPERATOR, VIEWER, STRANGER = "UALICE", "UOLGA", "UVERA", "USTRANGER"
USERS = (
    UserConfig("alice", Role.ADMIN, ids={"slack": ADMIN}),
    UserConfig("olga", Role.OPERATOR, ids={"slack": OPERATOR}),
    UserConfig("vera", Role.VIEWER, ids={"slack": VIEWER}),
)
BOT_TOKEN = "xoxb-1111-2222-bottokensecret"
APP_TOKEN = "xapp-1-A1-3333-apptokensecret"
SIGNING_SECRET = "signingsecret0123456789abcdef"


def slack_config(fake: FakeSlack, **changes: Any) -> SlackConfig:
    config = SlackConfig(
        bot_token=BOT_TOKEN,
        app_token=APP_TOKEN,
        signing_secret=SIGNING_SECRET,
        api_url=fake.api_url,
        alert_channels=("C1",),
        alert_min_severity=Severity.INFO,
    )
    return replace(config, **changes)


async def _no_status() -> dict[str, Any]:
    return {}


def deps_of(storage: Storage) -> InterfaceDeps:
    return InterfaceDeps(storage.actions, storage.threads)


def console() -> WebInterface:
    """The web console: every alert is routed there too."""
    return WebInterface("127.0.0.1", 0, "k" * 32, status=_no_status)


def blocks_text(message: Message | JSON) -> str:
    """Every mrkdwn/plain text of a message's blocks, joined by newlines."""
    blocks = message.blocks if isinstance(message, Message) else message.get("blocks", [])
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str) and node.get("type") != "button":
                out.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(blocks)
    return "\n".join(out)


def button(message: Message, label: str) -> JSON:
    for block in message.blocks:
        for element in block.get("elements", []):
            if element.get("type") == "button" and element["text"]["text"] == label:
                return dict(element)
    raise AssertionError(f"no button {label!r} in {message.blocks}")


# -- the stack ------------------------------------------------------------------------


@dataclass
class Stack:
    fake: FakeSlack
    farm: Farm
    router: Router
    notifier: Notifier
    slack: SlackInterface
    hold: asyncio.Event | None = None  # set: commands wait for it before they run
    answer: Callable[[Incoming], Awaitable[Reply]] | None = None  # instead of the router

    async def on_incoming(self, msg: Incoming) -> Reply:
        if self.hold is not None:
            await self.hold.wait()
        return await (self.answer or self.router.handle)(msg)

    async def command(self, user: str, text: str, channel: str = "C1") -> str:
        """Run ``/farm <text>``; return the envelope id once it is acked."""
        envelope = await self.fake.push_slash_command(user, text, channel_id=channel)
        assert await self.fake.wait_for_ack(envelope) is None
        return envelope

    async def reply(self, needle: str, timeout: float = 10) -> Message:
        """The bot's message whose blocks contain ``needle``."""

        def find() -> Message | None:
            return next((m for m in self.fake.messages() if needle in blocks_text(m)), None)

        return await retry_until(find, timeout=timeout, message=f"a message with {needle!r}")

    async def ephemeral(self, user: str, needle: str) -> Message:
        def find() -> Message | None:
            found = [m for m in self.fake.ephemerals if m.visible_to == user]
            return next((m for m in found if needle in m.text + blocks_text(m)), None)

        return await retry_until(find, message=f"an ephemeral to {user} with {needle!r}")


@asynccontextmanager
async def stack_for(
    config: Config, fake: FakeSlack, tmp_path: Path, slack_cfg: SlackConfig
) -> AsyncIterator[Stack]:
    """The daemon's graph with a Slack interface, started (its reconnect checks quick)."""
    config = replace(config, alerts=AlertsConfig(routes=slack_routes(slack_cfg)))
    made = lambda deps: SlackInterface(slack_cfg, deps, ping_interval=0.5)  # noqa: E731
    async with farm_for(config, tmp_path, interfaces=[made]) as farm:
        slack = farm.graph.interfaces["slack"]
        assert isinstance(slack, SlackInterface)
        stack = Stack(fake, farm, farm.router, farm.graph.alerts.notifier, slack)
        await slack.start(stack.on_incoming)
        try:
            yield stack
        finally:
            await slack.stop()


@pytest.fixture
async def stack(tmp_path: Path, tmux_socket: str) -> AsyncIterator[Stack]:
    config = make_config(tmp_path, tmux_socket, users=USERS)
    async with FakeSlack(bot_token=BOT_TOKEN, app_token=APP_TOKEN) as fake:
        async with stack_for(config, fake, tmp_path, slack_config(fake)) as s:
            await fake.wait_for_connections(1)
            await retry_until(lambda: s.slack.problem is None, message="Slack to be ready")
            yield s


async def architect(s: Stack) -> None:
    await s.farm.supervisor.spawn(AgentKind.ARCHITECT, None, None, "alice")
    await s.farm.until_idle("architect")


# -- commands -------------------------------------------------------------------------


async def test_a_slash_command_spawns_a_real_agent_and_replies(stack: Stack) -> None:
    await stack.command(OPERATOR, "spawn builder 42")

    message = await stack.reply("spawned builder-42")
    assert message.channel == "C1" and message.thread_ts is None
    assert "<@UOLGA> ran `/farm spawn builder 42`" in blocks_text(message)
    assert message.text.startswith("spawned builder-42 (demo) in project proj")
    await stack.farm.until_idle("builder-42")
    assert "demo>" in await stack.farm.screen("builder-42")
    tail = button(message, "Tail")
    assert tail["value"] == "/tail builder-42" and tail["action_id"].startswith("farmbot_")

    # A button is a command too: its reply goes into the message's thread.
    await stack.fake.push_block_action(
        OPERATOR, channel="C1", message_ts=message.ts, action_id=tail["action_id"]
    )
    shown = await stack.reply("builder-42 (idle for")
    assert shown.thread_ts == message.ts
    assert "```\n" in blocks_text(shown) and "demo&gt;" in blocks_text(shown)
    [audit, *_] = await stack.farm.storage.audit.recent_audit()
    assert (audit.user_name, audit.command, audit.outcome) == ("olga", "/tail builder-42", "ok")


async def test_the_command_is_acked_before_it_runs(stack: Stack) -> None:
    stack.hold = asyncio.Event()
    started = time.monotonic()
    await stack.command(OPERATOR, "status")  # acked while the command is held back
    assert time.monotonic() - started < 3
    assert not [m for m, _ in stack.fake.calls if m == "chat.postMessage"]
    stack.hold.set()
    await stack.reply("pending gates: 0")


async def test_a_mention_in_a_channel_replies_in_its_thread(stack: Stack) -> None:
    await stack.fake.push_mention(OPERATOR, "status", thread_ts="1700000000.000100")
    reply = await stack.reply("agents: none running")
    assert reply.thread_ts == "1700000000.000100"

    await stack.fake.push_mention(OPERATOR, "<@UBOT> spawn shell")
    spawned = await stack.reply("spawned shell-1")
    assert spawned.thread_ts is not None  # under the mention itself
    [audit, *_] = await stack.farm.storage.audit.recent_audit()
    assert (audit.command, audit.chat, audit.outcome) == ("/spawn shell", "C1", "ok")


async def test_a_mention_with_more_lines_queues_a_task_with_that_body(stack: Stack) -> None:
    # As Slack sends it: the mention first, entities for & < >, links wrapped in <...>.
    text = (
        "<@UBOT> task add proj Fix the login --priority high\n"
        "It fails on Safari &amp; Firefox: the &lt;input&gt; loses focus.\n"
        "\n"
        "  See <https://example.com/bug/7>"
    )
    await stack.fake.push_mention(OPERATOR, text)
    reply = await stack.reply("queued task 1 [proj] (high): Fix the login")
    assert reply.thread_ts is not None
    [task] = await stack.farm.storage.tasks.list_tasks("proj")
    assert task.body == (
        "It fails on Safari & Firefox: the <input> loses focus.\n\n  See https://example.com/bug/7"
    )
    assert task.created_by == "olga"


async def test_a_stranger_is_refused_privately_and_audited(stack: Stack) -> None:
    await stack.command(STRANGER, "spawn builder 7")

    refusal = await stack.ephemeral(STRANGER, "not on this farmbot's allowlist")
    assert 'slack = "USTRANGER"' in refusal.text
    [audit] = await stack.farm.storage.audit.recent_audit()
    assert (audit.platform, audit.user_id, audit.user_name) == ("slack", STRANGER, None)
    assert (audit.command, audit.outcome) == ("/spawn builder 7", "denied")
    assert await stack.farm.supervisor.list_agents() == []
    assert stack.fake.messages() == []


async def test_agent_output_is_escaped_for_mrkdwn(stack: Stack, tmp_path: Path) -> None:
    await architect(stack)
    # Slack sends what people type with &, < and > as entities.
    await stack.command(OPERATOR, "send architect a &lt; b &amp;&amp; c &gt; d")
    await stack.reply("sent to architect")
    assert received_prompts(tmp_path)[-1] == "a < b && c > d"
    await stack.farm.until_idle("architect")

    await stack.command(OPERATOR, "tail architect")
    tail = await stack.reply("architect (idle for")
    text = blocks_text(tail)
    assert "received: a &lt; b &amp;&amp; c &gt; d" in text
    assert "a < b" not in text and "c > d" not in text
    assert "ran `/farm send architect a &lt; b &amp;&amp; c &gt; d`" in blocks_text(
        await stack.reply("sent to architect")
    )


async def test_slash_command_text_is_decoded_once(stack: Stack) -> None:
    seen: list[Incoming] = []

    async def handle(msg: Incoming) -> Reply:
        seen.append(msg)
        return Reply("taken")

    stack.answer = handle
    # Typed literally, "&lt;b&gt;" reaches farmbot as "&amp;lt;b&amp;gt;".
    await stack.command(OPERATOR, "send architect &amp;lt;b&amp;gt; &lt;i&gt;")
    reply = await stack.reply("taken")
    assert [m.text for m in seen] == ["/send architect &lt;b&gt; <i>"]
    assert "ran `/farm send architect &amp;lt;b&amp;gt; &lt;i&gt;`" in blocks_text(reply)


async def test_gate_buttons_admin_approves_and_a_viewer_is_refused(stack: Stack) -> None:
    await architect(stack)
    await stack.farm.supervisor.send("architect", "run make deploy", "alice")
    await stack.farm.until_state("architect", AgentState.WAITING)
    [gate] = await stack.farm.gates.pending()
    assert await stack.notifier.deliver_due() == 2  # Slack and the console
    alert = await stack.reply("waits for a decision")
    assert alert.text == escape(f"[warning] gate #{gate.id} waits for a decision: {gate.title}")
    approve = button(alert, "Approve")
    assert approve["value"] == f"/approve {gate.id}" and approve["style"] == "primary"

    await stack.fake.push_block_action(
        VIEWER, channel="C1", message_ts=alert.ts, action_id=approve["action_id"]
    )
    refusal = await stack.ephemeral(VIEWER, "vera is a viewer; /approve needs admin")
    assert refusal.thread_ts == alert.ts
    assert not alert.edited and button(alert, "Approve")  # the message is unchanged
    assert (await stack.farm.gates.get(gate.id)).status is GateStatus.PENDING

    await stack.fake.push_block_action(
        ADMIN, channel="C1", message_ts=alert.ts, action_id=approve["action_id"]
    )
    await retry_until(lambda: alert.edited, message="the alert to show the decision")
    assert all(b["type"] != "actions" for b in alert.blocks)
    decision = alert.blocks[-1]["elements"][0]["text"]
    assert decision.startswith(f"✅ gate {gate.id} approved by alice at ")
    assert " UTC" in decision and "waits for a decision" in blocks_text(alert)  # content kept
    decided = await stack.farm.gates.get(gate.id)
    assert (decided.status, decided.decided_by) == (GateStatus.APPROVED, "alice")
    await stack.farm.until_screen("architect", "✓ approved: make deploy")


async def open_question(s: Stack, user: str, alert: Message) -> JSON:
    """Press the alert's Reject as ``user``; the modal it opens (as views.open answered)."""
    reject = button(alert, "Reject")
    assert reject["value"].startswith("a:")  # it asks, so its question is stored with it
    opened = len(s.fake.views)
    await s.fake.push_block_action(
        user, channel="C1", message_ts=alert.ts, action_id=reject["action_id"]
    )
    await retry_until(lambda: len(s.fake.views) > opened, message="the modal to open")
    return list(s.fake.views.values())[-1]


async def test_reject_opens_a_modal_and_its_answer_is_the_reason(stack: Stack) -> None:
    gate = await stack.farm.gates.open("manual", "deploy", project="proj")
    await stack.notifier.deliver_due()
    alert = await stack.reply("waits for a decision")
    view = await open_question(stack, ADMIN, alert)
    assert view["title"]["text"] == view["submit"]["text"] == "Reject"
    [field] = view["blocks"]
    assert field["label"]["text"] == "Why? (optional; sent to the agent)"
    assert field["optional"] is True and field["element"]["multiline"] is True
    assert "/reject 1" in field["hint"]["text"]

    # Someone else submitting alice's modal (a forged request) is refused and audited.
    await stack.fake.push_view_submission(VIEWER, view["id"], {"answer": {"answer": "ok"}})
    refusal = await stack.ephemeral(VIEWER, "that question was put to alice")
    assert refusal.thread_ts == alert.ts
    assert (await stack.farm.gates.get(gate.id)).status is GateStatus.PENDING
    [audit, *_] = await stack.farm.storage.audit.recent_audit()
    assert (audit.user_name, audit.command, audit.outcome) == ("vera", "/reject 1 ok", "denied")

    view = await open_question(stack, ADMIN, alert)
    reason = "the migration is not reversible;\nsplit it in two"
    await stack.fake.push_view_submission(ADMIN, view["id"], {"answer": {"answer": reason}})
    decided = await stack.reply("rejected by alice")
    assert decided.thread_ts == alert.ts
    assert "<@UALICE> pressed Reject" in blocks_text(decided)
    gate = await stack.farm.gates.get(gate.id)
    assert (gate.status, gate.reason, gate.decided_by) == (GateStatus.REJECTED, reason, "alice")
    [audit, *_] = await stack.farm.storage.audit.recent_audit()
    assert (audit.command, audit.outcome, audit.detail) == (f"/reject 1 {reason}", "ok", "button; ")
    await stack.notifier.edit_queued()  # the alert loses its buttons, says who decided
    assert alert.edited and all(b["type"] != "actions" for b in alert.blocks)


async def test_a_modal_submitted_empty_rejects_without_a_reason(stack: Stack) -> None:
    gate = await stack.farm.gates.open("manual", "deploy", project="proj")
    await stack.notifier.deliver_due()
    alert = await stack.reply("waits for a decision")
    view = await open_question(stack, ADMIN, alert)
    await stack.fake.push_view_submission(ADMIN, view["id"], {"answer": {"answer": None}})
    await stack.reply("rejected by alice")
    gate = await stack.farm.gates.get(gate.id)
    assert (gate.status, gate.reason) == (GateStatus.REJECTED, "")


async def test_long_output_is_threaded_never_cut(stack: Stack) -> None:
    pre = "\n".join(f"{i:04d} <&> " + "x" * 80 for i in range(300))  # 30 KB escaped
    stack.answer = _replying(Reply("here is a long one", pre=pre))
    await stack.command(OPERATOR, "tail architect 300")
    first = await stack.reply("here is a long one")
    [more] = re.findall(r"continued in the thread \((\d+) more messages\)", blocks_text(first))
    assert int(more) >= 2

    def replies() -> list[Message]:
        return [m for m in stack.fake.messages() if m.thread_ts == first.ts]

    await retry_until(lambda: len(replies()) == int(more), message="the thread replies")
    for message in [first, *replies()]:
        assert len(message.blocks) <= MAX_BLOCKS
    assert _code_of([first, *replies()]) == pre  # every character, in order

    huge = "\n".join(f"{i:05d} output line" for i in range(5000))
    stack.answer = _replying(Reply("a huge one", pre=huge))
    await stack.command(OPERATOR, "tail architect 2000")
    message = await stack.reply("a huge one")
    assert "the whole output is in the file in the thread" in blocks_text(message)
    [file] = await retry_until(lambda: stack.fake.files, message="the file snippet")
    assert file.content == huge.encode() and (file.channel, file.thread_ts) == ("C1", message.ts)


def _replying(reply: Reply) -> Callable[[Incoming], Awaitable[Reply]]:
    async def handle(msg: Incoming) -> Reply:
        return reply

    return handle


def _code_of(messages: list[Message]) -> str:
    """The output shown in ``` blocks across messages, unescaped."""
    chunks = []
    for message in messages:
        for block in message.blocks:
            text = block.get("text", {}).get("text", "") if block["type"] == "section" else ""
            if text.startswith("```\n"):
                body = text[4:-4]
                chunks.append(body.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
    return "\n".join(chunks)


async def test_a_disconnect_and_an_outage_are_survived(stack: Stack) -> None:
    await stack.fake.disconnect()
    await stack.fake.wait_for_connections(2)
    await stack.command(OPERATOR, "status")
    await stack.reply("pending gates: 0")

    await stack.fake.go_down()
    await retry_until(lambda: stack.slack.problem, message="the lost connection to show")
    assert "Socket Mode is not connected" in str(stack.slack.problem)
    await asyncio.sleep(0.6)
    await stack.fake.come_up()
    await stack.fake.wait_for_connections(3, timeout=8)
    await retry_until(lambda: stack.slack.problem is None, message="the problem to clear")
    await stack.command(VIEWER, "agents")
    await stack.reply("no agents yet")


# -- HTTP mode --------------------------------------------------------------------------


@pytest.fixture
async def http(tmp_path: Path, tmux_socket: str) -> AsyncIterator[tuple[Stack, str]]:
    config = make_config(tmp_path, tmux_socket, users=USERS)
    async with FakeSlack(bot_token=BOT_TOKEN, app_token=APP_TOKEN) as fake:
        cfg = slack_config(fake, mode="http", app_token=None)
        async with stack_for(config, fake, tmp_path, cfg) as s:
            assert s.slack.routes()[0][:2] == ("POST", EVENTS_PATH)
            web = s.farm.graph.web  # the builder gave it the Slack routes
            await web.start(s.router.handle)
            try:
                yield s, f"http://127.0.0.1:{web.port}"
            finally:
                await web.stop()


async def _post(url: str, body: bytes, headers: dict[str, str], kind: str) -> tuple[int, str]:
    content = {"form": "application/x-www-form-urlencoded", "json": "application/json"}[kind]
    async with aiohttp.ClientSession() as http:
        async with http.post(
            url + EVENTS_PATH, data=body, headers={**headers, "Content-Type": content}
        ) as r:
            return r.status, await r.text()


async def test_http_mode_serves_a_signed_request_once_and_refuses_its_replays(
    http: tuple[Stack, str],
) -> None:
    s, url = http
    body = slash_command_body(OPERATOR, "status", response_url=s.fake.base_url + "response/x")
    signed = sign_request(body, SIGNING_SECRET)
    assert await _post(url, body, signed, "form") == (200, "")
    await s.reply("pending gates: 0")
    for _ in range(2):  # the same signed request again, well within Slack's 5 minutes
        status, text = await _post(url, body, signed, "form")
        assert status == 401 and "a replay of a request already served" in text
    # Signed before this farmbot started: an earlier run may have served it.
    early = sign_request(body, SIGNING_SECRET, timestamp=int(time.time()) - 60)
    status, text = await _post(url, body, early, "form")
    assert status == 401 and "signed before farmbot started" in text
    await asyncio.sleep(0.2)
    assert s.router.handled == 1 and len(await s.farm.storage.audit.recent_audit()) == 1
    assert len(s.fake.messages()) == 1  # one reply: the command ran once


async def test_http_mode_serves_signed_requests_and_refuses_forged_ones(
    http: tuple[Stack, str],
) -> None:
    s, url = http
    body = slash_command_body(OPERATOR, "status", response_url=s.fake.base_url + "response/x")
    forged = [
        sign_request(body, "not-the-secret"),
        sign_request(body, SIGNING_SECRET, timestamp=int(time.time()) - 301),
        {},
        {"X-Slack-Request-Timestamp": str(int(time.time()))},
    ]
    for headers in forged:
        assert (await _post(url, body, headers, "form"))[0] == 401
    await asyncio.sleep(0.2)
    assert await s.farm.storage.audit.recent_audit() == [] and s.router.handled == 0
    assert s.fake.messages() == []

    status, text = await _post(url, body, sign_request(body, SIGNING_SECRET), "form")
    assert (status, text) == (200, "")
    reply = await s.reply("pending gates: 0")
    assert "<@UOLGA> ran `/farm status`" in blocks_text(reply)

    # interactivity: a signed button press runs as the presser
    press = {"action_id": "farmbot_0", "block_id": "farmbot_row_0", "value": "/agents"}
    payload = block_actions_payload(
        VIEWER, channel="C1", message=reply.to_slack(), action={**press, "type": "button"}
    )
    body = interactive_body(payload)
    assert (await _post(url, body, sign_request(body, "forged"), "form"))[0] == 401
    assert (await _post(url, body, sign_request(body, SIGNING_SECRET), "form"))[0] == 200
    listed = await s.reply("no agents yet")
    assert listed.thread_ts == reply.ts

    # events: a mention
    event = json.dumps(app_mention_payload(OPERATOR, "projects", ts="1700000001.000200"))
    status, _ = await _post(
        url, event.encode(), sign_request(event.encode(), SIGNING_SECRET), "json"
    )
    assert status == 200
    projects = await s.reply("proj: active")
    assert projects.thread_ts == "1700000001.000200"
    outcomes = [(a.user_name, a.command) for a in await s.farm.storage.audit.recent_audit()]
    assert outcomes == [("olga", "/projects"), ("vera", "/agents"), ("olga", "/status")]


# -- alerts -----------------------------------------------------------------------------


@dataclass
class Outbox:
    fake: FakeSlack
    storage: Storage
    clock: FakeClock
    bus: EventBus
    notifier: Notifier
    interfaces: dict[str, Interface]

    def deps(self) -> InterfaceDeps:
        return InterfaceDeps(self.storage.actions, self.storage.threads, clock=self.clock)

    async def drain(self) -> int:
        total = 0
        while delivered := await self.notifier.deliver_due():
            total += delivered
        return total

    async def gate(self, number: int, agent: str = "builder-1") -> None:
        await self.bus.publish(
            ev.GateOpened(
                agent_id=agent, project="farm", gate_id=number, gate_kind="permission",
                title=f"q{number}",
            )
        )  # fmt: skip

    async def stuck(self, agent: str = "builder-1") -> None:
        await self.bus.publish(ev.AgentStuck(agent_id=agent, project="farm", reason="no output"))


@asynccontextmanager
async def outbox_for(
    tmp_path: Path, fake: FakeSlack, cfg: SlackConfig, routes: tuple[AlertRoute, ...]
) -> AsyncIterator[Outbox]:
    """The alerts component with a Slack interface that only sends (never started)."""
    async with open_sqlite(tmp_path / "farmbot.db") as storage:
        clock = FakeClock()
        interfaces: dict[str, Interface] = {"web": console()}
        alerts = Alerts(
            AlertsConfig(routes=routes), storage.outbox, interfaces, clock, rand=lambda: 1.0
        )
        async with EventBus(storage.events, clock, rules=alerts.drafts_for) as bus:
            bus.subscribe(alerts.on_event)
            o = Outbox(fake, storage, clock, bus, alerts.notifier, interfaces)
            interfaces["slack"] = SlackInterface(cfg, o.deps())
            yield o


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(bot_token=BOT_TOKEN, app_token=APP_TOKEN) as slack:
        yield slack


async def test_429_500_and_an_outage_deliver_each_alert_once_in_order(
    tmp_path: Path, fake: FakeSlack
) -> None:
    cfg = slack_config(fake)
    async with outbox_for(tmp_path, fake, cfg, slack_routes(cfg)) as o:
        fake.fail_next("chat.postMessage", status=429, retry_after=7)
        fake.fail_next("chat.postMessage", status=500)
        for n in (1, 2, 3):
            await o.gate(n)
        assert await o.drain() == 3  # the console; Slack answered 429
        [head] = [
            i for i in await o.storage.outbox.due_outbox(o.clock() + 7) if i.interface == "slack"
        ]
        assert head.last_error == "slack channel C1: rate limited (HTTP 429)"
        o.clock.advance(6.9)
        assert await o.drain() == 0  # Retry-After is honoured
        o.clock.advance(0.1)
        assert await o.drain() == 0  # 500: next try in 4 s
        await fake.go_down()
        o.clock.advance(4)
        assert await o.drain() == 0  # connection refused: next try in 8 s
        await fake.come_up()
        o.clock.advance(8)
        assert await o.drain() == 3
        titles = [m.text for m in fake.messages("C1")]
        assert titles == [f"[warning] gate #{n} waits for a decision: q{n}" for n in (1, 2, 3)]
        # two refused posts, three good ones: slack_sdk never retried on its own
        assert [m for m, _ in fake.calls].count("chat.postMessage") == 5
        assert await o.storage.outbox.outbox_summary() == {
            "pending": 0,
            "sending": 0,
            "delivered": 6,
            "dead": 0,
        }


async def test_channel_not_found_is_a_dead_letter_with_the_fix(
    tmp_path: Path, fake: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    fake.add_channel("C2", member=False, name="ops")
    cfg = slack_config(fake, alert_channels=("C404", "C2"))
    async with outbox_for(tmp_path, fake, cfg, slack_routes(cfg)) as o:
        await o.gate(1)
        with caplog.at_level(logging.ERROR, "farmbot.supervisor.notifier"):
            await o.drain()
        dead = {d.channel: d.last_error for d in await o.storage.outbox.dead_letters()}
        assert dead["C404"].startswith("slack channel C404: channel_not_found: no such channel")
        assert "/invite @farmbot" in dead["C404"]
        assert dead["C2"] == (
            "slack channel #ops (C2): not_in_channel: invite the bot: /invite @farmbot in #ops"
        )
        slack = o.interfaces["slack"]
        assert isinstance(slack, SlackInterface)
        assert dead["C2"] in str(slack.problem) and dead["C404"] in str(slack.problem)
        logged = "\n".join(r.getMessage() for r in caplog.records)
        assert dead["C2"] in logged and dead["C404"] in logged
        assert fake.messages() == []

        fake.add_channel("C2", member=True, name="ops")  # someone invited the bot
        item = next(d for d in await o.storage.outbox.dead_letters() if d.channel == "C2")
        assert await o.storage.outbox.retry_dead(item.id, o.clock())
        assert await o.drain() == 1
        assert [m.channel for m in fake.messages()] == ["C2"]
        assert "C2" not in str(slack.problem) and "C404" in str(slack.problem)


async def test_thread_per_agent_survives_a_restart(tmp_path: Path, fake: FakeSlack) -> None:
    cfg = slack_config(fake, thread_per_agent=True)
    async with outbox_for(tmp_path, fake, cfg, slack_routes(cfg)) as o:
        await o.gate(1)
        await o.drain()
        await o.stuck()
        await o.drain()
        await o.interfaces["slack"].stop()
        o.interfaces["slack"] = SlackInterface(cfg, o.deps())  # a restart
        await o.gate(2)
        await o.gate(3, agent="builder-2")
        await o.drain()
        first, stuck, second, other = fake.messages("C1")
        assert first.thread_ts is None and "gate #1" in first.text
        assert stuck.thread_ts == first.ts and "stuck" in stuck.text
        assert second.thread_ts == first.ts and "gate #2" in second.text
        assert other.thread_ts is None and "builder-2" in blocks_text(other)
        assert await o.storage.threads.get_thread("slack", "C1", "builder-1") == first.ts


# -- secrets, config and rendering --------------------------------------------------------


async def test_tokens_never_reach_the_log(
    tmp_path: Path, tmux_socket: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = make_config(tmp_path, tmux_socket, users=USERS)
    async with FakeSlack(bot_token=BOT_TOKEN, app_token=APP_TOKEN) as fake:
        fake.add_channel("C2", member=False)
        cfg = slack_config(fake, alert_channels=("C1", "C2"))
        async with stack_for(config, fake, tmp_path, cfg) as s:
            await fake.wait_for_connections(1)
            await s.command(OPERATOR, "status")
            await s.reply("pending gates: 0")
            await s.farm.bus.publish(
                ev.AgentStuck(agent_id="builder-1", project="proj", reason="no output")
            )
            await s.notifier.deliver_due()
            # a library that logs a token anyway is redacted too
            for name in ("slack_sdk.farmbot", "slack_bolt.AsyncApp", "farmbot.daemon"):
                logging.getLogger(name).warning("token=%s", BOT_TOKEN)
            assert repr(cfg).count("<hidden>") == 3
            for secret in (BOT_TOKEN, APP_TOKEN, SIGNING_SECRET):
                assert secret not in repr(cfg)
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert logged.count("token=<redacted>") == 3 and "Sending a request" in logged
    for secret in (BOT_TOKEN, APP_TOKEN, SIGNING_SECRET):
        assert secret not in logged and secret not in caplog.text


async def test_a_refused_token_is_a_clear_problem(tmp_path: Path) -> None:
    async with FakeSlack(bot_token="xoxb-the-real-one", app_token=APP_TOKEN) as fake:
        async with open_sqlite(tmp_path / "farmbot.db") as storage:
            slack = SlackInterface(slack_config(fake), deps_of(storage), ping_interval=0.5)
            await slack.start(_replying(Reply("x")))
            await retry_until(lambda: "refused" in str(slack.problem), message="the problem")
            problem = str(slack.problem)
            await slack.stop()
    assert problem.startswith("Slack refused slack.bot_token (invalid_auth)")
    assert fake.connections == 0


async def test_a_refused_app_token_is_blamed_on_the_app_token(tmp_path: Path) -> None:
    async with FakeSlack(bot_token=BOT_TOKEN, app_token=APP_TOKEN) as fake:
        async with open_sqlite(tmp_path / "farmbot.db") as storage:
            cfg = slack_config(fake, app_token="xapp-1-A1-4444-notthisone")
            slack = SlackInterface(cfg, deps_of(storage), ping_interval=0.5)
            await slack.start(_replying(Reply("x")))
            await retry_until(lambda: "refused" in str(slack.problem), message="the problem")
            problem = str(slack.problem)
            await slack.stop()
    assert problem.startswith("Slack refused slack.app_token (invalid_auth)")
    assert "bot_token" not in problem and fake.connections == 0


def _table(data: dict[str, object], environ: dict[str, str] | None = None) -> tk.Table:
    env = {"BOT": BOT_TOKEN, "APP": APP_TOKEN, "SIGN": SIGNING_SECRET, **(environ or {})}
    return tk.Table(data, "slack", env, Path("."))


def test_config_reads_secrets_from_the_environment() -> None:
    cfg = parse_slack(
        _table(
            {
                "bot_token": "env:BOT",
                "app_token": "env:APP",
                "api_url": "https://slack-gov.com/api",
                "alert_channels": ["C0123ABCD", "G0456"],
                "alert_min_severity": "critical",
                "thread_per_agent": True,
            }
        )
    )
    assert (cfg.bot_token, cfg.app_token, cfg.mode) == (BOT_TOKEN, APP_TOKEN, "socket")
    assert cfg.api_url == "https://slack-gov.com/api/" and cfg.command == "/farm"
    assert BOT_TOKEN not in repr(cfg) and "bot_token=<hidden>" in repr(cfg)
    assert slack_routes(cfg) == (
        AlertRoute("slack", "C0123ABCD", Severity.CRITICAL),
        AlertRoute("slack", "G0456", Severity.CRITICAL),
    )
    http = parse_slack(
        _table({"bot_token": "env:BOT", "mode": "http", "signing_secret": "env:SIGN"})
    )
    assert (http.mode, http.signing_secret, http.app_token) == ("http", SIGNING_SECRET, None)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"bot_token": "env:BOT"}, "config: slack.app_token: missing; Socket Mode needs"),
        ({"bot_token": "env:BOT", "mode": "http"}, "config: slack.signing_secret: missing"),
        ({"bot_token": BOT_TOKEN, "app_token": "env:APP"}, "config: slack.bot_token: secrets"),
        (
            {"bot_token": "env:APP", "app_token": "env:APP"},
            "config: slack.bot_token: $APP must hold a bot token starting with xoxb-",
        ),
        (
            {"bot_token": "env:BOT", "app_token": "env:BOT"},
            "config: slack.app_token: $BOT must hold an app-level token starting with xapp-",
        ),
        (
            {"bot_token": "env:BOT", "app_token": "env:APP", "mode": "rtm"},
            "config: slack.mode: unknown mode 'rtm'",
        ),
        (
            {"bot_token": "env:BOT", "app_token": "env:APP", "alert_channels": ["#ops"]},
            "config: slack.alert_channels: '#ops' is not a channel ID",
        ),
        (
            {"bot_token": "env:BOT", "app_token": "env:APP", "api_url": "slack.com/api"},
            "config: slack.api_url: must be an http:// or https:// URL",
        ),
        (
            {"bot_token": "env:BOT", "app_token": "env:APP", "alert_min_severity": "loud"},
            "config: slack.alert_min_severity: unknown severity 'loud' (use info, warning or",
        ),
        (
            {"bot_token": "env:BOT", "app_token": "env:APP", "comand": "/farm"},
            "config: slack.comand: unknown key (did you mean 'command'?)",
        ),
    ],
)
def test_config_errors_name_the_key_never_the_value(data: dict[str, object], error: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_slack(_table(data))
    assert str(caught.value).startswith(error)
    for secret in (BOT_TOKEN, APP_TOKEN):
        assert secret not in str(caught.value)


def test_rendering_keeps_slack_limits_and_every_character() -> None:
    pre = "&" * 7000 + "\n" + "x" * 100  # one line longer than a section, all entities
    rendered = reply_message(Reply("<b> & co", pre=pre, buttons=((Button("Go", "/x"),),)))
    first, *rest = rendered.parts
    assert rendered.file is None and len(rest) == 3
    blocks = [b for part in rendered.parts for b in part.blocks]
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert sections[0] == "&lt;b&gt; &amp; co"
    assert all(len(text) <= SECTION_CHARS for text in sections)
    bodies = [t[4:-4] for t in sections[1:]]
    assert all(b.endswith("&amp;") for b in bodies[:-2])  # never a cut entity
    assert "".join(bodies).replace("&amp;", "&").replace("\n", "") == pre.replace("\n", "")
    assert first.blocks[-1]["type"] == "actions" and first.text == "&lt;b&gt; &amp; co"
    assert "continued in the thread (3 more messages)" in str(first.blocks)
    assert reply_message(Reply("x", pre="&" * 8000)).file == "&" * 8000  # 40 KB escaped
    [fenced] = reply_message(Reply("x", pre="a```b")).parts[0].blocks[1:]
    assert fenced["text"]["text"].count("```") == 2  # output cannot close the block early
    assert command_text("<@UBOT>  spawn builder 42", "UBOT") == "/spawn builder 42"
    assert command_text("/status") == "/status" and command_text("  ") == "/help"
    assert command_text("send a see <https://x.y/z|x.y/z> &amp; more") == (
        "/send a see https://x.y/z & more"
    )


async def test_a_long_button_command_is_stored_and_still_runs(stack: Stack) -> None:
    text = "x" * 2500
    seen: list[Incoming] = []

    async def handle(msg: Incoming) -> Reply:
        seen.append(msg)
        return Reply("ok", buttons=((Button("Send it", f"/send architect {text}"),),))

    stack.answer = handle
    await stack.command(OPERATOR, "status")
    message = await stack.reply("ok")
    value = button(message, "Send it")["value"]
    assert value.startswith("a:")
    await stack.fake.push_block_action(
        ADMIN, channel="C1", message_ts=message.ts, action_id="farmbot_0"
    )
    await retry_until(lambda: len(seen) == 2, message="the button's command")
    assert (seen[1].text, seen[1].user_id, seen[1].button) == (
        f"/send architect {text}",
        ADMIN,
        True,
    )


async def test_a_button_whose_stored_command_cannot_be_read_is_answered(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    long = Button("Send it", "/send architect " + "x" * 2500)  # stored: too long for a value
    stack.answer = _replying(Reply("ok", buttons=((long,),)))
    await stack.command(OPERATOR, "status")
    message = await stack.reply("ok")

    async def unreadable(action_id: int) -> str | None:
        raise StorageError("database is locked")

    monkeypatch.setattr(stack.farm.storage.actions, "get_action", unreadable)
    await stack.fake.push_block_action(
        ADMIN, channel="C1", message_ts=message.ts, action_id="farmbot_0"
    )
    answer = await stack.ephemeral(ADMIN, "farmbot could not read that button; try again")
    assert answer.thread_ts == message.ts
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == ["slack: a button's stored command could not be read: database is locked"]


async def test_a_storage_failure_while_sending_is_a_retryable_delivery_error(
    tmp_path: Path, fake: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = slack_config(fake, thread_per_agent=True)
    async with open_sqlite(tmp_path / "farmbot.db") as storage:
        slack = SlackInterface(cfg, deps_of(storage))

        async def unreadable(interface: str, channel: str, key: str) -> str | None:
            raise StorageError("database is locked")

        monkeypatch.setattr(storage.threads, "get_thread", unreadable)
        alert = OutboundMessage(1, 1, Severity.WARNING, "t", "x", None, (), "builder-1", None)
        with pytest.raises(DeliveryError) as caught:
            await slack.send("C1", alert)
        await slack.stop()
    assert not isinstance(caught.value, PermanentDeliveryError)
    assert str(caught.value) == "slack channel C1: farmbot's storage failed: database is locked"
    assert slack.failed == 1 and fake.messages() == []


def test_the_manifest_asks_for_what_the_interface_uses() -> None:
    manifest = Path(__file__).parent.parent / "deploy" / "slack-app-manifest.yml"
    text = manifest.read_text()
    needed = ["command: /farm", "- commands", "- app_mentions:read", "- chat:write"]
    needed += ["- files:write", "- files:read", "- app_mention", "is_enabled: true"]
    needed += ["socket_mode_enabled: true"]
    for line in [*needed, EVENTS_PATH]:
        assert line in text, line


# -- a press never waits; hearing; /ping ------------------------------------------------


async def test_a_press_is_answered_while_ten_long_commands_of_the_same_person_run(
    stack: Stack,
) -> None:
    release, seen = asyncio.Event(), []

    async def answer(msg: Incoming) -> Reply:
        seen.append(msg.text)
        if not msg.button:
            await release.wait()  # a long command
            return Reply("the long one is done")
        return Reply(f"pressed {msg.text}")

    stack.answer = answer
    alert = OutboundMessage(1, 1, Severity.INFO, "t", "x", None,
                            ((Button("Status", "/status"),),), None, None)  # fmt: skip
    ts = await stack.slack.send("C1", alert)
    for _ in range(10):
        await stack.command(ADMIN, "agents")  # each acked at once
    await retry_until(lambda: seen.count("/agents") == 10, message="ten long commands")
    [message] = stack.fake.messages("C1")
    assert message.ts == ts
    status = button(message, "Status")
    await stack.fake.push_block_action(
        ADMIN, channel="C1", message_ts=ts, action_id=status["action_id"]
    )
    await stack.reply("pressed /status")
    assert not [m for m in stack.fake.messages() if "the long one" in blocks_text(m)]
    release.set()
    await retry_until(
        lambda: len([m for m in stack.fake.messages() if "the long one" in m.text]) == 10,
        message="the long ones",
    )


async def test_hearing_follows_the_socket_and_the_last_envelope(stack: Stack) -> None:
    slack, fake = stack.slack, stack.fake
    await retry_until(lambda: slack.hearing().ok, message="the socket")
    await fake.push_mention(OPERATOR, "status")
    await stack.reply("pending gates: 0")
    hearing = slack.hearing()
    assert hearing.ok and hearing.last_heard is not None
    assert hearing.detail == "Socket Mode connected; last envelope 0s ago"
    await fake.go_down()  # Slack unreachable: the socket is gone
    await retry_until(lambda: not slack.hearing().ok, message="the lost socket")
    assert slack.hearing().detail.startswith("Socket Mode is not connected (it retries)")
    assert await slack.ready() is not None
    assert "slack" in await stack.farm.graph.problems()
    await fake.come_up()
    await retry_until(lambda: slack.hearing().ok, timeout=20, message="the socket again")


async def test_ping_from_a_mention_measures_from_its_ts(stack: Stack) -> None:
    await stack.fake.push_mention(VIEWER, "ping", ts=f"{time.time() - 0.25:.6f}")
    pong = await stack.reply("pong from slack")
    first = blocks_text(pong).split("\n")[0]
    assert re.fullmatch(
        r"pong from slack: \d{3} ms from your message to this answer; \d+ ms of it inside "
        r"farmbot",
        first,
    ), first
    assert "slack hears: Socket Mode connected" in blocks_text(pong)


# -- files ------------------------------------------------------------------------------


async def test_a_file_shared_with_a_send_mention_goes_into_the_worktree(
    stack: Stack, tmp_path: Path
) -> None:
    await architect(stack)
    fake = stack.fake
    shared = fake.share_file("plan.md", b"# the plan\n")
    await fake.push_mention(OPERATOR, "send architect follow the plan", files=[shared])
    saved = await stack.reply("saved in architect's worktree")
    assert ".farmbot-uploads/plan.md" in blocks_text(saved)
    agent = await stack.farm.agent("architect")
    assert (Path(agent.workdir) / ".farmbot-uploads" / "plan.md").read_bytes() == b"# the plan\n"
    await stack.farm.until_idle("architect")
    assert received_prompts(tmp_path)[-1] == (
        "follow the plan\nolga sent you a file: .farmbot-uploads/plan.md"
    )

    fake.files_read = False  # the app was installed without files:read
    again = fake.share_file("plan.md", b"v2")
    await fake.push_mention(OPERATOR, "send architect", files=[again])
    refusal = await stack.ephemeral(OPERATOR, "files:read")
    assert "plan.md could not be fetched: slack did not hand over plan.md" in refusal.text
    assert fake.downloads == 2


async def test_file_uploads_a_worktree_file_and_refuses_a_link_out(
    stack: Stack, tmp_path: Path
) -> None:
    await architect(stack)
    agent = await stack.farm.agent("architect")
    (Path(agent.workdir) / "notes.txt").write_text("done: all of it\n")
    (Path(agent.workdir) / "secret").symlink_to(tmp_path / "state" / "farmbot.db")
    await stack.command(OPERATOR, "file architect notes.txt")
    await stack.fake.wait_for("files.completeUploadExternal")
    [file] = stack.fake.files
    assert (file.filename, file.content) == ("notes.txt", b"done: all of it\n")
    assert file.initial_comment is not None
    assert "notes.txt from architect's worktree (16 B)" in file.initial_comment
    await stack.command(OPERATOR, "file architect secret")
    await stack.ephemeral(OPERATOR, "secret is outside architect's worktree")
    assert len(stack.fake.files) == 1


# -- a decided gate's buttons leave every copy ------------------------------------------


async def test_a_decided_gate_loses_its_buttons_in_every_channel(
    tmp_path: Path, tmux_socket: str
) -> None:
    config = make_config(tmp_path, tmux_socket, users=USERS)
    async with FakeSlack(bot_token=BOT_TOKEN, app_token=APP_TOKEN, channels=("C1", "C2")) as fake:
        cfg = slack_config(fake, alert_channels=("C1", "C2"))
        async with stack_for(config, fake, tmp_path, cfg) as s:
            await fake.wait_for_connections(1)
            gate = await s.farm.gates.open("manual", "ship it", project="proj")
            assert await s.notifier.deliver_due() == 3  # two channels and the console
            one, two = (fake.messages(c)[0] for c in ("C1", "C2"))
            items = await s.farm.storage.outbox.items_with_key(f"gate.opened:{gate.id}")
            assert {i.message_ref for i in items if i.interface == "slack"} == {one.ts, two.ts}
            await s.farm.gates.decide(gate.id, Decision(False, reason="not today"), "alice")
            assert await s.notifier.edit_queued() == 2
            for copy in (one, two):
                assert copy.edited and all(b["type"] != "actions" for b in copy.blocks)
                assert "ship it" in blocks_text(copy)
                note = copy.blocks[-1]["elements"][0]["text"]
                assert re.fullmatch(r"❌ rejected by alice at \d\d:\d\d UTC \(not today\)", note)
