"""Prompt delivery: type a prompt now, or queue it durably until the agent is ready.

``send`` types at once into an agent that can take it, and queues otherwise (the agent is
starting, paused by a usage limit, or has prompts waiting already). ``run()`` delivers the
queue -- at most one prompt per agent at a time, several agents at once -- on its own
task, never inside the monitor's tick, so a burst of spawns never delays death detection.
Every prompt goes in under the pane's lock, after the screen was read: nothing is typed
into a pane showing a question (a pending permission gate counts: a CLI's hook asks
before its dialog is drawn). With ``node`` given, only that node's agents are typed into
(another node's agents are in another machine's tmux).

**Exactly once, across crashes.** Typing a prompt is four steps, each recorded before the
next: ``typing_at`` is stored (1), the paste goes in and marks the pane ``<id> pasted``
(2, one tmux command), Enter goes in and marks it ``<id> sent`` (3, one tmux command),
the prompt is stored delivered (4). A prompt still pending with ``typing_at`` set was cut
short, and the pane's mark says where (``_resume``): ``sent`` -- it was submitted: stored
delivered, never typed again; ``pasted`` -- its text is on the input line: Enter only;
anything else -- the paste never happened: the input line is read, emptied with the
profile's ``clear_keys`` if something is left on it (a half-typed draft, a repeat an
older farmbot pasted), and the prompt is typed once. A line that cannot be emptied fails
the prompt rather than typing onto it.

**Nothing waits forever.** A prompt not delivered within ``prompt_timeout`` of being
queued (the agent never became ready for it; time farmbot was down does not count) fails
with the reason, and an alert, and the prompts behind it go on. A cut-short prompt is
resolved from its pane instead, while its agent lives.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Literal

from farmbot.bus import EventBus
from farmbot.config.schema import SupervisorConfig
from farmbot.errors import CommandError, Conflict, TmuxError
from farmbot.events import PromptDelivered, PromptFailed
from farmbot.models import Agent, AgentState, DesiredState, Prompt, PromptStatus
from farmbot.storage.agents import AgentStore
from farmbot.storage.prompts import PromptStore
from farmbot.supervisor import state as sm
from farmbot.supervisor.keyboard import Keyboard
from farmbot.supervisor.monitor import Monitor
from farmbot.supervisor.prompts import clean_prompt

log = logging.getLogger(__name__)

AT_ONCE = 8  # agents typed into concurrently


Resumed = Literal["submitted", "entered", "type"]


class Undeliverable(CommandError):
    """The pane cannot take the prompt (the prompt fails, with this as its reason)."""


@dataclass(frozen=True, slots=True)
class Sent:
    """A prompt as queued or typed."""

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
        self._started = clock()
        self.delivered = 0
        self.failed = 0

    def reconfigure(self, config: SupervisorConfig) -> None:
        """New prompt size and ready timeout, for the next prompts."""
        self._config = config

    def __repr__(self) -> str:
        return f"<Delivery delivered={self.delivered} failed={self.failed}>"

    def statistics(self) -> dict[str, int | float | str]:
        return {"delivered": self.delivered, "failed": self.failed}

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
            step = "type" if prompt.typing_at is None else await self._resume(agent, prompt)
            if step == "type":
                await self._prompts.mark_typing(prompt.id, self._clock())
                await self._keyboard.type_text(agent.id, prompt.text, prompt.id)
        except TmuxError as exc:
            await self._fail(agent, prompt, f"could not type into {agent.id}: {exc}")
            raise CommandError(f"could not type into {agent.id}: {exc}") from exc
        except Undeliverable as exc:
            await self._fail(agent, prompt, str(exc))
            raise
        # A prompt submitted before farmbot stopped may well be done by now: the screen
        # says what the agent does, not an assumption that it just began.
        await self._delivered(agent, prompt, working=step != "submitted")

    async def _resume(self, agent: Agent, prompt: Prompt) -> Resumed:
        """Finish a prompt whose typing a crash cut short (hold the pane first).

        "submitted": it went in before farmbot stopped; "entered": it had been pasted, and
        Enter submitted it now; "type": it was never pasted and the input line is empty
        (emptied if need be), so it is to be typed now.
        """
        mark = await self._keyboard.typing_mark(agent.id)
        if mark == (prompt.id, "sent"):
            log.info("%s: prompt %s was submitted before farmbot stopped", agent.id, prompt.id)
            return "submitted"
        if mark == (prompt.id, "pasted"):
            log.info("%s: prompt %s was pasted before farmbot stopped; Enter", agent.id, prompt.id)
            await self._keyboard.submit(agent.id, prompt.id)
            return "entered"
        left = await self._keyboard.input_text(agent)
        if mark is None and left and left == _first_line(prompt.text):
            # Pasted by a farmbot that did not mark panes yet, and not submitted: Enter.
            log.info("%s: prompt %s is on its input line; Enter", agent.id, prompt.id)
            await self._keyboard.submit(agent.id, prompt.id)
            return "entered"
        if left:
            log.info(
                "%s: clearing its input line before typing prompt %s (it shows %r)",
                agent.id,
                prompt.id,
                left[:60],
            )
            if not await self._keyboard.clear_input(agent):
                raise Undeliverable(
                    f"{agent.id}'s input line shows text farmbot could not clear "
                    f"({left[:60]!r}); typing there would mix the two"
                )
        return "type"

    async def _delivered(self, agent: Agent, prompt: Prompt, *, working: bool) -> None:
        await self._prompts.mark_prompt(prompt.id, PromptStatus.DELIVERED, self._clock())
        self.delivered += 1
        if working:  # it has work now; the pane (or a hook) says when it is idle again
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

    async def _fail(self, agent: Agent, prompt: Prompt, reason: str) -> None:
        """Mark the prompt failed, and tell people (an alert)."""
        await self._prompts.mark_prompt(prompt.id, PromptStatus.FAILED, self._clock(), reason)
        self.failed += 1
        log.warning("prompt %s to %s failed: %s", prompt.id, agent.id, reason)
        await self._bus.publish(
            PromptFailed(
                agent_id=agent.id,
                project=agent.project,
                prompt_id=prompt.id,
                source=prompt.source,
                reason=reason,
                head=sm.prompt_head(prompt.text),
            )
        )

    async def _expire(self, pending: list[Prompt]) -> list[Prompt]:
        """Fail the prompts pending longer than ``prompt_timeout``; return the others."""
        timeout = self._config.prompt_timeout
        now = self._clock()
        kept: list[Prompt] = []
        for prompt in pending:
            # Time farmbot was down does not count: it could not deliver then.
            since = max(prompt.created_at, prompt.not_before or 0.0, self._started)
            if now - since < timeout:
                kept.append(prompt)
                continue
            agent = await self._agents.get_agent(prompt.agent_id)
            if agent is None:
                await self._prompts.mark_prompt(prompt.id, PromptStatus.CANCELLED, now)
                continue
            if prompt.typing_at is not None and agent.state.is_live:
                kept.append(prompt)  # cut short: its pane says how far it got (_resume)
                continue
            async with self._keyboard.holding(agent.id):  # not while it is being typed
                fresh = await self._prompts.get_prompt(prompt.id)
                if fresh is None or fresh.status is not PromptStatus.PENDING:
                    continue
                why = f"{agent.id} was not ready for it within {sm.minutes(timeout)}"
                await self._fail(
                    agent, fresh, f"{why} (it is {agent.state.value}: {agent.state_reason})"
                )
        return kept

    async def deliver_pending(self) -> int:
        """Deliver queued prompts, at most one per agent, to agents ready for them."""
        firsts: dict[str, Prompt] = {}
        for prompt in await self._expire(await self._prompts.pending_prompts()):
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
                await self._deliver(fresh, queue[0])
            except (Conflict, TmuxError, Undeliverable):  # Undeliverable: failed, and said so
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


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")
