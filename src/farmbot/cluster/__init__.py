"""Several machines, one farm: node identity, heartbeats, leadership and routing.

Every node runs ``farmbot serve`` with its own tmux and supervises the agents it
started; they share one PostgreSQL database. This package is the component that makes
them one farm (``Cluster``, built in farmbot.build, run by farmbot.daemon):

- nodes.py: each node's row and heartbeat; the leader's watch for nodes gone quiet.
- leadership.py: one chat leader (chat interfaces, alert notifier, cron), elected
  through an advisory lock held on a dedicated session; failover within seconds.
- routing.py: a command runs on the node that holds what it acts on, through rows
  claimed with ``FOR UPDATE SKIP LOCKED`` and woken by ``LISTEN/NOTIFY``; worker.py is
  the side of the node that runs them.
- steps.py: the autopilot (on the leader) has its steps carried out on the nodes of its
  builders and projects through the same rows (``RoutedBuilders``, ``StepRunner``).

With SQLite there is one node: it leads from start to stop, runs every command itself
and runs no loop of its own (``Cluster.shared`` is False); agents still record its name.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from farmbot.bot.router import Router
from farmbot.bus import EventBus
from farmbot.cluster.leadership import ElectedLeader, LeaderDuties, Loop, SoleLeader
from farmbot.cluster.nodes import Heartbeat, NodeDirectory, NodeWatcher
from farmbot.cluster.routing import Dispatcher, Replies
from farmbot.cluster.steps import RoutedBuilders, StepRunner
from farmbot.cluster.worker import CommandWorker, Listener
from farmbot.config.schema import Config
from farmbot.messages import Incoming, Reply
from farmbot.storage import Storage
from farmbot.storage.db import OpensSessions

__all__ = [
    "Cluster",
    "LeaderDuties",
    "NodeDirectory",
    "Replies",
    "RoutedBuilders",
    "StepRunner",
    "life_of",
]


def life_of(node: str) -> str:
    """A name for this life of the node: its claims, distinct from an earlier life's."""
    return f"{node}/{secrets.token_hex(4)}"


class Cluster:
    """This node in its farm: who it is, whether it leads, where commands run."""

    def __init__(
        self,
        config: Config,
        storage: Storage,
        router: Router,
        bus: EventBus,
        directory: NodeDirectory,
        clock: Callable[[], float] = time.time,
        *,
        instance: str | None = None,
        replies: Replies | None = None,
        steps: StepRunner | None = None,
    ) -> None:
        """``instance`` and ``replies`` are shared with the autopilot's ``RoutedBuilders``
        (built before this); ``steps`` carries out the autopilot steps routed here."""
        self.node = config.node.name
        self.instance = instance or life_of(self.node)  # this life of the node
        self.url = config.server.url  # the daemon sets the bound one
        self.directory = directory
        self._config = config
        self._storage = storage
        self._router = router
        db = storage.db
        self.shared = isinstance(db, OpensSessions)
        self.leader: ElectedLeader | SoleLeader
        self._dispatcher: Dispatcher | None = None
        self._loops: list[tuple[str, Loop]] = []
        self._leader_loops: list[tuple[str, Loop]] = []
        if not isinstance(db, OpensSessions):
            self.leader = SoleLeader()
            return
        self.leader = ElectedLeader(db, storage.nodes, self.node, config.node.down_after)
        replies = replies or Replies(storage)
        self._dispatcher = Dispatcher(
            config, router, storage, directory, replies, self.instance, clock
        )
        self.worker = CommandWorker(config.node, router, storage, self.instance, steps)
        held = [p.name for p in config.projects if p.held]
        self.heartbeat = Heartbeat(
            config.node,
            storage.nodes,
            projects=held,
            url=lambda: self.url,
            leading=lambda: self.leader.leading,
        )
        self.watcher = NodeWatcher(config.node, storage.nodes, storage.agents, bus, clock)
        self._loops = [
            ("heartbeat", self.heartbeat.run),
            ("routed-commands", self.worker.run),
            ("listener", Listener(db, self.node, self.worker, replies).run),
        ]
        self._leader_loops = [("node-watcher", self.watcher.run)]

    def __repr__(self) -> str:
        mode = "shared" if self.shared else "sole"
        return f"<Cluster {self.node!r} {mode} {self.leader!r} {self._dispatcher!r}>"

    def statistics(self) -> dict[str, int | float | str]:
        stats: dict[str, int | float | str] = {
            "node": self.node,
            "leading": int(self.leader.leading),
        }
        if self._dispatcher is not None:
            stats.update(
                routed=self._dispatcher.routed,
                timed_out=self._dispatcher.timed_out,
                taken_over=self._dispatcher.taken_over,
                ran_for_others=self.worker.ran,
                interrupted=self.worker.interrupted,
                heartbeats=self.heartbeat.beats,
            )
        return stats

    async def handle(self, msg: Incoming) -> Reply:
        """Every interface's entry: run the command here, or on the node it belongs to."""
        if self._dispatcher is None:
            return await self._router.handle(msg)
        return await self._dispatcher.handle(msg)

    async def start(self) -> None:
        """Take up this node's agents and, on a shared database, announce the node."""
        # One node (SQLite) runs every agent there is, whatever name it had before;
        # on a shared database it takes up only rows from before there were nodes.
        await self._storage.agents.claim_agents(self.node, every=not self.shared)
        if self.shared:
            await self.heartbeat.register()

    def loops(self) -> list[tuple[str, Loop]]:
        """What every node runs (nothing with one node): heartbeat, routing, listening."""
        return list(self._loops)

    def leader_loops(self) -> list[tuple[str, Loop]]:
        """What only the leader runs besides the notifier and cron: the node watcher."""
        return list(self._leader_loops)

    async def stopped(self) -> None:
        """Record a clean stop (shutdown, after resigning)."""
        if self.shared:
            await self.heartbeat.stopped()
