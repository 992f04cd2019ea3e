"""The pure half of the Telegram interface: HTML for replies and alerts, reading commands
and people out of updates, and what Telegram's errors mean.

No I/O here. Everything people or agents wrote is escaped; a title is bold and
a preformatted block is ``<pre>``. A message holds at most 4096 characters, counted as
Telegram counts them (UTF-16 code units); longer text is split at line boundaries (a
``<pre>`` is closed at the end of one message and reopened in the next) and text that
would take more than a few messages is sent as a ``.txt`` document instead. Nothing is
ever cut off.
"""

from __future__ import annotations

import datetime as dtm
import html
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from telegram import Message, User
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.warnings import PTBDeprecationWarning

from farmbot.errors import DeliveryError, PermanentDeliveryError
from farmbot.messages import clip, decided_line

MAX_TEXT = 4096  # Telegram's limit for a message
MAX_CHUNKS = 4  # more than this many messages, and the text goes as a file
CAPTION_LINE = 200  # characters of the first line quoted in a document's caption
TOAST_CHARS = 200  # answerCallbackQuery's limit

Block = tuple[str | None, str]  # (tag wrapping it, e.g. "pre", or None; raw text)


@dataclass(frozen=True, slots=True)
class Rendered:
    """What to send: HTML messages, or one document with an HTML caption."""

    chunks: tuple[str, ...] = ()
    document: bytes | None = None
    filename: str = "reply.txt"
    caption: str = ""


def utf16_len(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def escape(text: str) -> str:
    """Escape text for Telegram HTML (``<``, ``>``, ``&``)."""
    return html.escape(text, quote=False)


def blocks(text: str, pre: str | None = None, title: str | None = None) -> list[Block]:
    """The parts of a message, in order: bold title, text, preformatted block."""
    parts: list[Block] = []
    if title:
        parts.append(("b", title))
    if text or not (title or pre):
        parts.append((None, text or "(no text)"))
    if pre:
        parts.append(("pre", pre))
    return parts


def render(
    text: str,
    pre: str | None = None,
    *,
    title: str | None = None,
    max_chunks: int = MAX_CHUNKS,
    filename: str = "reply.txt",
) -> Rendered:
    """Messages for a reply or an alert, or a document when it needs over ``max_chunks``."""
    parts = blocks(text, pre, title)
    chunks = split(parts)
    if len(chunks) <= max_chunks:
        return Rendered(chunks=tuple(chunks))
    whole = plain(parts)
    first = next((line.strip() for line in whole.splitlines() if line.strip()), "")
    first = clip(first, CAPTION_LINE)
    lines = whole.count("\n") + 1
    caption = f"<b>{escape(first)}</b>\n(the whole text, {lines} lines, is in the attached file)"
    return Rendered(document=whole.encode(), filename=filename, caption=caption)


def split(parts: Sequence[Block], limit: int = MAX_TEXT) -> list[str]:
    """Join ``parts`` as HTML in messages of at most ``limit`` UTF-16 units each.

    Messages break between lines; a line too long for one message is cut between
    characters. An open tag is closed at the end of a message and reopened in the next.
    """
    chunks: list[str] = []
    current, size = "", 0
    open_tag: str | None = None
    for tag, text in parts:
        start, end = _tags(tag)
        room = limit - utf16_len(start + end) - 1  # the -1 leaves room for a newline
        for piece in _pieces(text, room):
            body = escape(piece)
            if not current:
                addition = start + body
            elif open_tag == tag:
                addition = "\n" + body
            else:
                addition = _tags(open_tag)[1] + "\n" + start + body
            if current and size + utf16_len(addition + end) > limit:
                chunks.append(current + _tags(open_tag)[1])
                current, size, addition = "", 0, start + body
            current += addition
            size += utf16_len(addition)
            open_tag = tag
    if current:
        chunks.append(current + _tags(open_tag)[1])
    return [chunk for chunk in chunks if _visible(chunk)]


def _tags(tag: str | None) -> tuple[str, str]:
    return (f"<{tag}>", f"</{tag}>") if tag else ("", "")


def _pieces(text: str, room: int) -> Iterator[str]:
    """The lines of ``text``, each cut so that its escaped form takes at most ``room``."""
    for line in text.split("\n"):
        if utf16_len(escape(line)) <= room:
            yield line
            continue
        piece, size = "", 0
        for char in line:
            cost = utf16_len(escape(char))
            if size + cost > room:
                yield piece
                piece, size = "", 0
            piece += char
            size += cost
        yield piece


def _visible(chunk: str) -> bool:
    """Whether Telegram would see any text in it (it refuses an empty message)."""
    for tag in ("<b>", "</b>", "<pre>", "</pre>"):
        chunk = chunk.replace(tag, "")
    return bool(chunk.strip())


def plain(parts: Sequence[Block]) -> str:
    """The text of ``parts`` without markup."""
    return "\n".join(text for _, text in parts)


# -- reading updates ----------------------------------------------------------------------


def command_text(text: str, username: str) -> str | None:
    """The command without ``@botname``; None when it is addressed to another bot."""
    match = re.match(r"(\S*)(.*)", text, re.DOTALL)
    assert match is not None  # both groups may be empty
    word, rest = match.groups()
    command, at, bot = word.partition("@")
    if at and bot.lower() != username.lower():
        return None
    return ("/help" if command.lower() == "/start" else command) + rest  # a first contact


def thread_of(message: Message) -> int | None:
    """The forum topic a message is in, if any."""
    return message.message_thread_id if message.is_topic_message else None


def name_of(user: User) -> str:
    return f"{user.full_name} (@{user.username})" if user.username else user.full_name


def chat_id(channel: str) -> int | str:
    """A route's channel as a chat id: a number, or an ``@channelname``."""
    return int(channel) if channel.lstrip("-").isdecimal() else channel


# -- what a press decided, and what Telegram's errors mean ------------------------------


def decided(original_html: str | None, approved: bool, text: str) -> str | None:
    """The message's HTML with the decision appended, or None when it would not fit."""
    if original_html is None:
        return None
    edited = f"{original_html}\n\n{escape(decided_line(approved, text))}"
    return edited if utf16_len(edited) <= MAX_TEXT else None


def toast(text: str) -> str:
    """Text for a button press's answer (at most 200 characters)."""
    return clip(text, TOAST_CHARS)


def retry_after(exc: RetryAfter) -> float:
    """Seconds Telegram asked to wait, whether PTB gives an int or a timedelta."""
    with warnings.catch_warnings():  # the int form is deprecated (PTB_TIMEDELTA)
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value: int | dtm.timedelta = exc.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


def delivery_error(where: str, thread: int | None, exc: TelegramError, text: str) -> DeliveryError:
    """Translate a failed send: retry on 429, 5xx and network trouble, else give up.

    ``text`` is the error's message with secrets already removed.
    """
    if isinstance(exc, RetryAfter):
        wait = retry_after(exc)
        return DeliveryError(f"{where}: rate limited for {wait:g}s", retry_after=wait)
    if isinstance(exc, InvalidToken):
        return PermanentDeliveryError(f"{where}: the bot token was refused; fix telegram.token")
    if isinstance(exc, ChatMigrated):
        new = exc.new_chat_id
        return PermanentDeliveryError(f"{where}: the group is now supergroup {new}; use that id")
    if isinstance(exc, Forbidden):
        hint = "add the bot to the chat again, or remove the chat from telegram.alert_chats"
        return PermanentDeliveryError(f"{where}: {text}; {hint}")
    if isinstance(exc, BadRequest):
        lower = text.lower()
        if "chat not found" in lower:
            hint = "check telegram.alert_chats; the bot must be a member of the chat"
        elif "thread" in lower or "topic" in lower:
            hint = f"check telegram.topics (message_thread_id {thread})"
        else:
            hint = "Telegram refused what farmbot sent; please report this"
        return PermanentDeliveryError(f"{where}: {text}; {hint}")
    if isinstance(exc, TimedOut):
        return DeliveryError(f"{where}: timed out")
    return DeliveryError(f"{where}: {text}")  # NetworkError: 5xx, connection refused, ...
