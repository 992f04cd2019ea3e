"""Tasks: the autopilot's units of work, their dependencies and the history of each.

A task moves only by compare-and-set on its state (``update_task``), and the move is
written with its history entry in one transaction, so two deciders never both move it and
no move goes unrecorded. The prompt that hands a task to an agent is queued together with
the task's ``prompt_id`` (``queue_prompt``), so a crash never leaves one without the other.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol

from farmbot.models import Priority, Task, TaskChange, TaskState
from farmbot.storage.db import Database, Row, Tx, encode_json

# The columns update_task writes: everything but the identity and creation of the task.
_FIXED = {"id", "project", "created_by", "created_at", "depends_on"}
_MUTABLE = [f.name for f in fields(Task) if f.name not in _FIXED]
_UPDATE = (
    f"UPDATE tasks SET {', '.join(f'{c} = ?' for c in _MUTABLE)}"
    " WHERE id = ? AND state = ? RETURNING *"
)
_IN_CHUNK = 500  # ids per "IN (...)": well under every backend's parameter limit


@dataclass(frozen=True, slots=True)
class NewTask:
    """A task to add. ``after_new`` names tasks of the same batch by their index."""

    project: str
    title: str
    body: str = ""
    priority: Priority = Priority.NORMAL
    depends_on: tuple[int, ...] = ()
    after_new: tuple[int, ...] = ()
    run_id: int | None = None
    wave: int | None = None


@dataclass(frozen=True, slots=True)
class Reservation:
    """A builder the autopilot named (and recorded) before it was spawned, and where."""

    project: str
    number: int
    node: str = ""  # the node it is spawned on ("": before there were nodes)


@dataclass(frozen=True, slots=True)
class PromptDraft:
    """A prompt queued with a task's move (typed once its agent is ready)."""

    agent_id: str
    text: str
    source: str


class TaskStore(Protocol):
    async def add_tasks(self, new: Sequence[NewTask], by: str, now: float) -> list[Task]:
        """Add tasks (pending) with their dependencies and history, in one transaction."""

    async def get_task(self, task_id: int) -> Task | None:
        """The task with that id, or None."""

    async def get_tasks(self, ids: Collection[int]) -> dict[int, Task]:
        """The tasks among ``ids`` that exist, by id."""

    async def list_tasks(
        self, project: str | None = None, states: Collection[TaskState] | None = None
    ) -> list[Task]:
        """Tasks (of a project; in some states), by id."""

    async def open_tasks(self) -> list[Task]:
        """Every task that is not done, failed or cancelled, by id."""

    async def recent_closed(self, limit: int = 20) -> list[Task]:
        """The newest done, failed or cancelled tasks, newest first."""

    async def run_tasks(self, run_id: int) -> list[Task]:
        """The tasks of a run, by id."""

    async def dependants(self, task_id: int) -> list[int]:
        """The ids of the tasks that depend on ``task_id``."""

    async def update_task(
        self,
        task: Task,
        expect: TaskState,
        by: str,
        detail: str,
        now: float,
        *,
        prompt: PromptDraft | None = None,
    ) -> Task | None:
        """Write ``task`` if it is still in state ``expect`` (compare-and-set).

        A history entry (``by``, ``detail``) is written with it when the state changes or
        ``detail`` says something; ``prompt`` is queued for its agent and recorded as the
        task's ``prompt_id``, in the same transaction. Returns the stored task, or None
        (and nothing written) when it had moved on.
        """

    async def history(self, task_id: int) -> list[TaskChange]:
        """A task's transitions, oldest first."""

    async def reserve_agent(
        self, agent_id: str, project: str, number: int, now: float, node: str = ""
    ) -> None:
        """Record a builder as the autopilot's, and the node it goes to (before it is
        spawned there)."""

    async def autopilot_agents(self) -> dict[str, Reservation]:
        """The autopilot's builders, by agent id."""


class SqlTaskStore(TaskStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_tasks(self, new: Sequence[NewTask], by: str, now: float) -> list[Task]:
        ids: list[int] = []
        async with self._db.transaction() as tx:
            for item in new:
                task_id = await tx.insert(
                    "INSERT INTO tasks (project, title, body, priority, state, run_id, wave,"
                    " created_by, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?) RETURNING id",
                    (
                        item.project,
                        item.title,
                        item.body,
                        int(item.priority),
                        item.run_id,
                        item.wave,
                        by,
                        now,
                        now,
                    ),
                )
                ids.append(task_id)
                await _add_history(tx, task_id, TaskState.PENDING, None, by, "added", now)
            deps = [
                (task_id, dep)
                for task_id, item in zip(ids, new, strict=True)
                for dep in dict.fromkeys([*item.depends_on, *(ids[i] for i in item.after_new)])
            ]
            if deps:
                await tx.executemany(
                    "INSERT INTO task_deps (task_id, depends_on) VALUES (?, ?)", deps
                )
            rows = await _select_in(tx, "SELECT * FROM tasks WHERE id IN ({})", ids)
            found = await _with_deps(tx, rows)
        return [found[i] for i in ids]

    async def get_task(self, task_id: int) -> Task | None:
        return (await self.get_tasks([task_id])).get(task_id)

    async def get_tasks(self, ids: Collection[int]) -> dict[int, Task]:
        if not ids:
            return {}
        async with self._db.transaction() as tx:
            rows = await _select_in(tx, "SELECT * FROM tasks WHERE id IN ({})", list(ids))
            return await _with_deps(tx, rows)

    async def list_tasks(
        self, project: str | None = None, states: Collection[TaskState] | None = None
    ) -> list[Task]:
        where, params = [], []
        if project is not None:
            where.append("project = ?")
            params.append(project)
        if states is not None:
            if not states:
                return []
            where.append(f"state IN ({', '.join('?' for _ in states)})")
            params += [s.value for s in states]
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        return await self._select(f"SELECT * FROM tasks{clause} ORDER BY id", params)

    async def open_tasks(self) -> list[Task]:
        return await self._select(
            "SELECT * FROM tasks WHERE state NOT IN ('done', 'failed', 'cancelled') ORDER BY id"
        )

    async def recent_closed(self, limit: int = 20) -> list[Task]:
        return await self._select(
            "SELECT * FROM tasks WHERE state IN ('done', 'failed', 'cancelled')"
            " ORDER BY id DESC LIMIT ?",
            [limit],
        )

    async def run_tasks(self, run_id: int) -> list[Task]:
        return await self._select("SELECT * FROM tasks WHERE run_id = ? ORDER BY id", [run_id])

    async def dependants(self, task_id: int) -> list[int]:
        found = await self._db.fetchall(
            "SELECT task_id FROM task_deps WHERE depends_on = ? ORDER BY task_id", (task_id,)
        )
        return [int(r["task_id"]) for r in found]

    async def update_task(
        self,
        task: Task,
        expect: TaskState,
        by: str,
        detail: str,
        now: float,
        *,
        prompt: PromptDraft | None = None,
    ) -> Task | None:
        try:
            async with self._db.transaction() as tx:
                if prompt is not None:
                    prompt_id = await tx.insert(
                        "INSERT INTO prompts (agent_id, text, source, status, wait_ready,"
                        " created_at) VALUES (?, ?, ?, 'pending', ?, ?) RETURNING id",
                        (prompt.agent_id, prompt.text, prompt.source, True, now),
                    )
                    task = Task(**{**_fields(task), "prompt_id": prompt_id})
                updated = await _update(tx, task, expect, by, detail, now)
                if updated is None:
                    raise _Moved  # rolls a queued prompt back too
                return updated
        except _Moved:
            return None

    async def history(self, task_id: int) -> list[TaskChange]:
        found = await self._db.fetchall(
            "SELECT * FROM task_history WHERE task_id = ? ORDER BY id", (task_id,)
        )
        return [
            TaskChange(
                id=r["id"],
                task_id=r["task_id"],
                ts=r["ts"],
                state=TaskState(r["state"]),
                previous=TaskState(r["previous"]) if r["previous"] else None,
                by=r["by"],
                detail=r["detail"],
            )
            for r in found
        ]

    async def reserve_agent(
        self, agent_id: str, project: str, number: int, now: float, node: str = ""
    ) -> None:
        await self._db.execute(
            "INSERT INTO autopilot_agents (agent_id, project, number, node, created_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (agent_id) DO NOTHING",
            (agent_id, project, number, node, now),
        )

    async def autopilot_agents(self) -> dict[str, Reservation]:
        found = await self._db.fetchall(
            "SELECT agent_id, project, number, node FROM autopilot_agents"
        )
        return {
            str(r["agent_id"]): Reservation(str(r["project"]), int(r["number"]), str(r["node"]))
            for r in found
        }

    async def _select(self, sql: str, params: Sequence[Any] = ()) -> list[Task]:
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(sql, params)
            found = await _with_deps(tx, rows)
        return [found[int(r["id"])] for r in rows]


class _Moved(Exception):
    """The task moved on before its prompt was recorded (internal: rolls back)."""


async def _update(
    tx: Tx, task: Task, expect: TaskState, by: str, detail: str, now: float
) -> Task | None:
    values = _fields(task)
    values["updated_at"] = now
    params = [_column(c, values[c]) for c in _MUTABLE]
    row = await tx.fetchone(_UPDATE, [*params, task.id, expect.value])
    if row is None:
        return None
    if task.state is not expect or detail:
        await _add_history(tx, task.id, task.state, expect, by, detail, now)
    return _task(row, task.depends_on)


def _fields(task: Task) -> dict[str, Any]:
    return {f.name: getattr(task, f.name) for f in fields(Task)}


def _column(name: str, value: Any) -> Any:
    if name == "landed_commits":
        return encode_json(list(value))
    if name == "priority":
        return int(value)
    if name == "state":
        return value.value
    return value


async def _add_history(
    tx: Tx,
    task_id: int,
    state: TaskState,
    previous: TaskState | None,
    by: str,
    detail: str,
    now: float,
) -> None:
    await tx.execute(
        "INSERT INTO task_history (task_id, ts, state, previous, by, detail)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (task_id, now, state.value, previous.value if previous else None, by, detail),
    )


async def _select_in(tx: Tx, sql: str, ids: Sequence[int]) -> list[Row]:
    rows: list[Row] = []
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = list(ids[start : start + _IN_CHUNK])
        rows += await tx.fetchall(sql.format(", ".join("?" for _ in chunk)), chunk)
    return rows


async def _with_deps(tx: Tx, rows: Iterable[Row]) -> dict[int, Task]:
    listed = list(rows)
    ids = [int(r["id"]) for r in listed]
    deps: dict[int, list[int]] = {}
    found = await _select_in(
        tx, "SELECT task_id, depends_on FROM task_deps WHERE task_id IN ({})", ids
    )
    for r in found:
        deps.setdefault(int(r["task_id"]), []).append(int(r["depends_on"]))
    return {int(r["id"]): _task(r, tuple(sorted(deps.get(int(r["id"]), [])))) for r in listed}


def _task(r: Row, depends_on: tuple[int, ...]) -> Task:
    values = dict(r)
    return Task(
        **{
            **values,
            "priority": Priority(int(values["priority"])),
            "state": TaskState(values["state"]),
            "landed_commits": tuple(json.loads(values["landed_commits"])),
            "depends_on": depends_on,
        }
    )
