"""Schema 3: the chat thread each key (an agent's alerts) is kept in, per channel."""

from __future__ import annotations

from farmbot.messages import Severity
from farmbot.models import AlertDraft, NewEvent
from tests.backends import Backend
from tests.helpers import store_event

T0 = 1_700_000_000.0


async def test_schema_2_database_migrates_to_3_keeping_its_outbox(backend: Backend) -> None:
    migrations = backend.migrations()
    assert [m.version for m in migrations][:3] == [1, 2, 3]
    draft = AlertDraft("agent.stuck", Severity.WARNING, "builder-1", "farm", "stuck", "no output",
                       routes=(("slack", "C1"),))  # fmt: skip
    async with backend.open(migrations=migrations[:2]) as v2:
        assert await v2.db.schema_version() == 2
        await store_event(
            v2, NewEvent("agent.stuck", "builder-1", "farm"), [draft], T0, dedupe_window=300
        )

    async with backend.open(migrations=migrations[:3]) as v3:
        assert await v3.db.schema_version() == 3
        [item] = await v3.outbox.due_outbox(T0)
        assert (item.interface, item.channel, item.alert.title) == ("slack", "C1", "stuck")
        assert await v3.threads.get_thread("slack", "C1", "builder-1") is None


async def test_threads_are_kept_per_interface_channel_and_key(backend: Backend) -> None:
    async with backend.open() as store:
        await store.threads.set_thread("slack", "C1", "builder-1", "1700000000.000100", T0)
        await store.threads.set_thread("slack", "C2", "builder-1", "1700000000.000200", T0)
        await store.threads.set_thread("discord", "C1", "builder-1", "998877", T0)
        await store.threads.set_thread("slack", "C1", "builder-2", "1700000000.000300", T0)
        await store.threads.set_thread("slack", "C1", "builder-1", "1700000000.000400", T0 + 1)

    async with backend.open() as reopened:  # a restart keeps them
        assert await reopened.threads.get_thread("slack", "C1", "builder-1") == "1700000000.000400"
        assert await reopened.threads.get_thread("slack", "C2", "builder-1") == "1700000000.000200"
        assert await reopened.threads.get_thread("discord", "C1", "builder-1") == "998877"
        assert await reopened.threads.get_thread("slack", "C1", "builder-2") == "1700000000.000300"
        assert await reopened.threads.get_thread("slack", "C1", "builder-3") is None
