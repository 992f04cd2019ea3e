"""Routed commands: a command taken on one node for another, claimed, run and answered.

A row goes ``pending`` (the origin submitted it) -> ``claimed`` (the target took it,
with a lease it renews while the command runs) -> ``done`` (the reply is stored), or
``pending`` -> ``cancelled`` (the origin stopped waiting before anyone took it). A claim
whose lease ran out, or one held by an earlier life of the claiming node, may be
claimed again; ``attempts`` then says it was interrupted.

The target claims with ``FOR UPDATE SKIP LOCKED`` (PostgreSQL), so two claimers never
wait for or take the same row. ``NOTIFY`` wakes the nodes concerned in the same
transaction as the write, so no one polls in the normal case: ``farmbot_commands``
carries the target's name, ``farmbot_replies`` ``origin:id``. Leases and deadlines are
the database's clock (``db.now_sql``).

The autopilot's steps travel the same way (``kind`` 'step', the step as JSON in ``text``,
sent as the person "autopilot"). A step carrying out a recorded state has that record's
``step_key``: queueing it again finds the row already queued (a new leader takes up the
step its predecessor queued instead of queueing it twice); a step cut short and run again
on purpose gets the next ``generation``.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from farmbot.models import RoutedCommand
from farmbot.storage.db import Database, Row, Tx, encode_json, now_sql

COMMANDS_CHANNEL = "farmbot_commands"
REPLIES_CHANNEL = "farmbot_replies"
AUTOPILOT = "autopilot"  # the platform, user and name an autopilot step is sent as
_LATEST_STEP = "SELECT * FROM routed_commands WHERE step_key = ? ORDER BY generation DESC LIMIT 1"


class RoutedCommandStore(Protocol):
    async def submit_command(
        self,
        *,
        origin: str,
        target: str,
        platform: str,
        user_id: str,
        chat: str,
        display_name: str,
        text: str,
        button: bool,
        source: str | None,
        wait: float,
        now: float,
    ) -> RoutedCommand:
        """Queue a command for ``target`` (waking it) that its origin waits ``wait``
        seconds for; the row already queued for the same ``source`` when there is one,
        whatever its state."""

    async def submit_step(
        self,
        *,
        origin: str,
        target: str,
        key: str | None,
        text: str,
        wait: float,
        now: float,
        again: bool = False,
    ) -> RoutedCommand:
        """Queue an autopilot step for ``target`` (waking it). With ``key``: the latest
        step queued under it when there is one, whatever its target or state -- except
        that one withdrawn before anyone claimed it is queued again (it never ran), and
        with ``again`` one that is done is followed by its next generation."""

    async def step_for(self, key: str) -> RoutedCommand | None:
        """The latest generation of the step queued under ``key``, or None."""

    async def claim_commands(
        self, target: str, claim: str, lease: float, limit: int = 10, *, orphans: bool = False
    ) -> list[RoutedCommand]:
        """Claim ``target``'s commands that are due: pending ones, claimed ones whose lease
        ran out, and (``orphans``: once, as the node starts) those an earlier life of the
        node held (another ``claim``)."""

    async def take_over(self, command_id: int, claim: str, lease: float) -> RoutedCommand | None:
        """Claim one command whose lease ran out (its target died holding it), for
        ``claim`` (the waiting origin, which answers it); None while the lease holds."""

    async def renew_leases(self, claim: str, lease: float) -> int:
        """Extend every lease ``claim`` holds by ``lease`` seconds from now."""

    async def answer_command(
        self, command_id: int, claim: str, reply: dict[str, Any], now: float
    ) -> bool:
        """Store the reply of a command ``claim`` holds (waking its origin); False when the
        claim was lost meanwhile (another took it over, or it was answered)."""

    async def get_command(self, command_id: int) -> RoutedCommand | None:
        """One routed command, or None."""

    async def command_for(self, source: str) -> RoutedCommand | None:
        """The command routed for an inbound update, or None."""

    async def cancel_command(self, command_id: int) -> bool:
        """Withdraw a command nobody has claimed yet; False once it was claimed."""

    async def prune_commands(self, older_than: float) -> int:
        """Delete finished commands created before ``older_than``."""


class SqlRoutedCommandStore(RoutedCommandStore):
    def __init__(self, db: Database) -> None:
        self._db = db
        self._now = now_sql(db.backend)
        self._skip_locked = " FOR UPDATE SKIP LOCKED" if db.backend == "postgresql" else ""

    async def submit_command(
        self,
        *,
        origin: str,
        target: str,
        platform: str,
        user_id: str,
        chat: str,
        display_name: str,
        text: str,
        button: bool,
        source: str | None,
        wait: float,
        now: float,
    ) -> RoutedCommand:
        async with self._db.transaction() as tx:
            row = await tx.fetchone(
                "INSERT INTO routed_commands (origin, target, platform, user_id, chat,"
                " display_name, text, button, source, status, created_at, deadline)"
                f" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, {self._now} + ?)"
                " ON CONFLICT (source) DO NOTHING RETURNING *",
                (origin, target, platform, user_id, chat, display_name, text, button,
                 source, now, wait),
            )  # fmt: skip
            if row is None:  # the source's command is queued already
                row = await tx.fetchone("SELECT * FROM routed_commands WHERE source = ?", (source,))
                if row is None:
                    raise RuntimeError(f"routed command of {source!r} vanished")
            else:
                await self._notify(tx, COMMANDS_CHANNEL, target)
        return _command(row)

    async def submit_step(
        self,
        *,
        origin: str,
        target: str,
        key: str | None,
        text: str,
        wait: float,
        now: float,
        again: bool = False,
    ) -> RoutedCommand:
        async with self._db.transaction() as tx:
            generation = 0
            if key is not None:
                latest = await tx.fetchone(_LATEST_STEP, (key,))
                if latest is not None and latest["status"] == "cancelled":
                    row = await tx.fetchone(
                        "UPDATE routed_commands SET status = 'pending', origin = ?, target = ?,"
                        f" text = ?, created_at = ?, deadline = {self._now} + ?, attempts = 0,"
                        " claimed_by = NULL, claim = NULL, lease_until = NULL"
                        " WHERE id = ? AND status = 'cancelled' RETURNING *",
                        (origin, target, text, now, wait, latest["id"]),
                    )
                    if row is not None:
                        await self._notify(tx, COMMANDS_CHANNEL, target)
                        return _command(row)
                    latest = await tx.fetchone(_LATEST_STEP, (key,))
                if latest is not None and not (again and latest["status"] == "done"):
                    return _command(latest)
                generation = 1 if latest is None else int(latest["generation"]) + 1
            row = await tx.fetchone(
                "INSERT INTO routed_commands (origin, target, platform, user_id, chat,"
                " display_name, text, button, kind, step_key, generation, status, created_at,"
                f" deadline) VALUES (?, ?, ?, ?, '', ?, ?, ?, 'step', ?, ?, 'pending', ?,"
                f" {self._now} + ?) ON CONFLICT (step_key, generation) WHERE step_key IS NOT NULL"
                " DO NOTHING RETURNING *",
                (origin, target, AUTOPILOT, AUTOPILOT, AUTOPILOT, text, False, key, generation,
                 now, wait),
            )  # fmt: skip
            if row is None:  # queued under the key just now, by another
                row = await tx.fetchone(_LATEST_STEP, (key,))
                if row is None:
                    raise RuntimeError(f"routed step {key!r} vanished")
            else:
                await self._notify(tx, COMMANDS_CHANNEL, target)
        return _command(row)

    async def step_for(self, key: str) -> RoutedCommand | None:
        row = await self._db.fetchone(_LATEST_STEP, (key,))
        return None if row is None else _command(row)

    async def claim_commands(
        self, target: str, claim: str, lease: float, limit: int = 10, *, orphans: bool = False
    ) -> list[RoutedCommand]:
        now = self._now
        orphaned = " OR (claimed_by = ? AND claim != ?)" if orphans else ""
        rows = await self._db.fetchall(
            f"UPDATE routed_commands SET status = 'claimed', claimed_by = ?, claim = ?,"
            f" lease_until = {now} + ?, attempts = attempts + 1"
            " WHERE id IN (SELECT id FROM routed_commands WHERE target = ?"
            f" AND status IN ('pending', 'claimed') AND deadline > {now}"
            f" AND (status = 'pending' OR lease_until < {now}{orphaned})"
            f" ORDER BY id LIMIT ?{self._skip_locked}) RETURNING *",
            (target, claim, lease, target, *((target, claim) if orphans else ()), limit),
        )
        return sorted((_command(r) for r in rows), key=lambda c: c.id)

    async def take_over(self, command_id: int, claim: str, lease: float) -> RoutedCommand | None:
        now = self._now
        row = await self._db.fetchone(
            f"UPDATE routed_commands SET claimed_by = ?, claim = ?, lease_until = {now} + ?,"
            " attempts = attempts + 1"
            f" WHERE id = ? AND status = 'claimed' AND lease_until < {now} RETURNING *",
            (claim.split("/", 1)[0], claim, lease, command_id),
        )
        return None if row is None else _command(row)

    async def renew_leases(self, claim: str, lease: float) -> int:
        return await self._db.execute(
            f"UPDATE routed_commands SET lease_until = {self._now} + ?"
            " WHERE status = 'claimed' AND claim = ?",
            (lease, claim),
        )

    async def answer_command(
        self, command_id: int, claim: str, reply: dict[str, Any], now: float
    ) -> bool:
        async with self._db.transaction() as tx:
            row = await tx.fetchone(
                "UPDATE routed_commands SET status = 'done', reply = ?, done_at = ?"
                " WHERE id = ? AND status = 'claimed' AND claim = ? RETURNING origin",
                (encode_json(reply), now, command_id, claim),
            )
            if row is None:
                return False
            await self._notify(tx, REPLIES_CHANNEL, f"{row['origin']}:{command_id}")
        return True

    async def get_command(self, command_id: int) -> RoutedCommand | None:
        row = await self._db.fetchone("SELECT * FROM routed_commands WHERE id = ?", (command_id,))
        return None if row is None else _command(row)

    async def command_for(self, source: str) -> RoutedCommand | None:
        row = await self._db.fetchone("SELECT * FROM routed_commands WHERE source = ?", (source,))
        return None if row is None else _command(row)

    async def cancel_command(self, command_id: int) -> bool:
        changed = await self._db.execute(
            "UPDATE routed_commands SET status = 'cancelled' WHERE id = ? AND status = 'pending'",
            (command_id,),
        )
        return changed > 0

    async def prune_commands(self, older_than: float) -> int:
        return await self._db.execute(
            "DELETE FROM routed_commands WHERE created_at < ?"
            f" AND (status IN ('done', 'cancelled') OR deadline < {self._now})",
            (older_than,),
        )

    async def _notify(self, tx: Tx, channel: str, payload: str) -> None:
        # Sent when the transaction commits, so a woken node finds the row.
        if self._db.backend == "postgresql":
            await tx.fetchone("SELECT pg_notify(?, ?)", (channel, payload))


def _command(r: Row) -> RoutedCommand:
    return RoutedCommand(
        id=int(r["id"]),
        origin=str(r["origin"]),
        target=str(r["target"]),
        platform=str(r["platform"]),
        user_id=str(r["user_id"]),
        chat=str(r["chat"]),
        display_name=str(r["display_name"]),
        text=str(r["text"]),
        button=bool(r["button"]),
        source=None if r["source"] is None else str(r["source"]),
        status=str(r["status"]),
        attempts=int(r["attempts"]),
        claimed_by=None if r["claimed_by"] is None else str(r["claimed_by"]),
        reply=None if r["reply"] is None else json.loads(r["reply"]),
        created_at=float(r["created_at"]),
        deadline=float(r["deadline"]),
        kind=str(r["kind"]),
        step_key=None if r["step_key"] is None else str(r["step_key"]),
        generation=int(r["generation"]),
    )
