"""The autopilot's repositories on both backends: tasks, dependencies, history, runs, modes."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from farmbot.models import (
    AgentKind,
    AgentState,
    AutopilotMode,
    DesiredState,
    Priority,
    Project,
    RunState,
    TaskState,
    WaveState,
)
from farmbot.storage import Storage
from farmbot.storage.tasks import NewTask, PromptDraft, Reservation
from tests.backends import Backend

NOW = 1_700_000_000.0


@pytest.fixture
async def storage(backend: Backend, tmp_path: Path) -> AsyncIterator[Storage]:
    async with backend.open() as storage:
        await storage.projects.upsert_project(Project("web", str(tmp_path)), NOW)
        yield storage


async def test_tasks_are_added_with_dependencies_in_one_batch(storage: Storage) -> None:
    [first] = await storage.tasks.add_tasks([NewTask("web", "schema")], "alice", NOW)
    second, third = await storage.tasks.add_tasks(
        [
            NewTask("web", "api", "the body\nwith two lines", Priority.HIGH, (first.id,)),
            NewTask("web", "page", after_new=(0,), depends_on=(first.id,)),
        ],
        "bob",
        NOW + 1,
    )
    assert second.depends_on == (first.id,)
    assert second.body == "the body\nwith two lines" and second.priority is Priority.HIGH
    assert third.depends_on == (first.id, second.id)
    assert third.state is TaskState.PENDING and third.created_by == "bob"
    assert await storage.tasks.dependants(first.id) == [second.id, third.id]
    listed = await storage.tasks.list_tasks("web")
    assert [t.id for t in listed] == [first.id, second.id, third.id]
    assert listed[2].depends_on == (first.id, second.id)
    [change] = await storage.tasks.history(third.id)
    assert (change.state, change.previous, change.by, change.detail) == (
        TaskState.PENDING,
        None,
        "bob",
        "added",
    )


async def test_a_task_moves_once_by_compare_and_set_with_its_history(storage: Storage) -> None:
    [task] = await storage.tasks.add_tasks([NewTask("web", "t")], "alice", NOW)
    ready = dataclasses.replace(task, state=TaskState.READY, reason="nothing to wait for")
    moved = await storage.tasks.update_task(ready, TaskState.PENDING, "autopilot", "", NOW + 1)
    assert moved is not None and moved.state is TaskState.READY and moved.updated_at == NOW + 1
    again = await storage.tasks.update_task(ready, TaskState.PENDING, "autopilot", "", NOW + 2)
    assert again is None  # it is no longer pending: the second decider loses
    landed = dataclasses.replace(
        moved, state=TaskState.DONE, landed_commits=("a" * 40, "b" * 40), landed_commit="b" * 40
    )
    done = await storage.tasks.update_task(landed, TaskState.READY, "alice", "merged", NOW + 3)
    assert done is not None and done.landed_commits == ("a" * 40, "b" * 40)
    history = await storage.tasks.history(task.id)
    assert [(h.previous, h.state, h.by) for h in history] == [
        (None, TaskState.PENDING, "alice"),
        (TaskState.PENDING, TaskState.READY, "autopilot"),
        (TaskState.READY, TaskState.DONE, "alice"),
    ]
    assert [t.id for t in await storage.tasks.open_tasks()] == []


async def test_a_task_prompt_is_queued_with_the_task_or_not_at_all(storage: Storage) -> None:
    agent = await _agent(storage, "builder-1")
    [task] = await storage.tasks.add_tasks([NewTask("web", "t")], "alice", NOW)
    working = await storage.tasks.update_task(
        dataclasses.replace(task, state=TaskState.WORKING, agent_id=agent),
        TaskState.PENDING,
        "autopilot",
        "",
        NOW,
    )
    assert working is not None
    draft = PromptDraft(agent, "Task 1: t", "autopilot")
    queued = await storage.tasks.update_task(working, TaskState.WORKING, "a", "", NOW, prompt=draft)
    assert queued is not None and queued.prompt_id is not None
    [prompt] = await storage.prompts.pending_prompts(agent)
    assert (prompt.id, prompt.text, prompt.wait_ready) == (queued.prompt_id, "Task 1: t", True)
    # A task that moved on meanwhile gets no prompt, and no stray prompt is left queued.
    again = PromptDraft(agent, "again", "autopilot")
    moved = await storage.tasks.update_task(
        dataclasses.replace(working, state=TaskState.VERIFYING),
        TaskState.READY,
        "a",
        "",
        NOW,
        prompt=again,
    )
    assert moved is None
    assert len(await storage.prompts.pending_prompts(agent)) == 1


async def test_one_open_run_per_project_with_its_waves(storage: Storage) -> None:
    a, b = await storage.tasks.add_tasks(
        [NewTask("web", "a"), NewTask("web", "b", after_new=(0,))], "alice", NOW
    )
    run = await storage.runs.add_run("web", "alice", {a.id: 1, b.id: 2}, NOW)
    assert run is not None and run.state is RunState.RUNNING
    assert [(w.number, w.state) for w in run.waves] == [(1, WaveState.OPEN), (2, WaveState.OPEN)]
    assert await storage.runs.add_run("web", "bob", {}, NOW) is None
    tasks = await storage.tasks.run_tasks(run.id)
    assert [(t.id, t.wave) for t in tasks] == [(a.id, 1), (b.id, 2)]
    [c] = await storage.tasks.add_tasks([NewTask("web", "c")], "alice", NOW)
    await storage.runs.join_run(run.id, c.id, 3, NOW)
    joined = await storage.runs.get_run(run.id)
    assert joined is not None and [w.number for w in joined.waves] == [1, 2, 3]

    wave = dataclasses.replace(run.waves[0], state=WaveState.GATE, gate_id=7)
    assert await storage.runs.set_wave(wave, expect=WaveState.OPEN, now=NOW) == wave
    assert await storage.runs.set_wave(wave, expect=WaveState.OPEN, now=NOW) is None

    done = await storage.runs.set_run_state(
        run.id, RunState.DONE, "", NOW + 5, expect=RunState.RUNNING
    )
    assert done is not None and done.finished_at == NOW + 5
    second = await storage.runs.add_run("web", "bob", {}, NOW + 6)
    assert second is not None
    # Reopening the first would make two open runs: refused.
    assert (
        await storage.runs.set_run_state(run.id, RunState.RUNNING, "", NOW, expect=RunState.DONE)
        is None
    )
    assert await storage.runs.open_run("web") == second
    assert [r.id for r in await storage.runs.list_runs("web")] == [second.id, run.id]


async def test_modes_and_the_autopilots_builders(storage: Storage) -> None:
    assert await storage.runs.get_mode("web") is None
    await storage.runs.set_mode("web", AutopilotMode.OBSERVE, "alice", NOW)
    await storage.runs.set_mode("web", AutopilotMode.FIX_FORWARD, "bob", NOW + 1)
    setting = await storage.runs.get_mode("web")
    assert setting is not None
    assert (setting.mode, setting.set_by, setting.set_at) == (
        AutopilotMode.FIX_FORWARD,
        "bob",
        NOW + 1,
    )
    await storage.tasks.reserve_agent("builder-3", "web", 3, NOW, node="gpu")
    await storage.tasks.reserve_agent("builder-3", "web", 3, NOW + 1, node="cpu")  # idempotent
    assert await storage.tasks.autopilot_agents() == {"builder-3": Reservation("web", 3, "gpu")}


async def _agent(storage: Storage, agent_id: str) -> str:
    from farmbot.models import Agent

    await storage.agents.save_agent(
        Agent(
            id=agent_id,
            project="web",
            kind=AgentKind.BUILDER,
            profile="demo",
            number=1,
            workdir="/tmp",
            branch=None,
            desired=DesiredState.RUNNING,
            state=AgentState.IDLE,
            state_reason="",
            created_at=NOW,
            updated_at=NOW,
            state_since=NOW,
        )
    )
    return agent_id
