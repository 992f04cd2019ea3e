"""What the PostgreSQL backend adds to the seam: placeholders, error translation without
the password, and SQLite's transaction semantics across several nodes (several
``PostgresDatabase`` on one database, as several farmbot machines have)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import psycopg
import pytest

from farmbot.errors import StorageError
from farmbot.messages import Severity
from farmbot.models import AlertDraft, GateStatus, NewEvent, Project
from farmbot.storage import Storage, postgres
from farmbot.storage.migrate import MIGRATION_LOCK
from farmbot.storage.postgres import PostgresDatabase, pyformat
from tests.backends import Backend, PostgresBackend
from tests.helpers import store_event
from tests.pgcluster import Cluster, free_port, start_cluster
from tests.test_storage import _agent

T0 = 1_700_000_000.0


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Storage]:
    async with backend.open() as store:
        yield store


@pytest.fixture
async def nodes(pg_backend: PostgresBackend) -> AsyncIterator[tuple[Storage, Storage]]:
    """Two farmbots on one database."""
    async with pg_backend.open() as one, pg_backend.open() as two:
        yield one, two


# placeholders ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT * FROM t WHERE a = ? AND b = ?", "SELECT * FROM t WHERE a = %s AND b = %s"),
        ("SELECT '50%' LIKE ?", "SELECT '50%%' LIKE %s"),
        ("SELECT 'who?', \"odd?name\" FROM t WHERE c = ?", "SELECT 'who?', \"odd?name\" FROM t "
         "WHERE c = %s"),
        ("SELECT 'it''s ?' , ?", "SELECT 'it''s ?' , %s"),
        ("SELECT 1 -- why?\n, ? /* and ? */", "SELECT 1 -- why?\n, %s /* and ? */"),
        ("SELECT 7 % ?", "SELECT 7 %% %s"),
    ],
)  # fmt: skip
def test_question_marks_become_psycopg_placeholders(sql: str, expected: str) -> None:
    assert pyformat(sql) == expected


async def test_percent_signs_and_question_marks_are_text(store: Storage) -> None:
    command = "/send builder-1 is 50% done? 100%s left"
    action = await store.actions.put_action(command, T0)
    assert await store.actions.get_action(action) == command
    row = await store.db.fetchone("SELECT '50%?' AS lit, ? AS param", ("%s?",))
    assert row is not None and (row["lit"], row["param"]) == ("50%?", "%s?")


# errors ---------------------------------------------------------------------------------
async def test_text_no_database_can_hold_is_a_storage_error(store: Storage) -> None:
    await store.projects.upsert_project(Project("farm", "/srv/farm"), T0)
    await store.agents.save_agent(_agent())
    with pytest.raises(StorageError) as caught:
        await store.prompts.add_prompt(
            "builder-1", "half \ud800 a pair", "test", T0, wait_ready=False
        )
    assert "\n" not in str(caught.value) and "surrogate" in str(caught.value)
    with pytest.raises(StorageError, match="surrogate"):
        async with store.db.transaction() as tx:
            await tx.execute("INSERT INTO actions (command, created_at) VALUES ('kept?', 0)")
            await tx.execute("INSERT INTO actions (command, created_at) VALUES (?, 0)", ("\udfff",))
    assert await store.prompts.pending_prompts() == []
    assert await store.db.fetchall("SELECT * FROM actions") == []  # rolled back
    await store.db.ping()  # and the store goes on


async def test_errors_never_show_the_password(pg_cluster: Cluster) -> None:
    secret = pg_cluster.password
    wrong = "Wr0ng-" + secret[::-1]
    cases = {
        "wrong password in the URL": PostgresDatabase(pg_cluster.url().replace(secret, wrong)),
        "wrong password given apart": PostgresDatabase(
            pg_cluster.url(password=False), password=wrong
        ),
        "nobody listens": PostgresDatabase(
            f"postgresql://farmbot:{wrong}@127.0.0.1:{free_port()}/farmbot?connect_timeout=3"
        ),
        "no such database": PostgresDatabase(pg_cluster.url("no_such_db")),
    }
    for case, db in cases.items():
        assert secret not in repr(db) and wrong not in repr(db), case
        with pytest.raises(StorageError) as caught:
            await db.open()
        message = str(caught.value)
        assert "\n" not in message, (case, message)
        assert secret not in message and wrong not in message, (case, message)
        assert message.startswith("postgresql://farmbot@127.0.0.1:"), (case, message)
    with pytest.raises(StorageError) as caught:
        PostgresDatabase(f"postgresql://farmbot:se%zz{wrong}@127.0.0.1/farmbot")
    assert wrong not in str(caught.value) and "percent-encoded" in str(caught.value)


async def test_a_connection_cut_by_the_server_is_replaced(
    pg_backend: PostgresBackend, pg_cluster: Cluster
) -> None:
    async with pg_backend.open() as store:
        await store.db.ping()
        with pg_cluster.admin() as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND application_name = 'farmbot'",
                (pg_backend.dbname,),
            )
        await store.db.ping()  # the pool checks a connection before it hands it out
        assert await store.db.schema_version() == pg_backend.migrations()[-1].version


async def test_a_server_restart_fails_operations_briefly_then_heals(pg_cluster: Cluster) -> None:
    """The database goes away under a running farmbot (a restart, a failover): each
    operation fails within the pool's timeout, with one line, and once the server is
    back the same store works again, without reopening it."""
    own = start_cluster(pg_cluster.bindir)  # a cluster of its own to stop
    try:
        async with PostgresDatabase(own.url(), timeout=1) as db:
            await db.ping()
            own.stop_server()
            started = time.monotonic()
            with pytest.raises(StorageError) as caught:
                await db.ping()
            assert time.monotonic() - started < 5
            assert "\n" not in str(caught.value) and own.password not in str(caught.value)
            assert str(caught.value).startswith(db.where)
            own.start_server()
            healed_by = time.monotonic() + 15
            while not await _answers(db):
                assert time.monotonic() < healed_by, "the store did not heal"
                await asyncio.sleep(0.1)
    finally:
        own.stop()


async def _answers(db: PostgresDatabase) -> bool:
    try:
        await db.ping()
    except StorageError:
        return False
    return True


async def test_a_migration_held_by_another_node_is_waited_for_then_named(
    pg_backend: PostgresBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres, "MIGRATION_WAIT", 1)
    with psycopg.connect(pg_backend.url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        with pytest.raises(StorageError) as caught:
            await pg_backend.database().open()
    assert str(caught.value) == (
        f"{pg_backend.where}: another farmbot has been migrating this database for 1 s;"
        " try again once it has started"
    )
    assert pg_backend.version() == 0  # nothing was written
    async with pg_backend.open() as store:  # the lock went with its session
        assert await store.db.schema_version() == pg_backend.migrations()[-1].version


# transactions across nodes --------------------------------------------------------------
def _draft(key: str) -> AlertDraft:
    return AlertDraft(
        "agent.stuck", Severity.WARNING, "builder-1", "farm", "stuck", "no output",
        dedupe_key=key, routes=(("chat", "A"),),
    )  # fmt: skip


async def test_a_transaction_holds_every_other_nodes_writes_back(
    nodes: tuple[Storage, Storage],
) -> None:
    """BEGIN IMMEDIATE's semantics: while one node's transaction is open, another node's
    event batch waits, then sees what the first committed -- so a repeat folds into the
    first node's outbox row instead of becoming a second message."""
    one, two = nodes
    inside = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with one.db.transaction() as tx:
            event = await tx.insert(
                "INSERT INTO events (ts, kind, data) VALUES (?, 'agent.stuck', '{}') RETURNING id",
                (T0,),
            )
            alert = await tx.insert(
                "INSERT INTO alerts (event_id, kind, severity, title, text, dedupe_key,"
                " created_at) VALUES (?, 'agent.stuck', 'warning', 'stuck', '', 'k', ?)"
                " RETURNING id",
                (event, T0),
            )
            await tx.execute(
                "INSERT INTO outbox (alert_id, interface, channel, dedupe_key, status,"
                " next_attempt_at, created_at, last_at)"
                " VALUES (?, 'chat', 'A', 'k', 'pending', ?, ?, ?)",
                (alert, T0, T0, T0),
            )
            inside.set()
            await release.wait()

    holder = asyncio.create_task(first())
    await inside.wait()
    second = asyncio.create_task(
        store_event(two, NewEvent("agent.stuck", "builder-1"), [_draft("k")], T0 + 1)
    )
    await asyncio.sleep(0.3)
    assert not second.done()  # waiting for the write lock
    release.set()
    await holder
    await second
    [item] = await two.outbox.due_outbox(T0 + 1)
    assert (item.count, item.alert.title) == (2, "stuck")


async def test_repeats_from_two_nodes_fold_into_one_message(
    nodes: tuple[Storage, Storage],
) -> None:
    async def repeat(store: Storage, n: int) -> None:
        await store_event(store, NewEvent("agent.stuck", "builder-1"), [_draft("k")], T0 + n)

    await asyncio.gather(*(repeat(nodes[n % 2], n) for n in range(20)))
    [item] = await nodes[0].outbox.due_outbox(T0 + 20)
    assert item.count == 20
    summary = await nodes[1].outbox.outbox_summary()
    assert summary["pending"] == 1


async def test_compare_and_set_decides_once_across_nodes(nodes: tuple[Storage, Storage]) -> None:
    one, two = nodes
    gate = await one.gates.add_gate("permission", "a-1", "farm", "Run rm?", "", {}, T0)
    decided = await asyncio.gather(
        one.gates.decide_gate(gate.id, GateStatus.APPROVED, "alice", "", T0 + 1),
        two.gates.decide_gate(gate.id, GateStatus.REJECTED, "bob", "", T0 + 1),
    )
    assert len([g for g in decided if g is not None]) == 1

    await store_event(one, NewEvent("agent.stuck", "builder-1"), [_draft("")], T0)
    [item] = await one.outbox.due_outbox(T0)
    claims = await asyncio.gather(*(n.outbox.mark_sending(item.id) for n in (one, two, one, two)))
    assert len([c for c in claims if c is not None]) == 1
    assert (await two.outbox.outbox_summary())["sending"] == 1
