"""Questions a chat put to one person, waiting for the reply that answers them.

Telegram has no modals: a button that asks (a gate's "Reject with reason…") sends a
message the presser replies to, and the reply completes the button's command. What that
message asked, and of whom, is kept here rather than in memory, so a reply that comes
after a restart (or to another node, once it leads) still finds its question. A question
is answered once: ``take_question`` removes it as it returns it.
"""

from __future__ import annotations

from typing import Protocol

from farmbot.models import Question
from farmbot.storage.db import Database, Row

KEPT = 7 * 86400.0  # seconds an unanswered question is kept (older ones are forgotten)


class QuestionStore(Protocol):
    async def ask(self, question: Question) -> None:
        """Remember a question (replacing one asked with the same message)."""

    async def get_question(self, platform: str, chat: str, message: str) -> Question | None:
        """The question ``message`` asks, if it is still open."""

    async def take_question(self, platform: str, chat: str, message: str) -> Question | None:
        """The question ``message`` asks, removed (so only one reply answers it)."""


class SqlQuestionStore(QuestionStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def ask(self, question: Question) -> None:
        async with self._db.transaction() as tx:
            await tx.execute(
                "DELETE FROM questions WHERE asked_at < ?", (question.asked_at - KEPT,)
            )
            await tx.execute(
                "INSERT INTO questions (platform, chat, message, user_id, command, asked_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (platform, chat, message) DO UPDATE"
                " SET user_id = excluded.user_id, command = excluded.command,"
                " asked_at = excluded.asked_at",
                (
                    question.platform,
                    question.chat,
                    question.message,
                    question.user_id,
                    question.command,
                    question.asked_at,
                ),
            )

    async def get_question(self, platform: str, chat: str, message: str) -> Question | None:
        row = await self._db.fetchone(
            "SELECT * FROM questions WHERE platform = ? AND chat = ? AND message = ?",
            (platform, chat, message),
        )
        return None if row is None else _question(row)

    async def take_question(self, platform: str, chat: str, message: str) -> Question | None:
        row = await self._db.fetchone(
            "DELETE FROM questions WHERE platform = ? AND chat = ? AND message = ? RETURNING *",
            (platform, chat, message),
        )
        return None if row is None else _question(row)


class MemoryQuestionStore(QuestionStore):
    """The same in memory, for an interface built without a database (a test of one
    interface alone): its questions do not outlive it."""

    def __init__(self) -> None:
        self._questions: dict[tuple[str, str, str], Question] = {}

    async def ask(self, question: Question) -> None:
        self._questions[question.platform, question.chat, question.message] = question

    async def get_question(self, platform: str, chat: str, message: str) -> Question | None:
        return self._questions.get((platform, chat, message))

    async def take_question(self, platform: str, chat: str, message: str) -> Question | None:
        return self._questions.pop((platform, chat, message), None)


def _question(row: Row) -> Question:
    return Question(
        platform=str(row["platform"]),
        chat=str(row["chat"]),
        message=str(row["message"]),
        user_id=str(row["user_id"]),
        command=str(row["command"]),
        asked_at=float(row["asked_at"]),
    )
