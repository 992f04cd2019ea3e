"""Milestone gates: a task (or a wave) waits for a human before its work lands or goes on.

A gate shows what is decided on: the task or wave, the branch, its commits, the diffstat
and the QA result (and in wave gates the staging deploy); its buttons are Approve, Reject
and Diff -- commands, so they work on every platform and after restarts. ``Milestones``
is the gate resolver of kind ``milestone``: a gate is stale when its task or wave moved
on; a decision is carried out by the autopilot (landing now, or back to the builder).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from farmbot.config.schema import ProjectConfig
from farmbot.errors import CommandError
from farmbot.models import AutopilotMode, Decision, Gate, QaRun, Run, Task, TaskState, Wave
from farmbot.supervisor.autopilot import repo as git
from farmbot.supervisor.autopilot.builders import Checkout

if TYPE_CHECKING:
    from farmbot.supervisor.autopilot.runner import Autopilot

MILESTONE = "milestone"
COMMITS_SHOWN = 20


class Milestones:
    """The resolver of milestone gates (``gates.register(MILESTONE, Milestones(...))``)."""

    def __init__(self, autopilot: Autopilot) -> None:
        self._autopilot = autopilot

    async def stale_reason(self, gate: Gate) -> str | None:
        payload = gate.payload
        if "task" in payload:
            return await self._autopilot.task_gate_stale(gate, int(payload["task"]))
        if "run" in payload and "wave" in payload:
            return await self._autopilot.wave_gate_stale(
                gate, int(payload["run"]), int(payload["wave"])
            )
        return "this milestone gate names no task or wave"

    async def refuses(self, gate: Gate, decision: Decision) -> str | None:
        if decision.session:
            return "a milestone is approved once; --session is for an agent's own questions"
        return None

    async def apply(self, gate: Gate, decision: Decision) -> str:
        # The gate's recorded status (approved or rejected, with the reason) is the decision.
        if "task" in gate.payload:
            return await self._autopilot.decide_task(gate, int(gate.payload["task"]))
        return await self._autopilot.decide_wave(gate)


async def task_gate(
    pc: ProjectConfig, task: Task, qa: QaRun | None, checkout: Checkout
) -> tuple[str, str]:
    """The title and text of a task's milestone gate (``checkout``: where its branch is)."""
    title = f"task {task.id} is ready to land: {task.title}"
    land = _land_words(pc, task.base_branch or "?")
    lines = [
        f"task {task.id} [{task.project}] {task.title}",
        f"branch {task.branch} → {land}; by {task.agent_id}, attempt {task.attempts}",
    ]
    if task.wave is not None:
        lines.append(f"run {task.run_id}, wave {task.wave}")
    if task.note:
        lines.append(f"note: {task.note}")
    lines.append(qa_line(pc, qa))
    lines += await _changes(checkout, f"refs/heads/{task.base_branch}", task.branch or "")
    return title, "\n".join(lines)


async def wave_gate(
    pc: ProjectConfig,
    run: Run,
    wave: Wave,
    in_wave: Sequence[Task],
    qa: Mapping[int, QaRun | None],
    mode: AutopilotMode,
    checkout: Checkout,
) -> tuple[str, str]:
    """The title and text of a wave's milestone gate (``checkout``: where it landed).

    Each task with its branch, what landed and its QA result (``qa``: the run that
    verified it last, by task id), the staging deploy, then the wave's commits and
    diffstat on the base.
    """
    landed = [t for t in in_wave if t.state is TaskState.DONE]
    then = (
        "deploy it to prod and start the next wave"
        if mode is AutopilotMode.AUTO_PROD
        else ("start the next wave")
    )
    title = f"wave {wave.number} of run {run.id} [{pc.name}] landed: approve to {then}"
    lines = [f"run {run.id} [{pc.name}], wave {wave.number}: {len(landed)} tasks landed"]
    for t in sorted(in_wave, key=lambda t: (t.state is not TaskState.DONE, t.id)):
        if t.state is TaskState.DONE:
            what = f"landed {t.landed_commit[:10] if t.landed_commit else '?'}"
        else:
            what = t.state.value
        branch = f" from branch {t.branch}" if t.branch else ""
        lines.append(f"  #{t.id} {t.title} — {what}{branch}")
        if t.state is TaskState.DONE or t.qa_run_id is not None:
            lines.append(f"    {qa_line(pc, qa.get(t.id))}")
    if wave.staging:
        lines.append(f"staging: {wave.staging}")
    span = landed_span(landed)
    if span is not None:
        first, last = span
        assert first.land_base and last.landed_commit
        lines += await _changes(checkout, first.land_base, last.landed_commit, three_dots=False)
    return title, "\n".join(lines)


def landed_span(landed: Sequence[Task]) -> tuple[Task, Task] | None:
    """The first and the last of these tasks to land (on the same base), or None.

    A project's landings happen one at a time, each on the base the one before left, so
    the chain of ``land_base`` and ``landed_commit`` orders them; the clock only chooses
    between pieces of the chain (someone else's commits came in between) -- it cannot
    tell apart landings it stamped with the same time.
    """
    done = [t for t in landed if t.land_base and t.landed_commit]
    if not done:
        return None
    bases = {t.land_base for t in done}
    tips = {t.landed_commit for t in done}
    firsts = [t for t in done if t.land_base not in tips] or done
    lasts = [t for t in done if t.landed_commit not in bases] or done
    first = min(firsts, key=lambda t: t.landed_at or 0.0)
    last = max(lasts, key=lambda t: t.landed_at or 0.0)
    return first, last


async def gate_diff(autopilot: Autopilot, gate: Gate) -> tuple[str, str]:
    """A milestone gate's whole diff: (what it is, the diff)."""
    tasks = autopilot.tasks
    if "task" in gate.payload:
        task = await tasks.get_task(int(gate.payload["task"]))
        if task is None or not task.branch:
            return "no diff: the task has no branch", ""
        checkout = await autopilot.checkout(task)
        if task.state is TaskState.DONE and task.land_base and task.landed_commit:
            what = f"task {task.id} as it landed ({task.land_base[:10]}..{task.landed_commit[:10]})"
            return what, await checkout.diff(task.land_base, task.landed_commit)
        base = f"refs/heads/{task.base_branch}"
        return f"task {task.id}: {task.base_branch}...{task.branch}", await checkout.diff(
            base, task.branch
        )
    run = await autopilot.runs.get_run(int(gate.payload["run"]))
    if run is None:
        return "no diff: the run is gone", ""
    number = int(gate.payload["wave"])
    landed = [
        t for t in await tasks.run_tasks(run.id) if t.wave == number and t.state is TaskState.DONE
    ]
    span = landed_span(landed)
    if span is None:
        return f"wave {number} of run {run.id}: nothing landed", ""
    first, last = span
    base, tip = first.land_base or "", last.landed_commit or ""
    node = await autopilot.node_of(last.agent_id, run.project)
    checkout = Checkout(autopilot.builders, node, run.project)
    what = f"wave {number} of run {run.id} ({base[:10]}..{tip[:10]})"
    return what, await checkout.diff(base, tip, three_dots=False)


async def _changes(
    checkout: Checkout, base: str, head: str, *, three_dots: bool = True
) -> list[str]:
    """Commits and diffstat between ``base`` and ``head``, as lines."""
    try:
        found = await checkout.commits(base, head, limit=COMMITS_SHOWN + 1)
        stat = await checkout.diffstat(base, head, three_dots=three_dots)
    except (git.GitError, CommandError) as exc:
        return [f"(git could not show the changes: {exc})"]
    lines = [f"commits ({len(found) if len(found) <= COMMITS_SHOWN else 'more than 20'}):"]
    lines += [f"  {sha[:10]} {subject}" for sha, subject in found[:COMMITS_SHOWN]]
    lines += ["diffstat:", *(f"  {line.strip()}" for line in stat.splitlines())]
    return lines


def qa_line(pc: ProjectConfig, qa: QaRun | None) -> str:
    if not pc.verify:
        return "QA: no verify command is configured"
    if qa is None:
        return f"QA: `{pc.verify}` has not run"
    verdict = "passed" if qa.passed else "timed out" if qa.timed_out else f"failed ({qa.exit_code})"
    return f"QA: `{qa.command}` {verdict} (QA run {qa.id})"


def _land_words(pc: ProjectConfig, base: str) -> str:
    if pc.land == "command":
        return f"land_command `{pc.land_command}`"
    return f"{pc.land} {'into' if pc.land == 'merge' else 'onto'} {base}"
