"""Typing into agents' panes: one writer per pane at a time, and never into a question.

Text is pasted literally (bracketed paste, through a tmux buffer) and submitted with
Enter after a pause, so a TUI sees two events; keys are tmux key names. Before a prompt
is typed the screen is read under the pane's lock: keys typed into an open permission
dialog would answer it, so a pane showing a question gets nothing.

Typing a prompt marks the pane (tmux.py, "typing leaves a mark"): the paste sets
``<prompt id> pasted`` and the Enter sets ``<prompt id> sent``, each in the same tmux
command as the keys, so after a crash ``typing_mark`` says exactly how far it got.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from farmbot.errors import CommandError, Conflict, TmuxError
from farmbot.models import Agent, AgentState
from farmbot.supervisor.panes import classify, input_line
from farmbot.supervisor.state import Rules
from farmbot.supervisor.tmux import Tmux

PASTE_SETTLE = 0.15  # seconds between a paste and its Enter, so TUIs see two events
READ_LINES = 40
CLEAR_SETTLE = 0.1  # seconds between reads while the input line empties
CLEAR_READS = 15
PASTED, SENT = "pasted", "sent"

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

    async def type_text(self, agent_id: str, text: str, prompt_id: int | None = None) -> None:
        """Paste ``text`` and press Enter (hold the pane first). Raises ``TmuxError``.

        ``prompt_id``: mark the pane with how far typing that prompt got.
        """
        await self._tmux.paste(agent_id, text, mark=_mark(prompt_id, PASTED))
        await asyncio.sleep(PASTE_SETTLE)
        await self._tmux.send_keys(agent_id, "Enter", mark=_mark(prompt_id, SENT))
        self.typed += 1

    async def typing_mark(self, agent_id: str) -> tuple[int, str] | None:
        """The prompt last typed into the pane and how far: ``(id, "pasted"|"sent")``."""
        id_, _, phase = (await self._tmux.typing_mark(agent_id)).partition(" ")
        if not id_.isdecimal() or phase not in (PASTED, SENT):
            return None
        return int(id_), phase

    async def shows(self, agent_id: str, text: str) -> bool:
        """Whether ``text`` is on the pane's last lines (hold the pane first)."""
        return any(text in line for line in await self._tmux.capture(agent_id, READ_LINES))

    async def input_text(self, agent: Agent) -> str | None:
        """What is typed on the agent's input line ("" if nothing; None: cannot tell).

        Only a pane that shows no work and no question has an input line to read: a
        REPL's last echoed prompt stays in sight while it works.
        """
        rules = self._rules_for(agent)
        if rules is None:
            return None
        lines = await self._tmux.capture(agent.id, READ_LINES)
        if classify(lines, rules.patterns) in (AgentState.BUSY, AgentState.WAITING):
            return None
        return input_line(lines, rules.patterns)

    async def clear_input(self, agent: Agent) -> bool:
        """Empty the input line with the profile's ``clear_keys`` (hold the pane first).

        True once the screen shows it empty; False when it cannot be emptied (no keys, or
        text is still there after them). Raises ``TmuxError``.
        """
        rules = self._rules_for(agent)
        if rules is None or not rules.clear_keys:
            return False
        await self._tmux.send_keys(agent.id, *rules.clear_keys)
        self.pressed += 1
        for _ in range(CLEAR_READS):
            await asyncio.sleep(CLEAR_SETTLE)
            if await self.input_text(agent) == "":
                return True
        return False

    async def submit(self, agent_id: str, prompt_id: int | None = None) -> None:
        """Press Enter (hold the pane first): what finishes a paste. Raises ``TmuxError``."""
        await self._tmux.send_keys(agent_id, "Enter", mark=_mark(prompt_id, SENT))

    async def press(self, agent_id: str, keys: tuple[str, ...]) -> None:
        """Press tmux keys (``1``, ``Escape``) in an agent's pane, never mid-paste."""
        async with self.holding(agent_id):
            try:
                await self._tmux.send_keys(agent_id, *keys)
            except TmuxError as exc:
                raise CommandError(f"could not type into {agent_id}: {exc}") from exc
        self.pressed += 1


def _mark(prompt_id: int | None, phase: str) -> str | None:
    return None if prompt_id is None else f"{prompt_id} {phase}"
