"""A prompt delivery cut short by a crash (kill -9 between the paste and its Enter) is
finished after the restart, never typed twice -- real tmux, the demo agent."""

from __future__ import annotations

from pathlib import Path

from farmbot.models import PromptStatus
from tests.farm import Farm, received_prompts
from tests.helpers import retry_until


async def _delivered(farm: Farm, tmp_path: Path, text: str) -> list[str]:
    async def probe() -> list[str] | None:
        await farm.tick()
        found = [p for p in received_prompts(tmp_path) if p == text]
        return found or None

    found: list[str] = await retry_until(probe, timeout=10, message=f"{text!r} to arrive")
    return found


async def test_a_prompt_pasted_but_not_submitted_gets_its_enter_only(
    architect: Farm, tmp_path: Path
) -> None:
    farm, clock = architect, architect.graph.clock
    text = "fix the login page\nand its tests"
    prompt = await farm.storage.prompts.add_prompt(
        "architect", text, "alice", clock(), wait_ready=True
    )
    # As if: typing began and the paste went in -- and farmbot died before the Enter.
    await farm.storage.prompts.mark_typing(prompt.id, clock())
    await farm.tmux.paste("architect", text)
    await farm.until_screen("architect", "and its tests")
    assert await _delivered(farm, tmp_path, text) == [text]
    await farm.until_idle("architect")
    assert received_prompts(tmp_path).count(text) == 1  # not typed a second time
    stored = await farm.storage.prompts.get_prompt(prompt.id)
    assert stored is not None and stored.status is PromptStatus.DELIVERED


async def test_a_prompt_whose_typing_never_began_on_screen_is_typed_once(
    architect: Farm, tmp_path: Path
) -> None:
    farm, clock = architect, architect.graph.clock
    prompt = await farm.storage.prompts.add_prompt(
        "architect", "write the docs", "alice", clock(), wait_ready=True
    )
    await farm.storage.prompts.mark_typing(prompt.id, clock())  # ... and then the crash
    assert await _delivered(farm, tmp_path, "write the docs") == ["write the docs"]
    await farm.until_idle("architect")
    assert received_prompts(tmp_path).count("write the docs") == 1
