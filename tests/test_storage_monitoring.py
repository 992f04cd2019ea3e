"""Schema 2 of the store: migration from 1, pauses, deferred prompts, QA runs and the
outbox's queue semantics, on SQLite files in tmp_path and on PostgreSQL databases."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator

import pytest

from farmbot.errors import StorageError
from farmbot.messages import Button, Severity
from farmbot.models import (
    AgentState,
    AlertDraft,
    GateStatus,
    NewEvent,
    OutboxStatus,
    Project,
    PromptStatus,
)
from farmbot.storage import Storage, events, outbox
from farmbot.storage.migrate import load_migrations
from tests.backends import Backend, PostgresBackend
from tests.helpers import store_event, store_events
from tests.test_storage import _agent

T0 = 1_700_000_000.0


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Storage]:
    async with backend.open() as store:
        yield store


def _draft(
    title: str = "builder-1 is stuck",
    routes: tuple[tuple[str, str], ...] = (("web", "console"),),
    key: str = "",
) -> AlertDraft:
    return AlertDraft(
        kind="agent.stuck",
        severity=Severity.WARNING,
        agent_id="builder-1",
        project="farm",
        title=title,
        text=f"{title}: no output",
        pre="line 1\nline 2",
        buttons=((Button("Tail", "/tail builder-1"), Button("Kill", "/kill builder-1", "danger")),),
        dedupe_key=key,
        routes=routes,
    )


async def _alert(
    store: Storage, now: float, title: str = "stuck", routes: tuple[tuple[str, str], ...] = ()
) -> None:
    await store_event(
        store, NewEvent("agent.stuck", "builder-1"), [_draft(title, routes)], now, dedupe_window=300
    )


async def _heads(store: Storage, now: float) -> list[tuple[str, str]]:
    """(channel, title) of each due head, by channel."""
    return sorted((i.channel, i.alert.title) for i in await store.outbox.due_outbox(now))


# migration ----------------------------------------------------------------------------
async def test_schema_1_database_with_data_migrates_to_2_keeping_rows(backend: Backend) -> None:
    [first, second, *_] = backend.migrations()
    async with backend.open(migrations=[first]) as v1:
        assert await v1.db.schema_version() == 1
        async with v1.db.transaction() as tx:  # schema-1 rows, written with schema-1 columns
            await tx.execute(
                "INSERT INTO projects (name, path, updated_at) VALUES ('farm', '/srv/farm', ?)",
                (T0,),
            )
            await tx.execute(
                "INSERT INTO agents (id, project, kind, profile, number, workdir, branch,"
                " desired, state, state_reason, created_at, updated_at, state_since)"
                " VALUES ('builder-1', 'farm', 'builder', 'claude', 1, '/tmp/farm',"
                " 'builder-1', 'running', 'busy', 'working', ?, ?, ?)",
                (T0, T0, T0),
            )
            await tx.execute(
                "INSERT INTO prompts (agent_id, text, source, status, wait_ready, created_at)"
                " VALUES ('builder-1', 'hello', 'spawn', 'pending', TRUE, ?)",
                (T0,),
            )
        spawned = NewEvent("agent.spawned", "builder-1", "farm", {"by": "alice"})
        await store_events(v1, [spawned], T0)
        await v1.gates.add_gate("permission", "builder-1", "farm", "rm -rf?", "", {"n": 1}, T0)

    async with backend.open(migrations=[first, second]) as v2:
        assert await v2.db.schema_version() == 2
        agent = await v2.agents.get_agent("builder-1")
        assert agent is not None
        assert (agent.state, agent.state_reason, agent.paused_until) == (
            AgentState.BUSY,
            "working",
            None,
        )
        [prompt] = await v2.prompts.pending_prompts()
        assert (prompt.text, prompt.wait_ready, prompt.not_before) == ("hello", True, None)
        [event] = await v2.events.recent_events()
        assert (event.kind, event.data) == ("agent.spawned", {"by": "alice"})
        [gate] = await v2.gates.list_gates(GateStatus.PENDING)
        assert (gate.title, gate.payload) == ("rm -rf?", {"n": 1})
        assert await v2.projects.get_project("farm") == Project("farm", "/srv/farm")
        assert await v2.qa_runs.recent_qa_runs() == []
        assert await v2.outbox.outbox_summary() == {
            "pending": 0,
            "sending": 0,
            "delivered": 0,
            "dead": 0,
        }


# pauses and deferred prompts ----------------------------------------------------------
async def test_agent_pause_is_recorded_and_lifted(store: Storage) -> None:
    await store.projects.upsert_project(Project("farm", "/srv/farm"), T0)
    await store.agents.save_agent(_agent())
    paused = await store.agents.set_agent_paused("builder-1", T0 + 3600, T0 + 1)
    assert paused is not None and (paused.paused_until, paused.updated_at) == (T0 + 3600, T0 + 1)
    assert await store.agents.get_agent("builder-1") == paused
    lifted = await store.agents.set_agent_paused("builder-1", None, T0 + 3600)
    assert lifted is not None and lifted.paused_until is None
    assert await store.agents.set_agent_paused("ghost", T0, T0) is None
    # save_agent writes the new column too
    await store.agents.save_agent(lifted.__class__(**{**lifted.to_json(), "paused_until": T0 + 9}))
    again = await store.agents.get_agent("builder-1")
    assert again is not None and again.paused_until == T0 + 9


async def test_deferred_prompts_are_stored_and_still_pending(store: Storage) -> None:
    await store.projects.upsert_project(Project("farm", "/srv/farm"), T0)
    await store.agents.save_agent(_agent())
    now = await store.prompts.add_prompt("builder-1", "now", "spawn", T0, wait_ready=False)
    later = await store.prompts.add_prompt(
        "builder-1", "continue", "usage-limit", T0, wait_ready=True, not_before=T0 + 3600
    )
    assert (now.not_before, later.not_before) == (None, T0 + 3600)
    assert [p.not_before for p in await store.prompts.pending_prompts("builder-1")] == [
        None,
        T0 + 3600,
    ]
    await store.prompts.mark_prompt(later.id, PromptStatus.DELIVERED, T0 + 3601)
    assert [p.text for p in await store.prompts.pending_prompts()] == ["now"]


# QA runs ------------------------------------------------------------------------------
async def test_qa_runs_start_finish_and_list_newest_first(store: Storage) -> None:
    first = await store.qa_runs.start_qa_run("builder-1", "farm", "idle", "make test", T0)
    assert (first.finished_at, first.passed, first.exit_code, first.timed_out) == (
        None,
        None,
        None,
        False,
    )
    failed = await store.qa_runs.finish_qa_run(
        first.id,
        exit_code=2,
        passed=False,
        timed_out=False,
        output_tail="FAILED test_x",
        now=T0 + 30,
    )
    assert (failed.finished_at, failed.exit_code, failed.passed, failed.output_tail) == (
        T0 + 30,
        2,
        False,
        "FAILED test_x",
    )
    other = await store.qa_runs.start_qa_run(
        "builder-2", "farm", "manual:alice", "make test", T0 + 40
    )
    second = await store.qa_runs.start_qa_run("builder-1", "farm", "cron", "make test", T0 + 50)
    timed_out = await store.qa_runs.finish_qa_run(
        second.id, exit_code=None, passed=False, timed_out=True, output_tail="...", now=T0 + 650
    )
    assert timed_out.timed_out is True and timed_out.exit_code is None

    assert [r.id for r in await store.qa_runs.recent_qa_runs()] == [second.id, other.id, first.id]
    assert [r.id for r in await store.qa_runs.recent_qa_runs(1)] == [second.id]
    assert [r.id for r in await store.qa_runs.recent_qa_runs(agent_id="builder-1")] == [
        second.id,
        first.id,
    ]
    assert await store.qa_runs.last_qa_run("builder-1") == timed_out
    assert await store.qa_runs.last_qa_run("builder-9") is None
    passed = await store.qa_runs.finish_qa_run(
        other.id, exit_code=0, passed=True, timed_out=False, output_tail="ok", now=T0 + 60
    )
    assert passed.passed is True
    with pytest.raises(StorageError, match="no QA run 999"):
        await store.qa_runs.finish_qa_run(
            999, exit_code=0, passed=True, timed_out=False, output_tail="", now=T0
        )


# the outbox queue ---------------------------------------------------------------------
async def test_alerts_round_trip_with_buttons(store: Storage) -> None:
    event, [alert] = await store_event(
        store,
        NewEvent("agent.stuck", "builder-1", "farm", {"reason": "quiet"}),
        [_draft()],
        T0,
        dedupe_window=300,
    )
    assert (event.kind, event.data, event.ts) == ("agent.stuck", {"reason": "quiet"}, T0)
    assert await store.events.recent_events() == [event]
    assert await store.outbox.recent_alerts() == [alert]
    assert alert.event_id == event.id and alert.buttons == _draft().buttons
    [item] = await store.outbox.due_outbox(T0)
    assert item.alert == alert
    assert (item.interface, item.channel, item.status, item.count) == (
        "web",
        "console",
        OutboxStatus.PENDING,
        1,
    )
    assert item.to_json()["alert"]["severity"] == "warning"


async def test_only_the_head_of_each_channel_is_due(store: Storage) -> None:
    both = (("chat", "a"), ("chat", "b"))
    await _alert(store, T0, title="one", routes=both)
    await _alert(store, T0 + 1, title="two", routes=both)
    heads = await store.outbox.due_outbox(T0 + 1)
    assert [(i.channel, i.alert.title) for i in heads] == [("a", "one"), ("b", "one")]
    a_head, b_head = heads  # oldest first

    # A head being sent holds its channel; the other channel is unaffected.
    claimed = await store.outbox.mark_sending(a_head.id)
    assert claimed is not None and claimed.status is OutboxStatus.SENDING
    assert await store.outbox.mark_sending(a_head.id) is None  # claimed once
    assert await _heads(store, T0 + 2) == [("b", "one")]

    # A head waiting for its retry holds its channel too: order is kept.
    assert await store.outbox.mark_retry(a_head.id, "HTTP 503", T0 + 10)
    assert [i.channel for i in await store.outbox.due_outbox(T0 + 9)] == ["b"]
    [again, _] = await store.outbox.due_outbox(T0 + 10)
    assert (again.id, again.attempts, again.last_error) == (a_head.id, 1, "HTTP 503")

    # Delivered: the next item of the channel is its head.
    assert await store.outbox.mark_sending(a_head.id) is not None
    assert await store.outbox.mark_delivered(a_head.id, T0 + 11)
    assert not await store.outbox.mark_delivered(a_head.id, T0 + 11)
    delivered = await store.outbox.get_outbox(a_head.id)
    assert delivered is not None and delivered.delivered_at == T0 + 11
    assert delivered.attempts == 2
    assert await _heads(store, T0 + 11) == [
        ("a", "two"),
        ("b", "one"),
    ]

    # Dead: the channel moves on; the dead letter can be put back.
    assert await store.outbox.mark_dead(b_head.id, "channel_not_found")
    assert await _heads(store, T0 + 11) == [
        ("a", "two"),
        ("b", "two"),
    ]
    [dead] = await store.outbox.dead_letters()
    assert (dead.id, dead.status, dead.last_error, dead.attempts) == (
        b_head.id,
        OutboxStatus.DEAD,
        "channel_not_found",
        0,  # it was never sent
    )
    assert await store.outbox.outbox_summary() == {
        "pending": 2,
        "sending": 0,
        "delivered": 1,
        "dead": 1,
    }
    assert await store.outbox.retry_dead(a_head.id, T0) is None  # not dead
    revived = await store.outbox.retry_dead(b_head.id, T0 + 12)
    assert revived is not None and revived.status is OutboxStatus.PENDING
    assert await store.outbox.retry_dead(b_head.id, T0 + 12) is None
    assert await store.outbox.dead_letters() == []
    assert await _heads(store, T0 + 12) == [
        ("a", "two"),
        ("b", "one"),
    ]


async def test_requeue_sending_puts_a_crashed_delivery_back(store: Storage) -> None:
    await _alert(store, T0, routes=(("chat", "a"),))
    [item] = await store.outbox.due_outbox(T0)
    assert await store.outbox.mark_sending(item.id) is not None
    assert await store.outbox.due_outbox(T0 + 1) == []
    assert await store.outbox.requeue_sending(T0 + 5) == 1
    [back] = await store.outbox.due_outbox(T0 + 5)
    assert (back.id, back.status, back.attempts) == (item.id, OutboxStatus.PENDING, 0)
    assert await store.outbox.requeue_sending(T0 + 6) == 0


async def test_outbox_rows_need_an_interface(store: Storage) -> None:
    with pytest.raises(StorageError, match="(?i)check"):
        await _alert(store, T0, routes=(("", "x"),))
    assert await store.events.recent_events() == []
    assert await store.outbox.recent_alerts() == []


def test_the_outbox_queries_use_indexes() -> None:
    conn = sqlite3.connect(":memory:")
    try:
        for migration in load_migrations():
            conn.executescript(migration.sql)

        def plan(sql: str, params: tuple[object, ...]) -> str:
            found = conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            return " ".join(str(r[-1]) for r in found)

        # The statements outbox.py runs, not copies of them.
        heads = plan(outbox.DUE, (T0, T0, 100))
        fold = plan(events.EARLIER, ("chat", "a", "agent.stuck:builder-1"))
        dead = plan(outbox.DEAD_LETTERS, (5,))
    finally:
        conn.close()
    assert "SEARCH outbox USING INDEX outbox_status" in heads  # the heads subquery
    assert "INDEX outbox_dedupe" in fold
    assert "INDEX outbox_status" in dead and "TEMP B-TREE" not in dead


async def test_the_outbox_queries_use_indexes_on_postgresql(pg_backend: PostgresBackend) -> None:
    """PostgreSQL's planner chooses by statistics: fill the outbox as it grows in use
    (delivered rows pile up, a few are open), then read the plans of the statements
    outbox.py runs, with their parameters, through farmbot's own database."""
    async with pg_backend.open() as store:
        pg_backend.run(
            "INSERT INTO events (ts, kind) SELECT 0, 'agent.stuck' FROM generate_series(1, 20000);"
            " INSERT INTO alerts (event_id, kind, severity, title, text, created_at)"
            " SELECT id, 'agent.stuck', 'warning', 't', 't', 0 FROM events;"
            " INSERT INTO outbox (alert_id, interface, channel, dedupe_key, status,"
            " next_attempt_at, created_at, last_at)"
            " SELECT id, 'chat', 'c' || (id % 50), 'agent.stuck:builder-' || (id % 20),"
            " CASE WHEN id % 1000 = 0 THEN 'pending' ELSE 'delivered' END, 0, 0, 0 FROM alerts;"
            " ANALYZE"
        )

        async def plan(sql: str, params: tuple[object, ...]) -> str:
            found = await store.db.fetchall(f"EXPLAIN {sql}", params)
            return "\n".join(str(r["QUERY PLAN"]) for r in found)

        heads = await plan(outbox.DUE, (T0, T0, 100))
        fold = await plan(events.EARLIER, ("chat", "c1", "agent.stuck:builder-1"))
        dead = await plan(outbox.DEAD_LETTERS, (5,))
    assert "outbox_status" in heads, heads  # the heads subquery
    assert "outbox_dedupe" in fold, fold
    assert "outbox_status" in dead and "Sort" not in dead, dead


def test_the_copies_of_an_alert_are_found_by_their_key_through_an_index() -> None:
    conn = sqlite3.connect(":memory:")
    try:
        for migration in load_migrations():
            conn.executescript(migration.sql)
        found = conn.execute(f"EXPLAIN QUERY PLAN {outbox.BY_KEY}", ("gate.opened:7",))
        plan = " ".join(str(r[-1]) for r in found)
    finally:
        conn.close()
    assert "INDEX outbox_copies" in plan and "TEMP B-TREE" not in plan


async def test_a_delivered_item_keeps_its_message_ref(store: Storage) -> None:
    routes = (("slack", "C1"), ("slack", "C2"))
    draft = AlertDraft("gate.opened", Severity.WARNING, None, "farm", "gate #7", "t",
                       routes=routes, dedupe_key="gate.opened:7")  # fmt: skip
    await store_event(store, NewEvent("gate.opened", None, "farm"), [draft], T0)
    first, second = await store.outbox.items_with_key("gate.opened:7")
    assert await store.outbox.mark_sending(first.id) is not None
    assert await store.outbox.mark_delivered(first.id, T0 + 1, "1700000000.000100")
    again = await store.outbox.items_with_key("gate.opened:7")
    assert [(i.status, i.message_ref) for i in again] == [
        (OutboxStatus.DELIVERED, "1700000000.000100"), (OutboxStatus.PENDING, None),
    ]  # fmt: skip
    assert await store.outbox.items_with_key("gate.opened:8") == []
    assert second.id > first.id
