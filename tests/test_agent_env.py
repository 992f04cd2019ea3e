"""Agents see an environment built on purpose: none of farmbot's secrets, no way to its
state directory -- in the agent's process, the tmux server's process, and tmux's own
global and session environments. `farmbot serve` as a real process, real tmux."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest

from farmbot.models import AgentKind
from farmbot.supervisor import isolation
from tests.daemon import free_port, git_project, run, serve
from tests.farm import farm_for, make_config
from tests.helpers import environ_of, retry_until

SECRETS = {
    "FARMBOT_TELEGRAM_TOKEN": "424242:telegram-secret-0001",
    "SLACK_BOT_TOKEN": "xoxb-slack-secret-0002",
    "SLACK_APP_TOKEN": "xapp-slack-secret-0003",
    "OPS_AUTH": "Bearer webhook-secret-0004",
}


async def tmux(sock: str, *args: str) -> str:
    done = await run("tmux", "-L", sock, *args)
    assert done.code == 0, done.err
    return done.out


async def test_agents_and_their_tmux_server_get_no_secret_and_no_state_dir(
    tmp_path: Path, tmux_socket: str
) -> None:
    await git_project(tmp_path / "repo")
    port = free_port()
    config = tmp_path / "farmbot.toml"
    config.write_text(
        f"""
[server]
port = {port}
state_dir = "state"

[tmux]
socket = "{tmux_socket}"

[supervisor]
tick_seconds = 0.2
pass_env = ["ANTHROPIC_API_KEY", "NOT_SET_ANYWHERE"]

[[projects]]
name = "proj"
path = "repo"

[agents.demo]
env = {{ FARMBOT_DEMO_STEP = "0.02", DEMO_TOKEN = "env:DEMO_TOKEN" }}

[telegram]
token = "env:FARMBOT_TELEGRAM_TOKEN"
base_url = "http://127.0.0.1:9/bot"

[[webhooks]]
name = "ops"
url = "http://127.0.0.1:9/hook"
headers = {{ Authorization = "env:OPS_AUTH" }}
"""
    )
    state = tmp_path / "state"
    env = {
        **os.environ,
        **SECRETS,
        "FARMBOT_STATE_DIR": str(state),
        "ANTHROPIC_API_KEY": "sk-ant-passed-on-purpose",
        "DEMO_TOKEN": "profile-secret-on-purpose",
        "LC_TIME": "C.UTF-8",
    }
    async with serve(config, f"http://127.0.0.1:{port}", tmp_path / "logs", env=env) as daemon:
        assert (await daemon.command("/spawn architect"))["ok"]
        pane_pid = int(await tmux(tmux_socket, "display", "-p", "-t", "=architect:", "#{pane_pid}"))
        server_pid = int(await tmux(tmux_socket, "display", "-p", "#{pid}"))
        agent = environ_of(pane_pid)
        server = environ_of(server_pid)
        global_env = await tmux(tmux_socket, "show-environment", "-g")
        session_env = await tmux(tmux_socket, "show-environment", "-t", "=architect")

        for where, text in [
            ("the agent's process", "\n".join(f"{k}={v}" for k, v in agent.items())),
            ("the tmux server's process", "\n".join(f"{k}={v}" for k, v in server.items())),
            ("tmux's global environment", global_env),
            ("the agent's tmux session", session_env),
        ]:
            for name, value in SECRETS.items():
                assert value not in text, f"{name} reached {where}"
            assert str(state) not in text.replace(str(state / "spool"), ""), where
            assert "FARMBOT_STATE_DIR" not in text, where
            assert daemon.key not in text, f"the local key reached {where}"

        # What the agent gets: the allowlist, what was passed on purpose, its hooks' needs.
        assert agent["PATH"] == os.environ["PATH"] and agent["LC_TIME"] == "C.UTF-8"
        assert agent["ANTHROPIC_API_KEY"] == "sk-ant-passed-on-purpose"
        assert agent["DEMO_TOKEN"] == "profile-secret-on-purpose"
        assert "NOT_SET_ANYWHERE" not in agent
        assert agent["FARMBOT_AGENT"] == "architect"
        assert agent["FARMBOT_URL"] == f"http://127.0.0.1:{port}"
        assert agent["FARMBOT_SPOOL_DIR"] == str(state / "spool")
        assert len(agent["FARMBOT_HOOK_TOKEN"]) == 32
        # The token is the agent's own, and not in the session (another pane could read it).
        assert agent["FARMBOT_HOOK_TOKEN"] not in session_env
        assert "FARMBOT_AGENT=architect" in session_env
        # Nor in the server's own environment: it was started with the allowlist only.
        assert "ANTHROPIC_API_KEY" not in server and "FARMBOT_URL" not in server
        assert server["PATH"] == os.environ["PATH"]


async def test_a_tmux_server_started_with_secrets_is_scrubbed_for_new_agents(
    tmp_path: Path, tmux_socket: str, caplog: pytest.LogCaptureFixture
) -> None:
    # As an older farmbot left it: a server holding the daemon's whole environment.
    dirty = {**os.environ, "OLD_SECRET": "left-by-an-older-farmbot"}
    proc = await asyncio.create_subprocess_exec(
        "tmux", "-L", tmux_socket, "-f", "/dev/null", "new-session", "-d", "-s", "old", "sleep 60",
        env=dirty,
    )  # fmt: skip
    assert await proc.wait() == 0
    config = make_config(tmp_path, tmux_socket)
    async with farm_for(config, tmp_path, environ={"PATH": os.environ["PATH"]}) as farm:
        with caplog.at_level(logging.WARNING):
            await farm.monitor.reconcile(startup=True)
        [warning] = [
            r.getMessage() for r in caplog.records if "whole environment" in r.getMessage()
        ]
        assert "OLD_SECRET" in warning and "left-by-an-older-farmbot" not in warning
        await farm.supervisor.spawn(AgentKind.ARCHITECT, None, None, "alice")
        pid = int(await tmux(tmux_socket, "display", "-p", "-t", "=architect:", "#{pane_pid}"))
        agent = await retry_until(lambda: environ_of(pid), message="the agent's environment")
        assert "OLD_SECRET" not in agent
        assert "OLD_SECRET" not in await tmux(tmux_socket, "show-environment", "-g")


def test_run_as_wraps_the_command_for_runuser_or_sudo() -> None:
    runner = isolation.RunAs("farmbot-agent", 990, 990, "/home/farmbot-agent")
    keep = ["ANTHROPIC_API_KEY", "FARMBOT_HOOK_TOKEN", "HOME", "PATH"]
    assert isolation.wrap("claude --x 'y'", runner, keep, root=True) == (
        "exec runuser -u farmbot-agent -- /bin/sh -c 'umask 007; claude --x '\"'\"'y'\"'\"''"
    )
    # Not root: sudo, with a rule that allows it (README: Security); only names on the line.
    assert isolation.wrap("claude", runner, keep, root=False) == (
        "exec sudo -n -H -u farmbot-agent --preserve-env=ANTHROPIC_API_KEY,FARMBOT_HOOK_TOKEN,"
        "PATH -- /bin/sh -c 'umask 007; claude'"
    )
