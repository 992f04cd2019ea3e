"""Typing into agents' panes: one writer per pane at a time, and never into a question.

Text is pasted literally (bracketed paste, through a tmux buffer) and submitted with
Enter after a pause, so a TUI sees two events; keys are tmux key names. Before a prompt
is typed the screen is read under the pane's lock: keys typed into an open permission
dialog would answer it, so a pane showing a question gets nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from farmbot.errors import CommandError, Conflict, TmuxError
from farmbot.models import Agent, AgentState
from farmbot.supervisor.panes import classify
from farmbot.supervisor.state import Rules
from farmbot.supervisor.tmux import Tmux

PASTE_SETTLE = 0.15  # seconds between a paste and its Enter, so TUIs see two events
READ_LINES = 40

RulesFor = Callable[[Agent], Rules | None]


class Keyboard:
    def __init__(self, tmux: Tmux, rules_for: RulesFor) -> None:
        self._tmux = tmux
        self._rules_for = rules_for
        self._locks: dict[str, asyncio.Lock] = {}
        self.typed = 0
        self.pressed = 0

    def __repr__(self) -> str:
        return f"<Keyboard typed={self.typed} pressed={self.pressed}>"

    @asynccontextmanager
    async def holding(self, agent_id: str) -> AsyncIterator[None]:
        """Hold the pane: nothing else types into it meanwhile."""
        async with self._locks.setdefault(agent_id, asyncio.Lock()):
            yield

    async def asking(self, agent: Agent) -> bool:
        """Whether the pane shows a question (a permission dialog) right now."""
        rules = self._rules_for(agent)
        if rules is None:
            return False
        lines = await self._tmux.capture(agent.id, READ_LINES)
        return classify(lines, rules.patterns) is AgentState.WAITING

    async def refuse_if_asking(self, agent: Agent) -> None:
        """Raise ``Conflict`` when the pane shows a question (hold the pane first)."""
        if await self.asking(agent):
            raise Conflict(
                f"{agent.id} is asking a question (a permission prompt); text typed now "
                f"would answer it. Decide it first (/gates), then send again."
            )

    async def type_text(self, agent_id: str, text: str) -> None:
        """Paste ``text`` and press Enter (hold the pane first). Raises ``TmuxError``."""
        await self._tmux.paste(agent_id, text)
        await asyncio.sleep(PASTE_SETTLE)
        await self._tmux.send_keys(agent_id, "Enter")
        self.typed += 1

    async def shows(self, agent_id: str, text: str) -> bool:
        """Whether ``text`` is on the pane's last lines (hold the pane first)."""
        return any(text in line for line in await self._tmux.capture(agent_id, READ_LINES))

    async def submit(self, agent_id: str) -> None:
        """Press Enter (hold the pane first): what finishes a paste. Raises ``TmuxError``."""
        await self._tmux.send_keys(agent_id, "Enter")

    async def press(self, agent_id: str, keys: tuple[str, ...]) -> None:
        """Press tmux keys (``1``, ``Escape``) in an agent's pane, never mid-paste."""
        async with self.holding(agent_id):
            try:
                await self._tmux.send_keys(agent_id, *keys)
            except TmuxError as exc:
                raise CommandError(f"could not type into {agent_id}: {exc}") from exc
        self.pressed += 1
