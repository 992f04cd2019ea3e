"""Crashes at bad moments: each test leaves the rows as a kill -9 would (an intent recorded,
the act half done), starts farmbot again on the same state, and checks that the work is
finished exactly once. Also each mode's gates and deploys, and approving what is gone.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from farmbot.config.schema import UserConfig
from farmbot.messages import Incoming, utc_time
from farmbot.models import AutopilotMode, GateStatus, Role, TaskState, WaveState
from farmbot.storage.tasks import NewTask
from farmbot.supervisor.autopilot import landing
from tests.farm import received_prompts
from tests.helpers import FakeClock
from tests.pilot import Pilot, git, pilot_config, pilot_for


async def _to_review(p: Pilot, title: str = "Add a page") -> int:
    await p.ok(f"/task add proj {title}")
    await p.ok("/run start proj")
    await p.gate_of(1)
    return 1


async def test_a_landing_cut_short_after_the_base_moved_is_not_landed_again(
    tmp_path: Path, tmux_socket: str, clock: FakeClock
) -> None:
    config = pilot_config(tmp_path, tmux_socket)
    async with pilot_for(config, tmp_path, clock) as p:
        await _to_review(p)
        task = await p.task(1)
        gate = await p.farm.gates.find(task.gate_id or 0)
        assert gate is not None
        # As if: approved, recorded as landing, merged -- and then kill -9.
        await p.farm.storage.gates.decide_gate(gate.id, GateStatus.APPROVED, "alice", "", clock())
        moved = dataclasses.replace(task, state=TaskState.LANDING, reason="approved by alice")
        assert await p.farm.storage.tasks.update_task(moved, TaskState.REVIEW, "alice", "", clock())
        where = tmp_path / "state" / "worktrees" / "proj" / landing.LANDING_DIR
        done = await landing.land_git(
            p.repo, where, branch="farmbot/task-1", base_branch="main", how="merge", message="m"
        )
        assert done.outcome == "landed"
    async with pilot_for(config, tmp_path, clock) as p:
        landed = await p.until_state(1, TaskState.DONE)
        assert "already on the base" not in landed.reason
        merges = git(p.repo, "rev-list", "--merges", "--count", "main")
        assert merges == "1"  # not merged a second time
        assert landed.landed_commit == git(p.repo, "rev-parse", "main")


async def test_a_landing_cut_short_before_git_ran_lands_once_after_the_restart(
    tmp_path: Path, tmux_socket: str, clock: FakeClock
) -> None:
    config = pilot_config(tmp_path, tmux_socket, land="rebase")
    async with pilot_for(config, tmp_path, clock) as p:
        await _to_review(p)
        task = await p.task(1)
        moved = dataclasses.replace(task, state=TaskState.LANDING, reason="approved by alice")
        assert await p.farm.storage.tasks.update_task(moved, TaskState.REVIEW, "alice", "", clock())
    async with pilot_for(config, tmp_path, clock) as p:
        landed = await p.until_state(1, TaskState.DONE)
        assert "rebase onto main" in landed.reason
        assert git(p.repo, "rev-list", "--merges", "--count", "main") == "0"
        assert git(p.repo, "log", "-1", "--format=%s", "main") == "task 1: Add a page (revision 1)"
        assert landed.landed_commit == git(p.repo, "rev-parse", "main")


async def test_a_land_command_cut_short_is_not_run_again_without_a_person(
    tmp_path: Path, tmux_socket: str, clock: FakeClock
) -> None:
    ran = tmp_path / "land-command-ran"
    command = f'echo "$FARMBOT_TASK $FARMBOT_BRANCH" >> {ran}; echo opened PR 17'
    config = pilot_config(tmp_path, tmux_socket, land="command", land_command=command)
    async with pilot_for(config, tmp_path, clock) as p:
        await _to_review(p)
        task = await p.task(1)
        moved = dataclasses.replace(task, state=TaskState.LANDING, reason="approved by alice")
        assert await p.farm.storage.tasks.update_task(moved, TaskState.REVIEW, "alice", "", clock())
    async with pilot_for(config, tmp_path, clock) as p:
        gate = await p.gate_of(1)
        task = await p.task(1)
        assert "cut short (farmbot restarted); it may have run" in task.reason
        assert not ran.exists()  # it may have run before the crash: a person decides
        reply = await p.ok(f"/approve {gate.id}")
        assert "task 1 landed (land_command)" in reply.text
        assert ran.read_text() == "1 farmbot/task-1\n"
        assert (await p.task(1)).note == "opened PR 17"


async def test_an_assignment_cut_short_before_the_builder_started_is_carried_out_once(
    tmp_path: Path, tmux_socket: str, clock: FakeClock
) -> None:
    config = pilot_config(tmp_path, tmux_socket)
    async with pilot_for(config, tmp_path, clock) as p:
        await p.ok("/task add proj Start me")
        store = p.farm.storage.tasks
        [task] = await store.list_tasks("proj")
        await store.reserve_agent("builder-1", "proj", 1, clock())
        # As if: the assignment was recorded -- and farmbot died before spawning builder-1.
        main = git(p.repo, "rev-parse", "main")
        working = dataclasses.replace(
            task,
            state=TaskState.WORKING,
            agent_id="builder-1",
            branch="farmbot/task-1",
            base_branch="main",
            base_commit=main,
            attempts=1,
            started_at=clock(),
            deadline=clock() + 7200,
        )
        assert await store.update_task(working, TaskState.PENDING, "autopilot", "", clock())
    async with pilot_for(config, tmp_path, clock) as p:
        await p.until_state(1, TaskState.REVIEW)
        assert sum(x.startswith("Task 1:") for x in received_prompts(tmp_path)) == 1
        assert [a.id for a in await p.farm.supervisor.list_agents()] == ["builder-1"]


async def test_a_decision_not_carried_out_before_a_crash_is_carried_out_after(
    tmp_path: Path, tmux_socket: str, clock: FakeClock
) -> None:
    config = pilot_config(tmp_path, tmux_socket)
    async with pilot_for(config, tmp_path, clock) as p:
        await _to_review(p)
        task = await p.task(1)
        # The gate was decided (compare-and-set), then farmbot died before applying it.
        await p.farm.storage.gates.decide_gate(
            task.gate_id or 0, GateStatus.REJECTED, "alice", "use the other font", clock()
        )
    async with pilot_for(config, tmp_path, clock) as p:
        await p.gate_of(1)  # back to the builder with the reason, and reviewed again
        said = [x for x in received_prompts(tmp_path) if "rejected it" in x]
        assert len(said) == 1 and "use the other font" in said[0]


async def test_a_deploy_cut_short_is_reported_and_not_run_again(
    tmp_path: Path, tmux_socket: str, clock: FakeClock
) -> None:
    log = tmp_path / "deploys"
    config = pilot_config(
        tmp_path,
        tmux_socket,
        mode=AutopilotMode.AUTO_STAGING,
        deploy_staging=f"echo staging $FARMBOT_WAVE >> {log}",
    )
    async with pilot_for(config, tmp_path, clock) as p:
        # As if: task 1 landed, its wave settled, deploy_staging was recorded as started --
        # and farmbot died (no tick runs in this farm).
        store = p.farm.storage
        [task] = await store.tasks.add_tasks([NewTask("proj", "One")], "alice", clock())
        run = await store.runs.add_run("proj", "alice", {task.id: 1}, clock())
        assert run is not None
        landed = dataclasses.replace(task, state=TaskState.DONE, landed_commit="0" * 40)
        assert await store.tasks.update_task(landed, TaskState.PENDING, "alice", "", clock())
        [wave] = run.waves
        staged = dataclasses.replace(wave, state=WaveState.STAGING)
        assert await store.runs.set_wave(staged, expect=WaveState.OPEN, now=clock())
    async with pilot_for(config, tmp_path, clock) as p:
        gates = await p.until(lambda: _pending(p), "the wave's gate")
        assert "staging: `echo staging" in gates[0].detail and "cut short" in gates[0].detail
        assert not log.exists()
        kinds = [e.kind for e in p.farm.seen]
        assert "deploy.failed" in kinds


async def _pending(p: Pilot) -> list:  # type: ignore[type-arg]
    return await p.farm.gates.pending()


async def test_each_mode_puts_its_gates_where_it_says(
    tmp_path: Path, tmux_socket: str, clock: FakeClock
) -> None:
    log = tmp_path / "deploys"
    config = pilot_config(
        tmp_path,
        tmux_socket,
        mode=AutopilotMode.AUTO_STAGING,
        deploy_staging=f"echo staging $FARMBOT_WAVE >> {log}",
        deploy_prod=f"echo prod $FARMBOT_WAVE >> {log}",
    )
    async with pilot_for(config, tmp_path, clock) as p:
        # auto_staging: two waves; each lands by itself, deploys to staging, then a gate
        # that holds the next wave back.
        await p.ok("/task add proj First")
        await p.ok("/task add proj Second --after 1")
        await p.ok("/run start proj")
        [gate] = await p.until(lambda: _pending(p), "wave 1's gate")
        assert gate.payload == {"run": 1, "wave": 1}
        assert "staging: `echo staging $FARMBOT_WAVE >> " in gate.detail
        assert "` passed" in gate.detail
        assert log.read_text() == "staging 1\n"
        for _ in range(10):
            await p.turn()
        assert (await p.task(2)).state is TaskState.PENDING  # wave 2 waits for the gate
        approved = await p.ok(f"/approve {gate.id}")
        assert "wave 1 of run 1 is done" in approved.text

        # auto_prod from wave 2 on: the wave's gate, approved, runs deploy_prod.
        await p.ok("/autopilot proj auto_prod")
        [gate] = await p.until(lambda: _pending(p), "wave 2's gate")
        assert "deploy it to prod" in gate.title
        assert log.read_text() == "staging 1\nstaging 2\n"
        await p.ok(f"/approve {gate.id}")
        await p.until(lambda: _run_done(p), "the run to be done")
        assert log.read_text() == "staging 1\nstaging 2\nprod 2\n"

        # observe: every task waits at its own gate before it lands.
        await p.ok("/autopilot proj observe")
        await p.ok("/task add proj Third")
        await p.ok("/run start proj")
        gate = await p.gate_of(3)
        assert gate.payload == {"task": 3}
        assert git(p.repo, "log", "-1", "--format=%s", "main").startswith("Land task 2")
        diff = await p.ok(f"/gate diff {gate.id}")
        assert diff.pre is not None and "+# Task 3: Third" in diff.pre


async def _run_done(p: Pilot) -> bool:
    runs = await p.farm.storage.runs.list_runs("proj", 1)
    return bool(runs) and runs[0].state.value == "done"


async def test_bad_input_is_refused_with_a_message_that_says_what_is_wrong(
    tmp_path: Path, tmux_socket: str, clock: FakeClock
) -> None:
    config = pilot_config(tmp_path, tmux_socket)
    async with pilot_for(config, tmp_path, clock) as p:
        for text, says in (
            ("/task show 99", "unknown task 99"),
            ("/task add nope Fix it", "unknown project 'nope' (known: proj)"),
            ("/task add proj Fix it --after 99", "depends on task 99, which does not exist"),
            (
                "/task add proj Fix it --prio high",
                "unknown option '--prio'; did you mean '--priority'?",
            ),
            ("/task add proj --after 1", "missing the task's title"),
            ("/task frobnicate 1", "unknown subcommand '/task frobnicate'"),
            ("/run start proj", "no open tasks"),
            ("/run pause proj", "has no open run"),
            ("/task retry 1", "unknown task 1"),
            ("/autopilot proj turbo", "unknown mode 'turbo'"),
        ):
            reply = await p.say(text)
            assert not reply.ok and says in reply.text, (text, reply.text)
        await p.ok("/autopilot proj off")
        await p.ok("/task add proj Later")
        off = await p.say("/run start proj")
        assert not off.ok and "the autopilot is off for project proj" in off.text
        await p.ok("/autopilot proj observe")

        # Cancelled while its gate waited: the gate is stale, Approve says why.
        await p.ok("/run start proj")
        gate = await p.gate_of(1)
        await p.ok("/task cancel 1")
        stale = await p.say(f"/approve {gate.id}")
        assert not stale.ok and f"gate {gate.id} is stale: task 1 was cancelled" in stale.text
        assert git(p.repo, "rev-list", "--count", "main") == "1"  # nothing landed
        again = await p.say("/task cancel 1")
        assert not again.ok and "already cancelled" in again.text


async def test_viewers_read_operators_manage_tasks_and_runs_admins_approve_and_set_modes(
    tmp_path: Path, tmux_socket: str, clock: FakeClock
) -> None:
    config = pilot_config(tmp_path, tmux_socket)
    people = (*config.users, UserConfig("bob", Role.OPERATOR), UserConfig("carol", Role.VIEWER))
    config = dataclasses.replace(config, users=people)
    async with pilot_for(config, tmp_path, clock) as p:

        async def as_(user: str, text: str) -> str:
            reply = await p.farm.router.handle(Incoming("scheduler", user, "cron:x", text))
            return ("ok: " if reply.ok else "no: ") + reply.text

        assert (await as_("carol", "/task add proj X")).startswith("no: carol is a viewer")
        assert (await as_("bob", "/task add proj X")).startswith("ok: queued task 1")
        assert (await as_("carol", "/tasks")).startswith("ok: #1 pending")
        assert (await as_("carol", "/task show 1")).startswith("ok: task 1 [proj] pending")
        assert (await as_("carol", "/autopilot proj")).startswith("ok: project proj: autopilot")
        assert "changing the mode needs admin" in await as_("bob", "/autopilot proj auto_prod")
        assert (await as_("bob", "/run start proj")).startswith("ok: run 1")
        gate = await p.gate_of(1)
        assert "/approve needs admin" in await as_("bob", f"/approve {gate.id}")
        assert (await as_("bob", f"/gate diff {gate.id}")).startswith("ok: gate")
        assert (await as_("alice", f"/approve {gate.id}")).startswith("ok: gate")
        audit = await p.farm.storage.audit.recent_audit(20)
        assert {(a.user_name, a.outcome) for a in audit} >= {("carol", "denied"), ("bob", "ok")}


async def test_a_rejected_wave_goes_back_to_its_builders_and_lands_again(
    tmp_path: Path, tmux_socket: str, clock: FakeClock
) -> None:
    config = pilot_config(tmp_path, tmux_socket, mode=AutopilotMode.FIX_FORWARD)
    async with pilot_for(config, tmp_path, clock) as p:
        await p.ok("/task add proj One")
        await p.ok("/run start proj")
        [gate] = await p.until(lambda: _pending(p), "wave 1's gate")
        first = git(p.repo, "rev-parse", "main")
        rejected = await p.ok(f"/reject {gate.id} the page is blank on mobile")
        assert "goes back to its builders" in rejected.text
        decided = await p.farm.gates.get(gate.id)
        assert decided.decided_at is not None
        status = await p.ok("/run status proj")
        assert (
            f"  wave 1 open: #1 working (builder-1); gate #{gate.id} rejected by alice at "
            f"{utc_time(decided.decided_at)}: the page is blank on mobile"
        ) in status.text

        async def reason_delivered() -> list[str]:
            return [x for x in received_prompts(tmp_path) if "blank on mobile" in x]

        await p.until(reason_delivered, "the reason to reach the builder")
        [again] = await p.until(lambda: _pending(p), "wave 1's gate again")
        assert again.id != gate.id
        status = await p.ok("/run status proj")
        assert f"  wave 1 gate (gate #{again.id}): #1 done\n" in status.text + "\n"
        assert "rejected by" not in status.text
        assert git(p.repo, "rev-list", "--merges", "--count", "main") == "2"  # landed again
        assert git(p.repo, "rev-list", "--count", f"{first}..main") == "2"  # fix + its merge
        history = [h.detail for h in await p.farm.storage.tasks.history(1)]
        assert any("wave rejected by alice: the page is blank on mobile" in d for d in history)
