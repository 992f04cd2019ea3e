"""The Discord interface: the real discord.py against a fake Discord on 127.0.0.1, driving
the real router, supervisor (real tmux, the demo agent), gates and outbox.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from farmbot import events as ev
from farmbot.adapters.discord import BAD_TOKEN, DiscordInterface
from farmbot.adapters.discord_render import (
    FENCE,
    MAX_CONTENT,
    blocks,
    escape,
    plain,
    split,
    thread_of,
)
from farmbot.adapters.shared import InterfaceDeps
from farmbot.alerts import Notifier
from farmbot.bot.router import Router
from farmbot.bus import EventBus
from farmbot.config.alerts import AlertsConfig
from farmbot.config.discord import DiscordConfig, discord_routes, parse_discord
from farmbot.config.loader import load_config
from farmbot.config.reader import Table
from farmbot.config.schema import Config, UserConfig
from farmbot.errors import ConfigError, DeliveryError, PermanentDeliveryError, StorageError
from farmbot.messages import Button, Incoming, OutboundMessage, Reply, Severity
from farmbot.models import AgentKind, GateStatus, Role
from farmbot.storage import Storage, open_sqlite
from farmbot.supervisor.gates import Gates
from tests.fakes.discord_api import JSON, FakeDiscord, Interaction
from tests.farm import Farm, farm_for, make_config, received_prompts
from tests.helpers import FakeClock, retry_until

TOKEN = "MTMwMDAwMDAwMDAwMDAwMDAwMQ.GsEcRt.SECRET-token-never-logged"
GUILD = 1_300_000_000_000_000_001
CHAT = 1_300_000_000_000_000_002  # where people type commands
OPS = 1_300_000_000_000_000_003  # where alerts go
ALICE, BOB, OLGA, STRANGER = (1_400_000_000_000_000_000 + n for n in (1, 2, 3, 9))
USERS = (
    UserConfig("alice", Role.ADMIN, ids={"discord": ALICE}),
    UserConfig("bob", Role.VIEWER, ids={"discord": BOB}),
    UserConfig("olga", Role.OPERATOR, ids={"discord": OLGA}),
)
KEY = "k" * 32  # the web server's local key


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(token=TOKEN) as fake:
        fake.add_channel(CHAT, GUILD, "farm")
        fake.add_channel(OPS, GUILD, "ops")
        for user, name in ((ALICE, "alice"), (BOB, "bob"), (OLGA, "olga"), (STRANGER, "eve")):
            fake.add_user(user, name)
        yield fake


def dc_config(fake: FakeDiscord, **changes: Any) -> DiscordConfig:
    config = DiscordConfig(
        token=fake.token, guild_ids=(GUILD,), alert_channels=(str(OPS),), api_base=fake.api_base
    )
    return replace(config, **changes)


@dataclass
class Rig:
    farm: Farm
    discord: DiscordInterface
    router: Router
    notifier: Notifier
    bus: EventBus  # with alert rules routing to OPS
    gates: Gates
    clock: FakeClock

    async def drain(self) -> int:
        """Deliver the alerts due now; how many went out to Discord."""
        sent = self.discord.sent
        while await self.notifier.deliver_due():
            pass
        return self.discord.sent - sent


@asynccontextmanager
async def running(
    config: Config, tmp_path: Path, dconf: DiscordConfig, clock: FakeClock, fake: FakeDiscord
) -> AsyncIterator[Rig]:
    """The daemon's graph with Discord configured, and the Discord interface started."""
    config = replace(
        config, chats={"discord": dconf}, alerts=AlertsConfig(routes=discord_routes(dconf))
    )
    async with farm_for(config, tmp_path, clock, rand=lambda: 1.0) as farm:
        discord = farm.graph.interfaces["discord"]
        assert isinstance(discord, DiscordInterface)
        identified = len(fake.gateway_log)
        await discord.start(farm.router.handle)
        try:
            if discord.problem != BAD_TOKEN:
                await fake.wait_identified(identified + 1)
            notifier = farm.graph.alerts.notifier
            yield Rig(farm, discord, farm.router, notifier, farm.bus, farm.gates, clock)
        finally:
            await discord.stop()


def deps_of(storage: Storage, **changes: Any) -> InterfaceDeps:
    return InterfaceDeps(storage.actions, storage.threads, **changes)


@pytest.fixture
def config(tmp_path: Path, tmux_socket: str) -> Config:
    return make_config(tmp_path, tmux_socket, users=USERS)


@pytest.fixture
async def rig(config: Config, tmp_path: Path, fake: FakeDiscord) -> AsyncIterator[Rig]:
    async with running(config, tmp_path, dc_config(fake), FakeClock(), fake) as r:
        yield r


def unescape(text: str) -> str:
    """What Discord shows for escaped markdown."""
    return re.sub(r"\\(.)", r"\1", text)


def buttons(message: JSON) -> list[list[tuple[str, str]]]:
    rows = message.get("components", [])
    return [[(b["label"], b["custom_id"]) for b in row["components"]] for row in rows]


async def run(
    fake: FakeDiscord, user: int, name: str, count: int = 1, **options: Any
) -> list[JSON]:
    """Run a slash command in CHAT as ``user``; return the ``count`` messages answering it."""
    slash = await fake.slash(user, name, channel_id=CHAT, **options)
    await fake.wait_for(lambda: len(fake.replies(slash)) >= count, message=f"/{name}'s answer")
    assert slash.ack_type == 5 and slash.ack_delay is not None and slash.ack_delay < 1
    return fake.replies(slash)


async def press(fake: FakeDiscord, user: int, message: JSON, custom_id: str) -> Interaction:
    """Press a button; return the press once it was acknowledged."""
    pressed = await fake.press(user, message, custom_id)
    await fake.wait_for(lambda: pressed.callbacks, message="the press's acknowledgement")
    assert pressed.ack_type == 6 and pressed.ack_delay is not None and pressed.ack_delay < 1
    return pressed


async def settled(fake: FakeDiscord) -> None:
    """Wait until nothing new arrives at the fake for a moment."""
    seen = -1
    while seen != len(fake.calls):
        seen = len(fake.calls)
        await asyncio.sleep(0.2)


# -- commands ------------------------------------------------------------------------------


async def test_spawn_from_discord_reaches_tmux_and_a_tail_button_shows_escaped_output(
    rig: Rig, fake: FakeDiscord, tmp_path: Path
) -> None:
    [spawned] = await run(fake, ALICE, "spawn", kind="builder", n=42)
    assert unescape(spawned["content"]).startswith("spawned builder-42 (demo) in project proj")
    assert buttons(spawned) == [[("Tail", "/tail builder-42"), ("Kill", "/kill builder-42")]]
    assert spawned["allowed_mentions"] == {"parse": []}
    await rig.farm.until_idle("builder-42")
    assert received_prompts(tmp_path)[0].startswith("You are builder 42 on project proj.")
    [entry] = [
        e for e in await rig.farm.storage.audit.recent_audit() if e.command.startswith("/spawn")
    ]
    assert (entry.platform, entry.user_id, entry.user_name, entry.chat, entry.outcome) == (
        "discord",
        str(ALICE),
        "alice",
        str(CHAT),
        "ok",
    )

    prompt = "fix <b>fish & *chips*</b> for @everyone"
    [sent] = await run(fake, OLGA, "farm", text=f"send builder-42 {prompt}")
    assert unescape(sent["content"]).startswith("sent to builder-42")
    await rig.farm.until_screen("builder-42", f"✓ done: {prompt}")

    pressed = await press(fake, ALICE, spawned, "/tail builder-42")
    await fake.wait_for(lambda: fake.replies(pressed), message="the tail")
    [screen] = fake.replies(pressed)
    assert unescape(screen["content"]).startswith("builder-42 (")
    code = screen["content"].split(f"{FENCE}\n", 1)[1]
    assert f"> received: {prompt}" in code  # verbatim in a code block, pinging nobody
    assert buttons(screen) == [[("Refresh", "/tail builder-42 40")]]
    assert fake.message(int(spawned["id"])) == spawned  # the pressed message is unchanged
    assert rig.discord.received == 2 and rig.discord.pressed == 1


async def test_a_stranger_is_refused_politely_audited_and_nothing_runs(
    rig: Rig, fake: FakeDiscord
) -> None:
    [refused] = await run(fake, STRANGER, "spawn", kind="builder", n=1)
    text = unescape(refused["content"])
    assert "not on this farmbot's allowlist" in text
    assert f"discord = {STRANGER}" in text
    [entry] = await rig.farm.storage.audit.recent_audit()
    assert (entry.user_id, entry.user_name, entry.outcome) == (str(STRANGER), None, "denied")
    assert await rig.farm.storage.agents.list_agents() == []


@asynccontextmanager
async def answering(
    fake: FakeDiscord,
    tmp_path: Path,
    reply: Reply,
    seen: list[Incoming] | None = None,
    **changes: Any,
) -> AsyncIterator[DiscordInterface]:
    """An interface whose every command gets ``reply``; what it hears goes to ``seen``."""

    async def handle(msg: Incoming) -> Reply:
        (seen if seen is not None else []).append(msg)
        return reply

    async with open_sqlite(tmp_path / "replies.db") as storage:
        discord = DiscordInterface(dc_config(fake, **changes), deps_of(storage))
        before = len(fake.gateway_log)
        await discord.start(handle)
        try:
            await fake.wait_identified(before + 1)
            yield discord
        finally:
            await discord.stop()


@pytest.mark.parametrize(
    ("name", "options", "text"),
    [
        ("farm", {"text": "spawn builder 42 proj"}, "/spawn builder 42 proj"),
        ("farm", {"text": "/agents"}, "/agents"),
        ("farm", {}, "/help"),
        ("spawn", {"kind": "builder", "n": 42, "project": "proj"}, "/spawn builder 42 proj"),
        ("spawn", {"kind": "architect"}, "/spawn architect"),
        (
            "send",
            {"agent": "builder-42", "text": "run the tests"},
            "/send builder-42 run the tests",
        ),
        ("tail", {"agent": "builder-42", "lines": 80}, "/tail builder-42 80"),
        ("approve", {"gate": 7}, "/approve 7"),
        ("reject", {"gate": 7, "reason": "not now"}, "/reject 7 not now"),
        ("status", {}, "/status"),
        ("agents", {}, "/agents"),
        ("gates", {}, "/gates"),
        ("help", {"command": "spawn"}, "/help spawn"),
    ],
)
async def test_each_slash_command_becomes_command_text_for_the_router(
    fake: FakeDiscord, tmp_path: Path, name: str, options: dict[str, Any], text: str
) -> None:
    seen: list[Incoming] = []
    async with answering(fake, tmp_path, Reply("ok"), seen):
        [answer] = await run(fake, OLGA, name, **options)
    assert answer["content"] == "ok"
    assert seen == [Incoming("discord", str(OLGA), str(CHAT), text, "Olga (@olga)")]


# -- gates and buttons ---------------------------------------------------------------------


async def open_gate_alert(r: Rig, fake: FakeDiscord, title: str = "deploy <prod> & @here") -> JSON:
    gate = await r.gates.open("manual", title, project="proj")
    assert await r.drain() == 1
    message = fake.messages(OPS)[-1]
    [[approve, (label, data)]] = buttons(message)
    assert approve == ("Approve", f"/approve {gate.id}")
    assert label == "Reject" and data.startswith("a:")  # it asks why: stored with its question
    return message


def reject_id(message: JSON) -> str:
    [data] = [d for row in buttons(message) for label, d in row if label == "Reject"]
    return data


async def open_question(fake: FakeDiscord, user: int, message: JSON) -> Interaction:
    """Press Reject as ``user``; the press, once answered with its modal."""
    pressed = await fake.press(user, message, reject_id(message))
    await fake.wait_for(lambda: pressed.callbacks, message="the modal")
    assert pressed.ack_type == 9 and pressed.ack_delay is not None and pressed.ack_delay < 1
    return pressed


async def test_a_gate_button_is_authorized_against_whoever_presses_it(
    rig: Rig, fake: FakeDiscord
) -> None:
    alert = await open_gate_alert(rig, fake)
    title = "**⚠️ gate #1 waits for a decision: deploy \\<prod> & \\@here**\n"
    assert alert["content"].startswith(title)  # \@here pings nobody

    refused = await press(fake, BOB, alert, "/approve 1")
    await fake.wait_for(lambda: refused.followups, message="the refusal")
    [refusal] = fake.replies(refused)
    assert unescape(refusal["content"]) == "bob is a viewer; /approve needs admin or above"
    assert refusal in fake.messages(CHAT, ephemeral=True) + fake.messages(OPS, ephemeral=True)
    assert fake.messages(OPS) == [alert]  # unchanged, buttons still there
    assert (await rig.gates.get(1)).status is GateStatus.PENDING

    approved = await press(fake, ALICE, alert, "/approve 1")
    await fake.wait_for(
        lambda: fake.requests("PATCH /webhooks/{app}/{token}/messages/@original"),
        message="the edit",
    )
    [edited] = fake.messages(OPS)
    assert unescape(edited["content"]) == (
        unescape(alert["content"]) + "\n\n✅ gate 1 approved by alice at 2023-11-14 22:13 UTC: "
        "deploy <prod> & @here"
    )
    assert edited["components"] == []  # the decided row is gone
    assert approved.followups == []  # the edit is the answer
    gate = await rig.gates.get(1)
    assert (gate.status, gate.decided_by) == (GateStatus.APPROVED, "alice")
    assert all(i.acked_at is not None for i in fake.interactions.values())  # all answered


async def test_reject_opens_a_modal_and_its_answer_is_the_reason(
    rig: Rig, fake: FakeDiscord
) -> None:
    alert = await open_gate_alert(rig, fake, "deploy")
    asked = await open_question(fake, ALICE, alert)
    modal = asked.modal
    assert modal is not None and modal["title"] == "Reject"
    [field] = modal["components"]
    assert field["type"] == 18 and field["label"] == "Why? (optional; sent to the agent)"
    assert field["description"] == "It goes with /reject 1; leave it empty for none."
    assert (field["component"]["style"], field["component"]["required"]) == (2, False)

    # Someone else submitting alice's modal (a forged request) is refused and audited.
    forged = await fake.submit(BOB, asked, {"answer": "fine by me"})
    await fake.wait_for(lambda: forged.followups, message="the refusal")
    [refusal] = fake.replies(forged)
    assert unescape(refusal["content"]) == "that question was put to alice: only they may answer it"
    assert refusal in fake.messages(OPS, ephemeral=True)
    assert (await rig.gates.get(1)).status is GateStatus.PENDING
    [entry, *_] = await rig.farm.storage.audit.recent_audit()
    assert (entry.user_name, entry.command, entry.outcome) == (
        "bob",
        "/reject 1 fine by me",
        "denied",
    )

    reason = "the migration is not reversible;\nsplit it in two"
    submitted = await fake.submit(ALICE, asked, {"answer": reason})
    await fake.wait_for(lambda: fake.messages(OPS)[0]["components"] == [], message="the edit")
    assert submitted.ack_type == 6  # a deferred update of the alert
    [edited] = fake.messages(OPS)
    assert unescape(edited["content"]).endswith(f"({reason}): deploy")
    gate = await rig.gates.get(1)
    assert (gate.status, gate.reason, gate.decided_by) == (GateStatus.REJECTED, reason, "alice")
    [entry, *_] = await rig.farm.storage.audit.recent_audit()
    assert (entry.command, entry.outcome, entry.detail) == (f"/reject 1 {reason}", "ok", "button; ")


async def test_a_modal_opened_before_a_restart_is_answered_after_it(
    config: Config, tmp_path: Path, fake: FakeDiscord
) -> None:
    async with running(config, tmp_path, dc_config(fake), FakeClock(), fake) as before:
        alert = await open_gate_alert(before, fake, "deploy")
        asked = await open_question(fake, ALICE, alert)
    async with running(config, tmp_path, dc_config(fake), FakeClock(), fake) as after:
        await fake.submit(ALICE, asked)  # nothing typed: rejected without a reason
        await fake.wait_for(lambda: fake.messages(OPS)[0]["components"] == [], message="the edit")
        gate = await after.gates.get(1)
        assert (gate.status, gate.reason) == (GateStatus.REJECTED, "")


async def test_task_opens_a_form_whose_body_keeps_its_lines(rig: Rig, fake: FakeDiscord) -> None:
    command = await fake.slash(OLGA, "task", channel_id=CHAT, project="proj")
    await fake.wait_for(lambda: command.callbacks, message="the form")
    assert command.ack_type == 9 and command.modal is not None
    form = command.modal
    inputs = [c["component"]["custom_id"] for c in form["components"]]
    assert inputs == ["project", "title", "body", "after", "priority"]
    assert form["components"][0]["component"]["value"] == "proj"  # filled in from the option
    body = "The page has two fields.\n\n- a name\n- a password"
    values = {"project": "proj", "title": "Add a login page", "body": body, "priority": "high"}
    submitted = await fake.submit(OLGA, command, values)
    await fake.wait_for(lambda: fake.replies(submitted), message="the answer")
    [answer] = fake.replies(submitted)
    assert unescape(answer["content"]).startswith("queued task 1 [proj] (high): Add a login page")
    task = await rig.farm.storage.tasks.get_task(1)
    assert task is not None and (task.title, task.body) == ("Add a login page", body)

    second = await fake.slash(OLGA, "task", channel_id=CHAT)
    await fake.wait_for(lambda: second.callbacks, message="the form")
    values = {"project": "proj", "title": "Then this", "after": "#1, 7"}
    refused = await fake.submit(OLGA, second, values)
    await fake.wait_for(lambda: fake.replies(refused), message="the answer")
    [told] = fake.replies(refused)
    assert unescape(told["content"]) == (
        "the task depends on task 7, which does not exist; /tasks proj --all lists them"
    )  # "#1, 7" is tasks 1 and 7
    assert await rig.farm.storage.tasks.get_task(2) is None


async def test_a_press_after_a_restart_still_decides_the_gate(
    config: Config, tmp_path: Path, fake: FakeDiscord
) -> None:
    clock = FakeClock()
    reason = "the migration is not reversible; split it in two and add a rollback test " * 2
    async with running(config, tmp_path, dc_config(fake), clock, fake) as before:
        alert = await open_gate_alert(before, fake, "deploy")
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
        await before.discord.send(str(OPS), long)
    second = fake.messages(OPS)[-1]
    [[(_, data)]] = buttons(second)
    assert data.startswith("a:")  # over 100 characters: stored

    clock.advance(3600)
    async with running(config, tmp_path, dc_config(fake), clock, fake) as after:
        await press(fake, ALICE, alert, "/approve 1")
        await press(fake, ALICE, second, data)
        await fake.wait_for(
            lambda: all(m["components"] == [] for m in fake.messages(OPS)[::2]),
            message="both messages edited",
        )
        assert (await after.gates.get(1)).status is GateStatus.APPROVED
        rejected = await after.gates.get(2)
        assert (rejected.status, rejected.reason) == (GateStatus.REJECTED, reason.strip())
    texts = [unescape(m["content"]) for m in fake.messages(OPS)]
    assert texts[0].endswith("\n\n✅ gate 1 approved by alice at 2023-11-14 23:13 UTC: deploy")
    assert texts[2].endswith(f"({reason.strip()}): migrate")


async def test_a_press_is_answered_while_a_long_command_of_the_same_person_runs(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    release = asyncio.Event()

    async def handle(msg: Incoming) -> Reply:
        if not msg.button:
            await release.wait()  # a long command, typed
            return Reply("the long one is done")
        return Reply(f"pressed {msg.text}")

    async with open_sqlite(tmp_path / "busy.db") as storage:
        discord = DiscordInterface(dc_config(fake), deps_of(storage))
        await discord.start(handle)
        try:
            await fake.wait_identified()
            alert = OutboundMessage(1, 1, Severity.INFO, "t", "x", None,
                                    ((Button("Status", "/status"),),), None, None)  # fmt: skip
            await discord.send(str(CHAT), alert)
            message = fake.messages(CHAT)[-1]
            long = await fake.slash(ALICE, "farm", channel_id=CHAT, text="status")
            await fake.wait_for(lambda: long.callbacks, message="the command's defer")
            pressed = await press(fake, ALICE, message, "/status")
            await fake.wait_for(lambda: fake.replies(pressed), message="the press's answer")
            assert fake.replies(pressed)[0]["content"] == "pressed /status"
            assert fake.replies(long) == []  # still running
            release.set()
            await fake.wait_for(lambda: fake.replies(long), message="the long command")
        finally:
            await discord.stop()


async def test_an_answer_later_than_the_interaction_token_lives_goes_to_the_channel(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    release = asyncio.Event()

    async def handle(msg: Incoming) -> Reply:
        await release.wait()  # longer than Discord's 15 minutes, say
        return Reply("finally done")

    async with open_sqlite(tmp_path / "late.db") as storage:
        discord = DiscordInterface(dc_config(fake), deps_of(storage))
        await discord.start(handle)
        try:
            await fake.wait_identified()
            slow = await fake.slash(ALICE, "farm", channel_id=CHAT, text="status")
            await fake.wait_for(lambda: slow.callbacks, message="the defer")
            fake.expire(slow)
            release.set()
            await fake.wait_for(lambda: fake.messages(CHAT), message="the answer in the channel")
            assert [m["content"] for m in fake.messages(CHAT)] == ["finally done"]
        finally:
            await discord.stop()


async def test_an_unreachable_discord_at_start_is_retried_in_the_background(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    await fake.go_down()

    async def quick(seconds: float) -> None:
        await asyncio.sleep(0.05)

    async with open_sqlite(tmp_path / "down.db") as storage:
        discord = DiscordInterface(dc_config(fake), deps_of(storage, sleep=quick))
        await discord.start(lambda msg: _reply(Reply("up")))
        try:
            assert discord.problem is not None and discord.problem.startswith("cannot reach")
            await fake.come_up()
            await fake.wait_identified()
            await retry_until(lambda: discord.problem is None, message="the interface to work")
            [answer] = await run(fake, ALICE, "status")
            assert answer["content"] == "up"
        finally:
            await discord.stop()


async def _reply(reply: Reply) -> Reply:
    return reply


async def test_a_button_whose_stored_command_cannot_be_read_is_answered(
    rig: Rig, fake: FakeDiscord, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    command = "/send builder-1 " + "x" * 100  # too long for a custom_id: stored
    alert = OutboundMessage(0, 0, Severity.INFO, "t", "x", None, ((Button("Send", command),),),
                            None, None)  # fmt: skip
    await rig.discord.send(str(OPS), alert)
    message = fake.messages(OPS)[-1]
    [[(_, data)]] = buttons(message)

    async def unreadable(action_id: int) -> str | None:
        raise StorageError("database is locked")

    monkeypatch.setattr(rig.farm.storage.actions, "get_action", unreadable)
    pressed = await press(fake, ALICE, message, data)
    await fake.wait_for(lambda: fake.replies(pressed), message="the answer")
    assert fake.replies(pressed)[0]["content"] == "farmbot could not read that button; try again"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == ["discord: a button's stored command could not be read: database is locked"]
    assert await rig.farm.storage.audit.recent_audit() == []  # nothing ran


# -- long and hostile output ----------------------------------------------------------------


async def test_a_reply_over_2000_characters_is_split_at_lines_and_nothing_is_lost(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    text = "\n".join(f"agent {i}: busy <since> a *while* & more 😀" for i in range(60))
    pre = "\n".join(f"$ make test  # step {i} of <many> & ``` counting" for i in range(70))
    reply = Reply(text, pre=pre, buttons=((Button("Refresh", "/agents"),),))
    async with answering(fake, tmp_path, reply):
        slash = await fake.slash(ALICE, "agents", channel_id=CHAT)
        await fake.wait_for(lambda: any(m["components"] for m in fake.replies(slash)))
        messages = fake.replies(slash)
    assert len(messages) > 2
    assert all(len(m["content"]) <= MAX_CONTENT for m in messages)
    assert [bool(m["components"]) for m in messages] == [False] * (len(messages) - 1) + [True]
    shown = "\n".join(m["content"] for m in messages)
    prose, _, code = shown.partition(FENCE)
    assert unescape(prose).rstrip("\n") == text
    assert all(m["content"].count(FENCE) % 2 == 0 for m in messages)  # balanced fences
    lines = [line for line in code.split("\n") if line != FENCE and line]
    assert "\n".join(lines).replace("\u200b", "") == pre


async def test_a_huge_reply_is_sent_as_a_file(fake: FakeDiscord, tmp_path: Path) -> None:
    pre = "\n".join(f"{i:05d} <output> & more" for i in range(2000))
    async with answering(fake, tmp_path, Reply("builder-1: last 2000 lines", pre=pre)):
        [answer] = await run(fake, ALICE, "tail", agent="builder-1", lines=2000)
    [attachment] = answer["attachments"]
    assert fake.attachments[int(attachment["id"])].decode() == f"builder-1: last 2000 lines\n{pre}"
    assert attachment["filename"] == "reply.txt"
    assert answer["content"] == (
        "**builder-1: last 2000 lines**\n(the whole text, 2001 lines, is in the attached file)"
    )


async def test_mentions_and_markdown_from_agents_are_neutralised(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    text = "@everyone look: <@123> and <@&456> in **bold** ||spoiler|| [x](https://e.vil)\n> q"
    pre = "``` not the end ```\n@here"
    async with answering(fake, tmp_path, Reply(text, pre=pre)):
        [answer] = await run(fake, ALICE, "status")
    content = answer["content"]
    assert unescape(content.split(FENCE)[0]).rstrip("\n") == text
    for raw in ("<@123>", "<@&456>", "**bold**", "||", "[x]", "\n> q"):
        assert raw not in content.split(FENCE)[0]
    assert re.findall(r".@everyone", content) == ["\\@everyone"]
    assert content.count(FENCE) == 2  # the output's own fences cannot close the block
    assert answer["allowed_mentions"] == {"parse": []}


def test_split_keeps_code_blocks_whole_and_counts_utf16() -> None:
    pre = "\n".join(f"{i} <&> " + "😀" * 30 for i in range(20))
    parts = blocks("head & <tail>", pre=pre, title="T")
    chunks = split(parts, limit=300)
    assert chunks[0].startswith("**T**\nhead & \\<tail>\n```\n")
    assert all(len(c.encode("utf-16-le")) // 2 <= 300 for c in chunks)
    assert all(c.count(FENCE) % 2 == 0 for c in chunks)
    inner = [c.split(f"{FENCE}\n", 1)[-1].removesuffix(f"\n{FENCE}") for c in chunks[1:]]
    assert "\n".join(inner) in plain(parts)
    assert escape("1. x\n- y\n# z") == "1\\. x\n\\- y\n\\# z"


def test_threads_are_kept_per_project_or_per_agent_and_never_for_nothing() -> None:
    alert = OutboundMessage(1, 1, Severity.WARNING, "t", "x", None, (), "builder-7", "web")
    assert thread_of("project", alert) == ("project:web", "farmbot · web")
    assert thread_of("agent", alert) == ("agent:builder-7", "farmbot · builder-7")
    assert thread_of("none", alert) is None
    assert thread_of("project", replace(alert, project=None)) is None  # to the channel


# -- alerts --------------------------------------------------------------------------------


async def discord_errors(r: Rig) -> list[str]:
    """The last error of each outbox item for Discord, oldest first."""
    items = [await r.farm.storage.outbox.get_outbox(i) for i in range(1, 20)]
    return [i.last_error for i in items if i is not None and i.interface == "discord"]


async def stuck(r: Rig, agent: str) -> None:
    await r.bus.publish(ev.AgentStuck(agent_id=agent, project="proj", reason="no output"))


async def test_a_long_429_is_surfaced_as_retry_after_and_each_alert_goes_once_in_order(
    rig: Rig, fake: FakeDiscord
) -> None:
    route = "POST /channels/{id}/messages"
    fake.fail_next(route, 429, retry_after=45)  # longer than discord.py waits by itself
    fake.fail_next(route, 503)
    for agent in ("builder-1", "builder-2", "builder-3"):
        await stuck(rig, agent)
    assert await rig.drain() == 0  # 429: wait 45 s
    assert "rate limited for 45s" in (await discord_errors(rig))[0]
    rig.clock.advance(44)
    assert await rig.drain() == 0
    rig.clock.advance(1)
    assert await rig.drain() == 0  # 503: back off
    rig.clock.advance(10)
    assert await rig.drain() == 3
    titles = [unescape(m["content"]).split("\n")[0] for m in fake.messages(OPS)]
    assert titles == [f"**⚠️ builder-{n} is stuck**" for n in (1, 2, 3)]
    assert len(fake.requests(route)) == 5


async def test_a_short_429_is_waited_out_and_a_reply_waits_out_a_429_too(
    rig: Rig, fake: FakeDiscord
) -> None:
    fake.fail_next("POST /channels/{id}/messages", 429, retry_after=0.3)
    await stuck(rig, "builder-1")
    assert await rig.drain() == 1  # discord.py slept 0.3 s and sent it, once
    assert len(fake.messages(OPS)) == 1

    fake.fail_next("PATCH /webhooks/{app}/{token}/messages/@original", 429, retry_after=0.3)
    [status] = await run(fake, BOB, "status")
    assert unescape(status["content"]).startswith("agents:")
    assert len(fake.requests("PATCH /webhooks/{app}/{token}/messages/@original")) == 2


async def test_alerts_wait_while_discord_is_down_and_go_out_after(
    rig: Rig, fake: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await fake.go_down()  # connection refused
    await rig.bus.publish(ev.AgentDead(agent_id="builder-1", project="proj", reason="exit 3"))
    assert await rig.drain() == 0
    [error] = await discord_errors(rig)
    assert "cannot reach Discord" in error
    await retry_until(lambda: not rig.discord.hearing().ok, message="hearing the outage")
    assert "gateway not connected" in rig.discord.hearing().detail
    await fake.come_up()
    rig.clock.advance(10)
    assert await rig.drain() == 1
    [message] = fake.messages(OPS)
    assert unescape(message["content"]).startswith("**🔴 builder-1 died**\n")
    await fake.wait_identified(2, timeout=30)  # the gateway came back by itself
    assert_no_token(caplog)


async def test_unknown_and_forbidden_channels_are_permanent_errors_that_say_what_to_do(
    rig: Rig, fake: FakeDiscord
) -> None:
    message = OutboundMessage(1, 1, Severity.WARNING, "t", "x", None, (), None, None)
    with pytest.raises(
        PermanentDeliveryError, match=r"channel 5: .*Unknown Channel.*alert_channels"
    ):
        await rig.discord.send("5", message)
    fake.forbid(OPS)
    with pytest.raises(PermanentDeliveryError, match=r"Missing Access.*invite it"):
        await rig.discord.send(str(OPS), message)


async def test_a_long_alert_goes_out_as_one_message_with_a_file(
    rig: Rig, fake: FakeDiscord
) -> None:
    pre = "\n".join(f"line {i} <&>" for i in range(600))
    tail = ((Button("Tail", "/tail builder-1"),),)
    message = OutboundMessage(
        1, 1, Severity.CRITICAL, "QA failed", "see the log", pre, tail, "builder-1", "proj"
    )
    await rig.discord.send(str(OPS), message)
    [sent] = fake.messages(OPS)
    [attachment] = sent["attachments"]
    assert attachment["filename"] == "alert-1.txt"
    assert fake.attachments[int(attachment["id"])].decode() == f"🔴 QA failed\nsee the log\n{pre}"
    assert buttons(sent) == [[("Tail", "/tail builder-1")]]
    assert len(fake.requests("POST /channels/{id}/messages")) == 1


async def test_a_thread_per_agent_survives_a_restart_and_is_started_anew_when_deleted(
    config: Config, tmp_path: Path, fake: FakeDiscord
) -> None:
    clock, dconf = FakeClock(), dc_config(fake, threads="agent")
    async with running(config, tmp_path, dconf, clock, fake) as r:
        await stuck(r, "builder-1")
        await stuck(r, "builder-2")
        assert await r.drain() == 2
        first, _ = fake.messages(OPS)
        assert {t["name"] for t in fake.threads(OPS)} == {
            "farmbot · builder-1",
            "farmbot · builder-2",
        }
        thread = await r.farm.storage.threads.get_thread("discord", str(OPS), "agent:builder-1")
        assert thread is not None and thread == first["id"]  # hangs off its first alert
    async with running(config, tmp_path, dconf, clock, fake) as r:
        await r.bus.publish(ev.AgentDead(agent_id="builder-1", project="proj", reason="exit 3"))
        assert await r.drain() == 1
        [died] = fake.messages(int(thread))
        assert "builder-1 died" in unescape(died["content"])
        fake.delete_channel(int(thread))
        clock.advance(600)
        await stuck(r, "builder-1")
        assert await r.drain() == 1
        fresh = fake.messages(OPS)[-1]  # in the channel again, with a new thread on it
        assert "builder-1 is stuck" in unescape(fresh["content"])
        assert (
            await r.farm.storage.threads.get_thread("discord", str(OPS), "agent:builder-1")
            == fresh["id"]
        )


# -- health: tokens, the gateway, hearing ---------------------------------------------------


def assert_no_token(caplog: pytest.LogCaptureFixture) -> None:
    assert TOKEN not in caplog.text
    for record in caplog.records:
        assert TOKEN not in record.getMessage() and TOKEN not in (record.exc_text or "")


async def test_an_invalid_token_marks_the_interface_failed_and_the_rest_runs(
    config: Config, tmp_path: Path, fake: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = replace(dc_config(fake), token="MTIz.WRONG.token-never-logged")
    async with running(config, tmp_path, wrong, FakeClock(), fake) as r:
        assert r.discord.problem == BAD_TOKEN
        assert await r.discord.ready() == BAD_TOKEN
        assert not r.discord.hearing().ok and r.discord.hearing().detail == BAD_TOKEN
        await stuck(r, "builder-1")
        assert await r.drain() == 0
        [dead] = await r.farm.storage.outbox.dead_letters()
        assert "fix discord.token" in dead.last_error
        reply = await r.router.handle(Incoming("web", "local-key", "console", "/status"))
        assert reply.ok  # the rest of farmbot keeps working
        # /readyz and the status page (its problems) say which interface failed, and why.
        web = r.farm.graph.web
        await web.start(r.router.handle)
        try:
            bearer = {"Authorization": f"Bearer {r.farm.graph.key}"}
            base = f"http://127.0.0.1:{web.port}"
            async with aiohttp.ClientSession(headers=bearer) as http:
                async with http.get(f"{base}/readyz") as got:
                    assert got.status == 503
                    assert (await got.json())["failing"]["discord"] == BAD_TOKEN
                async with http.get(f"{base}/api/status") as got:
                    problems = (await got.json())["problems"]
                    assert problems["discord"] == BAD_TOKEN, problems
        finally:
            await web.stop()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors.count(f"discord: {BAD_TOKEN}") == 1
    assert "WRONG.token" not in caplog.text
    assert [c.route for c in fake.calls] == ["GET /users/@me"]


async def test_the_token_never_reaches_a_log_record(
    rig: Rig, fake: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await run(fake, BOB, "status")
    fake.drop_gateway()  # a RESUME sends the token again
    await fake.wait_identified(2)
    logging.getLogger("discord.gateway").debug("sent %s", f"Bot {TOKEN}")  # a library slip
    assert "<redacted>" in caplog.text
    assert_no_token(caplog)


async def test_a_dropped_gateway_is_resumed_and_commands_work_after(
    rig: Rig, fake: FakeDiscord
) -> None:
    await retry_until(lambda: rig.discord.hearing().ok, message="the first ACK")
    fake.drop_gateway()
    await fake.wait_identified(2)
    assert [kind for kind, _ in fake.gateway_log] == ["identify", "resume"]
    [status] = await run(fake, BOB, "status")
    assert unescape(status["content"]).startswith("agents:")
    await retry_until(lambda: rig.discord.hearing().ok, message="hearing again")


async def test_hearing_goes_bad_when_heartbeats_are_no_longer_acked(
    rig: Rig, fake: FakeDiscord
) -> None:
    await retry_until(lambda: rig.discord.hearing().ok, message="the first ACK")
    hearing = rig.discord.hearing()
    assert hearing.last_heard == rig.clock() and "no interaction yet" in hearing.detail
    await run(fake, BOB, "status")
    rig.clock.advance(120)
    await retry_until(lambda: rig.discord.hearing().ok, message="an ACK at the new time")
    assert "last interaction 2m ago" in rig.discord.hearing().detail
    fake.ack_heartbeats = False
    beats = fake.heartbeats
    await fake.wait_for(lambda: fake.heartbeats >= beats + 2, message="unanswered heartbeats")
    assert rig.discord.hearing().ok  # not yet overdue
    rig.clock.advance(6)
    hearing = rig.discord.hearing()
    assert not hearing.ok and hearing.detail.startswith("no heartbeat ACK for 6s")
    assert rig.discord.problem is not None and "no heartbeat ACK" in rig.discord.problem
    assert "problem='discord gateway: no heartbeat ACK" in repr(rig.discord)
    fake.ack_heartbeats = True
    await retry_until(lambda: rig.discord.hearing().ok, message="ACKs again")


async def test_commands_not_synced_to_a_guild_are_a_problem_that_says_why(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    async with answering(fake, tmp_path, Reply("ok"), guild_ids=(GUILD, 42)) as discord:
        assert discord.problem is not None
        assert "not synced guild 42 (403 Missing Access)" in discord.problem
        assert "applications.commands" in discord.problem
        assert fake.commands[GUILD]  # the other guild got them


# -- config --------------------------------------------------------------------------------


def _table(data: dict[str, object]) -> Table:
    return Table(data, "discord", {"DC": TOKEN, "NOT": "xoxb-123"}, Path("."))


def test_config_reads_the_token_from_the_environment_and_hides_it() -> None:
    config = parse_discord(
        _table(
            {
                "token": "env:DC",
                "guild_ids": [GUILD],
                "alert_channels": [OPS, str(CHAT)],
                "alert_min_severity": "critical",
                "threads": "project",
                "api_base": "http://127.0.0.1:8080/api/v10/",
                "gateway_url": "ws://127.0.0.1:8080/gateway",
            }
        )
    )
    assert config.token == TOKEN and config.guild_ids == (GUILD,)
    assert config.alert_channels == (str(OPS), str(CHAT)) and config.threads == "project"
    assert config.api_base == "http://127.0.0.1:8080/api/v10"
    assert TOKEN not in repr(config) and "<hidden>" in repr(config)
    [first, second] = discord_routes(config)
    assert (first.interface, first.channel, first.min_severity) == (
        "discord",
        str(OPS),
        Severity.CRITICAL,
    )
    assert second.channel == str(CHAT)


DC = {"token": "env:DC"}


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({}, "token: missing"),
        ({"token": TOKEN}, 'token: secrets are never written in the file; use "env:NAME"'),
        ({"token": "env:NOPE"}, "token: environment variable NOPE is not set"),
        ({"token": "env:NOT"}, "token: does not look like a bot token"),
        ({**DC, "guild_ids": "123"}, "guild_ids: expected an array of guild ids"),
        ({**DC, "guild_ids": [1.5]}, "guild_ids[0]: expected a guild id"),
        ({**DC, "alert_channels": ["#ops"]}, "alert_channels[0]: expected a channel id"),
        ({**DC, "alert_channels": [OPS, OPS]}, "alert_channels: lists a channel twice"),
        ({**DC, "threads": "topic"}, "threads: unknown threads mode 'topic'"),
        ({**DC, "api_base": "discord.com"}, "api_base: must be an http:// or https:// URL"),
        ({**DC, "gateway_url": "http://x"}, "gateway_url: must be a ws:// or wss:// URL"),
        ({**DC, "tokn": 1}, "tokn: unknown key (did you mean 'token'?)"),
    ],
)
def test_config_errors_name_the_key_and_never_the_token(
    data: dict[str, object], error: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_discord(_table(data))
    assert str(caught.value).startswith(f"config: discord.{error}")
    assert TOKEN not in str(caught.value)


def test_a_route_to_discord_is_valid_once_discord_is_configured(tmp_path: Path) -> None:
    path = tmp_path / "farmbot.toml"
    route = '[[alerts.routes]]\ninterface = "discord"\nchannel = "99"\n'
    path.write_text(f'[discord]\ntoken = "env:DC"\nalert_channels = [{OPS}]\n{route}')
    config = load_config(path, {"DC": TOKEN}, tmp_path)
    discord = config.chat(DiscordConfig)
    assert discord is not None and discord.alert_channels == (str(OPS),)
    assert {(r.interface, r.channel) for r in config.alerts.routes} == {
        ("discord", "99"),
        ("discord", str(OPS)),
    }


async def test_sending_before_start_or_with_storage_failing_is_a_retryable_error(
    fake: FakeDiscord, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = OutboundMessage(1, 1, Severity.WARNING, "t", "x", None, (), "builder-1", "proj")
    async with open_sqlite(tmp_path / "s.db") as storage:
        idle = DiscordInterface(dc_config(fake), deps_of(storage))
        with pytest.raises(DeliveryError, match="not connected"):
            await idle.send(str(OPS), message)
    async with answering(fake, tmp_path, Reply("ok"), threads="agent") as discord:

        async def unreadable(*args: object) -> str | None:
            raise StorageError("disk I/O error")

        monkeypatch.setattr(discord._threads, "get_thread", unreadable)
        with pytest.raises(DeliveryError, match="storage failed: disk I/O error") as caught:
            await discord.send(str(OPS), message)
        assert not isinstance(caught.value, PermanentDeliveryError)


# -- /ping, files, a decided gate's every copy ---------------------------------------------


async def test_ping_answers_on_discord_from_the_interaction_time(
    rig: Rig, fake: FakeDiscord
) -> None:
    await retry_until(lambda: rig.discord.hearing().ok, message="the first ACK")
    [pong] = await run(fake, BOB, "ping")
    first, second = unescape(pong["content"]).split("\n")
    assert re.fullmatch(
        r"pong from discord: \d+ ms from your message to this answer; 0 ms of it inside farmbot",
        first,
    ), first
    assert second.startswith("discord hears: gateway heartbeat acked")


async def test_a_file_given_to_send_goes_into_the_worktree_and_file_sends_one_back(
    rig: Rig, fake: FakeDiscord, tmp_path: Path
) -> None:
    await rig.farm.supervisor.spawn(AgentKind.BUILDER, 42, None, "alice")
    agent = await rig.farm.until_idle("builder-42")
    spec = fake.upload("spec v2.md", b"# spec\n")
    [saved] = await run(fake, OLGA, "send", agent="builder-42", file=spec)
    assert unescape(saved["content"]) == (
        "saved in builder-42's worktree: .farmbot-uploads/spec v2.md; the path typed into "
        "builder-42"
    )
    assert (Path(agent.workdir) / ".farmbot-uploads" / "spec v2.md").read_bytes() == b"# spec\n"
    await rig.farm.until_idle("builder-42")
    assert received_prompts(tmp_path)[-1] == "olga sent you a file: .farmbot-uploads/spec v2.md"

    (Path(agent.workdir) / "build.log").write_bytes(b"ok\n" * 10)
    [sent] = await run(fake, OLGA, "file", agent="builder-42", path="build.log")
    assert unescape(sent["content"]) == "build.log from builder-42's worktree (30 B)"
    [attached] = sent["attachments"]
    assert attached["filename"] == "build.log"
    assert fake.attachments[int(attached["id"])] == b"ok\n" * 10
    [refused] = await run(fake, OLGA, "file", agent="builder-42", path="/etc/hostname")
    assert "/etc/hostname is outside builder-42's worktree" in unescape(refused["content"])


async def test_a_decided_gate_loses_its_buttons_in_every_channel(
    config: Config, tmp_path: Path, fake: FakeDiscord
) -> None:
    channels = (str(OPS), str(CHAT))
    async with running(config, tmp_path, dc_config(fake, alert_channels=channels), FakeClock(),
                       fake) as r:  # fmt: skip
        gate = await r.gates.open("manual", "ship it", project="proj")
        assert await r.drain() == 2
        ops, chat = fake.messages(OPS)[-1], fake.messages(CHAT)[-1]
        items = await r.farm.storage.outbox.items_with_key(f"gate.opened:{gate.id}")
        refs = {i.message_ref for i in items if i.interface == "discord"}
        assert refs == {f"{OPS}:{ops['id']}", f"{CHAT}:{chat['id']}"}
        await press(fake, ALICE, ops, f"/approve {gate.id}")
        await fake.wait_for(
            lambda: fake.requests("PATCH /webhooks/{app}/{token}/messages/@original"),
            message="the pressed message's edit",
        )
        assert await r.notifier.edit_queued() == 2
        for edited in (fake.message(int(ops["id"])), fake.message(int(chat["id"]))):
            assert edited["components"] == []
            assert unescape(edited["content"]).endswith("\n\n✅ approved by alice at 22:13 UTC")
            assert "ship it" in edited["content"]
