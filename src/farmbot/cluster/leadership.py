"""One chat leader: the node that runs the chat interfaces, the alert notifier and cron.

With SQLite there is one node and it always leads (``SoleLeader``). On a shared
PostgreSQL database the leader is whoever holds the advisory lock ``LEADER_LOCK`` on a
dedicated session (``ElectedLeader``): the others try for it every ``RETRY`` seconds,
so when the leader dies its session ends, the server releases the lock, and another
node leads within about a second.

A leader checks its session every ``CHECK_EVERY`` seconds, and one that does not answer
within ``CHECK_TIMEOUT`` means the lock may be gone: the leader stops its duties at once
(the chat pollers first, since Telegram answers a second poller with 409 Conflict) and
tries for the lock again like any follower. Two leaders never run at once:

- a leader cut off from the server gives up within ``CHECK_EVERY + CHECK_TIMEOUT``; the
  server drops its silent session only later, when the keepalives give up
  (storage/pgsession.py, about 5 s), and only then is the lock free;
- a leader whose session the server ended (a restart, ``pg_terminate_backend``) may not
  notice for up to ``CHECK_EVERY + CHECK_TIMEOUT``, so a node that wins the lock while
  another node's row still says it leads and is heard from waits ``TAKEOVER_GRACE``
  before it starts the chat interfaces. A leader that died (``kill -9``) is replaced
  within about ``RETRY + TAKEOVER_GRACE`` seconds; one that resigned (a clean stop) says
  so first and is replaced at once.

What a leader does is its ``LeaderDuties``: ``begin`` starts the chat interfaces,
``run`` runs the notifier and the loops (cron, the node watcher), ``end`` stops the
interfaces. A term ends abruptly (lock lost: loops cancelled) or gracefully (``resign``
at shutdown: the notifier finishes the delivery in flight).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from farmbot.alerts import Alerts
from farmbot.errors import StorageError
from farmbot.messages import Interface, OnIncoming
from farmbot.storage.db import OpensSessions, Session
from farmbot.storage.nodes import NodeStore

log = logging.getLogger(__name__)

RETRY = 1.0  # seconds between a follower's tries for the lock
CHECK_EVERY = 1.0  # seconds between a leader's checks of its session
CHECK_TIMEOUT = 2.0  # seconds a check may take before the leader steps down
TAKEOVER_GRACE = CHECK_EVERY + CHECK_TIMEOUT  # an old leader has stopped by then
LEADER_LOCK = 0x6661726D626F7403  # b"farmbot" + 3: the advisory lock the leader's session holds

Loop = Callable[[], Coroutine[Any, Any, None]]


class LeaderDuties:
    """What only the leader runs: chat interfaces, the notifier, cron and the like."""

    def __init__(
        self,
        chats: Sequence[Interface],
        handle: OnIncoming,
        alerts: Alerts,
        loops: Sequence[tuple[str, Loop]] = (),
    ) -> None:
        self._chats = list(chats)
        self._handle = handle
        self._alerts = alerts
        self._loops = list(loops)
        self._closing = asyncio.Event()
        self._started: list[Interface] = []
        self.terms = 0

    def __repr__(self) -> str:
        return f"<LeaderDuties terms={self.terms} chats={len(self._started)}>"

    async def begin(self) -> None:
        """Start the chat interfaces (a new term)."""
        self.terms += 1
        self._closing.clear()
        self._alerts.reopen()
        for chat in self._chats:
            await chat.start(self._handle)
            self._started.append(chat)

    async def run(self) -> None:
        """The notifier and the loops, until ``close`` (or cancelled: the lock is lost)."""
        async with asyncio.TaskGroup() as tasks:
            alerts = tasks.create_task(self._alerts.run(), name="alerts")
            loops = [tasks.create_task(loop(), name=name) for name, loop in self._loops]
            await self._closing.wait()
            for loop in loops:
                loop.cancel()
            self._alerts.close()  # finish an in-flight send rather than repeat it later
            await alerts

    def close(self) -> None:
        """Make ``run`` return once the delivery in flight ends."""
        self._closing.set()

    async def end(self) -> None:
        """Stop the chat interfaces (safe when they never started)."""
        started, self._started = self._started, []
        for chat in reversed(started):
            await chat.stop()


class SoleLeader:
    """One node (SQLite): it leads from start to stop."""

    def __init__(self) -> None:
        self.leading = True  # from the start: there is no other node to lead
        self._running = False
        self._done = asyncio.Event()

    def __repr__(self) -> str:
        return "<SoleLeader>"

    async def acquire(self) -> bool:
        self.leading = True
        return True

    async def run(self, duties: LeaderDuties) -> None:
        """Run the duties of the term begun at start until ``resign``."""
        self._running = True
        try:
            await duties.run()
        finally:
            self._done.set()

    async def resign(self, duties: LeaderDuties) -> None:
        duties.close()
        if self._running:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(30):
                    await self._done.wait()
        await duties.end()
        self.leading = False


class ElectedLeader:
    """Leadership through a PostgreSQL advisory lock held on a dedicated session."""

    def __init__(
        self,
        db: OpensSessions,
        nodes: NodeStore,
        node: str,
        down_after: float,
        grace: float = TAKEOVER_GRACE,
    ) -> None:
        self._db = db
        self._nodes = nodes
        self._node = node
        self._down_after = down_after
        self._grace = grace
        self._session: Session | None = None
        self._resigning = False
        self._running = asyncio.Event()  # run() is inside a term
        self._done = asyncio.Event()
        self.leading = False
        self.terms = 0
        self.lost = 0

    def __repr__(self) -> str:
        return f"<ElectedLeader {self._node!r} leading={self.leading} terms={self.terms}>"

    def statistics(self) -> dict[str, int | float | str]:
        return {"leading": int(self.leading), "terms": self.terms, "lost": self.lost}

    async def acquire(self) -> bool:
        """Try once to become the leader; True when this node leads now."""
        if self.leading:
            return True
        try:
            if self._session is None:
                self._session = await self._db.session("leader")
            got = await self._session.try_lock(LEADER_LOCK)
        except StorageError as exc:
            log.debug("leadership: cannot try for the lock: %s", exc)
            await self._drop_session()
            return False
        if not got:
            return False
        await self._let_the_old_leader_stop()
        self.leading = True
        self.terms += 1
        log.info("leadership: node %s leads (chat interfaces, alerts, cron)", self._node)
        try:
            await self._nodes.set_leader(self._node)
        except StorageError as exc:  # shown on the status page once the database answers
            log.warning("leadership: could not record the new leader: %s", exc)
        return True

    async def _let_the_old_leader_stop(self) -> None:
        """Wait out ``grace`` when another node still says it leads and is heard from."""
        try:
            rows = await self._nodes.list_nodes()
        except StorageError:
            others = ["?"]  # the lock is ours, but who led is unknown: wait, to be safe
        else:
            others = [
                n.name
                for n in rows
                if n.name != self._node and n.leading and n.quiet < self._down_after
                and n.stopped_at is None
            ]  # fmt: skip
        if others:
            log.info(
                "leadership: node %s won the lock from node %s; starting in %.0f s, once"
                " that one has surely stopped its chat interfaces",
                self._node,
                ", ".join(others),
                self._grace,
            )
            await asyncio.sleep(self._grace)

    async def run(self, duties: LeaderDuties) -> None:
        """Lead whenever the lock can be had, follow otherwise, until ``resign``."""
        try:
            while not self._resigning:
                if not self.leading:
                    if not await self.acquire():
                        await asyncio.sleep(RETRY)
                        continue
                    await duties.begin()
                await self._term(duties)
                if not self._resigning:  # lost: let a node with a healthy session go first
                    await asyncio.sleep(2 * RETRY)
        finally:
            self._done.set()

    async def _term(self, duties: LeaderDuties) -> None:
        """Run the duties while the session answers; stop them at once when it does not."""
        work = asyncio.create_task(duties.run(), name="leader-duties")
        self._running.set()
        try:
            while not work.done():
                await asyncio.wait({work}, timeout=CHECK_EVERY)
                if work.done() or self._resigning:
                    break
                if not await self._still_holds():
                    self.lost += 1
                    log.error(
                        "leadership: node %s lost its lock session; stopping the chat"
                        " interfaces, alerts and cron now",
                        self._node,
                    )
                    work.cancel()
                    await duties.end()
                    break
            if self._resigning and not work.done():
                await work  # resign() closed the duties: the in-flight delivery ends
        finally:
            self._running.clear()
            if not work.done():
                work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
            if not self._resigning:
                self.leading = False
                await self._drop_session()

    async def _still_holds(self) -> bool:
        session = self._session
        if session is None:
            return False
        try:
            await session.check(CHECK_TIMEOUT)
        except StorageError as exc:
            log.warning("leadership: %s", exc)
            return False
        return True

    async def resign(self, duties: LeaderDuties) -> None:
        """Stop leading cleanly (shutdown): the notifier finishes, the interfaces stop,
        then the lock is released (another node takes over at once)."""
        self._resigning = True
        duties.close()
        if self._running.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(30):
                    await self._done.wait()
        await duties.end()
        if self.leading:
            with contextlib.suppress(StorageError):  # the next leader need not wait
                await self._nodes.set_leader("")
        self.leading = False
        await self._drop_session()

    async def _drop_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.aclose()
