"""The real Claude Code and Codex, supervised by a real `farmbot serve`, offline.

Each test runs the daemon as a process over a git project whose builder runs one CLI
(seeded by ``tests/agent_clis``) against a fake model API on 127.0.0.1, and drives it as
a person would from chat, through the daemon's command API: spawn, the builder prompt
delivered, a tool call that asks permission, the gate, then approve (the tool ran),
approve for the session (the same command again asks nothing), reject with a reason (the
model receives it), a /send refused while the question shows, and a kill -9 reported as
a death by signal. Claude answers through its PermissionRequest hook (no keystroke) while
farmbot holds it, and through its dialog once the hold has expired; Codex through its
dialog's keys.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from farmbot.config.schema import builtin_profiles
from tests import agent_clis as clis
from tests.daemon import Daemon, free_port, git_project, serve
from tests.fakes import anthropic_api as anthropic
from tests.fakes import openai_api as openai
from tests.helpers import retry_until

pytestmark = pytest.mark.clis

AGENT = "builder-1"
# What the supervisor gives every agent, passed through the CLI's `env -i`.
FARMBOT_ENV = ("FARMBOT_AGENT", "FARMBOT_URL", "FARMBOT_HOOK_TOKEN", "FARMBOT_PROJECT")


@dataclass
class Run:
    """A daemon supervising one CLI builder."""

    daemon: Daemon
    workdir: Path

    async def command(self, text: str) -> dict[str, Any]:
        return await self.daemon.command(text)

    async def ok(self, text: str) -> str:
        reply = await self.command(text)
        assert reply["ok"], reply
        return str(reply["text"])

    async def status(self) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.daemon.key}"}
        async with self.daemon.http.get("/api/status", headers=headers) as r:
            assert r.status == 200, await r.text()
            found: dict[str, Any] = await r.json()
            return found

    async def agent(self) -> dict[str, Any]:
        return next(a for a in (await self.status())["agents"] if a["id"] == AGENT)

    async def gate(self, timeout: float = 30) -> dict[str, Any]:
        """The agent's pending permission gate, once there is one."""

        async def pending() -> dict[str, Any] | None:
            gates = [g for g in (await self.status())["gates"] if g["agent_id"] == AGENT]
            return gates[0] if gates else None

        found: dict[str, Any] = await retry_until(pending, timeout=timeout, message="a gate")
        return found

    async def state(self, *states: str, timeout: float = 30) -> dict[str, Any]:
        async def reached() -> dict[str, Any] | None:
            agent = await self.agent()
            return agent if agent["state"] in states else None

        found: dict[str, Any] = await retry_until(
            reached, timeout=timeout, message=f"{AGENT} to be {states}"
        )
        return found

    async def alert(self, kind: str, timeout: float = 15) -> dict[str, Any]:
        async def raised() -> dict[str, Any] | None:
            alerts = (await self.status())["alerts"]
            return next((a for a in alerts if a["kind"] == kind), None)

        found: dict[str, Any] = await retry_until(raised, timeout=timeout, message=kind)
        return found


def write_config(
    tmp_path: Path, socket: str, port: int, profile: str, command: str, *, hold: float
) -> Path:
    config = tmp_path / "farmbot.toml"
    config.write_text(
        f"""
[server]
port = {port}
state_dir = "state"

[tmux]
socket = "{socket}"

[supervisor]
tick_seconds = 0.2
permission_hold = {hold}

[qa]
interval_minutes = 0
on_idle = false

[[projects]]
name = "proj"
path = "repo"
agent = "{profile}"

[agents.{profile}]
command = {json.dumps(command)}
builder_prompt = "Issue {{n}}: create a.txt"
"""
    )
    return config


@asynccontextmanager
async def supervised(
    tmp_path: Path,
    socket: str,
    profile: str,
    setup: clis.CliSetup,
    *,
    hold: float,
    port: int | None = None,
    spawn: bool = True,
) -> AsyncIterator[Run]:
    """`farmbot serve` with one builder running the CLI of ``setup`` (spawned first, unless
    ``spawn`` is false: a restart finds it running)."""
    port = port or free_port()
    command = setup.command_keeping(*FARMBOT_ENV)
    config = write_config(tmp_path, socket, port, profile, command, hold=hold)
    logs = tmp_path / ("logs" if spawn else "logs-restarted")
    async with serve(config, f"http://127.0.0.1:{port}", logs) as daemon:
        run = Run(daemon, setup.workdir)
        if spawn:
            assert "spawned builder-1" in await run.ok("/spawn builder 1")
        yield run


def worktree(tmp_path: Path) -> Path:
    """Where farmbot puts builder-1's worktree (the CLI is seeded to trust it)."""
    return tmp_path / "state" / "worktrees" / "proj" / AGENT


async def refused_while_asking(run: Run) -> None:
    reply = await run.command(f"/send {AGENT} hello?")
    assert not reply["ok"] and "asking a question" in reply["text"], reply


async def killed_by_signal_9(run: Run, socket: str) -> None:
    pane = clis.CliPane(socket, f"{AGENT}:0.0")
    await asyncio.to_thread(pane.kill_process, "KILL")
    dead = await run.state("dead")
    assert "killed by signal 9" in dead["state_reason"], dead
    died = await run.alert("agent.dead")
    assert "killed by signal 9" in died["text"], died


# -- Claude Code ------------------------------------------------------------------------


async def test_claude_approvals_through_its_hook(tmp_path: Path, tmux_socket: str) -> None:
    """Approve, approve for the session, reject with a reason: each answered through the
    held PermissionRequest hook, with no keystroke; then kill -9."""
    await git_project(tmp_path / "repo")
    async with anthropic.FakeAnthropic() as fake:
        setup = clis.claude_setup(tmp_path, fake.url, workdir=worktree(tmp_path))
        fake.script(anthropic.bash("touch a.txt", "Create a.txt"), anthropic.Text("Created."))
        async with supervised(tmp_path, tmux_socket, "claude", setup, hold=600) as run:
            # The builder prompt is delivered, the tool call asks, a gate says what for.
            first = await fake.wait_for(1)
            assert "Issue 1: create a.txt" in first.text()
            gate = await run.gate()
            assert "touch a.txt" in gate["title"] + gate["detail"], gate
            where = f"worktree {run.workdir}, branch farmbot/{AGENT}"
            assert gate["payload"]["where"] == where
            assert where in (await run.alert("gate.opened"))["text"]
            await refused_while_asking(run)
            assert "answered through builder-1's hook" in await run.ok(f"/approve {gate['id']}")
            [result] = (await fake.wait_for(2)).tool_results()
            assert result["is_error"] is False
            assert (run.workdir / "a.txt").exists()
            await run.state("idle")

            # Approve for the session: the same command a second time asks nothing.
            fake.script(anthropic.bash("touch b.txt", "Create b.txt"), anthropic.Text("Made."))
            await run.ok(f"/send {AGENT} create b.txt")
            gate = await run.gate()
            await run.ok(f"/approve {gate['id']} --session")
            assert not (await fake.wait_for(4)).tool_results()[0]["is_error"]
            await run.state("idle")
            (run.workdir / "b.txt").unlink()
            fake.script(anthropic.bash("touch b.txt", "Again"), anthropic.Text("Again."))
            await run.ok(f"/send {AGENT} create b.txt again")
            again = await fake.wait_for(6)
            assert again.tool_results()[0]["is_error"] is False
            assert (run.workdir / "b.txt").exists()
            assert not [g for g in (await run.status())["gates"] if g["agent_id"] == AGENT]
            await run.state("idle")

            # Reject with a reason: the model receives it.
            fake.script(anthropic.bash("rm a.txt", "Remove a.txt"), anthropic.Text("Kept."))
            await run.ok(f"/send {AGENT} remove a.txt")
            gate = await run.gate()
            await run.ok(f"/reject {gate['id']} keep it, we ship it")
            [refused] = (await fake.wait_for(8)).tool_results()
            assert refused["is_error"] is True
            assert "keep it, we ship it" in anthropic.tool_result_text(refused)
            assert (run.workdir / "a.txt").exists()
            await run.state("idle")

            await killed_by_signal_9(run, tmux_socket)


async def test_claude_approvals_through_its_dialog_once_the_hold_expired(
    tmp_path: Path, tmux_socket: str
) -> None:
    """farmbot holds the hook for 1 s, then lets go: Claude shows its dialog, and the
    decision is carried out by keys (approve, approve for the session with what Claude's
    option 2 means); a rejection's reason is the next prompt."""
    await git_project(tmp_path / "repo")
    async with anthropic.FakeAnthropic() as fake:
        setup = clis.claude_setup(tmp_path, fake.url, workdir=worktree(tmp_path))
        fake.script(anthropic.bash("touch a.txt", "Create a.txt"), anthropic.Text("Created."))
        async with supervised(tmp_path, tmux_socket, "claude", setup, hold=1) as run:
            gate = await run.gate()
            await asyncio.sleep(2)  # past the hold: the hook answered nothing
            await refused_while_asking(run)
            assert "sent 1 to builder-1" in await run.ok(f"/approve {gate['id']}")
            assert not (await fake.wait_for(2)).tool_results()[0]["is_error"]
            assert (run.workdir / "a.txt").exists()
            await run.state("idle")

            # Approve for the session through the dialog: key 2, and the reply says what
            # Claude's option 2 really is (here: access to the directory, not a rule).
            fake.script(anthropic.bash("touch b.txt", "Create b.txt"), anthropic.Text("Made."))
            await run.ok(f"/send {AGENT} create b.txt")
            gate = await run.gate()
            await asyncio.sleep(2)
            approved = await run.ok(f"/approve {gate['id']} --session")
            assert "approved for the session by local" in approved, approved
            note = builtin_profiles()["claude"].session_note
            assert f"; sent 2 to builder-1 ({note})" in approved, approved
            assert not (await fake.wait_for(4)).tool_results()[0]["is_error"]
            assert (run.workdir / "b.txt").exists()
            await run.state("idle")

            fake.script(
                anthropic.bash("rm a.txt", "Remove a.txt"),
                anthropic.Text("Understood."),
            )
            await run.ok(f"/send {AGENT} remove a.txt")
            gate = await run.gate()
            await asyncio.sleep(2)
            reply = await run.ok(f"/reject {gate['id']} keep it, we ship it")
            assert "next prompt" in reply, reply
            told = await fake.wait_for(6)
            assert "keep it, we ship it" in told.text()
            assert (run.workdir / "a.txt").exists()


async def test_claude_approval_survives_a_daemon_restart(tmp_path: Path, tmux_socket: str) -> None:
    """The daemon stops while it holds Claude's hook: the hook lets go, Claude shows its
    dialog, and after the restart the same gate is approved through the dialog."""
    await git_project(tmp_path / "repo")
    port = free_port()
    async with anthropic.FakeAnthropic() as fake:
        setup = clis.claude_setup(tmp_path, fake.url, workdir=worktree(tmp_path))
        fake.script(anthropic.bash("touch a.txt", "Create a.txt"), anthropic.Text("Created."))
        async with supervised(tmp_path, tmux_socket, "claude", setup, hold=600, port=port) as run:
            gate = await run.gate()
            assert await run.daemon.terminate() == 0
        pane = clis.CliPane(tmux_socket, f"{AGENT}:0.0")
        await pane.wait_for(clis.CLAUDE_DIALOG)
        assert not (setup.workdir / "a.txt").exists()
        async with supervised(
            tmp_path, tmux_socket, "claude", setup, hold=600, port=port, spawn=False
        ) as run:
            assert (await run.gate())["id"] == gate["id"]
            await refused_while_asking(run)
            assert "sent 1 to builder-1" in await run.ok(f"/approve {gate['id']}")
            assert not (await fake.wait_for(2)).tool_results()[0]["is_error"]
            assert (setup.workdir / "a.txt").exists()
            await run.state("idle")


# -- Codex ------------------------------------------------------------------------------


async def test_codex_approvals_through_its_dialog(tmp_path: Path, tmux_socket: str) -> None:
    """Codex has no hook farmbot uses by default: y, p ("don't ask again") and Escape,
    then the reason as the next prompt; then kill -9."""
    await git_project(tmp_path / "repo")
    async with openai.FakeOpenAI() as fake:
        setup = clis.codex_setup(tmp_path, fake.url, workdir=worktree(tmp_path))
        fake.script(openai.exec_command("touch a.txt", "Create a.txt?"), openai.Text("Done."))
        async with supervised(tmp_path, tmux_socket, "codex", setup, hold=600) as run:
            first = await fake.wait_for(1)
            assert "Issue 1: create a.txt" in first.user_texts()[-1]
            gate = await run.gate()
            assert "touch a.txt" in gate["title"] + gate["detail"], gate
            await refused_while_asking(run)
            assert "sent y to builder-1" in await run.ok(f"/approve {gate['id']}")
            [output] = (await fake.wait_for(2)).function_outputs()
            assert "Process exited with code 0" in output
            assert (run.workdir / "a.txt").exists()
            await run.state("idle")

            fake.script(openai.exec_command("touch b.txt", "Create b.txt?"), openai.Text("Made."))
            await run.ok(f"/send {AGENT} create b.txt")
            gate = await run.gate()
            approved = await run.ok(f"/approve {gate['id']} --session")
            assert "sent p to builder-1 (Codex keeps this as a rule for every later" in approved
            assert "exited with code 0" in (await fake.wait_for(4)).function_outputs()[-1]
            await run.state("idle")
            (run.workdir / "b.txt").unlink()
            fake.script(openai.exec_command("touch b.txt", "Again?"), openai.Text("Again."))
            await run.ok(f"/send {AGENT} create b.txt again")
            assert "exited with code 0" in (await fake.wait_for(6)).function_outputs()[-1]
            assert (run.workdir / "b.txt").exists()
            assert not [g for g in (await run.status())["gates"] if g["agent_id"] == AGENT]
            await run.state("idle")

            fake.script(openai.exec_command("rm a.txt", "Remove a.txt?"), openai.Text("Kept."))
            await run.ok(f"/send {AGENT} remove a.txt")
            gate = await run.gate()
            assert "next prompt" in await run.ok(f"/reject {gate['id']} keep it, we ship it")
            told = await fake.wait_for(8)
            assert told.user_texts()[-1] == "keep it, we ship it"
            assert (run.workdir / "a.txt").exists()
            await run.state("idle")

            await killed_by_signal_9(run, tmux_socket)
