"""The target's side of routing: claim this node's routed commands, run them, answer.

``CommandWorker`` claims the rows routed to this node (``FOR UPDATE SKIP LOCKED``, with
a lease it renews while a command runs), runs each through this node's ``Router`` as the
person who sent it, and stores the reply for the node that waits. A row claimed again
(``attempts`` > 1: this node died running it, or its lease ran out) is handed to the
router as interrupted, which answers what happened instead of running it twice. As the
node starts it also takes over what its earlier life had claimed. The autopilot's steps
come the same way and go to ``steps`` (cluster/steps.py) instead of the router.

``Listener`` holds a dedicated session that ``LISTEN``s for routed commands and their
replies, and wakes the worker and the waiting commands (cluster/routing.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from farmbot.bot.router import Router
from farmbot.cluster.routing import POLL, Replies
from farmbot.config.node import NodeConfig
from farmbot.errors import StorageError
from farmbot.messages import Incoming
from farmbot.models import RoutedCommand
from farmbot.storage import Storage
from farmbot.storage.db import OpensSessions
from farmbot.storage.routed import COMMANDS_CHANNEL, REPLIES_CHANNEL

log = logging.getLogger(__name__)

AT_ONCE = 8  # routed commands a node runs concurrently
PRUNE_AFTER = 86400.0  # seconds finished rows are kept

Steps = Callable[[RoutedCommand], Awaitable[dict[str, Any]]]  # a claimed step -> its reply


class CommandWorker:
    """This node's side of routing: claims its rows, runs them, stores the replies."""

    def __init__(
        self,
        config: NodeConfig,
        router: Router,
        storage: Storage,
        claim: str,
        steps: Steps | None = None,
        *,
        poll: float = POLL,
    ) -> None:
        """``poll``: seconds between looks at the rows when no notification came."""
        self._config = config
        self._router = router
        self._steps = steps
        self._routed = storage.routed
        self._claim = claim  # this life of the node: an earlier life's claims are stale
        self._wake = asyncio.Event()
        self._running: set[int] = set()
        self._started = False  # the first claim also takes over an earlier life's claims
        self._poll = poll
        self.looks = 0  # at the rows, for claimable ones
        self.ran = 0
        self.interrupted = 0

    def __repr__(self) -> str:
        return f"<CommandWorker ran={self.ran} running={len(self._running)} looks={self.looks}>"

    def wake(self) -> None:
        """A command for this node was queued."""
        self._wake.set()

    async def run(self) -> None:
        """Claim and run this node's commands until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._renew(), name="routed-leases")
            tasks.create_task(self._prune(), name="routed-prune")
            while True:
                self._wake.clear()
                for command in await self._claimable():
                    self._running.add(command.id)
                    tasks.create_task(self._run(command), name=f"routed-{command.id}")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll):
                        await self._wake.wait()

    async def _claimable(self) -> list[RoutedCommand]:
        room = AT_ONCE - len(self._running)
        if room <= 0:
            return []
        try:
            found = await self._routed.claim_commands(
                self._config.name, self._claim, self._config.lease, room, orphans=not self._started
            )
            self._started = True
        except StorageError as exc:
            log.warning("routed commands: cannot claim: %s", exc)
            found = []
        self.looks += 1
        return found

    async def _run(self, command: RoutedCommand) -> None:
        if command.kind == "step":
            await self._step(command)
            return
        try:
            interrupted = ""
            if command.attempts > 1:
                self.interrupted += 1
                interrupted = f"node {self._config.name} stopped while running it"
                log.warning("routed command %d was interrupted; re-claimed", command.id)
            reply = await self._router.handle(
                Incoming(
                    platform=command.platform,
                    user_id=command.user_id,
                    chat=command.chat,
                    text=command.text,
                    display_name=command.display_name,
                    button=command.button,
                    source=command.source or "",
                    interrupted=interrupted,
                )
            )
            self.ran += 1
            answered = await self._routed.answer_command(
                command.id, self._claim, reply.to_json(), time.time()
            )
            if not answered:
                log.warning("routed command %d: the claim was lost; reply dropped", command.id)
        except StorageError as exc:
            log.error("routed command %d: the reply could not be stored: %s", command.id, exc)
        finally:
            self._running.discard(command.id)
            self._wake.set()  # room for another

    async def _step(self, command: RoutedCommand) -> None:
        """An autopilot step: its runner answers an interrupted one itself."""
        try:
            if self._steps is None:
                reply: dict[str, Any] = {
                    "error": f"node {self._config.name} carries out no autopilot steps"
                }
            else:
                reply = await self._steps(command)
            self.ran += 1
            if not await self._routed.answer_command(command.id, self._claim, reply, time.time()):
                log.warning("routed step %d: the claim was lost; reply dropped", command.id)
        except StorageError as exc:
            log.error("routed step %d: the reply could not be stored: %s", command.id, exc)
        finally:
            self._running.discard(command.id)
            self._wake.set()

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self._config.lease / 3)
            if self._running:
                try:
                    await self._routed.renew_leases(self._claim, self._config.lease)
                except StorageError as exc:
                    log.warning("routed commands: leases not renewed: %s", exc)

    async def _prune(self) -> None:
        while True:
            try:
                await self._routed.prune_commands(time.time() - PRUNE_AFTER)
            except StorageError as exc:
                log.debug("routed commands: not pruned: %s", exc)
            await asyncio.sleep(3600)


class Listener:
    """``LISTEN`` on a dedicated session: wakes the worker and the waiting commands."""

    def __init__(
        self, db: OpensSessions, node: str, worker: CommandWorker, replies: Replies
    ) -> None:
        self._db = db
        self._node = node
        self._worker = worker
        self._replies = replies
        self.heard = 0

    def __repr__(self) -> str:
        return f"<Listener heard={self.heard}>"

    async def run(self) -> None:
        """Listen until cancelled; reconnect after a failure (the poll covers the gap)."""
        failing = ""
        while True:
            session = None
            try:
                session = await self._db.session("listener")
                await session.listen(COMMANDS_CHANNEL, REPLIES_CHANNEL)
                failing = ""
                self._worker.wake()  # anything queued while nobody listened
                self._replies.wake()
                async for channel, payload in session.notifications(idle=5.0):
                    self.heard += 1
                    self._dispatch(channel, payload)
            except StorageError as exc:
                if str(exc) != failing:
                    log.warning("listener: %s; listening again shortly", exc)
                failing = str(exc)
            finally:
                if session is not None:
                    await session.aclose()
            await asyncio.sleep(1.0)

    def _dispatch(self, channel: str, payload: str) -> None:
        if channel == COMMANDS_CHANNEL and payload == self._node:
            self._worker.wake()
        elif channel == REPLIES_CHANNEL:
            # Any node's: a node handling an update its dead predecessor routed waits too.
            number = payload.rpartition(":")[2]
            if number.isdecimal():
                self._replies.wake(int(number))
