"""Prompts: the durable queue of text to type into each agent."""

from __future__ import annotations

from typing import Protocol

from farmbot.models import Prompt, PromptStatus
from farmbot.storage.db import Database, Row


class PromptStore(Protocol):
    async def add_prompt(
        self,
        agent_id: str,
        text: str,
        source: str,
        now: float,
        *,
        wait_ready: bool,
        not_before: float | None = None,
    ) -> Prompt:
        """Queue a prompt; ``not_before`` keeps it back until then (the supervisor decides).

        ``wait_ready``: deliver only once the agent shows it is ready for input.
        """

    async def pending_prompts(self, agent_id: str | None = None) -> list[Prompt]:
        """Pending prompts (of one agent, or all), oldest first, ``not_before`` or not."""

    async def get_prompt(self, prompt_id: int) -> Prompt | None:
        """The prompt with that id, or None."""

    async def mark_prompt(
        self, prompt_id: int, status: PromptStatus, now: float, error: str = ""
    ) -> None:
        """Move a prompt out of pending; sets delivered_at when status is DELIVERED.

        A prompt that is no longer pending (e.g. cancelled meanwhile) is left as it is.
        """

    async def cancel_prompts(self, agent_id: str) -> int:
        """Cancel an agent's pending prompts; returns how many."""

    async def mark_typing(self, prompt_id: int, now: float) -> None:
        """Record that typing a pending prompt begins (before the first key)."""


class SqlPromptStore(PromptStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_prompt(
        self,
        agent_id: str,
        text: str,
        source: str,
        now: float,
        *,
        wait_ready: bool,
        not_before: float | None = None,
    ) -> Prompt:
        row = await self._db.fetchone(
            "INSERT INTO prompts (agent_id, text, source, status, wait_ready, created_at,"
            " not_before) VALUES (?, ?, ?, 'pending', ?, ?, ?) RETURNING *",
            (agent_id, text, source, wait_ready, now, not_before),
        )
        assert row is not None
        return _prompt(row)

    async def pending_prompts(self, agent_id: str | None = None) -> list[Prompt]:
        if agent_id is None:
            found = await self._db.fetchall(
                "SELECT * FROM prompts WHERE status = 'pending' ORDER BY id"
            )
        else:
            found = await self._db.fetchall(
                "SELECT * FROM prompts WHERE status = 'pending' AND agent_id = ? ORDER BY id",
                (agent_id,),
            )
        return [_prompt(r) for r in found]

    async def get_prompt(self, prompt_id: int) -> Prompt | None:
        row = await self._db.fetchone("SELECT * FROM prompts WHERE id = ?", (prompt_id,))
        return None if row is None else _prompt(row)

    async def mark_prompt(
        self, prompt_id: int, status: PromptStatus, now: float, error: str = ""
    ) -> None:
        if status is PromptStatus.PENDING:
            raise ValueError("mark_prompt moves a prompt out of pending")
        delivered_at = now if status is PromptStatus.DELIVERED else None
        await self._db.execute(
            "UPDATE prompts SET status = ?, delivered_at = ?, error = ?"
            " WHERE id = ? AND status = 'pending'",
            (status.value, delivered_at, error, prompt_id),
        )

    async def mark_typing(self, prompt_id: int, now: float) -> None:
        await self._db.execute(
            "UPDATE prompts SET typing_at = ? WHERE id = ? AND status = 'pending'",
            (now, prompt_id),
        )

    async def cancel_prompts(self, agent_id: str) -> int:
        return await self._db.execute(
            "UPDATE prompts SET status = 'cancelled' WHERE agent_id = ? AND status = 'pending'",
            (agent_id,),
        )


def _prompt(r: Row) -> Prompt:
    return Prompt(
        **{**dict(r), "status": PromptStatus(r["status"]), "wait_ready": bool(r["wait_ready"])}
    )
