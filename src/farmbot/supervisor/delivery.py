"""Prompt delivery: type a prompt now, or queue it durably until the agent is ready.

``send`` types at once into an agent that can take it, and queues otherwise (the agent is
starting, paused by a usage limit, or has prompts waiting already). ``run()`` delivers the
queue -- at most one prompt per agent at a time, several agents at once -- on its own
task, never inside the monitor's tick, so a burst of spawns never delays death detection.
Every prompt goes in under the pane's lock, after the screen was read: nothing is typed
into a pane showing a question. That typing begins is recorded first: a prompt still
pending with it recorded was cut short (farmbot stopped between the paste and its
Enter), and is finished -- Enter, if the pane shows it -- rather than typed twice.
With ``node`` given, only that node's agents are typed into (another node's agents
are in another machine's tmux).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

from farmbot.bus import EventBus
from farmbot.config.schema import SupervisorConfig
from farmbot.errors import CommandError, Conflict, TmuxError
from farmbot.events import PromptDelivered
from farmbot.models import Agent, AgentState, DesiredState, Prompt, PromptStatus
from farmbot.storage.agents import AgentStore
from farmbot.storage.prompts import PromptStore
from farmbot.supervisor import state as sm
from farmbot.supervisor.keyboard import Keyboard
from farmbot.supervisor.monitor import Monitor
from farmbot.supervisor.prompts import clean_prompt

log = logging.getLogger(__name__)

AT_ONCE = 8  # agents typed into concurrently


@dataclass(frozen=True, slots=True)
class Sent:
    prompt: Prompt
    queued: bool  # waits for the agent to be ready instead of being typed now
    removed: int  # control characters removed from the text


class Delivery:
    def __init__(
        self,
        config: SupervisorConfig,
        *,
        agents: AgentStore,
        prompts: PromptStore,
        keyboard: Keyboard,
        monitor: Monitor,
        bus: EventBus,
        clock: Callable[[], float] = time.time,
        poll: float = 1.0,
        node: str | None = None,
    ) -> None:
        self._config = config
        self._node = node
        self._agents = agents
        self._prompts = prompts
        self._keyboard = keyboard
        self._monitor = monitor
        self._bus = bus
        self._clock = clock
        self._poll = poll
        self._wake = asyncio.Event()
        self.delivered = 0

    def reconfigure(self, config: SupervisorConfig) -> None:
        """New prompt size and ready timeout, for the next prompts."""
        self._config = config

    def __repr__(self) -> str:
        return f"<Delivery delivered={self.delivered}>"

    def statistics(self) -> dict[str, int | float | str]:
        return {"delivered": self.delivered}

    def wake(self) -> None:
        """Look at the queue now (a prompt was queued, an agent became ready)."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver queued prompts until cancelled."""
        while True:
            self._wake.clear()
            try:
                await self.deliver_pending()
            except Exception:  # the queue stays; the next pass tries again
                log.exception("delivering queued prompts failed")
            with suppress(TimeoutError):
                async with asyncio.timeout(self._poll):
                    await self._wake.wait()

    async def send(self, agent: Agent, text: str, by: str) -> Sent:
        """Type ``text`` into the agent now, or queue it until the agent is ready."""
        clean = clean_prompt(text, self._config.prompt_max_bytes)
        if agent.desired is DesiredState.STOPPED or not agent.state.is_live:
            raise Conflict(
                f"{agent.id} is {agent.state.value} ({agent.state_reason}); "
                f"/spawn it again before sending to it"
            )
        now = self._clock()
        queue = agent.state in (AgentState.STARTING, AgentState.PAUSED) or bool(
            await self._prompts.pending_prompts(agent.id)
        )
        if queue:
            prompt = await self._prompts.add_prompt(agent.id, clean.text, by, now, wait_ready=True)
            self.wake()
            return Sent(prompt, queued=True, removed=clean.removed)
        async with self._keyboard.holding(agent.id):
            await self._refuse_if_asking(agent)
            prompt = await self._prompts.add_prompt(agent.id, clean.text, by, now, wait_ready=False)
            await self._deliver(agent, prompt)
        return Sent(prompt, queued=False, removed=clean.removed)

    async def _refuse_if_asking(self, agent: Agent) -> None:
        """Raise ``Conflict`` while the agent asks a question: a pending permission gate
        (its hook asked, the dialog may not be drawn yet) or one on its screen."""
        gate = await self._monitor.open_question(agent.id)
        if gate is not None:
            raise Conflict(
                f"{agent.id} is asking a question (gate {gate.id}: {gate.title}); text typed "
                f"now would answer it. Decide it first (/approve {gate.id} or /reject "
                f"{gate.id}), then send again."
            )
        await self._keyboard.refuse_if_asking(agent)

    async def _deliver(self, agent: Agent, prompt: Prompt) -> None:
        await self._monitor.observe(agent, sm.Typing(prompt.text))
        try:
            if prompt.typing_at is not None and await self._keyboard.shows(
                agent.id, sm.prompt_head(prompt.text) or prompt.text
            ):
                log.info(
                    "%s: prompt %s was pasted before farmbot stopped; Enter", agent.id, prompt.id
                )
                await self._keyboard.submit(agent.id)
            else:
                await self._prompts.mark_typing(prompt.id, self._clock())
                await self._keyboard.type_text(agent.id, prompt.text)
        except TmuxError as exc:
            await self._prompts.mark_prompt(prompt.id, PromptStatus.FAILED, self._clock(), str(exc))
            raise CommandError(f"could not type into {agent.id}: {exc}") from exc
        await self._prompts.mark_prompt(prompt.id, PromptStatus.DELIVERED, self._clock())
        self.delivered += 1
        # It has work now; the pane (or a hook) says when it is idle again.
        await self._monitor.observe(agent, sm.Delivered(prompt.text, prompt.source))
        await self._bus.publish(
            PromptDelivered(
                agent_id=agent.id,
                project=agent.project,
                prompt_id=prompt.id,
                source=prompt.source,
                chars=len(prompt.text),
            )
        )

    async def deliver_pending(self) -> int:
        """Deliver queued prompts, at most one per agent, to agents ready for them."""
        firsts: dict[str, Prompt] = {}
        for prompt in await self._prompts.pending_prompts():
            firsts.setdefault(prompt.agent_id, prompt)
        if not firsts:
            return 0
        gate = asyncio.Semaphore(AT_ONCE)

        async def one(prompt: Prompt) -> bool:
            async with gate:
                return await self._deliver_first(prompt)

        async with asyncio.TaskGroup() as tasks:
            done = [tasks.create_task(one(p)) for p in firsts.values()]
        return sum(task.result() for task in done)

    async def _deliver_first(self, prompt: Prompt) -> bool:
        agent = await self._agents.get_agent(prompt.agent_id)
        if agent is not None and self._node is not None and agent.node != self._node:
            return False  # its node delivers it
        if agent is None or agent.desired is DesiredState.STOPPED:
            await self._prompts.mark_prompt(prompt.id, PromptStatus.CANCELLED, self._clock())
            return False
        if not self._ready_for(agent, prompt):
            return False
        async with self._keyboard.holding(agent.id):
            # `send` holds this lock while it types a prompt of its own, which was pending
            # when we looked: only a prompt still first in line goes in.
            queue = await self._prompts.pending_prompts(agent.id)
            fresh = await self._agents.get_agent(agent.id)
            if not queue or queue[0].id != prompt.id or fresh is None:
                return False
            if not self._ready_for(fresh, prompt):
                return False
            try:
                await self._refuse_if_asking(fresh)
                await self._deliver(fresh, prompt)
            except (Conflict, TmuxError):
                return False
            except CommandError as exc:
                log.warning("prompt %s to %s not delivered: %s", prompt.id, agent.id, exc)
                return False
        return True

    def _ready_for(self, agent: Agent, prompt: Prompt) -> bool:
        if prompt.not_before is not None and self._clock() < prompt.not_before:
            return False
        if prompt.typing_at is not None:  # cut short: the pane shows it half typed
            return agent.state in (AgentState.IDLE, AgentState.BUSY, AgentState.STUCK) or (
                agent.state is AgentState.STARTING
            )
        if agent.state is AgentState.IDLE:
            return True
        if agent.state is AgentState.STARTING:
            # A CLI whose ready prompt we never recognise still gets its prompt, late.
            return self._clock() - agent.state_since > self._config.ready_timeout
        # A prompt meant to be typed at once (its delivery was interrupted) goes to a busy
        # agent too, as a person typing ahead would; queued ones wait for idle.
        return not prompt.wait_ready and agent.state in (AgentState.BUSY, AgentState.STUCK)
