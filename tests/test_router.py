"""The router over a real store, supervisor and tmux: who may do what, and the audit log."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from farmbot.bot.authz import People, Person
from farmbot.bot.commands import Commands, Context
from farmbot.bot.router import Router
from farmbot.config.schema import (
    ProjectConfig,
    SupervisorConfig,
    UserConfig,
)
from farmbot.messages import Button, Decided, Incoming, Reply, reject_button
from farmbot.models import AuditEntry, GateStatus, Role
from tests.farm import Farm, farm_for, make_config, make_repo
from tests.helpers import FakeClock, retry_until

USERS = (
    UserConfig("alice", Role.VIEWER, ids={"telegram": 1001}),
    UserConfig("bob", Role.OPERATOR, ids={"telegram": 1002, "slack": "U0BOB"}),
    UserConfig("carol", Role.ADMIN, ids={"telegram": 1003}),
)


class RouterFarm:
    """The farm of tests/farm.py with a router over it, on a fake clock."""

    def __init__(self, farm: Farm, clock: FakeClock) -> None:
        self.storage = farm.storage
        self.supervisor = farm.supervisor
        self.gates = farm.gates
        self.clock = clock

    def router(
        self,
        users: tuple[UserConfig, ...] = USERS,
        commands: type[Commands] = Commands,
    ) -> Router:
        context = Context(self.supervisor, self.gates, self.storage.outbox, clock=self.clock)
        return Router(
            commands(context),
            People(users),
            self.storage.audit,
            self.clock,
        )

    async def last_audit(self) -> AuditEntry:
        [entry] = await self.storage.audit.recent_audit(1)
        return entry


@pytest.fixture
async def farm(tmp_path: Path, tmux_socket: str) -> AsyncIterator[RouterFarm]:
    clock = FakeClock()
    projects = (ProjectConfig("farm", make_repo(tmp_path / "repo")),)
    async with farm_for(
        make_config(tmp_path, tmux_socket, projects=projects), tmp_path, clock
    ) as f:
        yield RouterFarm(f, clock)


def tg(user_id: int, text: str) -> Incoming:
    return Incoming("telegram", str(user_id), f"chat-{user_id}", text)


def assert_audit(entry: AuditEntry, msg: Incoming, user_name: str | None, outcome: str) -> None:
    assert (entry.platform, entry.user_id, entry.user_name, entry.chat, entry.command) == (
        msg.platform,
        msg.user_id,
        user_name,
        msg.chat,
        msg.text,
    )
    assert entry.outcome == outcome


async def test_a_stranger_is_refused_politely_and_audited(farm: RouterFarm) -> None:
    router = farm.router()
    msg = tg(999, "/agents")
    reply = await router.handle(msg)
    assert not reply.ok
    assert "not on this farmbot's allowlist" in reply.text
    assert "telegram = 999" in reply.text  # what an admin would add
    assert_audit(await farm.last_audit(), msg, None, "denied")
    assert router.refused == 1


async def test_without_users_only_the_local_key_holder_gets_in(farm: RouterFarm) -> None:
    router = farm.router(users=())
    for msg in (tg(1003, "/help"), Incoming("slack", "U0BOB", "C1", "/help")):
        reply = await router.handle(msg)
        assert not reply.ok and "allowlist" in reply.text
        assert_audit(await farm.last_audit(), msg, None, "denied")
    for platform in ("web", "cli"):
        msg = Incoming(platform, "local-key", "console", "/help")
        reply = await router.handle(msg)
        assert reply.ok
        assert "you are local, admin" in reply.text
        assert_audit(await farm.last_audit(), msg, "local", "ok")


async def test_a_viewer_reads_but_cannot_spawn(farm: RouterFarm) -> None:
    router = farm.router()
    spawned = await router.handle(tg(1002, "/spawn shell"))
    assert spawned.ok, spawned.text
    assert "shell-1" in spawned.text

    agents = await router.handle(tg(1001, "/agents"))
    assert agents.ok and agents.text.startswith("shell-1 [farm] starting")
    sent = await router.handle(tg(1002, "/send shell-1 echo farm-$((6*7))"))
    assert sent.ok and sent.text.startswith("queued for shell-1"), sent.text

    # A shell shows no ready prompt farmbot knows, so its prompt goes in after ready_timeout.
    farm.clock.advance(SupervisorConfig().ready_timeout + 1)
    assert await farm.supervisor.deliver_pending() == 1

    async def tail() -> Reply | None:
        reply = await router.handle(tg(1001, "/tail shell-1 5"))
        return reply if reply.pre and "farm-42" in reply.pre else None

    shown: Reply = await retry_until(tail, message="the shell's output in /tail")
    assert shown.ok and shown.text.startswith("shell-1 (")

    msg = tg(1001, "/spawn shell")
    refused = await router.handle(msg)
    assert not refused.ok
    assert refused.text == "alice is a viewer; /spawn needs operator or above"
    assert_audit(await farm.last_audit(), msg, "alice", "denied")
    assert [a.id for a in await farm.supervisor.list_agents()] == ["shell-1"]


async def test_an_unknown_agent_gets_a_suggestion(farm: RouterFarm) -> None:
    router = farm.router()
    assert (await router.handle(tg(1002, "/spawn shell"))).ok
    msg = tg(1001, "/tail shel-1")
    reply = await router.handle(msg)
    assert reply.text == "unknown agent 'shel-1'; did you mean 'shell-1'?"
    assert_audit(await farm.last_audit(), msg, "alice", "not_found")


async def test_an_operator_cannot_approve(farm: RouterFarm) -> None:
    gate = await farm.storage.gates.add_gate(
        "autopilot", None, "farm", "run rm?", "", {}, farm.clock()
    )
    msg = tg(1002, f"/approve {gate.id}")
    reply = await farm.router().handle(msg)
    assert not reply.ok
    assert reply.text == "bob is an operator; /approve needs admin or above"
    assert_audit(await farm.last_audit(), msg, "bob", "denied")
    stored = await farm.storage.gates.get_gate(gate.id)
    assert stored is not None and stored.status is GateStatus.PENDING


async def test_an_admin_approves_a_gate_once(farm: RouterFarm) -> None:
    router = farm.router()
    gate = await farm.storage.gates.add_gate(
        "autopilot", None, "farm", "merge #42", "", {}, farm.clock()
    )
    farm.clock.advance(60)
    msg = tg(1003, f"/approve #{gate.id}")
    reply = await router.handle(msg)
    assert reply.ok
    assert reply.text == f"gate {gate.id} approved by carol at 2023-11-14 22:14 UTC: merge #42"
    assert_audit(await farm.last_audit(), msg, "carol", "ok")
    stored = await farm.storage.gates.get_gate(gate.id)
    assert stored is not None
    assert (stored.status, stored.decided_by, stored.decided_at) == (
        GateStatus.APPROVED,
        "carol",
        farm.clock(),
    )

    again = tg(1003, f"/approve {gate.id}")
    second = await router.handle(again)
    assert not second.ok
    assert second.text == f"gate {gate.id} was already approved by carol at 22:14 UTC"
    assert_audit(await farm.last_audit(), again, "carol", "conflict")


async def test_reject_records_the_reason(farm: RouterFarm) -> None:
    gates = [
        await farm.storage.gates.add_gate("autopilot", None, "farm", f"q{i}", "", {}, farm.clock())
        for i in range(1, 6)
    ]
    assert gates[-1].id == 5
    msg = tg(1003, "/reject 5 too risky, ask first")
    reply = await farm.router().handle(msg)
    assert reply.ok
    assert reply.text.startswith("gate 5 rejected by carol at ")
    assert "(too risky, ask first): q5" in reply.text
    stored = await farm.storage.gates.get_gate(5)
    assert stored is not None
    assert (stored.status, stored.decided_by, stored.reason) == (
        GateStatus.REJECTED,
        "carol",
        "too risky, ask first",
    )
    assert [g.id for g in await farm.gates.pending()] == [1, 2, 3, 4]
    assert_audit(await farm.last_audit(), msg, "carol", "ok")


async def test_an_answer_counts_only_from_whom_the_question_was_put_to(farm: RouterFarm) -> None:
    await farm.storage.gates.add_gate("autopilot", None, "farm", "q1", "", {}, farm.clock())
    router = farm.router()
    answer = replace(tg(1003, "/reject 1 it breaks the build"), button=True, asked="1002")
    refused = await router.handle(answer)  # carol is an admin, but it was bob's question
    assert not refused.ok
    assert refused.text == "that question was put to bob: only they may answer it"
    entry = await farm.last_audit()
    assert_audit(entry, answer, "carol", "denied")
    assert entry.detail == "button; that question was put to bob: only they may answer it"
    assert [g.id for g in await farm.gates.pending()] == [1]
    unknown = await router.handle(replace(answer, asked="4242"))
    assert unknown.text == "that question was put to someone else: only they may answer it"

    decided = await router.handle(replace(answer, asked="1003"))
    assert decided.ok and "(it breaks the build): q1" in decided.text


async def test_unknown_gate_is_not_found(farm: RouterFarm) -> None:
    msg = tg(1003, "/approve 99")
    reply = await farm.router().handle(msg)
    assert not reply.ok
    assert reply.text == "unknown gate 99; /gates lists the pending ones"
    entry = await farm.last_audit()
    assert_audit(entry, msg, "carol", "not_found")
    assert entry.detail == reply.text


async def test_a_usage_error_is_shown_and_audited(farm: RouterFarm) -> None:
    msg = Incoming("slack", "U0BOB", "C0FARM", "/spawn buidler 42")
    reply = await farm.router().handle(msg)
    assert not reply.ok
    assert reply.text.startswith("unknown agent kind 'buidler'; did you mean 'builder'?\nusage: ")
    entry = await farm.last_audit()
    assert_audit(entry, msg, "bob", "usage")
    assert entry.detail == reply.text
    assert await farm.supervisor.list_agents() == []


class BrokenCommands(Commands):
    async def run(self, command: object, person: Person) -> Reply:
        raise RuntimeError("secret internals: /etc/shadow")


async def test_an_unexpected_error_gets_an_incident_id_not_a_traceback(
    farm: RouterFarm, caplog: pytest.LogCaptureFixture
) -> None:
    msg = tg(1001, "/agents")
    with caplog.at_level(logging.ERROR, logger="farmbot.bot.router"):
        reply = await farm.router(commands=BrokenCommands).handle(msg)
    assert not reply.ok
    found = re.search(r"incident ([0-9a-f]{8})", reply.text)
    assert found, reply.text
    for leak in ("Traceback", "RuntimeError", "secret", "shadow"):
        assert leak not in reply.text
    entry = await farm.last_audit()
    assert_audit(entry, msg, "alice", "error")
    assert entry.detail == f"incident {found.group(1)}"
    [record] = caplog.records
    assert found.group(1) in record.getMessage()
    assert record.exc_info is not None and "secret internals" in str(record.exc_info[1])


async def test_a_dead_database_still_gets_the_person_an_incident_reply(
    farm: RouterFarm, caplog: pytest.LogCaptureFixture
) -> None:
    router = farm.router()
    await farm.storage.db.aclose()
    with caplog.at_level(logging.ERROR, logger="farmbot.bot.router"):
        reply = await router.handle(tg(1001, "/agents"))
        refused = await router.handle(tg(999, "/agents"))
    assert not reply.ok and re.search(r"incident [0-9a-f]{8}", reply.text), reply.text
    assert "store is not open" not in reply.text
    assert not refused.ok and "allowlist" in refused.text
    assert sum("audit row lost" in r.getMessage() for r in caplog.records) == 2


async def test_a_button_press_is_audited_as_one(farm: RouterFarm) -> None:
    press = Incoming("telegram", "1001", "chat-1001", "/agents", button=True)
    assert (await farm.router().handle(press)).ok
    entry = await farm.last_audit()
    assert entry.outcome == "ok" and entry.detail.startswith("button")


async def test_an_interrupted_command_runs_again_only_if_it_changes_nothing(
    farm: RouterFarm,
) -> None:
    router = farm.router()
    why = "node gpu stopped while running it"
    shown = await router.handle(Incoming("telegram", "1001", "c1", "/status", interrupted=why))
    assert shown.ok and shown.text.startswith("agents:")  # a viewer's command: run again
    spawn = Incoming("telegram", "1002", "c1", "/spawn builder 9", interrupted=why)
    told = await router.handle(spawn)
    assert not told.ok
    assert told.text == (
        "node gpu stopped while running it, so farmbot cannot tell whether '/spawn builder 9'"
        " took effect; it was not run again. Check first (/agents, /tail <agent>), then run it"
        " again if it is still needed."
    )
    assert await farm.supervisor.list_agents() == []
    entry = await farm.last_audit()
    assert (entry.user_name, entry.outcome, entry.detail) == ("bob", "interrupted", why)
    stranger = await router.handle(Incoming("telegram", "9", "c1", "/kill x", interrupted=why))
    assert "allowlist" in stranger.text  # authorization comes first, as always


def test_a_reply_crosses_nodes_intact() -> None:
    reply = Reply(
        "approved #7",
        pre="line\n  two",
        buttons=(
            (Button("Tail", "/tail b-1"), Button("Kill", "/kill b-1", "danger")),
            (reject_button(7),),
        ),
        ok=False,
        decided=Decided(gate_id=7, approved=True, by="carol", at=1_700_000_000.5),
    )
    assert Reply.from_json(json.loads(json.dumps(reply.to_json()))) == reply
    assert Reply.from_json(Reply("plain").to_json()) == Reply("plain")
