"""The autopilot on a farm of two real `farmbot serve` nodes sharing one PostgreSQL
database (tests/nodes.py): node a leads and runs the autopilot; builders go to the nodes
holding their projects, where they are started, prompted, verified and landed.

Every project is in observe mode with the demo agent's verify command: a task stops at a
milestone gate once verified, and lands when a person approves it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.backends import PostgresBackend
from tests.daemon import Daemon
from tests.farm import received_prompts
from tests.helpers import retry_until
from tests.nodes import Farm, has_session, leads, start_a_then_b, status, two_nodes
from tests.pilot import git


async def tasks(daemon: Daemon) -> dict[int, dict[str, Any]]:
    return {t["id"]: t for t in (await status(daemon))["autopilot"]["tasks"]}


async def gate_of(daemon: Daemon, task_id: int) -> dict[str, Any]:
    """The milestone gate a task waits at, once it waits at one."""

    async def waiting() -> dict[str, Any] | None:
        found = await status(daemon)
        task = next((t for t in found["autopilot"]["tasks"] if t["id"] == task_id), None)
        if task is None or task["state"] != "review":
            return None
        gates = {g["payload"].get("task"): g for g in found["autopilot"]["milestones"]}
        return gates.get(task_id)

    gate: dict[str, Any] = await retry_until(
        waiting, timeout=30, interval=0.2, message=f"task {task_id} at its milestone gate"
    )
    return gate


def steps(farm: Farm) -> list[tuple[str, str, str]]:
    """(target, step, status) of every autopilot step that changed something, in order."""
    rows = farm.sql(
        "SELECT target, text, status FROM routed_commands WHERE kind = 'step' ORDER BY id"
    )
    found = []
    for target, text, state in rows:
        kind = text.split('"step": "', 1)[1].split('"', 1)[0]
        if kind in ("start", "verify", "land", "retire", "deploy"):
            found.append((target, kind, state))
    return found


async def test_a_run_on_a_project_only_b_holds_is_built_verified_and_landed_on_b(
    tmp_path: Path, pg_backend: PostgresBackend, sockets: dict[str, str]
) -> None:
    async with two_nodes(tmp_path, pg_backend, sockets, autopilot=True) as farm:
        a, b = await start_a_then_b(farm)
        added = await a.command("/task add beta Add the schema")
        assert added["ok"], added
        started = await a.command("/run start beta")  # a leads, and holds no beta
        assert started["ok"] and "1 tasks in 1 waves" in started["text"], started

        gate = await gate_of(a, 1)
        assert await has_session(sockets["b"], "beta-builder-1")
        assert not await has_session(sockets["a"], "beta-builder-1")
        assert farm.sql("SELECT id, node FROM agents") == [("beta-builder-1", "b")]
        assert "beta-builder-1 [beta @b] " in (await b.command("/agents"))["text"]
        assert farm.sql("SELECT agent_id, node FROM autopilot_agents") == [("beta-builder-1", "b")]
        shown = await a.command("/task show 1")
        assert shown["ok"], shown
        history = shown["pre"]
        # `farmbot task done` went to b's hook endpoint; the leader verified it on b.
        assert "reported done: wrote demo-tasks/task-1.md (revision 1)" in history, history
        assert "verified (`" in history and "--verify` passed)" in history, history
        assert "task 1: Add the schema (revision 1)" in shown["text"]  # b's commits, read on b
        assert "commits (1):" in gate["detail"], gate
        qa = farm.sql("SELECT agent_id, passed FROM qa_runs")
        assert qa == [("beta-builder-1", True)]  # the autopilot's verification only

        approved = await a.command(f"/approve {gate['id']}")
        assert approved["ok"], approved
        assert "task 1 landed (merge into main)" in approved["text"], approved

        async def run_done() -> dict[str, Any] | None:
            runs = (await status(a))["autopilot"]["runs"]
            return runs[0] if runs and runs[0]["state"] == "done" else None

        await retry_until(run_done, timeout=15, message="the run to be done")
        repo = tmp_path / "b" / "beta"
        assert git(repo, "log", "-1", "--format=%s", "main") == "Land task 1: Add the schema"
        assert git(repo, "show", "main:demo-tasks/task-1.md").startswith("# Task 1: Add the schema")

    assert sum(p.startswith("Task 1:") for p in received_prompts(tmp_path)) == 1
    assert steps(farm) == [("b", "start", "done"), ("b", "verify", "done"), ("b", "land", "done")]
    # b carried them out, as the autopilot; the person's commands ran (once) on a.
    audit = farm.sql("SELECT user_name, command, outcome FROM audit ORDER BY id")
    assert [row for row in audit if row[0] == "autopilot"] == [
        ("autopilot", "autopilot: start beta-builder-1 on task 1 (farmbot/task-1)", "ok"),
        ("autopilot", "autopilot: verify task 1 in beta-builder-1's worktree", "ok"),
        ("autopilot", "autopilot: land task 1", "ok"),
    ]
    assert [(c, o) for who, c, o in audit if who == "ada" and c.startswith("/approve")] == [
        (f"/approve {gate['id']}", "ok")
    ]


async def test_a_project_both_nodes_hold_spreads_its_tasks_over_both_and_lands_each_there(
    tmp_path: Path, pg_backend: PostgresBackend, sockets: dict[str, str]
) -> None:
    async with two_nodes(tmp_path, pg_backend, sockets, autopilot=True) as farm:
        a, b = await start_a_then_b(farm)
        for title in ("Add the schema", "Write the docs"):
            assert (await b.command(f"/task add gamma {title}"))["ok"]
        started = await b.command("/run start gamma")  # asked on b; a's autopilot runs it
        assert started["ok"] and "2 tasks in 1 waves" in started["text"], started

        gates = [await gate_of(a, 1), await gate_of(a, 2)]
        placed = dict(farm.sql("SELECT id, node FROM agents"))
        assert sorted(placed.values()) == ["a", "b"], placed  # one builder on each node
        for node in "ab":
            builder = next(agent for agent, there in placed.items() if there == node)
            assert await has_session(sockets[node], builder)
        by_task = {t["id"]: t["agent_id"] for t in (await tasks(a)).values()}

        # Approved through b, a follower: the leader's autopilot carries it out.
        for daemon, gate in zip((b, a), gates, strict=True):
            approved = await daemon.command(f"/approve {gate['id']}")
            assert approved["ok"], approved
            assert f"task {gate['payload']['task']} landed (merge into main)" in approved["text"]

        repo = tmp_path / "gamma"
        landed = git(repo, "log", "--first-parent", "--format=%s", "main").splitlines()
        assert sorted(landed[:2]) == ["Land task 1: Add the schema", "Land task 2: Write the docs"]
        # Each task was started, verified and landed on its own builder's node.
        done = steps(farm)
        for agent_id in by_task.values():
            there = [kind for node, kind, _ in done if node == placed[agent_id]]
            assert there == ["start", "verify", "land"], done
        approvals = farm.sql(
            "SELECT user_name, outcome FROM audit WHERE command LIKE %s", "/approve%"
        )
        assert approvals == [("ada", "ok"), ("ada", "ok")]  # each once, on the leader


async def test_a_builder_that_dies_on_its_node_is_seen_and_its_task_retried_there(
    tmp_path: Path, pg_backend: PostgresBackend, sockets: dict[str, str]
) -> None:
    async with two_nodes(tmp_path, pg_backend, sockets, autopilot=True) as farm:
        a, _ = await start_a_then_b(farm)
        assert (await a.command("/task add beta Add the schema demo:crash-once"))["ok"]
        assert (await a.command("/run start beta"))["ok"]

        await gate_of(a, 1)  # b's monitor saw the first builder die; a's autopilot retried
        history = (await a.command("/task show 1"))["pre"]
        assert "beta-builder-1 died" in history and "attempt 2 of 3" in history, history
        assert "assigned to beta-builder-2 (attempt 2 of 3)" in history, history
        agents = dict(farm.sql("SELECT id, node FROM agents"))
        assert agents == {"beta-builder-1": "b", "beta-builder-2": "b"}
        assert not await has_session(sockets["b"], "beta-builder-1")  # retired on b
        assert await has_session(sockets["b"], "beta-builder-2")
        # The retry took up the branch the first builder committed to (on b).
        tasks_file = git(tmp_path / "b" / "beta", "show", "farmbot/task-1:demo-tasks/task-1.md")
        assert "crashed: yes" in tasks_file and "revision: 2" in tasks_file, tasks_file
    assert [kind for _, kind, _ in steps(farm)] == ["start", "retire", "start", "verify"]


async def test_a_new_leader_takes_up_the_step_the_old_one_routed_and_does_it_once(
    tmp_path: Path, pg_backend: PostgresBackend, sockets: dict[str, str]
) -> None:
    async with two_nodes(tmp_path, pg_backend, sockets, autopilot=True) as farm:
        a, b = await start_a_then_b(farm)
        farm.hold.touch()  # b makes the builder's worktree, and waits for the file to go
        assert (await a.command("/task add beta Add the schema"))["ok"]
        assert (await a.command("/run start beta"))["ok"]

        async def starting() -> bool:
            return steps(farm) == [("b", "start", "claimed")]

        await retry_until(starting, timeout=10, message="b to start the builder")
        a.proc.kill()  # kill -9 the leader while it waits for b's answer
        await a.proc.wait()
        assert await retry_until(lambda: leads(b, "b"), timeout=10, message="b to lead")
        assert steps(farm) == [("b", "start", "claimed")]  # still being carried out
        farm.hold.unlink()

        gate = await gate_of(b, 1)  # b's autopilot took the start up where a left it
        approved = await b.command(f"/approve {gate['id']}")
        assert approved["ok"] and "task 1 landed" in approved["text"], approved

    assert steps(farm) == [("b", "start", "done"), ("b", "verify", "done"), ("b", "land", "done")]
    assert farm.sql("SELECT generation FROM routed_commands WHERE text LIKE %s", '%"start"%') == [
        (1,)
    ]
    assert sum(p.startswith("Task 1:") for p in received_prompts(tmp_path)) == 1
    started = farm.sql("SELECT outcome FROM audit WHERE command LIKE %s", "autopilot: start%")
    assert started == [("ok",)]
    assert git(tmp_path / "b" / "beta", "branch", "--list", "farmbot/beta-builder-*").split() == [
        "farmbot/beta-builder-1"
    ]
