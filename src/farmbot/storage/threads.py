"""Chat threads: which thread of a channel a key's messages go to.

An interface that keeps related messages together (Slack's ``thread_per_agent``) records
the first message of each thread here, so the thread survives a restart.
"""

from __future__ import annotations

from typing import Protocol

from farmbot.storage.db import Database


class ThreadStore(Protocol):
    async def get_thread(self, interface: str, channel: str, key: str) -> str | None:
        """The thread an interface keeps ``key``'s messages in (e.g. an agent's alerts)."""

    async def set_thread(
        self, interface: str, channel: str, key: str, thread_ref: str, now: float
    ) -> None:
        """Remember the thread for ``key`` in a channel, replacing an earlier one."""


class SqlThreadStore(ThreadStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get_thread(self, interface: str, channel: str, key: str) -> str | None:
        row = await self._db.fetchone(
            "SELECT thread_ref FROM chat_threads WHERE interface = ? AND channel = ? AND key = ?",
            (interface, channel, key),
        )
        return None if row is None else str(row["thread_ref"])

    async def set_thread(
        self, interface: str, channel: str, key: str, thread_ref: str, now: float
    ) -> None:
        await self._db.execute(
            "INSERT INTO chat_threads (interface, channel, key, thread_ref, updated_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (interface, channel, key) DO UPDATE SET"
            " thread_ref = excluded.thread_ref, updated_at = excluded.updated_at",
            (interface, channel, key, thread_ref, now),
        )
