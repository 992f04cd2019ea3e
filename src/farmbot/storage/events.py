"""Events, and the alerts they raise with their outbox rows, stored in one transaction.

Nothing is sent that was not stored first: an event, its alerts and one outbox row per
route are written together or not at all. Repeats fold: when a channel's newest row with
the same ``dedupe_key`` last took an alert less than ``dedupe_window`` seconds ago, a
pending row adds one to its ``count`` (and shows the newest alert); a row already sent
gets one successor that waits a window after it (``not_before``), into which further
repeats fold. A repeating alert is thus sent at most once per window per channel.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, Protocol

from farmbot.messages import Button, Buttons, Severity
from farmbot.models import Alert, AlertDraft, Destination, Event, NewEvent, OutboxStatus
from farmbot.storage.db import Database, Row, Tx, encode_json

_INSERT_EVENT = "INSERT INTO events (ts, kind, agent_id, project, data) VALUES (?, ?, ?, ?, ?)"
_INSERT_ALERT = (
    "INSERT INTO alerts (event_id, kind, severity, agent_id, project, title, text, pre,"
    " buttons, dedupe_key, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
)
# A channel's newest live row with a dedupe key (interface, channel, key), via outbox_dedupe.
EARLIER = (
    "SELECT id, status, not_before, created_at, last_at FROM outbox"
    " WHERE interface = ? AND channel = ? AND dedupe_key = ? AND dedupe_key != ''"
    " AND status != 'dead' ORDER BY id DESC LIMIT 1"
)

Stored = tuple[Event, list[Alert]]


class EventStore(Protocol):
    async def add_events(
        self,
        batch: Sequence[tuple[NewEvent, Sequence[AlertDraft]]],
        now: float,
        *,
        dedupe_window: float,
    ) -> list[Stored]:
        """Store events with their alerts and outbox rows in ONE transaction.

        ``ts`` of an event defaults to ``now``. Returns each event as stored with the
        alerts it raised, in order.
        """

    async def recent_events(
        self, limit: int = 50, agent_id: str | None = None, kind_prefix: str | None = None
    ) -> list[Event]:
        """The newest events first."""


class SqlEventStore(EventStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_events(
        self,
        batch: Sequence[tuple[NewEvent, Sequence[AlertDraft]]],
        now: float,
        *,
        dedupe_window: float,
    ) -> list[Stored]:
        if not batch:
            return []
        params = [_event_params(new, now) for new, _ in batch]
        async with self._db.transaction() as tx:
            ids = await tx.insert_many(_INSERT_EVENT, params)
            stored: list[Stored] = []
            for (new, drafts), event_id, values in zip(batch, ids, params, strict=True):
                event = Event(event_id, values[0], new.kind, new.agent_id, new.project, new.data)
                alerts = [
                    await _add_alert(tx, event_id, draft, now, dedupe_window) for draft in drafts
                ]
                stored.append((event, alerts))
        return stored

    async def recent_events(
        self, limit: int = 50, agent_id: str | None = None, kind_prefix: str | None = None
    ) -> list[Event]:
        where: list[str] = []
        params: list[Any] = []
        if agent_id is not None:
            where.append("agent_id = ?")
            params.append(agent_id)
        if kind_prefix:
            where.append("substr(kind, 1, ?) = ?")
            params += [len(kind_prefix), kind_prefix]
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        found = await self._db.fetchall(
            f"SELECT * FROM events{clause} ORDER BY id DESC LIMIT ?", (*params, limit)
        )
        return [Event(**{**dict(r), "data": json.loads(r["data"])}) for r in found]


def _event_params(e: NewEvent, now: float) -> tuple[float, str, str | None, str | None, str]:
    ts = now if e.ts is None else e.ts
    return (ts, e.kind, e.agent_id, e.project, encode_json(e.data) if e.data else "{}")


async def _add_alert(
    tx: Tx, event_id: int, draft: AlertDraft, now: float, dedupe_window: float
) -> Alert:
    alert_id = await tx.insert(
        _INSERT_ALERT,
        (
            event_id,
            draft.kind,
            str(draft.severity),
            draft.agent_id,
            draft.project,
            draft.title,
            draft.text,
            draft.pre,
            encode_buttons(draft.buttons),
            draft.dedupe_key,
            now,
        ),
    )
    for route in dict.fromkeys(draft.routes):
        await _enqueue(tx, alert_id, draft.dedupe_key, route, now, dedupe_window)
    return Alert(
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


async def _enqueue(
    tx: Tx, alert_id: int, key: str, route: Destination, now: float, window: float
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
    await tx.execute(
        "INSERT INTO outbox (alert_id, interface, channel, dedupe_key, status,"
        " next_attempt_at, not_before, created_at, last_at)"
        " VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?)",
        (alert_id, interface, channel, key, now, not_before, now, now),
    )


def encode_buttons(buttons: Buttons) -> str:
    return encode_json([[asdict(b) for b in row] for row in buttons])


def decode_buttons(text: str) -> Buttons:
    return tuple(
        tuple(Button(b["label"], b["command"], b.get("style"), b.get("asks", "")) for b in row)
        for row in json.loads(text)
    )


def alert_of(r: Row, prefix: str = "") -> Alert:
    """An alert from its columns, optionally named ``<prefix><column>`` (joins)."""
    return Alert(
        id=r[prefix + "id"],
        event_id=r[prefix + "event_id"],
        kind=r[prefix + "kind"],
        severity=Severity.parse(r[prefix + "severity"]),
        agent_id=r[prefix + "agent_id"],
        project=r[prefix + "project"],
        title=r[prefix + "title"],
        text=r[prefix + "text"],
        pre=r[prefix + "pre"],
        buttons=decode_buttons(r[prefix + "buttons"]),
        dedupe_key=r[prefix + "dedupe_key"],
        created_at=r[prefix + "created_at"],
    )
