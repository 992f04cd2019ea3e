"""A button's question on Telegram, which has no modals: a message the presser replies to.

A button that asks (a gate's Reject, whose question is "Why?") shows twice on Telegram:
as itself, which runs its command at once (one tap rejects), and below its row as
"Reject with reason…". That one sends a message mentioning the presser, with a
ForceReply, so their client opens the reply box; the reply completes the command
(``/reject 7`` + the reply) and goes to the router like a typed command.

What was asked, in which message, and of whom is stored (``QuestionStore``), so a reply
after a restart still answers it; only the presser's reply does: anyone else's is
refused by the router (``Incoming.asked``) and audited. A question is answered once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from telegram import Bot, ForceReply, InlineKeyboardButton, Message, ReplyParameters, User

from farmbot.adapters.shared import Action
from farmbot.adapters.telegram_render import escape, name_of, thread_of
from farmbot.models import Question
from farmbot.storage.questions import QuestionStore

log = logging.getLogger(__name__)

ASKING = " with reason…"  # what a button's asking twin adds to its label
PLACEHOLDER_CHARS = 64  # Telegram's limit for the reply box's placeholder
PLATFORM = "telegram"


def asking_label(label: str) -> str:
    """The label of a button's asking twin: "Reject with reason…"."""
    return f"{label}{ASKING}"


def kept_rows(
    rows: Sequence[Sequence[InlineKeyboardButton]], data: str
) -> list[Sequence[InlineKeyboardButton]]:
    """The keyboard without the row of the pressed button (``data``) and its asking row.

    A row whose buttons all ask (``asking_label``) belongs to the row above it: a
    decision takes both off.
    """
    at = next((i for i, row in enumerate(rows) if any(b.callback_data == data for b in row)), None)
    if at is None:
        return list(rows)
    gone = {at}
    if _asking(rows[at]) and at > 0:
        gone.add(at - 1)
    elif at + 1 < len(rows) and _asking(rows[at + 1]):
        gone.add(at + 1)
    return [row for i, row in enumerate(rows) if i not in gone]


def _asking(row: Sequence[InlineKeyboardButton]) -> bool:
    return bool(row) and all(b.text.endswith(ASKING) for b in row)


def question_text(presser: User, action: Action) -> str:
    """The question, as HTML: whom it is put to (a mention), what, and how to answer."""
    mention = f'<a href="tg://user?id={presser.id}">{escape(name_of(presser))}</a>'
    return (
        f"{mention}: {escape(action.asks)}\n"
        f"Reply to this message; your reply goes with <code>{escape(action.command)}</code>."
    )


class Questions:
    """Puts a button's question to the presser and finds the question a reply answers."""

    def __init__(self, store: QuestionStore, clock: Callable[[], float]) -> None:
        self._store = store
        self._clock = clock
        self.asked = self.answered = 0

    def __repr__(self) -> str:
        return f"<Questions asked={self.asked} answered={self.answered}>"

    async def ask(self, bot: Bot, origin: Message, presser: User, action: Action) -> None:
        """Send the question under ``origin`` (the message whose button was pressed) and
        remember it. Raises ``TelegramError`` or ``StorageError``."""
        sent = await bot.send_message(
            origin.chat_id,
            question_text(presser, action),
            parse_mode="HTML",
            message_thread_id=thread_of(origin),
            reply_parameters=ReplyParameters(origin.message_id, allow_sending_without_reply=True),
            reply_markup=ForceReply(
                selective=True, input_field_placeholder=action.asks[:PLACEHOLDER_CHARS] or None
            ),
        )
        question = Question(
            platform=PLATFORM,
            chat=str(sent.chat_id),
            message=str(sent.message_id),
            user_id=str(presser.id),
            command=action.command,
            asked_at=self._clock(),
        )
        await self._store.ask(question)
        self.asked += 1

    async def answered_by(self, message: Message) -> Question | None:
        """The open question ``message`` replies to, if any. Raises ``StorageError``."""
        replied = message.reply_to_message
        if replied is None or replied.from_user is None or not replied.from_user.is_bot:
            return None
        return await self._store.get_question(
            PLATFORM, str(message.chat_id), str(replied.message_id)
        )

    async def close(self, question: Question) -> None:
        """The question is answered: no further reply answers it. Raises ``StorageError``."""
        if await self._store.take_question(PLATFORM, question.chat, question.message):
            self.answered += 1
