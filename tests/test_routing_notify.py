"""Routed commands on real PostgreSQL are woken by ``LISTEN/NOTIFY``, not found by polling.

The worker and the waiting node also look at the rows every second, a safety net that
would hide a listener that never hears anything. Here that poll is an hour: a command
routed to a node is still run at once, and its reply still reaches the node waiting for
it at once, because the notification woke them. The graph is the daemon's own
(farmbot.build, with its real router); the loops are run by the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from farmbot.cluster.leadership import Loop
from farmbot.cluster.routing import Dispatcher, Replies
from farmbot.cluster.worker import CommandWorker, Listener
from farmbot.config.node import NodeConfig
from farmbot.config.schema import UserConfig
from farmbot.messages import Incoming, Reply
from farmbot.models import Agent, AgentKind, AgentState, DesiredState, Role, RoutedCommand
from farmbot.storage.db import OpensSessions
from farmbot.storage.routed import COMMANDS_CHANNEL
from tests.backends import PostgresBackend
from tests.farm import Farm, farm_for, make_config
from tests.helpers import retry_until

HOUR = 3600.0  # the poll: never what answers within a test
ADA = UserConfig("ada", Role.ADMIN, ids={"telegram": 1})


@pytest.fixture
async def farm(
    tmp_path: Path, tmux_socket: str, pg_backend: PostgresBackend
) -> AsyncIterator[Farm]:
    """Node a's graph on PostgreSQL; no loop of it runs."""
    config = dataclasses.replace(
        make_config(tmp_path, tmux_socket, users=(ADA,)),
        storage=pg_backend.storage_config(),
        node=NodeConfig(name="a"),
    )
    async with farm_for(config, tmp_path) as farm:
        yield farm


@contextlib.asynccontextmanager
async def looping(*loops: Loop) -> AsyncIterator[None]:
    """Run ``loops`` as tasks until the block ends; then cancel them."""
    tasks = [asyncio.create_task(loop()) for loop in loops]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def parts(farm: Farm) -> tuple[CommandWorker, Replies, Listener]:
    """Node a's worker and waiting replies, both polling once an hour, and its listener."""
    db = farm.storage.db
    assert isinstance(db, OpensSessions)
    replies = Replies(farm.storage, poll=HOUR)
    worker = CommandWorker(farm.config.node, farm.router, farm.storage, "a/test", poll=HOUR)
    return worker, replies, Listener(db, "a", worker, replies)


async def until_listening(listener: Listener, db: PostgresBackend) -> None:
    """Until the listener hears a notification (one for no node: it wakes nothing)."""

    async def heard() -> bool:
        if listener.heard:
            return True
        await asyncio.to_thread(db.run, f"SELECT pg_notify('{COMMANDS_CHANNEL}', 'nobody')")
        return False

    await retry_until(heard, timeout=10, message="the listener to hear")


async def test_a_command_routed_here_is_run_when_its_notification_comes(
    farm: Farm, pg_backend: PostgresBackend
) -> None:
    worker, _, listener = parts(farm)
    async with looping(listener.run):
        await until_listening(listener, pg_backend)  # its first wake of the worker is past
        async with looping(worker.run):
            # The worker looked once, found nothing, and now waits: only a notification
            # (or the hour's poll) makes it look again.
            await retry_until(lambda: worker.looks, message="the worker's first look")
            assert worker.looks == 1
            command = await farm.storage.routed.submit_command(
                origin="b", target="a", platform="telegram", user_id="1", chat="c1",
                display_name="Ada", text="/agents", button=False, source=None, wait=30.0,
                now=time.time(),
            )  # fmt: skip

            async def answered() -> RoutedCommand | None:
                found = await farm.storage.routed.get_command(command.id)
                return found if found is not None and found.status == "done" else None

            done = await retry_until(answered, message="node a to answer the routed command")
    assert done.reply is not None and Reply.from_json(done.reply).text.startswith("no agents yet")
    assert worker.ran == 1
    [audited] = await farm.storage.audit.recent_audit(1)  # run here, as the person who sent it
    assert (audited.user_name, audited.command, audited.outcome) == ("ada", "/agents", "ok")


async def test_the_node_waiting_for_a_reply_is_woken_by_its_notification(
    farm: Farm, pg_backend: PostgresBackend
) -> None:
    storage = farm.storage
    _, replies, listener = parts(farm)
    await storage.nodes.register_node("b", url="", version="1", projects=[])
    await storage.agents.save_agent(
        Agent(
            id="b-agent", project="proj", kind=AgentKind.SHELL, profile="demo", number=1,
            workdir="/w", branch=None, desired=DesiredState.RUNNING, state=AgentState.IDLE,
            state_reason="", created_at=0.0, updated_at=0.0, state_since=0.0, node="b",
        )
    )  # fmt: skip
    dispatcher = Dispatcher(
        farm.config, farm.router, storage, farm.graph.cluster.directory, replies, "a/test"
    )
    async with looping(listener.run):
        await until_listening(listener, pg_backend)
        asked = asyncio.create_task(
            dispatcher.handle(Incoming("telegram", "1", "c1", "/tail b-agent"))
        )
        try:
            # Node a routed it and looked at its row once; now it waits for the reply.
            await retry_until(lambda: replies.looks, message="node a to wait for the reply")
            [routed] = await storage.routed.claim_commands("b", "b/test", 30.0)  # node b
            assert routed.text == "/tail b-agent" and routed.origin == "a"
            assert await storage.routed.answer_command(
                routed.id, "b/test", Reply("b-agent's screen").to_json(), time.time()
            )
            async with asyncio.timeout(10):  # an hour, were it left to the poll
                reply = await asked
        finally:
            asked.cancel()
    assert reply.text == "b-agent's screen"
    assert dispatcher.routed == 1 and dispatcher.timed_out == 0
