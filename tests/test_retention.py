"""Retention on both backends: what goes (old events, their delivered alerts, old audit
rows if asked) and what stays whatever its age (anything not delivered), in batches."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from farmbot import events as ev
from farmbot.messages import Severity
from farmbot.models import AlertDraft, NewEvent
from farmbot.storage import Storage
from farmbot.storage.retention import DAY, Batch, Retention, RetentionStore
from tests.backends import Backend
from tests.farm import farm_for, make_config
from tests.helpers import FakeClock, store_event, store_events

T0 = 1_700_000_000.0
KEEP = 30 * DAY


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Storage]:
    async with backend.open() as store:
        yield store


def draft(key: str, *routes: str) -> AlertDraft:
    return AlertDraft(
        kind="agent.stuck",
        severity=Severity.WARNING,
        agent_id="builder-1",
        project="farm",
        title=f"alert {key}",
        text="stuck",
        pre=None,
        buttons=(),
        dedupe_key=key,
        routes=tuple(("telegram", channel) for channel in routes),
    )


async def event_with_alert(store: Storage, now: float, key: str, *routes: str) -> int:
    event, _ = await store_event(
        store, NewEvent("agent.stuck", "builder-1"), [draft(key, *routes)], now
    )
    return event.id


async def outbox_of(backend: Backend, channel: str) -> int:
    [(outbox_id,)] = backend.run(f"SELECT id FROM outbox WHERE channel = '{channel}'")
    return int(outbox_id)


async def deliver(store: Storage, backend: Backend, channel: str, now: float) -> None:
    outbox_id = await outbox_of(backend, channel)
    assert await store.outbox.mark_sending(outbox_id) is not None
    assert await store.outbox.mark_delivered(outbox_id, now)


def ids(backend: Backend, table: str) -> set[int]:
    return {int(i) for (i,) in backend.run(f"SELECT id FROM {table}")}


class Counting(RetentionStore):
    """The real store, counting its batches (a seam farmbot owns)."""

    def __init__(self, inner: RetentionStore) -> None:
        self.inner = inner
        self.batches: list[str] = []

    async def prune_batch(self, table: str, before: float, after_id: int, limit: int) -> Batch:
        self.batches.append(table)
        return await self.inner.prune_batch(table, before, after_id, limit)


async def test_old_delivered_goes_and_anything_undelivered_stays(
    store: Storage, backend: Backend
) -> None:
    hook = (await store_events(store, [NewEvent("hook.PreToolUse", "builder-1")], T0))[0]
    delivered = await event_with_alert(store, T0, "a", "delivered")
    await deliver(store, backend, "delivered", T0 + 1)
    split = await event_with_alert(store, T0, "b", "sent", "waiting")  # one of two routes sent
    await deliver(store, backend, "sent", T0 + 1)
    dead = await event_with_alert(store, T0, "c", "dead")
    dead_row = await outbox_of(backend, "dead")
    await store.outbox.mark_sending(dead_row)
    await store.outbox.mark_dead(dead_row, "channel_not_found")
    unrouted = await event_with_alert(store, T0, "d")  # an alert with no route at all
    young = await event_with_alert(store, T0 + 20 * DAY, "e", "young")
    await deliver(store, backend, "young", T0 + 20 * DAY)
    [(split_alert,)] = backend.run(f"SELECT id FROM alerts WHERE event_id = {split}")
    [(dead_alert,)] = backend.run(f"SELECT id FROM alerts WHERE event_id = {dead}")
    [(young_alert,)] = backend.run(f"SELECT id FROM alerts WHERE event_id = {young}")
    for ts in (T0, T0 + 25 * DAY):
        await store.audit.add_audit(
            platform="telegram", user_id="1", user_name="bob", chat="c", command="/status",
            outcome="ok", detail="", now=ts,
        )  # fmt: skip

    clock = FakeClock(T0 + 31 * DAY)
    pauses: list[float] = []

    async def pause(seconds: float) -> None:
        pauses.append(seconds)

    retention = Retention(store.retention, keep_events=KEEP, clock=clock, batch=2, sleep=pause)
    assert await retention.prune() == {"outbox": 2, "alerts": 2, "events": 3, "audit": 0}

    assert ids(backend, "events") == {split, dead, young}
    assert {hook, delivered, unrouted}.isdisjoint(ids(backend, "events"))
    assert ids(backend, "alerts") == {int(split_alert), int(dead_alert), int(young_alert)}
    assert {str(s) for (s,) in backend.run("SELECT status FROM outbox ORDER BY id")} == {
        "pending",
        "dead",
        "delivered",  # the young one
    }
    assert len(ids(backend, "audit")) == 2  # kept forever unless keep_audit is set
    assert pauses and all(p == retention._pause for p in pauses)  # batches of 2, with pauses

    # The waiting route is delivered and time passes: the rest of that alert goes too.
    await deliver(store, backend, "waiting", clock())
    assert (await retention.prune())["events"] == 0  # delivered just now: not old
    clock.advance(31 * DAY)
    retention.reconfigure(keep_events=KEEP, keep_audit=10 * DAY)
    assert await retention.prune() == {"outbox": 2, "alerts": 2, "events": 2, "audit": 2}
    assert ids(backend, "events") == {dead}  # the dead letter's, still retryable
    assert ids(backend, "audit") == set()
    assert retention.pruned == {"outbox": 4, "alerts": 4, "events": 5, "audit": 2}


async def test_folded_repeats_and_an_off_horizon(store: Storage, backend: Backend) -> None:
    first = await event_with_alert(store, T0, "same", "ops")
    second = await event_with_alert(store, T0 + 10, "same", "ops")  # folds into the row
    assert len(ids(backend, "outbox")) == 1 and len(ids(backend, "alerts")) == 2
    clock = FakeClock(T0 + 31 * DAY)
    off = Retention(store.retention, keep_events=None, clock=clock)
    assert await off.prune() == {"outbox": 0, "alerts": 0, "events": 0, "audit": 0}

    retention = Retention(store.retention, keep_events=KEEP, clock=clock)
    # Pending: the row keeps the newest alert; the older one, folded, has no row of its own.
    assert await retention.prune() == {"outbox": 0, "alerts": 1, "events": 1, "audit": 0}
    assert ids(backend, "events") == {second} and first not in ids(backend, "events")
    await deliver(store, backend, "ops", clock())
    clock.advance(31 * DAY)
    assert await retention.prune() == {"outbox": 1, "alerts": 1, "events": 1, "audit": 0}
    assert ids(backend, "outbox") == ids(backend, "alerts") == ids(backend, "events") == set()


async def test_batches_walk_by_id_and_stop_at_the_first_young_row(
    store: Storage, backend: Backend
) -> None:
    await store_events(store, [NewEvent("hook.Stop", f"b-{i}") for i in range(25)], T0)
    young = await store_events(store, [NewEvent("hook.Stop", "b") for _ in range(5)], T0 + DAY)
    counting = Counting(store.retention)
    clock = FakeClock(T0 + 31 * DAY)

    async def no_pause(seconds: float) -> None:
        pass

    retention = Retention(counting, keep_events=KEEP, clock=clock, batch=10, sleep=no_pause)
    assert (await retention.prune())["events"] == 25
    assert counting.batches.count("events") == 3  # 10, 10, then 5 old before a young one
    assert ids(backend, "events") == set(young)

    counting.batches.clear()
    assert (await retention.prune())["events"] == 0
    assert counting.batches == ["outbox", "alerts", "events"]  # one read each: nothing old


async def test_the_graph_prunes_with_the_configured_days_never_inside_the_dedupe_window(
    tmp_path: Path, tmux_socket: str
) -> None:
    config = make_config(tmp_path, tmux_socket)
    config = dataclasses.replace(
        config,
        storage=dataclasses.replace(config.storage, keep_events_days=1),
        alerts=dataclasses.replace(config.alerts, dedupe_window=2 * DAY),
    )
    clock = FakeClock(T0)
    async with farm_for(config, tmp_path, clock) as farm:
        retention = farm.graph.retention
        assert (retention.keep_events, retention.keep_audit) == (2 * DAY, None)
        await farm.bus.publish(ev.AgentResumed(agent_id="builder-1", project="proj"))
        clock.advance(1.5 * DAY)  # older than keep_events_days, inside the dedupe window
        assert (await retention.prune())["events"] == 0
        clock.advance(DAY)
        done = await retention.prune()
        assert (done["outbox"], done["alerts"], done["events"]) == (0, 0, 0)  # undelivered
        assert await farm.graph.alerts.notifier.deliver_due() == 1  # the web console's
        clock.advance(3 * DAY)
        done = await retention.prune()
        assert (done["outbox"], done["alerts"], done["events"]) == (1, 1, 1)
        assert farm.graph.statistics()["retention"].startswith("passes=3 pruned_outbox=1")
