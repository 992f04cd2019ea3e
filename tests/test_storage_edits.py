"""Schema 10 of the store: which delivered copies of gates' alerts were edited, and which
still owe an edit (their gate decided or stale), on SQLite and on PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator

import pytest

from farmbot.messages import Button, Severity
from farmbot.models import AlertDraft, Gate, GateStatus, NewEvent, OutboxItem, OutboxStatus
from farmbot.storage import Storage, outbox
from farmbot.storage.migrate import load_migrations
from tests.backends import Backend, PostgresBackend
from tests.helpers import store_event

T0 = 1_700_000_000.0
ROUTES = (("web", "console"), ("chat", "A"), ("chat", "B"))


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Storage]:
    async with backend.open() as store:
        yield store


async def _gate_alert(store: Storage, title: str, key: str | None = None) -> list[OutboxItem]:
    """A gate and its alert's copies on ROUTES; returns the copies, in route order."""
    gate = await store.gates.add_gate("manual", None, "farm", title, "", {}, T0)
    key = key if key is not None else f"gate.opened:{gate.id}"
    draft = AlertDraft(
        "gate.opened", Severity.WARNING, None, "farm", f"gate #{gate.id}", title,
        buttons=((Button("Approve", f"/approve {gate.id}"),),), dedupe_key=key, routes=ROUTES,
    )  # fmt: skip
    await store_event(store, NewEvent("gate.opened", None, "farm"), [draft], T0)
    return await store.outbox.items_with_key(key)


async def _deliver(store: Storage, item: OutboxItem, ref: str | None) -> None:
    assert await store.outbox.mark_sending(item.id) is not None
    assert await store.outbox.mark_delivered(item.id, T0 + 1, ref)


async def _owed(store: Storage) -> list[tuple[int, int, GateStatus]]:
    return [
        (c.outbox_id, c.gate.id, c.gate.status) for c in await store.outbox.outdated_gate_copies()
    ]


async def test_the_copies_owed_an_edit_are_delivered_unedited_copies_of_decided_gates(
    backend: Backend,
) -> None:
    async with backend.open() as store:
        open_web, open_a, open_b = await _gate_alert(store, "still open")
        web, a, b = await _gate_alert(store, "approved")
        _, stale_a, stale_b = await _gate_alert(store, "gone stale")
        _, other_a, _ = await _gate_alert(store, "not a gate's key", key="agent.stuck:x")
        for item in (open_a, open_b, a, b, stale_a, other_a):
            await _deliver(store, item, f"ref-{item.id}")
        await _deliver(store, web, None)  # the web console keeps no handle
        await _deliver(store, open_web, None)
        # stale_b is still pending: not out yet, nothing to edit
        await store.gates.decide_gate(2, GateStatus.APPROVED, "alice", "ok", T0 + 60,
                                      scope="session")  # fmt: skip
        await store.gates.decide_gate(3, GateStatus.STALE, None, "the question is gone", T0 + 61)
        await store.gates.decide_gate(4, GateStatus.REJECTED, "bob", "", T0 + 62)
        assert await _owed(store) == [
            (a.id, 2, GateStatus.APPROVED), (b.id, 2, GateStatus.APPROVED),
            (stale_a.id, 3, GateStatus.STALE),
        ]  # fmt: skip
        [first, *_] = await store.outbox.outdated_gate_copies()
        gate = first.gate
        assert (gate.decided_by, gate.decided_at, gate.reason, gate.scope) == (
            "alice", T0 + 60, "ok", "session",
        )  # fmt: skip
        assert gate == await store.gates.get_gate(2)  # the whole record, as stored

        assert await store.outbox.mark_edited(a.id, T0 + 70)
        assert not await store.outbox.mark_edited(a.id, T0 + 80)  # once
        assert not await store.outbox.mark_edited(stale_b.id, T0 + 80)  # not delivered
        [_, edited, _] = await store.outbox.items_with_key("gate.opened:2")
        assert (edited.id, edited.edited_at) == (a.id, T0 + 70)
        one = await store.outbox.outdated_gate_copy(b.id)
        assert one is not None and (one.outbox_id, one.gate) == (b.id, gate)
        for not_owed in (a, open_a, stale_b, other_a, web):
            assert await store.outbox.outdated_gate_copy(not_owed.id) is None

    async with backend.open() as store:  # a restart: what was edited stays edited
        assert await _owed(store) == [
            (b.id, 2, GateStatus.APPROVED), (stale_a.id, 3, GateStatus.STALE),
        ]  # fmt: skip
        await _deliver(store, stale_b, f"ref-{stale_b.id}")  # delivered after the decision
        assert [c for c, _, _ in await _owed(store)] == [b.id, stale_a.id, stale_b.id]


async def test_a_copy_is_marked_edited_only_once_delivered(store: Storage) -> None:
    _, a, _ = await _gate_alert(store, "q")
    assert not await store.outbox.mark_edited(a.id, T0)  # pending
    assert await store.outbox.mark_sending(a.id) is not None
    assert not await store.outbox.mark_edited(a.id, T0)  # sending
    assert await store.outbox.mark_delivered(a.id, T0 + 1, "ref")
    assert await store.outbox.mark_edited(a.id, T0 + 2)
    item = await store.outbox.get_outbox(a.id)
    assert item is not None and (item.status, item.edited_at) == (OutboxStatus.DELIVERED, T0 + 2)
    assert not await store.outbox.mark_edited(999, T0)


def test_the_copies_owed_an_edit_are_found_through_their_index() -> None:
    conn = sqlite3.connect(":memory:")
    try:
        for migration in load_migrations():
            conn.executescript(migration.sql)
        found = conn.execute(f"EXPLAIN QUERY PLAN {outbox.OUTDATED}")
        plan = " ".join(str(r[-1]) for r in found)
    finally:
        conn.close()
    # The partial index, in id order (no sort), and each gate by its primary key.
    assert "INDEX outbox_unedited" in plan and "TEMP B-TREE" not in plan, plan
    assert "SEARCH g USING INTEGER PRIMARY KEY" in plan, plan


async def test_the_copies_owed_an_edit_are_found_through_their_index_on_postgresql(
    pg_backend: PostgresBackend,
) -> None:
    """A large outbox of delivered messages, a few of them gates' alerts, and many gates:
    the lookup reads the partial index, not the delivered rows."""
    async with pg_backend.open() as store:
        pg_backend.run(
            "INSERT INTO gates (kind, title, status, created_at)"
            " SELECT 'manual', 't', CASE WHEN id % 2 = 0 THEN 'approved' ELSE 'pending' END, 0"
            " FROM generate_series(1, 2000) AS id;"
            " INSERT INTO events (ts, kind) SELECT 0, 'agent.stuck' FROM generate_series(1, 20000);"
            " INSERT INTO alerts (event_id, kind, severity, title, text, created_at)"
            " SELECT id, 'agent.stuck', 'warning', 't', 't', 0 FROM events;"
            " INSERT INTO outbox (alert_id, interface, channel, dedupe_key, status,"
            " next_attempt_at, created_at, last_at, message_ref, edited_at)"
            " SELECT id, 'chat', 'c' || (id % 50),"
            " CASE WHEN id % 10 = 0 THEN 'gate.opened:' || (id / 10) ELSE 'agent.stuck:b' END,"
            " 'delivered', 0, 0, 0, 'ref', CASE WHEN id < 19000 THEN 1 END FROM alerts;"
            " ANALYZE"
        )
        found = await store.db.fetchall(f"EXPLAIN {outbox.OUTDATED}")
        plan = "\n".join(str(r["QUERY PLAN"]) for r in found)
        owed = await store.outbox.outdated_gate_copies()
    assert "outbox_unedited" in plan, plan
    assert [c.gate.id for c in owed] == list(range(1900, 2001, 2))
    assert all(isinstance(c.gate, Gate) and c.gate.status is GateStatus.APPROVED for c in owed)
