"""The monitor on the pane path: the demo agent in real tmux, time from a fake clock."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from farmbot.errors import Conflict
from farmbot.models import AgentKind, AgentState, Decision, GateStatus
from tests.farm import Farm, farm_for, make_config, received_prompts
from tests.helpers import FakeClock


@pytest.fixture
def farm(architect: Farm) -> Farm:
    return architect


def kinds(farm: Farm, prefix: str) -> list[str]:
    return [e.kind for e in farm.seen if e.kind.startswith(prefix)]


async def test_busy_with_no_new_output_for_ten_minutes_is_stuck(
    farm: Farm, clock: FakeClock
) -> None:
    await farm.supervisor.send("architect", "hang", "alice")
    await farm.until_screen("architect", "working... step 1/")
    await farm.tick()
    assert (await farm.agent("architect")).state is AgentState.BUSY

    clock.advance(9 * 60)
    await farm.tick()
    assert (await farm.agent("architect")).state is AgentState.BUSY
    clock.advance(61)
    await farm.tick()

    stuck = await farm.agent("architect")
    assert stuck.state is AgentState.STUCK
    assert stuck.state_reason == "busy with no new output for 10 min"
    [event] = [e for e in farm.seen if e.kind == "agent.stuck"]
    assert any("working..." in line for line in event.data["last_lines"])
    # It stays stuck (one alert, not one per tick) until its screen moves again...
    clock.advance(60)
    await farm.tick()
    assert kinds(farm, "agent.stuck") == ["agent.stuck"]
    # ...and escalates to critical when nobody acts for half an hour.
    clock.advance(30 * 60)
    await farm.tick()
    [escalation] = [e for e in farm.seen if e.kind == "agent.waiting_too_long"]
    assert escalation.data["level"] == "critical"
    await farm.tmux.send_keys("architect", "C-c")
    await farm.until_state("architect", AgentState.IDLE)


async def test_the_same_error_three_times_is_stuck(farm: Farm) -> None:
    await farm.supervisor.send("architect", "repeat-error", "alice")
    await farm.until_screen("architect", "AssertionError\ndemo>")

    agent = await farm.until_state("architect", AgentState.STUCK)

    assert agent.state_reason == "the same error 3 times: Error: test_login failed: AssertionError"
    assert kinds(farm, "agent.stuck") == ["agent.stuck"]
    # Once its screen moves on, it is not stuck any more and the same lines don't re-alert.
    await farm.supervisor.send("architect", "carry on", "alice")
    await farm.until_idle("architect")
    assert kinds(farm, "agent.stuck") == ["agent.stuck"]


async def test_an_agent_asking_for_help_waits_and_escalates(farm: Farm, clock: FakeClock) -> None:
    await farm.supervisor.send("architect", "help me choose", "alice")

    agent = await farm.until_state("architect", AgentState.WAITING)

    assert agent.state_reason == "asked for help"
    [event] = [e for e in farm.seen if e.kind == "agent.needs_human"]
    assert "I need human help" in event.data["question"]
    await farm.tick()
    assert (await farm.agent("architect")).state is AgentState.WAITING
    clock.advance(11 * 60)
    await farm.tick()
    clock.advance(20 * 60)
    await farm.tick()
    levels = [e.data["level"] for e in farm.seen if e.kind == "agent.waiting_too_long"]
    assert levels == ["warning", "critical"]
    # A human answers: it works again and the wait is over.
    await farm.supervisor.send("architect", "use the first design", "alice")
    await farm.until_idle("architect")


async def test_the_persons_own_prompt_is_not_the_agent_asking_for_help(farm: Farm) -> None:
    # The help rule reads only what the agent wrote after the prompt it was given: the
    # echoed prompt says "please advise" and "need your input", the agent just works.
    await farm.supervisor.send("architect", "please advise on the design, I need your input", "al")

    agent = await farm.until_idle("architect")

    assert agent.state is AgentState.IDLE
    assert kinds(farm, "agent.needs_human") == []
    assert "please advise on the design" in await farm.screen("architect")


async def test_permission_gate_end_to_end(farm: Farm) -> None:
    await farm.supervisor.send("architect", "run make deploy", "alice")
    await farm.until_screen("architect", "Do you want to proceed?")

    await farm.until_state("architect", AgentState.WAITING)
    [gate] = await farm.gates.pending()
    assert gate.kind == "permission" and gate.agent_id == "architect"
    assert "Do you want to proceed?" in gate.detail and "make deploy" in gate.detail
    assert kinds(farm, "gate.opened") == ["gate.opened"]
    await farm.tick()
    assert len(await farm.gates.pending()) == 1  # one gate per question, not one per tick

    decided, done = await farm.gates.decide(gate.id, Decision(True), "alice")

    assert decided.status is GateStatus.APPROVED and decided.decided_by == "alice"
    assert done == "sent 1 to architect"
    await farm.until_screen("architect", "✓ approved: make deploy")
    await farm.until_idle("architect")
    assert "✓ done: run make deploy" in await farm.screen("architect")


async def test_rejecting_a_permission_gate_denies(farm: Farm) -> None:
    await farm.supervisor.send("architect", "run rm -rf build", "alice")
    await farm.until_state("architect", AgentState.WAITING)
    [gate] = await farm.gates.pending()

    decided, done = await farm.gates.decide(gate.id, Decision(False, reason="not today"), "bob")

    assert decided.status is GateStatus.REJECTED and decided.reason == "not today"
    assert done == "sent Escape to architect; the reason goes in as its next prompt"
    await farm.until_screen("architect", "✗ denied")
    await farm.until_idle("architect")
    assert "✓ approved" not in await farm.screen("architect")
    # The reason is what the agent's "What should I do instead?" gets for an answer.
    assert received_prompts(farm.tmp_path) == ["run rm -rf build", "not today"]


async def test_approving_for_the_session_stops_the_same_question(farm: Farm) -> None:
    await farm.supervisor.send("architect", "run make lint", "alice")
    await farm.until_state("architect", AgentState.WAITING)
    [gate] = await farm.gates.pending()

    decided, done = await farm.gates.decide(gate.id, Decision(True, session=True), "alice")

    assert (decided.status, decided.scope) == (GateStatus.APPROVED, "session")
    assert done == "sent 2 to architect"
    await farm.until_idle("architect")
    await farm.supervisor.send("architect", "run make lint", "alice")
    await farm.until_screen("architect", "✓ allowed (don't ask again): make lint")
    await farm.until_idle("architect")
    assert await farm.gates.pending() == []


async def test_approve_for_session_is_refused_where_the_cli_has_none(
    tmp_path: Path, tmux_socket: str
) -> None:
    config = make_config(tmp_path, tmux_socket)
    agents = dict(config.agents, demo=replace(config.agents["demo"], session_keys=()))
    async with farm_for(replace(config, agents=agents), tmp_path) as farm:
        await farm.supervisor.spawn(AgentKind.ARCHITECT, None, None, "alice")
        await farm.until_idle("architect")
        await farm.supervisor.send("architect", "run make lint", "alice")
        await farm.until_state("architect", AgentState.WAITING)
        [gate] = await farm.gates.pending()
        with pytest.raises(Conflict, match="has no 'approve for this session'; approve it once"):
            await farm.gates.decide(gate.id, Decision(True, session=True), "alice")
        assert (await farm.gates.get(gate.id)).status is GateStatus.PENDING  # still to decide
        await farm.gates.decide(gate.id, Decision(True), "alice")
        await farm.until_idle("architect")


@pytest.mark.parametrize(
    ("after", "refusal"),
    [
        ("kept", "architect's CLI (profile quiet) has no 'approve for this session'"),
        ("removed", "architect's profile quiet is no longer configured, so farmbot knows no"),
    ],
)
async def test_approve_for_session_is_refused_right_after_a_restart(
    tmp_path: Path, tmux_socket: str, after: str, refusal: str
) -> None:
    """A restarted farmbot has seen no agent yet (nothing ticked): the refusal reads the
    agent itself, and nothing is recorded -- the gate stays pending, no key is pressed."""
    config = make_config(tmp_path, tmux_socket)
    quiet = replace(config.agents["demo"], name="quiet", session_keys=())
    before = replace(
        config,
        agents={**config.agents, "quiet": quiet},
        supervisor=replace(config.supervisor, default_agent="quiet"),
    )
    async with farm_for(before, tmp_path) as farm:
        await farm.supervisor.spawn(AgentKind.ARCHITECT, None, None, "alice")
        await farm.until_idle("architect")
        await farm.supervisor.send("architect", "run make lint", "alice")
        await farm.until_state("architect", AgentState.WAITING)
        [gate] = await farm.gates.pending()
    restarted = before if after == "kept" else config
    async with farm_for(restarted, tmp_path) as farm:
        with pytest.raises(Conflict, match=re.escape(f"gate {gate.id}: {refusal}")):
            await farm.gates.decide(gate.id, Decision(True, session=True), "alice")
        assert (await farm.gates.get(gate.id)).status is GateStatus.PENDING
        assert "Do you want to proceed?" in await farm.screen("architect")  # no key pressed
        if after == "kept":
            _, done = await farm.gates.decide(gate.id, Decision(True), "alice")
            assert done == "sent 1 to architect"
            await farm.until_screen("architect", "✓ approved: make lint")


async def test_a_gate_whose_question_is_gone_is_stale(farm: Farm, clock: FakeClock) -> None:
    await farm.supervisor.send("architect", "run make deploy", "alice")
    await farm.until_state("architect", AgentState.WAITING)
    [gate] = await farm.gates.pending()
    # Someone answers in tmux directly.
    await farm.tmux.send_keys("architect", "3")
    await farm.until_screen("architect", "✗ denied")

    with pytest.raises(Conflict, match="stale: the question is no longer showing"):
        await farm.gates.decide(gate.id, Decision(True), "alice")

    stale = await farm.gates.get(gate.id)
    assert stale.status is GateStatus.STALE and stale.decided_by is None
    # Nothing was typed into the agent's prompt.
    await farm.until_idle("architect")
    assert received_prompts(farm.tmp_path) == ["run make deploy"]
    del clock


async def test_the_monitor_marks_an_answered_question_stale(farm: Farm, clock: FakeClock) -> None:
    await farm.supervisor.send("architect", "needs permission", "alice")
    await farm.until_state("architect", AgentState.WAITING)
    [gate] = await farm.gates.pending()
    await farm.tmux.send_keys("architect", "Escape")
    await farm.until_screen("architect", "✗ denied")
    clock.advance(5)

    await farm.until_state("architect", AgentState.IDLE)

    assert (await farm.gates.get(gate.id)).status is GateStatus.STALE


async def test_usage_limit_pauses_then_continues(farm: Farm, clock: FakeClock) -> None:
    await farm.supervisor.send("architect", "limit", "alice")

    paused = await farm.until_state("architect", AgentState.PAUSED)

    assert paused.paused_until is not None
    assert 60 <= paused.paused_until - clock() <= 180  # the demo resets in two minutes
    [event] = [e for e in farm.seen if e.kind == "agent.paused"]
    assert event.data["will_continue"] is True
    await farm.tick()
    assert received_prompts(farm.tmp_path) == ["limit"]  # nothing typed while paused

    clock.advance(paused.paused_until - clock() + 1)
    await farm.until_idle("architect")

    assert received_prompts(farm.tmp_path) == ["limit", "continue"]
    assert "agent.resumed" in kinds(farm, "agent.")
    assert (await farm.agent("architect")).paused_until is None
