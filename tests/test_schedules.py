"""Cron jobs (config, runs, and only the leader's in a farm of two nodes) and hooks
installed for hook-capable agents at spawn."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from farmbot.adapters.hooks import hook_token
from farmbot.config.node import NodeConfig
from farmbot.config.schema import CronJob, UserConfig
from farmbot.daemon import Daemon
from farmbot.errors import ConfigError
from farmbot.models import AgentKind, Role
from farmbot.schedules import Delays
from tests.backends import PostgresBackend
from tests.farm import farm_for, make_config
from tests.helpers import environ_of, retry_until
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


class Firings:
    """A cron job's times a tenth of a second apart, ``runs`` of them (None: for ever);
    counts the runs that finished (each asks for the next time once it is done)."""

    def __init__(self, runs: int | None) -> None:
        self.runs = runs
        self.asked = 0

    def __call__(self, expression: str) -> Callable[[], Delays]:
        def delay() -> float | None:
            self.asked += 1
            return None if self.runs is not None and self.asked > self.runs else 0.1

        return lambda: delay

    @property
    def fired(self) -> int:
        return max(0, self.asked - 1)


async def test_in_a_farm_of_two_nodes_only_the_leader_runs_a_cron_job(
    tmp_path: Path, sockets: dict[str, str], pg_backend: PostgresBackend
) -> None:
    """Both nodes read the same [[cron]] job and keep its time; only the leader's runs
    land, and when it stops, the next leader's do."""
    ada = UserConfig("ada", Role.ADMIN)
    firings = {"a": Firings(3), "b": Firings(None)}

    def node(name: str) -> Daemon:
        config = dataclasses.replace(
            make_config(tmp_path / name, sockets[name], users=(ada,)),
            storage=pg_backend.storage_config(),
            node=NodeConfig(name=name),
            cron=(CronJob("tick", "* * * * *", "/status", "ada"),),
        )
        return Daemon(config, cron=firings[name])

    async def runs() -> int:  # the job's commands that ran anywhere, as audited
        sql = "SELECT COUNT(*) FROM audit WHERE chat = 'cron:tick'"
        return int((await asyncio.to_thread(pg_backend.run, sql))[0][0])

    stops = {"a": asyncio.Event(), "b": asyncio.Event()}
    async with node("a") as a, node("b") as b:
        assert a.farm.cluster.leader.leading and not b.farm.cluster.leader.leading
        loops = {name: asyncio.create_task(d.run(stops[name])) for name, d in (("a", a), ("b", b))}
        try:
            await retry_until(
                lambda: firings["a"].fired == 3 and firings["b"].fired >= 3,
                message="the job's time to come three times on both nodes",
            )
            assert await runs() == 3  # a's, not b's
            assert a.farm.router.outcomes == {"ok": 3}
            assert not b.farm.router.outcomes  # b kept the time and ran nothing

            stops["a"].set()  # a stops and resigns: b leads, and its runs land
            await loops["a"]
            await retry_until(lambda: b.farm.cluster.leader.leading, message="b to lead")

            async def b_ran() -> bool:
                return await runs() > 3

            await retry_until(b_ran, message="b's runs to land")
            assert b.farm.router.outcomes["ok"] >= 1
            assert a.farm.router.outcomes == {"ok": 3}
        finally:
            for stop in stops.values():
                stop.set()
            await asyncio.gather(*loops.values())


async def test_hook_capable_agents_get_hooks_and_their_token(
    tmp_path: Path, tmux_socket: str
) -> None:
    config = make_config(tmp_path, tmux_socket)
    agents = dict(config.agents, demo=dataclasses.replace(config.agents["demo"], hooks=True))
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
