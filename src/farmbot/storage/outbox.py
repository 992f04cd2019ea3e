"""The outbox: alerts on their way to each (interface, channel), each sent exactly once.

Each channel is a queue ordered by outbox id. Its head is the oldest row still pending or
sending whose ``not_before`` has passed; only a pending head whose ``next_attempt_at`` has
passed is due. A head in backoff therefore holds its channel back (order is kept), while
a folded repeat waiting out its dedupe window does not block the alerts queued after it.

An item is delivered exactly once: the notifier claims it (``mark_sending``), sends it,
then records it (``mark_delivered``). Only a crash between send and mark_delivered leaves
it in ``sending``; ``requeue_sending`` at the next start sends it again (at least once in
that window, exactly once everywhere else). Rows are written with their alerts by
``EventStore.add_events`` (storage/events.py).

A delivered copy of a gate's alert owes an edit once its gate is decided or stale (its
buttons come off); ``mark_edited`` records that the edit was made, or can never be, so
``outdated_gate_copies`` finds, after a restart too, exactly the copies still owed one.

The queries the outbox's indexes exist for are module constants, so a test can check
their query plans.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from farmbot.models import Alert, Gate, OutboxItem, OutboxStatus
from farmbot.storage.db import Database, Row, Tx
from farmbot.storage.events import alert_of
from farmbot.storage.gates import gate_of

_ALERT_COLUMNS = (
    "id",
    "event_id",
    "kind",
    "severity",
    "agent_id",
    "project",
    "title",
    "text",
    "pre",
    "buttons",
    "dedupe_key",
    "created_at",
)
SELECT_ITEMS = (
    "SELECT o.*, "
    + ", ".join(f"a.{c} AS a_{c}" for c in _ALERT_COLUMNS)
    + " FROM outbox o JOIN alerts a ON a.id = o.alert_id"
)
# The due head of each channel (now, now, limit); the heads come from outbox_status.
DUE = (
    SELECT_ITEMS + " WHERE o.id IN (SELECT MIN(id) FROM outbox"
    " WHERE status IN ('pending', 'sending') AND (not_before IS NULL OR not_before <= ?)"
    " GROUP BY interface, channel)"
    " AND o.status = 'pending' AND o.next_attempt_at <= ? ORDER BY o.id LIMIT ?"
)
# Dead letters, newest first (limit), via outbox_status.
DEAD_LETTERS = SELECT_ITEMS + " WHERE o.status = 'dead' ORDER BY o.id DESC LIMIT ?"
# Every row of a dedupe key, oldest first (key), via outbox_copies (schema 8): the copies of
# a gate's alert, to take its buttons off once decided.
BY_KEY = SELECT_ITEMS + " WHERE o.dedupe_key = ? AND o.dedupe_key != '' ORDER BY o.id"
# Delivered, unedited copies of the alerts of gates no longer pending, with their gate,
# oldest first; via outbox_unedited (schema 11, whose condition these terms repeat word
# for word, so both databases can use it) and the gates' primary key. Only a delivered
# row has a message_ref; a gate's alert has the dedupe key "gate.opened:<gate id>"
# (alerts/rules.py, gate_key).
_OUTDATED = (
    "SELECT o.id AS copy_id, g.* FROM outbox o"
    " JOIN gates g ON g.id = CAST(substr(o.dedupe_key, 13) AS BIGINT)"
    " WHERE o.edited_at IS NULL AND o.message_ref IS NOT NULL"
    " AND substr(o.dedupe_key, 1, 12) = 'gate.opened:' AND g.status != 'pending'"
)
OUTDATED = _OUTDATED + " ORDER BY o.id"
# The same for one copy (outbox id): one just delivered.
OUTDATED_ONE = _OUTDATED + " AND o.id = ?"


@dataclass(frozen=True, slots=True)
class GateCopy:
    """A delivered copy of a gate's alert (outbox id), and the gate as it is now."""

    outbox_id: int
    gate: Gate


class OutboxStore(Protocol):
    async def due_outbox(self, now: float, limit: int = 100) -> list[OutboxItem]:
        """The head of each channel's queue, if it is due, oldest first."""

    async def get_outbox(self, outbox_id: int) -> OutboxItem | None:
        """One outbox item with its alert, or None."""

    async def mark_sending(self, outbox_id: int) -> OutboxItem | None:
        """Claim a pending item for delivery; None when it is no longer pending.

        Returns the item as claimed, with every repeat folded into it until then; a
        claimed item takes no more repeats, so this is the message to send.
        """

    async def mark_delivered(
        self, outbox_id: int, now: float, message_ref: str | None = None
    ) -> bool:
        """Record the delivery of an item being sent (counts the attempt), with the
        platform's handle of the message, when it gave one."""

    async def items_with_key(self, dedupe_key: str) -> list[OutboxItem]:
        """Every item of an alert's dedupe key, in any state, oldest first."""

    async def mark_edited(self, outbox_id: int, now: float) -> bool:
        """Record that a delivered copy was edited (or never can be); False if it was
        already, or is not delivered."""

    async def outdated_gate_copies(self) -> list[GateCopy]:
        """Delivered copies of gates' alerts that still show buttons of a gate no longer
        pending (a handle kept, not yet edited), with their gate, oldest first."""

    async def outdated_gate_copy(self, outbox_id: int) -> GateCopy | None:
        """That copy, if it is one of ``outdated_gate_copies``."""

    async def mark_retry(self, outbox_id: int, error: str, next_attempt_at: float) -> bool:
        """Count a failed attempt; the item is pending again from ``next_attempt_at``."""

    async def mark_dead(self, outbox_id: int, error: str) -> bool:
        """Give up on a pending or sending item (a dead letter); its channel moves on."""

    async def retry_dead(self, outbox_id: int, now: float) -> OutboxItem | None:
        """Put a dead letter back in its queue with fresh attempts; None if not dead."""

    async def requeue_sending(self, now: float) -> int:
        """At start: put items a crash left in ``sending`` back to pending; how many."""

    async def outbox_summary(self) -> dict[str, int]:
        """How many items are pending, sending, delivered and dead (all four keys)."""

    async def dead_letters(self, limit: int = 50) -> list[OutboxItem]:
        """Dead letters, newest first."""

    async def recent_alerts(self, limit: int = 50) -> list[Alert]:
        """Alerts, newest first."""


class SqlOutboxStore(OutboxStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def due_outbox(self, now: float, limit: int = 100) -> list[OutboxItem]:
        return [_item(r) for r in await self._db.fetchall(DUE, (now, now, limit))]

    async def get_outbox(self, outbox_id: int) -> OutboxItem | None:
        row = await self._db.fetchone(SELECT_ITEMS + " WHERE o.id = ?", (outbox_id,))
        return None if row is None else _item(row)

    async def mark_sending(self, outbox_id: int) -> OutboxItem | None:
        # Repeats fold only into pending rows, so the row returned is final.
        async with self._db.transaction() as tx:
            if not await _move(tx, outbox_id, "status = 'pending'", "status = 'sending'"):
                return None
            row = await tx.fetchone(SELECT_ITEMS + " WHERE o.id = ?", (outbox_id,))
        return None if row is None else _item(row)

    async def mark_delivered(
        self, outbox_id: int, now: float, message_ref: str | None = None
    ) -> bool:
        return await _move(
            self._db,
            outbox_id,
            "status = 'sending'",
            "status = 'delivered', attempts = attempts + 1, delivered_at = ?, message_ref = ?",
            now,
            message_ref,
        )

    async def items_with_key(self, dedupe_key: str) -> list[OutboxItem]:
        return [_item(r) for r in await self._db.fetchall(BY_KEY, (dedupe_key,))]

    async def mark_edited(self, outbox_id: int, now: float) -> bool:
        return await _move(
            self._db,
            outbox_id,
            "status = 'delivered' AND edited_at IS NULL",
            "edited_at = ?",
            now,
        )

    async def outdated_gate_copies(self) -> list[GateCopy]:
        return [_copy(r) for r in await self._db.fetchall(OUTDATED)]

    async def outdated_gate_copy(self, outbox_id: int) -> GateCopy | None:
        row = await self._db.fetchone(OUTDATED_ONE, (outbox_id,))
        return None if row is None else _copy(row)

    async def mark_retry(self, outbox_id: int, error: str, next_attempt_at: float) -> bool:
        return await _move(
            self._db,
            outbox_id,
            "status = 'sending'",
            "status = 'pending', attempts = attempts + 1, last_error = ?, next_attempt_at = ?",
            error,
            next_attempt_at,
        )

    async def mark_dead(self, outbox_id: int, error: str) -> bool:
        # An attempt counts only if one was made (the row was being sent).
        return await _move(
            self._db,
            outbox_id,
            "status IN ('pending', 'sending')",
            "attempts = attempts + CASE WHEN status = 'sending' THEN 1 ELSE 0 END,"
            " status = 'dead', last_error = ?",
            error,
        )

    async def retry_dead(self, outbox_id: int, now: float) -> OutboxItem | None:
        async with self._db.transaction() as tx:
            moved = await _move(
                tx,
                outbox_id,
                "status = 'dead'",
                "status = 'pending', attempts = 0, next_attempt_at = ?, not_before = NULL",
                now,
            )
            row = await tx.fetchone(SELECT_ITEMS + " WHERE o.id = ?", (outbox_id,))
        return _item(row) if moved and row is not None else None

    async def requeue_sending(self, now: float) -> int:
        return await self._db.execute(
            "UPDATE outbox SET status = 'pending', next_attempt_at = ? WHERE status = 'sending'",
            (now,),
        )

    async def outbox_summary(self) -> dict[str, int]:
        counts = {s.value: 0 for s in OutboxStatus}
        found = await self._db.fetchall("SELECT status, COUNT(*) AS n FROM outbox GROUP BY status")
        for row in found:
            counts[str(row["status"])] = int(row["n"])
        return counts

    async def dead_letters(self, limit: int = 50) -> list[OutboxItem]:
        return [_item(r) for r in await self._db.fetchall(DEAD_LETTERS, (limit,))]

    async def recent_alerts(self, limit: int = 50) -> list[Alert]:
        found = await self._db.fetchall("SELECT * FROM alerts ORDER BY id DESC LIMIT ?", (limit,))
        return [alert_of(r) for r in found]


async def _move(
    tx: Database | Tx, outbox_id: int, when: str, set_sql: str, *params: object
) -> bool:
    # A compare-and-set on the status, so a row is never moved from a state it left.
    changed = await tx.execute(
        f"UPDATE outbox SET {set_sql} WHERE id = ? AND {when}", (*params, outbox_id)
    )
    return changed == 1


def _item(r: Row) -> OutboxItem:
    """An outbox row joined with its alert's columns prefixed ``a_``."""
    return OutboxItem(
        id=r["id"],
        alert=alert_of(r, "a_"),
        interface=r["interface"],
        channel=r["channel"],
        status=OutboxStatus(r["status"]),
        attempts=r["attempts"],
        next_attempt_at=r["next_attempt_at"],
        not_before=r["not_before"],
        last_error=r["last_error"],
        count=r["count"],
        created_at=r["created_at"],
        last_at=r["last_at"],
        delivered_at=r["delivered_at"],
        message_ref=r["message_ref"] if "message_ref" in r.keys() else None,  # schema 7 on
        edited_at=r["edited_at"] if "edited_at" in r.keys() else None,  # schema 11 on
    )


def _copy(r: Row) -> GateCopy:
    return GateCopy(outbox_id=r["copy_id"], gate=gate_of(r))
