"""The autopilot end to end, with `farmbot serve` as a real process (killed with -9).

Tasks queued as JSON, a run in observe mode, builders that report with `farmbot task
done`, milestone gates approved over the web console -- across two SIGKILLs at bad
moments, after which nothing is assigned, prompted or landed twice; then a task with a
multi-line body queued through `farmbot cmd`.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

from tests.daemon import Daemon, farmbot, free_port, git_project, serve
from tests.farm import received_prompts
from tests.helpers import retry_until
from tests.pilot import git

VERIFY = f"{sys.executable} -m farmbot demo-agent --verify"


def write_config(tmp_path: Path, tmux_socket: str, port: int, mode: str = "observe") -> Path:
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
max_builders = 2

[[projects]]
name = "proj"
path = "repo"
verify = "{VERIFY}"
autopilot = "{mode}"

[agents.demo]
env = {{ FARMBOT_DEMO_STEP = "0.02", FARMBOT_DEMO_LOG = "{tmp_path / "prompts.jsonl"}" }}

[users.alice]
role = "admin"
web = true

[qa]
interval_minutes = 0
"""
    )
    return config


async def post_tasks(daemon: Daemon, body: object) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {daemon.key}"}
    async with daemon.http.post("/api/tasks", json=body, headers=headers) as r:
        return r.status, await r.json()


async def autopilot(daemon: Daemon) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {daemon.key}"}
    async with daemon.http.get("/api/status", headers=headers) as r:
        assert r.status == 200
        status: dict[str, Any] = await r.json()
        return status["autopilot"]  # type: ignore[no-any-return]


async def tasks(daemon: Daemon) -> dict[int, dict[str, Any]]:
    return {t["id"]: t for t in (await autopilot(daemon))["tasks"]}


async def until_task(
    daemon: Daemon, task_id: int, *states: str, gate: bool = False
) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        task = (await tasks(daemon)).get(task_id)
        if task is None or task["state"] not in states:
            return None
        if gate:
            waiting = {g["payload"].get("task"): g for g in (await autopilot(daemon))["milestones"]}
            return waiting.get(task_id)
        return task

    found: dict[str, Any] = await retry_until(
        probe, timeout=30, interval=0.1, message=f"task {task_id} to be {states}"
    )
    return found


async def kill_9(daemon: Daemon) -> None:
    daemon.proc.send_signal(signal.SIGKILL)
    assert await asyncio.wait_for(daemon.proc.wait(), 8) == -signal.SIGKILL


async def test_an_observe_run_over_http_survives_kill_9_without_doing_anything_twice(
    tmp_path: Path, tmux_socket: str
) -> None:
    repo = await git_project(tmp_path / "repo")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = write_config(tmp_path, tmux_socket, port)

    async with serve(config, url, tmp_path / "run1") as daemon:
        # Bad input is refused with a 400 that says what is wrong; nothing is queued.
        for body, says in (
            ({"project": "nope", "title": "x"}, "unknown project 'nope' (known: proj)"),
            ({"project": "proj", "title": "x", "after": [99]}, "task 99, which does not exist"),
            ({"project": "proj", "title": "x", "priority": "urgent"}, "priority: expected"),
            (
                {
                    "project": "proj",
                    "tasks": [
                        {"ref": "a", "title": "A", "after": ["b"]},
                        {"ref": "b", "title": "B", "after": ["a"]},
                    ],
                },
                "refused: a dependency cycle: a waits for b, which waits for a",
            ),
            (["not", "an", "object"], "the body must be a JSON object"),
        ):
            status, answer = await post_tasks(daemon, body)
            assert status == 400, answer
            assert says in answer["error"], answer
        assert await tasks(daemon) == {}

        status, answer = await post_tasks(
            daemon,
            {
                "project": "proj",
                "tasks": [
                    {"ref": "schema", "title": "Add the schema", "priority": "high"},
                    {
                        "ref": "api",
                        "title": "Add the API",
                        "after": ["schema"],
                        "body": "It serves the schema.\nOver HTTP.",
                    },
                    {"title": "Write the docs", "priority": "low"},
                ],
            },
        )
        assert status == 201, answer
        assert [(t["id"], t["depends_on"]) for t in answer["data"]["tasks"]] == [
            (1, []),
            (2, [1]),
            (3, []),
        ]
        started = await daemon.command("/run start proj")
        assert started["ok"] and "3 tasks in 2 waves" in started["text"], started
        await until_task(daemon, 1, "review", gate=True)
        await until_task(daemon, 3, "review", gate=True)
        await kill_9(daemon)  # with two gates waiting

    async with serve(config, url, tmp_path / "run2") as daemon:
        gate = await until_task(daemon, 1, "review", gate=True)
        approved = await daemon.command(f"/approve {gate['id']}")  # pressed after a kill -9
        assert approved["ok"] and "task 1 landed (merge into main)" in approved["text"], approved
        await until_task(daemon, 2, "working")
        await kill_9(daemon)  # task 2 was just handed out

    async with serve(config, url, tmp_path / "run3") as daemon:
        for task_id in (2, 3):
            gate = await until_task(daemon, task_id, "review", gate=True)
            reply = await daemon.command(f"/approve {gate['id']}")
            assert reply["ok"] and f"task {task_id} landed" in reply["text"], reply

        async def run_done() -> dict[str, Any] | None:
            runs = (await autopilot(daemon))["runs"]
            return runs[0] if runs and runs[0]["state"] == "done" else None

        run = await retry_until(run_done, timeout=20, message="the run to be done")
        assert [w["state"] for w in run["waves"]] == ["closed", "closed"]
        shown = await daemon.command("/task show 2")
        assert shown["ok"] and "landed by alice" in shown["text"]
        history = shown["pre"].splitlines()
        assert sum(" working " in line for line in history) == 1
        assert any("reported done: wrote demo-tasks/task-2.md" in line for line in history)

        # A multi-line body through `farmbot cmd`, typed in a shell as one quoted argument.
        typed = "One line per landed task.\n\n  - indented, after a blank line"
        added = await farmbot(config, "cmd", f"/task add proj Write the changelog\n{typed}\n")
        assert added.code == 0, added.err
        assert added.out.startswith("queued task 4 [proj] (normal): Write the changelog\n")
        assert (await tasks(daemon))[4]["body"] == typed
        told = await farmbot(config, "cmd", "/task show 4")
        assert told.code == 0 and f"\n\n{typed}\n" in told.out, told.out
        assert await daemon.terminate() == 0

    prompts = received_prompts(tmp_path)
    for task_id in (1, 2, 3):  # each handed out once, though the daemon died twice
        assert sum(p.startswith(f"Task {task_id}:") for p in prompts) == 1, prompts
    landed = git(repo, "log", "--first-parent", "--format=%s", "main").splitlines()
    assert landed[:3] == [
        "Land task 3: Write the docs",
        "Land task 2: Add the API",
        "Land task 1: Add the schema",
    ]
    assert len([s for s in landed if s.startswith("Land task")]) == 3  # nothing landed twice
    builders = git(repo, "branch", "--list", "farmbot/builder-*").split()
    assert builders == ["farmbot/builder-1", "farmbot/builder-2"]  # never more than 2
