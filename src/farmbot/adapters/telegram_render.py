"""Telegram HTML for replies and alerts: escaped, split to fit, or attached as a file.

Pure functions, no I/O. Everything people or agents wrote is escaped; a title is bold and
a preformatted block is ``<pre>``. A message holds at most 4096 characters, counted as
Telegram counts them (UTF-16 code units); longer text is split at line boundaries (a
``<pre>`` is closed at the end of one message and reopened in the next) and text that
would take more than a few messages is sent as a ``.txt`` document instead. Nothing is
ever cut off.
"""

from __future__ import annotations

import html
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

MAX_TEXT = 4096  # Telegram's limit for a message
MAX_CAPTION = 1024  # ... and for a document's caption
MAX_CHUNKS = 4  # more than this many messages, and the text goes as a file
CAPTION_LINE = 200  # characters of the first line quoted in a document's caption

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
    if len(first) > CAPTION_LINE:
        first = first[: CAPTION_LINE - 1] + "…"
    lines = whole.count("\n") + 1
    caption = f"<b>{escape(first)}</b>\n(the whole text, {lines} lines, is in the attached file)"
    return Rendered(document=whole.encode(), filename=filename, caption=caption)


def split(parts: Sequence[Block], limit: int = MAX_TEXT) -> list[str]:
    """Join ``parts`` as HTML in messages of at most ``limit`` UTF-16 units each.

    Messages break between lines; a line too long for one message is cut between
    characters. An open tag is closed at the end of a message and reopened in the next.
    """
    chunks: list[str] = []
    current = ""
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
            if current and utf16_len(current + addition + end) > limit:
                chunks.append(current + _tags(open_tag)[1])
                current, addition = "", start + body
            current += addition
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
