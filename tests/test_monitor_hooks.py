"""The monitor driven by Claude Code hook events (the JSON Claude Code really sends)."""

from __future__ import annotations

import pytest

from farmbot.models import AgentState, GateStatus
from tests.farm import Farm
from tests.helpers import FakeClock
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


async def test_permission_request_opens_a_gate_that_approves_the_dialog(farm: Farm) -> None:
    await farm.supervisor.send("architect", "run python -m pytest -q", "alice")
    await farm.until_screen("architect", "Do you want to proceed?")
    await farm.monitor.on_hook("architect", payload("PreToolUse"))

    await farm.monitor.on_hook("architect", payload("PermissionRequest"))

    assert await state(farm) is AgentState.WAITING
    [gate] = await farm.gates.pending()
    assert gate.payload["source"] == "hook"
    assert gate.title == "architect asks: Bash: python -m pytest -q tests/test_login.py"
    await farm.tick()
    assert len(await farm.gates.pending()) == 1  # the pane's view of it adds no second gate

    await farm.gates.decide(gate.id, True, "alice")

    await farm.until_screen("architect", "✓ approved: python -m pytest -q")


async def test_stop_makes_a_pending_permission_gate_stale(farm: Farm) -> None:
    await farm.monitor.on_hook("architect", payload("PermissionRequest"))
    [gate] = await farm.gates.pending()

    await farm.monitor.on_hook("architect", payload("Stop"))

    assert (await farm.gates.get(gate.id)).status is GateStatus.STALE
    assert await state(farm) is AgentState.IDLE


async def test_late_notification_for_permission_opens_one_gate(farm: Farm) -> None:
    await farm.monitor.on_hook("architect", payload("PermissionRequest"))
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
