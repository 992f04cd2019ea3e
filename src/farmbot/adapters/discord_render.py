"""The pure half of the Discord interface: markdown for replies and alerts, command text
from slash-command options, button layout, threads, and what Discord's errors mean.

No I/O here. Modals are read here too: what a submitted one holds (``modal_values``),
a question's ``custom_id`` (``question_id``, ``asked_of``) and the task form's answers
as ``/task add`` arguments (``task_data``). Everything people or agents wrote is
escaped, so agent output can neither ping anyone (``@everyone``, ``<@id>``,
``<@&role>``) nor change the formatting; output goes into code blocks whose fences it
cannot close. A message holds at most 2,000 characters
(counted here in UTF-16 units, never fewer than Discord counts); longer text is split at
line boundaries (a code block is closed at the end of one message and reopened in the
next) and text that would take more than a few messages becomes an attached ``.txt``
file instead. Nothing is ever cut off.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import discord

from farmbot.config.discord import Threads
from farmbot.errors import DeliveryError, PermanentDeliveryError
from farmbot.messages import Button, Buttons, OutboundMessage, clip, decided_line

MAX_CONTENT = 2000  # Discord's limit for a message's content
MAX_CHUNKS = 4  # more than this many messages, and the text goes as a file
CAPTION_LINE = 200  # characters of the first line quoted above an attached file
CUSTOM_ID_CHARS = 100  # Discord's limit for a button's custom_id
LABEL_CHARS = 80  # ... and for its label
MAX_ROWS, ROW_BUTTONS = 5, 5  # action rows in a message, buttons in a row
TITLE_CHARS = 45  # a modal's title, and a label in it
DESCRIPTION_CHARS = 100  # a label's description
ANSWER_CHARS = 4000  # what a modal's text input takes at most
TASK_FORM = "farmbot:task"  # the custom_id of /task's form
_QUESTION = re.compile(r"farmbot:q:(?P<user>\d+):(?P<data>a:\d+)")  # a button's question
THREAD_NAME_CHARS = 100
FENCE = "```"
NETWORK_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)

Block = tuple[str | None, str]  # ("b" bold / "pre" code block / None plain, raw text)

_INLINE = re.compile(r"[\\*_~`|\[\]<@]")  # special anywhere
_LINE_START = re.compile(r"^(\s*)([>#+-])", re.MULTILINE)  # quotes, headers, lists
_NUMBERED = re.compile(r"^(\s*\d+)\.(?=\s)", re.MULTILINE)  # "1. " lists


@dataclass(frozen=True, slots=True)
class Rendered:
    """What to send: markdown messages, or one attached file under a short caption."""

    chunks: tuple[str, ...] = ()
    file: bytes | None = None
    filename: str = "reply.txt"
    caption: str = ""


def units(text: str) -> int:
    """Length in UTF-16 code units: at least what Discord counts."""
    return len(text.encode("utf-16-le")) // 2


def escape(text: str) -> str:
    """Escape Discord markdown and mentions: the text shows as written and pings nobody."""
    text = _INLINE.sub(lambda m: "\\" + m[0], text)
    text = _LINE_START.sub(r"\1\\\2", text)
    return _NUMBERED.sub(r"\1\\.", text)


def defuse(pre: str) -> str:
    """Output for a code block: a ``` inside it would end the block early."""
    return pre.replace(FENCE, "`\u200b`\u200b`")


def blocks(text: str, pre: str | None = None, title: str | None = None) -> list[Block]:
    """The parts of a message, in order: bold title, text, code block."""
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
    """Messages for a reply or an alert, or a file when it needs over ``max_chunks``."""
    parts = blocks(text, pre, title)
    chunks = split(parts)
    if len(chunks) <= max_chunks:
        return Rendered(chunks=tuple(chunks))
    whole = plain(parts)
    first = next((line.strip() for line in whole.splitlines() if line.strip()), "")
    lines = whole.count("\n") + 1
    caption = (
        f"**{escape(clip(first, CAPTION_LINE))}**\n"
        f"(the whole text, {lines} lines, is in the attached file)"
    )
    return Rendered(file=whole.encode(), filename=filename, caption=caption)


def split(parts: Sequence[Block], limit: int = MAX_CONTENT) -> list[str]:
    """Join ``parts`` as markdown in messages of at most ``limit`` UTF-16 units each.

    Messages break between lines; a line too long for one message is cut between
    characters. A code block is closed at the end of a message and reopened in the next.
    """
    chunks: list[str] = []
    lines: list[str] = []
    size = 0
    in_code = False

    def flush() -> None:
        nonlocal lines, size, in_code
        if in_code:
            lines.append(FENCE)
        chunk = "\n".join(lines)
        if chunk.replace(FENCE, "").strip():
            chunks.append(chunk)
        lines, size, in_code = [], 0, False

    room = limit - 2 * (len(FENCE) + 1) - 4  # a line with its fences or ** markers
    for tag, text in parts:
        for piece in _pieces(tag, text, room):
            line = _line(tag, piece)
            closing = len(FENCE) + 1 if tag == "pre" else 0
            add = [FENCE, line] if (tag == "pre") != in_code else [line]
            cost = sum(units(x) + 1 for x in add)
            if lines and size + cost + closing > limit:
                flush()
                add = [FENCE, line] if tag == "pre" else [line]
                cost = sum(units(x) + 1 for x in add)
            lines.extend(add)
            size += cost
            in_code = tag == "pre"
    flush()
    return chunks


def _line(tag: str | None, piece: str) -> str:
    if tag == "pre":
        return defuse(piece)
    if tag == "b":
        return f"**{escape(piece)}**" if piece.strip() else ""
    return escape(piece)


def _pieces(tag: str | None, text: str, room: int) -> Iterator[str]:
    """The lines of ``text``, each cut so that its rendered form takes at most ``room``."""
    for line in text.split("\n"):
        if units(_line(tag, line)) <= room:
            yield line
            continue
        piece, size = "", 0
        for char in line:
            cost = units(_line(tag, char) if tag == "pre" else escape(char))
            if size + cost > room:
                yield piece
                piece, size = "", 0
            piece += char
            size += cost
        yield piece


def plain(parts: Sequence[Block]) -> str:
    """The text of ``parts`` without markup (an attached file's content)."""
    return "\n".join(text for _, text in parts)


# -- commands, buttons, decisions ---------------------------------------------------------


def farm_text(text: str) -> str:
    """``/farm text:spawn builder 42`` -> ``/spawn builder 42``; nothing -> ``/help``."""
    words = text.strip().lstrip("/")
    return "/" + words if words else "/help"


def slash_text(name: str, *options: object) -> str:
    """A slash command with typed options as farmbot command text: ``/spawn builder 42``."""
    given = [str(o).strip() for o in options if o is not None and str(o).strip()]
    return " ".join([f"/{name}", *given])


def fits_custom_id(command: str) -> bool:
    """Whether a command can be a button's custom_id as it is (else it is stored)."""
    return command.startswith("/") and "\n" not in command and len(command) <= CUSTOM_ID_CHARS


def question_id(user: int, data: str) -> str:
    """The custom_id of the modal that asks ``user`` the question of the button ``data``."""
    return f"farmbot:q:{user}:{data}"


def asked_of(custom_id: str) -> tuple[str, str] | None:
    """(whom it asks, the pressed button's custom_id) of a question's modal; else None."""
    found = _QUESTION.fullmatch(custom_id)
    return (found["user"], found["data"]) if found else None


def is_farm_modal(custom_id: str) -> bool:
    """Whether a submitted modal is one farmbot opened (a question, or /task's form)."""
    return custom_id == TASK_FORM or asked_of(custom_id) is not None


def modal_values(components: Sequence[Any]) -> dict[str, str]:
    """What a submitted modal's text inputs hold, by their custom_id ("" when empty).

    Inputs arrive inside labels (type 18, ``component``) or, the older way, inside
    action rows (type 1, ``components``).
    """
    found: dict[str, str] = {}
    for component in components:
        if not isinstance(component, Mapping):
            continue
        inner = component.get("components") or [component.get("component")]
        if component.get("type") == 4:
            inner = [component]
        for item in inner:
            if isinstance(item, Mapping) and item.get("type") == 4 and item.get("custom_id"):
                found[str(item["custom_id"])] = str(item.get("value") or "")
    return found


def task_data(values: Mapping[str, str]) -> dict[str, Any]:
    """/task's form as the JSON arguments of ``/task add`` (the API's ``POST /api/tasks``).

    The body stays as typed, lines and all; ``after`` is task ids ("1, #2") or refs.
    """
    data: dict[str, Any] = {
        "project": values.get("project", "").strip(),
        "title": " ".join(values.get("title", "").split()),
        "body": values.get("body", ""),
    }
    priority = values.get("priority", "").strip()
    if priority:
        data["priority"] = priority
    after = [a.strip().lstrip("#") for a in re.split(r"[,\s]+", values.get("after", ""))]
    if any(after):
        data["after"] = [int(a) if a.isdecimal() else a for a in after if a]
    return data


def layout(buttons: Buttons) -> list[tuple[Button, ...]]:
    """Rows as Discord allows them: at most 5 rows of 5 buttons (longer rows wrap)."""
    rows = [row[i : i + ROW_BUTTONS] for row in buttons for i in range(0, len(row), ROW_BUTTONS)]
    return [row for row in rows if row][:MAX_ROWS]


def label(button: Button) -> str:
    return clip(button.label or button.command, LABEL_CHARS)


def decided(content: str, approved: bool, text: str) -> str | None:
    """The message's content with the decision appended, or None when it would not fit."""
    edited = f"{content}\n\n{escape(decided_line(approved, text))}".lstrip("\n")
    return edited if units(edited) <= MAX_CONTENT else None


def thread_of(mode: Threads, message: OutboundMessage) -> tuple[str, str] | None:
    """The (store key, thread name) an alert's thread has; None when it goes to the channel."""
    subject = {"project": message.project, "agent": message.agent_id}.get(mode)
    if not subject:
        return None
    return f"{mode}:{subject}", clip(f"farmbot · {subject}", THREAD_NAME_CHARS)


# -- what Discord's errors mean -------------------------------------------------------------


def delivery_error(where: str, exc: BaseException, text: str) -> DeliveryError:
    """Translate a failed send: retry on 429, 5xx and network trouble, else give up.

    ``text`` is the error's message with secrets already removed.
    """
    if isinstance(exc, discord.RateLimited):
        wait = exc.retry_after
        return DeliveryError(f"{where}: rate limited for {wait:g}s", retry_after=wait)
    if isinstance(exc, NETWORK_ERRORS):
        return DeliveryError(f"{where}: cannot reach Discord ({text})")
    if not isinstance(exc, discord.HTTPException):
        return DeliveryError(f"{where}: {text}")
    if exc.status == 429 or exc.status >= 500:
        return DeliveryError(f"{where}: HTTP {exc.status} from Discord")
    if exc.status == 401:
        return PermanentDeliveryError(f"{where}: Discord refused the bot token; fix discord.token")
    hint = HINTS.get(exc.code, "Discord refused what farmbot sent; please report this")
    return PermanentDeliveryError(f"{where}: {text}; {hint}")


HINTS = {
    10003: "no channel has this id: check discord.alert_channels (Developer Mode on, then "
    "right-click the channel → Copy Channel ID)",
    50001: "the bot cannot see the channel: invite it to the server (docs/discord.md) and "
    "give it View Channel there, or fix discord.alert_channels",
    50013: "the bot lacks a permission in the channel: give it Send Messages, Send Messages "
    "in Threads, Create Public Threads and Attach Files (docs/discord.md)",
    50083: "the thread is archived and locked: unlock it, or farmbot starts a new one",
}
