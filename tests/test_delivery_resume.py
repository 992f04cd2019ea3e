"""A prompt delivery cut short by a crash is resolved from what the pane says -- never
typed twice -- and a prompt that cannot be delivered fails with a reason instead of
holding up the queue. Real tmux, the demo agent (its log shows every prompt it received).

Each test sets up what a kill -9 at one moment of ``Delivery._deliver`` leaves behind:
the stored prompt (``typing_at`` set) and the pane (its mark, its input line).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from farmbot.events import PromptFailed
from farmbot.models import AgentKind, PromptStatus
from tests.farm import Farm, farm_for, make_config, received_prompts
from tests.helpers import FakeClock, retry_until


async def _delivered(farm: Farm, tmp_path: Path, text: str) -> list[str]:
    async def probe() -> list[str] | None:
        await farm.tick()
        found = [p for p in received_prompts(tmp_path) if p == text]
        return found or None

    found: list[str] = await retry_until(probe, timeout=10, message=f"{text!r} to arrive")
    return found


async def _cut_short(farm: Farm, text: str) -> int:
    """A pending prompt whose typing began (the first step of a delivery) -- then a crash."""
    clock = farm.graph.clock
    prompt = await farm.storage.prompts.add_prompt(
        "architect", text, "alice", clock(), wait_ready=True
    )
    await farm.storage.prompts.mark_typing(prompt.id, clock())
    return prompt.id


async def _status(farm: Farm, prompt_id: int) -> PromptStatus:
    stored = await farm.storage.prompts.get_prompt(prompt_id)
    assert stored is not None
    return stored.status


async def test_a_prompt_pasted_but_not_submitted_gets_its_enter_only(
    architect: Farm, tmp_path: Path
) -> None:
    farm = architect
    text = "fix the login page\nand its tests"
    prompt_id = await _cut_short(farm, text)
    # The paste went in (and marked the pane, in the same tmux command) -- no Enter.
    await farm.tmux.paste("architect", text, mark=f"{prompt_id} pasted")
    await farm.until_screen("architect", "and its tests")
    assert await _delivered(farm, tmp_path, text) == [text]
    await farm.until_idle("architect")
    assert received_prompts(tmp_path).count(text) == 1  # not typed a second time
    assert await _status(farm, prompt_id) is PromptStatus.DELIVERED


async def test_a_prompt_submitted_before_the_crash_is_never_typed_again(
    architect: Farm, tmp_path: Path
) -> None:
    farm = architect
    prompt_id = await _cut_short(farm, "write the changelog")
    # Paste and Enter both went in (each marking the pane); the crash came before the
    # prompt was stored as delivered.
    await farm.graph.keyboard.type_text("architect", "write the changelog", prompt_id)
    await farm.until_screen("architect", "✓ done: write the changelog")
    # Before farmbot is back, the screen moves on: its echo is no longer in sight.
    for _ in range(5):
        await farm.tmux.paste("architect", "help")
        await farm.tmux.send_keys("architect", "Enter")
        await asyncio.sleep(0.1)
    await retry_until(lambda: received_prompts(tmp_path).count("help") == 5, message="5 helps")
    assert "write the changelog" not in await farm.screen("architect")
    await farm.until_idle("architect")
    assert await _status(farm, prompt_id) is PromptStatus.DELIVERED
    for _ in range(10):
        await farm.tick()
    assert received_prompts(tmp_path) == ["write the changelog"] + ["help"] * 5


async def test_a_prompt_whose_typing_never_began_on_screen_is_typed_once(
    architect: Farm, tmp_path: Path
) -> None:
    farm = architect
    await _cut_short(farm, "write the docs")  # ... and the crash came before the paste
    assert await _delivered(farm, tmp_path, "write the docs") == ["write the docs"]
    await farm.until_idle("architect")
    assert received_prompts(tmp_path).count("write the docs") == 1


async def test_text_left_on_the_input_line_is_cleared_before_the_prompt_is_typed(
    architect: Farm, tmp_path: Path
) -> None:
    farm = architect
    # What an older farmbot left: the prompt pasted twice onto one line, never submitted.
    text = "relsec-p00045-builder-2"
    prompt_id = await _cut_short(farm, text)
    await farm.tmux.paste("architect", text + text)
    await farm.until_screen("architect", f"demo> {text}{text}")
    assert await _delivered(farm, tmp_path, text) == [text]
    await farm.until_idle("architect")
    assert received_prompts(tmp_path) == [text]  # exactly the prompt, exactly once
    assert await _status(farm, prompt_id) is PromptStatus.DELIVERED


async def test_a_cut_short_prompt_to_a_busy_agent_is_typed_ahead_not_failed(
    tmp_path: Path, tmux_socket: str, clock: FakeClock
) -> None:
    config = make_config(tmp_path, tmux_socket)
    slow = {**config.agents["demo"].env, "FARMBOT_DEMO_STEP": "0.5", "FARMBOT_DEMO_STEPS": "6"}
    demo = replace(config.agents["demo"], env=slow)
    config = replace(config, agents={**config.agents, "demo": demo})
    async with farm_for(config, tmp_path, clock) as farm:
        await farm.supervisor.spawn(AgentKind.ARCHITECT, None, None, "alice")
        await farm.until_idle("architect")
        await farm.supervisor.send("architect", "work slowly", "alice")  # its echo stays
        await farm.until_screen("architect", "step 1/")
        prompt_id = await _cut_short(farm, "after the work")

        async def typed() -> bool:
            await farm.tick()
            return await _status(farm, prompt_id) is PromptStatus.DELIVERED

        await retry_until(typed, message="the prompt to be typed ahead")
        assert "✓ done: work slowly" not in await farm.screen("architect")  # still busy
        assert await _delivered(farm, tmp_path, "after the work") == ["after the work"]
        assert received_prompts(tmp_path) == ["work slowly", "after the work"]


async def test_a_line_that_cannot_be_cleared_fails_the_prompt_with_a_reason(
    tmp_path: Path, tmux_socket: str, clock: FakeClock
) -> None:
    config = make_config(tmp_path, tmux_socket)
    demo = replace(config.agents["demo"], clear_keys=())  # a CLI farmbot cannot clear
    config = replace(config, agents={**config.agents, "demo": demo})
    async with farm_for(config, tmp_path, clock) as farm:
        await farm.supervisor.spawn(AgentKind.ARCHITECT, None, None, "alice")
        await farm.until_idle("architect")
        prompt_id = await _cut_short(farm, "ship it")
        await farm.tmux.paste("architect", "a draft typed by hand")
        await farm.until_screen("architect", "demo> a draft typed by hand")

        async def failed() -> PromptStatus | None:
            await farm.tick()
            status = await _status(farm, prompt_id)
            return status if status is PromptStatus.FAILED else None

        await retry_until(failed, message="the prompt to fail")
        stored = await farm.storage.prompts.get_prompt(prompt_id)
        assert stored is not None
        assert (
            "input line shows text farmbot could not clear ('a draft typed by hand')"
            in stored.error
        )
        [event] = [e for e in farm.seen if e.kind == PromptFailed.KIND]
        assert event.data["reason"] == stored.error
        assert "ship it" not in received_prompts(tmp_path)
        assert "demo> a draft typed by hand" in await farm.screen("architect")  # left alone


async def test_a_prompt_the_agent_never_gets_ready_for_fails_and_the_queue_goes_on(
    architect: Farm, tmp_path: Path
) -> None:
    farm, clock = architect, architect.graph.clock
    assert isinstance(clock, FakeClock)
    await farm.supervisor.send("architect", "hang", "alice")  # busy until Ctrl-C
    await farm.until_screen("architect", "step 1/")
    prompts = farm.storage.prompts
    first = await prompts.add_prompt(
        "architect", "first, queued", "alice", clock(), wait_ready=True
    )
    clock.advance(3000)
    second = await prompts.add_prompt(
        "architect", "second, queued later", "alice", clock(), wait_ready=True
    )
    clock.advance(700)  # the first has waited 3700 s (over an hour), the second 700 s

    async def expired() -> bool:
        await farm.tick()
        return await _status(farm, first.id) is PromptStatus.FAILED

    await retry_until(expired, message="the first prompt to time out")
    stored = await prompts.get_prompt(first.id)
    assert stored is not None and stored.error.startswith(
        "architect was not ready for it within 60 min (it is "
    )
    [alert] = [a for a in await farm.storage.outbox.recent_alerts(10) if a.kind == "prompt.failed"]
    assert alert.title == f"prompt #{first.id} to architect not delivered"
    assert await _status(farm, second.id) is PromptStatus.PENDING

    await farm.tmux.send_keys("architect", "C-c")  # the agent comes back
    assert await _delivered(farm, tmp_path, "second, queued later")
    await farm.until_idle("architect")
    assert "first, queued" not in received_prompts(tmp_path)


async def test_a_cut_short_prompt_is_resolved_from_its_pane_however_late(
    architect: Farm, tmp_path: Path
) -> None:
    farm, clock = architect, architect.graph.clock
    assert isinstance(clock, FakeClock)
    prompt_id = await _cut_short(farm, "submitted long ago")
    await farm.graph.keyboard.type_text("architect", "submitted long ago", prompt_id)
    await farm.until_screen("architect", "✓ done: submitted long ago")
    clock.advance(7200)  # far past prompt_timeout: still not "failed", and not typed again
    await farm.until_idle("architect")
    assert await _status(farm, prompt_id) is PromptStatus.DELIVERED
    assert received_prompts(tmp_path) == ["submitted long ago"]


async def test_time_farmbot_was_down_does_not_count_against_a_queued_prompt(
    tmp_path: Path, tmux_socket: str, clock: FakeClock
) -> None:
    config = make_config(tmp_path, tmux_socket)
    async with farm_for(config, tmp_path, clock) as farm:
        await farm.supervisor.spawn(AgentKind.ARCHITECT, None, None, "alice")
        await farm.until_idle("architect")
        queued = await farm.storage.prompts.add_prompt(
            "architect", "queued before a long outage", "alice", clock(), wait_ready=True
        )
    clock.advance(7200)  # farmbot was down for two hours
    async with farm_for(config, tmp_path, clock) as farm:
        assert await _delivered(farm, tmp_path, "queued before a long outage")
        assert await _status(farm, queued.id) is PromptStatus.DELIVERED
