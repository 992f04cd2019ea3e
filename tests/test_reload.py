"""Reloading the configuration: a real `farmbot serve` told by `farmbot reload` (SIGHUP),
with a working agent, a queued prompt and a Telegram connection that survive it; refusals
of a broken config and of a port change; the diff; the schedules; the daemon in process."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from farmbot import lifecycle
from farmbot.config.limits import LimitsConfig
from farmbot.config.schema import Config, CronJob, ProjectConfig, ServerConfig, UserConfig
from farmbot.config.slack import SlackConfig
from farmbot.config.telegram import TelegramConfig
from farmbot.daemon import Daemon
from farmbot.errors import FarmbotError
from farmbot.messages import Incoming, Severity
from farmbot.models import AgentKind, Role
from farmbot.reload import OUTCOME_FILE, changes, restart_needed
from farmbot.schedules import Schedule, Schedules
from tests.daemon import farmbot, free_port, git_project, run, serve
from tests.fakes.telegram_api import FakeTelegram
from tests.farm import make_config, make_repo
from tests.helpers import retry_until
from tests.test_e2e_monitoring import Receiver

ALICE = 1001


def gated(go: Path) -> str:
    """The demo agent, started once ``go/<agent id>`` exists (until then: not ready)."""
    wait = f"until [ -e {go}/$FARMBOT_AGENT ]; do sleep 0.05; done"
    return f"sh -c '{wait}; exec {sys.executable} -m farmbot demo-agent'"


def toml(
    *,
    port: int,
    ops_port: int,
    socket: str,
    tg: FakeTelegram,
    repos: dict[str, Path],
    role: str,
    min_severity: str,
    cron: list[tuple[str, str, str]],
    go: Path,
) -> str:
    """The test's farmbot.toml; each reload rewrites it with other values."""
    projects = "".join(
        f'[[projects]]\nname = "{name}"\npath = "{path}"\n\n' for name, path in repos.items()
    )
    jobs = "".join(
        f'[[cron]]\nname = "{n}"\ncron = "{c}"\ncommand = "{cmd}"\nuser = "alice"\n\n'
        for n, c, cmd in cron
    )
    return f"""
[server]
port = {port}
state_dir = "state"

[tmux]
socket = "{socket}"

[supervisor]
tick_seconds = 0.2

{projects}
[agents.demo]  # each agent starts once the test creates go/<agent>
command = "{gated(go)}"
env = {{ FARMBOT_DEMO_STEP = "0.02" }}

[users.alice]
role = "{role}"
web = true
telegram = {ALICE}

{jobs}
[telegram]
token = "env:FARMBOT_TEST_TELEGRAM_TOKEN"
base_url = "{tg.base_url}"
base_file_url = "{tg.base_file_url}"
poll_timeout = 1

[[webhooks]]
name = "ops"
url = "http://127.0.0.1:{ops_port}/alerts"

[[alerts.routes]]
interface = "ops"
channel = "ops"
min_severity = "{min_severity}"
"""


async def test_sighup_reloads_live_and_refuses_what_it_cannot_take(
    tmp_path: Path, tmux_socket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    repos = {"farm": await git_project(tmp_path / "farm")}
    port, ops_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    path = tmp_path / "farmbot.toml"
    go = tmp_path / "go"
    go.mkdir()
    async with FakeTelegram() as tg, Receiver(ops_port).up() as ops:
        monkeypatch.setenv("FARMBOT_TEST_TELEGRAM_TOKEN", tg.token)  # the daemon inherits it

        def write(**changes: Any) -> None:
            settings: dict[str, Any] = {
                "port": port, "ops_port": ops_port, "socket": tmux_socket, "tg": tg,
                "repos": repos, "role": "operator", "min_severity": "critical",
                "cron": [("report", "0 0 1 1 *", "/status")], "go": go,
            }  # fmt: skip
            path.write_text(toml(**{**settings, **changes}))

        async def reload() -> tuple[int, str, str]:
            done = await farmbot(path, "reload", "--timeout", "15")
            return done.code, done.out.strip(), done.err.strip()

        async def telegram(text: str) -> str:
            before = len(tg.sent_messages(ALICE))
            tg.push_message(ALICE, text)
            await tg.wait_for("sendMessage", lambda p: len(tg.sent_messages(ALICE)) > before)
            return str(tg.sent_messages(ALICE)[-1]["text"])

        write()
        async with serve(path, url, tmp_path / "logs") as daemon:
            # A working agent, and a prompt queued for an agent that is not ready yet.
            (go / "builder-1").touch()
            assert (await daemon.command("/spawn builder 1"))["ok"]

            async def screen_shows(text: str, agent: str = "builder-1") -> str | None:
                tail = await daemon.command(f"/tail {agent} 40")
                return tail["pre"] if text in (tail["pre"] or "") else None

            await retry_until(lambda: screen_shows("✓ done: You are builder 1"), timeout=15)
            assert (await daemon.command("/send builder-1 hang"))["ok"]
            await retry_until(lambda: screen_shows("> received: hang"), timeout=10)

            async def busy() -> bool:
                agents = await daemon.command("/agents")
                return "builder-1 [farm] busy" in agents["text"]

            await retry_until(busy, timeout=10, message="builder-1 to be busy")
            assert (await daemon.command("/spawn architect"))["ok"]
            queued = await daemon.command("/send architect after the reload")
            assert queued["ok"] and queued["text"].startswith("queued for architect"), queued
            assert "needs admin" in await telegram("/approve 999")  # alice: an operator
            connects = len([c for c, _ in tg.calls if c == "getMe"])

            # 1. The roles, projects, an alert route and the cron jobs change: applied.
            repos["web"] = await git_project(tmp_path / "web")
            write(
                role="admin",
                min_severity="info",
                cron=[("report", "30 4 * * *", "/agents"), ("nightly", "0 3 * * *", "/status")],
            )
            code, out, err = await reload()
            assert code == 0, err
            assert out.startswith(f"farmbot (pid {daemon.proc.pid}) reloaded {path}: changed ")
            for key in ("projects", "users", "cron", "alerts.routes"):
                assert key in out
            assert "unknown gate 999" in await telegram("/approve 999")  # alice: an admin now
            projects = await daemon.command("/projects")
            assert "web" in projects["text"] and "farm" in projects["text"]

            # The new route (info and above) took the reload's own alert to the webhook.
            def reloaded() -> list[dict[str, Any]]:
                return [a for a in ops.received if a["title"] == "configuration reloaded"]

            [alert] = await retry_until(reloaded, timeout=10, message="the reload's alert")
            assert alert["severity"] == "info" and "changed" in alert["text"]
            log = (tmp_path / "logs" / "stderr").read_text()
            assert "schedules: started cron-report, cron-nightly; stopped cron-report" in log

            # 2. A broken config is refused, named; the one in force stays.
            path.write_text(path.read_text().replace('role = "admin"', 'role = "boss"'))
            code, out, err = await reload()
            assert code == 1 and out == ""
            assert err.startswith(f"farmbot (pid {daemon.proc.pid}) refused {path}: config: ")
            assert "users.alice.role: unknown role 'boss'" in err
            assert "unknown gate 999" in await telegram("/approve 999")  # still an admin

            # 3. A new port needs a restart: refused, and it says so.
            write(role="admin", port=port + 1, min_severity="info")
            code, out, err = await reload()
            assert code == 1
            assert "server.port changed, which only a restart applies" in err
            assert (await daemon.command("/status"))["ok"]  # still on the old port

            async def refusals() -> list[dict[str, Any]] | None:
                found = [a for a in ops.received if a["title"] == "configuration reload refused"]
                return found if len(found) == 2 else None

            refused = await retry_until(refusals, timeout=10, message="two refusal alerts")
            assert "users.alice.role" in refused[0]["text"]
            assert "server.port" in refused[1]["text"]

            # The agents, the queue and the chat connection lived through it all.
            assert await busy(), "builder-1 stopped working"
            alive = await run("tmux", "-L", tmux_socket, "has-session", "-t", "=builder-1")
            assert alive.code == 0
            assert len([c for c, _ in tg.calls if c == "getMe"]) == connects  # no reconnect
            (go / "architect").touch()
            await retry_until(
                lambda: screen_shows("> received: after the reload", "architect"),
                timeout=15,
                message="the queued prompt to be delivered",
            )
            events = [kind for kind, _ in await daemon.events()]
            assert events.count("config.refused") == 2 and "config.reloaded" in events
            assert "config: refused" in (tmp_path / "logs" / "stderr").read_text()
            assert await daemon.terminate() == 0

        done = await farmbot(path, "reload")
        assert done.code == 1
        assert done.err.strip() == (
            f"farmbot: farmbot is not running (state directory {tmp_path / 'state'}), so there "
            "is nothing to reload; `farmbot start` reads the configuration afresh"
        )


# -- the diff ---------------------------------------------------------------------------


def test_changes_name_settings_and_restart_needed_names_the_fixed_ones(tmp_path: Path) -> None:
    old = make_config(tmp_path, "sock")
    new = dataclasses.replace(
        old,
        users=(UserConfig("bob", Role.ADMIN),),
        server=dataclasses.replace(old.server, port=9999, metrics_token="t" * 16),
        agents={**old.agents, "demo": dataclasses.replace(old.agents["demo"], command="x")},
        limits=LimitsConfig(spawns_per_minute=1),
        source=tmp_path / "elsewhere.toml",  # where it came from is not a setting
    )
    assert changes(old, new) == [
        "server.port",
        "server.metrics_token",
        "agents.demo",
        "users",
        "limits.spawns_per_minute",
    ]
    assert restart_needed(changes(old, new)) == ["server.port"]
    assert changes(old, old) == []
    assert restart_needed(
        ["storage.url", "storage.keep_events_days", "telegram", "tmux.socket"]
    ) == [
        "storage.url",
        "telegram",
        "tmux.socket",
    ]


def test_a_chat_section_is_named_as_written_and_needs_a_restart(tmp_path: Path) -> None:
    """Config keeps chat sections by platform (config.chats); a change names the section."""
    old = make_config(tmp_path, "sock")
    telegram = TelegramConfig(token="1:a")
    with_telegram = dataclasses.replace(old, chats={"telegram": telegram})
    faster = dataclasses.replace(
        old, chats={"telegram": dataclasses.replace(telegram, poll_timeout=5)}
    )
    assert changes(with_telegram, faster) == ["telegram.poll_timeout"]
    assert restart_needed(changes(with_telegram, faster)) == ["telegram.poll_timeout"]
    both = dataclasses.replace(
        with_telegram, chats={**with_telegram.chats, "slack": SlackConfig(bot_token="xoxb-1")}
    )
    assert changes(with_telegram, both) == ["slack"]
    assert changes(both, old) == ["telegram", "slack"]


# -- the schedules ----------------------------------------------------------------------


async def test_schedules_keep_the_unchanged_restart_the_changed_and_finish_a_run() -> None:
    runs: list[str] = []
    release = asyncio.Event()

    def work(name: str, wait: bool = False) -> Callable[[], Awaitable[None]]:
        async def run_once() -> None:
            runs.append(f"{name} start")
            if wait:
                await release.wait()
            runs.append(f"{name} end")

        return run_once

    def soon() -> Callable[[], float | None]:
        return lambda: 0.01

    schedules = Schedules()
    async with asyncio.TaskGroup() as tasks:
        kept = Schedule(("a", 1), soon, work("kept"))
        slow = Schedule(("b", 1), soon, work("slow", wait=True))
        schedules.apply(tasks, {"kept": kept, "slow": slow})
        await retry_until(lambda: "slow start" in runs and "kept end" in runs)
        assert schedules.names() == ["kept", "slow"]
        # "slow" is changed while a run is in progress: that run finishes, then it stops.
        schedules.apply(tasks, {"kept": kept, "slow": Schedule(("b", 2), soon, work("fast"))})
        assert schedules.started == 3 and schedules.stopped == 1  # "kept" was left alone
        release.set()
        await retry_until(lambda: "slow end" in runs and "fast end" in runs)
        runs.clear()
        await retry_until(lambda: "fast end" in runs)
        assert "slow start" not in runs  # the old one stopped after its run
        schedules.apply(tasks, {})
        await asyncio.sleep(0.05)
        runs.clear()
        await asyncio.sleep(0.05)
        assert runs == []
    assert schedules.names() == []


# -- in process: what each part takes ---------------------------------------------------


async def test_a_reload_reaches_every_part_that_reads_the_config(
    tmp_path: Path, tmux_socket: str
) -> None:
    config = dataclasses.replace(
        make_config(
            tmp_path, tmux_socket, users=(UserConfig("alice", Role.VIEWER, ids={"telegram": 1}),)
        ),
        cron=(),
    )
    current = [config]
    async with Daemon(config, load=lambda: current[0]) as daemon:
        farm = daemon.farm
        nothing = await daemon.reload()
        assert nothing.applied and nothing.message.endswith("changed nothing")
        assert json.loads((tmp_path / "state" / OUTCOME_FILE).read_text())["applied"] is True

        profiles = dict(config.agents)
        profiles["demo"] = dataclasses.replace(profiles["demo"], idle_pattern=r"^ready> $")
        current[0] = dataclasses.replace(
            config,
            users=(UserConfig("alice", Role.ADMIN, ids={"telegram": 1}),),
            projects=(*config.projects, ProjectConfig("web", make_repo(tmp_path / "web"))),
            agents=profiles,
            limits=LimitsConfig(commands_per_minute=1),
            alerts=dataclasses.replace(config.alerts, rules={"config.reloaded": Severity.CRITICAL}),
            storage=dataclasses.replace(config.storage, keep_events_days=7, keep_audit_days=90),
            server=dataclasses.replace(config.server, metrics_token="m" * 20),
            cron=(CronJob("report", "0 9 * * *", "/status", "alice"),),
        )
        outcome = await daemon.reload()
        assert outcome.applied, outcome.message
        assert farm.config is daemon.config is current[0]
        first = await farm.router.handle(Incoming("telegram", "1", "c", "/approve 9"))
        assert "unknown gate 9" in first.text  # an admin now
        second = await farm.router.handle(Incoming("telegram", "1", "c", "/status"))
        assert "1 commands a minute" in second.text  # the new limit
        assert [p.name for p in await farm.supervisor.projects()] == ["proj", "web"]
        agent = await farm.supervisor.spawn(AgentKind.SHELL, None, None, "alice")
        rules = farm.monitor.rules_for(dataclasses.replace(agent, profile="demo"))
        assert rules is not None and rules.patterns.idle is not None
        assert rules.patterns.idle.pattern == r"^ready> $"  # what the keyboard and monitor read
        assert farm.retention.keep_events == 7 * 86400 and farm.retention.keep_audit == 90 * 86400
        [alert] = await farm.storage.outbox.recent_alerts(1)
        assert (alert.kind, alert.severity) == ("config.reloaded", Severity.CRITICAL)

        # A restart-only change: refused, and nothing of it (or of the rest) applied.
        current[0] = dataclasses.replace(
            current[0],
            tmux=dataclasses.replace(current[0].tmux, socket="elsewhere"),
            users=(),
        )
        refused = await daemon.reload()
        assert not refused.applied and refused.restart == ("tmux.socket",)
        assert daemon.config.users == (UserConfig("alice", Role.ADMIN, ids={"telegram": 1}),)

        def broken() -> Config:
            from farmbot.errors import ConfigError

            raise ConfigError("qa.timeout", "must be greater than 0, got -1")

        daemon._load = broken
        bad = await daemon.reload()
        assert not bad.applied and "config: qa.timeout: must be greater than 0" in bad.message
        assert daemon.reloader.statistics() == {"applied": 2, "refused": 2}


async def test_reload_without_a_daemon_and_with_a_stale_pid(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with pytest.raises(FarmbotError, match="farmbot is not running"):
        lifecycle.reload(state)
    state.mkdir()
    (state / lifecycle.LOCK_FILE).write_text("999999")  # a daemon that is gone
    with pytest.raises(FarmbotError, match="nothing to reload"):
        lifecycle.reload(state)
    assert lifecycle.RELOAD_FILE == OUTCOME_FILE
    assert ServerConfig().metrics_token is None
