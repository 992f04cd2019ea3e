"""The run pilot: each open run's progress, one tick at a time.

Within a run it releases tasks whose dependencies are done (or blocks them, saying why,
once per cause), has the assigner hand ready tasks to builders, settles waves -- a gate,
a deploy, or closing, as the project's mode says -- and finishes the run when nothing
more can happen in it. The caller (``Autopilot.tick``, or a person's decision) holds the
autopilot's lock. A deploy is recorded (wave ``staging`` or ``prod``, and its number)
before it starts, so it never starts twice; one that a restart cut short is reported, not
repeated. On a farm of nodes it runs on a node holding the project, as a recorded step: a
new leader finds a deploy its predecessor started and waits for its end instead.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from farmbot.config.schema import ProjectConfig
from farmbot.errors import NodeUnreachable, StepInterrupted
from farmbot.events import Deployed, RunBlocked, RunFinished, WaveDone
from farmbot.models import (
    AgentKind,
    AgentState,
    AutopilotMode,
    DesiredState,
    Gate,
    GateStatus,
    Run,
    RunState,
    Task,
    TaskState,
    Wave,
    WaveState,
)
from farmbot.supervisor import shell
from farmbot.supervisor.autopilot import assigner, milestones, waves
from farmbot.supervisor.autopilot import tasks as tm
from farmbot.supervisor.autopilot.builders import Checkout
from farmbot.supervisor.autopilot.steps import Deploy

if TYPE_CHECKING:
    from farmbot.supervisor.autopilot.runner import Autopilot, Job

log = logging.getLogger(__name__)

CUT_SHORT = "cut short (farmbot restarted) and not run again: run it by hand if needed"
BLOCKED = "blocked: "


class RunPilot:
    """Moves open runs along; see the module docstring."""

    def __init__(self, autopilot: Autopilot) -> None:
        self.ap = autopilot
        self.busy_waves = autopilot.busy_waves  # waves whose deploy runs now (its statistics)
        self._waiting: dict[str, str] = {}  # project -> why its tasks are not handed out

    # -- runs and waves (the lock is held) ------------------------------------------------
    async def step(self, pc: ProjectConfig, run: Run) -> list[Job]:
        """Release, block, assign and settle within one open run."""
        ap = self.ap
        policy = await ap.policy(pc.name)
        view = await ap.view()
        run_tasks = await ap.tasks.run_tasks(run.id)
        known = {**view.known, **{t.id: t for t in run_tasks}}
        run = await self._reopen_waves(run, run_tasks, known)
        if run.state is RunState.RUNNING and policy.mode is not AutopilotMode.OFF:
            for task in run_tasks:
                await self._release(run, task, known, policy)
            await self._assign(pc, run)
        run_tasks = await ap.tasks.run_tasks(run.id)
        known.update({t.id: t for t in run_tasks})
        jobs = []
        for wave in run.waves:
            job = await self._settle(pc, run, wave, run_tasks, known, policy)
            if job is not None:
                jobs.append(job)
        fresh = await ap.runs.get_run(run.id)
        if fresh is not None and fresh.state.is_open:
            result = waves.outcome(run_tasks, fresh.waves, known)
            if result.finished:
                await self._finish(fresh, result)
        return jobs

    async def _reopen_waves(
        self, run: Run, run_tasks: Sequence[Task], known: dict[int, Task]
    ) -> Run:
        """A closed wave whose tasks are live again (one was retried) opens again."""
        ap = self.ap
        changed = False
        for wave in run.waves:
            if wave.state is not WaveState.CLOSED:
                continue
            if any(
                t.wave == wave.number and not t.state.is_closed and not waves.is_blocked(t, known)
                for t in run_tasks
            ):
                fresh = dataclasses.replace(
                    wave, state=WaveState.OPEN, gate_id=None, closed_at=None
                )
                changed |= (
                    await ap.runs.set_wave(fresh, expect=wave.state, now=ap.clock()) is not None
                )
        return (await ap.runs.get_run(run.id) or run) if changed else run

    async def _release(
        self, run: Run, task: Task, known: dict[int, Task], policy: tm.Policy
    ) -> None:
        ap = self.ap
        if task.state not in (TaskState.PENDING, TaskState.READY):
            return
        ready = waves.readiness(task, known, policy.mode, run.waves)
        current: Task | None = task
        if task.state is TaskState.PENDING and ready.ready:
            current = await ap.move(task, tm.Release())
        elif task.state is TaskState.READY and not ready.ready:
            current = await ap.move(task, tm.Hold(_waits(ready)))
        if current is None:
            return
        known[task.id] = current
        why = _waits(ready) if ready.blocked_by else ""
        if ready.blocked_by and current.reason != why:  # told once per cause
            noted = await ap.note(current, why, reason=why)
            if noted is not None:
                known[task.id] = noted
                await ap.bus.publish(
                    RunBlocked(
                        project=run.project,
                        run_id=run.id,
                        task_id=task.id,
                        title=task.title,
                        blocked_by=ready.blocked_by,
                        reason=why,
                    )
                )
        elif not ready.blocked_by and current.reason.startswith(BLOCKED):
            known[task.id] = await ap.note(current, reason="") or current

    async def _assign(self, pc: ProjectConfig, run: Run) -> None:
        ap = self.ap
        ready = [
            t
            for t in await ap.tasks.run_tasks(run.id)
            if t.state is TaskState.READY and not ap.resting(t.id)
        ]
        if not ready:
            return
        active = {p.name: p.active for p in await ap.supervisor.projects()}
        if not active.get(pc.name, True):
            return  # deactivated: no new builders, no new work
        view = await ap.view()
        holding = {t.agent_id for t in view.tasks.values() if t.state.holds_agent}
        now = ap.clock()
        agents = list(view.agents.values())
        up = await ap.builders.up()  # a builder on a node not heard from takes nothing
        free = [
            assigner.Builder(a.id, a.project, a.profile)
            for a in agents
            if a.id in ap.mine
            and (up is None or a.node in up)
            and a.project == pc.name
            and a.desired is DesiredState.RUNNING
            and a.state is AgentState.IDLE
            and (a.paused_until or 0.0) <= now
            and a.id not in view.queued
            and a.id not in holding
        ]
        live = [a for a in agents if a.desired is DesiredState.RUNNING and a.state.is_live]
        sup = ap.config.supervisor
        builders = [a for a in live if a.project == pc.name and a.kind is AgentKind.BUILDER]
        capacity = assigner.Capacity(
            max_agents=sup.max_agents,
            running_agents=len(live),
            max_builders={pc.name: pc.max_builders or sup.max_builders},
            running_builders={pc.name: len(builders)},
            profile_of={pc.name: pc.agent or sup.default_agent},
            paused_profiles={
                a.profile
                for a in agents
                if a.state is AgentState.PAUSED or (a.paused_until or 0.0) > now
            },
        )
        plan = assigner.plan(ready, free, capacity)
        by_id = {t.id: t for t in ready}
        try:
            for pick in plan.picks:
                await ap.give(pc, by_id[pick.task_id], pick.agent_id, "autopilot")
        except NodeUnreachable as exc:  # no node holding the project is up: wait for one
            if self._waiting.get(pc.name) != str(exc):
                log.warning("project %s: no task handed out: %s", pc.name, exc)
            self._waiting[pc.name] = str(exc)
        else:
            self._waiting.pop(pc.name, None)

    async def _settle(
        self,
        pc: ProjectConfig,
        run: Run,
        wave: Wave,
        run_tasks: Sequence[Task],
        known: dict[int, Task],
        policy: tm.Policy,
    ) -> Job | None:
        ap = self.ap
        key = (run.id, wave.number)
        if key in self.busy_waves:
            return None
        in_wave = [t for t in run_tasks if t.wave == wave.number]
        if wave.state is WaveState.OPEN and in_wave and waves.settled(in_wave, known):
            nxt = waves.after_settled(in_wave, policy.mode, has_staging=bool(pc.deploy_staging))
            if nxt.state is WaveState.CLOSED:
                await self._close_wave(run, wave, in_wave, known, "autopilot")
            elif nxt.state is WaveState.GATE:
                await self._open_wave_gate(pc, run, wave, in_wave)
            else:
                return await self._start_deploy(pc, run, wave, WaveState.STAGING)
        elif wave.state in (WaveState.STAGING, WaveState.PROD):
            # Nothing here deploys it: a restart cut it short -- or, on a farm of nodes,
            # another leader started it, and the recorded step is taken up.
            if ap.builders.durable:
                return self._deploy_job(pc, run, wave)
            await self._after_deploy(pc, run, wave, None)
        elif wave.state is WaveState.GATE:
            gate = await ap.gates.find(wave.gate_id) if wave.gate_id is not None else None
            if gate is None or gate.status is GateStatus.STALE:
                await self._open_wave_gate(pc, run, wave, in_wave)
            elif gate.status is not GateStatus.PENDING:
                return await self.decided_wave(gate)  # decided, not carried out
        return None

    async def _open_wave_gate(
        self, pc: ProjectConfig, run: Run, wave: Wave, in_wave: Sequence[Task]
    ) -> None:
        ap = self.ap
        mode, _ = await ap.mode(pc.name)
        span = milestones.landed_span([t for t in in_wave if t.state is TaskState.DONE])
        node = await ap.node_of(span[1].agent_id if span else None, pc.name)  # where it landed
        checkout = Checkout(ap.builders, node, pc.name)
        qa = {t.id: await ap.qa_run(t) for t in in_wave if t.qa_run_id is not None}
        title, detail = await milestones.wave_gate(pc, run, wave, in_wave, qa, mode, checkout)
        gate = await ap.gates.open(
            milestones.MILESTONE,
            title,
            project=pc.name,
            detail=detail,
            payload={"run": run.id, "wave": wave.number},
        )
        opened = dataclasses.replace(wave, state=WaveState.GATE, gate_id=gate.id)
        await ap.runs.set_wave(opened, expect=wave.state, now=ap.clock())

    async def _close_wave(
        self, run: Run, wave: Wave, in_wave: Sequence[Task], known: dict[int, Task], by: str
    ) -> None:
        ap = self.ap
        now = ap.clock()
        closed = dataclasses.replace(wave, state=WaveState.CLOSED, closed_at=now)
        if await ap.runs.set_wave(closed, expect=wave.state, now=now) is None:
            return
        await ap.bus.publish(
            WaveDone(
                project=run.project,
                run_id=run.id,
                wave=wave.number,
                landed=tuple(t.id for t in in_wave if t.state is TaskState.DONE),
                failed=tuple(t.id for t in in_wave if t.state is TaskState.FAILED),
                blocked=tuple(t.id for t in in_wave if waves.is_blocked(t, known)),
                by=by,
            )
        )
        ap.wake()

    async def _start_deploy(
        self, pc: ProjectConfig, run: Run, wave: Wave, state: WaveState
    ) -> Job | None:
        """Record that a wave's deploy starts (so it never starts twice), then start it."""
        ap = self.ap
        started = await ap.runs.set_wave(
            dataclasses.replace(wave, state=state, deploys=wave.deploys + 1),
            expect=wave.state,
            now=ap.clock(),
        )
        if started is None:
            return None
        return self._deploy_job(pc, run, started)

    def _deploy_job(self, pc: ProjectConfig, run: Run, wave: Wave) -> Job:
        key = (run.id, wave.number)
        self.busy_waves.add(key)

        async def job() -> None:
            try:
                await self._deploy(pc, run, wave)
            except Exception:
                log.exception("deploy of run %s wave %s failed", *key)
            finally:
                self.busy_waves.discard(key)

        return job()

    async def _deploy(self, pc: ProjectConfig, run: Run, wave: Wave) -> None:
        """Deploy on a node holding the project (``ran`` None: it was cut short there)."""
        ap = self.ap
        staging = wave.state is WaveState.STAGING
        command = (pc.deploy_staging if staging else pc.deploy_prod) or ""
        step = Deploy(pc.name, run.id, wave.number, "staging" if staging else "prod")
        key = f"autopilot:run-{run.id}:wave-{wave.number}:deploy-{wave.deploys}"
        ran: shell.CommandRun | None
        try:
            node = await ap.builders.holder(pc.name)
            ran = await ap.builders.run(node, step, key if ap.builders.durable else None)
        except StepInterrupted as exc:
            log.warning("run %s wave %s: %s", run.id, wave.number, exc)
            ran = None
        except NodeUnreachable as exc:
            ran = shell.CommandRun(command, None, False, f"not run: {exc}")
        async with ap.lock:
            await self._after_deploy(pc, run, wave, ran)

    async def _after_deploy(
        self, pc: ProjectConfig, run: Run, wave: Wave, ran: shell.CommandRun | None
    ) -> None:
        """Record how a deploy ended (``ran`` None: a restart cut it short), then go on."""
        ap = self.ap
        staging = wave.state is WaveState.STAGING
        command = (pc.deploy_staging if staging else pc.deploy_prod) or ""
        said = CUT_SHORT if ran is None else ("passed" if ran.passed else ran.outcome)
        now = ap.clock()
        run_tasks = await ap.tasks.run_tasks(run.id)
        in_wave = [t for t in run_tasks if t.wave == wave.number]
        if staging:
            fresh = dataclasses.replace(wave, staging=f"`{command}` {said}")
            moved = await ap.runs.set_wave(fresh, expect=WaveState.STAGING, now=now)
            if moved is None:
                return
            await self._open_wave_gate(pc, run, moved, in_wave)
        else:
            fresh = dataclasses.replace(
                wave, state=WaveState.CLOSED, prod=f"`{command}` {said}", closed_at=now
            )
            if await ap.runs.set_wave(fresh, expect=WaveState.PROD, now=now) is None:
                return
            landed = tuple(t.id for t in in_wave if t.state is TaskState.DONE)
            await ap.bus.publish(
                WaveDone(project=pc.name, run_id=run.id, wave=wave.number, landed=landed)
            )
        await ap.bus.publish(
            Deployed(
                project=pc.name,
                run_id=run.id,
                wave=wave.number,
                target="staging" if staging else "prod",
                command=command,
                exit_code=ran.exit_code if ran is not None else None,
                output_tail=ran.tail if ran is not None else CUT_SHORT,
                passed=ran is not None and ran.passed,
            )
        )
        ap.wake()

    async def _finish(self, run: Run, result: waves.RunOutcome) -> None:
        ap = self.ap
        state = RunState.DONE if result.clean else RunState.BLOCKED
        finished = await ap.runs.set_run_state(
            run.id, state, _summary(result), ap.clock(), expect=run.state
        )
        if finished is not None:
            await ap.bus.publish(
                RunFinished(
                    project=run.project,
                    run_id=run.id,
                    state=state.value,
                    done=len(result.done),
                    failed=len(result.failed),
                    blocked=len(result.blocked),
                    cancelled=len(result.cancelled),
                )
            )

    async def wave_gate_stale(self, gate: Gate, run_id: int, number: int) -> str | None:
        ap = self.ap
        run = await ap.runs.get_run(run_id)
        wave = next((w for w in run.waves if w.number == number), None) if run else None
        if wave is None:
            return f"wave {number} of run {run_id} does not exist"
        if wave.state is not WaveState.GATE or wave.gate_id != gate.id:
            return f"wave {number} of run {run_id} is {wave.state.value} now"
        return None

    async def decided_wave(self, gate: Gate) -> Job | None:
        """Carry out a decided wave gate: close it (or deploy to prod), or reopen its work."""
        ap = self.ap
        run = await ap.runs.get_run(int(gate.payload["run"]))
        number = int(gate.payload["wave"])
        wave = next((w for w in run.waves if w.number == number), None) if run else None
        if run is None or wave is None or wave.state is not WaveState.GATE:
            return None
        if wave.gate_id != gate.id:
            return None
        pc = ap.project(run.project)
        mode, _ = await ap.mode(run.project)
        run_tasks = await ap.tasks.run_tasks(run.id)
        in_wave = [t for t in run_tasks if t.wave == number]
        if gate.status is not GateStatus.APPROVED:
            # Its tasks first: cut short in between, the wave still waits at its decided
            # gate, and the next tick reopens what is still done.
            for task in in_wave:
                if task.state is TaskState.DONE:
                    free = await ap.agent_free(task)
                    await ap.move(task, tm.Reopen(gate.decided_by or "?", gate.reason, free))
            # The gate stays named, so /run status tells who rejected the wave and why.
            reopened = dataclasses.replace(wave, state=WaveState.OPEN)
            await ap.runs.set_wave(reopened, expect=WaveState.GATE, now=ap.clock())
            return None
        if waves.after_approval(mode, has_prod=bool(pc.deploy_prod)) is WaveState.PROD:
            return await self._start_deploy(pc, run, wave, WaveState.PROD)
        await self._close_wave(
            run, wave, in_wave, {t.id: t for t in run_tasks}, gate.decided_by or "?"
        )
        return None


def _waits(ready: waves.Readiness) -> str:
    if ready.blocked_by:
        which = ", ".join(str(t) for t in ready.blocked_by)
        return f"{BLOCKED}waits on task {which}, which failed or was cancelled (/task retry)"
    if ready.waiting_on:
        return f"waits for task {', '.join(str(t) for t in ready.waiting_on)}"
    if ready.held_by_wave is not None:
        return f"waits for wave {ready.held_by_wave} to pass its gate"
    return ""


def _summary(result: waves.RunOutcome) -> str:
    parts = [f"{len(result.done)} done"]
    for name, ids in (("failed", result.failed), ("blocked", result.blocked)):
        if ids:
            parts.append(f"{len(ids)} {name} ({', '.join(str(i) for i in ids)})")
    if result.cancelled:
        parts.append(f"{len(result.cancelled)} cancelled")
    return ", ".join(parts)
