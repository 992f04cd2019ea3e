"""Agents as another Unix user (a profile's run_as): they cannot read farmbot's files, reach
its tmux server or read its environment, and still work and commit in their worktree.

Real tmux, real users: farmbot runs as root here (runuser), the agents as ``nobody``.
Everything lives under a directory of /tmp that ``nobody`` may pass through, since the
test's own tmp_path (in root's 0700 pytest directory) is out of its reach.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from farmbot.adapters.hooks import hook_token
from farmbot.config.schema import AgentProfile, Config, ProjectConfig
from farmbot.models import AgentKind
from tests.daemon import run
from tests.farm import farm_for, make_config, make_repo
from tests.helpers import retry_until

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("runuser") is None,
    reason="needs root and runuser to start agents as another user",
)
AGENT_USER = "nobody"


@pytest.fixture
def base() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="farmbot-run-as-", dir="/tmp"))
    path.chmod(0o711)
    (path / "out").mkdir()
    (path / "out").chmod(0o777)  # where the agent writes what it found
    yield path
    shutil.rmtree(path, ignore_errors=True)


def config_for(base: Path, tmux_socket: str, profile: AgentProfile) -> Config:
    repo = make_repo(base / "repo")
    project = ProjectConfig("proj", repo, agent=profile.name)
    config = make_config(base, tmux_socket, projects=(project,))
    return replace(config, agents={**config.agents, profile.name: profile})


def written(base: Path, name: str) -> str:
    path = base / "out" / name
    return path.read_text() if path.exists() else ""


async def test_an_agent_run_as_another_user_cannot_reach_what_farmbot_holds(
    base: Path, tmux_socket: str
) -> None:
    demo = replace(make_config(base, tmux_socket).agents["demo"], run_as=AGENT_USER)
    config = config_for(base, tmux_socket, demo)
    async with farm_for(config, base) as farm:
        state = farm.config.server.state_dir
        assert stat.S_IMODE(state.stat().st_mode) == 0o711  # passable, not listable
        await farm.supervisor.spawn(AgentKind.SHELL, 1, None, "alice")
        out = base / "out"
        probe = (
            f"id -u > {out}/uid; cat {state}/local-key > {out}/key 2>&1; "
            f"ls {state} > {out}/ls 2>&1; "
            f"tmux -L {tmux_socket} ls > {out}/tmux 2>&1; "
            f"cat /proc/{os.getpid()}/environ > {out}/environ 2>&1; "
            f'printf %s "$FARMBOT_HOOK_TOKEN" > {out}/token; '
            f'touch "$FARMBOT_SPOOL_DIR/probe" && echo yes > {out}/spool; echo > {out}/done'
        )
        await farm.supervisor.send("shell-1", probe, "alice")

        async def done() -> str:
            await farm.tick()  # the shell is starting: the probe waits in its queue
            return written(base, "done")

        await retry_until(done, timeout=15, message="the probe to run")

        assert written(base, "uid").strip() == str(pwd.getpwnam(AGENT_USER).pw_uid)
        assert "Permission denied" in written(base, "key")
        assert farm.graph.key not in written(base, "key")
        assert "Permission denied" in written(base, "ls")
        assert "Permission denied" in written(base, "environ")
        assert "error connecting" in written(base, "tmux") or "denied" in written(base, "tmux")
        # What it does get: its own hook token, and a spool directory it may write.
        assert written(base, "token") == hook_token(farm.graph.key, "shell-1")
        assert written(base, "spool").strip() == "yes"
        assert (state / "spool" / "shell-1" / "probe").stat().st_uid != 0


async def test_a_builder_run_as_another_user_works_and_commits_in_its_worktree(
    base: Path, tmux_socket: str
) -> None:
    out = base / "out"
    runner = AgentProfile(
        name="runner",
        command="/bin/bash --norc --noprofile",
        idle_pattern=r"\$ ?$",
        run_as=AGENT_USER,
        hooks="claude",
        builder_prompt=(
            "echo work > made-here && git add made-here && "
            "git -c user.name=agent -c user.email=agent@example.com commit -qm 'by the agent' "
            f"&& echo committed > {out}/commit || echo failed > {out}/commit"
        ),
    )
    config = config_for(base, tmux_socket, runner)
    async with farm_for(config, base) as farm:
        agent = await farm.supervisor.spawn(AgentKind.BUILDER, 7, None, "alice")

        async def done() -> str:
            await farm.tick()
            return written(base, "commit")

        assert (await retry_until(done, timeout=20, message="the commit")).strip() == "committed"
        worktree = Path(agent.workdir)
        assert (worktree / "made-here").stat().st_uid == pwd.getpwnam(AGENT_USER).pw_uid
        repo = config.projects[0].path
        log = await run("git", "-C", str(repo), "log", "--format=%s", "farmbot/builder-7")
        assert log.out.splitlines()[0] == "by the agent"
        assert stat.S_IMODE(worktree.stat().st_mode) & 0o007 == 0  # nothing for others
        # Its hooks are http hooks (it may not be able to run this farmbot), and the file
        # with its token is for its group only.
        settings = worktree / ".claude" / "settings.local.json"
        [group] = json.loads(settings.read_text())["hooks"]["Stop"]
        assert group["hooks"][0]["type"] == "http"
        assert hook_token(farm.graph.key, "builder-7") in group["hooks"][0]["url"]
        assert stat.S_IMODE(settings.stat().st_mode) & 0o007 == 0
