"""SQL of events, alerts and the outbox, run inside a caller's ``Transaction``.

Each channel, an (interface, channel) pair, is a queue ordered by outbox id. Its head is
the oldest row still pending or sending whose ``not_before`` has passed; only a pending
head whose ``next_attempt_at`` has passed is due. A head in backoff therefore holds its
channel back (order is kept), while a folded repeat waiting out its dedupe window does
not block the alerts queued after it.

The queries the outbox's indexes exist for are module constants, so a test can check
their query plans.
"""

from __future__ import annotations

from collections.abc import Sequence

from farmbot.models import Alert, AlertDraft, Destination, Event, NewEvent, OutboxItem, OutboxStatus
from farmbot.storage import rows
from farmbot.storage.connection import Transaction, encode_json

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
# The due head of each channel (?1 now, ?2 limit); the heads come from outbox_status.
DUE = (
    SELECT_ITEMS + " WHERE o.id IN (SELECT MIN(id) FROM outbox"
    " WHERE status IN ('pending', 'sending') AND (not_before IS NULL OR not_before <= ?1)"
    " GROUP BY interface, channel)"
    " AND o.status = 'pending' AND o.next_attempt_at <= ?1 ORDER BY o.id LIMIT ?2"
)
# A channel's newest live row with a dedupe key (interface, channel, key), via outbox_dedupe.
EARLIER = (
    "SELECT id, status, not_before, created_at, last_at FROM outbox"
    " WHERE interface = ? AND channel = ? AND dedupe_key = ? AND dedupe_key != ''"
    " AND status != 'dead' ORDER BY id DESC LIMIT 1"
)
# Dead letters, newest first (limit), via outbox_status.
DEAD_LETTERS = SELECT_ITEMS + " WHERE o.status = 'dead' ORDER BY o.id DESC LIMIT ?"
_INSERT_EVENT = "INSERT INTO events (ts, kind, agent_id, project, data) VALUES (?, ?, ?, ?, ?)"


async def insert_events(tx: Transaction, events: Sequence[NewEvent], now: float) -> list[int]:
    """Insert events (``ts`` defaults to ``now``); return their ids, in order.

    The ids are consecutive only inside a write transaction (``BEGIN IMMEDIATE``), where
    no other writer can take ids in between.
    """
    params = [
        (
            now if e.ts is None else e.ts,
            e.kind,
            e.agent_id,
            e.project,
            encode_json(e.data) if e.data else "{}",
        )
        for e in events
    ]
    await tx.executemany(_INSERT_EVENT, params)
    row = await tx.fetchone("SELECT last_insert_rowid()")
    assert row is not None
    last = int(row[0])
    return list(range(last - len(params) + 1, last + 1))


async def add_event_with_alerts(
    tx: Transaction,
    new: NewEvent,
    drafts: Sequence[AlertDraft],
    now: float,
    dedupe_window: float,
) -> tuple[Event, list[Alert]]:
    """Insert the event, its alerts and their outbox rows (repeats folded)."""
    [event_id] = await insert_events(tx, [new], now)
    alerts: list[Alert] = []
    for draft in drafts:
        alert_id = await tx.insert(
            "INSERT INTO alerts (event_id, kind, severity, agent_id, project, title, text, pre,"
            " buttons, dedupe_key, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event_id,
                draft.kind,
                str(draft.severity),
                draft.agent_id,
                draft.project,
                draft.title,
                draft.text,
                draft.pre,
                rows.encode_buttons(draft.buttons),
                draft.dedupe_key,
                now,
            ),
        )
        for route in dict.fromkeys(draft.routes):
            await _enqueue(tx, alert_id, draft.dedupe_key, route, now, dedupe_window)
        alerts.append(
            Alert(
                alert_id,
                event_id,
                draft.kind,
                draft.severity,
                draft.agent_id,
                draft.project,
                draft.title,
                draft.text,
                draft.pre,
                draft.buttons,
                draft.dedupe_key,
                now,
            )
        )
    ts = now if new.ts is None else new.ts
    event = Event(event_id, ts, new.kind, new.agent_id, new.project, dict(new.data))
    return event, alerts


async def _enqueue(
    tx: Transaction, alert_id: int, key: str, route: Destination, now: float, window: float
) -> None:
    interface, channel = route
    not_before = None
    earlier = None
    if key:
        earlier = await tx.fetchone(EARLIER, (interface, channel, key))
    # A repeat is an alert whose key was last seen in this channel within the window.
    if earlier is not None and float(earlier["last_at"]) > now - window:
        if earlier["status"] == OutboxStatus.PENDING:
            # Not sent yet: the one message stands for one more alert, and shows the newest.
            await tx.execute(
                "UPDATE outbox SET count = count + 1, alert_id = ?, last_at = ? WHERE id = ?",
                (alert_id, now, earlier["id"]),
            )
            return
        # Already sent (or on its way): one summary, a window after that message's turn.
        turn = earlier["not_before"] if earlier["not_before"] is not None else earlier["created_at"]
        not_before = float(turn) + window
    await tx.insert(
        "INSERT INTO outbox (alert_id, interface, channel, dedupe_key, status,"
        " next_attempt_at, not_before, created_at, last_at)"
        " VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?)",
        (alert_id, interface, channel, key, now, not_before, now, now),
    )


async def due(tx: Transaction, now: float, limit: int) -> list[OutboxItem]:
    """The due head of each channel, oldest first."""
    found = await tx.fetchall(DUE, (now, limit))
    return [rows.outbox_item(r) for r in found]


async def get(tx: Transaction, outbox_id: int) -> OutboxItem | None:
    """One outbox row with its alert, or None."""
    row = await tx.fetchone(SELECT_ITEMS + " WHERE o.id = ?", (outbox_id,))
    return None if row is None else rows.outbox_item(row)


async def mark_sending(tx: Transaction, outbox_id: int) -> OutboxItem | None:
    """Claim a pending row for delivery; return it as claimed, None when not pending.

    Repeats fold only into pending rows, so the row returned is final: it is what to
    send, not what ``due`` read before the claim.
    """
    moved = await _move(tx, outbox_id, "status = 'pending'", "status = 'sending'")
    return await get(tx, outbox_id) if moved else None


async def mark_delivered(tx: Transaction, outbox_id: int, now: float) -> bool:
    """Record the delivery of a row being sent."""
    return await _move(
        tx,
        outbox_id,
        "status = 'sending'",
        "status = 'delivered', attempts = attempts + 1, delivered_at = ?",
        now,
    )


async def mark_retry(tx: Transaction, outbox_id: int, error: str, next_attempt_at: float) -> bool:
    """Count a failed attempt of a row being sent; it is pending again from then on."""
    return await _move(
        tx,
        outbox_id,
        "status = 'sending'",
        "status = 'pending', attempts = attempts + 1, last_error = ?, next_attempt_at = ?",
        error,
        next_attempt_at,
    )


async def mark_dead(tx: Transaction, outbox_id: int, error: str) -> bool:
    """Give up on a pending or sending row (an attempt counts only if one was made)."""
    return await _move(
        tx,
        outbox_id,
        "status IN ('pending', 'sending')",
        "attempts = attempts + (status = 'sending'), status = 'dead', last_error = ?",
        error,
    )


async def retry_dead(tx: Transaction, outbox_id: int, now: float) -> OutboxItem | None:
    """Put a dead row back in its queue with fresh attempts; None when it is not dead."""
    moved = await _move(
        tx,
        outbox_id,
        "status = 'dead'",
        "status = 'pending', attempts = 0, next_attempt_at = ?, not_before = NULL",
        now,
    )
    return await get(tx, outbox_id) if moved else None


async def _move(tx: Transaction, outbox_id: int, when: str, set_sql: str, *params: object) -> bool:
    # A compare-and-set on the status, so a row is never moved from a state it left.
    changed = await tx.execute(
        f"UPDATE outbox SET {set_sql} WHERE id = ? AND {when}", (*params, outbox_id)
    )
    return changed == 1


async def requeue_sending(tx: Transaction, now: float) -> int:
    """Put every row left in ``sending`` back to pending; return how many."""
    return await tx.execute(
        "UPDATE outbox SET status = 'pending', next_attempt_at = ? WHERE status = 'sending'",
        (now,),
    )


async def summary(tx: Transaction) -> dict[str, int]:
    """How many outbox rows are in each status (every status present)."""
    counts = {s.value: 0 for s in OutboxStatus}
    for row in await tx.fetchall("SELECT status, COUNT(*) FROM outbox GROUP BY status"):
        counts[str(row[0])] = int(row[1])
    return counts


async def dead_letters(tx: Transaction, limit: int) -> list[OutboxItem]:
    """Dead rows, newest first."""
    found = await tx.fetchall(DEAD_LETTERS, (limit,))
    return [rows.outbox_item(r) for r in found]


async def recent_alerts(tx: Transaction, limit: int) -> list[Alert]:
    """Alerts, newest first."""
    found = await tx.fetchall("SELECT * FROM alerts ORDER BY id DESC LIMIT ?", (limit,))
    return [rows.alert(r) for r in found]
