"""The audit log: every command, allowed or refused, with who, where and the outcome."""

from __future__ import annotations

from typing import Protocol

from farmbot.models import AuditEntry
from farmbot.storage.db import Database


class AuditLog(Protocol):
    async def add_audit(
        self,
        *,
        platform: str,
        user_id: str,
        user_name: str | None,
        chat: str,
        command: str,
        outcome: str,
        detail: str,
        now: float,
    ) -> None:
        """Record a command, allowed or refused."""

    async def recent_audit(self, limit: int = 50) -> list[AuditEntry]:
        """The newest entries first."""


class SqlAuditLog(AuditLog):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_audit(
        self,
        *,
        platform: str,
        user_id: str,
        user_name: str | None,
        chat: str,
        command: str,
        outcome: str,
        detail: str,
        now: float,
    ) -> None:
        await self._db.execute(
            "INSERT INTO audit (ts, platform, user_id, user_name, chat, command, outcome,"
            " detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (now, platform, user_id, user_name, chat, command, outcome, detail),
        )

    async def recent_audit(self, limit: int = 50) -> list[AuditEntry]:
        found = await self._db.fetchall("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,))
        return [AuditEntry(**dict(r)) for r in found]
