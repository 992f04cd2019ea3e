"""The store against real databases: every repository on SQLite (a file in tmp_path) and
on PostgreSQL (a fresh database in a throwaway cluster); what is about SQLite's file
(WAL, "not a database", its migration API) on SQLite alone."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from farmbot.errors import SchemaTooNewError, StorageError
from farmbot.models import (
    Agent,
    AgentKind,
    AgentState,
    DesiredState,
    GateStatus,
    NewEvent,
    Project,
    PromptStatus,
    Question,
)
from farmbot.storage import Storage, open_sqlite
from farmbot.storage.migrate import (
    Migration,
    apply_migrations,
    load_migrations,
    split_statements,
)
from farmbot.storage.sqlite import SqliteDatabase
from tests.backends import Backend, PostgresBackend, SqliteBackend
from tests.helpers import store_events

T0 = 1_700_000_000.0
GOOD = Migration(1, "good", "CREATE TABLE good (a INTEGER);")
BROKEN = Migration(2, "broken", "CREATE TABLE x (a INTEGER); SELEKT nonsense;")


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Storage]:
    async with backend.open() as store:
        yield store


def _tables(path: Path) -> set[str]:
    return SqliteBackend(path).tables()


def _user_version(path: Path) -> int:
    return SqliteBackend(path).version()


def _agent(agent_id: str = "builder-1", project: str = "farm", created: float = T0) -> Agent:
    return Agent(
        id=agent_id,
        project=project,
        kind=AgentKind.BUILDER,
        profile="claude",
        number=1,
        workdir="/tmp/farm",
        branch="builder-1",
        desired=DesiredState.RUNNING,
        state=AgentState.STARTING,
        state_reason="spawned",
        created_at=created,
        updated_at=created,
        state_since=created,
    )


# migrations ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sqlite", "postgresql"])
def test_packaged_migrations_are_numbered_from_one(name: str) -> None:
    migrations = load_migrations(name)
    assert [m.version for m in migrations][:1] == [1]
    assert migrations[0].name == "initial"
    assert "CREATE TABLE events" in migrations[0].sql


def test_both_backends_have_the_same_migrations() -> None:
    sqlite, postgresql = load_migrations("sqlite"), load_migrations("postgresql")
    assert [(m.version, m.name) for m in sqlite] == [(m.version, m.name) for m in postgresql]


async def test_both_backends_have_the_same_schema(
    tmp_path: Path, pg_backend: PostgresBackend
) -> None:
    """Same tables, columns (in order), and indexes, partial ones with the same condition."""
    lite = SqliteBackend(tmp_path / "farmbot.db")
    async with lite.open(), pg_backend.open():
        pass
    columns: dict[str, list[str]] = {}
    for table in sorted(lite.tables()):
        columns[table] = [str(r[1]) for r in lite.run(f"PRAGMA table_info({table})")]
    pg_columns: dict[str, list[str]] = {}
    for table, column in pg_backend.run(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = 'public' AND table_name != 'schema_migrations'"
        " ORDER BY table_name, ordinal_position"
    ):
        pg_columns.setdefault(str(table), []).append(str(column))
    assert pg_columns == columns

    lite_indexes = {
        str(name): " ".join(str(sql).split()).split(" ON ", 1)[1]
        for name, sql in lite.run(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        )
    }
    pg_indexes = {
        str(name): str(sql).split(" ON ", 1)[1].replace("public.", "").replace(" USING btree", "")
        for name, sql in pg_backend.run(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
            " AND indexname NOT LIKE '%_pkey' AND indexname NOT LIKE '%_key'"
        )
    }
    assert sorted(pg_indexes) == sorted(lite_indexes)
    for name, definition in lite_indexes.items():  # same columns; same WHERE, as each writes it
        table_and_columns, _, where = definition.partition(" WHERE ")
        pg_table_and_columns, _, pg_where = pg_indexes[name].partition(" WHERE ")
        assert "".join(pg_table_and_columns.split()) == "".join(table_and_columns.split())
        assert bool(where) == bool(pg_where), name
        # PostgreSQL writes "x IN ('a', 'b')" as "x = ANY (ARRAY['a', 'b'])": compare names
        # and values, not how each spells the operators.
        for word in re.findall(r"'[^']*'|\w+", where):
            if word.upper() not in ("IN", "IS", "NOT", "NULL", "AND", "OR"):
                assert word.strip("'") in pg_where, (name, word)


def test_split_statements_keeps_triggers_and_quotes_whole() -> None:
    sql = (
        "-- comment; with a semicolon\nCREATE TABLE t (a TEXT DEFAULT ';');\n"
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET a = 'x;'; END;\n"
        "CREATE TABLE u (b)"
    )
    assert len(split_statements(sql)) == 3


async def test_fresh_database_migrates_to_latest(backend: Backend) -> None:
    async with backend.open() as store:
        assert await store.db.schema_version() == backend.migrations()[-1].version
        await store.db.ping()
    assert backend.version() == backend.migrations()[-1].version
    tables = {"projects", "agents", "prompts", "events", "gates", "audit", "actions"}
    assert tables <= backend.tables()


async def test_sqlite_creates_the_directory_of_its_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "nested" / "farmbot.db"
    async with open_sqlite(path) as store:
        await store.db.ping()
    assert "events" in _tables(path)


async def test_reopening_is_a_no_op(backend: Backend) -> None:
    async with backend.open() as store:
        await store.projects.upsert_project(Project("farm", "/srv/farm"), T0)
        version = await store.db.schema_version()
    async with backend.open() as store:
        assert await store.db.schema_version() == version
        assert await store.projects.get_project("farm") == Project("farm", "/srv/farm")


async def test_nodes_started_at_once_migrate_once(pg_backend: PostgresBackend) -> None:
    """Concurrently started nodes: one migrates (holding the advisory lock), the rest wait
    and find nothing left to do -- no "relation already exists"."""
    databases = [pg_backend.database() for _ in range(4)]
    await asyncio.gather(*(db.open() for db in databases))
    try:
        versions = [await db.schema_version() for db in databases]
    finally:
        await asyncio.gather(*(db.aclose() for db in databases))
    latest = pg_backend.migrations()[-1].version
    assert versions == [latest] * 4
    applied = pg_backend.run("SELECT version FROM schema_migrations ORDER BY version")
    assert [v for (v,) in applied] == [m.version for m in pg_backend.migrations()]


async def test_sqlite_wal_and_foreign_keys_are_on(tmp_path: Path) -> None:
    async with open_sqlite(tmp_path / "farmbot.db") as store, store.db.transaction() as tx:
        journal = await tx.fetchone("PRAGMA journal_mode")
        foreign_keys = await tx.fetchone("PRAGMA foreign_keys")
    assert journal is not None and journal["journal_mode"] == "wal"
    assert foreign_keys is not None and foreign_keys["foreign_keys"] == 1


async def test_foreign_keys_are_enforced(store: Storage) -> None:
    with pytest.raises(StorageError, match="(?i)foreign key"):
        await store.prompts.add_prompt("no-such-agent", "hello", "test", T0, wait_ready=False)


async def test_newer_database_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "farmbot.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE future (a)")
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    before = path.read_bytes()

    with pytest.raises(SchemaTooNewError) as caught:
        await SqliteDatabase(path).open()

    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message and "99" in message and "upgrade farmbot" in message
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["farmbot.db"]


async def test_newer_postgresql_database_is_refused_and_untouched(
    pg_backend: PostgresBackend,
) -> None:
    pg_backend.run(
        "CREATE TABLE future (a INTEGER);"
        " CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
        " applied_at DOUBLE PRECISION NOT NULL);"
        " INSERT INTO schema_migrations VALUES (99, 'future', 0)"
    )
    before = pg_backend.run("SELECT * FROM schema_migrations")

    with pytest.raises(SchemaTooNewError) as caught:
        await pg_backend.database().open()

    message = str(caught.value)
    assert "\n" not in message
    assert pg_backend.where in message and "99" in message and "upgrade farmbot" in message
    assert pg_backend.tables() == {"future"}
    assert pg_backend.run("SELECT * FROM schema_migrations") == before


async def test_broken_migration_rolls_back_to_previous_version(backend: Backend) -> None:
    with pytest.raises(StorageError, match="0002_broken") as caught:
        await backend.database(migrations=[GOOD, BROKEN]).open()
    assert backend.where in str(caught.value) and "\n" not in str(caught.value)
    assert backend.version() == 1
    assert backend.tables() == {"good"}


async def test_a_failed_migration_keeps_the_rows_of_the_previous_one(backend: Backend) -> None:
    async with backend.open(migrations=[GOOD]) as v1:
        await v1.db.execute("INSERT INTO good VALUES (7)")
    bad = Migration(2, "half", "INSERT INTO good VALUES (8); CREATE TABLE y (a INTEGER); bogus;")
    with pytest.raises(StorageError, match="0002_half"):
        await backend.database(migrations=[GOOD, bad]).open()
    assert backend.run("SELECT a FROM good") == [(7,)]
    assert (backend.version(), backend.tables()) == (1, {"good"})


def test_failed_migration_leaves_the_database_as_before(tmp_path: Path) -> None:
    path = tmp_path / "farmbot.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert apply_migrations(conn, [GOOD]) == 1
        conn.execute("INSERT INTO good VALUES (7)")
        bad = Migration(2, "half", "INSERT INTO good VALUES (8); CREATE TABLE y(a); bogus;")
        with pytest.raises(StorageError):
            apply_migrations(conn, [GOOD, bad])
        assert not conn.in_transaction
        assert conn.execute("SELECT a FROM good").fetchall() == [(7,)]
        assert conn.execute("PRAGMA user_version").fetchone() == (1,)
    finally:
        conn.close()
    assert _tables(path) == {"good"}


async def test_duplicate_migration_versions_are_rejected(backend: Backend) -> None:
    with pytest.raises(StorageError, match="unique"):
        await backend.database(migrations=[GOOD, Migration(1, "again", "SELECT 1;")]).open()
    assert backend.version() == 0 and backend.tables() == set()


async def test_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "farmbot.db"
    path.write_bytes(b"this is a text file, not a database\n" * 100)
    with pytest.raises(StorageError, match="not a SQLite database") as caught:
        await SqliteDatabase(path).open()
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


async def test_closed_store_raises_storage_error(backend: Backend) -> None:
    db = backend.database()
    with pytest.raises(StorageError, match="not open"):
        await db.ping()
    async with db:
        await db.ping()
    with pytest.raises(StorageError, match="not open"):
        await db.ping()


# transactions -------------------------------------------------------------------------
async def test_transaction_commits_together_or_not_at_all(store: Storage) -> None:
    async with store.db.transaction() as tx:
        await tx.execute("INSERT INTO actions (command, created_at) VALUES ('a', 0)")
        await tx.execute("INSERT INTO actions (command, created_at) VALUES ('b', 0)")
    with pytest.raises(StorageError, match="(?i)unique"):
        async with store.db.transaction() as tx:
            await tx.execute("INSERT INTO actions (command, created_at) VALUES ('c', 0)")
            await tx.execute("INSERT INTO actions (command, created_at) VALUES ('a', 0)")
    with pytest.raises(KeyError):
        async with store.db.transaction() as tx:
            await tx.execute("INSERT INTO actions (command, created_at) VALUES ('d', 0)")
            raise KeyError("boom")
    async with store.db.transaction() as tx:
        rows = await tx.fetchall("SELECT command FROM actions ORDER BY id")
    assert [r["command"] for r in rows] == ["a", "b"]


async def test_store_methods_inside_a_transaction_fail_fast(store: Storage) -> None:
    with pytest.raises(RuntimeError, match="use tx"):
        async with store.db.transaction():
            await store.db.ping()
    await store.db.ping()  # the lock was released


async def test_concurrent_transactions_do_not_interleave(store: Storage) -> None:
    async def writer(name: str) -> None:
        async with store.db.transaction() as tx:
            await tx.execute("INSERT INTO actions (command, created_at) VALUES (?, 0)", (name,))
            await asyncio.sleep(0)
            if name == "fails":
                raise ValueError(name)
            await tx.execute(
                "INSERT INTO actions (command, created_at) VALUES (?, 0)", (name + "2",)
            )

    results = await asyncio.gather(
        writer("a"), writer("fails"), writer("b"), return_exceptions=True
    )
    assert [type(r) for r in results] == [type(None), ValueError, type(None)]
    async with store.db.transaction() as tx:
        rows = await tx.fetchall("SELECT command FROM actions ORDER BY id")
    assert [r["command"] for r in rows] == ["a", "a2", "b", "b2"]


async def test_cancelled_transaction_rolls_back(store: Storage) -> None:
    inside = asyncio.Event()

    async def stalls() -> None:
        async with store.db.transaction() as tx:
            await tx.execute("INSERT INTO actions (command, created_at) VALUES ('lost', 0)")
            inside.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(stalls())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    kept = await store.actions.put_action("kept", T0)
    assert await store.actions.get_action(kept) == "kept"
    async with store.db.transaction() as tx:
        rows = await tx.fetchall("SELECT command FROM actions")
    assert [r["command"] for r in rows] == ["kept"]


# records ------------------------------------------------------------------------------
async def test_projects_upsert_keeps_active(store: Storage) -> None:
    await store.projects.upsert_project(Project("farm", "/srv/farm", verify="make test"), T0)
    await store.projects.upsert_project(Project("barn", "/srv/barn", is_git=True), T0)
    await store.projects.set_project_active("farm", False, T0 + 1)
    await store.projects.upsert_project(
        Project("farm", "/srv/farm2", active=True, is_git=True), T0 + 2
    )

    assert await store.projects.get_project("farm") == Project(
        "farm", "/srv/farm2", active=False, verify=None, is_git=True
    )
    assert [p.name for p in await store.projects.list_projects()] == ["barn", "farm"]
    assert await store.projects.get_project("nope") is None


async def test_text_sorts_by_bytes_as_in_sqlite(store: Storage) -> None:
    """Whatever the server's collation: "a-b" before "a1" before "a_b" (ICU puts "_" and
    "-" first), and "B" before "a"."""
    names = ["ab", "a_b", "B", "a1", "a-b"]
    for name in names:
        await store.projects.upsert_project(Project(name, f"/srv/{name}"), T0)
        await store.agents.save_agent(_agent(f"x{name}", project=name))  # one created_at
    assert [p.name for p in await store.projects.list_projects()] == sorted(names)
    assert [a.project for a in await store.agents.list_agents()] == sorted(names)


async def test_agents_round_trip_and_state_since(store: Storage) -> None:
    await store.projects.upsert_project(Project("farm", "/srv/farm"), T0)
    await store.projects.upsert_project(Project("barn", "/srv/barn"), T0)
    agent = _agent()
    await store.agents.save_agent(agent)
    await store.agents.save_agent(_agent("builder-0", created=T0 + 5))
    await store.agents.save_agent(_agent("shell-1", project="barn", created=T0 + 1))
    assert await store.agents.get_agent("builder-1") == agent
    assert [a.id for a in await store.agents.list_agents()] == ["builder-1", "shell-1", "builder-0"]
    assert [a.id for a in await store.agents.list_agents("barn")] == ["shell-1"]

    busy = await store.agents.set_agent_state("builder-1", AgentState.BUSY, "working", T0 + 10)
    assert busy is not None and busy.state is AgentState.BUSY and busy.state_since == T0 + 10
    again = await store.agents.set_agent_state("builder-1", AgentState.BUSY, "still", T0 + 20)
    assert again is not None
    assert (again.state_since, again.updated_at, again.state_reason) == (T0 + 10, T0 + 20, "still")
    idle = await store.agents.set_agent_state("builder-1", AgentState.IDLE, "done", T0 + 30)
    assert idle is not None and idle.state_since == T0 + 30
    assert await store.agents.get_agent("builder-1") == idle
    assert await store.agents.set_agent_state("ghost", AgentState.IDLE, "", T0) is None

    stopped = await store.agents.set_agent_desired("builder-1", DesiredState.STOPPED, T0 + 40)
    assert stopped is not None and stopped.desired is DesiredState.STOPPED
    assert await store.agents.set_agent_desired("ghost", DesiredState.STOPPED, T0) is None


async def test_save_agent_replaces_a_row_that_prompts_point_at(store: Storage) -> None:
    await store.projects.upsert_project(Project("farm", "/srv/farm"), T0)
    await store.agents.save_agent(_agent())
    await store.prompts.add_prompt("builder-1", "hello", "test", T0, wait_ready=False)
    replaced = dataclasses.replace(_agent(), branch=None, number=None)
    await store.agents.save_agent(replaced)
    assert await store.agents.get_agent("builder-1") == replaced
    assert len(await store.prompts.pending_prompts("builder-1")) == 1


async def test_prompts_queue(store: Storage) -> None:
    await store.projects.upsert_project(Project("farm", "/srv/farm"), T0)
    await store.agents.save_agent(_agent("a-1"))
    await store.agents.save_agent(_agent("a-2"))
    first = await store.prompts.add_prompt("a-1", "first", "spawn", T0, wait_ready=True)
    other = await store.prompts.add_prompt("a-2", "other", "web:alice", T0 + 1, wait_ready=False)
    second = await store.prompts.add_prompt(
        "a-1", "second", "telegram:1001", T0 + 2, wait_ready=False
    )
    assert first.status is PromptStatus.PENDING and first.wait_ready is True
    assert first.delivered_at is None and first.error == ""

    assert [p.text for p in await store.prompts.pending_prompts()] == ["first", "other", "second"]
    assert [p.id for p in await store.prompts.pending_prompts("a-1")] == [first.id, second.id]

    await store.prompts.mark_prompt(first.id, PromptStatus.DELIVERED, T0 + 3)
    await store.prompts.mark_prompt(other.id, PromptStatus.FAILED, T0 + 4, error="pane gone")
    assert [p.id for p in await store.prompts.pending_prompts()] == [second.id]

    await store.prompts.add_prompt("a-1", "third", "spawn", T0 + 5, wait_ready=False)
    assert await store.prompts.cancel_prompts("a-1") == 2
    assert await store.prompts.pending_prompts() == []
    assert await store.prompts.cancel_prompts("a-1") == 0
    # A cancelled prompt stays cancelled even if a late delivery report arrives.
    await store.prompts.mark_prompt(second.id, PromptStatus.DELIVERED, T0 + 8)
    async with store.db.transaction() as tx:
        rows = await tx.fetchall("SELECT id, status, delivered_at, error FROM prompts")
    by_id = {r["id"]: (r["status"], r["delivered_at"], r["error"]) for r in rows}
    assert by_id[first.id] == ("delivered", T0 + 3, "")
    assert by_id[other.id] == ("failed", None, "pane gone")
    assert by_id[second.id] == ("cancelled", None, "")


async def test_events_batch_and_filters(store: Storage) -> None:
    assert await store_events(store, [], T0) == []
    ids = await store_events(
        store,
        [
            NewEvent("agent.spawned", "a-1", "farm"),
            NewEvent("hook.PreToolUse", "a-1", "farm", {"tool": "Bash", "n": [1, 2]}, ts=T0 - 5),
            NewEvent("agent.dead", "a-2", "farm"),
        ],
        T0,
    )
    more = await store_events(store, [NewEvent("agent.idle", "a-1")], T0 + 1)
    assert len(ids) == 3 and ids == list(range(ids[0], ids[0] + 3))
    assert more == [ids[-1] + 1]

    newest = await store.events.recent_events()
    assert [e.id for e in newest] == [*more, *reversed(ids)]
    hook = newest[2]
    assert (hook.kind, hook.ts, hook.data) == (
        "hook.PreToolUse",
        T0 - 5,
        {"tool": "Bash", "n": [1, 2]},
    )
    assert newest[-1].ts == T0 and newest[-1].data == {}

    assert [e.kind for e in await store.events.recent_events(limit=2)] == [
        "agent.idle",
        "agent.dead",
    ]
    assert [e.kind for e in await store.events.recent_events(agent_id="a-2")] == ["agent.dead"]
    assert [e.kind for e in await store.events.recent_events(kind_prefix="agent.")] == [
        "agent.idle",
        "agent.dead",
        "agent.spawned",
    ]
    assert await store.events.recent_events(kind_prefix="AGENT.") == []
    assert [
        e.id for e in await store.events.recent_events(agent_id="a-1", kind_prefix="hook.")
    ] == [ids[1]]


async def test_gates_are_decided_once(store: Storage) -> None:
    gate = await store.gates.add_gate(
        "permission", "a-1", "farm", "Run rm?", "rm -rf build", {"tool": "Bash"}, T0
    )
    assert gate.status is GateStatus.PENDING and gate.payload == {"tool": "Bash"}
    assert await store.gates.get_gate(gate.id) == gate
    other = await store.gates.add_gate("autopilot", None, None, "Merge?", "", {}, T0 + 1)
    assert [g.id for g in await store.gates.list_gates()] == [gate.id, other.id]

    results = await asyncio.gather(
        store.gates.decide_gate(gate.id, GateStatus.APPROVED, "alice", "ok", T0 + 2),
        store.gates.decide_gate(gate.id, GateStatus.REJECTED, "bob", "no", T0 + 2),
    )
    winners = [g for g in results if g is not None]
    assert len(winners) == 1
    decided = winners[0]
    assert decided.decided_at == T0 + 2 and decided.decided_by in ("alice", "bob")
    assert await store.gates.get_gate(gate.id) == decided
    assert await store.gates.decide_gate(gate.id, GateStatus.STALE, None, "", T0 + 3) is None
    assert await store.gates.decide_gate(999, GateStatus.APPROVED, "alice", "", T0) is None

    assert [g.id for g in await store.gates.list_gates()] == [other.id]
    assert [g.id for g in await store.gates.list_gates(decided.status)] == [gate.id]
    assert [g.id for g in await store.gates.list_gates(None)] == [gate.id, other.id]


async def test_session_gates_are_an_agents_approvals_for_the_session(store: Storage) -> None:
    gates = store.gates
    ids = [
        (await gates.add_gate("permission", agent, "farm", "Run?", "", {}, T0 + n)).id
        for n, agent in enumerate(["a-1", "a-1", "a-1", "a-2", "a-1"])
    ]
    await gates.decide_gate(ids[0], GateStatus.APPROVED, "alice", "", T0 + 9, scope="session")
    await gates.decide_gate(ids[1], GateStatus.APPROVED, "alice", "", T0 + 9)  # once only
    await gates.decide_gate(ids[2], GateStatus.REJECTED, "bob", "no", T0 + 9)
    await gates.decide_gate(ids[3], GateStatus.APPROVED, "alice", "", T0 + 9, scope="session")
    await gates.decide_gate(ids[4], GateStatus.APPROVED, "bob", "", T0 + 9, scope="session")

    found = await gates.session_gates("a-1")

    assert [(g.id, g.scope, g.decided_by) for g in found] == [
        (ids[0], "session", "alice"),
        (ids[4], "session", "bob"),
    ]
    assert await gates.session_gates("a-3") == []


async def test_audit_newest_first(store: Storage) -> None:
    await store.audit.add_audit(
        platform="telegram",
        user_id="1001",
        user_name="alice",
        chat="c1",
        command="/spawn builder 42",
        outcome="ok",
        detail="",
        now=T0,
    )
    await store.audit.add_audit(
        platform="slack", user_id="U9", user_name=None, chat="c2", command="/kill all",
        outcome="denied", detail="viewer", now=T0 + 1,
    )  # fmt: skip
    entries = await store.audit.recent_audit()
    assert [e.command for e in entries] == ["/kill all", "/spawn builder 42"]
    assert entries[0].user_name is None and entries[0].detail == "viewer"
    assert entries[1].ts == T0 and entries[1].platform == "telegram"
    assert len(await store.audit.recent_audit(limit=1)) == 1


async def test_a_question_is_answered_once_and_old_ones_are_forgotten(store: Storage) -> None:
    asked = Question("telegram", "-100", "42", "1001", "/reject 7", T0)
    await store.questions.ask(asked)
    assert await store.questions.get_question("telegram", "-100", "42") == asked
    assert await store.questions.get_question("telegram", "-100", "43") is None
    assert await store.questions.get_question("slack", "-100", "42") is None
    assert await store.questions.take_question("telegram", "-100", "42") == asked
    assert await store.questions.take_question("telegram", "-100", "42") is None  # once

    old = Question("telegram", "-100", "1", "1001", "/reject 1", T0)
    await store.questions.ask(old)
    again = dataclasses.replace(old, user_id="1002", command="/reject 2", asked_at=T0 + 1)
    await store.questions.ask(again)  # the same message asks anew
    assert await store.questions.get_question("telegram", "-100", "1") == again
    later = Question("telegram", "-100", "2", "1001", "/reject 3", T0 + 8 * 86400)
    await store.questions.ask(later)  # a week on, the first is forgotten
    assert await store.questions.get_question("telegram", "-100", "1") is None
    assert await store.questions.get_question("telegram", "-100", "2") == later


async def test_actions_are_deduplicated(store: Storage) -> None:
    first = await store.actions.put_action("/approve 17 --because a very long reason", T0)
    second = await store.actions.put_action("/reject 17", T0)
    again = await store.actions.put_action("/approve 17 --because a very long reason", T0 + 5)
    assert first == again != second
    assert await store.actions.get_action(first) == "/approve 17 --because a very long reason"
    assert await store.actions.get_action(second) == "/reject 17"
    assert await store.actions.get_action(12345) is None
