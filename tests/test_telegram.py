"""The Telegram interface: the real python-telegram-bot against a fake Bot API on 127.0.0.1,
driving the real router, supervisor (real tmux, the demo agent), gates and outbox.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from farmbot import events as ev
from farmbot.adapters.shared import InterfaceDeps
from farmbot.adapters.telegram import BAD_TOKEN, CONFLICT, TelegramInterface
from farmbot.adapters.telegram_poll import AT_ONCE
from farmbot.adapters.telegram_render import MAX_TEXT, blocks, plain, render, split, utf16_len
from farmbot.alerts import Notifier
from farmbot.bot.commands import menu
from farmbot.bot.router import Router
from farmbot.bus import EventBus
from farmbot.config.alerts import AlertRoute, AlertsConfig
from farmbot.config.reader import Table
from farmbot.config.schema import Config, UserConfig
from farmbot.config.telegram import TelegramConfig, parse_telegram, telegram_routes
from farmbot.errors import ConfigError, PermanentDeliveryError, StorageError
from farmbot.messages import Button, Incoming, OnIncoming, OutboundMessage, Reply, Severity
from farmbot.models import Decision, GateStatus, Role
from farmbot.storage import open_sqlite
from farmbot.supervisor.gates import Gates
from tests.fakes.telegram_api import FakeTelegram, Params, parse_html
from tests.farm import Farm, farm_for, make_config, received_prompts
from tests.helpers import FakeClock, retry_until

TOKEN = "424242:SECRET-token-never-logged"
ALICE, BOB, OLGA, STRANGER = 1001, 1002, 1003, 999  # admin, viewer, operator, nobody
USERS = (
    UserConfig("alice", Role.ADMIN, ids={"telegram": ALICE}),
    UserConfig("bob", Role.VIEWER, ids={"telegram": BOB}),
    UserConfig("olga", Role.OPERATOR, ids={"telegram": OLGA}),
)
KEY = "k" * 32  # the web server's local key
FORUM = -1001234  # a forum supergroup: alerts go here
TOPIC = 7  # project "proj"'s topic in it


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TOKEN) as fake:
        fake.add_chat(FORUM, type="supergroup", title="farm ops")
        yield fake


def tg_config(tg: FakeTelegram, **changes: Any) -> TelegramConfig:
    config = TelegramConfig(
        token=tg.token,
        base_url=tg.base_url,
        base_file_url=tg.base_file_url,
        alert_chats=(FORUM,),
        topics={"proj": TOPIC},
        poll_timeout=1,
    )
    return replace(config, **changes)


@dataclass
class Rig:
    farm: Farm
    telegram: TelegramInterface
    router: Router
    notifier: Notifier
    bus: EventBus  # with alert rules routing to FORUM
    gates: Gates
    clock: FakeClock

    async def drain(self) -> int:
        """Deliver the alerts due now; how many went out to Telegram."""
        sent = self.telegram.sent
        while await self.notifier.deliver_due():
            pass
        return self.telegram.sent - sent


@asynccontextmanager
async def running(
    config: Config, tmp_path: Path, tconf: TelegramConfig, clock: FakeClock
) -> AsyncIterator[Rig]:
    """The daemon's graph with Telegram configured, and the Telegram interface started."""
    config = replace(
        config, chats={"telegram": tconf}, alerts=AlertsConfig(routes=telegram_routes(tconf))
    )
    async with farm_for(config, tmp_path, clock, rand=lambda: 1.0) as farm:
        telegram = farm.graph.interfaces["telegram"]
        assert isinstance(telegram, TelegramInterface)
        await telegram.start(farm.router.handle)
        try:
            notifier = farm.graph.alerts.notifier
            yield Rig(farm, telegram, farm.router, notifier, farm.bus, farm.gates, clock)
        finally:
            await telegram.stop()


@pytest.fixture
def config(tmp_path: Path, tmux_socket: str) -> Config:
    return make_config(tmp_path, tmux_socket, users=USERS)


@pytest.fixture
async def rig(config: Config, tmp_path: Path, tg: FakeTelegram) -> AsyncIterator[Rig]:
    async with running(config, tmp_path, tg_config(tg), FakeClock()) as r:
        yield r


async def reply_to(tg: FakeTelegram, user: int, text: str, **where: Any) -> Params:
    """Send a message as ``user`` and return the bot's next message in that chat."""
    chat = where.get("chat_id", user)
    before = len(tg.sent_messages(chat))
    tg.push_message(user, text, **where)
    await retry_until(lambda: len(tg.sent_messages(chat)) > before, message=f"a reply to {text}")
    return tg.sent_messages(chat)[before]


def keyboard(message: Params) -> list[list[tuple[str, str]]]:
    rows = message.get("reply_markup", {}).get("inline_keyboard", [])
    return [[(b["text"], b["callback_data"]) for b in row] for row in rows]


async def press(tg: FakeTelegram, user: int, message: Params, data: str) -> Params:
    """Press a button; return the answer to the press."""
    query = tg.push_callback(user, message, data)
    return await tg.wait_for("answerCallbackQuery", lambda p: p["callback_query_id"] == query)


# -- commands ------------------------------------------------------------------------------


async def test_spawn_from_telegram_reaches_tmux_and_a_tail_button_shows_escaped_output(
    rig: Rig, tg: FakeTelegram, tmp_path: Path
) -> None:
    assert [c["command"] for c in tg.commands] == [name for name, _ in menu()]  # the menu
    spawned = await reply_to(tg, ALICE, "/spawn builder 42")
    assert spawned["text"].startswith("spawned builder-42 (demo) in project proj: worktree ")
    assert keyboard(spawned) == [[("Tail", "/tail builder-42"), ("Kill", "/kill builder-42")]]
    await rig.farm.until_idle("builder-42")
    assert received_prompts(tmp_path)[0].startswith("You are builder 42 on project proj.")
    [entry] = [
        e for e in await rig.farm.storage.audit.recent_audit() if e.command.startswith("/spawn")
    ]
    assert (entry.platform, entry.user_id, entry.user_name, entry.outcome) == (
        "telegram",
        str(ALICE),
        "alice",
        "ok",
    )

    sent = await reply_to(tg, OLGA, "/send@farmbot_test_bot builder-42 fix <b>fish & chips</b>")
    assert sent["text"].startswith("sent to builder-42")
    await rig.farm.until_screen("builder-42", "✓ done: fix <b>fish & chips</b>")

    before = len(tg.sent_messages(ALICE))
    answer = await press(tg, ALICE, spawned, "/tail builder-42")
    assert "text" not in answer  # no toast: the result is a new message
    await retry_until(lambda: len(tg.sent_messages(ALICE)) > before, message="the tail")
    screen = tg.sent_messages(ALICE)[-1]
    assert screen["text"].startswith("builder-42 (")
    assert "> received: fix <b>fish & chips</b>" in screen["text"]  # escaped, shown verbatim
    assert keyboard(screen) == [[("Refresh", "/tail builder-42 40")]]
    assert [e["type"] for e in screen["entities"]] == ["pre"]


async def test_updates_taken_before_a_crash_are_handled_once_and_not_run_twice(
    config: Config, tmp_path: Path, tg: FakeTelegram
) -> None:
    """The previous farmbot (on this node or another) had taken two updates from Telegram:
    it was handling one when it died and had not begun the other."""
    tconf = tg_config(tg)
    config = replace(config, chats={"telegram": tconf})
    async with farm_for(config, tmp_path, FakeClock()) as farm:
        inbound, key = farm.storage.inbound, TOKEN.split(":")[0]
        taken = [tg.push_message(OLGA, "/spawn architect"), tg.push_message(BOB, "/agents")]
        bodies = [(n, {"update_id": n, "message": m}) for n, m in enumerate(taken, 1)]
        assert await inbound.take_updates("telegram", key, bodies, 3, 1.0) == [1, 2]
        assert await inbound.begin_update("telegram", key, 1, "gpu/0ld") is not None
        telegram = farm.graph.interfaces["telegram"]
        await telegram.start(farm.router.handle)
        try:
            await retry_until(lambda: tg.sent_messages(OLGA) and tg.sent_messages(BOB))
            [told] = tg.sent_messages(OLGA)
            assert told["text"].startswith(
                "the farmbot that was handling it (node gpu) stopped, so farmbot cannot tell"
                " whether '/spawn architect' took effect; it was not run again."
            )
            [listed] = tg.sent_messages(BOB)
            assert listed["text"].startswith("no agents yet")  # the viewer's command ran
            poll = await tg.wait_for("getUpdates")
            assert poll["offset"] == 3  # from the stored position, not Telegram's own
            assert await farm.supervisor.list_agents() == []
            assert await inbound.unfinished("telegram", key) == []
            before = len(tg.sent_messages())
            tg.push_message(BOB, "/status")  # and new updates as usual
            await retry_until(lambda: len(tg.sent_messages()) > before)
            assert await inbound.position("telegram", key) == 4
        finally:
            await telegram.stop()


async def test_a_stranger_is_refused_politely_audited_and_nothing_runs(
    rig: Rig, tg: FakeTelegram
) -> None:
    refused = await reply_to(tg, STRANGER, "/spawn builder 1")
    assert "not on this farmbot's allowlist" in refused["text"]
    assert f"[users.<name>] telegram = {STRANGER}" in refused["text"]
    [entry] = await rig.farm.storage.audit.recent_audit()
    assert (entry.user_id, entry.user_name, entry.outcome) == (str(STRANGER), None, "denied")
    assert await rig.farm.storage.agents.list_agents() == []


async def test_a_stranger_sending_a_lone_surrogate_is_answered_and_audited(
    rig: Rig, tg: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    refused = await reply_to(tg, STRANGER, "/spawn builder \udc80 now")
    assert "not on this farmbot's allowlist" in refused["text"]
    [entry] = await rig.farm.storage.audit.recent_audit()
    assert (entry.command, entry.outcome) == ("/spawn builder \ufffd now", "denied")
    answered = await reply_to(tg, ALICE, "/tail \ud800")  # and a known person, the same
    assert "\ufffd" in answered["text"]
    assert len(await rig.farm.storage.audit.recent_audit()) == 2
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_commands_for_another_bot_are_ignored_and_plain_text_gets_a_hint(
    rig: Rig, tg: FakeTelegram
) -> None:
    tg.push_message(ALICE, "/agents@some_other_bot")
    # The same command for farmbot, after it: had the other bot's been taken, its reply
    # and audit entry would be in by the time this one is answered.
    agents = await reply_to(tg, ALICE, "/agents")
    assert agents["text"].startswith("no agents yet")
    hint = await reply_to(tg, ALICE, "hello there")
    assert "/help lists them" in hint["text"]
    assert tg.sent_messages(ALICE) == [agents, hint]  # nothing for the other bot's command
    assert [e.command for e in await rig.farm.storage.audit.recent_audit()] == ["/agents"]
    assert rig.telegram.received == 1
    first = await reply_to(tg, BOB, "/start")  # Telegram's first contact
    assert first["text"].startswith("farmbot commands (you are bob, viewer):")


async def test_a_command_in_a_forum_topic_is_answered_in_that_topic(
    rig: Rig, tg: FakeTelegram
) -> None:
    where = {"chat_id": FORUM, "chat_type": "supergroup", "message_thread_id": TOPIC}
    status = await reply_to(tg, BOB, "/status", **where)
    assert status["text"].startswith("agents: none running")
    assert status["message_thread_id"] == TOPIC


# -- gates and buttons ---------------------------------------------------------------------


async def open_gate_alert(r: Rig, tg: FakeTelegram, title: str = "deploy <prod> & tell") -> Params:
    gate = await r.gates.open("manual", title, project="proj")
    assert await r.drain() == 1
    message = tg.sent_messages(FORUM)[-1]
    assert message["message_thread_id"] == TOPIC  # the project's topic
    [plain, [(label, data)]] = keyboard(message)
    assert plain == [("Approve", f"/approve {gate.id}"), ("Reject", f"/reject {gate.id}")]
    assert label == "Reject with reason…" and data.startswith("a:")  # asks first: stored
    return message


def asking(message: Params) -> str:
    """The callback data of the message's "Reject with reason…" button."""
    [data] = [d for row in keyboard(message) for label, d in row if label.endswith("reason…")]
    return data


async def question_for(tg: FakeTelegram, alert: Params, user: int) -> Params:
    """Press "Reject with reason…" as ``user``; the question farmbot then asks them."""
    before = len(tg.sent_messages(alert["chat"]["id"]))
    answer = await press(tg, user, alert, asking(alert))
    assert answer["text"] == "Reply to the message below (it mentions you)."
    await retry_until(lambda: len(tg.sent_messages(alert["chat"]["id"])) > before)
    return tg.sent_messages(alert["chat"]["id"])[before]


async def test_a_gate_button_is_authorized_against_whoever_presses_it(
    rig: Rig, tg: FakeTelegram
) -> None:
    alert = await open_gate_alert(rig, tg)
    assert alert["text"].startswith("⚠️ gate #1 waits for a decision: deploy <prod> & tell\n")
    title = "⚠️ gate #1 waits for a decision: deploy <prod> & tell"
    assert alert["entities"][0] == {"type": "bold", "offset": 0, "length": utf16_len(title)}

    refused = await press(tg, BOB, alert, "/approve 1")
    assert refused["text"] == "bob is a viewer; /approve needs admin or above"
    assert tg.sent_messages(FORUM) == [alert]  # unchanged, buttons still there
    assert (await rig.gates.get(1)).status is GateStatus.PENDING

    approved = await press(tg, ALICE, alert, "/approve 1")
    assert "text" not in approved
    await tg.wait_for("editMessageText")
    [edited] = tg.sent_messages(FORUM)
    assert edited["text"] == (
        alert["text"] + "\n\n✅ gate 1 approved by alice at 2023-11-14 22:13 UTC: "
        "deploy <prod> & tell"
    )
    assert "reply_markup" not in edited
    assert edited["entities"][0]["type"] == "bold"  # the original formatting is kept
    gate = await rig.gates.get(1)
    assert (gate.status, gate.decided_by) == (GateStatus.APPROVED, "alice")
    assert len(tg.answered_callbacks) == 2  # every press is answered


async def test_a_press_after_a_restart_still_decides_the_gate(
    config: Config, tmp_path: Path, tg: FakeTelegram
) -> None:
    clock = FakeClock()
    reason = "the migration is not reversible; split it in two and add a rollback test"
    async with running(config, tmp_path, tg_config(tg), clock) as before:
        alert = await open_gate_alert(before, tg, "deploy")
        await before.gates.open("manual", "migrate", project="proj")
        assert await before.drain() == 1
        long = OutboundMessage(
            alert_id=0,
            outbox_id=0,
            severity=Severity.WARNING,
            title="gate 2",
            text="reject it with the reason?",
            pre=None,
            buttons=((Button("Reject with reason", f"/reject 2 {reason}"),),),
            agent_id=None,
            project=None,
        )
        await before.telegram.send(str(FORUM), long)
    second = tg.sent_messages(FORUM)[-1]
    [[(_, data)]] = keyboard(second)
    assert data.startswith("a:")  # too long for callback data: stored

    clock.advance(3600)
    async with running(config, tmp_path, tg_config(tg), clock) as after:
        await press(tg, ALICE, alert, "/approve 1")
        await press(tg, ALICE, second, data)
        await retry_until(
            lambda: all("reply_markup" not in tg.sent_messages(FORUM)[i] for i in (0, 2)),
            message="both messages edited",
        )
        assert (await after.gates.get(1)).status is GateStatus.APPROVED
        rejected = await after.gates.get(2)
        assert (rejected.status, rejected.reason) == (GateStatus.REJECTED, reason)
    texts = [m["text"] for m in tg.sent_messages(FORUM)]
    assert texts[0].endswith("\n\n✅ gate 1 approved by alice at 2023-11-14 23:13 UTC: deploy")
    decision = f"❌ gate 2 rejected by alice at 2023-11-14 23:13 UTC ({reason}): migrate"
    assert texts[2].endswith(decision)


async def test_reject_with_reason_asks_the_presser_and_only_their_reply_decides(
    rig: Rig, tg: FakeTelegram
) -> None:
    alert = await open_gate_alert(rig, tg, "deploy")
    question = await question_for(tg, alert, ALICE)
    assert question["message_thread_id"] == TOPIC  # in the alert's topic, replying to it
    assert question["reply_to_message"]["message_id"] == alert["message_id"]
    assert question["text"] == (
        "Tester: Why? (optional; sent to the agent)\n"
        "Reply to this message; your reply goes with /reject 1."
    )
    mention = {"type": "text_link", "offset": 0, "length": 6, "url": f"tg://user?id={ALICE}"}
    assert mention in question["entities"]  # so her client opens the reply box
    [asked] = [p for name, p in tg.calls if name == "sendMessage" and "reply_parameters" in p]
    assert asked["reply_markup"] == {
        "force_reply": True,
        "selective": True,
        "input_field_placeholder": "Why? (optional; sent to the agent)",
    }
    where = {"chat_id": FORUM, "chat_type": "supergroup", "message_thread_id": TOPIC}

    # Someone else's reply (an admin's too) is refused and audited; the question stays.
    refused = await reply_to(tg, BOB, "ship it anyway", reply_to=question, **where)
    assert refused["text"] == "that question was put to alice: only they may answer it"
    stranger = await reply_to(tg, STRANGER, "lol", reply_to=question, **where)
    assert stranger["text"].startswith("Sorry, you are not on this farmbot's allowlist")
    assert (await rig.gates.get(1)).status is GateStatus.PENDING

    reason = "the migration is not reversible;\nsplit it in two"
    decided = await reply_to(tg, ALICE, reason, reply_to=question, **where)
    assert decided["text"].startswith("gate 1 rejected by alice at ")
    gate = await rig.gates.get(1)
    assert (gate.status, gate.reason, gate.decided_by) == (GateStatus.REJECTED, reason, "alice")
    audit = [
        (e.user_name, e.command, e.outcome, e.detail)
        for e in await rig.farm.storage.audit.recent_audit()
    ]
    assert ("bob", "/reject 1 ship it anyway", "denied",
            "button; that question was put to alice: only they may answer it") in audit  # fmt: skip
    assert (None, "/reject 1 lol", "denied", "button; not on the allowlist") in audit
    assert ("alice", f"/reject 1 {reason}", "ok", "button; ") in audit
    await rig.drain()
    await rig.notifier.edit_queued()  # the alert's buttons come off, Reject's twin too
    [edited] = [m for m in tg.sent_messages(FORUM) if m["message_id"] == alert["message_id"]]
    assert "reply_markup" not in edited
    assert rig.telegram._questions.answered == 1


async def test_a_reply_after_a_restart_still_answers_the_question(
    config: Config, tmp_path: Path, tg: FakeTelegram
) -> None:
    clock = FakeClock()
    async with running(config, tmp_path, tg_config(tg), clock) as before:
        alert = await open_gate_alert(before, tg, "deploy")
        question = await question_for(tg, alert, ALICE)
    clock.advance(3600)
    where = {"chat_id": FORUM, "chat_type": "supergroup", "message_thread_id": TOPIC}
    async with running(config, tmp_path, tg_config(tg), clock) as after:
        refused = await reply_to(tg, OLGA, "no", reply_to=question, **where)
        assert refused["text"] == "that question was put to alice: only they may answer it"
        decided = await reply_to(tg, ALICE, "not on a Friday", reply_to=question, **where)
        assert decided["text"].startswith("gate 1 rejected by alice at 2023-11-14 23:13 UTC")
        gate = await after.gates.get(1)
        assert (gate.status, gate.reason) == (GateStatus.REJECTED, "not on a Friday")
        assert (
            await after.farm.storage.questions.get_question(
                "telegram", str(FORUM), str(question["message_id"])
            )
            is None
        )  # answered once


async def test_a_button_whose_stored_command_cannot_be_read_is_answered(
    rig: Rig, tg: FakeTelegram, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    command = "/send builder-1 " + "x" * 80  # too long for callback data: stored
    button = ((Button("Send", command),),)
    alert = OutboundMessage(0, 0, Severity.INFO, "t", "x", None, button, None, None)
    await rig.telegram.send(str(FORUM), alert)
    message = tg.sent_messages(FORUM)[-1]
    [[(_, data)]] = keyboard(message)

    async def unreadable(action_id: int) -> str | None:
        raise StorageError("database is locked")

    monkeypatch.setattr(rig.farm.storage.actions, "get_action", unreadable)
    answer = await press(tg, ALICE, message, data)
    assert answer["text"] == "farmbot could not read that button; try again"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == ["telegram: a button's stored command could not be read: database is locked"]
    assert await rig.farm.storage.audit.recent_audit() == []  # nothing ran


# -- alerts --------------------------------------------------------------------------------


async def stuck(r: Rig, agent: str) -> None:
    await r.bus.publish(ev.AgentStuck(agent_id=agent, project="proj", reason="no output"))


async def test_429_and_500_on_alerts_deliver_each_once_in_order(
    config: Config, tmp_path: Path, tg: FakeTelegram
) -> None:
    clock = FakeClock()
    async with running(config, tmp_path, tg_config(tg), clock) as r:
        tg.fail_next("sendMessage", 429, retry_after=30)
        tg.fail_next("sendMessage", 500)
        for agent in ("builder-1", "builder-2", "builder-3"):
            await stuck(r, agent)
        assert await r.drain() == 0  # 429: wait 30 s
        clock.advance(29)
        assert await r.drain() == 0
        clock.advance(1)
        assert await r.drain() == 0  # 500: back off
        clock.advance(10)
        assert await r.drain() == 3
        summary = await r.farm.storage.outbox.outbox_summary()
    titles = [m["text"].split("\n")[0] for m in tg.sent_messages(FORUM)]
    assert titles == [f"⚠️ builder-{n} is stuck" for n in (1, 2, 3)]
    assert [name for name, _ in tg.calls].count("sendMessage") == 5
    assert summary == {"pending": 0, "sending": 0, "delivered": 6, "dead": 0}  # + web console


async def test_alerts_wait_while_telegram_is_down_and_go_out_after(
    rig: Rig, tg: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await tg.go_down()  # connection refused
    await rig.bus.publish(ev.AgentDead(agent_id="builder-1", project="proj", reason="exit 3"))
    assert await rig.drain() == 0
    await retry_until(lambda: rig.telegram.problem, message="polling to fail")
    assert rig.telegram.problem is not None and rig.telegram.problem.startswith("polling failed")
    await tg.come_up()
    rig.clock.advance(10)
    assert await rig.drain() == 1
    [message] = tg.sent_messages(FORUM)
    assert message["text"].startswith("🔴 builder-1 died\n")
    await retry_until(lambda: rig.telegram.problem is None, message="polling to recover")
    assert_no_token(caplog)


async def test_a_long_alert_goes_out_as_one_document(rig: Rig, tg: FakeTelegram) -> None:
    pre = "\n".join(f"line {i} <&>" for i in range(600))
    tail = ((Button("Tail", "/tail builder-1"),),)
    message = OutboundMessage(
        1, 1, Severity.CRITICAL, "QA failed", "see the log", pre, tail, "builder-1", "proj"
    )
    await rig.telegram.send(str(FORUM), message)
    [doc] = tg.documents
    assert doc["data"].decode() == f"🔴 QA failed\nsee the log\n{pre}"
    assert doc["filename"] == "alert-1.txt" and doc["caption"].startswith("🔴 QA failed\n")
    [sent] = tg.sent_messages(FORUM)
    assert sent["message_thread_id"] == TOPIC and keyboard(sent) == [[("Tail", "/tail builder-1")]]


async def test_a_chat_that_does_not_exist_is_a_permanent_error_naming_it(rig: Rig) -> None:
    message = OutboundMessage(1, 1, Severity.WARNING, "t", "x", None, (), None, None)
    with pytest.raises(PermanentDeliveryError, match=r"chat 5: (?i:chat not found).*alert_chats"):
        await rig.telegram.send("5", message)


# -- long replies --------------------------------------------------------------------------


@asynccontextmanager
async def answering(
    tg: FakeTelegram, tmp_path: Path, reply: Reply, slept: list[float] | None = None
) -> AsyncIterator[TelegramInterface]:
    """An interface whose every command gets ``reply``; its waits go to ``slept``."""

    async def handle(msg: Incoming) -> Reply:
        return reply

    async def sleep(seconds: float) -> None:
        (slept if slept is not None else []).append(seconds)

    async with open_sqlite(tmp_path / "replies.db") as storage:
        deps = InterfaceDeps(actions=storage.actions, threads=storage.threads, sleep=sleep)
        telegram = TelegramInterface(tg_config(tg), deps)
        await telegram.start(handle)
        try:
            yield telegram
        finally:
            await telegram.stop()


async def test_a_reply_over_4096_characters_is_split_at_lines_and_nothing_is_lost(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    text = "\n".join(f"agent {i}: busy <since> a while & more 😀" for i in range(120))
    pre = "\n".join(f"$ make test  # step {i} of <many> & counting" for i in range(150))
    reply = Reply(text, pre=pre, buttons=((Button("Refresh", "/agents"),),))
    async with answering(tg, tmp_path, reply):
        tg.push_message(ALICE, "/agents")
        await retry_until(
            lambda: [m for m in tg.sent_messages(ALICE) if "reply_markup" in m], message="all"
        )
    messages = tg.sent_messages(ALICE)
    assert len(messages) > 2
    assert "\n".join(m["text"] for m in messages) == f"{text}\n{pre}"
    assert all(utf16_len(m["text"]) <= MAX_TEXT for m in messages)
    assert [bool(m.get("reply_markup")) for m in messages] == [False] * (len(messages) - 1) + [True]
    assert {e["type"] for m in messages[1:] for e in m.get("entities", [])} == {"pre"}


async def test_a_huge_reply_is_sent_as_a_document(tg: FakeTelegram, tmp_path: Path) -> None:
    pre = "\n".join(f"{i:05d} <output> & more" for i in range(2000))
    async with answering(tg, tmp_path, Reply("builder-1: last 2000 lines", pre=pre)):
        tg.push_message(ALICE, "/tail builder-1 2000")
        await tg.wait_for("sendDocument")
    [doc] = tg.documents
    assert doc["data"].decode() == f"builder-1: last 2000 lines\n{pre}"
    assert doc["caption"] == (
        "builder-1: last 2000 lines\n(the whole text, 2001 lines, is in the attached file)"
    )


async def test_a_reply_waits_out_a_429_and_a_500_and_is_sent_once(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    tg.fail_next("sendMessage", 429, retry_after=7)
    tg.fail_next("sendMessage", 502)
    slept: list[float] = []
    async with answering(tg, tmp_path, Reply("ok"), slept):
        tg.push_message(ALICE, "/status")
        await retry_until(lambda: tg.sent_messages(ALICE), message="the reply")
    assert [m["text"] for m in tg.sent_messages(ALICE)] == ["ok"]
    assert slept == [7.0, 2.0]  # Telegram's retry_after, then a backoff


def test_split_closes_and_reopens_pre_and_counts_utf16() -> None:
    pre = "\n".join(f"{i} <&> " + "😀" * 30 for i in range(10))
    parts = blocks("head & <tail>", pre=pre, title="T")
    chunks = split(parts, limit=200)
    assert chunks[0].startswith("<b>T</b>\nhead &amp; &lt;tail&gt;\n<pre>")
    assert all(utf16_len(c) <= 200 for c in chunks)
    parsed = [parse_html(c) for c in chunks]  # Telegram's parser accepts every chunk
    assert "\n".join(text for text, _ in parsed) == plain(parts)
    assert all([e["type"] for e in entities] == ["pre"] for _, entities in parsed[1:])
    assert render("x" * 10_000).chunks and render("x\n" * 20_000).document is not None


# -- health: conflicts, bad tokens, secrets ------------------------------------------------


def assert_no_token(caplog: pytest.LogCaptureFixture) -> None:
    assert "<redacted>" in caplog.text  # the filter did see the token (httpx logs URLs)
    assert TOKEN not in caplog.text
    for record in caplog.records:
        assert TOKEN not in record.getMessage() and TOKEN not in (record.exc_text or "")


async def test_a_409_conflict_is_reported_once_and_cleared_when_polling_works(
    rig: Rig, tg: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    polls = len([c for c in tg.calls if c[0] == "getUpdates"])
    tg.conflict = True
    await retry_until(lambda: rig.telegram.problem == CONFLICT, message="the conflict")
    assert await rig.telegram.ready() == CONFLICT
    await retry_until(
        lambda: len([c for c in tg.calls if c[0] == "getUpdates"]) >= polls + 2,
        message="a retry",
    )
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [f"telegram: {CONFLICT}"]
    assert CONFLICT in repr(rig.telegram)

    tg.conflict = False

    def quiet() -> bool:  # a 409 still in flight may arrive late: keep time moving
        rig.clock.advance(61)
        return rig.telegram.problem is None

    await retry_until(quiet, message="the conflict to clear")
    status = await reply_to(tg, BOB, "/status")  # no message was lost meanwhile
    assert status["text"].startswith("agents:")
    assert_no_token(caplog)


async def test_an_invalid_token_marks_the_interface_failed_and_the_rest_runs(
    config: Config, tmp_path: Path, tg: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = replace(tg_config(tg), token="424242:WRONG-token-never-logged")
    async with running(config, tmp_path, wrong, FakeClock()) as r:
        assert r.telegram.problem == BAD_TOKEN
        assert await r.telegram.ready() == BAD_TOKEN
        await stuck(r, "builder-1")
        assert await r.drain() == 0
        [dead] = await r.farm.storage.outbox.dead_letters()
        assert "fix telegram.token" in dead.last_error
        reply = await r.router.handle(Incoming("web", "local-key", "console", "/status"))
        assert reply.ok  # the rest of farmbot keeps working
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors.count(f"telegram: {BAD_TOKEN}") == 1
    assert "WRONG-token" not in caplog.text and "<redacted>" in caplog.text


async def test_a_token_revoked_while_polling_is_reported(
    rig: Rig, tg: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tg.token = "424242:REVOKED"  # Telegram now refuses farmbot's token
    tg.conflict = True  # ends the poll in progress
    await retry_until(lambda: rig.telegram.problem == BAD_TOKEN, message="the bad token")
    await rig.telegram.stop()  # the poller died of it; stopping still works
    assert_no_token(caplog)


async def test_webhook_mode_checks_the_secret_token_header(
    config: Config, tmp_path: Path, tg: FakeTelegram
) -> None:
    secret = "hook-Secret_123"
    tconf = tg_config(
        tg, mode="webhook", webhook_url="https://farm.example.com/", webhook_secret=secret
    )
    async with farm_for(replace(config, chats={"telegram": tconf}), tmp_path) as farm:
        telegram = farm.graph.interfaces["telegram"]
        assert isinstance(telegram, TelegramInterface)
        web, router, key = farm.graph.web, farm.router, farm.graph.key
        await web.start(router.handle)
        await telegram.start(router.handle)
        try:
            assert tg.webhook_url == "https://farm.example.com" + telegram.webhook_path
            tg.add_chat(ALICE)
            url = f"http://127.0.0.1:{web.port}{telegram.webhook_path}"
            async with aiohttp.ClientSession() as http:
                for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}):
                    async with http.post(url, json=_update("/help"), headers=headers) as r:
                        assert r.status == 401
                good = {"X-Telegram-Bot-Api-Secret-Token": secret}
                async with http.post(url, json=_update("/help"), headers=good) as r:
                    assert r.status == 200
                async with http.post(url, data=b"nope", headers=good) as r:
                    assert r.status == 400
                bearer = {"Authorization": f"Bearer {key}"}
                async with http.get(f"http://127.0.0.1:{web.port}/readyz", headers=bearer) as r:
                    assert r.status == 200
            [reply] = await retry_until(lambda: tg.sent_messages(ALICE), message="the reply")
            assert reply["text"].startswith("farmbot commands (you are alice, admin):")
            assert "getUpdates" not in [name for name, _ in tg.calls]
        finally:
            await telegram.stop()
            await web.stop()


async def _no_status() -> dict[str, Any]:
    return {}


def _update(text: str) -> dict[str, Any]:
    user = {"id": ALICE, "is_bot": False, "first_name": "Alice"}
    message = {
        "message_id": 1,
        "date": 0,
        "chat": {"id": ALICE, "type": "private", "first_name": "Alice"},
        "from": user,
        "text": text,
        "entities": [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}],
    }
    return {"update_id": 1, "message": message}


# -- config --------------------------------------------------------------------------------


def _table(data: dict[str, object], environ: dict[str, str] | None = None) -> Table:
    return Table(data, "telegram", environ or {"TG": TOKEN, "HOOK": "s3cret"}, Path("."))


def test_config_reads_secrets_from_the_environment_and_hides_them() -> None:
    config = parse_telegram(
        _table(
            {
                "token": "env:TG",
                "base_url": "http://localhost:8081/bot",
                "alert_chats": [-100123, "@farm_ops", "-100456"],
                "topics": {"proj": 7},
                "alert_min_severity": "critical",
            }
        ),
        projects=["proj"],
    )
    assert config.token == TOKEN and config.base_file_url == "http://localhost:8081/file/bot"
    assert config.alert_chats == (-100123, "@farm_ops", -100456) and config.topics == {"proj": 7}
    assert TOKEN not in repr(config) and "<hidden>" in repr(config)
    assert telegram_routes(config)[1].channel == "@farm_ops"
    assert telegram_routes(config)[0].min_severity is Severity.CRITICAL


TG, HOOK, HTTPS = {"token": "env:TG"}, {"mode": "webhook"}, {"webhook_url": "https://x.y"}


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"token": TOKEN}, 'token: secrets are never written in the file; use "env:NAME"'),
        ({"token": "env:NOPE"}, "token: environment variable NOPE is not set"),
        ({"token": "env:HOOK"}, "token: does not look like a bot token"),
        ({**TG, **HOOK}, "webhook_url: missing"),
        ({**TG, **HOOK, **HTTPS}, "webhook_secret: missing"),
        ({**TG, "webhook_secret": "s3cret"}, "webhook_secret: secrets are never"),
        ({**TG, "webhook_url": "http://x.y"}, "webhook_url: must be an https:// URL"),
        ({**TG, "topics": {"prj": 3}}, "topics.prj: unknown project 'prj' (known: proj); did"),
        ({**TG, "alert_chats": ["ops"]}, "alert_chats[0]: expected a chat id"),
        ({**TG, "tokn": 1}, "tokn: unknown key (did you mean 'token'?)"),
    ],
)
def test_config_errors_name_the_key_and_never_the_secret(
    data: dict[str, object], error: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_telegram(_table(data), projects=["proj"])
    assert str(caught.value).startswith(f"config: telegram.{error}")
    assert TOKEN not in str(caught.value) and "s3cret" not in str(caught.value)


# -- a press never waits; hearing; /ping -----------------------------------------------------


async def test_a_press_is_answered_while_ten_long_commands_of_the_same_chat_run(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    release = asyncio.Event()
    seen: list[str] = []

    async def handle(msg: Incoming) -> Reply:
        seen.append(msg.text)
        if not msg.button:
            await release.wait()  # a long command, typed: more of them than the poller's slots
            return Reply("the long one is done")
        return Reply(f"pressed {msg.text}")

    async with open_sqlite(tmp_path / "busy.db") as storage:
        telegram = TelegramInterface(tg_config(tg), InterfaceDeps(storage.actions, storage.threads))
        await telegram.start(handle)
        try:
            alert = OutboundMessage(1, 1, Severity.INFO, "t", "x", None,
                                    ((Button("Status", "/status"),),), None, None)  # fmt: skip
            tg.add_chat(ALICE)  # ALICE's private chat with the bot
            await telegram.send(str(ALICE), alert)
            message = tg.sent_messages(ALICE)[-1]
            for _ in range(10):
                tg.push_message(ALICE, "/agents")
            await retry_until(lambda: seen.count("/agents") == AT_ONCE, message="every slot taken")
            answer = await press(tg, ALICE, message, "/status")
            assert "text" not in answer
            await retry_until(
                lambda: any(m.get("text") == "pressed /status" for m in tg.sent_messages(ALICE)),
                message="the press's answer",
            )
            assert len(tg.sent_messages(ALICE)) == 2  # the alert and the press's answer
            release.set()
            await retry_until(lambda: len(tg.sent_messages(ALICE)) == 12, message="the long ones")
        finally:
            await telegram.stop()


class Ops:
    """Another interface alerts can go to (what the people not on Telegram read)."""

    name = "ops"

    def __init__(self) -> None:
        self.got: list[OutboundMessage] = []

    async def start(self, on_incoming: OnIncoming) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send(self, channel: str, message: OutboundMessage) -> None:
        self.got.append(message)


async def test_a_second_poller_makes_telegram_deaf_and_the_other_interfaces_are_told(
    config: Config, tmp_path: Path, tg: FakeTelegram
) -> None:
    clock, ops = FakeClock(), Ops()
    tconf = tg_config(tg)
    routes = (*telegram_routes(tconf), AlertRoute("ops", "ops"))
    config = replace(
        config, chats={"telegram": tconf}, alerts=AlertsConfig(routes=routes, deaf_after=120)
    )
    async with farm_for(config, tmp_path, clock, interfaces=[ops]) as farm:
        telegram = farm.graph.interfaces["telegram"]
        assert isinstance(telegram, TelegramInterface)
        await telegram.start(farm.router.handle)
        try:
            await retry_until(lambda: telegram.hearing().ok, message="polling")
            assert telegram.hearing().detail.endswith("no update yet")
            await reply_to(tg, BOB, "/agents")
            heard = telegram.hearing()
            assert heard.ok and heard.last_heard == clock() and "last update 0s ago" in heard.detail
            ears, notifier = farm.graph.ears, farm.graph.alerts.notifier

            tg.conflict = True  # another instance polls with the same token
            await retry_until(lambda: not telegram.hearing().ok, message="the conflict")
            assert CONFLICT in telegram.hearing().detail
            assert await ears.round() == 0  # not hearing, not yet for long
            problems = await farm.graph.problems()
            assert CONFLICT in problems["telegram"]
            clock.advance(121)
            await retry_until(  # the other poller goes on: 409s keep coming
                lambda: CONFLICT in telegram.hearing().detail, message="a 409 at the new time"
            )
            assert await ears.round() == 1
            while await notifier.deliver_due():
                pass
            [deaf] = ops.got
            assert deaf.severity is Severity.CRITICAL
            assert deaf.title == "telegram is deaf: nothing it is sent reaches farmbot"
            assert "has not been hearing for 2m" in deaf.text and CONFLICT in deaf.text
            assert "telegram" not in [i.interface for i in await _outbox(farm)]  # not on itself
            status = await farm.graph.status()
            assert status["hearing"]["telegram"]["deaf"] is True
            assert await ears.round() == 0  # once

            tg.conflict = False

            def quiet() -> bool:  # the 409s stop counting once none came for a minute
                if CONFLICT in telegram.hearing().detail:
                    clock.advance(61)
                return telegram.hearing().ok

            await retry_until(quiet, message="hearing again")
            assert await ears.round() == 1
            while await notifier.deliver_due():
                pass
            assert ops.got[-1].title == "telegram hears again"
            assert (await farm.graph.status())["hearing"]["telegram"]["deaf"] is False
        finally:
            await telegram.stop()


async def _outbox(farm: Farm) -> list[Any]:
    return [i for i in await farm.storage.outbox.items_with_key("interface.deaf:telegram")]


async def test_updates_waiting_at_telegram_while_none_arrive_and_a_hung_poll_are_deaf(
    rig: Rig, tg: FakeTelegram
) -> None:
    telegram = rig.telegram
    await retry_until(lambda: telegram.hearing().ok, message="polling")
    await telegram.refresh_hearing()
    assert telegram.hearing().detail.endswith("; 0 pending")
    tg.stalled = True  # Telegram keeps updates, but no poll answers
    await asyncio.sleep(0.2)  # the poll in flight now hangs
    tg.push_message(ALICE, "/status")
    await telegram.refresh_hearing()
    assert telegram.hearing().ok  # one look is not enough: they may be on their way
    rig.clock.advance(31)
    await telegram.refresh_hearing()
    hearing = telegram.hearing()
    assert not hearing.ok
    assert hearing.detail.startswith("1 update waits at Telegram and none arrived for 31s")
    assert (await telegram.ready() or "").startswith("telegram does not hear: 1 update waits")

    tg.stalled = False
    await retry_until(lambda: tg.sent_messages(ALICE), message="the waiting update")
    await telegram.refresh_hearing()
    assert telegram.hearing().ok and telegram.hearing().last_heard == rig.clock()

    tg.stalled = True
    await asyncio.sleep(0.2)
    rig.clock.advance(1 + 16)  # poll_timeout, then the grace a long poll gets
    hearing = telegram.hearing()
    assert not hearing.ok and "getUpdates has not answered for 17s" in hearing.detail
    tg.stalled = False
    await retry_until(lambda: telegram.hearing().ok, message="a poll answered")


async def test_ping_answers_on_telegram_with_the_time_from_the_message(
    config: Config, tmp_path: Path, tg: FakeTelegram
) -> None:
    clock = FakeClock(time.time())  # Telegram's dates are the real clock's
    async with running(config, tmp_path, tg_config(tg), clock) as r:
        await retry_until(lambda: r.telegram.hearing().ok, message="polling")
        clock.advance(2.5)  # the message takes its time to farmbot
        pong = await reply_to(tg, BOB, "/ping")
    first, second = pong["text"].split("\n")
    assert re.fullmatch(
        r"pong from telegram: [23]\d{3} ms from your message to this answer \(its clock counts "
        r"whole seconds\); 0 ms of it inside farmbot",
        first,
    ), first
    assert second.startswith("telegram hears: polled ")


# -- files ---------------------------------------------------------------------------------


async def test_a_document_captioned_send_goes_into_the_worktree_and_its_path_to_the_agent(
    rig: Rig, tg: FakeTelegram, tmp_path: Path
) -> None:
    await reply_to(tg, ALICE, "/spawn builder 42")
    agent = await rig.farm.until_idle("builder-42")
    before = len(tg.sent_messages(OLGA))
    tg.push_document(OLGA, "/send builder-42 read this first", "../../notes <v2>.txt", b"hi")
    await retry_until(lambda: len(tg.sent_messages(OLGA)) > before, message="the reply")
    saved = tg.sent_messages(OLGA)[-1]["text"]
    assert saved == (
        "saved in builder-42's worktree: .farmbot-uploads/notes _v2_.txt; the path typed "
        "into builder-42"
    )
    folder = Path(agent.workdir) / ".farmbot-uploads"
    assert (folder / "notes _v2_.txt").read_bytes() == b"hi"
    assert (folder / ".gitignore").read_text().endswith("*\n")  # git leaves it alone
    await rig.farm.until_idle("builder-42")
    assert received_prompts(tmp_path)[-1] == (
        "read this first\nolga sent you a file: .farmbot-uploads/notes _v2_.txt"
    )

    photo = b"\xff\xd8" + b"x" * 100
    message = tg.push_document(OLGA, "/send builder-42", "", photo, photo=True)
    await retry_until(lambda: len(tg.sent_messages(OLGA)) > before + 1, message="the photo")
    name = f"photo-{message['message_id']}.jpg"
    assert (folder / name).read_bytes() == photo  # the largest size, not the thumbnail
    await rig.farm.until_idle("builder-42")
    assert received_prompts(tmp_path)[-1] == f"olga sent you a file: .farmbot-uploads/{name}"

    downloads = len([c for c in tg.calls if c[0] == "download"])
    tg.push_document(BOB, "/send builder-42", "x.txt", b"x")  # a viewer: refused, not fetched
    refusal = await retry_until(
        lambda: [m for m in tg.sent_messages(BOB) if "/send needs operator" in m["text"]],
        message="the refusal",
    )
    assert refusal
    tg.push_document(OLGA, "/tail builder-42", "x.txt", b"x")
    wrong = await retry_until(
        lambda: [m for m in tg.sent_messages(OLGA) if "takes no file" in m["text"]],
        message="the usage",
    )
    assert "/tail takes no file; send the file with the caption /send <agent>" in wrong[0]["text"]
    assert len([c for c in tg.calls if c[0] == "download"]) == downloads


async def test_a_file_too_large_is_refused_before_it_is_downloaded(
    config: Config, tmp_path: Path, tg: FakeTelegram
) -> None:
    small = replace(config, supervisor=replace(config.supervisor, max_file_bytes=1024))
    async with running(small, tmp_path, tg_config(tg), FakeClock()) as r:
        await reply_to(tg, ALICE, "/spawn shell")
        tg.push_document(ALICE, "/send shell-1", "big.bin", b"x" * 2048)
        refused = await retry_until(
            lambda: [m for m in tg.sent_messages(ALICE) if "big.bin" in m["text"]],
            message="the refusal",
        )
        assert refused[0]["text"] == (
            "big.bin is 2.0 KiB; farmbot takes files up to 1.0 KiB (supervisor.max_file_bytes)"
        )
        assert not [c for c in tg.calls if c[0] == "download"]
        assert r.telegram.received == 2


async def test_file_sends_a_worktree_file_as_a_document_and_nothing_outside(
    rig: Rig, tg: FakeTelegram, tmp_path: Path
) -> None:
    await reply_to(tg, ALICE, "/spawn builder 7")
    agent = await rig.farm.agent("builder-7")
    (Path(agent.workdir) / "out").mkdir()
    (Path(agent.workdir) / "out" / "report.txt").write_text("all <green>\n")
    (Path(agent.workdir) / "escape").symlink_to(tmp_path / "state")
    sent = await reply_to(tg, OLGA, "/file builder-7 out/report.txt")
    assert sent["caption"] == "out/report.txt from builder-7's worktree (12 B)"
    [doc] = tg.documents
    assert (doc["filename"], doc["data"]) == ("report.txt", b"all <green>\n")
    outside = await reply_to(tg, OLGA, "/file builder-7 escape/farmbot.db")
    assert "escape/farmbot.db is outside builder-7's worktree" in outside["text"]
    climbing = await reply_to(tg, OLGA, "/file builder-7 ../../../farmbot.db")
    assert "is outside builder-7's worktree" in climbing["text"]
    missing = await reply_to(tg, OLGA, "/file builder-7 nope.txt")
    assert missing["text"].startswith("no file nope.txt in builder-7's worktree")
    assert len(tg.documents) == 1


# -- a decided gate's buttons leave every copy ---------------------------------------------


async def test_a_decided_gate_loses_its_buttons_on_every_copy_and_an_unedited_copy_still_answers(
    config: Config, tmp_path: Path, tg: FakeTelegram
) -> None:
    other = -1009999
    tg.add_chat(other, type="supergroup", title="farm leads")
    tconf = tg_config(tg, alert_chats=(FORUM, other, -1007777))
    tg.add_chat(-1007777, type="supergroup", title="farm night shift")
    async with running(config, tmp_path, tconf, FakeClock()) as r:
        await r.gates.open("manual", "deploy", project="proj")
        assert await r.drain() == 3
        refs = [i.message_ref for i in await r.farm.storage.outbox.items_with_key("gate.opened:1")]
        copies = [tg.sent_messages(chat)[-1] for chat in (FORUM, other, -1007777)]
        assert refs == [None, *(f"{m['chat']['id']}:{m['message_id']}" for m in copies)]
        await press(tg, ALICE, copies[2], "/approve 1")
        await tg.wait_for("editMessageText")  # the pressed message says who decided
        tg.fail_next("editMessageText", 400, description="Bad Request: message to edit not found")
        assert await r.notifier.edit_queued() == 2  # one of three could not be edited
        forum, leads, pressed = (tg.sent_messages(c)[-1] for c in (FORUM, other, -1007777))
        for edited in (leads, pressed):
            assert "reply_markup" not in edited  # the buttons are gone
            assert edited["text"].endswith("\n\n✅ approved by alice at 22:13 UTC")
        assert keyboard(forum) == keyboard(copies[0])  # that edit failed: still there ...
        answer = await press(tg, ALICE, forum, "/reject 1")
        assert answer["text"] == "gate 1 was already approved by alice at 22:13 UTC"  # ... works
        assert (await r.gates.get(1)).status is GateStatus.APPROVED
        stats = r.notifier.statistics()
        assert (stats["edited"], stats["edits_failed"]) == (2, 1)


async def test_a_gate_decided_just_before_a_stop_loses_its_buttons_once_after_the_restart(
    config: Config, tmp_path: Path, tg: FakeTelegram
) -> None:
    other = -1009999
    tg.add_chat(other, type="supergroup", title="farm leads")
    tconf = tg_config(tg, alert_chats=(FORUM, other))
    clock = FakeClock()
    async with running(config, tmp_path, tconf, clock) as r:
        await r.gates.open("manual", "deploy", project="proj")
        assert await r.drain() == 2
        await r.gates.decide(1, Decision(approved=False, reason="not today"), "alice")
        # farmbot stops here: the edits were queued, never made
    copies = [tg.sent_messages(chat)[-1] for chat in (FORUM, other)]
    assert all(keyboard(m) for m in copies) and not _edits(tg)

    async with running(config, tmp_path, tconf, clock) as r:  # a new graph, same database
        assert await r.drain() == 0
        assert await r.notifier.edit_queued() == 2
        for chat, sent in zip((FORUM, other), copies, strict=True):
            [edited] = [m for m in tg.sent_messages(chat) if m["message_id"] == sent["message_id"]]
            assert "reply_markup" not in edited
            assert edited["text"].endswith("\n\n❌ rejected by alice at 22:13 UTC (not today)")
        items = await r.farm.storage.outbox.items_with_key("gate.opened:1")
        assert [i.edited_at for i in items if i.interface == "telegram"] == [clock(), clock()]

    async with running(config, tmp_path, tconf, clock) as r:  # and never again
        await r.drain()
        assert await r.notifier.edit_queued() == 0
    assert len(_edits(tg)) == 2


def _edits(tg: FakeTelegram) -> list[Params]:
    return [params for name, params in tg.calls if name == "editMessageText"]
