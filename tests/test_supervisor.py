"""The supervisor against real tmux, real git and real SQLite, driving the demo agent."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from farmbot.config.schema import ProjectConfig, SupervisorConfig
from farmbot.errors import CommandError, Conflict, NotFound
from farmbot.hooks_install import install_hooks, write_token_file
from farmbot.messages import Incoming, Reply
from farmbot.models import AgentKind, AgentState, DesiredState
from farmbot.supervisor.tmux import Tmux
from tests.farm import Farm, farm_for, make_config, make_repo, received_prompts
from tests.helpers import retry_until


@pytest.fixture
async def farm(tmp_path: Path, tmux_socket: str) -> AsyncIterator[Farm]:
    async with farm_for(make_config(tmp_path, tmux_socket), tmp_path) as farm:
        yield farm


def git(path: str | Path, *args: str) -> str:
    result = subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True)
    return result.stdout.strip()


async def test_spawn_builder_gets_worktree_session_and_prompt(farm: Farm) -> None:
    agent = await farm.supervisor.spawn(AgentKind.BUILDER, 42, None, "alice")

    assert agent.id == "builder-42"
    assert agent.state is AgentState.STARTING and agent.desired is DesiredState.RUNNING
    worktree = Path(agent.workdir)
    assert worktree == farm.config.server.state_dir / "worktrees" / "proj" / "builder-42"
    assert git(worktree, "branch", "--show-current") == "farmbot/builder-42"
    env = await farm.tmux.session_env("builder-42")
    assert env["FARMBOT_AGENT"] == "builder-42" and env["FARMBOT_PROJECT"] == "proj"

    await farm.until_idle("builder-42")
    prompts = received_prompts(farm.tmp_path)
    assert len(prompts) == 1
    assert "builder 42 on project proj" in prompts[0] and "issue #42" in prompts[0]
    assert "✓ done" in await farm.screen("builder-42")
    assert [e.kind for e in farm.seen].count("prompt.delivered") == 1


async def test_spawn_refuses_a_running_agent_and_the_builder_limit(
    tmp_path: Path, tmux_socket: str
) -> None:
    config = make_config(tmp_path, tmux_socket, supervisor=SupervisorConfig(max_builders=1))
    async with farm_for(config, tmp_path) as farm:
        await farm.supervisor.spawn(AgentKind.BUILDER, 1, None, "alice")
        with pytest.raises(Conflict, match="builder-1 is already running"):
            await farm.supervisor.spawn(AgentKind.BUILDER, 1, None, "alice")
        with pytest.raises(Conflict, match="already runs 1 builders.*builder-1"):
            await farm.supervisor.spawn(AgentKind.BUILDER, 2, None, "alice")
        # A shell does not count against the builder limit.
        shell = await farm.supervisor.spawn(AgentKind.SHELL, None, None, "alice")
        assert shell.id == "shell-1" and shell.workdir == str(config.projects[0].path)


async def test_spawn_in_unknown_or_deactivated_project(farm: Farm) -> None:
    with pytest.raises(NotFound, match="unknown project 'prj'; did you mean 'proj'"):
        await farm.supervisor.spawn(AgentKind.BUILDER, 1, "prj", "alice")
    await farm.supervisor.set_active("proj", False)
    with pytest.raises(Conflict, match="deactivated; /activate proj"):
        await farm.supervisor.spawn(AgentKind.BUILDER, 1, None, "alice")


async def test_builder_in_a_plain_directory_project(tmp_path: Path, tmux_socket: str) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    config = make_config(tmp_path, tmux_socket, projects=(ProjectConfig("plain", plain),))
    async with farm_for(config, tmp_path) as farm:
        agent = await farm.supervisor.spawn(AgentKind.BUILDER, 3, None, "alice")
        assert agent.branch is None and Path(agent.workdir).is_dir()
        assert not (Path(agent.workdir) / ".git").exists()


async def test_send_multiline_text_arrives_as_one_literal_prompt(farm: Farm) -> None:
    await farm.supervisor.spawn(AgentKind.ARCHITECT, None, None, "alice")
    await farm.until_idle("architect")
    text = (
        "first line\n    indented second line with  two spaces\nthird: $HOME `date` 'quotes' \"dq\""
    )

    sent = await farm.supervisor.send("architect", text, "alice")

    assert not sent.queued and sent.removed == 0
    await farm.until_idle("architect")
    assert received_prompts(farm.tmp_path) == [text]
    prompt = (await farm.storage.events.recent_events(1, kind_prefix="prompt."))[0]
    assert prompt.data["source"] == "alice"


async def test_send_hostile_text_is_cleaned_never_interpreted(farm: Farm) -> None:
    await farm.supervisor.spawn(AgentKind.ARCHITECT, None, None, "alice")
    await farm.until_idle("architect")
    # An early bracketed-paste end, a colour, a bell, a lone ESC (which would cancel a
    # dialog), a C1 control and an OSC title change.
    hostile = "safe\x1b[201~ tail\x1b[31m red\x07 \x1b x\x9b1m \x1b]0;pwned\x07end"

    sent = await farm.supervisor.send("architect", hostile, "alice")

    assert sent.removed > 0
    await farm.until_idle("architect")
    [prompt] = received_prompts(farm.tmp_path)
    assert prompt == "safe tail red  x1m end"
    screen = await farm.screen("architect")
    assert "pwned" not in screen


async def test_send_refusals(farm: Farm) -> None:
    await farm.supervisor.spawn(AgentKind.ARCHITECT, None, None, "alice")
    await farm.until_idle("architect")
    with pytest.raises(CommandError, match="nothing to send"):
        await farm.supervisor.send("architect", "\x1b[31m\x07", "alice")
    with pytest.raises(CommandError, match="text too long: .* the limit is 16384 bytes"):
        await farm.supervisor.send("architect", "x" * 20000, "alice")
    with pytest.raises(NotFound, match="unknown agent 'architekt'; did you mean 'architect'"):
        await farm.supervisor.send("architekt", "hi", "alice")


async def test_send_never_types_into_an_open_permission_dialog(farm: Farm) -> None:
    await farm.supervisor.spawn(AgentKind.ARCHITECT, None, None, "alice")
    await farm.until_idle("architect")
    await farm.supervisor.send("architect", "run make deploy, needs permission", "alice")
    await farm.until_screen("architect", "Do you want to proceed?")

    with pytest.raises(Conflict, match="asking a question"):
        await farm.supervisor.send("architect", "1", "mallory")

    assert "✓ approved" not in await farm.screen("architect")
    await farm.until_state("architect", AgentState.WAITING)


async def test_prompts_queued_while_starting_are_delivered_in_order(farm: Farm) -> None:
    await farm.supervisor.spawn(AgentKind.BUILDER, 7, None, "alice")
    first = await farm.supervisor.send("builder-7", "then this", "bob")
    second = await farm.supervisor.send("builder-7", "and finally this", "bob")
    assert first.queued and second.queued

    await farm.until_idle("builder-7")

    prompts = received_prompts(farm.tmp_path)
    assert prompts[1:] == ["then this", "and finally this"]
    assert "issue #7" in prompts[0]


async def test_tail_shows_the_last_lines(farm: Farm) -> None:
    await farm.supervisor.spawn(AgentKind.ARCHITECT, None, None, "alice")
    await farm.until_idle("architect")
    await farm.supervisor.send("architect", "write the plan", "alice")
    await farm.until_idle("architect")

    lines = await farm.supervisor.tail("architect", 3)

    assert len(lines) <= 3
    assert any("✓ done: write the plan" in line for line in lines)
    with pytest.raises(CommandError, match="between 1 and 2000"):
        await farm.supervisor.tail("architect", 0)


async def test_kill_is_recorded_as_deliberate_and_keeps_the_worktree(farm: Farm) -> None:
    agent = await farm.supervisor.spawn(AgentKind.BUILDER, 5, None, "alice")
    await farm.supervisor.send("builder-5", "queued work", "bob")

    killed = await farm.supervisor.kill("builder-5", "carol")
    stopped, dropped = killed.agent, killed.dropped

    assert stopped.desired is DesiredState.STOPPED and stopped.state is AgentState.STOPPED
    assert stopped.state_reason == "stopped by carol"
    assert dropped == 2  # the builder prompt and the queued one
    assert await farm.tmux.pane("builder-5") is None
    assert Path(agent.workdir).is_dir()
    # Supervision afterwards never mistakes the stop for a crash.
    for _ in range(3):
        await farm.tick()
    after = await farm.agent("builder-5")
    assert after.state is AgentState.STOPPED
    assert not [e for e in farm.seen if e.kind == "agent.dead"]
    with pytest.raises(Conflict, match="already stopped"):
        await farm.supervisor.kill("builder-5", "carol")
    with pytest.raises(Conflict, match="stopped"):
        await farm.supervisor.send("builder-5", "hello?", "bob")


async def test_kill_can_remove_the_worktree_but_keeps_the_branch(farm: Farm) -> None:
    agent = await farm.supervisor.spawn(AgentKind.BUILDER, 6, None, "alice")
    await farm.supervisor.kill("builder-6", "carol", remove=True)
    assert not Path(agent.workdir).exists()
    repo = farm.config.projects[0].path
    assert "farmbot/builder-6" in git(repo, "branch", "--list", "farmbot/*")
    # Spawned again, it continues on its branch.
    again = await farm.supervisor.spawn(AgentKind.BUILDER, 6, None, "alice")
    assert git(again.workdir, "branch", "--show-current") == "farmbot/builder-6"


async def test_removing_a_worktree_that_holds_uncommitted_work_needs_force(farm: Farm) -> None:
    agent = await farm.supervisor.spawn(AgentKind.BUILDER, 44, None, "alice")
    worktree = Path(agent.workdir)
    (worktree / "notes.txt").write_text("an idea nobody committed\n")

    async def kill(text: str) -> Reply:
        return await farm.router.handle(Incoming("web", "local", "console", text))

    refused = await kill("/kill builder-44 --remove-worktree")
    assert not refused.ok
    assert refused.text == (
        f"builder-44's worktree {worktree} has work that is not on its branch "
        "farmbot/builder-44: 1 untracked file (notes.txt). Nothing was done. Commit it "
        "first, or /kill builder-44 --remove-worktree --force to remove it anyway and lose "
        "that (/kill builder-44 keeps the worktree)"
    )
    assert (worktree / "notes.txt").exists()
    assert (await farm.agent("builder-44")).desired is DesiredState.RUNNING  # not even stopped

    forced = await kill("/kill builder-44 --remove-worktree --force")
    assert forced.ok, forced.text
    assert forced.text == (
        "stopped builder-44 on purpose; worktree removed with what was not on its branch "
        "farmbot/builder-44 (lost: 1 untracked file (notes.txt)); dropped 1 queued prompts"
    )
    assert not worktree.exists()


async def test_git_ignored_files_count_among_what_removing_a_worktree_loses(
    farm: Farm,
) -> None:
    agent = await farm.supervisor.spawn(AgentKind.BUILDER, 46, None, "alice")
    worktree = Path(agent.workdir)
    (worktree / ".gitignore").write_text(".env\ndata/\n*.log\n")
    git(worktree, "add", ".gitignore")
    git(worktree, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-q", "-m", "ignore")
    (worktree / ".env").write_text("API_KEY=only-copy\n")
    (worktree / "data" / "rows").mkdir(parents=True)
    (worktree / "data" / "rows" / "1.db").write_text("x")
    (worktree / "data" / "2.db").write_text("x")
    # What a Claude Code builder has: farmbot's own hook files, ignored through
    # info/exclude -- farmbot puts them back at every spawn, so they are no loss.
    install_hooks(worktree, agent="builder-46")
    write_token_file(worktree, "a-token")

    async def kill(text: str) -> Reply:
        return await farm.router.handle(Incoming("web", "local", "console", text))

    refused = await kill("/kill builder-46 --remove-worktree")
    assert not refused.ok
    assert ": 2 git-ignored files and folders (.env, data/). Nothing was done." in refused.text
    (worktree / "debug.log").write_text("x")
    refused = await kill("/kill builder-46 --rm")
    assert "3 git-ignored files and folders (.env, data/, debug.log)" in refused.text
    (worktree / ".env").unlink()
    (worktree / "debug.log").unlink()
    refused = await kill("/kill builder-46 --rm")
    assert ": 1 git-ignored folder (data/). Nothing was done." in refused.text
    assert (worktree / "data" / "2.db").exists()

    forced = await kill("/kill builder-46 --rm --force")
    assert forced.ok and "(lost: 1 git-ignored folder (data/))" in forced.text, forced.text
    assert not worktree.exists()


async def test_a_worktree_whose_work_is_all_committed_is_removed_and_says_so(
    farm: Farm,
) -> None:
    agent = await farm.supervisor.spawn(AgentKind.BUILDER, 45, None, "alice")
    worktree = Path(agent.workdir)
    (worktree / "done.txt").write_text("work\n")
    git(worktree, "add", "done.txt")
    git(worktree, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-q", "-m", "done")
    (worktree / "changed.txt").write_text("x\n")
    git(worktree, "add", "changed.txt")  # staged, not committed
    refused = await farm.router.handle(Incoming("web", "local", "console", "/kill builder-45 --rm"))
    assert "1 uncommitted change (changed.txt)" in refused.text
    git(worktree, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-q", "-m", "more")
    removed = await farm.router.handle(Incoming("web", "local", "console", "/kill builder-45 --rm"))
    assert removed.ok and "worktree removed; everything in it is on its branch" in removed.text
    assert "done.txt" in git(farm.config.projects[0].path, "ls-tree", "-r", "farmbot/builder-45")


async def test_an_agent_that_exits_is_dead_not_restarted(farm: Farm) -> None:
    await farm.supervisor.spawn(AgentKind.ARCHITECT, None, None, "alice")
    await farm.until_idle("architect")
    await farm.supervisor.send("architect", "crash", "alice")

    dead = await farm.until_state("architect", AgentState.DEAD)

    assert dead.desired is DesiredState.RUNNING
    assert dead.state_reason == "its process exited with status 3"
    [event] = [e for e in farm.seen if e.kind == "agent.dead"]
    assert any("crashed" in line for line in event.data["last_lines"])
    pane = await farm.tmux.pane("architect")
    assert pane is not None and pane.dead  # not restarted behind anyone's back
    # /tail still shows what it said last, and spawning it again works.
    assert any("crashed" in line for line in await farm.supervisor.tail("architect", 5))
    await farm.supervisor.spawn(AgentKind.ARCHITECT, None, None, "alice")
    await farm.until_idle("architect")


async def test_an_agent_killed_by_a_signal_is_reported_so(farm: Farm) -> None:
    await farm.supervisor.spawn(AgentKind.ARCHITECT, None, None, "alice")
    await farm.until_idle("architect")
    pane = await farm.tmux.pane("architect")
    assert pane is not None and pane.pid is not None
    os.kill(pane.pid, signal.SIGKILL)

    dead = await farm.until_state("architect", AgentState.DEAD)

    assert dead.state_reason == "its process was killed by signal 9 (SIGKILL)"
    [alert] = await farm.storage.outbox.recent_alerts(5)
    assert alert.kind == "agent.dead"
    assert (
        alert.text == "architect in project proj died: its process was killed by signal 9 (SIGKILL)"
    )


async def test_restart_readopts_live_agents_and_marks_vanished_ones_dead(
    tmp_path: Path, tmux_socket: str
) -> None:
    config = make_config(tmp_path, tmux_socket)
    async with farm_for(config, tmp_path) as first:
        await first.supervisor.spawn(AgentKind.BUILDER, 1, None, "alice")
        await first.supervisor.spawn(AgentKind.BUILDER, 2, None, "alice")
        await first.until_idle("builder-1")
        await first.supervisor.send("builder-1", "remember me", "alice")
        await first.until_idle("builder-1")
    # The daemon is down; meanwhile builder-2's session disappears.
    await first.tmux.kill_session("builder-2")

    async with farm_for(config, tmp_path) as second:
        await second.monitor.reconcile(startup=True)
        await second.monitor.tick()

        live = await second.agent("builder-1")
        gone = await second.agent("builder-2")
        assert live.state.is_live and live.desired is DesiredState.RUNNING
        assert gone.state is AgentState.DEAD and gone.state_reason == "its tmux session vanished"
        kinds = [(e.kind, e.agent_id) for e in second.seen]
        assert ("agent.readopted", "builder-1") in kinds and ("agent.dead", "builder-2") in kinds
        # The re-adopted agent is fully usable.
        await second.until_idle("builder-1")
        await second.supervisor.send("builder-1", "still there?", "alice")
        await second.until_idle("builder-1")
        assert received_prompts(tmp_path)[-2:] == ["remember me", "still there?"]


def tmux_cli(socket: str, *args: str) -> str:
    done = subprocess.run(["tmux", "-L", socket, "-f", "/dev/null", *args], capture_output=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.decode()


async def test_taking_over_a_server_sets_its_hooks_and_reads_its_panes_and_environment(
    tmux_socket: str,
) -> None:
    tmux = Tmux(tmux_socket, {"PATH": os.environ["PATH"]})
    try:
        assert await tmux.take_over() == ([], {})  # no server yet: nothing to take over
        # A server farmbot did not set up: no hooks, an environment with more than PATH.
        tmux_cli(tmux_socket, "start-server", ";", "set-option", "-g", "exit-empty", "off")
        tmux_cli(tmux_socket, "set-environment", "-g", "LEFT_BEHIND", "x")
        removed, panes = await tmux.take_over()  # a server without sessions has no panes
        assert "LEFT_BEHIND" in removed and "PATH" not in removed and panes == {}
        assert "LEFT_BEHIND" not in tmux_cli(tmux_socket, "show-environment", "-g")
        tmux_cli(
            tmux_socket, "set-hook", "-gu", "pane-died", ";", "set-hook", "-gu", "session-closed"
        )
        tmux_cli(tmux_socket, "set-environment", "-g", "LEFT_AGAIN", "y")
        tmux_cli(tmux_socket, "new-session", "-d", "-s", "old", "-x", "80", "-y", "20", "cat")

        removed, panes = await tmux.take_over()

        assert removed == ["LEFT_AGAIN"]
        assert list(panes) == ["old"] and not panes["old"].dead and panes["old"].pid
        assert (await tmux.panes())["old"].pid == panes["old"].pid  # as panes() reads them
        # Its hooks are set: the pane's process ending wakes changed().
        waiting = asyncio.create_task(tmux.changed())
        tmux_cli(tmux_socket, "send-keys", "-t", "=old:", "C-d")
        await asyncio.wait_for(waiting, 10)
    finally:
        tmux.close()


async def test_untracked_farmbot_session_is_adopted(farm: Farm) -> None:
    env = {
        "FARMBOT_AGENT": "builder-9",
        "FARMBOT_PROJECT": "proj",
        "FARMBOT_KIND": "builder",
        "FARMBOT_NUMBER": "9",
        "FARMBOT_PROFILE": "demo",
    }
    command = farm.config.agents["demo"].command
    await farm.tmux.new_session("builder-9", command, farm.config.projects[0].path, env)
    await farm.tmux.new_session("someone-else", "sleep 30", farm.tmp_path, {})

    await farm.monitor.reconcile()

    adopted = await farm.agent("builder-9")
    assert adopted.kind is AgentKind.BUILDER and adopted.number == 9
    assert await farm.storage.agents.get_agent("someone-else") is None
    await farm.until_idle("builder-9")


async def test_a_prompt_interrupted_by_a_restart_is_delivered_after_it(farm: Farm) -> None:
    await farm.supervisor.spawn(AgentKind.ARCHITECT, None, None, "alice")
    await farm.until_idle("architect")
    # As if the daemon died between storing a prompt and typing it.
    await farm.storage.prompts.add_prompt(
        "architect", "survive the crash", "alice", farm.graph.clock(), wait_ready=False
    )

    await farm.until_idle("architect")

    assert received_prompts(farm.tmp_path) == ["survive the crash"]
    assert await farm.storage.prompts.pending_prompts() == []


async def test_projects_activate_and_deactivate(farm: Farm) -> None:
    [project] = await farm.supervisor.projects()
    assert project.active and project.is_git
    assert not (await farm.supervisor.set_active("proj", False)).active
    assert (await farm.supervisor.set_active("proj", True)).active
    with pytest.raises(NotFound):
        await farm.supervisor.set_active("nope", True)


async def test_each_project_is_recorded_as_a_git_repository_or_not(
    tmp_path: Path, tmux_socket: str
) -> None:
    plain, empty = tmp_path / "plain", tmp_path / "empty-repo"
    plain.mkdir()
    empty.mkdir()
    git(empty, "init", "-q")  # a repository without a commit: no branch to work on
    projects = (
        ProjectConfig("repo", make_repo(tmp_path / "repo")),
        ProjectConfig("plain", plain),
        ProjectConfig("empty", empty),
    )
    config = make_config(tmp_path, tmux_socket, projects=projects)
    async with farm_for(config, tmp_path) as farm:
        found = {p.name: p.is_git for p in await farm.supervisor.projects()}
    assert found == {"repo": True, "plain": False, "empty": False}


async def test_a_prompt_being_typed_is_never_typed_twice(farm: Farm) -> None:
    await farm.supervisor.spawn(AgentKind.ARCHITECT, None, None, "alice")
    await farm.until_idle("architect")
    typing = asyncio.create_task(farm.supervisor.send("architect", "only once", "alice"))
    # While `send` types it (paste, a pause, Enter), the queue still shows it pending.
    await retry_until(lambda: farm.storage.prompts.pending_prompts("architect"), message="the row")

    delivered = await farm.supervisor.deliver_pending()

    await typing
    assert delivered == 0
    await farm.until_idle("architect")
    assert received_prompts(farm.tmp_path) == ["only once"]
