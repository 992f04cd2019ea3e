"""How a decided or stale gate's alert changes, and which delivered copies still owe it.

``gate_edit`` makes the edit from the event that decided the gate (the bus listener
queues it at once); ``decided_edit`` makes the same edit, the same note, from the gate's
record. ``GateEdits`` gives the notifier the edits the outbox says are still owed
(``storage/outbox.py``, ``outdated_gate_copies``): the copies a stop or a crash left
with their buttons, found at start, and a copy delivered only after its gate was
decided, found right after it is delivered.
"""

from __future__ import annotations

import time

from farmbot.alerts.notifier import AlertEdit
from farmbot.alerts.rules import GATE_KEY, gate_key
from farmbot.events import DomainEvent, GateDecided, GateStale
from farmbot.models import Gate, GateStatus, OutboxItem
from farmbot.storage.outbox import OutboxStore

__all__ = ["GateEdits", "decided_edit", "gate_edit"]


def gate_edit(event: DomainEvent, at: float) -> AlertEdit | None:
    """How a gate's alert changes once the gate is decided or stale; None for other events."""
    if isinstance(event, GateStale):
        return _edit(event.gate_id, GateStatus.STALE, "", at, event.reason, "")
    if isinstance(event, GateDecided):
        status = GateStatus.APPROVED if event.approved else GateStatus.REJECTED
        return _edit(event.gate_id, status, event.by, at, event.reason, event.scope)
    return None


def decided_edit(gate: Gate) -> AlertEdit | None:
    """How a gate's alert changes, from the gate's record; None while it is pending."""
    if gate.status is GateStatus.PENDING:
        return None
    at = gate.decided_at if gate.decided_at is not None else gate.created_at
    return _edit(gate.id, gate.status, gate.decided_by or "someone", at, gate.reason, gate.scope)


def decided_note(gate: Gate) -> str | None:
    """What a decided gate's alerts say of it ("✅ approved by alice at 12:40 UTC")."""
    edit = decided_edit(gate)
    return None if edit is None else edit.note


def alert_gate(dedupe_key: str) -> int | None:
    """The gate an alert asks about (its ``gate_key``), or None."""
    rest = dedupe_key.removeprefix(GATE_KEY)
    return int(rest) if rest != dedupe_key and rest.isdecimal() else None


def _edit(gate: int, status: GateStatus, by: str, at: float, reason: str, scope: str) -> AlertEdit:
    drop = (f"/approve {gate}", f"/reject {gate}")
    if status is GateStatus.STALE:
        return AlertEdit(gate_key(gate), drop, f"gate is stale: {reason}")
    when = time.strftime("%H:%M UTC", time.gmtime(at))
    if status is GateStatus.APPROVED:
        how = " for the session" if scope == "session" else ""
        note = f"✅ approved{how} by {by} at {when}"
    else:
        because = f" ({reason})" if reason else ""
        note = f"❌ rejected by {by} at {when}{because}"
    return AlertEdit(gate_key(gate), drop, note)


class GateEdits:
    """The edits gates' alerts still owe, read from the outbox (the notifier's ``EditsOwed``)."""

    def __init__(self, outbox: OutboxStore) -> None:
        self._outbox = outbox

    def __repr__(self) -> str:
        return "<GateEdits>"

    async def owed(self) -> list[AlertEdit]:
        """One edit per gate whose alert still shows its buttons somewhere, oldest first."""
        edits: dict[str, AlertEdit] = {}
        for copy in await self._outbox.outdated_gate_copies():
            edit = decided_edit(copy.gate)
            if edit is not None:
                edits.setdefault(edit.dedupe_key, edit)
        return list(edits.values())

    async def owed_by(self, item: OutboxItem) -> AlertEdit | None:
        """The edit a copy just delivered owes already: its gate was decided meanwhile."""
        if not item.alert.dedupe_key.startswith(GATE_KEY):
            return None  # not a gate's alert: no query
        copy = await self._outbox.outdated_gate_copy(item.id)
        return None if copy is None else decided_edit(copy.gate)
