"""The agent state machine on its own: plain values in, a Step out; no tmux, no clock but
a number. Screens are the demo agent's, as captured in tests/screens/demo/."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from farmbot.config.schema import builtin_profiles
from farmbot.events import AgentStuck
from farmbot.models import Agent, AgentKind, AgentState, DesiredState, Gate, GateStatus
from farmbot.supervisor import state as sm

SCREENS = Path(__file__).parent / "screens" / "demo" / "0.1.0"
RULES = sm.Rules.of(builtin_profiles()["demo"])
NOW = 1_800_000_000.0


def screen(name: str) -> tuple[str, ...]:
    return tuple((SCREENS / f"{name}.txt").read_text().splitlines())


def agent(state: AgentState, reason: str = "", since: float = NOW - 60) -> Agent:
    return Agent(
        id="builder-1", project="p", kind=AgentKind.BUILDER, profile="demo", number=1,
        workdir="/w", branch="farmbot/builder-1", desired=DesiredState.RUNNING, state=state,
        state_reason=reason, created_at=NOW - 3600, updated_at=since, state_since=since,
    )  # fmt: skip


def pending_gate(step: sm.Step) -> Gate:
    """The gate the monitor would open for ``step``'s OpenGate."""
    [opened] = [e for e in step.effects if isinstance(e, sm.OpenGate)]
    return Gate(
        id=1, kind=sm.PERMISSION, agent_id="builder-1", project="p", title=opened.title,
        detail=opened.detail, status=GateStatus.PENDING, created_at=NOW, payload=opened.payload,
    )  # fmt: skip


def opens(step: sm.Step) -> bool:
    return any(isinstance(e, sm.OpenGate) for e in step.effects)


def test_a_dialog_opens_one_gate_and_its_answer_is_not_asked_again() -> None:
    asking = tuple(ln for ln in screen("waiting--permission") if ln.strip())
    track = sm.Track(last_output_at=NOW - 5)
    step = sm.decide(agent(AgentState.BUSY), sm.Screen(asking), track, RULES, None, NOW)
    assert (step.state, step.reason) == (AgentState.WAITING, "asks a question")
    gate = pending_gate(step)

    answered = sm.decide(
        agent(AgentState.WAITING, "asks a question"),
        sm.Answered(False, gate.detail),
        step.track,
        RULES,
        None,
        NOW + 1,
    )
    assert answered.state is AgentState.IDLE and answered.track.answered == gate.detail
    # Rejected by keys, the CLI prints its answer a line at a time: a screen read between
    # "denied. What should I do instead?" and its prompt still shows the dialog above.
    mid = (*asking, "✗ denied. What should I do instead?")
    half = sm.decide(agent(AgentState.IDLE), sm.Screen(mid), answered.track, RULES, None, NOW + 1)
    assert not opens(half) and half.state is AgentState.IDLE, half

    # Its prompt drawn, the answer is done with: the same dialog later is a new question.
    done = sm.decide(
        agent(AgentState.IDLE), sm.Screen((*mid, "demo> ")), half.track, RULES, None, NOW + 2
    )
    assert done.state is AgentState.IDLE and done.track.answered == ""
    again = sm.decide(agent(AgentState.BUSY), sm.Screen(asking), done.track, RULES, None, NOW + 9)
    assert opens(again) and again.state is AgentState.WAITING


def test_an_answer_that_did_not_take_is_asked_again_after_a_grace() -> None:
    asking = tuple(ln for ln in screen("waiting--permission") if ln.strip())
    asked = sm.decide(
        agent(AgentState.BUSY), sm.Screen(asking), sm.Track(NOW - 5), RULES, None, NOW
    )
    gate = pending_gate(asked)
    answered = sm.decide(
        agent(AgentState.WAITING, "asks a question"), sm.Answered(True, gate.detail),
        asked.track, RULES, None, NOW + 1,
    )  # fmt: skip
    soon = sm.decide(
        agent(AgentState.BUSY), sm.Screen(asking), answered.track, RULES, None, NOW + 2
    )
    assert not opens(soon)  # the CLI may not have redrawn yet
    later = NOW + 1 + sm.ANSWER_GRACE
    still = sm.decide(agent(AgentState.BUSY), sm.Screen(asking), soon.track, RULES, None, later)
    assert opens(still) and still.state is AgentState.WAITING  # a person decides again


def test_a_question_that_leaves_the_screen_makes_its_gate_stale() -> None:
    track = sm.Track(last_output_at=NOW - 5)
    asked = sm.decide(
        agent(AgentState.BUSY), sm.Screen(screen("waiting--permission")), track, RULES, None, NOW
    )
    gate = pending_gate(asked)
    later = NOW + sm.STALE_GRACE + 1
    idle = screen("idle--after-task")
    step = sm.decide(
        agent(AgentState.WAITING, "asks a question"), sm.Screen(idle), asked.track, RULES, gate,
        later,
    )  # fmt: skip
    assert [e.gate_id for e in step.effects if isinstance(e, sm.StaleGate)] == [gate.id]
    assert step.state is AgentState.IDLE


def test_a_pane_killed_by_a_signal_is_dead_and_says_which() -> None:
    gone = sm.PaneGone(exit_status=None, signal=9, last_lines=("⠋ working... step 1/4",))
    step = sm.decide(agent(AgentState.BUSY), gone, sm.Track(NOW), RULES, None, NOW)
    assert step.state is AgentState.DEAD
    assert "killed by signal 9 (SIGKILL)" in step.reason


def test_a_stop_a_person_asked_for_is_stopped_not_dead() -> None:
    stopped = replace(agent(AgentState.BUSY), desired=DesiredState.STOPPED)
    step = sm.decide(stopped, sm.PaneGone(exit_status=0), sm.Track(NOW), RULES, None, NOW)
    assert step.state is AgentState.STOPPED


def test_stuck_counts_from_the_stored_track_across_a_restart() -> None:
    """A hang that began at 06:54 and survived a restart at 06:58 is 14 minutes old at
    07:08, not 10: the track (since when there was no new output) is persisted."""
    hang = screen("busy--hang")
    began = NOW
    first = sm.decide(agent(AgentState.BUSY), sm.Screen(hang), sm.Track(began), RULES, None, began)
    assert first.state is AgentState.BUSY
    stored = sm.Track.from_json(first.track.to_json(), now=began + 4 * 60)  # the restart
    at = began + 14 * 60
    busy = agent(AgentState.BUSY, "working", since=began)
    step = sm.decide(busy, sm.Screen(hang), stored, RULES, None, at)
    assert step.state is AgentState.STUCK
    assert step.reason == "busy with no new output for 14 min"
    assert [type(e.event) for e in step.effects if isinstance(e, sm.Emit)] == [AgentStuck]
    # Still stuck at the next look, with no second alert.
    again = sm.decide(
        replace(busy, state=AgentState.STUCK), sm.Screen(None), step.track, RULES, None, at + 2
    )
    assert again.state is AgentState.STUCK and not again.effects


def test_the_persons_own_words_are_not_the_agent_asking_for_help() -> None:
    typed = sm.decide(
        agent(AgentState.IDLE), sm.Typing("need help with the design"), sm.Track(NOW), RULES,
        None, NOW,
    )  # fmt: skip
    echo = (
        "farmbot demo agent — type 'help' for the inputs it understands",
        "demo> need help with the design",
    )
    step = sm.decide(agent(AgentState.BUSY), sm.Screen(echo), typed.track, RULES, None, NOW + 1)
    assert step.reason != sm.ASKED_FOR_HELP and step.state is not AgentState.WAITING
    asks = sm.decide(
        agent(AgentState.BUSY), sm.Screen(screen("idle--asks-for-help")), sm.Track(NOW), RULES,
        None, NOW + 2,
    )  # fmt: skip
    assert (asks.state, asks.reason) == (AgentState.WAITING, sm.ASKED_FOR_HELP)
