"""Waves: tasks ordered by their dependencies, and when each may start. Pure.

A run's wave 1 holds the tasks that wait for nothing open; wave n+1 the tasks whose
latest open dependency is in wave n. A task is ready when every task it depends on is
done -- and, in modes that gate waves, when every earlier wave has passed its gate. A
task that depends on a failed or cancelled task (directly or not) is blocked until that
task is retried. A wave is settled when each of its tasks is closed or blocked; what a
settled wave does next (a deploy, a gate, closing) is ``after_settled``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from farmbot.models import AutopilotMode, Task, TaskState, Wave, WaveState

_BLOCKING = (TaskState.FAILED, TaskState.CANCELLED)


def find_cycle(edges: Mapping[int, Iterable[int]]) -> list[int] | None:
    """A dependency cycle as ``[a, b, ..., a]`` (a waits for b ...), or None.

    ``edges`` maps a task to the tasks it depends on; tasks missing from it have none.
    """
    done: set[int] = set()
    for start in edges:
        if start in done:
            continue
        path = [start]
        on_path = {start}
        stack: list[Iterator[int]] = [iter(edges.get(start, ()))]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
                stack.pop()
            elif nxt in on_path:
                return [*path[path.index(nxt) :], nxt]
            elif nxt not in done:
                path.append(nxt)
                on_path.add(nxt)
                stack.append(iter(edges.get(nxt, ())))
    return None


def order(tasks: Sequence[Task], done: Collection[int] = ()) -> dict[int, int]:
    """Each task's wave (1-based): after the latest wave of the open tasks it depends on.

    Dependencies outside ``tasks`` or in ``done`` count as satisfied. Raises ValueError
    naming the cycle when there is one.
    """
    ids = {t.id for t in tasks}
    open_deps = {t.id: [d for d in t.depends_on if d in ids and d not in done] for t in tasks}
    cycle = find_cycle(open_deps)
    if cycle is not None:
        raise ValueError(describe_cycle(cycle))
    waves: dict[int, int] = {}
    while len(waves) < len(open_deps):
        for task_id, deps in open_deps.items():
            if task_id not in waves and all(d in waves for d in deps):
                waves[task_id] = 1 + max((waves[d] for d in deps), default=0)
    return waves


def describe_cycle(cycle: Sequence[int]) -> str:
    """``task 1 waits for 2, which waits for 1``."""
    first, *rest = cycle
    chain = ", which waits for ".join(str(t) for t in rest)
    return f"a dependency cycle: task {first} waits for {chain}"


def join_wave(dep_waves: Iterable[int], waves: Sequence[Wave]) -> int:
    """The wave a task joining a run goes in: after its dependencies, in an open wave."""
    earliest = 1 + max(dep_waves, default=0)
    for w in waves:
        if w.number >= earliest and w.state is WaveState.OPEN:
            return w.number
    last = max((w.number for w in waves), default=0)
    return max(earliest, last + 1)


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    waiting_on: tuple[int, ...] = ()  # open tasks it depends on
    blocked_by: tuple[int, ...] = ()  # failed or cancelled tasks it (transitively) needs
    held_by_wave: int | None = None  # an earlier wave that has not passed its gate


def readiness(
    task: Task,
    tasks: Mapping[int, Task],
    mode: AutopilotMode,
    waves: Sequence[Wave] = (),
) -> Readiness:
    """Whether a pending task may start now, and what it waits for.

    ``tasks`` holds (at least) the tasks it depends on, transitively; one that is
    missing counts as done (it was deleted, or belongs to no one).
    """
    waiting: list[int] = []
    blocked = sorted(_blockers(task, tasks, set()))
    for dep in task.depends_on:
        found = tasks.get(dep)
        if found is not None and found.state is not TaskState.DONE and dep not in blocked:
            if found.state not in _BLOCKING:
                waiting.append(dep)
    held = None
    if mode.gates_waves and task.wave is not None:
        held = next(
            (w.number for w in waves if w.number < task.wave and w.state is not WaveState.CLOSED),
            None,
        )
    ready = not waiting and not blocked and held is None
    return Readiness(ready, tuple(waiting), tuple(blocked), held)


def _blockers(task: Task, tasks: Mapping[int, Task], seen: set[int]) -> set[int]:
    found: set[int] = set()
    for dep in task.depends_on:
        if dep in seen:
            continue
        seen.add(dep)
        other = tasks.get(dep)
        if other is None:
            continue
        if other.state in _BLOCKING:
            found.add(dep)
        elif other.state is not TaskState.DONE:
            found |= _blockers(other, tasks, seen)
    return found


def is_blocked(task: Task, tasks: Mapping[int, Task]) -> bool:
    """Whether a pending or ready task waits on a failed or cancelled one."""
    return task.state in (TaskState.PENDING, TaskState.READY) and bool(
        _blockers(task, tasks, set())
    )


def settled(wave_tasks: Sequence[Task], tasks: Mapping[int, Task]) -> bool:
    """Whether nothing more can happen in a wave: each task closed, or blocked."""
    return all(t.state.is_closed or is_blocked(t, tasks) for t in wave_tasks)


@dataclass(frozen=True, slots=True)
class WaveNext:
    """What a settled wave does next."""

    state: WaveState  # STAGING (run deploy_staging), GATE (open its gate) or CLOSED
    why: str


def after_settled(
    wave_tasks: Sequence[Task], mode: AutopilotMode, *, has_staging: bool
) -> WaveNext:
    """The next state of a wave that has just settled."""
    landed = [t for t in wave_tasks if t.state is TaskState.DONE]
    if not mode.gates_waves:
        return WaveNext(WaveState.CLOSED, "its tasks are settled")
    if not landed:
        return WaveNext(WaveState.CLOSED, "nothing in it landed")
    if mode in (AutopilotMode.AUTO_STAGING, AutopilotMode.AUTO_PROD) and has_staging:
        return WaveNext(WaveState.STAGING, "its work landed: deploying to staging")
    return WaveNext(WaveState.GATE, "its work landed: it waits at its gate")


def after_staging(mode: AutopilotMode) -> WaveState:
    """A wave's state once deploy_staging finished (passed or not: a human looks)."""
    return WaveState.GATE


def after_approval(mode: AutopilotMode, *, has_prod: bool) -> WaveState:
    """A wave's state once its gate is approved: deploy_prod in ``auto_prod``, else closed."""
    if mode is AutopilotMode.AUTO_PROD and has_prod:
        return WaveState.PROD
    return WaveState.CLOSED


@dataclass(frozen=True, slots=True)
class RunOutcome:
    finished: bool
    done: tuple[int, ...] = ()
    failed: tuple[int, ...] = ()
    blocked: tuple[int, ...] = ()
    cancelled: tuple[int, ...] = ()

    @property
    def clean(self) -> bool:
        return not self.failed and not self.blocked


def outcome(
    run_tasks: Sequence[Task], waves: Sequence[Wave], tasks: Mapping[int, Task]
) -> RunOutcome:
    """Whether a run is over (every task closed or blocked, every wave closed), and how."""
    finished = all(t.state.is_closed or is_blocked(t, tasks) for t in run_tasks) and all(
        w.state is WaveState.CLOSED for w in waves
    )

    def ids(*states: TaskState) -> tuple[int, ...]:
        return tuple(t.id for t in run_tasks if t.state in states)

    return RunOutcome(
        finished=finished,
        done=ids(TaskState.DONE),
        failed=ids(TaskState.FAILED),
        blocked=tuple(t.id for t in run_tasks if is_blocked(t, tasks)),
        cancelled=ids(TaskState.CANCELLED),
    )
