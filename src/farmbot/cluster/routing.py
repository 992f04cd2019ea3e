"""Routing through the database: a command runs on the node that holds what it acts on.

A command may arrive at any node (its web console, its CLI, the chat leader). Before it
runs, ``Dispatcher.handle`` decides where from the parsed command, in one place:

- a command naming an agent (``/send``, ``/tail``, ``/kill``, ...) runs on the agent's
  node; ``/approve`` and ``/reject`` on the node of the gate's agent (a permission gate
  is answered in that agent's pane) or one holding the gate's project;
- ``/spawn`` runs on the least-loaded node (fewest live agents) holding the project,
  this node when it is among the least loaded;
- the autopilot decides on the leader, so ``/approve`` and ``/reject`` of a milestone
  gate and ``/task assign`` run there (its steps reach the builders' nodes through
  cluster/steps.py);
- everything else runs here.

Another node's command becomes a row (storage/routed.py) carrying the person's platform,
user and chat, so the target runs it through its own ``Router`` -- authorized and
audited as that person -- and stores the ``Reply``; the waiting node returns it to the
interface it came from. The target's side is cluster/worker.py: woken by ``NOTIFY``, it
claims its rows (``FOR UPDATE SKIP LOCKED``) with a lease it renews while a command
runs. A node that died holding a claim leaves it to expire: its next life re-claims it
and the router, told the run was interrupted, answers what happened rather than run it
twice; or, when the target stays down, the waiting node takes the expired claim over
and tells the person the same. A waiting node gives up after ``answer_timeout`` with a
reply saying so; a row nobody claimed by then is withdrawn, so it never runs after the
person was told it did not.

A command from an inbound update (Telegram's) carries the update as its ``source``: a
new leader handing over an update whose handling was cut short finds the row already
queued for it and returns that row's reply instead of queueing it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping

from farmbot.bot.commands import Approve, AssignTask, Reject, Spawn, parse
from farmbot.bot.router import Router, interrupted_notice, misattributed
from farmbot.cluster.nodes import NodeDirectory
from farmbot.config.node import NodeConfig
from farmbot.config.schema import Config
from farmbot.errors import CommandError, StorageError
from farmbot.messages import Incoming, Reply, ago
from farmbot.models import NodeHealth, NodeState, RoutedCommand
from farmbot.storage import Storage
from farmbot.supervisor.autopilot import MILESTONE

log = logging.getLogger(__name__)

POLL = 1.0  # seconds between looks at the rows when no notification came (a safety net)


def holders(project: str, states: Mapping[str, NodeState]) -> list[str]:
    """The nodes holding ``project`` (live ones first), by the rows they heartbeat."""
    found = [s for s in states.values() if project in s.node.projects]
    found.sort(key=lambda s: (s.health is not NodeHealth.UP, s.name))
    return [s.name for s in found]


def least_loaded(project: str, states: Mapping[str, NodeState], here: str) -> str | None:
    """Where a new agent of ``project`` goes: the node holding it that is up and runs the
    fewest live agents -- ``here`` when it is among them, else the first by name; None
    when no node holding it is up. ``/spawn`` and the autopilot's builders both go so."""
    up = [n for n in holders(project, states) if states[n].health is NodeHealth.UP]
    if not up:
        return None
    return min(up, key=lambda n: (states[n].agents, n != here, n))


def quiet(state: NodeState) -> str:
    """Why a node is not heard from, in words."""
    if state.health is NodeHealth.STOPPED:
        return "it was stopped"
    return f"node down, quiet for {ago(state.node.quiet)}"


def unheld(project: str, states: Mapping[str, NodeState]) -> str:
    """Why no node can take work of ``project`` now."""
    held = holders(project, states)
    if not held:
        return f"no node holds project {project}"
    return (
        f"project {project} is held only by node {', '.join(held)}, which is not heard"
        f" from ({quiet(states[held[0]])})"
    )


class Replies:
    """Waiting for the replies of routed commands, woken by their notifications."""

    def __init__(self, storage: Storage, *, poll: float = POLL) -> None:
        """``poll``: seconds between looks at a row when no notification came; whoever
        waits through this looks again as often (for a claim gone stale, say)."""
        self._routed = storage.routed
        self._waiting: dict[int, asyncio.Event] = {}
        self.poll = poll
        self.looks = 0  # at the rows of waited-for commands

    def __repr__(self) -> str:
        return f"<Replies waiting={len(self._waiting)} looks={self.looks}>"

    def wake(self, command_id: int | None = None) -> None:
        """A reply was stored (``None``: perhaps several; look at all)."""
        for waiting_id, event in self._waiting.items():
            if command_id is None or waiting_id == command_id:
                event.set()

    async def wait(self, command: RoutedCommand, seconds: float) -> RoutedCommand:
        """The command once answered, or as it is when ``seconds`` have passed."""
        event = self._waiting.setdefault(command.id, asyncio.Event())
        deadline = time.monotonic() + seconds
        try:
            while True:
                event.clear()
                found = await self._routed.get_command(command.id) or command
                self.looks += 1
                remaining = deadline - time.monotonic()
                if found.status in ("done", "cancelled") or remaining <= 0:
                    return found
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(remaining, self.poll)):
                        await event.wait()
        finally:
            self._waiting.pop(command.id, None)


class Dispatcher:
    """Decides where each command runs and runs it there (see the module docstring)."""

    def __init__(
        self,
        config: Config,
        router: Router,
        storage: Storage,
        directory: NodeDirectory,
        replies: Replies,
        claim: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._node: NodeConfig = config.node
        self._claim = claim  # this life of the node, when it takes a claim over
        self._router = router
        self._storage = storage
        self._directory = directory
        self._replies = replies
        self._clock = clock
        self.routed = 0
        self.timed_out = 0
        self.taken_over = 0

    def __repr__(self) -> str:
        return (
            f"<Dispatcher {self._node.name!r} routed={self.routed}"
            f" timed_out={self.timed_out} taken_over={self.taken_over}>"
        )

    async def handle(self, msg: Incoming) -> Reply:
        """Run ``msg`` here or on the node it belongs to; the reply either way."""
        if misattributed(msg):  # refused (and audited) here: a routed row names no asked
            return await self._router.handle(msg)
        try:
            if msg.source and msg.interrupted:
                # Handed over after a crash: it may have been routed already.
                queued = await self._storage.routed.command_for(msg.source)
                if queued is not None:
                    return await self._reply_of(queued, msg)
            where = await self._target(msg)
        except StorageError as exc:
            log.warning("routing %r: the database failed (%s); running it here", msg.text, exc)
            where = None
        if where is None:
            return await self._router.handle(msg)
        if isinstance(where, Reply):
            return await self._router.answer(msg, where, "unreachable")
        target, text = where
        return await self._remote(target, msg, text)

    # deciding -------------------------------------------------------------------------
    async def _target(self, msg: Incoming) -> tuple[str, str] | Reply | None:
        """(node, text to run there), a reply when the node cannot be reached, or None
        to run here."""
        try:
            command = parse(msg.text)
        except CommandError:
            return None  # the router explains the usage
        states = {s.name: s for s in await self._directory.states()}
        if isinstance(command, Spawn):
            return await self._for_spawn(command, msg.text, states)
        if isinstance(command, AssignTask):
            return self._to_leader(msg.text, states)
        agent_id = getattr(command, "agent", None)
        project: str | None = None
        if isinstance(command, Approve | Reject):
            gate = await self._storage.gates.get_gate(command.gate)
            if gate is None:
                return None
            if gate.kind == MILESTONE:
                return self._to_leader(msg.text, states)
            agent_id, project = gate.agent_id, gate.project
        if isinstance(agent_id, str):
            agent = await self._storage.agents.get_agent(agent_id)
            if agent is not None and agent.node not in ("", self._node.name):
                return self._reachable(agent.node, msg.text, states, f"{agent.id} runs on")
            return None
        if project is not None:
            held = holders(project, states)
            if held and self._node.name not in held:
                return self._reachable(held[0], msg.text, states, f"project {project} is on")
        return None

    async def _for_spawn(
        self, command: Spawn, text: str, states: dict[str, NodeState]
    ) -> tuple[str, str] | Reply | None:
        project = command.project or (
            self._config.projects[0].name if self._config.projects else None
        )
        if project is None:
            return None
        chosen = least_loaded(project, states, self._node.name)
        if chosen is None:
            if holders(project, states):
                return Reply(f"{unheld(project, states)}; try again when it is back", ok=False)
            return None  # nobody holds it: the supervisor here says what is wrong
        if chosen == self._node.name:
            return None
        if command.project is None:  # the default project here may not be the default there
            number = "" if command.number is None else f" {command.number}"
            text = f"/spawn {command.kind.value}{number} {project}"
        return chosen, text

    def _to_leader(self, text: str, states: dict[str, NodeState]) -> tuple[str, str] | None:
        """The leader's autopilot carries out milestone decisions and assignments (one
        decider); here while no other node leads (a change of leader: whoever leads next
        carries out what is recorded)."""
        leader = next((s.name for s in states.values() if s.leader), None)
        if leader is None or leader == self._node.name:
            return None
        return leader, text

    def _reachable(
        self, node: str, text: str, states: dict[str, NodeState], what: str
    ) -> tuple[str, str] | Reply:
        state = states.get(node)
        if state is not None and state.health is not NodeHealth.UP:
            return Reply(
                f"{what} node {node}, which is not heard from ({quiet(state)});"
                " try again when it is back",
                ok=False,
            )
        return node, text

    # waiting --------------------------------------------------------------------------
    async def _remote(self, target: str, msg: Incoming, text: str) -> Reply:
        command = await self._storage.routed.submit_command(
            origin=self._node.name,
            target=target,
            platform=msg.platform,
            user_id=msg.user_id,
            chat=msg.chat,
            display_name=msg.display_name,
            text=text,
            button=msg.button,
            source=msg.source or None,
            wait=self._node.answer_timeout,
            now=self._clock(),
        )
        self.routed += 1
        log.info("routed %r to node %s (command %d)", text, target, command.id)
        return await self._reply_of(command, msg)

    async def _reply_of(self, command: RoutedCommand, msg: Incoming) -> Reply:
        """Wait for a routed command's reply; take it over if its target died with it."""
        routed, timeout = self._storage.routed, self._node.answer_timeout
        target, text = command.target, command.text
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            found = await self._replies.wait(command, max(0.0, min(remaining, self._replies.poll)))
            if found.status == "done" and found.reply is not None:
                return Reply.from_json(found.reply)
            if found.status == "claimed":
                taken = await routed.take_over(command.id, self._claim, self._node.lease)
                if taken is not None:
                    return await self._interrupted(taken, msg)
            if remaining <= 0:
                break
        self.timed_out += 1
        if await routed.cancel_command(command.id):
            return Reply(
                f"node {target} did not answer in {timeout:g} s; it may be down."
                f" {text!r} was not run.",
                ok=False,
            )
        late = await routed.get_command(command.id)
        if late is not None and late.status == "done" and late.reply is not None:
            return Reply.from_json(late.reply)  # answered just now
        return Reply(
            f"node {target} took {text!r} but did not answer in {timeout:g} s; it may be"
            " down, and the command may have run there (check before running it again).",
            ok=False,
        )

    async def _interrupted(self, command: RoutedCommand, msg: Incoming) -> Reply:
        """Answer a command whose target died holding it: it is not run again."""
        self.taken_over += 1
        why = f"node {command.target} stopped while running it (its claim expired)"
        log.warning("routed command %d: %s; the person is told", command.id, why)
        told = Incoming(msg.platform, msg.user_id, msg.chat, command.text, interrupted=why)
        reply = Reply(interrupted_notice(told), ok=False)
        await self._storage.routed.answer_command(
            command.id, self._claim, reply.to_json(), self._clock()
        )
        return await self._router.answer(told, reply, "interrupted")
