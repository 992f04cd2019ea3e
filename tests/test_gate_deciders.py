"""Only people decide gates: never with the credentials of the agent that raised the gate,
and, where ``[gates]`` says so, only certain people, through certain interfaces.

A real daemon with its loops (the demo agent asks for permission in real tmux); the
agent's credentials are read from its own process environment, as the agent would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from farmbot.config.schema import Config, GatesConfig, UserConfig
from farmbot.messages import Incoming
from farmbot.models import GateStatus, Role
from tests.farm import farm_for, make_config
from tests.helpers import FakeClock, environ_of, retry_until
from tests.test_agent_env import tmux
from tests.web import Web, running


@pytest.fixture
async def web(tmp_path: Path, tmux_socket: str) -> AsyncIterator[Web]:
    async with running(make_config(tmp_path, tmux_socket)) as web:
        yield web


async def test_an_agent_cannot_decide_its_own_gate_with_anything_it_holds(
    web: Web, tmux_socket: str
) -> None:
    assert (await web.command("/spawn architect"))["ok"]
    await retry_until(lambda: _tail_has(web, "demo>"), message="the architect's prompt")
    assert (await web.command("/send architect run pytest -x"))["ok"]

    async def gate() -> int | None:
        gates = (await web.status())["gates"]
        return int(gates[0]["id"]) if gates else None

    gate_id: int = await retry_until(gate, message="the permission gate")
    pid = int(await tmux(tmux_socket, "display", "-p", "-t", "=architect:", "#{pane_pid}"))
    mine = environ_of(pid)  # everything the agent was given
    token, url = mine["FARMBOT_HOOK_TOKEN"], mine["FARMBOT_URL"]
    approve = {"text": f"/approve {gate_id}"}

    async with aiohttp.ClientSession(base_url=url) as http:
        for headers in (
            {"Authorization": f"Bearer {token}"},
            {"X-Farmbot-Hook-Token": token},
            {"Authorization": f"Bearer {token}", "X-Farmbot-Hook-Token": token},
        ):
            for method, path, body in (
                ("POST", "/api/command", approve),
                ("POST", f"/api/command?token={token}", approve),
                ("GET", "/api/status", None),
                ("POST", "/api/stream-ticket", None),
                ("POST", "/api/tasks", {"project": "proj", "title": "x"}),
            ):
                async with http.request(method, path, json=body, headers=headers) as r:
                    assert r.status == 401, (method, path, headers, await r.text())
        # What the token does open: the agent's own hook events and task report. Neither
        # decides anything.
        hook = f"/hooks/claude/architect?token={token}"
        for event in ("PermissionRequest", "PostToolUse", "UserPromptSubmit", "Notification"):
            event_body: dict[str, object] = {
                "hook_event_name": event,
                "decision": {"behavior": "allow"},
                "approve": True,
            }
            async with http.post(hook, json=event_body) as r:
                assert r.status == 200
        async with http.post(
            "/agents/architect/task-done",
            json={"note": f"/approve {gate_id}"},
            headers={"X-Farmbot-Hook-Token": token},
        ) as r:
            assert r.status == 409  # no task: nothing to finish, nothing decided

    [pending] = [g for g in (await web.status())["gates"] if g["id"] == gate_id]
    assert pending["status"] == "pending"
    assert "Do you want to proceed?" in (await web.command("/tail architect"))["pre"]
    assert "FARMBOT_STATE_DIR" not in mine and web.key not in "".join(mine.values())

    decided = await web.command(f"/approve {gate_id}")  # a person, with the local key
    assert decided["ok"], decided
    gate_row = await web.app.farm.storage.gates.get_gate(gate_id)
    assert gate_row is not None and gate_row.status is GateStatus.APPROVED
    assert gate_row.decided_by == "local"


async def _tail_has(web: Web, text: str) -> bool:
    return text in ((await web.command("/tail architect"))["pre"] or "")


USERS = (
    UserConfig("alice", Role.ADMIN, ids={"telegram": 1001}),
    UserConfig("ops", Role.ADMIN, ids={"telegram": 1002}, web=True),
)


def gated(tmp_path: Path, tmux_socket: str, policy: GatesConfig) -> Config:
    return replace(make_config(tmp_path, tmux_socket, users=USERS), gates=policy)


@pytest.mark.parametrize(
    ("policy", "allowed", "refused"),
    [
        (GatesConfig(), ["web", "telegram:1001", "telegram:1002"], []),
        (GatesConfig(approvers=("alice",)), ["telegram:1001"], ["web", "telegram:1002"]),
        (GatesConfig(interfaces=("telegram",)), ["telegram:1001", "telegram:1002"], ["web", "cli"]),
        (
            GatesConfig(approvers=("alice",), interfaces=("telegram",)),
            ["telegram:1001"],
            ["web", "cli", "telegram:1002"],
        ),
    ],
    ids=["anyone-admin", "approvers", "interfaces", "both"],
)
async def test_gates_approvers_and_interfaces_decide_who_may_decide(
    tmp_path: Path,
    tmux_socket: str,
    policy: GatesConfig,
    allowed: list[str],
    refused: list[str],
) -> None:
    async with farm_for(gated(tmp_path, tmux_socket, policy), tmp_path, FakeClock()) as farm:
        for who in refused + allowed:
            gate = await farm.gates.open("check", f"a question for {who}")
            platform, _, user = who.partition(":")
            reply = await farm.router.handle(
                Incoming(platform, user or "local", "chat", f"/approve {gate.id}")
            )
            stored = await farm.storage.gates.get_gate(gate.id)
            assert stored is not None
            if who in allowed:
                assert reply.ok, (who, reply.text)
                assert stored.status is GateStatus.APPROVED
            else:
                assert not reply.ok and "gates" in reply.text, (who, reply.text)
                assert stored.status is GateStatus.PENDING
        audit = await farm.storage.audit.recent_audit(50)
        denied = [row for row in audit if row.outcome == "denied"]
        assert len(denied) == len(refused)


async def test_a_refused_decider_is_told_who_may_decide(tmp_path: Path, tmux_socket: str) -> None:
    policy = GatesConfig(approvers=("alice",), interfaces=("telegram",))
    async with farm_for(gated(tmp_path, tmux_socket, policy), tmp_path, FakeClock()) as farm:
        gate = await farm.gates.open("check", "deploy?")
        web = await farm.router.handle(Incoming("web", "local", "console", f"/reject {gate.id}"))
        assert web.text == "ops may not decide gates: [gates] approvers are alice"
        policy_only = replace(policy, approvers=())
    async with farm_for(gated(tmp_path, tmux_socket, policy_only), tmp_path, FakeClock()) as farm:
        gate = await farm.gates.open("check", "deploy?")
        cli = await farm.router.handle(Incoming("cli", "local", "cli", f"/approve {gate.id}"))
        assert cli.text == "gates cannot be decided through cli: [gates] interfaces are telegram"
