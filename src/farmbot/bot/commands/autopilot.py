"""Commands of the autopilot: tasks, runs, modes, and the diff behind a milestone gate.

``/task add <project> <title> [--after 1,2] [--priority high|normal|low] [--body <text>]``
takes a body from ``--body`` to the end of the message, or else from the message's
further lines, so a multi-line body works from every interface. ``POST /api/tasks``
sends the same command as JSON (``parse_add_data``), a batch whose tasks may depend on
one another by ``ref``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from farmbot.bot.authz import Person
from farmbot.bot.commands.base import Context, Spec, name, ref, words
from farmbot.errors import AccessDenied, UsageError
from farmbot.messages import Button, Buttons, Reply, ago, clip, reject_button, utc_time
from farmbot.models import AutopilotMode, Gate, GateStatus, Priority, Role, Run, Task, TaskState
from farmbot.supervisor.autopilot import MILESTONE, TaskDraft, TaskView

SHOWN = 40  # tasks in one listing
OPTIONS = ("--after", "--priority", "--body")
ORDER = (
    TaskState.PENDING,
    TaskState.READY,
    TaskState.WORKING,
    TaskState.VERIFYING,
    TaskState.REVIEW,
    TaskState.LANDING,
    TaskState.FAILED,
    TaskState.DONE,
    TaskState.CANCELLED,
)


@dataclass(frozen=True, slots=True)
class AddTasks:
    """``/task add`` (or ``POST /api/tasks``): queue tasks for the autopilot."""

    drafts: tuple[TaskDraft, ...]


@dataclass(frozen=True, slots=True)
class ShowTask:
    """``/task show``: a task with its history, commits and QA."""

    task: int


@dataclass(frozen=True, slots=True)
class ListTasks:
    """``/tasks``: the open tasks (``--all``: the closed ones too)."""

    project: str | None = None
    all: bool = False


@dataclass(frozen=True, slots=True)
class CancelTask:
    """``/task cancel``: cancel a task."""

    task: int


@dataclass(frozen=True, slots=True)
class RetryTask:
    """``/task retry``: start a failed or cancelled task over."""

    task: int


@dataclass(frozen=True, slots=True)
class AssignTask:
    """``/task assign``: give a task to a builder now."""

    task: int
    agent: str


@dataclass(frozen=True, slots=True)
class SetAutopilot:
    """``/autopilot``: show a project's autopilot mode, or set it."""

    project: str
    mode: AutopilotMode | None = None  # None: show it


@dataclass(frozen=True, slots=True)
class RunStart:
    """``/run start``: order the open tasks into waves and start handing them out."""

    project: str


@dataclass(frozen=True, slots=True)
class RunPause:
    """``/run pause``: hand out no new tasks."""

    project: str


@dataclass(frozen=True, slots=True)
class RunResume:
    """``/run resume``: hand out tasks again."""

    project: str


@dataclass(frozen=True, slots=True)
class RunStatus:
    """``/run status``: runs, their waves and where each task is."""

    project: str | None = None


@dataclass(frozen=True, slots=True)
class GateDiff:
    """``/gate diff``: the whole diff behind a milestone gate."""

    gate: int


# -- parse ------------------------------------------------------------------------------


def parse_add(args: str, usage: str) -> AddTasks:
    """``<project> <title> [options]``; the body is ``--body ...`` or the lines below."""
    first, _, rest = args.lstrip().partition("\n")
    marker = re.search(r"(?:^|\s)--body(?:=|\s|$)", first)
    if marker is not None:
        body = first[marker.end() :] + ("\n" + rest if rest else "")
        first = first[: marker.start()]
    else:
        body = rest
    tokens = first.split()
    if not tokens:
        raise UsageError("missing arguments", usage)
    project = name(tokens.pop(0), "project", usage)
    title: list[str] = []
    after: tuple[int | str, ...] = ()
    priority = Priority.NORMAL
    while tokens:
        token = tokens.pop(0)
        if not token.startswith("--"):
            title.append(token)
            continue
        option, _, value = token.partition("=")
        if option not in OPTIONS:
            close = difflib.get_close_matches(option, OPTIONS, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise UsageError(f"unknown option {option!r}{hint}", usage)
        if not value:
            if not tokens:
                raise UsageError(f"{option} needs a value", usage)
            value = tokens.pop(0)
        if option == "--after":
            after = tuple(ref(v, "task", "/tasks", usage) for v in value.split(",") if v)
        else:
            priority = _priority(value, usage)
    if not title:
        raise UsageError("missing the task's title", usage)
    return AddTasks((TaskDraft(project, " ".join(title), _body(body), priority, after),))


def _priority(value: str, usage: str) -> Priority:
    try:
        return Priority.parse(value)
    except KeyError:
        raise UsageError(f"unknown priority {value!r} (use high, normal or low)", usage) from None


def _body(text: str) -> str:
    """The body as typed, without the blank lines around it."""
    return "\n".join(text.splitlines()).strip("\n").rstrip()


def parse_add_data(data: Mapping[str, Any], usage: str) -> AddTasks:
    """``POST /api/tasks``: one task object, or ``{"tasks": [...]}`` (optionally with a
    ``project`` that each task may omit). Errors name the field."""
    if "tasks" in data:
        items, default = data["tasks"], data.get("project")
        extra = set(data) - {"tasks", "project"}
        if extra:
            raise UsageError(f"unknown field {sorted(extra)[0]!r} (a batch has tasks, project)")
        if not isinstance(items, list) or not items:
            raise UsageError("tasks: expected a non-empty list of task objects")
        if default is not None and not isinstance(default, str):
            raise UsageError("project: expected a string")
        return AddTasks(
            tuple(_draft(item, f"tasks[{i}].", default) for i, item in enumerate(items))
        )
    return AddTasks((_draft(data, "", None),))


_FIELDS = ("project", "title", "body", "priority", "after", "ref")


def _draft(item: object, at: str, project: str | None) -> TaskDraft:
    if not isinstance(item, dict):
        raise UsageError(f"{at or 'the body'}: expected a task object")
    for key in item:
        if key not in _FIELDS:
            close = difflib.get_close_matches(str(key), _FIELDS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f" (fields: {', '.join(_FIELDS)})"
            raise UsageError(f"{at}{key}: unknown field{hint}")
    found = item.get("project", project)
    if not isinstance(found, str) or not found:
        raise UsageError(f"{at}project: missing (a project name, a string)")
    title = item.get("title")
    if not isinstance(title, str) or not title.strip():
        raise UsageError(f"{at}title: missing (a string)")
    body = item.get("body", "")
    if not isinstance(body, str):
        raise UsageError(f"{at}body: expected a string")
    priority = item.get("priority", "normal")
    if not isinstance(priority, str) or priority.lower() not in ("high", "normal", "low"):
        raise UsageError(f'{at}priority: expected "high", "normal" or "low", got {priority!r}')
    after = item.get("after", [])
    if not isinstance(after, list) or not all(
        (isinstance(a, int) and not isinstance(a, bool) and a > 0) or (isinstance(a, str) and a)
        for a in after
    ):
        raise UsageError(f"{at}after: expected a list of task ids (numbers) or refs (strings)")
    reference = item.get("ref")
    if reference is not None and (not isinstance(reference, str) or not reference):
        raise UsageError(f"{at}ref: expected a non-empty string")
    return TaskDraft(found, title, body, Priority.parse(priority), tuple(after), reference)


def _one_task(make: type[ShowTask] | type[CancelTask] | type[RetryTask]) -> Any:
    def parse(args: str, usage: str) -> Any:
        [word] = words(args, usage, 1, 1)
        return make(ref(word, "task", "/tasks", usage))

    return parse


def _assign(args: str, usage: str) -> AssignTask:
    task, agent = words(args, usage, 2, 2)
    return AssignTask(ref(task, "task", "/tasks", usage), name(agent, "agent", usage))


def _list(args: str, usage: str) -> ListTasks:
    found = words(args, usage, 0, 2)
    every = "--all" in found
    rest = [w for w in found if w != "--all"]
    if any(w.startswith("--") for w in rest):
        raise UsageError(f"unknown option {next(w for w in rest if w.startswith('--'))!r}", usage)
    if len(rest) > 1:
        raise UsageError(f"too many arguments: {' '.join(rest[1:])!r}", usage)
    return ListTasks(name(rest[0], "project", usage) if rest else None, every)


def _autopilot(args: str, usage: str) -> SetAutopilot:
    found = words(args, usage, 1, 2)
    project = name(found[0], "project", usage)
    if len(found) == 1:
        return SetAutopilot(project)
    modes = [m.value for m in AutopilotMode]
    word = found[1].lower()
    if word not in modes:
        close = difflib.get_close_matches(word, modes, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f" (one of: {', '.join(modes)})"
        raise UsageError(f"unknown mode '{found[1]}'{hint}", usage)
    return SetAutopilot(project, AutopilotMode(word))


def _project_command(make: type[RunStart] | type[RunPause] | type[RunResume]) -> Any:
    def parse(args: str, usage: str) -> Any:
        [word] = words(args, usage, 1, 1)
        return make(name(word, "project", usage))

    return parse


def _run_status(args: str, usage: str) -> RunStatus:
    found = words(args, usage, 0, 1)
    return RunStatus(name(found[0], "project", usage) if found else None)


def _gate_diff(args: str, usage: str) -> GateDiff:
    [word] = words(args, usage, 1, 1)
    return GateDiff(ref(word, "gate", "/gates", usage))


# -- handle -----------------------------------------------------------------------------


async def _add(command: AddTasks, person: Person, ctx: Context) -> Reply:
    added = await ctx.pilot.add(command.drafts, person.name)
    lines = []
    for task in added:
        waits = (
            f"; waits for {', '.join(str(d) for d in task.depends_on)}" if task.depends_on else ""
        )
        where = f"; joins run {task.run_id}, wave {task.wave}" if task.run_id else ""
        lines.append(
            f"queued task {task.id} [{task.project}] ({task.priority}): {task.title}{waits}{where}"
        )
    projects = sorted({t.project for t in added})
    buttons: list[tuple[Button, ...]] = [
        tuple(Button(f"Show {t.id}", f"/task show {t.id}") for t in added[:4])
    ]
    if not any(t.run_id for t in added):
        buttons.append(
            tuple(Button(f"Start a run in {p}", f"/run start {p}", "primary") for p in projects[:2])
        )
    data = {"tasks": [t.to_json() for t in added]}
    return Reply("\n".join(lines), buttons=tuple(buttons), data=data)


async def _show(command: ShowTask, person: Person, ctx: Context) -> Reply:
    view = await ctx.pilot.view(command.task)
    return Reply(_describe(view, ctx), pre=_history(view, ctx), buttons=_task_buttons(view.task))


def _describe(view: TaskView, ctx: Context) -> str:
    t = view.task
    lines = [f"task {t.id} [{t.project}] {t.state.value} — {t.title}"]
    sup_attempts = f"attempt {t.attempts}" if t.attempts else "not started"
    where = f" · run {t.run_id}, wave {t.wave}" if t.run_id else ""
    lines.append(f"priority {t.priority} · {sup_attempts}{where}")
    if t.reason:
        lines.append(f"why: {t.reason}")
    if t.agent_id or t.branch:
        since = f", from {t.base_branch} at {t.base_commit[:10]}" if t.base_commit else ""
        lines.append(f"agent {t.agent_id or '-'} · branch {t.branch or '-'}{since}")
    if view.deps:
        lines.append("depends on: " + ", ".join(f"{d.id} ({d.state.value})" for d in view.deps))
    if view.dependants:
        lines.append("needed by: " + ", ".join(str(d) for d in view.dependants))
    if view.commits:
        shown = "; ".join(f"{sha[:10]} {clip(subject, 60)}" for sha, subject in view.commits[:5])
        more = f" (+{len(view.commits) - 5} more)" if len(view.commits) > 5 else ""
        lines.append(f"commits: {shown}{more}")
    lines.append(f"QA: {view.qa}")
    if t.note:
        lines.append(f"note: {t.note}")
    if t.gate_id is not None and t.state is TaskState.REVIEW:
        lines.append(f"waits at milestone gate #{t.gate_id}")
    if t.state is TaskState.DONE and t.landed_commit:
        landed = next((h for h in reversed(view.history) if h.state is TaskState.DONE), None)
        who = f" by {landed.by}" if landed else ""
        at = f" at {utc_time(t.landed_at)}" if t.landed_at else ""
        approved = next(
            (
                h
                for h in reversed(view.history)
                if h.state is TaskState.LANDING and h.by != "autopilot"
            ),
            None,
        )
        ok = f"; approved by {approved.by} at {utc_time(approved.ts)}" if approved else ""
        commits = ", ".join(c[:10] for c in t.landed_commits) or t.landed_commit[:10]
        lines.append(f"landed{who}{at}: {t.base_branch} at {t.landed_commit[:10]} ({commits}){ok}")
    if t.body:
        lines.append("")
        lines.append(clip(t.body, 1500))
    return "\n".join(lines)


def _history(view: TaskView, ctx: Context) -> str:
    rows = []
    for change in view.history:
        when = utc_time(change.ts)[11:16]
        detail = f" — {clip(change.detail, 200)}" if change.detail else ""
        rows.append(f"{when} {change.state.value:<9} {change.by}{detail}")
    return "\n".join(rows)


def _task_buttons(task: Task) -> Buttons:
    row: list[Button] = []
    if task.state is TaskState.REVIEW and task.gate_id is not None:
        row += list(_gate_buttons(task.gate_id))
    if task.state is TaskState.FAILED or task.state is TaskState.CANCELLED:
        row.append(Button("Retry", f"/task retry {task.id}", "primary"))
    if not task.state.is_closed and task.state is not TaskState.LANDING:
        row.append(Button("Cancel", f"/task cancel {task.id}", "danger"))
    if task.agent_id and task.state.holds_agent:
        row.append(Button("Tail", f"/tail {task.agent_id}"))
    return (tuple(row),) if row else ()


def _gate_buttons(gate_id: int) -> tuple[Button, ...]:
    return (
        Button("Approve", f"/approve {gate_id}", "primary"),
        reject_button(gate_id),
        Button("Diff", f"/gate diff {gate_id}"),
    )


async def _list_tasks(command: ListTasks, person: Person, ctx: Context) -> Reply:
    found = await ctx.pilot.listing(command.project, closed=command.all)
    if not found:
        where = f" in project {command.project}" if command.project else ""
        extra = "" if command.all else " (--all shows done and cancelled ones too)"
        return Reply(f"no tasks{where}{extra}; /task add <project> <title> queues one")
    found.sort(key=lambda t: (ORDER.index(t.state), t.priority, t.id))
    lines = [_line(t, ctx) for t in found[:SHOWN]]
    if len(found) > SHOWN:
        lines.append(f"… and {len(found) - SHOWN} more")
    review = [t for t in found if t.state is TaskState.REVIEW and t.gate_id is not None][:5]
    buttons = tuple(_gate_buttons(t.gate_id) for t in review if t.gate_id is not None)
    return Reply("\n".join(lines), buttons=buttons)


def _line(t: Task, ctx: Context) -> str:
    agent = f" — {t.agent_id}" if t.agent_id and t.state.holds_agent else ""
    prio = "" if t.priority is Priority.NORMAL else f" [{t.priority}]"
    deps = f" (after {', '.join(str(d) for d in t.depends_on)})" if t.depends_on else ""
    gate = f" gate #{t.gate_id}" if t.state is TaskState.REVIEW and t.gate_id else ""
    return f"#{t.id} {t.state.value}{gate} [{t.project}]{prio} {clip(t.title, 80)}{deps}{agent}"


async def _cancel(command: CancelTask, person: Person, ctx: Context) -> Reply:
    before = await ctx.pilot.get(command.task)
    task = await ctx.pilot.cancel(command.task, person.name)
    note = ""
    if before.state.holds_agent and before.agent_id:
        note = f"; {before.agent_id} may still be at it (/kill {before.agent_id} stops it)"
    return Reply(f"task {task.id} cancelled by {person.name}: {task.title}{note}")


async def _retry(command: RetryTask, person: Person, ctx: Context) -> Reply:
    task = await ctx.pilot.retry(command.task, person.name)
    where = f" in run {task.run_id}" if task.run_id else "; /run start starts it"
    return Reply(
        f"task {task.id} is pending again, with fresh attempts{where}: {task.title}",
        buttons=((Button("Show", f"/task show {task.id}"),),),
    )


async def _assign_it(command: AssignTask, person: Person, ctx: Context) -> Reply:
    task = await ctx.pilot.assign(command.task, command.agent, person.name)
    return Reply(
        f"task {task.id} assigned to {task.agent_id} on branch {task.branch}: {task.title}",
        buttons=(
            (Button("Tail", f"/tail {task.agent_id}"), Button("Show", f"/task show {task.id}")),
        ),
    )


async def _autopilot_it(command: SetAutopilot, person: Person, ctx: Context) -> Reply:
    pilot = ctx.pilot
    if command.mode is None:
        mode, source = await pilot.autopilot.mode(command.project)
        runs = await pilot.runs(command.project)
        state = f"; run {runs[0][0].id} is {runs[0][0].state.value}" if runs else "; no run yet"
        return Reply(f"project {command.project}: autopilot {mode.value} (set by {source}){state}")
    if person.role < Role.ADMIN:
        raise AccessDenied(f"{person.name} is an {person.role}; changing the mode needs admin")
    previous = await pilot.set_mode(command.project, command.mode, person.name)
    return Reply(
        f"project {command.project}: autopilot {command.mode.value} (was {previous.value}), "
        f"set by {person.name}"
    )


async def _start(command: RunStart, person: Person, ctx: Context) -> Reply:
    run, tasks = await ctx.pilot.start(command.project, person.name)
    mode, _ = await ctx.pilot.autopilot.mode(command.project)
    lines = [
        f"run {run.id} [{run.project}] started by {person.name} in {mode.value} mode: "
        f"{len(tasks)} tasks in {len(run.waves)} waves"
    ]
    lines += _waves(run, tasks)
    return Reply("\n".join(lines), buttons=(_run_buttons(run),))


async def _pause(command: RunPause, person: Person, ctx: Context) -> Reply:
    run = await ctx.pilot.pause(command.project, person.name)
    return Reply(
        f"run {run.id} [{run.project}] paused by {person.name}: no new tasks are handed out "
        "(work in progress carries on)",
        buttons=((Button("Resume", f"/run resume {run.project}", "primary"),),),
    )


async def _resume(command: RunResume, person: Person, ctx: Context) -> Reply:
    run = await ctx.pilot.resume(command.project, person.name)
    return Reply(
        f"run {run.id} [{run.project}] resumed by {person.name}", buttons=(_run_buttons(run),)
    )


async def _status(command: RunStatus, person: Person, ctx: Context) -> Reply:
    found = await ctx.pilot.runs(command.project)
    if not found:
        where = f" in project {command.project}" if command.project else ""
        return Reply(f"no runs{where} yet; /run start <project> starts one")
    lines: list[str] = []
    gates: list[Gate] = [g for g in await ctx.gates.pending() if g.kind == MILESTONE]
    for run, tasks in found:
        mode, _ = await ctx.pilot.autopilot.mode(run.project)
        age = ago(ctx.clock() - run.created_at)
        lines.append(
            f"run {run.id} [{run.project}] {run.state.value} ({mode.value}), started by "
            f"{run.started_by} {age} ago"
            + (f" — {run.reason}" if run.reason and not run.state.is_open else "")
        )
        decided = [await ctx.gates.find(w.gate_id) for w in run.waves if w.gate_id is not None]
        lines += _waves(run, tasks, {g.id: g for g in decided if g is not None})
        lines.append("")
    mine = [g for g in gates if g.project in {r.project for r, _ in found}]
    for gate in mine:
        lines.append(f"gate #{gate.id} waits: {gate.title}")
    buttons = tuple(_gate_buttons(g.id) for g in mine[:5])
    if len(found) == 1:
        buttons += (_run_buttons(found[0][0]),)
    return Reply("\n".join(lines).strip(), buttons=buttons)


def _waves(run: Run, tasks: Sequence[Task], gates: Mapping[int, Gate] | None = None) -> list[str]:
    """A line per wave; ``gates``: the waves' gates, to say who decided each and when."""
    lines = []
    for wave in run.waves:
        in_wave = [t for t in tasks if t.wave == wave.number]
        shown = ", ".join(f"#{t.id} {_state(t)}" for t in in_wave) or "(empty)"
        extra = f"; staging {wave.staging}" if wave.staging else ""
        extra += f"; prod {wave.prod}" if wave.prod else ""
        gate = f" (gate #{wave.gate_id})" if wave.gate_id and wave.state.value == "gate" else ""
        found = (gates or {}).get(wave.gate_id or 0)
        if found is not None and found.status in (GateStatus.APPROVED, GateStatus.REJECTED):
            extra += _decided(found)
        lines.append(f"  wave {wave.number} {wave.state.value}{gate}: {shown}{extra}")
    blocked = [t for t in tasks if t.reason.startswith("blocked: ") and not t.state.is_closed]
    for t in blocked:
        lines.append(f"  #{t.id} is {t.reason}")
    return lines


def _decided(gate: Gate) -> str:
    """``; gate #5 rejected by alice at 2026-05-01 12:00 UTC: too slow``."""
    at = f" at {utc_time(gate.decided_at)}" if gate.decided_at else ""
    why = f": {clip(gate.reason, 200)}" if gate.reason else ""
    return f"; gate #{gate.id} {gate.status.value} by {gate.decided_by or '?'}{at}{why}"


def _state(t: Task) -> str:
    if t.state.holds_agent and t.agent_id:
        return f"{t.state.value} ({t.agent_id})"
    if t.state is TaskState.REVIEW and t.gate_id:
        return f"review (gate #{t.gate_id})"
    return t.state.value


def _run_buttons(run: Run) -> tuple[Button, ...]:
    row = [Button("Status", f"/run status {run.project}")]
    if run.state.value == "running":
        row.append(Button("Pause", f"/run pause {run.project}"))
    elif run.state.value == "paused":
        row.append(Button("Resume", f"/run resume {run.project}", "primary"))
    return tuple(row)


async def _diff(command: GateDiff, person: Person, ctx: Context) -> Reply:
    from farmbot.supervisor.autopilot.milestones import gate_diff

    gate = await ctx.gates.get(command.gate)
    if gate.kind != MILESTONE:
        return Reply(
            f"gate {gate.id} is a {gate.kind} gate; only milestone gates have a diff", ok=False
        )
    what, diff = await gate_diff(ctx.pilot.autopilot, gate)
    buttons = (_gate_buttons(gate.id),) if gate.status is GateStatus.PENDING else ()
    return Reply(f"gate {gate.id}: {what}", pre=diff or "(no changes)", buttons=buttons)


SPECS: tuple[Spec[Any], ...] = (
    Spec(
        "task add",
        "/task add <project> <title> [--after <id>[,<id>…]] [--priority high|normal|low] "
        "[--body <text>] (or the body on the lines below)",
        "queue a task for the autopilot",
        Role.OPERATOR,
        AddTasks,
        parse_add,
        _add,
        parse_data=parse_add_data,
    ),
    Spec(
        "task show",
        "/task show <id>",
        "a task's state, attempts, agent, branch, commits, QA and history",
        Role.VIEWER,
        ShowTask,
        _one_task(ShowTask),
        _show,
    ),
    Spec(
        "tasks",
        "/tasks [project] [--all]",
        "open tasks first; --all adds done and cancelled ones",
        Role.VIEWER,
        ListTasks,
        _list,
        _list_tasks,
    ),
    Spec(
        "task cancel",
        "/task cancel <id>",
        "cancel a task",
        Role.OPERATOR,
        CancelTask,
        _one_task(CancelTask),
        _cancel,
    ),
    Spec(
        "task retry",
        "/task retry <id>",
        "start a failed or cancelled task over (unblocks what waits on it)",
        Role.OPERATOR,
        RetryTask,
        _one_task(RetryTask),
        _retry,
    ),
    Spec(
        "task assign",
        "/task assign <id> <agent>",
        "give a task to a builder now",
        Role.OPERATOR,
        AssignTask,
        _assign,
        _assign_it,
    ),
    Spec(
        "autopilot",
        "/autopilot <project> [off|observe|fix_forward|auto_staging|auto_prod]",
        "show a project's autopilot mode, or set it (admin)",
        Role.VIEWER,
        SetAutopilot,
        _autopilot,
        _autopilot_it,
    ),
    Spec(
        "run start",
        "/run start <project>",
        "order the project's open tasks into waves and start handing them out",
        Role.OPERATOR,
        RunStart,
        _project_command(RunStart),
        _start,
    ),
    Spec(
        "run pause",
        "/run pause <project>",
        "hand out no new tasks (work in progress carries on)",
        Role.OPERATOR,
        RunPause,
        _project_command(RunPause),
        _pause,
    ),
    Spec(
        "run resume",
        "/run resume <project>",
        "hand out tasks again",
        Role.OPERATOR,
        RunResume,
        _project_command(RunResume),
        _resume,
    ),
    Spec(
        "run status",
        "/run status [project]",
        "runs, their waves and where each task is",
        Role.VIEWER,
        RunStatus,
        _run_status,
        _status,
    ),
    Spec(
        "gate diff",
        "/gate diff <gate>",
        "the whole diff behind a milestone gate",
        Role.VIEWER,
        GateDiff,
        _gate_diff,
        _diff,
    ),
)
