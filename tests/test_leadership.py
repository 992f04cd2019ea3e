"""Leadership on a real PostgreSQL database: one leader at a time, through an advisory lock
on a dedicated session; a leader whose session is cut stops its duties before another
node starts its own, and a leader that resigns is replaced at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import pytest

from farmbot.alerts import Alerts
from farmbot.cluster.leadership import ElectedLeader, LeaderDuties
from farmbot.config.alerts import AlertsConfig
from farmbot.messages import Incoming, OnIncoming, OutboundMessage, Reply
from farmbot.storage import Storage
from farmbot.storage.postgres import PostgresDatabase
from tests.backends import PostgresBackend
from tests.helpers import retry_until


@dataclass
class Chat:
    """A chat interface that records when it runs (the duty that must never run twice)."""

    node: str
    log: list[tuple[str, str, float]]  # (node, "start" | "stop", monotonic time)
    name: str = "chat"
    running: bool = field(default=False)

    async def start(self, on_incoming: OnIncoming) -> None:
        self.running = True
        self.log.append((self.node, "start", time.monotonic()))

    async def stop(self) -> None:
        if self.running:
            self.running = False
            self.log.append((self.node, "stop", time.monotonic()))

    async def send(self, channel: str, message: OutboundMessage) -> None:
        return None


async def nothing(msg: Incoming) -> Reply:
    return Reply("")


@dataclass
class Contender:
    leader: ElectedLeader
    duties: LeaderDuties
    chat: Chat
    task: asyncio.Task[None] | None = None


@pytest.fixture
async def contenders(pg_backend: PostgresBackend) -> AsyncIterator[dict[str, Contender]]:
    log: list[tuple[str, str, float]] = []
    async with AsyncExitStack() as stack:
        found: dict[str, Contender] = {}
        for name in ("n1", "n2"):
            db = await stack.enter_async_context(pg_backend.database())
            assert isinstance(db, PostgresDatabase)
            storage = Storage.over(db)
            await storage.nodes.register_node(name, url="", version="1", projects=[])
            chat = Chat(name, log)
            alerts = Alerts(AlertsConfig(), storage.outbox, {"chat": chat})
            duties = LeaderDuties([chat], nothing, alerts)
            found[name] = Contender(ElectedLeader(db, storage.nodes, name, 30.0), duties, chat)
        yield found
        for contender in found.values():
            if contender.task is not None:
                await contender.leader.resign(contender.duties)
                contender.task.cancel()


def run(contender: Contender) -> None:
    contender.task = asyncio.create_task(contender.leader.run(contender.duties))


async def test_one_leads_and_a_cut_session_stops_it_before_the_other_starts(
    contenders: dict[str, Contender], pg_backend: PostgresBackend
) -> None:
    n1, n2 = contenders["n1"], contenders["n2"]
    run(n1)
    await retry_until(lambda: n1.chat.running, message="n1 to lead")
    run(n2)
    await asyncio.sleep(1.5)  # n2 tries for the lock and does not get it
    assert not n2.chat.running and not n2.leader.leading

    # The server ends n1's session (a failover, an admin, an idle timeout): n1 does not
    # know at once, so n2, winning the lock, waits until n1 has surely stopped.
    cut = time.monotonic()
    [(ended,)] = pg_backend.run(
        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
        " AND granted AND database = (SELECT oid FROM pg_database"
        " WHERE datname = current_database())"
    )
    assert ended is True
    await retry_until(
        lambda: n1.leader.lost and (n1.chat.running or n2.chat.running),
        timeout=10,
        message="a leader again",
    )
    assert time.monotonic() - cut < 10
    log = n1.chat.log  # both chats write to it, in order
    assert [(node, what) for node, what, _ in log][:2] == [("n1", "start"), ("n1", "stop")]
    assert log[2][1] == "start" and len(log) == 3, log  # never two leaders at once
    assert log[2][0] == "n2"  # n1 backs off after losing its session: n2 wins


async def test_a_leader_that_resigns_is_replaced_at_once(contenders: dict[str, Contender]) -> None:
    n1, n2 = contenders["n1"], contenders["n2"]
    run(n1)
    await retry_until(lambda: n1.chat.running, message="n1 to lead")
    run(n2)
    await asyncio.sleep(0.2)
    resigned = time.monotonic()
    await n1.leader.resign(n1.duties)
    assert not n1.chat.running
    await retry_until(lambda: n2.chat.running, timeout=5, message="n2 to lead")
    assert time.monotonic() - resigned < 2.5  # no grace: n1 said it stopped leading
