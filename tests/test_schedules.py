"""Cron jobs (config and runs) and hooks installed for hook-capable agents at spawn."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from farmbot.adapters.hooks import hook_token
from farmbot.config.schema import CronJob, UserConfig
from farmbot.daemon import Daemon
from farmbot.errors import ConfigError
from farmbot.models import AgentKind, Role
from tests.farm import farm_for, make_config
from tests.helpers import environ_of
from tests.test_config import load


def test_cron_jobs_are_read_and_checked(tmp_path: Path) -> None:
    users = '[users.alice]\nrole = "admin"\n'
    job = '[[cron]]\nname = "report"\ncron = "0 9 * * 1-5"\ncommand = "/status"\nuser = "alice"\n'
    config = load(tmp_path, users + job)
    assert config.cron == (CronJob("report", "0 9 * * 1-5", "/status", "alice"),)

    bad_cron = job.replace("0 9 * * 1-5", "0 25 * * *")
    with pytest.raises(ConfigError, match=r"cron\[0\]\.cron: invalid cron expression"):
        load(tmp_path, users + bad_cron)
    with pytest.raises(ConfigError, match="expected five crontab fields"):
        load(tmp_path, users + job.replace("0 9 * * 1-5", "@daily"))
    with pytest.raises(ConfigError, match=r"cron\[0\]\.user: unknown user 'bob' \(known: alice\)"):
        load(tmp_path, users + job.replace('"alice"', '"bob"'))


async def test_a_cron_job_runs_as_its_user_and_is_audited(tmp_path: Path, tmux_socket: str) -> None:
    config = dataclasses.replace(
        make_config(tmp_path, tmux_socket),
        users=(UserConfig("alice", Role.OPERATOR), UserConfig("vic", Role.VIEWER)),
        cron=(
            CronJob("morning", "0 9 * * *", "/spawn architect", "alice"),
            CronJob("sneaky", "0 9 * * *", "/kill architect", "vic"),
        ),
    )
    async with Daemon(config) as app:
        await app.run_cron("morning")
        await app.run_cron("sneaky")

        agent = await app.farm.storage.agents.get_agent("architect")
        assert agent is not None and agent.state_reason == "spawned by alice"
        allowed, refused = reversed(await app.farm.storage.audit.recent_audit(2))
        assert (allowed.platform, allowed.user_name, allowed.chat) == (
            "scheduler",
            "alice",
            "cron:morning",
        )
        assert allowed.outcome == "ok"
        assert (refused.user_name, refused.outcome) == ("vic", "denied")
        assert agent.desired.value == "running"  # the viewer's job changed nothing


async def test_hook_capable_agents_get_hooks_and_their_token(
    tmp_path: Path, tmux_socket: str
) -> None:
    config = make_config(tmp_path, tmux_socket)
    agents = dict(config.agents, demo=dataclasses.replace(config.agents["demo"], hooks="claude"))
    config = dataclasses.replace(config, agents=agents)
    async with farm_for(config, tmp_path) as farm:
        agent = await farm.supervisor.spawn(AgentKind.BUILDER, 3, None, "alice")

        settings = json.loads((Path(agent.workdir) / ".claude/settings.local.json").read_text())
        [entry] = settings["hooks"]["PreToolUse"]
        command = entry["hooks"][0]["command"]
        assert " hook" in command and "--agent builder-3" in command
        assert set(settings["hooks"]) >= {"SessionStart", "PermissionRequest", "Stop"}
        # The token is in the agent's process only, not in its tmux session (which other
        # panes could read).
        pane = await farm.tmux.pane("builder-3")
        assert pane is not None and pane.pid is not None
        env = environ_of(pane.pid)
        assert env["FARMBOT_HOOK_TOKEN"] == hook_token(farm.graph.key, "builder-3")
        assert "FARMBOT_HOOK_TOKEN" not in await farm.tmux.session_env("builder-3")
        # The settings file never ends up in a commit.
        exclude = Path(config.projects[0].path, ".git/info/exclude").read_text()
        assert ".claude/settings.local.json" in exclude
