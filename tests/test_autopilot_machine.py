"""The autopilot's pure parts with plain values: the task machine, waves, the assigner."""

from __future__ import annotations

import dataclasses

import pytest

from farmbot.events import TaskFailed, TaskLanded, TaskMoved, TaskRetried
from farmbot.models import AutopilotMode, Priority, Task, TaskState, Wave, WaveState
from farmbot.supervisor.autopilot import assigner, milestones, waves
from farmbot.supervisor.autopilot import tasks as tm

NOW = 1_700_000_000.0
OBSERVE = tm.Policy(AutopilotMode.OBSERVE, max_attempts=3, timeout=600.0)
FIX = tm.Policy(AutopilotMode.FIX_FORWARD, max_attempts=3, timeout=600.0)
S = TaskState


def task(id: int = 1, state: TaskState = S.PENDING, **kw: object) -> Task:
    return Task(
        id=id,
        project=str(kw.pop("project", "p")),
        title=f"t{id}",
        body="",
        priority=kw.pop("priority", Priority.NORMAL),  # type: ignore[arg-type]
        state=state,
        created_by="alice",
        created_at=NOW,
        updated_at=NOW,
        **kw,  # type: ignore[arg-type]
    )


def step(t: Task, happening: tm.Happening, policy: tm.Policy = OBSERVE) -> tm.Step:
    return tm.decide(t, happening, policy, NOW)


ASSIGN = tm.Assign("builder-1", "farmbot/task-1", "main", "a" * 40, "autopilot")


def test_the_happy_path_in_observe_mode_stops_at_review() -> None:
    t = step(task(), tm.Release()).task
    assert t.state is S.READY
    t = step(t, ASSIGN).task
    assert (t.state, t.agent_id, t.attempts, t.prompt_id) == (S.WORKING, "builder-1", 1, None)
    assert t.deadline == NOW + 600 and t.base_commit == "a" * 40
    t = step(t, tm.Finish("builder-1", "did it")).task
    assert (t.state, t.note) == (S.VERIFYING, "did it")
    t = step(t, tm.Verified(True, 7, "make test", "", agent_free=True)).task
    assert (t.state, t.qa_run_id) == (S.REVIEW, 7)
    t = step(t, tm.Approve("alice")).task
    assert (t.state, t.reason) == (S.LANDING, "approved by alice")
    done = step(t, tm.Landed("b" * 40, "c" * 40, ("d" * 40, "c" * 40), "merge into main", "alice"))
    assert done.task.state is S.DONE and done.task.landed_commit == "c" * 40
    assert [type(e) for e in done.events] == [TaskMoved, TaskLanded]


def test_modes_that_gate_waves_land_verified_work_by_itself() -> None:
    t = task(state=S.VERIFYING, attempts=1, agent_id="builder-1")
    assert step(t, tm.Verified(True, 1, "x", "", True), FIX).task.state is S.LANDING


def test_a_failed_verification_goes_back_to_the_builder_and_counts_an_attempt() -> None:
    t = task(state=S.VERIFYING, attempts=1, agent_id="builder-1", branch="b")
    back = step(t, tm.Verified(False, 2, "make test", "FAILED test_x", agent_free=True))
    assert (back.task.state, back.task.attempts, back.task.agent_id) == (S.WORKING, 2, "builder-1")
    assert back.prompt is not None and "FAILED test_x" in back.prompt
    assert "attempt 2 of 3" in back.prompt
    gone = step(t, tm.Verified(False, 2, "make test", "FAILED", agent_free=False))
    assert gone.task.state is S.READY and gone.prompt is None
    assert "FAILED" in gone.task.feedback  # the next builder's task prompt carries it
    assert "FAILED" in tm.task_prompt("Task {id}: {title}", gone.task)
    last = step(dataclasses.replace(t, attempts=3), tm.Verified(False, 2, "x", "", True))
    assert last.task.state is S.FAILED
    assert any(isinstance(e, TaskFailed) for e in last.events)


def test_a_lost_agent_is_retired_and_a_fresh_builder_retries_until_out_of_attempts() -> None:
    t = task(state=S.WORKING, attempts=1, agent_id="builder-1")
    lost = step(t, tm.Lost("builder-1 died", "builder-1"))
    assert (lost.task.state, lost.task.attempts, lost.retire) == (S.READY, 2, "builder-1")
    assert any(isinstance(e, TaskRetried) and e.attempt == 2 for e in lost.events)
    again = step(lost.task, dataclasses.replace(ASSIGN, agent_id="builder-2")).task
    assert (again.attempts, again.agent_id) == (2, "builder-2")  # assigning is not an attempt
    out = step(dataclasses.replace(t, attempts=3), tm.Lost("timed out", "builder-1"))
    assert (out.task.state, out.retire) == (S.FAILED, "builder-1")


def test_reject_and_conflicts_go_back_to_the_builder_without_costing_an_attempt() -> None:
    t = task(state=S.REVIEW, attempts=1, agent_id="builder-1", gate_id=4, branch="b")
    back = step(t, tm.Reject("alice", "make it blue", agent_free=True))
    assert (back.task.state, back.task.attempts, back.task.gate_id) == (S.WORKING, 1, None)
    assert (
        back.prompt is not None
        and "alice reviewed your work and rejected it: make it blue" in back.prompt
    )
    assert step(t, tm.Reject("alice", "", agent_free=False)).task.state is S.READY
    landing = dataclasses.replace(t, state=S.LANDING)
    conflict = step(landing, tm.LandFailed("conflicts in a.py", agent_free=True))
    assert conflict.task.state is S.WORKING and "conflicts in a.py" in (conflict.prompt or "")
    assert "resolve what conflicts" in (conflict.prompt or "")
    failed = step(landing, tm.LandFailed("`make pr` failed (exit 1):\nCI is red", True, True))
    assert failed.task.state is S.WORKING and failed.task.reason.startswith("did not land: ")
    said = failed.prompt or ""
    assert said.startswith("Task 1: your work did not land: the project's land command `make pr`")
    assert "CI is red" in said and "conflict" not in said
    refused = step(landing, tm.LandRefused("main is dirty"))
    assert (refused.task.state, refused.task.gate_id) == (S.REVIEW, None)  # a new gate


def test_cancel_and_retry_and_what_does_not_apply_now() -> None:
    t = task(state=S.REVIEW, gate_id=9, attempts=2)
    cancelled = step(t, tm.Cancel("bob"))
    assert cancelled.task.state is S.CANCELLED and cancelled.stale_gate == (
        9,
        "task 1 was cancelled",
    )
    retried = step(cancelled.task, tm.Retry("bob")).task
    assert (retried.state, retried.attempts) == (S.PENDING, 0)
    for state, happening, says in (
        (S.LANDING, tm.Cancel("bob"), "is landing right now"),
        (S.DONE, tm.Cancel("bob"), "already done"),
        (S.WORKING, tm.Retry("bob"), "only a failed or cancelled task can be retried"),
        (S.PENDING, tm.Approve("alice"), "not waiting for review"),
        (S.WORKING, ASSIGN, "only a pending or ready task can be assigned"),
    ):
        with pytest.raises(tm.NotNow, match=says):
            step(task(state=state), happening)


def test_a_task_prompt_fills_the_profiles_template_as_the_config_checked_it() -> None:
    t = dataclasses.replace(task(12, branch="farmbot/task-12"), body="line one\nline two")
    template = "{id:.1}|{id:>4}|{title}|{project}|{branch}|{{literal}}\n{body}"
    assert tm.task_prompt(template, t) == (
        "1|  12|t12|p|farmbot/task-12|{literal}\nline one\nline two"
    )  # every field a string, as config.reader checked the template with
    assert tm.task_prompt("{body}", task()) == "(no further description)"
    again = dataclasses.replace(t, feedback="The previous attempt ended: builder-1 died.")
    assert tm.task_prompt("Task {id}", again) == (
        "Task 12\n\nFrom an earlier attempt at this task:\n"
        "The previous attempt ended: builder-1 died."
    )


def test_waves_follow_dependencies_and_cycles_are_named() -> None:
    a, b, c, d = task(1), task(2, depends_on=(1,)), task(3), task(4, depends_on=(2, 3))
    assert waves.order([a, b, c, d]) == {1: 1, 2: 2, 3: 1, 4: 3}
    assert waves.order([b, d], done={1}) == {2: 1, 4: 2}  # done work waits for nothing
    assert waves.find_cycle({1: [2], 2: [3], 3: [1]}) == [1, 2, 3, 1]
    assert waves.find_cycle({1: [2], 2: [], 3: [1]}) is None
    with pytest.raises(ValueError, match="task 1 waits for 2, which waits for 1"):
        waves.order([task(1, depends_on=(2,)), task(2, depends_on=(1,))])


def test_readiness_blocks_transitively_and_gated_modes_hold_later_waves() -> None:
    failed = task(1, S.FAILED)
    mid = task(2, S.PENDING, depends_on=(1,))
    last = task(3, S.PENDING, depends_on=(2,))
    known = {t.id: t for t in (failed, mid, last)}
    assert waves.readiness(last, known, AutopilotMode.OBSERVE).blocked_by == (1,)
    assert waves.is_blocked(last, known)
    done = {1: task(1, S.DONE), 2: task(2, S.PENDING, depends_on=(1,), wave=2)}
    open_wave = [Wave(1, 1, WaveState.GATE), Wave(1, 2, WaveState.OPEN)]
    observe = waves.readiness(done[2], done, AutopilotMode.OBSERVE, open_wave)
    gated = waves.readiness(done[2], done, AutopilotMode.FIX_FORWARD, open_wave)
    assert observe.ready and not gated.ready and gated.held_by_wave == 1


def test_a_settled_wave_goes_to_its_gate_or_deploy_or_closes() -> None:
    landed, failed = task(1, S.DONE), task(2, S.FAILED)
    assert (
        waves.after_settled([landed], AutopilotMode.OBSERVE, has_staging=True).state
        is WaveState.CLOSED
    )
    assert (
        waves.after_settled([landed], AutopilotMode.FIX_FORWARD, has_staging=True).state
        is WaveState.GATE
    )
    staging = waves.after_settled([landed], AutopilotMode.AUTO_STAGING, has_staging=True)
    assert staging.state is WaveState.STAGING
    assert (
        waves.after_settled([failed], AutopilotMode.AUTO_PROD, has_staging=True).state
        is WaveState.CLOSED
    )
    assert waves.after_approval(AutopilotMode.AUTO_PROD, has_prod=True) is WaveState.PROD
    assert waves.after_approval(AutopilotMode.AUTO_STAGING, has_prod=True) is WaveState.CLOSED
    w = [Wave(1, 1, WaveState.CLOSED), Wave(1, 2, WaveState.GATE), Wave(1, 3, WaveState.OPEN)]
    assert waves.join_wave([1], w) == 3 and waves.join_wave([3], w) == 4


def _capacity(**kw: object) -> assigner.Capacity:
    base: dict[str, object] = {
        "max_agents": 10,
        "running_agents": 0,
        "max_builders": {"p": 2},
        "running_builders": {"p": 0},
        "profile_of": {"p": "demo"},
        "paused_profiles": (),
    }
    return assigner.Capacity(**{**base, **kw})  # type: ignore[arg-type]


def test_the_assigner_hands_out_highest_priority_first_within_the_limits() -> None:
    ready = [
        task(1, S.READY, priority=Priority.LOW),
        task(2, S.READY, priority=Priority.HIGH),
        task(3, S.READY),
    ]
    plan = assigner.plan(ready, [], _capacity())
    assert plan.picks == (assigner.Pick(2, None), assigner.Pick(3, None))
    assert plan.waiting == ((1, "project p runs its 2 builders"),)
    farm = assigner.plan(ready, [], _capacity(max_agents=3, running_agents=2))
    assert farm.picks == (assigner.Pick(2, None),)
    assert (1, "the farm runs its 3 agents") in farm.waiting


def test_a_free_builder_is_used_first_and_the_one_that_worked_on_it_is_preferred() -> None:
    free = [assigner.Builder("builder-1", "p", "demo"), assigner.Builder("builder-2", "p", "demo")]
    ready = [task(5, S.READY, agent_id="builder-2"), task(6, S.READY)]
    plan = assigner.plan(ready, free, _capacity(running_builders={"p": 2}))
    assert plan.picks == (assigner.Pick(5, "builder-2"), assigner.Pick(6, "builder-1"))


def test_a_profile_paused_by_a_usage_limit_gets_nothing_new() -> None:
    free = [assigner.Builder("builder-1", "p", "demo")]
    plan = assigner.plan([task(1, S.READY)], free, _capacity(paused_profiles={"demo"}))
    assert plan.picks == ()
    assert plan.waiting == ((1, "profile demo is paused by a usage limit"),)


def test_a_waves_landings_are_ordered_by_their_chain_on_the_base_not_by_the_clock() -> None:
    def landed(id: int, base: str, tip: str, at: float = NOW) -> Task:
        return task(id, S.DONE, land_base=base * 40, landed_commit=tip * 40, landed_at=at)

    one, two, three = landed(1, "a", "b"), landed(2, "b", "c"), landed(3, "c", "d")
    for order in ([one, two, three], [three, one, two], [two, three, one]):
        assert milestones.landed_span(order) == (one, three)  # landed in one clock tick
    # Someone else's commit (d..e) came in between: the clock picks between the pieces.
    later = landed(4, "e", "f", NOW + 5)
    assert milestones.landed_span([later, two, one]) == (one, later)
    assert milestones.landed_span([task(5, S.DONE)]) is None
