"""The cluster's records on both backends: nodes and heartbeats, routed commands and
their claims and leases, chat positions and taken updates, agents' nodes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from farmbot.models import Agent, AgentKind, AgentState, DesiredState, NodeHealth, Project
from farmbot.storage import Storage
from tests.backends import Backend

NOW = 1_700_000_000.0


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Storage]:
    async with backend.open() as opened:
        yield opened


@pytest.fixture
async def other(backend: Backend, store: Storage) -> AsyncIterator[Storage]:
    """A second node's connection(s) to the same database."""
    async with backend.open() as opened:
        yield opened


def agent(agent_id: str, node: str, state: AgentState = AgentState.IDLE) -> Agent:
    return Agent(
        id=agent_id, project="farm", kind=AgentKind.BUILDER, profile="demo", number=1,
        workdir="/w", branch=None, desired=DesiredState.RUNNING, state=state,
        state_reason="", created_at=NOW, updated_at=NOW, state_since=NOW, node=node,
    )  # fmt: skip


async def submit(store: Storage, target: str = "b", **changes: object) -> int:
    fields: dict[str, object] = {
        "origin": "a", "target": target, "platform": "telegram", "user_id": "1001",
        "chat": "1001", "display_name": "Ada", "text": "/tail builder-1", "button": False,
        "source": None, "wait": 30.0, "now": NOW,
    }  # fmt: skip
    fields.update(changes)
    command = await store.routed.submit_command(**fields)  # type: ignore[arg-type]
    return command.id


# -- nodes ---------------------------------------------------------------------------------


async def test_nodes_heartbeat_by_the_databases_clock(store: Storage) -> None:
    await store.nodes.register_node("gpu", url="http://gpu:8765", version="1", projects=["ml"])
    await store.nodes.register_node("build", url="", version="1", projects=[])
    [build, gpu] = await store.nodes.list_nodes()
    assert (gpu.name, gpu.url, gpu.projects, gpu.leading) == (
        "gpu",
        "http://gpu:8765",
        ("ml",),
        False,
    )
    assert 0 <= gpu.quiet < 2 and gpu.health(3.0) is NodeHealth.UP
    await asyncio.sleep(0.3)
    assert await store.nodes.heartbeat(
        "gpu", url="http://gpu:1", projects=["ml", "x"], leading=True
    )
    assert not await store.nodes.heartbeat("laptop", url="", projects=[], leading=False)
    [build, gpu] = await store.nodes.list_nodes()
    assert gpu.quiet < build.quiet and build.quiet >= 0.3 and build.health(0.2) is NodeHealth.DOWN
    assert gpu.projects == ("ml", "x") and gpu.leading and gpu.url == "http://gpu:1"

    await store.nodes.node_stopped("gpu")
    [_, gpu] = await store.nodes.list_nodes()
    assert gpu.health(0.0) is NodeHealth.STOPPED and not gpu.leading
    await store.nodes.register_node("gpu", url="", version="2", projects=[])  # a restart
    [_, gpu] = await store.nodes.list_nodes()
    assert gpu.stopped_at is None and gpu.version == "2"


async def test_one_node_leads_and_a_quiet_node_is_reported_once(
    store: Storage, other: Storage
) -> None:
    for name in ("a", "b"):
        await store.nodes.register_node(name, url="", version="1", projects=[])
    await store.nodes.set_leader("a")
    await other.nodes.set_leader("b")
    assert [(n.name, n.leading) for n in await store.nodes.list_nodes()] == [
        ("a", False),
        ("b", True),
    ]

    [a, _] = await store.nodes.list_nodes()
    reports = await asyncio.gather(
        store.nodes.mark_node_down("a", a.heartbeat_at, NOW),
        other.nodes.mark_node_down("a", a.heartbeat_at, NOW),
    )
    assert sorted(reports) == [False, True]  # whichever won reports it; the other does not
    assert not await store.nodes.mark_node_down("a", a.heartbeat_at, NOW)
    assert await store.nodes.mark_node_up("a") and not await other.nodes.mark_node_up("a")
    await store.nodes.heartbeat("a", url="", projects=[], leading=False)
    assert not await store.nodes.mark_node_down("a", a.heartbeat_at, NOW)  # heard since


async def test_agents_belong_to_nodes(store: Storage) -> None:
    await store.projects.upsert_project(Project("farm", "/srv/farm"), NOW)
    await store.agents.save_agent(agent("builder-1", "a"))
    await store.agents.save_agent(agent("builder-2", "b"))
    await store.agents.save_agent(agent("builder-3", "b", AgentState.DEAD))
    await store.agents.save_agent(agent("builder-4", ""))  # from before there were nodes
    assert await store.nodes.agents_by_node() == {"a": 1, "b": 1, "": 1}
    assert await store.agents.claim_agents("a", every=False) == 1
    assert (await store.agents.get_agent("builder-4")).node == "a"  # type: ignore[union-attr]
    assert await store.agents.claim_agents("c", every=True) == 4
    assert {a.node for a in await store.agents.list_agents()} == {"c"}


# -- routed commands -----------------------------------------------------------------------


async def test_a_command_is_claimed_once_run_and_answered(store: Storage, other: Storage) -> None:
    ids = [await submit(store, text=f"/tail builder-{n}") for n in range(20)]
    await submit(store, target="c")
    first, second = await asyncio.gather(
        store.routed.claim_commands("b", "b/one", lease=30, limit=20),
        other.routed.claim_commands("b", "b/two", lease=30, limit=20),
    )
    assert sorted(c.id for c in [*first, *second]) == ids  # each exactly once, none of c's
    assert {c.status for c in [*first, *second]} == {"claimed"}
    assert await store.routed.claim_commands("b", "b/one", lease=30) == []  # leases hold

    mine = first[0] if first else second[0]
    claim = "b/one" if first else "b/two"
    reply = {"ok": True, "text": "shown", "pre": None, "buttons": [], "decided": None}
    assert not await store.routed.answer_command(mine.id, "b/other", reply, NOW)
    assert await store.routed.answer_command(mine.id, claim, reply, NOW)
    assert not await store.routed.answer_command(mine.id, claim, reply, NOW)  # once
    done = await store.routed.get_command(mine.id)
    assert done is not None and done.status == "done" and done.reply == reply
    assert not await store.routed.cancel_command(mine.id)


async def test_an_expired_or_orphaned_claim_is_claimed_again(store: Storage) -> None:
    expiring = await submit(store)
    [claimed] = await store.routed.claim_commands("b", "b/life-1", lease=0.2)
    assert claimed.id == expiring and claimed.attempts == 1
    assert await store.routed.renew_leases("b/life-1", 0.2) == 1
    await asyncio.sleep(0.4)
    [again] = await store.routed.claim_commands("b", "b/life-1", lease=30)
    assert again.id == expiring and again.attempts == 2  # interrupted: the router is told

    orphan = await submit(store)
    [held] = await store.routed.claim_commands("b", "b/life-1", lease=30)
    assert held.id == orphan
    assert await store.routed.claim_commands("b", "b/life-2", lease=30) == []  # b's, held
    # The node's next life, as it starts, takes over its earlier life's claims at once.
    found = await store.routed.claim_commands("b", "b/life-2", lease=30, orphans=True)
    assert sorted(c.id for c in found) == [expiring, orphan]
    assert all(c.attempts >= 2 for c in found)


async def test_the_waiting_origin_takes_over_an_expired_claim(store: Storage) -> None:
    command_id = await submit(store)
    assert await store.routed.take_over(command_id, "a/life", lease=30) is None  # pending
    await store.routed.claim_commands("b", "b/life", lease=0.2)
    assert await store.routed.take_over(command_id, "a/life", lease=30) is None  # still held
    await asyncio.sleep(0.4)
    taken = await store.routed.take_over(command_id, "a/life", lease=30)
    assert taken is not None and taken.claimed_by == "a" and taken.attempts == 2
    reply = {"ok": False, "text": "interrupted", "pre": None, "buttons": [], "decided": None}
    assert not await store.routed.answer_command(command_id, "b/life", reply, NOW)  # b's late
    assert await store.routed.answer_command(command_id, "a/life", reply, NOW)


async def test_an_update_routes_one_command_and_a_late_one_is_withdrawn(store: Storage) -> None:
    first = await submit(store, source="telegram:7:41")
    again = await submit(store, source="telegram:7:41", text="/kill builder-1")
    assert again == first
    found = await store.routed.command_for("telegram:7:41")
    assert found is not None and found.id == first and found.text == "/tail builder-1"
    assert await store.routed.command_for("telegram:7:42") is None

    assert await store.routed.cancel_command(first)  # the origin stopped waiting
    assert await store.routed.claim_commands("b", "b/x", lease=30) == []
    late = await submit(store, wait=0.1)
    await asyncio.sleep(0.3)
    assert await store.routed.claim_commands("b", "b/x", lease=30) == []  # its origin gave up
    assert (await store.routed.get_command(late)).status == "pending"  # type: ignore[union-attr]
    assert await store.routed.prune_commands(NOW + 1) == 2
    assert await store.routed.get_command(first) is None


async def step(store: Storage, key: str | None, **changes: object) -> int:
    fields: dict[str, object] = {
        "origin": "a", "target": "b", "key": key, "text": '{"step": "verify"}', "wait": 30.0,
        "now": NOW,
    }  # fmt: skip
    fields.update(changes)
    found = await store.routed.submit_step(**fields)  # type: ignore[arg-type]
    assert (found.kind, found.step_key, found.platform) == ("step", key, "autopilot")
    return found.id


async def test_a_keyed_step_is_queued_once_and_run_again_only_on_purpose(store: Storage) -> None:
    first = await step(store, "autopilot:task-1:verify:7")
    assert await step(store, "autopilot:task-1:verify:7", target="c") == first  # a new leader
    assert await step(store, "autopilot:task-1:verify:7", again=True) == first  # not done yet
    [claimed] = await store.routed.claim_commands("b", "b/life", lease=30)
    assert claimed.id == first and claimed.generation == 1
    assert await store.routed.answer_command(first, "b/life", {"interrupted": "b died"}, NOW)
    assert await step(store, "autopilot:task-1:verify:7") == first  # its answer stands
    second = await step(store, "autopilot:task-1:verify:7", again=True)  # resolved: run afresh
    assert second != first
    latest = await store.routed.step_for("autopilot:task-1:verify:7")
    assert latest is not None and (latest.id, latest.generation) == (second, 2)
    assert await store.routed.step_for("autopilot:task-2:verify:9") is None

    # One nobody took is withdrawn, and queued again (it never ran) when asked for again.
    withdrawn = await step(store, "autopilot:task-3:land:4")
    assert await store.routed.cancel_command(withdrawn)
    again = await store.routed.submit_step(
        origin="b", target="c", key="autopilot:task-3:land:4", text="{}", wait=30.0, now=NOW
    )
    assert (again.id, again.status, again.target, again.attempts) == (withdrawn, "pending", "c", 0)
    # Steps without a key (reading a checkout) are rows of their own each time.
    assert await step(store, None) != await step(store, None)
    assert {c.kind for c in await store.routed.claim_commands("c", "c/x", lease=30)} == {"step"}


# -- chat positions and taken updates ---------------------------------------------------------


async def test_updates_are_taken_once_and_handed_over_when_unfinished(
    store: Storage, other: Storage
) -> None:
    assert await store.inbound.position("telegram", "7") is None
    body = {"update_id": 41, "message": {"text": "/status"}}
    fresh = await store.inbound.take_updates("telegram", "7", [(41, body), (42, {})], 43, NOW)
    assert fresh == [41, 42]
    assert await store.inbound.take_updates("telegram", "7", [(42, {}), (43, {})], 44, NOW) == [43]
    assert await store.inbound.take_updates("telegram", "7", [], 40, NOW) == []
    assert await store.inbound.position("telegram", "7") == 44  # never backwards
    assert await store.inbound.position("telegram", "8") is None  # per bot

    began = await store.inbound.begin_update("telegram", "7", 41, "a/1")
    assert began is not None and began.status == "new" and began.body == body
    assert await store.inbound.begin_update("telegram", "7", 41, "a/1") is None  # mine already
    await store.inbound.finish_update("telegram", "7", 41, "a/1", NOW)
    assert await other.inbound.begin_update("telegram", "7", 41, "b/1") is None  # done

    assert await store.inbound.begin_update("telegram", "7", 42, "a/1") is not None
    # a dies handling 42; b leads next and finds 42 (begun by a) and 43 (never begun).
    waiting = await other.inbound.unfinished("telegram", "7")
    assert [(u.update_id, u.status, u.handler) for u in waiting] == [
        (42, "handling", "a/1"),
        (43, "new", None),
    ]
    interrupted = await other.inbound.begin_update("telegram", "7", 42, "b/1")
    assert interrupted is not None and (interrupted.status, interrupted.handler) == (
        "handling",
        "a/1",
    )
    await store.inbound.finish_update("telegram", "7", 42, "a/1", NOW)  # a's, too late
    assert [u.update_id for u in await other.inbound.unfinished("telegram", "7")] == [42, 43]
    await other.inbound.finish_update("telegram", "7", 42, "b/1", NOW)
    assert [u.update_id for u in await other.inbound.unfinished("telegram", "7")] == [43]


async def test_an_agent_id_another_node_runs_cannot_be_taken(
    store: Storage, other: Storage
) -> None:
    await store.projects.upsert_project(Project("farm", "/srv/farm"), NOW)
    assert await store.agents.claim_agent(agent("builder-1", "a", AgentState.STARTING))
    assert not await other.agents.claim_agent(agent("builder-1", "b", AgentState.STARTING))
    assert await store.agents.claim_agent(agent("builder-1", "a", AgentState.IDLE))  # a's own
    assert (await store.agents.get_agent("builder-1")).state is AgentState.IDLE  # type: ignore[union-attr]
    await store.agents.set_agent_state("builder-1", AgentState.DEAD, "exited", NOW)
    assert await other.agents.claim_agent(agent("builder-1", "b", AgentState.STARTING))
    assert (await store.agents.get_agent("builder-1")).node == "b"  # type: ignore[union-attr]
