"""The autopilot's HTTP edges and its rougher paths: `farmbot task done` and its token,
POST /api/tasks and the key, a landing that conflicts, a profile paused by a usage limit,
manual assignment, and what the status API shows the web console."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import aiohttp

from farmbot import localkey
from farmbot.adapters.hooks import hook_token
from farmbot.models import AgentKind, TaskState
from tests.farm import received_prompts
from tests.helpers import FakeClock
from tests.pilot import Pilot, git, pilot_config, pilot_for


def _url(p: Pilot) -> str:
    return f"http://127.0.0.1:{p.farm.graph.web.port}"


async def _post(p: Pilot, path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http:
        async with http.post(_url(p) + path, json=body, headers=headers) as r:
            return r.status, await r.json()


async def test_task_done_takes_only_the_agents_own_token_and_finishes_only_its_task(
    tmp_path: Path, tmux_socket: str, clock: FakeClock
) -> None:
    config = pilot_config(tmp_path, tmux_socket)
    async with pilot_for(config, tmp_path, clock) as p:
        key = p.farm.graph.key
        await p.farm.supervisor.spawn(AgentKind.BUILDER, 7, None, "alice")
        await p.ok("/task add proj Mine --body demo:no-done")
        await p.ok("/task assign 1 builder-7")
        done = "/agents/builder-7/task-done"
        for token, status, says in (
            ("", 401, "missing or wrong hook token for agent 'builder-7'"),
            (hook_token(key, "builder-8"), 401, "wrong hook token"),  # another agent's token
            (key, 401, "wrong hook token"),  # the local key is no agent's identity
        ):
            got, answer = await _post(p, done, {}, {"X-Farmbot-Hook-Token": token})
            assert (got, says in answer["error"]) == (status, True), answer
        own = {"X-Farmbot-Hook-Token": hook_token(key, "builder-7")}
        got, answer = await _post(p, done, ["no"], own)
        assert got == 400 and "the body must be JSON" in answer["error"]
        other = {"X-Farmbot-Hook-Token": hook_token(key, "builder-8")}
        got, answer = await _post(p, "/agents/builder-8/task-done", {}, other)
        assert got == 409 and "builder-8 has no task in progress" in answer["error"]
        assert (await p.task(1)).state is TaskState.WORKING
        got, answer = await _post(p, done, {"note": "all good"}, own)
        assert got == 200 and "task 1 reported done" in answer["text"]
        task = await p.task(1)
        assert (task.state, task.note) == (TaskState.VERIFYING, "all good")
        history = await p.farm.storage.tasks.history(1)
        assert history[-1].by == "builder-7" and history[-1].detail == "reported done: all good"


async def test_post_api_tasks_needs_the_key_and_queues_a_batch(
    tmp_path: Path, tmux_socket: str, clock: FakeClock
) -> None:
    config = pilot_config(tmp_path, tmux_socket)
    async with pilot_for(config, tmp_path, clock) as p:
        body = {
            "project": "proj",
            "tasks": [{"title": "A", "ref": "a"}, {"title": "B", "after": ["a"]}],
        }
        got, answer = await _post(p, "/api/tasks", body, {})
        assert got == 401
        bearer = {"Authorization": f"Bearer {localkey.read(config.server.state_dir)}"}
        got, answer = await _post(p, "/api/tasks", body, bearer)
        assert got == 201, answer
        assert [t["depends_on"] for t in answer["data"]["tasks"]] == [[], [1]]
        audit = await p.farm.storage.audit.recent_audit(1)
        assert audit[0].command.startswith('/task add {"project": "proj", "tasks": [')
        assert audit[0].user_name == "alice"


async def test_work_that_conflicts_with_the_base_goes_back_to_its_builder(
    tmp_path: Path, tmux_socket: str, clock: FakeClock
) -> None:
    config = pilot_config(tmp_path, tmux_socket, max_builders=1)
    async with pilot_for(config, tmp_path, clock) as p:
        await p.ok("/task add proj Write it")
        await p.ok("/run start proj")
        gate = await p.gate_of(1)
        # Meanwhile someone commits the same file on main.
        (p.repo / "demo-tasks").mkdir()
        (p.repo / "demo-tasks" / "task-1.md").write_text("someone else's\n")
        git(p.repo, "add", "demo-tasks")
        git(p.repo, "-c", "user.name=h", "-c", "user.email=h@x", "commit", "-qm", "theirs")
        reply = await p.ok(f"/approve {gate.id}")
        assert "did not land" in reply.text and "demo-tasks/task-1.md" in reply.text

        async def conflict_prompts() -> list[str]:
            return [x for x in received_prompts(tmp_path) if "does not land on main" in x]

        said = await p.until(conflict_prompts, "the conflict to reach builder-1")
        assert len(said) == 1 and "conflicts with main in: demo-tasks/task-1.md" in said[0]
        assert git(p.repo, "log", "-1", "--format=%s", "main") == "theirs"  # nothing landed
        assert git(p.repo, "status", "--porcelain") == ""  # and the checkout is clean
        assert any(e.kind == "task.not_landed" for e in p.farm.seen)
        await p.gate_of(1)  # reworked, verified, and at a gate again


async def test_a_failing_land_command_goes_back_to_the_builder_and_reopens_the_task(
    tmp_path: Path, tmux_socket: str, clock: FakeClock
) -> None:
    # The land command (think: CI, then a pull request) refuses the first revision.
    command = (
        'if grep -q "^revision: 1$" demo-tasks/task-$FARMBOT_TASK.md; then '
        'echo "CI failed on $FARMBOT_BRANCH: test_login"; exit 1; fi; echo opened PR 18'
    )
    config = pilot_config(
        tmp_path, tmux_socket, max_builders=1, land="command", land_command=command
    )
    async with pilot_for(config, tmp_path, clock) as p:
        await p.ok("/task add proj Log in")
        await p.ok("/run start proj")
        gate = await p.gate_of(1)
        reply = await p.ok(f"/approve {gate.id}")
        assert f"task 1 did not land: `{command}` failed (exit 1):\n" in reply.text
        assert "CI failed on farmbot/task-1: test_login\nIt goes back to builder-1" in reply.text
        assert "did not land: did not land" not in reply.text
        reopened = await p.task(1)
        assert reopened.state is TaskState.WORKING and reopened.agent_id == "builder-1"
        [event] = [e for e in p.farm.seen if e.kind == "task.not_landed"]
        assert event.data["to"] == "builder-1" and not event.data["refused"]

        async def land_prompts() -> list[str]:
            return [x for x in received_prompts(tmp_path) if "did not land" in x]

        [said] = await p.until(land_prompts, "the land command's failure to reach builder-1")
        assert said.startswith(
            f"Task 1: your work did not land: the project's land command `{command}` "
            "failed (exit 1):\nCI failed on farmbot/task-1: test_login\n\n"
            "Fix what it reports on branch farmbot/task-1, commit,"
        )
        again = await p.gate_of(1)  # revision 2: reworked, verified, at a gate again
        assert again.id != gate.id
        landed = await p.ok(f"/approve {again.id}")
        assert "task 1 landed (land_command)" in landed.text
        task = await p.task(1)
        assert (task.state, task.note, task.attempts) == (TaskState.DONE, "opened PR 18", 1)
        assert task.landed_commit == git(p.repo, "rev-parse", "farmbot/task-1")
        assert git(p.repo, "rev-list", "--count", "main") == "1"  # the PR lands it, not farmbot
        assert "revision: 2" in git(p.repo, "show", f"{task.landed_commit}:demo-tasks/task-1.md")


async def test_a_profile_paused_by_a_usage_limit_gets_no_new_task_until_it_resets(
    tmp_path: Path, tmux_socket: str, clock: FakeClock
) -> None:
    config = pilot_config(tmp_path, tmux_socket)
    async with pilot_for(config, tmp_path, clock) as p:
        await p.farm.supervisor.spawn(AgentKind.BUILDER, 9, None, "alice")  # a person's
        await p.farm.until_idle("builder-9")
        await p.farm.storage.agents.set_agent_paused("builder-9", clock() + 3600, clock())
        await p.ok("/task add proj Wait for the limit")
        await p.ok("/run start proj")
        for _ in range(10):
            await p.turn()
        task = await p.task(1)
        assert task.state is TaskState.READY and task.agent_id is None
        assert [a.id for a in await p.farm.supervisor.list_agents()] == ["builder-9"]
        clock.advance(3601)
        task = await p.until_state(1, TaskState.WORKING, TaskState.VERIFYING, TaskState.REVIEW)
        assert task.agent_id == "builder-10"  # the autopilot's own, not the person's


async def test_the_status_api_shows_runs_waves_tasks_and_milestones(
    tmp_path: Path, tmux_socket: str, clock: FakeClock
) -> None:
    config = pilot_config(tmp_path, tmux_socket)
    async with pilot_for(config, tmp_path, clock) as p:
        await p.ok("/task add proj One")
        await p.ok("/task add proj Two --after 1")
        await p.ok("/run start proj")
        gate = await p.gate_of(1)
        status = (await p.farm.graph.status())["autopilot"]
        assert status["projects"] == [
            {"project": "proj", "mode": "observe", "set_by": "the configuration"}
        ]
        [run] = status["runs"]
        assert [(w["number"], w["state"]) for w in run["waves"]] == [(1, "open"), (2, "open")]
        assert [(t["id"], t["state"], t["wave"]) for t in run["tasks"]] == [
            (1, "review", 1),
            (2, "pending", 2),
        ]
        assert [m["id"] for m in status["milestones"]] == [gate.id]
        assert {t["id"] for t in status["tasks"]} == {1, 2}


def test_farmbot_task_done_outside_an_agent_says_what_is_missing(tmp_path: Path) -> None:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "farmbot", "task", "done", "--note", "x"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        timeout=30,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "farmbot: `task done` runs inside an agent that farmbot started; "
        "FARMBOT_AGENT, FARMBOT_URL, FARMBOT_HOOK_TOKEN are not set"
    )
