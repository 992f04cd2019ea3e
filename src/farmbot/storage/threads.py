"""SQL of chat threads: which thread of a channel a key's messages go to.

An interface that keeps related messages together (Slack's ``thread_per_agent``) records
the first message of each thread here, so the thread survives a restart.
"""

from __future__ import annotations

from farmbot.storage.connection import Transaction


async def get(tx: Transaction, interface: str, channel: str, key: str) -> str | None:
    """The thread kept for ``key`` in a channel, or None."""
    row = await tx.fetchone(
        "SELECT thread_ref FROM chat_threads WHERE interface = ? AND channel = ? AND key = ?",
        (interface, channel, key),
    )
    return None if row is None else str(row[0])


async def put(
    tx: Transaction, interface: str, channel: str, key: str, thread_ref: str, now: float
) -> None:
    """Record the thread for ``key`` in a channel, replacing an earlier one."""
    await tx.execute(
        "INSERT INTO chat_threads (interface, channel, key, thread_ref, updated_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (interface, channel, key) DO UPDATE SET"
        " thread_ref = excluded.thread_ref, updated_at = excluded.updated_at",
        (interface, channel, key, thread_ref, now),
    )
