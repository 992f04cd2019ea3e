"""The monitor driven by Claude Code hook events (the JSON Claude Code really sends)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from farmbot.errors import Conflict
from farmbot.models import AgentKind, AgentState, Decision, Gate, GateStatus
from tests.farm import Farm, farm_for, make_config
from tests.helpers import FakeClock, retry_until
from tests.hook_payloads import payload


@pytest.fixture
def farm(architect: Farm) -> Farm:
    return architect


async def state(farm: Farm) -> AgentState:
    return (await farm.agent("architect")).state


async def test_hook_events_decide_busy_and_idle(farm: Farm) -> None:
    await farm.monitor.on_hook("architect", payload("UserPromptSubmit"))
    assert await state(farm) is AgentState.BUSY
    # With hooks, an idle-looking pane does not override what the hooks said.
    await farm.tick()
    assert await state(farm) is AgentState.BUSY
    await farm.monitor.on_hook("architect", payload("PreToolUse"))
    await farm.monitor.on_hook("architect", payload("PostToolUse"))
    assert await state(farm) is AgentState.BUSY

    await farm.monitor.on_hook("architect", payload("Stop"))

    assert await state(farm) is AgentState.IDLE
    stored = await farm.storage.events.recent_events(10, agent_id="architect", kind_prefix="hook.")
    assert [e.kind for e in stored][:4] == [
        "hook.Stop",
        "hook.PostToolUse",
        "hook.PreToolUse",
        "hook.UserPromptSubmit",
    ]
    pre = next(e for e in stored if e.kind == "hook.PreToolUse")
    assert pre.data["tool_input"]["command"] == "python -m pytest -q tests/test_login.py"


def allow(*permissions: dict[str, Any]) -> dict[str, Any]:
    decision: dict[str, Any] = {"behavior": "allow"}
    if permissions:
        decision["updatedPermissions"] = list(permissions)
    return {"hookSpecificOutput": {"hookEventName": "PermissionRequest", "decision": decision}}


async def held_request(farm: Farm) -> tuple[asyncio.Task[dict[str, Any]], Gate]:
    """A PermissionRequest as the CLI sends it: its answer waits for the gate."""
    asking = asyncio.create_task(farm.monitor.on_hook("architect", payload("PermissionRequest")))
    gate = await retry_until(lambda: first_gate(farm), message="the gate")
    assert not asking.done()  # held open while nobody has decided
    return asking, gate


async def first_gate(farm: Farm) -> Gate | None:
    pending = await farm.gates.pending()
    return pending[0] if pending else None


async def test_a_permission_request_is_answered_by_the_decision_through_the_hook(
    farm: Farm,
) -> None:
    await farm.supervisor.send("architect", "run python -m pytest -q", "alice")
    await farm.until_screen("architect", "Do you want to proceed?")
    await farm.monitor.on_hook("architect", payload("PreToolUse"))

    asking, gate = await held_request(farm)

    assert await state(farm) is AgentState.WAITING
    assert gate.payload["source"] == "hook" and gate.payload["tool_name"] == "Bash"
    assert gate.title == "architect asks: Bash: python -m pytest -q tests/test_login.py"
    assert gate.detail.startswith("$ python -m pytest -q tests/test_login.py")
    workdir = (await farm.agent("architect")).workdir
    assert gate.payload["where"] == f"directory {workdir}"
    [opened] = [e for e in farm.seen if e.kind == "gate.opened"]
    assert opened.data["where"] == f"directory {workdir}"
    await farm.tick()
    assert len(await farm.gates.pending()) == 1  # the pane's view of it adds no second gate

    _, done = await farm.gates.decide(gate.id, Decision(True), "alice")

    assert done == "answered through architect's hook"
    assert await asking == allow()
    # No key was typed: the demo agent's dialog (standing in for Claude's) still shows.
    assert "✓ approved" not in await farm.screen("architect")


async def test_approve_for_session_answers_with_a_session_rule(farm: Farm) -> None:
    asking, gate = await held_request(farm)
    await farm.gates.decide(gate.id, Decision(True, session=True), "alice")
    rule = {"toolName": "Bash", "ruleContent": "python -m pytest -q tests/test_login.py"}
    assert await asking == allow(
        {"type": "addRules", "rules": [rule], "behavior": "allow", "destination": "session"}
    )


async def test_a_rejection_answers_deny_with_the_reason(farm: Farm) -> None:
    asking, gate = await held_request(farm)
    await farm.gates.decide(gate.id, Decision(False, reason="use make test"), "bob")
    decision = {"behavior": "deny", "message": "use make test"}
    assert await asking == {
        "hookSpecificOutput": {"hookEventName": "PermissionRequest", "decision": decision}
    }
    assert await farm.storage.prompts.pending_prompts("architect") == []  # no typed reason


async def test_a_request_held_past_its_limit_answers_nothing_and_the_pane_decides(
    tmp_path: Path, tmux_socket: str
) -> None:
    config = make_config(tmp_path, tmux_socket)
    quick = replace(config, supervisor=replace(config.supervisor, permission_hold=0.3))
    async with farm_for(quick, tmp_path) as farm:
        await farm.supervisor.spawn(AgentKind.ARCHITECT, None, None, "alice")
        await farm.until_idle("architect")
        await farm.supervisor.send("architect", "run make deploy", "alice")
        await farm.until_screen("architect", "Do you want to proceed?")

        answer = await farm.monitor.on_hook("architect", payload("PermissionRequest"))

        assert answer == {}  # the CLI's own dialog stays, for the pane or a person
        [gate] = await farm.gates.pending()
        _, done = await farm.gates.decide(gate.id, Decision(True), "alice")
        assert done == "sent 1 to architect"
        await farm.until_screen("architect", "✓ approved: make deploy")


async def test_a_held_request_keeps_the_agent_waiting_and_refuses_a_send(farm: Farm) -> None:
    # The hook asked; the CLI has not drawn its dialog (the demo agent's prompt shows).
    asking, gate = await held_request(farm)
    await farm.tick()
    assert await state(farm) is AgentState.WAITING

    with pytest.raises(Conflict, match=f"gate {gate.id}: architect asks: Bash"):
        await farm.supervisor.send("architect", "hello?", "alice")

    assert await farm.storage.prompts.pending_prompts("architect") == []
    asking.cancel()


async def test_let_go_answers_every_held_request_with_nothing(farm: Farm) -> None:
    asking, gate = await held_request(farm)

    assert farm.monitor.let_go() == 1

    assert await asking == {}  # the CLI shows its own dialog
    assert [g.id for g in await farm.gates.pending()] == [gate.id]  # still to be decided
    # and nothing is held any more: a new request is not kept waiting
    assert await farm.monitor.on_hook("architect", payload("PermissionRequest")) == {}


# -- the same request twice (hook delivery is at least once) ---------------------------


async def test_a_duplicate_request_while_held_waits_for_the_same_decision(farm: Farm) -> None:
    asking, gate = await held_request(farm)
    again = asyncio.create_task(farm.monitor.on_hook("architect", payload("PermissionRequest")))
    await retry_until(lambda: farm.monitor.statistics()["held"] == 2, message="both copies held")

    assert [g.id for g in await farm.gates.pending()] == [gate.id]  # no second gate
    await farm.gates.decide(gate.id, Decision(True), "alice")

    assert await asking == allow()
    assert await again == allow()  # the same answer, to whichever copy the CLI waits on
    assert await farm.gates.pending() == []
    assert farm.monitor.statistics()["held"] == 0


@pytest.mark.parametrize("approved", [True, False])
async def test_a_duplicate_request_after_the_answer_gets_the_same_answer_at_once(
    farm: Farm, approved: bool
) -> None:
    asking, gate = await held_request(farm)
    await farm.gates.decide(gate.id, Decision(approved, reason="use make test"), "alice")
    first = await asking

    again = await farm.monitor.on_hook("architect", payload("PermissionRequest"))

    assert again == first  # not held, not a new question: the same request delivered again
    assert await farm.gates.pending() == []
    assert len([e for e in farm.seen if e.kind == "gate.opened"]) == 1
    assert await state(farm) is not AgentState.WAITING
    replayed = await farm.monitor.on_hook("architect", payload("PermissionRequest"), hold=False)
    assert replayed == {} and await farm.gates.pending() == []  # from the spool: nobody waits


async def test_a_replayed_duplicate_of_a_pending_request_is_not_held(farm: Farm) -> None:
    asking, gate = await held_request(farm)

    replayed = await farm.monitor.on_hook("architect", payload("PermissionRequest"), hold=False)

    assert replayed == {}
    assert [g.id for g in await farm.gates.pending()] == [gate.id]
    await farm.gates.decide(gate.id, Decision(True), "alice")
    assert await asking == allow()


async def test_the_same_request_after_a_new_tool_call_is_a_new_question(farm: Farm) -> None:
    asking, gate = await held_request(farm)
    await farm.gates.decide(gate.id, Decision(True), "alice")
    await asking
    await farm.monitor.on_hook("architect", payload("PostToolUse"))
    await farm.monitor.on_hook("architect", payload("PreToolUse"))  # the model runs it again

    again, second = await held_request(farm)

    assert second.id != gate.id  # asked again: approved once is not approved for good
    await farm.gates.decide(second.id, Decision(False), "alice")
    assert (await again)["hookSpecificOutput"]["decision"]["behavior"] == "deny"


async def test_stop_makes_a_pending_permission_gate_stale(farm: Farm) -> None:
    asking, gate = await held_request(farm)

    await farm.monitor.on_hook("architect", payload("Stop"))

    assert (await farm.gates.get(gate.id)).status is GateStatus.STALE
    assert await state(farm) is AgentState.IDLE
    assert await asking == {}  # the held request is let go: nothing to answer


async def test_late_notification_for_permission_opens_one_gate(farm: Farm) -> None:
    await farm.monitor.on_hook("architect", payload("PermissionRequest"), hold=False)
    await farm.monitor.on_hook(
        "architect",
        payload("Notification", notification_type="permission_prompt"),
    )
    assert len(await farm.gates.pending()) == 1


async def test_busy_with_no_tool_call_for_five_minutes_is_stuck(
    farm: Farm, clock: FakeClock
) -> None:
    await farm.monitor.on_hook("architect", payload("UserPromptSubmit"))
    await farm.monitor.on_hook("architect", payload("PreToolUse"))
    clock.advance(4 * 60)
    await farm.tick()
    assert await state(farm) is AgentState.BUSY

    clock.advance(61)
    await farm.tick()

    agent = await farm.agent("architect")
    assert agent.state is AgentState.STUCK
    assert agent.state_reason == "busy with no tool call for 5 min"
    # A tool call gets it going again.
    await farm.monitor.on_hook("architect", payload("PreToolUse"))
    assert await state(farm) is AgentState.BUSY


async def test_hooks_never_resurrect_a_stopped_agent(farm: Farm) -> None:
    await farm.supervisor.kill("architect", "alice")

    await farm.monitor.on_hook("architect", payload("Stop"))
    await farm.monitor.on_hook("architect", payload("UserPromptSubmit"))

    agent = await farm.agent("architect")
    assert agent.state is AgentState.STOPPED
    assert (
        len(await farm.storage.events.recent_events(5, kind_prefix="hook.")) == 2
    )  # still recorded


async def test_events_from_an_unknown_agent_are_kept(farm: Farm) -> None:
    await farm.monitor.on_hook("someone-else", payload("SessionStart"))
    [event] = await farm.storage.events.recent_events(1, agent_id="someone-else")
    assert event.kind == "hook.SessionStart" and event.project is None


async def test_huge_tool_output_is_trimmed_before_it_is_stored(farm: Farm) -> None:
    big = payload("PostToolUse")
    big["tool_response"]["stdout"] = "x" * 100_000
    await farm.monitor.on_hook("architect", big)
    [event] = await farm.storage.events.recent_events(1, kind_prefix="hook.PostToolUse")
    stdout = event.data["tool_response"]["stdout"]
    assert len(stdout) < 5000 and stdout.endswith("(100000 chars)")
