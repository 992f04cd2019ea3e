"""The autopilot in one process: real git, real tmux, the demo agent, real SQLite, HTTP.

Runs in waves, milestone gates approved and rejected, verification retried then failed,
agents that die or hang, limits, and bad input. End-to-end runs with `farmbot serve` as a
real process (and kill -9) are in test_e2e_autopilot.py.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
from pathlib import Path

from farmbot.messages import utc_time
from farmbot.models import AgentState, AutopilotMode, Gate, GateStatus, TaskState
from tests.farm import received_prompts
from tests.helpers import FakeClock
from tests.pilot import VERIFY, Pilot, git, pilot_config, pilot_for


async def test_three_tasks_run_in_two_waves_and_land_in_dependency_order(
    tmp_path: Path, tmux_socket: str, clock: FakeClock
) -> None:
    config = pilot_config(tmp_path, tmux_socket)
    async with pilot_for(config, tmp_path, clock) as p:
        await p.ok("/task add proj Add the schema --priority high")
        await p.ok("/task add proj Add the API --after 1\nIt serves the schema.\nOver HTTP.")
        await p.ok("/task add proj Write the docs --priority low")
        started = await p.ok("/run start proj")
        assert "3 tasks in 2 waves" in started.text
        assert "wave 1 open: #1 pending, #3 pending" in started.text
        assert "wave 2 open: #2 pending" in started.text

        # Wave 1: two builders (the limit) take tasks 1 and 3; task 2 waits for task 1.
        gate1 = await p.gate_of(1)
        gate3 = await p.gate_of(3)
        assert (await p.task(2)).state is TaskState.PENDING
        first = await p.task(1)
        assert first.agent_id == "builder-1" and first.branch == "farmbot/task-1"
        assert "task 1 is ready to land" in gate1.title
        assert "QA: `" in gate1.detail and "passed" in gate1.detail
        assert "demo-tasks/task-1.md" in gate1.detail  # the diffstat
        status = await p.ok("/run status proj")
        assert "wave 1 open: #1 review (gate #" in status.text
        assert "wave 2 open: #2 pending" in status.text

        approved = await p.ok(f"/approve {gate1.id}")
        assert "task 1 landed (merge into main)" in approved.text
        assert approved.decided is not None and approved.decided.by == "alice"
        assert "demo-tasks/task-1.md" in git(p.repo, "show", "--stat", "main")
        # Task 2 branches from main after task 1 landed, and gets the multi-line body.
        gate2 = await p.gate_of(2)
        second = await p.task(2)
        assert second.base_commit == git(p.repo, "rev-parse", "main")
        prompt = next(x for x in received_prompts(tmp_path) if x.startswith("Task 2:"))
        assert "Task 2: Add the API\n\nIt serves the schema.\nOver HTTP." in prompt
        await p.ok(f"/approve {gate2.id}")
        await p.ok(f"/approve {gate3.id}")
        await p.until_state(3, TaskState.DONE)

        merges = git(p.repo, "log", "--first-parent", "--format=%s", "main").splitlines()
        assert merges[:3] == [
            "Land task 3: Write the docs",
            "Land task 2: Add the API",
            "Land task 1: Add the schema",
        ]
        for n in (1, 2, 3):
            assert (p.repo / "demo-tasks" / f"task-{n}.md").exists()  # main's checkout too
        run = await p.until(lambda: _finished(p), "the run to finish")
        assert "3 done" in run
        shown = await p.ok("/task show 2")
        assert "landed by alice" in shown.text and "approved by alice" in shown.text
        assert shown.pre is not None
        assert [ln.split()[1] for ln in shown.pre.splitlines()] == [
            "pending", "ready", "working", "verifying", "review", "landing", "done",
        ]  # fmt: skip


async def _finished(p: Pilot) -> str | None:
    reply = await p.say("/run status proj")
    return reply.text if "run 1 [proj] done" in reply.text else None


async def test_a_rejected_milestone_goes_back_to_the_builder_with_the_reason(
    tmp_path: Path, tmux_socket: str, clock: FakeClock
) -> None:
    config = pilot_config(tmp_path, tmux_socket, max_builders=1)
    async with pilot_for(config, tmp_path, clock) as p:
        await p.ok("/task add proj Add a login page")
        await p.ok("/run start proj")
        gate = await p.gate_of(1)
        rejected = await p.ok(f"/reject {gate.id} the button should be blue")
        assert "goes back to builder-1" in rejected.text
        again = await p.gate_of(1)
        assert again.id != gate.id
        said = [x for x in received_prompts(tmp_path) if "rejected it" in x]
        assert (
            said
            and "alice reviewed your work and rejected it: the button should be blue" in said[0]
        )
        assert "revision: 2" in git(p.repo, "show", "farmbot/task-1:demo-tasks/task-1.md")
        stale = await p.say(f"/approve {gate.id}")
        assert not stale.ok and "already rejected by alice" in stale.text
        await p.ok(f"/approve {again.id}")
        assert (await p.task(1)).state is TaskState.DONE


async def test_failing_verification_is_retried_then_fails_and_blocks_its_dependant(
    tmp_path: Path, tmux_socket: str, clock: FakeClock
) -> None:
    config = pilot_config(tmp_path, tmux_socket, max_attempts=2)
    async with pilot_for(config, tmp_path, clock) as p:
        await p.ok("/task add proj Broken thing --body it never passes demo:fail-verify")
        await p.ok("/task add proj Needs it --after 1")
        await p.ok("/task add proj Independent")
        await p.ok("/run start proj")
        failed = await p.until_state(1, TaskState.FAILED, timeout=40)
        assert failed.attempts == 2
        said = [x for x in received_prompts(tmp_path) if "verification failed" in x]
        assert len(said) == 1 and "FAILED demo-tasks/task-1.md" in said[0]
        await p.until_state(3, TaskState.REVIEW)
        blocked = await p.until(lambda: _blocked(p, 2), "task 2 to be reported blocked")
        assert "waits on task 1, which failed" in blocked
        kinds = [e.kind for e in p.farm.seen]
        assert "task.failed" in kinds and "run.blocked" in kinds
        retried = await p.ok("/task retry 1")
        assert "pending again" in retried.text
        assert (await p.task(1)).attempts == 0


async def test_retrying_a_failed_task_unblocks_its_dependant_which_then_runs(
    tmp_path: Path, tmux_socket: str, clock: FakeClock
) -> None:
    config = pilot_config(tmp_path, tmux_socket, max_attempts=1)
    async with pilot_for(config, tmp_path, clock) as p:
        await p.ok("/task add proj Flaky migration --body demo:fail-verify-once")
        await p.ok("/task add proj Use the migration --after 1")
        await p.ok("/run start proj")
        await p.until_state(1, TaskState.FAILED, timeout=40)
        await p.until(lambda: _blocked(p, 2), "task 2 to be reported blocked")
        ended = await p.until(lambda: _run_ended(p, "blocked"), "the run to end blocked")
        assert "run 1 [proj] blocked (observe)" in ended and "1 blocked (2)" in ended
        assert "#2 is blocked: waits on task 1, which failed" in ended

        retried = await p.ok("/task retry 1")
        assert "task 1 is pending again, with fresh attempts in run 1" in retried.text
        gate1 = await p.gate_of(1)  # revision 2 passes verification
        status = await p.ok("/run status proj")
        assert "run 1 [proj] running" in status.text and "is blocked" not in status.text
        assert (await p.task(2)).state is TaskState.PENDING  # waits for task 1 to land
        await p.ok(f"/approve {gate1.id}")
        gate2 = await p.gate_of(2)
        second = await p.task(2)
        assert second.reason == f"verified (`{VERIFY}` passed)"
        assert second.base_commit == git(p.repo, "rev-parse", "main")  # after task 1 landed
        assert sum(x.startswith("Task 2:") for x in received_prompts(tmp_path)) == 1
        await p.ok(f"/approve {gate2.id}")
        done = await p.until(lambda: _run_ended(p, "done"), "the run to be done")
        assert "2 done" in done
        states = [e.data["state"] for e in p.farm.seen if e.kind == "run.finished"]
        assert states == ["blocked", "done"]


async def _run_ended(p: Pilot, state: str) -> str | None:
    reply = await p.say("/run status proj")
    return reply.text if f"run 1 [proj] {state}" in reply.text else None


async def _blocked(p: Pilot, task_id: int) -> str | None:
    task = await p.task(task_id)
    return task.reason if task.reason.startswith("blocked") else None


async def test_an_agent_that_dies_is_retried_on_a_fresh_builder_then_fails(
    tmp_path: Path, tmux_socket: str, clock: FakeClock
) -> None:
    config = pilot_config(tmp_path, tmux_socket, max_attempts=2)
    async with pilot_for(config, tmp_path, clock) as p:
        await p.ok("/task add proj Crashes once --body demo:crash-once")
        await p.ok("/task add proj Always crashes --body demo:crash")
        await p.ok("/run start proj")
        done = await p.until_state(1, TaskState.REVIEW, timeout=40)
        assert done.attempts == 2 and done.agent_id not in (None, "builder-1", "builder-2")
        failed = await p.until_state(2, TaskState.FAILED, timeout=40)
        assert failed.attempts == 2
        retried = [e for e in p.farm.seen if e.kind == "task.retried"]
        assert {e.data["task_id"] for e in retried} == {1, 2}
        agents = {a.id: a for a in await p.farm.supervisor.list_agents()}
        for gone in ("builder-1", "builder-2"):
            assert agents[gone].state is AgentState.STOPPED  # retired, worktree removed
            assert not (tmp_path / "state" / "worktrees" / "proj" / gone).exists()


async def test_a_hung_attempt_times_out_on_the_injected_clock(
    tmp_path: Path, tmux_socket: str, clock: FakeClock
) -> None:
    config = pilot_config(tmp_path, tmux_socket, task_timeout=600.0)
    async with pilot_for(config, tmp_path, clock) as p:
        await p.ok("/task add proj Hangs once --body demo:hang-once")
        await p.ok("/run start proj")
        await p.until(lambda: _hung(p), "builder-1 to hang")
        await p.turn()
        assert (await p.task(1)).state is TaskState.WORKING  # no time has passed
        clock.advance(601)
        task = await p.until_state(1, TaskState.REVIEW, timeout=40)
        assert task.attempts == 2 and task.agent_id == "builder-2"
        history = await p.farm.storage.tasks.history(1)
        assert any("longer than task_timeout (10 min)" in h.detail for h in history)


async def _hung(p: Pilot) -> bool:
    """builder-1 committed its "hung" marker (demo:hang-once) and hangs."""
    try:
        marker = git(p.repo, "show", "farmbot/task-1:demo-tasks/task-1.md")
    except subprocess.CalledProcessError:
        return False
    return "hung: yes" in marker and (await p.task(1)).state is TaskState.WORKING


async def test_limits_hold_with_more_ready_tasks_than_builders(
    tmp_path: Path, tmux_socket: str, clock: FakeClock
) -> None:
    config = pilot_config(
        tmp_path, tmux_socket, mode=AutopilotMode.FIX_FORWARD, max_builders=3, max_agents=2
    )
    async with pilot_for(config, tmp_path, clock) as p:
        for n in range(5):
            await p.ok(f"/task add proj Task number {n}")
        await p.ok("/run start proj")
        seen: set[int] = set()

        async def all_landed() -> bool:
            agents = [a for a in await p.farm.supervisor.list_agents() if a.state.is_live]
            assert len(agents) <= 2, agents  # the farm-wide limit, under the project's 3
            holding = [t for t in await p.farm.storage.tasks.open_tasks() if t.state.holds_agent]
            assert len({t.agent_id for t in holding}) == len(holding)  # one task per builder
            seen.add(len(holding))
            tasks = await p.farm.storage.tasks.list_tasks("proj")
            return all(t.state is TaskState.DONE for t in tasks)

        await p.until(all_landed, "every task to land", timeout=60)
        assert max(seen) == 2
        landed = git(p.repo, "log", "--first-parent", "--format=%s", "main").splitlines()
        assert sorted(landed[:5]) == sorted(
            f"Land task {n}: Task number {n - 1}" for n in range(1, 6)
        )
        # fix_forward: the tasks landed by themselves; one gate ends the wave.
        gate = await p.until(lambda: _wave_gate(p), "the wave's gate")
        assert gate.payload == {"run": 1, "wave": 1}
        assert "5 tasks landed" in gate.detail
        for n in range(1, 6):  # each task with what landed, its branch and its QA result
            shown = (
                rf"  #{n} Task number {n - 1} — landed [0-9a-f]{{10}} from branch "
                rf"farmbot/task-{n}\n    QA: `{re.escape(VERIFY)}` passed \(QA run \d+\)\n"
            )
            assert re.search(shown, gate.detail), gate.detail
        assert "commits (10):" in gate.detail  # a task's commit and its merge, each
        assert "diffstat:\n  demo-tasks/task-1.md" in gate.detail
        assert "5 files changed" in gate.detail  # the whole wave, though landed in one tick
        diff = await p.ok(f"/gate diff {gate.id}")
        assert diff.pre is not None and all(f"+# Task {n}: " in diff.pre for n in range(1, 6))
        await p.ok(f"/approve {gate.id}")
        finished = await p.until(lambda: _finished(p), "the run to finish")
        decided = await p.farm.gates.get(gate.id)
        assert decided.decided_at is not None
        when = utc_time(decided.decided_at)
        closed = f"wave 1 closed: #1 done, #2 done, #3 done, #4 done, #5 done; gate #{gate.id}"
        assert f"{closed} approved by alice at {when}" in finished  # who decided, and when
        assert [g.kind for g in await p.farm.storage.gates.list_gates(None)] == ["milestone"]


async def _wave_gate(p: Pilot) -> Gate | None:
    gates = await p.farm.storage.gates.list_gates(GateStatus.PENDING)
    return gates[0] if gates else None


async def test_a_paused_run_hands_out_nothing_until_it_is_resumed(
    tmp_path: Path, tmux_socket: str, clock: FakeClock
) -> None:
    config = pilot_config(tmp_path, tmux_socket, max_builders=1)
    async with pilot_for(config, tmp_path, clock) as p:
        await p.ok("/task add proj First")
        await p.ok("/task add proj Second")
        await p.ok("/run start proj")
        await p.until_state(1, TaskState.WORKING)
        assert (await p.task(2)).state is TaskState.READY  # the one builder is taken
        paused = await p.ok("/run pause proj")
        assert "run 1 [proj] paused by alice: no new tasks are handed out" in paused.text
        again = await p.say("/run pause proj")
        assert not again.ok and "run 1 of proj is already paused" in again.text

        # Work in progress carries on: task 1 is verified, approved and lands.
        gate = await p.gate_of(1)
        await p.ok(f"/approve {gate.id}")
        assert (await p.task(1)).state is TaskState.DONE
        await p.farm.until_idle("builder-1")  # free to take task 2, were the run running
        for _ in range(10):
            await p.turn()
        second = await p.task(2)
        assert (second.state, second.agent_id) == (TaskState.READY, None)
        assert not any(x.startswith("Task 2:") for x in received_prompts(tmp_path))
        assert [a.id for a in await p.farm.supervisor.list_agents()] == ["builder-1"]
        status = await p.ok("/run status proj")
        assert "run 1 [proj] paused (observe)" in status.text
        assert "wave 1 open: #1 done, #2 ready" in status.text

        resumed = await p.ok("/run resume proj")
        assert "run 1 [proj] resumed by alice" in resumed.text
        not_paused = await p.say("/run resume proj")
        assert not not_paused.ok and "run 1 of proj is already running" in not_paused.text
        await p.gate_of(2)
        second = await p.task(2)
        assert second.agent_id == "builder-1"
        assert sum(x.startswith("Task 2:") for x in received_prompts(tmp_path)) == 1
        kinds = [(e.kind, e.data.get("state")) for e in p.farm.seen if e.kind == "run.state"]
        assert kinds == [("run.state", "paused"), ("run.state", "running")]


async def test_the_profiles_task_prompt_template_is_what_the_builder_receives(
    tmp_path: Path, tmux_socket: str, clock: FakeClock
) -> None:
    config = pilot_config(tmp_path, tmux_socket)
    template = (
        "Task {id}: {title}\nRepo {project}, branch {branch}. Keep {{braces}}.\n"
        "---\n{body}\n---\nWhen it is done: farmbot task done"
    )
    demo = dataclasses.replace(config.agents["demo"], task_prompt=template)
    config = dataclasses.replace(config, agents={**config.agents, "demo": demo})
    async with pilot_for(config, tmp_path, clock) as p:
        await p.ok("/task add proj Tidy the README\nOne paragraph.\n  Another, indented.")
        await p.ok("/run start proj")
        await p.gate_of(1)  # the demo agent took it for a task prompt and did it
        [prompt] = [x for x in received_prompts(tmp_path) if x.startswith("Task 1:")]
        assert prompt == (
            "Task 1: Tidy the README\nRepo proj, branch farmbot/task-1. Keep {braces}.\n"
            "---\nOne paragraph.\n  Another, indented.\n---\nWhen it is done: farmbot task done"
        )
