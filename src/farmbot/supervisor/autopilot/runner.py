"""The autopilot: carries out what the task machine, the waves and the assigner decide.

A thin shell around ``tasks.decide``, ``waves`` and ``assigner.plan``. Each tick it looks
at every open task and open run and moves what can move: it releases tasks whose
dependencies are done, hands ready tasks to builders (spawning some, within the limits),
notices builders that finished (``farmbot task done``, or idle with new commits), died or
ran out of time, verifies finished work, opens milestone gates, lands what was approved
(or what lands by itself in the project's mode), and settles waves and runs.

Crash safety: every step is recorded before it is acted on, and every action can be
repeated. An assignment is recorded (task ``working``, its agent named, ``prompt_id``
unset) before the builder is spawned, and its prompt is queued in the same transaction
that records it; a landing is recorded (``landing``) before git runs, and landing first
checks whether the work is already on the base; a deploy is recorded (wave ``staging`` or
``prod``) before it starts and is never started twice -- one cut short is reported, not
repeated. After a restart or ``kill -9`` the next tick picks up where the rows say.

One decider at a time: the tick, the jobs' results and people's decisions take ``_lock``;
the helpers below it assume it is held. Verifications, landings and deploys run as jobs
outside it (``run`` owns them in a TaskGroup; ``step`` runs a tick and waits for them).

Where the work happens is ``builders`` (builders.py): on one node everything is here; on
a farm of nodes the autopilot runs on the leader only (``leading``) and each builder runs
on a node holding its project, where its start, verification, landing and retirement
are carried out (cluster/steps.py). What the autopilot learns about builders it reads
from the database (their rows, prompts and QA runs are shared), never from the bus.

What moves tasks -- the task machine (tasks.py), the steps, landing and the run pilot --
is imported by the method that first needs it: with no task and no run (a farm that does
not use the autopilot) none of it is loaded (the package docstring says why).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from farmbot.bus import EventBus
from farmbot.config.schema import DEFAULT_TASK_PROMPT, Config, ProjectConfig
from farmbot.errors import (
    CommandError,
    NodeUnreachable,
    NotFound,
    StepInterrupted,
    StorageError,
    TmuxError,
)
from farmbot.events import TaskNotLanded
from farmbot.models import (
    Agent,
    AgentKind,
    AgentState,
    AutopilotMode,
    DesiredState,
    Gate,
    GateStatus,
    PromptStatus,
    QaRun,
    Task,
    TaskState,
)
from farmbot.storage.agents import AgentStore
from farmbot.storage.prompts import PromptStore
from farmbot.storage.qa_runs import QaRunStore
from farmbot.storage.runs import RunStore
from farmbot.storage.tasks import PromptDraft, TaskStore
from farmbot.supervisor.agents import Supervisor
from farmbot.supervisor.autopilot import milestones
from farmbot.supervisor.autopilot import repo as git
from farmbot.supervisor.autopilot.builders import Builders, Checkout
from farmbot.supervisor.gates import Gates
from farmbot.supervisor.prompts import clean_prompt

if TYPE_CHECKING:
    from farmbot.supervisor.autopilot import landing
    from farmbot.supervisor.autopilot import tasks as tm
    from farmbot.supervisor.autopilot.pilot import RunPilot

log = logging.getLogger(__name__)

JOB_BACKOFF = 30.0  # seconds before a task whose job broke unexpectedly is tried again
Job = Coroutine[Any, Any, None]


@dataclass(slots=True)
class View:
    """What one tick looks at."""

    tasks: dict[int, Task]  # open tasks
    known: dict[int, Task]  # ... and the closed ones they depend on
    agents: dict[str, Agent]
    queued: set[str]  # agents with prompts waiting


class Autopilot:
    """Tasks, runs and the assigner of every project; see the module docstring."""

    def __init__(
        self,
        config: Config,
        *,
        tasks: TaskStore,
        runs: RunStore,
        agents: AgentStore,
        prompts: PromptStore,
        qa_runs: QaRunStore,
        supervisor: Supervisor,
        builders: Builders,
        gates: Gates,
        bus: EventBus,
        wake_delivery: Callable[[], None] = lambda: None,
        leading: Callable[[], bool] = lambda: True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``leading``: whether this node's autopilot is the one that decides (the
        leader's; with one node, always)."""
        self.config = config
        self.tasks = tasks
        self.runs = runs
        self.agents = agents
        self.bus = bus
        self.gates = gates
        self.supervisor = supervisor
        self.builders = builders
        self.clock = clock
        self.leading = leading
        self._prompts = prompts
        self._qa_runs = qa_runs
        self._wake_delivery = wake_delivery
        self.lock = asyncio.Lock()  # one decider at a time; jobs run outside it
        self._landing: dict[str, asyncio.Lock] = {}  # one landing per project at a time
        self._busy: set[int] = set()  # tasks whose verification or landing runs now
        self._later: dict[int, float] = {}  # task -> not before (its job or start broke)
        self._queued: list[Job] = []  # jobs started outside a tick, for the loop to run
        self.mine: set[str] = set()  # the autopilot's builders
        self.busy_waves: set[tuple[int, int]] = set()  # waves whose deploy runs now (pilot's)
        self._wake = asyncio.Event()
        self.ticks = 0
        self.assigned = 0
        self.verified = 0
        self.landed = 0

    def __repr__(self) -> str:
        stats = " ".join(f"{k}={v}" for k, v in self.statistics().items())
        return f"<Autopilot {stats}>"

    def reconfigure(self, config: Config) -> None:
        """A reloaded config, from the next tick on (a task of a project that left is left
        alone, as at start)."""
        self.config = config

    def statistics(self) -> dict[str, int | float | str]:
        return {
            "ticks": self.ticks,
            "assigned": self.assigned,
            "verified": self.verified,
            "landed": self.landed,
            "jobs": len(self._busy) + len(self.busy_waves),
        }

    @functools.cached_property
    def pilot(self) -> RunPilot:
        """The run pilot (pilot.py), built when a run is first looked at."""
        from farmbot.supervisor.autopilot.pilot import RunPilot

        return RunPilot(self)

    async def load(self) -> None:
        """Take up the builders the autopilot spawned before a restart (or, on a farm,
        those another leader spawned)."""
        self.mine = set(await self.tasks.autopilot_agents())

    def owns(self, agent_id: str) -> bool:
        """Whether the autopilot spawned this builder (it verifies their work itself)."""
        return agent_id in self.mine

    def adopt(self, agent_id: str) -> None:
        """A builder was started for the autopilot on this node (perhaps by another's)."""
        self.mine.add(agent_id)

    def wake(self) -> None:
        """Tick now rather than at the next period."""
        self._wake.set()

    def later(self, task_id: int) -> None:
        """Leave a task alone for a while (what was tried on it broke)."""
        self._later[task_id] = self.clock() + JOB_BACKOFF

    def resting(self, task_id: int) -> bool:
        """Whether a task is being left alone for a while."""
        return self._later.get(task_id, 0.0) > self.clock()

    # -- the loop -------------------------------------------------------------------------
    async def run(self, every: float) -> None:
        """Tick every ``every`` seconds (sooner when woken), running the jobs it starts."""
        try:
            await self.load()  # a term as leader: another leader may have spawned builders
        except StorageError as exc:
            log.warning("autopilot: could not read its builders: %s", exc)
        async with asyncio.TaskGroup() as group:
            while True:
                self._wake.clear()
                for job in await self._safe_tick():
                    group.create_task(job)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(every):
                        await self._wake.wait()

    async def step(self) -> None:
        """One tick, then wait for the jobs it started (one turn of ``run``)."""
        await asyncio.gather(*await self._safe_tick())

    async def _safe_tick(self) -> list[Job]:
        try:
            jobs = await self.tick()
        except (StorageError, TmuxError, git.GitError, CommandError) as exc:
            log.warning("autopilot tick failed: %s", exc)
            jobs = []
        except Exception:  # this loop's one boundary: log, and keep piloting
            log.exception("autopilot tick failed; it runs again next period")
            jobs = []
        queued, self._queued = self._queued, []
        return [*queued, *jobs]

    async def tick(self) -> list[Job]:
        """Move every open task and run as far as it can go now; return the jobs to run."""
        self.ticks += 1
        jobs: list[Job] = []
        async with self.lock:
            view = await self.view()
            for task in view.tasks.values():
                if task.id in self._busy or self.resting(task.id):
                    continue
                if self.config.project(task.project) is None:
                    continue  # its project left the configuration: nothing to do with it
                try:
                    job = await self._watch(task, view)
                except (git.GitError, TmuxError, CommandError) as exc:  # this task only
                    log.warning("task %s: %s; tried again later", task.id, exc)
                    self.later(task.id)
                    continue
                if job is not None:
                    jobs.append(job)
            for pc in self.config.projects:
                run = await self.runs.open_run(pc.name)
                if run is not None:
                    jobs += await self.pilot.step(pc, run)
        return jobs

    async def view(self) -> View:
        open_tasks = {t.id: t for t in await self.tasks.open_tasks()}
        needed = {d for t in open_tasks.values() for d in t.depends_on} - open_tasks.keys()
        known = {**await self.tasks.get_tasks(needed), **open_tasks}
        agents = {a.id: a for a in await self.agents.list_agents()}
        queued = {p.agent_id for p in await self._prompts.pending_prompts()}
        return View(open_tasks, known, agents, queued)

    # -- the project --------------------------------------------------------------------
    def project(self, name: str) -> ProjectConfig:
        pc = self.config.project(name)
        if pc is None:
            known = sorted(p.name for p in self.config.projects)
            shown = f" (known: {', '.join(known)})" if known else " (none are configured)"
            raise NotFound(f"unknown project '{name}'{shown}")
        return pc

    async def mode(self, project: str) -> tuple[AutopilotMode, str]:
        """The project's mode, and who set it (or "the configuration")."""
        pc = self.project(project)
        setting = await self.runs.get_mode(project)
        if setting is None:
            return pc.autopilot, "the configuration"
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(setting.set_at))
        return setting.mode, f"{setting.set_by} at {when}"

    async def policy(self, project: str) -> tm.Policy:
        from farmbot.supervisor.autopilot import tasks as tm

        mode, _ = await self.mode(project)
        sup = self.config.supervisor
        return tm.Policy(mode, sup.max_attempts, sup.task_timeout)

    async def base_of(self, pc: ProjectConfig, node: str = "") -> tuple[str, str] | None:
        """The project's base branch and its tip in ``node``'s checkout (a node holding
        the project when not given), or None when there is none."""
        from farmbot.supervisor.autopilot.steps import Base

        return await self.builders.run(node or await self.builders.holder(pc.name), Base(pc.name))

    async def node_of(self, agent_id: str | None, project: str) -> str:
        """The node a builder runs on (or was placed on); a node holding the project when
        it is not known."""
        agent = await self.agents.get_agent(agent_id) if agent_id else None
        if agent is not None and agent.node:
            return agent.node
        reserved = (await self.tasks.autopilot_agents()).get(agent_id or "")
        if reserved is not None and reserved.node:
            return reserved.node
        return await self.builders.holder(project)

    async def checkout(self, task: Task) -> Checkout:
        """The checkout that holds the task's branch: the one of its builder's node."""
        return Checkout(
            self.builders, await self.node_of(task.agent_id, task.project), task.project
        )

    async def step_key(self, task: Task, what: str) -> str | None:
        """The key of a step carrying out the task's current state (None with one node):
        asked again under it, the step is not done twice (builders.Builders.run)."""
        if not self.builders.durable:
            return None
        entries = [h.id for h in await self.tasks.history(task.id) if h.state is task.state]
        return f"autopilot:task-{task.id}:{what}:{entries[-1] if entries else 0}"

    # -- moving a task (the lock is held) ----------------------------------------------
    async def move(self, task: Task, happening: tm.Happening) -> Task | None:
        """Decide and carry out one move; None when the task moved on meanwhile.

        Raises ``tasks.NotNow`` when the happening does not apply to the task's state.
        """
        from farmbot.supervisor.autopilot import tasks as tm

        now = self.clock()
        step = tm.decide(task, happening, await self.policy(task.project), now)
        if step.retire is not None:
            await self._retire(step.retire)  # first: a crash now leaves a task to retry
        draft = None
        if step.prompt is not None and step.task.agent_id is not None:
            draft = PromptDraft(step.task.agent_id, self._clean(step.prompt), _source(task))
        stored = await self.tasks.update_task(
            step.task, task.state, step.by, step.detail, now, prompt=draft
        )
        if stored is None:
            return None
        if step.stale_gate is not None:
            gate = await self.gates.find(step.stale_gate[0])
            if gate is not None and gate.status is GateStatus.PENDING:
                await self.gates.mark_stale(gate, step.stale_gate[1])
        for event in step.events:
            await self.bus.publish(event)
        if draft is not None:
            self._wake_delivery()
        self.wake()
        return stored

    async def note(self, task: Task, detail: str = "", **changes: Any) -> Task | None:
        """Record fields of a task without moving it (a history line only with ``detail``)."""
        fresh = dataclasses.replace(task, **changes)
        return await self.tasks.update_task(fresh, task.state, "autopilot", detail, self.clock())

    def _clean(self, text: str) -> str:
        limit = self.config.supervisor.prompt_max_bytes
        try:
            return clean_prompt(text, limit).text
        except CommandError:  # too long: keep the start, where the task is named
            cut = text.encode("utf-8")[: limit - 64].decode("utf-8", "ignore")
            return clean_prompt(cut + "\n… (cut to fit)", limit).text

    async def _retire(self, agent_id: str) -> None:
        """Stop one of the autopilot's builders and remove its worktree (the branch stays)."""
        from farmbot.supervisor.autopilot.steps import Retire

        agent = await self.agents.get_agent(agent_id)
        if agent_id not in self.mine or agent is None:
            return  # a person's builder is theirs to stop
        try:
            await self.builders.run(
                agent.node or self.builders.here, Retire(agent.project, agent_id)
            )
        except (CommandError, TmuxError) as exc:
            log.warning("could not retire %s: %s", agent_id, exc)

    async def agent_free(self, task: Task) -> bool:
        """Whether the task's agent is alive and holds no other task (so it takes a fix)."""
        agent = await self.agents.get_agent(task.agent_id or "")
        if agent is None or agent.desired is DesiredState.STOPPED or not agent.state.is_live:
            return False
        holding = await self.tasks.list_tasks(
            task.project, (TaskState.WORKING, TaskState.VERIFYING)
        )
        return not any(t.agent_id == agent.id and t.id != task.id for t in holding)

    # -- watching one task --------------------------------------------------------------
    async def _watch(self, task: Task, view: View) -> Job | None:
        from farmbot.supervisor.autopilot import tasks as tm

        if task.state is TaskState.WORKING:
            await self._watch_working(task, view)
        elif task.state is TaskState.VERIFYING:
            self._busy.add(task.id)
            return self._job(task.id, self._verify(task.id))
        elif task.state is TaskState.REVIEW:
            return await self._watch_review(task)
        elif task.state is TaskState.LANDING:
            # Nothing is landing it (landings of this process are busy): a restart cut it
            # short. A git landing runs again (it sees work that already landed); a
            # land_command may have run, so a person decides.
            # Recorded steps (a farm of nodes) are found again: the landing is taken up.
            if self.project(task.project).land == "command" and not self.builders.durable:
                why = "the land command was cut short (farmbot restarted); it may have run"
                await self.move(task, tm.LandRefused(why))
            else:
                self._busy.add(task.id)
                return self._job(task.id, self._land(task.id, "autopilot"))
        return None

    async def _watch_working(self, task: Task, view: View) -> None:
        from farmbot.supervisor.autopilot import tasks as tm

        agent = view.agents.get(task.agent_id or "")
        if task.prompt_id is None:
            await self.hand_over(task, agent)
            return
        if agent is None or agent.desired is DesiredState.STOPPED or not agent.state.is_live:
            if agent is None:
                why = f"{task.agent_id} is gone"
            elif agent.desired is DesiredState.STOPPED:
                why = f"{agent.id} was stopped ({agent.state_reason})"
            else:
                why = f"{agent.id} died: {agent.state_reason}"
            await self.move(task, tm.Lost(why, task.agent_id))
            return
        now = self.clock()
        timeout = self.config.supervisor.task_timeout
        if agent.state is AgentState.PAUSED or (agent.paused_until or 0.0) > now:
            until = (agent.paused_until or now) + timeout
            if task.deadline is None or task.deadline < until:
                await self.note(task, deadline=until)  # a usage limit is not slowness
            return
        if task.deadline is not None and now > task.deadline:
            why = f"the attempt took longer than task_timeout ({_minutes(timeout)})"
            await self.move(task, tm.Lost(why, task.agent_id))
            return
        if agent.state is not AgentState.IDLE or agent.id in view.queued:
            return
        prompt = await self._prompts.get_prompt(task.prompt_id)
        if prompt is None or prompt.status is not PromptStatus.DELIVERED:
            return
        if agent.state_since < (prompt.delivered_at or now):
            return  # idle since before it got its prompt
        ahead = await self._ahead(task)
        if ahead:
            said = f"went idle with {ahead} new commit{'s' if ahead > 1 else ''}"
            await self.move(task, tm.Finish(agent.id, said))

    async def _ahead(self, task: Task) -> int:
        if not task.branch or not task.base_branch:
            return 0
        checkout = await self.checkout(task)
        return len(await checkout.commits(f"refs/heads/{task.base_branch}", task.branch))

    async def hand_over(self, task: Task, agent: Agent | None) -> None:
        """Carry out a recorded assignment: the builder, its branch, then the task prompt.

        Each step looks at what is there first, so a tick after a crash finishes it; the
        builder is started on the node it was placed on (its reservation says which).
        """
        from farmbot.supervisor.autopilot import tasks as tm
        from farmbot.supervisor.autopilot.steps import Start

        pc = self.project(task.project)
        agent_id = task.agent_id
        assert agent_id is not None and task.branch and task.base_branch
        if agent is not None and agent.desired is DesiredState.STOPPED and agent_id in self.mine:
            agent = None  # one of ours, retired: spawned afresh under its name
        if agent is not None and (agent.desired is DesiredState.STOPPED or not agent.state.is_live):
            await self.move(task, tm.Lost(f"{agent_id} was gone before it got the task", None))
            return
        reserved = (await self.tasks.autopilot_agents()).get(agent_id)
        if agent is None and reserved is None:
            await self.move(task, tm.Lost(f"{agent_id} is gone", None))
            return
        node = (agent.node if agent is not None else "") or (reserved.node if reserved else "")
        number = agent.number if agent is not None else reserved.number if reserved else None
        start = task.base_commit or f"refs/heads/{task.base_branch}"
        step = Start(pc.name, task.id, agent_id, number or 0, task.branch, start)
        try:
            await self.builders.run(
                node or self.builders.here, step, await self.step_key(task, "start")
            )
            agent = await self.agents.get_agent(agent_id)
            if agent is None:
                raise NotFound(f"{agent_id} was started but has no row")
        except (CommandError, TmuxError, git.GitError) as exc:
            log.warning("task %s: could not hand it to %s: %s", task.id, agent_id, exc)
            await self.move(task, tm.Unassign(f"could not start it on {agent_id}: {exc}"))
            self.later(task.id)
            return
        profile = self.config.agents.get(agent.profile)
        template = profile.task_prompt if profile is not None else DEFAULT_TASK_PROMPT
        draft = PromptDraft(agent.id, self._clean(tm.task_prompt(template, task)), _source(task))
        stored = await self.tasks.update_task(
            task, task.state, "autopilot", "", self.clock(), prompt=draft
        )
        if stored is not None:
            self.assigned += 1
            self._wake_delivery()

    async def _watch_review(self, task: Task) -> Job | None:
        gate = await self.gates.find(task.gate_id) if task.gate_id is not None else None
        if gate is None or gate.status is GateStatus.STALE:
            await self._open_task_gate(task)
            return None
        if gate.status is GateStatus.PENDING:
            return None
        # Decided, but not carried out: farmbot stopped in between.
        moved = await self._carry_out(task, gate)
        if moved is not None and moved.state is TaskState.LANDING:
            self._busy.add(task.id)
            return self._job(task.id, self._land(task.id, gate.decided_by or "?"))
        return None

    async def _open_task_gate(self, task: Task) -> None:
        pc = self.project(task.project)
        title, detail = await milestones.task_gate(
            pc, task, await self.qa_run(task), await self.checkout(task)
        )
        gate = await self.gates.open(
            milestones.MILESTONE,
            title,
            agent_id=task.agent_id,
            project=task.project,
            detail=detail,
            payload={"task": task.id},
        )
        await self.note(task, gate_id=gate.id)

    async def qa_run(self, task: Task) -> QaRun | None:
        """The QA run that verified the task last, if any."""
        if task.qa_run_id is None or task.agent_id is None:
            return None
        runs = await self._qa_runs.recent_qa_runs(50, task.agent_id)
        return next((r for r in runs if r.id == task.qa_run_id), None)

    async def _carry_out(self, task: Task, gate: Gate) -> Task | None:
        from farmbot.supervisor.autopilot import tasks as tm

        by = gate.decided_by or "?"
        if gate.status is GateStatus.APPROVED:
            return await self.move(task, tm.Approve(by))
        return await self.move(task, tm.Reject(by, gate.reason, await self.agent_free(task)))

    # -- jobs (outside the lock) --------------------------------------------------------
    def _job(self, task_id: int, work: Coroutine[Any, Any, Any]) -> Job:
        async def job() -> None:
            try:
                await work
            except (NodeUnreachable, StepInterrupted) as exc:  # its node is away: wait for it
                log.warning("task %s: %s; tried again later", task_id, exc)
                self.later(task_id)
            except Exception:  # one job's bug must not stop the autopilot
                log.exception("autopilot job for task %s failed; retried later", task_id)
                self.later(task_id)
            finally:
                self._busy.discard(task_id)

        return job()

    async def _verify(self, task_id: int) -> None:
        from farmbot.supervisor.autopilot import tasks as tm
        from farmbot.supervisor.autopilot.steps import Verify

        task = await self.tasks.get_task(task_id)
        if task is None or task.state is not TaskState.VERIFYING:
            return
        pc = self.project(task.project)
        agent = await self.agents.get_agent(task.agent_id or "")
        run = None
        if pc.verify and agent is not None:  # in its worktree, on its node
            verify = Verify(pc.name, task.id, agent.id)
            node = agent.node or self.builders.here
            run = await self.builders.run(node, verify, await self.step_key(task, "verify"))
        self.verified += 1
        async with self.lock:
            fresh = await self.tasks.get_task(task_id)
            if fresh is None or fresh.state is not TaskState.VERIFYING:
                return
            verdict = tm.Verified(
                passed=run is None or bool(run.passed),
                qa_run_id=run.id if run is not None else None,
                command=pc.verify or "",
                output=run.output_tail if run is not None else "",
                agent_free=await self.agent_free(fresh),
            )
            moved = await self.move(fresh, verdict)
        if moved is not None and moved.state is TaskState.LANDING:
            await self._land(moved.id, "autopilot")

    async def _land(self, task_id: int, by: str) -> Task | None:
        """Land a task recorded as landing; the task as it is afterwards."""
        task = await self.tasks.get_task(task_id)
        if task is None:
            return None
        pc = self.project(task.project)
        async with self._landing.setdefault(pc.name, asyncio.Lock()):
            task = await self.tasks.get_task(task_id)
            if task is None or task.state is not TaskState.LANDING:
                return task
            result = await self._do_land(pc, task)
        async with self.lock:
            fresh = await self.tasks.get_task(task_id)
            if fresh is None or fresh.state is not TaskState.LANDING:
                return fresh
            return await self._landed(fresh, result, by)

    async def _do_land(self, pc: ProjectConfig, task: Task) -> landing.Landing:
        """Land it in the repository that holds its branch (its builder's node)."""
        from farmbot.supervisor.autopilot import landing
        from farmbot.supervisor.autopilot.steps import Land

        step = Land(pc.name, task.id, command=pc.land == "command")
        node = await self.node_of(task.agent_id, task.project)
        try:
            return await self.builders.run(node, step, await self.step_key(task, "land"))
        except StepInterrupted as exc:  # a land command that may have run: a person decides
            return landing.Landing("refused", f"{exc}; the land command may have run")

    async def _landed(self, task: Task, result: landing.Landing, by: str) -> Task | None:
        from farmbot.supervisor.autopilot import tasks as tm

        if result.outcome == "landed":
            done = tm.Landed(result.base, result.commit, result.commits, result.how, by)
            moved = await self.move(task, done)
            if moved is not None:
                self.landed += 1
                if result.how == "land_command" and result.detail:
                    moved = await self.note(moved, note=result.detail[-500:]) or moved
            return moved
        if result.outcome == "conflict":
            free = await self.agent_free(task)
            failed = tm.LandFailed(result.detail, free, land_command=result.how == "land_command")
            moved = await self.move(task, failed)
            to = (task.agent_id or "?") if free else "the next free builder"
        else:
            moved = await self.move(task, tm.LandRefused(result.detail))
            to = "review"
        await self.bus.publish(
            TaskNotLanded(
                project=task.project,
                agent_id=task.agent_id,
                task_id=task.id,
                title=task.title,
                detail=result.detail,
                to=to,
                refused=result.outcome == "refused",
            )
        )
        return moved

    async def give(
        self, pc: ProjectConfig, task: Task, agent_id: str | None, by: str
    ) -> Task | None:
        """Record an assignment, then carry it out (``agent_id`` None: a new builder).

        A new builder is placed first (``Builders.place``: the node where the task's branch
        is, else the least-loaded node holding the project), and the task branches from
        the base in that node's checkout. Only the deciding autopilot carries it out; on
        another node the assignment is recorded and the leader's next tick hands it over.
        """
        from farmbot.supervisor.autopilot import tasks as tm

        if agent_id is None:
            home = await self.node_of(task.agent_id, pc.name) if task.branch else None
            node = await self.builders.place(pc.name, home)
        else:
            node = await self.node_of(agent_id, pc.name)
        base = await self.base_of(pc, node)
        if base is None:
            log.warning("project %s: no base branch to branch task %s from", pc.name, task.id)
            return None
        if agent_id is None:
            agent_id = await self._reserve(pc, node)
        branch = f"farmbot/task-{task.id}"
        moved = await self.move(task, tm.Assign(agent_id, branch, base[0], base[1], by))
        if moved is not None and self.leading():
            await self.hand_over(moved, await self.agents.get_agent(agent_id))
            moved = await self.tasks.get_task(task.id)
        return moved

    async def _reserve(self, pc: ProjectConfig, node: str) -> str:
        """Name a new builder for the project and record it as the autopilot's, on
        ``node``, before it is spawned there."""
        reserved = await self.tasks.autopilot_agents()
        numbers = [r.number for r in reserved.values() if r.project == pc.name]
        numbers += [
            a.number
            for a in await self.agents.list_agents(pc.name)
            if a.kind is AgentKind.BUILDER and a.number is not None
        ]
        number = max(numbers, default=0) + 1
        agent_id = self.supervisor.agent_id(AgentKind.BUILDER, number, pc.name)
        await self.tasks.reserve_agent(agent_id, pc.name, number, self.clock(), node=node)
        self.mine.add(agent_id)
        return agent_id

    # -- gates: milestones.Milestones resolves them through these -----------------------
    async def task_gate_stale(self, gate: Gate, task_id: int) -> str | None:
        task = await self.tasks.get_task(task_id)
        if task is None:
            return f"task {task_id} does not exist"
        if task.state is not TaskState.REVIEW:
            return f"task {task_id} is {task.state.value}, not waiting for review"
        if task.gate_id != gate.id:
            return f"task {task_id} waits at gate {task.gate_id} now"
        return None

    async def wave_gate_stale(self, gate: Gate, run_id: int, number: int) -> str | None:
        return await self.pilot.wave_gate_stale(gate, run_id, number)

    async def decide_wave(self, gate: Gate) -> str:
        """Carry out a decided wave gate (a person's decision)."""
        if not self.leading():
            return _by_the_leader(gate)
        async with self.lock:
            job = await self.pilot.decided_wave(gate)
        run, number = gate.payload.get("run"), gate.payload.get("wave")
        if job is not None:
            self.queue_job(job)
            return f"wave {number} of run {run}: deploying to prod"
        if gate.status is GateStatus.APPROVED:
            return f"wave {number} of run {run} is done; the next wave may start"
        return f"wave {number} of run {run} goes back to its builders, with the reason"

    def queue_job(self, job: Job) -> None:
        """Run ``job`` in the loop's TaskGroup (it is started outside a tick)."""
        self._queued.append(job)
        self.wake()

    async def decide_task(self, gate: Gate, task_id: int) -> str:
        """Carry out a decided task gate: land the work now, or send it back."""
        if not self.leading():
            return _by_the_leader(gate)
        async with self.lock:
            task = await self.tasks.get_task(task_id)
            if task is None or task.state is not TaskState.REVIEW or task.gate_id != gate.id:
                state = task.state.value if task else "gone"
                return f"task {task_id} is {state}; nothing more to do"
            moved = await self._carry_out(task, gate)
            if moved is None:
                return f"task {task_id} had moved on"
            if moved.state is not TaskState.LANDING:
                to = moved.agent_id if moved.state is TaskState.WORKING else "the next free builder"
                return f"task {task_id} goes back to {to}, with the reason as its next prompt"
            self._busy.add(task_id)
        try:
            after = await self._land(task_id, gate.decided_by or "?")
        except (NodeUnreachable, StepInterrupted) as exc:
            self.later(task_id)
            return f"task {task_id} is approved but does not land yet: {exc}; it lands later"
        finally:
            self._busy.discard(task_id)
        if after is not None and after.state is TaskState.DONE and after.landed_commit:
            how = _how(self.project(after.project), after)
            tip = after.landed_commit[:10]
            return f"task {task_id} landed ({how}): {after.base_branch} is at {tip}"
        if after is None:
            return f"task {task_id} did not land: it is gone"
        return f"task {task_id} did not land: {_not_landed(after)}"


def _by_the_leader(gate: Gate) -> str:
    """What a node that does not decide says of a decision it recorded."""
    return (
        f"gate {gate.id} is {gate.status.value}; the autopilot on the leading node carries"
        " it out (/run status shows it)"
    )


def _not_landed(task: Task) -> str:
    """Why an approved task did not land, and where it went (its reason says why)."""
    why = task.reason.removeprefix("did not land: ")
    if task.state is TaskState.WORKING:
        return f"{why}\nIt goes back to {task.agent_id}, with that as its next prompt."
    if task.state is TaskState.REVIEW:
        return f"{why}\nIt waits for review again."
    return why


def _source(task: Task) -> str:
    return f"autopilot:task-{task.id}"


def _how(pc: ProjectConfig, task: Task) -> str:
    if pc.land == "command":
        return "land_command"
    return f"{pc.land} {'into' if pc.land == 'merge' else 'onto'} {task.base_branch}"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"
