"""What people (and agents) do to the autopilot: queue, cancel, retry and assign tasks,
start, pause and resume runs, set modes; and what an agent reports (its task is done).

Every call validates what it is given with a message naming what was wrong, takes the
autopilot's lock, and moves tasks through the same machine the tick uses. The machine
(tasks.py) and the waves are imported by the operations that use them, so the daemon
loads them with the first task, not at start (the package docstring says why).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from farmbot.errors import CommandError, Conflict, NotFound, UsageError
from farmbot.events import ModeChanged, RunStarted, RunStateChanged, TaskAdded
from farmbot.models import (
    AgentKind,
    AutopilotMode,
    DesiredState,
    Priority,
    Run,
    RunState,
    Task,
    TaskChange,
    TaskState,
)
from farmbot.storage.tasks import NewTask
from farmbot.supervisor.autopilot import repo as git
from farmbot.supervisor.autopilot.milestones import qa_line
from farmbot.supervisor.autopilot.runner import Autopilot

if TYPE_CHECKING:
    from farmbot.supervisor.autopilot import tasks as tm

TITLE_CHARS = 200
MIN_BODY = 1024


@dataclass(frozen=True, slots=True)
class TaskDraft:
    """A task to queue. ``after`` holds task ids, or the ``ref`` of a draft of the batch."""

    project: str
    title: str
    body: str = ""
    priority: Priority = Priority.NORMAL
    after: tuple[int | str, ...] = ()
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class TaskView:
    """A task with what ``/task show`` tells about it."""

    task: Task
    history: tuple[TaskChange, ...]
    deps: tuple[Task, ...]
    dependants: tuple[int, ...]
    commits: tuple[tuple[str, str], ...]  # on its branch, not on its base
    qa: str  # the last QA result, in words


class Control:
    """The autopilot's operations for commands, the JSON API and agents."""

    def __init__(self, autopilot: Autopilot) -> None:
        self.autopilot = autopilot

    # -- tasks --------------------------------------------------------------------------
    async def add(self, drafts: Sequence[TaskDraft], by: str) -> list[Task]:
        """Queue tasks (a batch may depend on itself by ``ref``); all or none."""
        from farmbot.supervisor.autopilot import waves

        ap = self.autopilot
        if not drafts:
            raise UsageError("no tasks given")
        refs: dict[str, int] = {}
        for index, draft in enumerate(drafts):
            ap.project(draft.project)
            self._check_text(draft, f"tasks[{index}]: " if len(drafts) > 1 else "")
            if draft.ref is not None:
                if draft.ref in refs:
                    raise UsageError(f"tasks[{index}].ref: {draft.ref!r} is used twice")
                refs[draft.ref] = index
        ids = {a for d in drafts for a in d.after if isinstance(a, int)}
        existing = await ap.tasks.get_tasks(ids)
        new: list[NewTask] = []
        for index, draft in enumerate(drafts):
            depends: list[int] = []
            after_new: list[int] = []
            for dep in draft.after:
                if isinstance(dep, str):
                    if dep not in refs:
                        raise NotFound(
                            f"{_where(drafts, index)}depends on {dep!r}, "
                            "which names no task of this batch"
                        )
                    if refs[dep] == index:
                        raise UsageError(f"{_where(drafts, index)}cannot depend on itself")
                    after_new.append(refs[dep])
                    continue
                found = existing.get(dep)
                if found is None:
                    raise NotFound(
                        f"{_where(drafts, index)}depends on task {dep}, which does not exist; "
                        f"/tasks {draft.project} --all lists them"
                    )
                if found.project != draft.project:
                    raise Conflict(
                        f"{_where(drafts, index)}depends on task {dep} of project "
                        f"{found.project}; a task depends only on tasks of its own project"
                    )
                depends.append(dep)
            new.append(
                NewTask(
                    draft.project,
                    draft.title.strip(),
                    draft.body.strip("\n"),
                    draft.priority,
                    tuple(depends),
                    tuple(after_new),
                )
            )
        cycle = waves.find_cycle({i: n.after_new for i, n in enumerate(new)})
        if cycle is not None:
            names = [drafts[i].ref or f"#{i}" for i in cycle]
            chain = ", which waits for ".join(names[1:])
            raise Conflict(f"refused: a dependency cycle: {names[0]} waits for {chain}")
        async with ap.lock:
            added = await ap.tasks.add_tasks(new, by, ap.clock())
            for task in added:
                await self._join_open_run(task)
                await ap.bus.publish(
                    TaskAdded(
                        project=task.project,
                        task_id=task.id,
                        title=task.title,
                        by=by,
                        priority=str(task.priority),
                        depends_on=task.depends_on,
                    )
                )
        ap.wake()
        return [await self.get(t.id) for t in added]

    def _check_text(self, draft: TaskDraft, where: str) -> None:
        if not draft.title.strip():
            raise UsageError(f"{where}a task needs a title")
        if len(draft.title) > TITLE_CHARS or "\n" in draft.title.strip():
            raise UsageError(f"{where}the title is one line of at most {TITLE_CHARS} characters")
        limit = max(MIN_BODY, self.autopilot.config.supervisor.prompt_max_bytes - 6 * 1024)
        if len(draft.body.encode("utf-8")) > limit:
            raise UsageError(
                f"{where}the body is {len(draft.body.encode())} bytes; at most {limit} fit in "
                "a task prompt (put long instructions in a file in the repository)"
            )

    async def _join_open_run(self, task: Task) -> None:
        """A task queued (or retried) while its project has an open run joins it."""
        from farmbot.supervisor.autopilot import waves

        ap = self.autopilot
        run = await ap.runs.open_run(task.project)
        if run is None or task.run_id == run.id:
            return
        run_tasks = {t.id: t for t in await ap.tasks.run_tasks(run.id)}
        dep_waves = [
            run_tasks[d].wave or 1
            for d in task.depends_on
            if d in run_tasks and run_tasks[d].state is not TaskState.DONE
        ]
        wave = waves.join_wave(dep_waves, run.waves)
        await ap.runs.join_run(run.id, task.id, wave, ap.clock())

    async def get(self, task_id: int) -> Task:
        task = await self.autopilot.tasks.get_task(task_id)
        if task is None:
            raise NotFound(f"unknown task {task_id}; /tasks --all lists them")
        return task

    async def view(self, task_id: int) -> TaskView:
        ap = self.autopilot
        task = await self.get(task_id)
        deps = await ap.tasks.get_tasks(task.depends_on)
        commits: list[tuple[str, str]] = []
        pc = ap.project(task.project)
        if task.branch and task.base_branch:
            base = f"refs/heads/{task.base_branch}"
            try:  # in the checkout that holds its branch, wherever that is
                checkout = await ap.checkout(task)
                if task.state is TaskState.DONE and task.land_base and task.landed_commit:
                    commits = await checkout.commits(task.land_base, task.branch)
                else:
                    commits = await checkout.commits(base, task.branch)
            except (git.GitError, CommandError):
                commits = []
        qa = "not verified yet"
        if task.qa_run_id is not None:
            qa = qa_line(pc, await ap.qa_run(task)).removeprefix("QA: ")
        return TaskView(
            task=task,
            history=tuple(await ap.tasks.history(task.id)),
            deps=tuple(deps[d] for d in task.depends_on if d in deps),
            dependants=tuple(await ap.tasks.dependants(task.id)),
            commits=tuple(commits),
            qa=qa,
        )

    async def listing(self, project: str | None, *, closed: bool) -> list[Task]:
        if project is not None:
            self.autopilot.project(project)
        states = (
            None if closed else [s for s in TaskState if not s.is_closed or s is TaskState.FAILED]
        )
        return await self.autopilot.tasks.list_tasks(project, states)

    async def cancel(self, task_id: int, by: str) -> Task:
        from farmbot.supervisor.autopilot import tasks as tm

        ap = self.autopilot
        async with ap.lock:
            task = await self.get(task_id)
            return await self._move(task, tm.Cancel(by))

    async def retry(self, task_id: int, by: str) -> Task:
        from farmbot.supervisor.autopilot import tasks as tm

        ap = self.autopilot
        async with ap.lock:
            task = await self.get(task_id)
            moved = await self._move(task, tm.Retry(by))
            await self._reopen_run(moved, by)
            return await self.get(task_id)

    async def _reopen_run(self, task: Task, by: str) -> None:
        """A retried task of a finished run takes that run up again (or joins the open one)."""
        ap = self.autopilot
        if task.run_id is None:
            await self._join_open_run(task)
            return
        run = await ap.runs.get_run(task.run_id)
        if run is None or run.state.is_open:
            return
        opened = await ap.runs.set_run_state(
            run.id,
            RunState.RUNNING,
            f"task {task.id} retried by {by}",
            ap.clock(),
            expect=run.state,
        )
        if opened is not None:
            await ap.bus.publish(
                RunStateChanged(
                    project=run.project,
                    run_id=run.id,
                    state=RunState.RUNNING.value,
                    previous=run.state.value,
                    by=by,
                    reason=f"task {task.id} retried",
                )
            )
            return
        # Another run is open: the task and what waited on it move there.
        for other in await ap.tasks.run_tasks(run.id):
            if other.id == task.id or other.state is TaskState.PENDING:
                await self._join_open_run(other)

    async def assign(self, task_id: int, agent_id: str, by: str) -> Task:
        """Give a task to a named builder now (a person's own builder, too)."""
        ap = self.autopilot
        async with ap.lock:
            task = await self.get(task_id)
            pc = ap.project(task.project)
            if task.state not in (TaskState.PENDING, TaskState.READY):
                raise Conflict(
                    f"task {task_id} is {task.state.value}; "
                    "only a pending or ready task can be assigned"
                )
            deps = await ap.tasks.get_tasks(task.depends_on)
            open_deps = [
                d for d in task.depends_on if d in deps and deps[d].state is not TaskState.DONE
            ]
            if open_deps:
                shown = ", ".join(f"{d} ({deps[d].state.value})" for d in open_deps)
                raise Conflict(f"task {task_id} waits for {shown}; it can start once they are done")
            agent = await ap.supervisor.get(agent_id)
            if agent.kind is not AgentKind.BUILDER:
                raise Conflict(f"{agent_id} is {agent.kind.value}; tasks go to builders")
            if agent.project != task.project:
                raise Conflict(
                    f"{agent_id} works on project {agent.project}, task {task_id} on {task.project}"
                )
            if agent.desired is DesiredState.STOPPED or not agent.state.is_live:
                raise Conflict(f"{agent_id} is {agent.state.value}; /spawn it again first")
            held = [
                t.id
                for t in await ap.tasks.list_tasks(
                    task.project, (TaskState.WORKING, TaskState.VERIFYING)
                )
                if t.agent_id == agent_id
            ]
            if held:
                raise Conflict(f"{agent_id} works on task {held[0]}; one task at a time")
            if await ap.base_of(pc, agent.node) is None and not pc.base_branch:
                raise Conflict(f"project {pc.name} has no base branch checked out; set base_branch")
            moved = await ap.give(pc, task, agent_id, by)
            if moved is None:
                raise Conflict(f"task {task_id} could not be assigned (the farmbot log says why)")
            return moved

    async def _move(self, task: Task, happening: tm.Happening) -> Task:
        from farmbot.supervisor.autopilot import tasks as tm

        try:
            moved = await self.autopilot.move(task, happening)
        except tm.NotNow as exc:
            raise Conflict(str(exc)) from None
        if moved is None:
            raise Conflict(f"task {task.id} changed meanwhile; /task show {task.id}")
        return moved

    # -- runs and modes -----------------------------------------------------------------
    async def start(self, project: str, by: str) -> tuple[Run, list[Task]]:
        """Order the project's open tasks into waves and start a run of them."""
        from farmbot.supervisor.autopilot import waves

        ap = self.autopilot
        pc = ap.project(project)
        mode, _ = await ap.mode(project)
        if mode is AutopilotMode.OFF:
            raise Conflict(
                f"the autopilot is off for project {project}; /autopilot {project} observe "
                "(or fix_forward, auto_staging, auto_prod) first"
            )
        if await ap.base_of(pc) is None:  # in a checkout of it, on a node that holds it
            if not pc.base_branch:
                raise Conflict(
                    f"project {project} is not a git repository with a branch checked out"
                )
            raise Conflict(f"project {project}: the base branch {pc.base_branch} does not exist")
        async with ap.lock:
            if (run := await ap.runs.open_run(project)) is not None:
                raise Conflict(
                    f"project {project} already has run {run.id} ({run.state.value}); "
                    f"/run status {project}"
                )
            found = await ap.tasks.list_tasks(project, [s for s in TaskState if not s.is_closed])
            taken = []
            for task in found:
                other = await ap.runs.get_run(task.run_id) if task.run_id else None
                if other is None or not other.state.is_open:
                    taken.append(task)
            if not taken:
                raise Conflict(
                    f"project {project} has no open tasks; /task add {project} <title> queues one"
                )
            done = {
                d
                for d, t in (
                    await ap.tasks.get_tasks({d for t in taken for d in t.depends_on})
                ).items()
                if t.state is TaskState.DONE
            }
            try:
                order = waves.order(taken, done)
            except ValueError as exc:
                raise Conflict(f"refused: {exc}") from None
            run = await ap.runs.add_run(project, by, order, ap.clock())
            if run is None:
                raise Conflict(f"project {project} already has an open run")
            await ap.bus.publish(
                RunStarted(
                    project=project,
                    run_id=run.id,
                    by=by,
                    mode=mode.value,
                    tasks=len(order),
                    waves=len(run.waves),
                )
            )
        ap.wake()
        return run, await ap.tasks.run_tasks(run.id)

    async def pause(self, project: str, by: str) -> Run:
        return await self._set_run(project, RunState.RUNNING, RunState.PAUSED, by)

    async def resume(self, project: str, by: str) -> Run:
        return await self._set_run(project, RunState.PAUSED, RunState.RUNNING, by)

    async def _set_run(self, project: str, expect: RunState, state: RunState, by: str) -> Run:
        ap = self.autopilot
        ap.project(project)
        run = await ap.runs.open_run(project)
        if run is None:
            latest = await ap.runs.list_runs(project, 1)
            hint = f" (run {latest[0].id} is {latest[0].state.value})" if latest else ""
            raise Conflict(f"project {project} has no open run{hint}; /run start {project}")
        if run.state is not expect:
            raise Conflict(f"run {run.id} of {project} is already {run.state.value}")
        changed = await ap.runs.set_run_state(run.id, state, f"by {by}", ap.clock(), expect=expect)
        if changed is None:
            raise Conflict(f"run {run.id} changed meanwhile; /run status {project}")
        await ap.bus.publish(
            RunStateChanged(
                project=project,
                run_id=run.id,
                state=state.value,
                previous=expect.value,
                by=by,
            )
        )
        ap.wake()
        return changed

    async def runs(self, project: str | None) -> list[tuple[Run, list[Task]]]:
        """The open run of each project (or its latest), with its tasks."""
        ap = self.autopilot
        names = [ap.project(project).name] if project else [p.name for p in ap.config.projects]
        found = []
        for name in names:
            run = await ap.runs.open_run(name)
            if run is None:
                latest = await ap.runs.list_runs(name, 1)
                run = latest[0] if latest else None
            if run is not None:
                found.append((run, await ap.tasks.run_tasks(run.id)))
        return found

    async def set_mode(self, project: str, mode: AutopilotMode, by: str) -> AutopilotMode:
        ap = self.autopilot
        previous, _ = await ap.mode(project)
        await ap.runs.set_mode(project, mode, by, ap.clock())
        await ap.bus.publish(
            ModeChanged(project=project, mode=mode.value, previous=previous.value, by=by)
        )
        ap.wake()
        return previous

    # -- agents -------------------------------------------------------------------------
    async def agent_done(self, agent_id: str, note: str) -> str:
        """``farmbot task done`` from an agent: its own task (only) goes to verification."""
        from farmbot.supervisor.autopilot import tasks as tm

        ap = self.autopilot
        async with ap.lock:
            held = [
                t
                for t in await ap.tasks.open_tasks()
                if t.agent_id == agent_id and t.state in (TaskState.WORKING, TaskState.VERIFYING)
            ]
            if not held:
                raise Conflict(f"{agent_id} has no task in progress, so nothing is marked done")
            task = held[0]
            if task.state is TaskState.VERIFYING:
                return f"task {task.id} is already being verified"
            moved = await self._move(task, tm.Finish(agent_id, note.strip()[:500]))
        verify = ap.project(moved.project).verify
        then = f"`{verify}` runs on it now" if verify else "no verify command is configured"
        return f"task {moved.id} reported done; {then}. You hear back here if it needs more work."


def _where(drafts: Sequence[TaskDraft], index: int) -> str:
    if len(drafts) == 1:
        return "the task "
    name = drafts[index].ref
    return f"tasks[{index}]{f' ({name})' if name else ''} "
