"""The task state machine: one pure function decides every move of a task.

``decide(task, happening, policy, now)`` returns a ``Step``: the task as it becomes, the
line its history gets, the prompt its agent gets with the move (recorded in the same
transaction), an agent to stop first, a gate gone stale, and the events to publish. No
I/O here: the runner observes (agents, git, QA, gates, people) and carries steps out.

::

    pending ──release──▶ ready ──assign──▶ working ──done──▶ verifying ──pass──▶ review
       ▲                   ▲                  ▲ │                │                  │
       │                   │   agent lost,    │ │ QA failed      │ QA failed        │approve
       │                   └── attempts left ─┼─┘ (same builder) │ (attempts left)  ▼
       │                                      └──────────────────┘◀── rejected ── landing
     retry                                    ◀── conflict / land_command failed ──┘  │
       │                                                                              ▼
    failed ◀── out of attempts               review ◀── refused (a human must look)  done

In modes that gate waves, a verified task skips review and lands by itself. ``attempts``
is the number of the attempt in progress: the first assignment, each retry after a lost
agent and each failed verification start a new one; a rejection or a conflict does not.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from farmbot.events import DomainEvent, TaskFailed, TaskLanded, TaskMoved, TaskRetried
from farmbot.models import AutopilotMode, Task, TaskState

FEEDBACK_CHARS = 4000  # of QA output or a reviewer's words in a prompt


class NotNow(Exception):
    """The happening does not apply to the task in its state; ``str()`` says why."""


@dataclass(frozen=True, slots=True)
class Policy:
    """What decides how a task moves: the project's mode and the supervisor's limits."""

    mode: AutopilotMode
    max_attempts: int
    timeout: float  # seconds an attempt may take


# -- happenings -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Release:
    """Everything it depends on is done (and its wave may start)."""


@dataclass(frozen=True, slots=True)
class Hold:
    """It must wait again (a task it depends on was reopened)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Assign:
    agent_id: str
    branch: str
    base_branch: str
    base_commit: str
    by: str


@dataclass(frozen=True, slots=True)
class Unassign:
    """Its assignment could not be carried out (no builder could start); no attempt lost."""

    reason: str


@dataclass(frozen=True, slots=True)
class Finish:
    """Its agent said it is done, or went idle with new commits."""

    by: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class Verified:
    passed: bool
    qa_run_id: int | None
    command: str
    output: str
    agent_free: bool  # its agent is alive to take a fix


@dataclass(frozen=True, slots=True)
class Lost:
    """Its agent died, was stopped, or the attempt took longer than the timeout."""

    reason: str
    agent_id: str | None  # stopped before the move (its branch is kept)


@dataclass(frozen=True, slots=True)
class Approve:
    by: str


@dataclass(frozen=True, slots=True)
class Reject:
    by: str
    reason: str
    agent_free: bool


@dataclass(frozen=True, slots=True)
class Landed:
    base: str  # the base's tip before
    commit: str  # ... and after
    commits: tuple[str, ...]
    how: str  # "merge into main", "rebase onto main", "land_command"
    by: str


@dataclass(frozen=True, slots=True)
class LandFailed:
    """The work does not land (a conflict, a failing land_command): back to the builder."""

    detail: str
    agent_free: bool
    land_command: bool = False  # the project's land command failed (else: a git conflict)


@dataclass(frozen=True, slots=True)
class LandRefused:
    """Landing failed for a reason no builder can fix: a human looks at it again."""

    detail: str


@dataclass(frozen=True, slots=True)
class Reopen:
    """Its wave's gate was rejected: the work goes back to its builder."""

    by: str
    reason: str
    agent_free: bool


@dataclass(frozen=True, slots=True)
class Cancel:
    by: str


@dataclass(frozen=True, slots=True)
class Retry:
    by: str


Happening = (
    Release
    | Hold
    | Assign
    | Unassign
    | Finish
    | Verified
    | Lost
    | Approve
    | Reject
    | Landed
    | LandFailed
    | LandRefused
    | Reopen
    | Cancel
    | Retry
)


@dataclass(frozen=True, slots=True)
class Step:
    """What a happening does to a task."""

    task: Task  # as it becomes
    by: str  # who or what moved it (its history says so)
    detail: str  # the history's words
    prompt: str | None = None  # typed to task.agent_id, recorded with the move
    retire: str | None = None  # stop this agent before the move
    stale_gate: tuple[int, str] | None = None  # (gate id, why) once the move is recorded
    events: tuple[DomainEvent, ...] = ()


# -- the machine ------------------------------------------------------------------------


def decide(task: Task, happening: Happening, policy: Policy, now: float) -> Step:
    """The task's next state after ``happening``; raises ``NotNow`` when it does not apply."""
    s = task.state
    match happening:
        case Release() if s is TaskState.PENDING:
            return _go(task, TaskState.READY, "autopilot", "everything it depends on is done", now)
        case Hold(reason) if s is TaskState.READY:
            return _go(task, TaskState.PENDING, "autopilot", reason, now)
        case Assign() if s in (TaskState.PENDING, TaskState.READY):
            return _assign(task, happening, policy, now)
        case Unassign(reason) if s is TaskState.WORKING:
            return _go(task, TaskState.READY, "autopilot", reason, now)
        case Finish(by, note) if s is TaskState.WORKING:
            said = f": {note}" if note else ""
            moved = replace(task, note=note or task.note)
            return _go(moved, TaskState.VERIFYING, by, f"reported done{said}", now)
        case Verified() if s is TaskState.VERIFYING:
            return _verified(task, happening, policy, now)
        case Lost(reason, agent) if s is TaskState.WORKING:
            return _lost(task, reason, agent, policy, now)
        case Approve(by) if s is TaskState.REVIEW:
            return _go(task, TaskState.LANDING, by, f"approved by {by}", now)
        case Reject(by, reason, free) if s is TaskState.REVIEW:
            why = reason or "no reason given"
            prompt = rejected_prompt(task, by, why)
            return _back(task, prompt, free, by, f"rejected by {by}: {why}", policy, now)
        case Landed() if s is TaskState.LANDING:
            return _landed(task, happening, now)
        case LandFailed(detail, free, command) if s is TaskState.LANDING:
            prompt = (land_command_prompt if command else conflict_prompt)(task, detail)
            return _back(task, prompt, free, "autopilot", f"did not land: {detail}", policy, now)
        case LandRefused(detail) if s is TaskState.LANDING:
            moved = replace(task, gate_id=None)
            return _go(moved, TaskState.REVIEW, "autopilot", f"did not land: {detail}", now)
        case Reopen(by, reason, free) if s is TaskState.DONE:
            why = reason or "no reason given"
            prompt = rejected_prompt(task, by, why)
            return _back(task, prompt, free, by, f"wave rejected by {by}: {why}", policy, now)
        case Cancel(by) if not s.is_closed and s is not TaskState.LANDING:
            stale = (task.gate_id, f"task {task.id} was cancelled") if task.gate_id else None
            step = _go(replace(task, gate_id=None), TaskState.CANCELLED, by, f"by {by}", now)
            return replace(step, stale_gate=stale)
        case Retry(by) if s in (TaskState.FAILED, TaskState.CANCELLED):
            fresh = replace(task, attempts=0, feedback="", gate_id=None, prompt_id=None)
            return _go(fresh, TaskState.PENDING, by, f"retried by {by}", now)
    raise NotNow(_not_now(task, happening))


def _go(task: Task, state: TaskState, by: str, detail: str, now: float) -> Step:
    moved = replace(task, state=state, reason=detail, updated_at=now)
    events: tuple[DomainEvent, ...] = ()
    if state is not task.state:
        events = (
            TaskMoved(
                project=task.project,
                agent_id=task.agent_id,
                task_id=task.id,
                state=state.value,
                previous=task.state.value,
                by=by,
                detail=detail,
            ),
        )
    return Step(moved, by, detail, events=events)


def _assign(task: Task, a: Assign, policy: Policy, now: float) -> Step:
    moved = replace(
        task,
        agent_id=a.agent_id,
        branch=a.branch,
        base_branch=a.base_branch,
        base_commit=task.base_commit or a.base_commit,
        attempts=max(task.attempts, 1),
        started_at=now,
        deadline=now + policy.timeout,
        prompt_id=None,  # the task prompt is owed until it is queued
        gate_id=None,
    )
    attempt = f" (attempt {moved.attempts} of {policy.max_attempts})" if moved.attempts > 1 else ""
    return _go(moved, TaskState.WORKING, a.by, f"assigned to {a.agent_id}{attempt}", now)


def _verified(task: Task, v: Verified, policy: Policy, now: float) -> Step:
    recorded = replace(task, qa_run_id=v.qa_run_id)
    if v.passed:
        what = f"`{v.command}` passed" if v.command else "no verify command"
        if policy.mode.gates_waves:
            return _go(recorded, TaskState.LANDING, "autopilot", f"verified ({what})", now)
        return _go(recorded, TaskState.REVIEW, "autopilot", f"verified ({what})", now)
    if task.attempts >= policy.max_attempts:
        return _failed(recorded, f"verification failed (`{v.command}`)", policy, now)
    nxt = replace(recorded, attempts=task.attempts + 1)
    prompt = verify_failed_prompt(nxt, v.command, v.output, policy.max_attempts)
    detail = f"verification failed (`{v.command}`); attempt {nxt.attempts} of {policy.max_attempts}"
    return _back(nxt, prompt, v.agent_free, "autopilot", detail, policy, now)


def _lost(task: Task, reason: str, agent: str | None, policy: Policy, now: float) -> Step:
    if task.attempts >= policy.max_attempts:
        step = _failed(task, reason, policy, now)
        return replace(step, retire=agent)
    nxt = replace(
        task, attempts=task.attempts + 1, feedback=_clip(f"The previous attempt ended: {reason}.")
    )
    detail = (
        f"{reason}; retried on a fresh builder (attempt {nxt.attempts} of {policy.max_attempts})"
    )
    step = _go(nxt, TaskState.READY, "autopilot", detail, now)
    retried = TaskRetried(
        project=task.project,
        agent_id=task.agent_id,
        task_id=task.id,
        title=task.title,
        reason=reason,
        attempt=nxt.attempts,
        max_attempts=policy.max_attempts,
    )
    return replace(step, retire=agent, events=(*step.events, retried))


def _failed(task: Task, reason: str, policy: Policy, now: float) -> Step:
    detail = f"failed after {task.attempts} of {policy.max_attempts} attempts: {reason}"
    step = _go(task, TaskState.FAILED, "autopilot", detail, now)
    failed = TaskFailed(
        project=task.project,
        agent_id=task.agent_id,
        task_id=task.id,
        title=task.title,
        reason=reason,
        attempts=task.attempts,
    )
    return replace(step, events=(*step.events, failed))


def _back(
    task: Task,
    prompt: str,
    agent_free: bool,
    by: str,
    detail: str,
    policy: Policy,
    now: float,
) -> Step:
    """Back to its builder with ``prompt``, or (its builder gone) to the next free one."""
    fresh = replace(task, gate_id=None, started_at=now, deadline=now + policy.timeout)
    if agent_free and task.agent_id is not None:
        step = _go(replace(fresh, feedback=""), TaskState.WORKING, by, detail, now)
        return replace(step, prompt=prompt)
    queued = replace(fresh, feedback=_clip(prompt), prompt_id=None)
    return _go(
        queued,
        TaskState.READY,
        by,
        f"{detail}; its builder is gone, so the next free builder takes it",
        now,
    )


def _landed(task: Task, landed: Landed, now: float) -> Step:
    moved = replace(
        task,
        land_base=landed.base,
        landed_commit=landed.commit,
        landed_commits=landed.commits,
        landed_at=now,
        gate_id=None,
        feedback="",
    )
    detail = f"landed {landed.commit[:12]} ({landed.how})"
    step = _go(moved, TaskState.DONE, landed.by, detail, now)
    event = TaskLanded(
        project=task.project,
        agent_id=task.agent_id,
        task_id=task.id,
        title=task.title,
        commit=landed.commit,
        commits=landed.commits,
        how=landed.how,
        by=landed.by,
    )
    return replace(step, events=(*step.events, event))


def _not_now(task: Task, happening: Happening) -> str:
    what = type(happening).__name__.lower()
    state = task.state.value
    if isinstance(happening, Cancel):
        if task.state is TaskState.LANDING:
            return f"task {task.id} is landing right now; wait for it, then /task show {task.id}"
        return f"task {task.id} is already {state}"
    if isinstance(happening, Retry):
        return f"task {task.id} is {state}; only a failed or cancelled task can be retried"
    if isinstance(happening, Assign):
        return f"task {task.id} is {state}; only a pending or ready task can be assigned"
    if isinstance(happening, Approve | Reject):
        return f"task {task.id} is {state}, not waiting for review"
    return f"task {task.id} is {state}: {what} does not apply"


# -- prompts ----------------------------------------------------------------------------


def task_prompt(template: str, task: Task) -> str:
    """The prompt that hands ``task`` to a builder (with what an earlier attempt left).

    ``template`` is the profile's ``task_prompt``, which the config loader checked by
    formatting it with strings; every field is given as a string here too, so a format
    spec it let through (``{id:.3}``) cannot fail now.
    """
    text = template.format(
        id=str(task.id),
        title=task.title,
        body=task.body or "(no further description)",
        project=task.project,
        branch=task.branch or "",
    )
    if task.feedback:
        text += f"\n\nFrom an earlier attempt at this task:\n{task.feedback}"
    return text


def verify_failed_prompt(task: Task, command: str, output: str, max_attempts: int) -> str:
    shown = _clip(output.strip() or "(no output)")
    return (
        f"Task {task.id}: verification failed (attempt {task.attempts} of {max_attempts} "
        f"starts now). `{command}` said:\n{shown}\n\n"
        f"Fix it on branch {task.branch}, commit, then run `farmbot task done` again."
    )


def rejected_prompt(task: Task, by: str, reason: str) -> str:
    return (
        f"Task {task.id}: {by} reviewed your work and rejected it: {_clip(reason)}\n\n"
        f"Change it on branch {task.branch}, commit, then run `farmbot task done` again."
    )


def conflict_prompt(task: Task, detail: str) -> str:
    base = task.base_branch or "the base branch"
    return (
        f"Task {task.id}: your work does not land on {base}: {_clip(detail)}\n\n"
        f"Bring {base} into {task.branch} (merge or rebase), resolve what conflicts, commit, "
        "then run `farmbot task done` again."
    )


def land_command_prompt(task: Task, detail: str) -> str:
    return (
        f"Task {task.id}: your work did not land: the project's land command {_clip(detail)}\n\n"
        f"Fix what it reports on branch {task.branch}, commit, then run `farmbot task done` again."
    )


def _clip(text: str) -> str:
    return text if len(text) <= FEEDBACK_CHARS else "…" + text[-(FEEDBACK_CHARS - 1) :]
