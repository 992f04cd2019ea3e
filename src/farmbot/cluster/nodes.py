"""Node identity and heartbeats: who is in the farm, who is heard from, who went quiet.

Every node stamps its row every ``[node] heartbeat`` seconds (``Heartbeat``) with the
projects it holds, the URL of its web console and whether it leads. Rows are stamped and
read with the database's clock, so a node is "down" when the database has not heard
from it for ``down_after`` seconds (three heartbeats), whatever the machines' clocks
say. A node stopped on purpose (SIGTERM) says so and is "stopped", never alerted about.
Two machines must not run as one node (each would take the other's agents for dead): a
node starting while its row is still heard from waits to see whether it goes quiet (a
crash a moment ago) and refuses to start if it does not (another machine of that name).

The leader watches the others (``NodeWatcher``): a node that went quiet raises
``NodeDown`` once, a node heard from again ``NodeUp``; the database's compare-and-set on
``down_since`` decides who reports, so a change of leader repeats no alert.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from farmbot import __version__
from farmbot.bus import EventBus
from farmbot.config.node import NodeConfig
from farmbot.errors import AlreadyRunning, StorageError
from farmbot.events import NodeDown, NodeUp
from farmbot.models import Node, NodeHealth, NodeState
from farmbot.storage.agents import AgentStore
from farmbot.storage.nodes import NodeStore

log = logging.getLogger(__name__)


class NodeDirectory:
    """The farm's nodes as people see them (``bot.commands.base.NodeView``)."""

    def __init__(self, config: NodeConfig, nodes: NodeStore) -> None:
        self.here = config.name
        self.down_after = config.down_after
        self._nodes = nodes

    def __repr__(self) -> str:
        return f"<NodeDirectory here={self.here!r} down_after={self.down_after:g}s>"

    async def states(self) -> list[NodeState]:
        rows = await self._nodes.list_nodes()
        loads = await self._nodes.agents_by_node()
        states = [
            NodeState(
                node=row,
                health=row.health(self.down_after),
                agents=loads.get(row.name, 0),
                leader=False,
                here=row.name == self.here,
            )
            for row in rows
        ]
        # The leader is the node that says so and is heard from (a dead leader's row may
        # still say so until the next leader takes over).
        leaders = [s for s in states if s.node.leading and s.health is NodeHealth.UP]
        leader = leaders[0].name if len(leaders) == 1 else None
        return [NodeState(s.node, s.health, s.agents, s.name == leader, s.here) for s in states]

    async def leader(self) -> str | None:
        return next((s.name for s in await self.states() if s.leader), None)


class Heartbeat:
    """Stamps this node's row every ``heartbeat`` seconds; the row is the node's presence."""

    def __init__(
        self,
        config: NodeConfig,
        nodes: NodeStore,
        *,
        projects: Sequence[str],
        url: Callable[[], str],
        leading: Callable[[], bool],
    ) -> None:
        self._config = config
        self._nodes = nodes
        self._projects = list(projects)
        self._url = url
        self._leading = leading
        self._failing = ""
        self.beats = 0

    def __repr__(self) -> str:
        return f"<Heartbeat {self._config.name!r} beats={self.beats}>"

    async def register(self) -> None:
        """Record this node starting (before anything routes to it); ``AlreadyRunning``
        when another farmbot heartbeats as this node."""
        name, down_after = self._config.name, self._config.down_after
        row = await self._find()
        if row is not None and row.health(down_after) is NodeHealth.UP:
            log.info("node %s was heard from %.1f s ago; waiting to see whether it runs",
                     name, row.quiet)  # fmt: skip
            await asyncio.sleep(down_after - row.quiet + self._config.heartbeat)
            now = await self._find()
            if now is not None and now.heartbeat_at != row.heartbeat_at and now.stopped_at is None:
                raise AlreadyRunning(
                    f"another farmbot runs as node {name} on this database (heard from"
                    f" {now.quiet:.0f} s ago, {now.url or 'no URL'}); give this one another"
                    " [node] name"
                )
        await self._nodes.register_node(
            self._config.name, url=self._url(), version=__version__, projects=self._projects
        )

    async def _find(self) -> Node | None:
        return next(
            (n for n in await self._nodes.list_nodes() if n.name == self._config.name), None
        )

    async def beat(self) -> None:
        found = await self._nodes.heartbeat(
            self._config.name, url=self._url(), projects=self._projects, leading=self._leading()
        )
        if not found:  # the row was deleted by hand: come back
            await self.register()
        self.beats += 1

    async def run(self) -> None:
        """Beat until cancelled; a database that fails is logged once per distinct error."""
        while True:
            try:
                await self.beat()
                if self._failing:
                    log.info("heartbeat: the database answers again")
                self._failing = ""
            except StorageError as exc:
                if str(exc) != self._failing:
                    log.error("heartbeat failed (others will see node %s as down): %s",
                              self._config.name, exc)  # fmt: skip
                self._failing = str(exc)
            await asyncio.sleep(self._config.heartbeat)

    async def stopped(self) -> None:
        """Record a clean stop: this node's agents are "node stopped", not "node down"."""
        try:
            await self._nodes.node_stopped(self._config.name)
        except StorageError as exc:
            log.warning("could not record that node %s stops: %s", self._config.name, exc)


class NodeWatcher:
    """The leader's eye on the other nodes: alerts when one goes quiet and comes back."""

    def __init__(
        self,
        config: NodeConfig,
        nodes: NodeStore,
        agents: AgentStore,
        bus: EventBus,
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._nodes = nodes
        self._agents = agents
        self._bus = bus
        self._clock = clock
        self.reported = 0

    def __repr__(self) -> str:
        return f"<NodeWatcher reported={self.reported}>"

    async def look(self) -> None:
        """Report every node that went quiet, or came back, since the last look."""
        for node in await self._nodes.list_nodes():
            if node.name == self._config.name:
                continue
            health = node.health(self._config.down_after)
            if health is NodeHealth.DOWN and node.down_since is None:
                if await self._nodes.mark_node_down(node.name, node.heartbeat_at, self._clock()):
                    running = [
                        a.id
                        for a in await self._agents.list_agents()
                        if a.node == node.name and a.state.is_live
                    ]
                    log.warning("node %s went quiet %.0f s ago", node.name, node.quiet)
                    self.reported += 1
                    await self._bus.publish(
                        NodeDown(node=node.name, quiet=node.quiet, agents=tuple(running))
                    )
            elif health is not NodeHealth.DOWN and node.down_since is not None:
                if await self._nodes.mark_node_up(node.name):
                    log.info("node %s is heard from again", node.name)
                    self.reported += 1
                    if health is NodeHealth.UP:
                        await self._bus.publish(NodeUp(node=node.name))

    async def run(self) -> None:
        """Look every heartbeat until cancelled."""
        while True:
            try:
                await self.look()
            except StorageError as exc:
                log.warning("watching the nodes failed: %s", exc)
            await asyncio.sleep(self._config.heartbeat)
