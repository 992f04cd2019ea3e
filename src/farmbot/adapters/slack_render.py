"""Replies and alerts as Slack Block Kit: pure functions, no I/O.

Text is escaped for mrkdwn (``&``, ``<``, ``>``), output goes into ``` blocks, buttons
into actions blocks, and every message carries a plain ``text`` fallback. A button that
asks (Reject's "Why?") opens a modal (``question_view``) whose submission carries the
answer (``answer_of``) and, in its ``private_metadata``, where the button was pressed.
Slack's limits are kept by splitting, never by cutting: a section holds at most 3000
characters, a message at most 50 blocks; what does not fit in the first message
continues in its thread, and very long output is uploaded whole as a file snippet.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from farmbot.messages import Button, Buttons, OutboundMessage, Reply, clip, severity_mark

Block = dict[str, Any]

SECTION_CHARS = 3000  # Slack: a section's text
MAX_BLOCKS = 50  # Slack: blocks in one message
ROW_BUTTONS = 25  # Slack: elements in one actions block
LABEL_CHARS = 75  # Slack: a button's text
BUTTON_VALUE_CHARS = 2000  # Slack: a button's value; longer commands are stored
MESSAGE_CHARS = 12_000  # content per message; the rest continues in the thread
FILE_CHARS = 36_000  # output longer than this (escaped) is uploaded as a file snippet
FALLBACK_CHARS = 1000  # of the notification text (the blocks carry everything)
ACTION_PREFIX = "farmbot_"  # action_id of every farmbot button: farmbot_0, farmbot_1, ...
ROW_PREFIX = "farmbot_row_"
QUESTION = "farmbot_question"  # callback_id of the modal a button's question opens
ANSWER = "answer"  # block_id and action_id of the modal's one input
VIEW_TITLE_CHARS = 24  # Slack: a modal's title, submit and close labels
INPUT_LABEL_CHARS = 2000  # Slack: an input block's label
ANSWER_CHARS = 3000  # what the modal's input takes at most
_FENCE = "```"
_LINK = re.compile(r"<((?:https?|mailto):[^|>]+)(?:\|[^>]*)?>")


@dataclass(frozen=True, slots=True)
class Part:
    """One Slack message: its fallback ``text`` and its ``blocks``."""

    text: str
    blocks: list[Block]


@dataclass(frozen=True, slots=True)
class Rendered:
    """What to post: the message, its thread replies, and a file for very long output."""

    parts: tuple[Part, ...]  # parts[0] is the message; the rest are replies in its thread
    file: str | None = None  # the whole output, uploaded as a snippet into the thread


def escape(text: str) -> str:
    """Escape text for Slack mrkdwn: ``&``, ``<`` and ``>`` become entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def from_slack(text: str) -> str:
    """Text as a person typed it: links unwrapped, Slack's entities decoded."""
    text = _LINK.sub(r"\1", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def command_text(text: str, bot_user_id: str | None = None) -> str:
    """A command from slash-command text or a mention: ``<@BOT>`` dropped, ``/`` added."""
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(\|[^>]*)?>", " ", text)
    words = from_slack(text).strip().lstrip("/")
    return "/" + words if words else "/help"


def fits_value(command: str) -> bool:
    """Whether a command can be a button's value as it is (else it is stored)."""
    return command.startswith("/") and len(command) <= BUTTON_VALUE_CHARS


Values = Mapping[Button, str]  # each button's value (its command, or a stored one)


def reply_message(
    reply: Reply, values: Values | None = None, header: str | None = None
) -> Rendered:
    """A command's reply; ``header`` (mrkdwn) says who asked for it."""
    head = [_context(header)] if header else []
    return _layout(head, reply.text, reply.pre, reply.buttons, values or {}, reply.text)


def alert_message(message: OutboundMessage, values: Values | None = None) -> Rendered:
    """An alert: severity and title, text, the last lines of output, buttons."""
    title = f"{severity_mark(message.severity)} *{escape(message.title)}*"
    where = " · ".join(
        escape(p) for p in (str(message.severity), message.agent_id, message.project) if p
    )
    head = [_section(_fit_mrkdwn(title)), _context(where)]
    fallback = f"[{message.severity}] {message.title}"
    return _layout(head, message.text, message.pre, message.buttons, values or {}, fallback)


def edited_alert(message: OutboundMessage, values: Values | None = None) -> Part:
    """An alert's first message as an edit shows it: the buttons it has now, then its note."""
    part = alert_message(message, values).parts[0]
    if not message.note:
        return part
    note = _context(escape(message.note))
    rows = [i for i, b in enumerate(part.blocks) if b.get("type") == "actions"]
    at = rows[0] if rows else len(part.blocks)
    return Part(part.text, [*part.blocks[:at], note, *part.blocks[at:]])


@dataclass(frozen=True, slots=True)
class Pressed:
    """Where a button that asks was pressed, carried through its modal (private_metadata)."""

    value: str  # the button's value: its stored command and question
    user: str  # who pressed it: only they may answer
    channel: str
    label: str  # the button's label, for the reply's header
    thread: str | None = None  # the thread to reply in

    def to_metadata(self) -> str:
        return json.dumps(
            {"v": self.value, "u": self.user, "c": self.channel, "l": self.label, "t": self.thread}
        )

    @classmethod
    def from_metadata(cls, text: str) -> Pressed | None:
        """What ``to_metadata`` wrote; None for anything else."""
        try:
            data = json.loads(text)
            return cls(str(data["v"]), str(data["u"]), str(data["c"]), str(data["l"]), data["t"])
        except (ValueError, KeyError, TypeError):
            return None


def question_view(pressed: Pressed, command: str, question: str) -> Block:
    """The modal a button's question opens: one optional multi-line answer."""
    title = clip(pressed.label or "farmbot", VIEW_TITLE_CHARS)
    return {
        "type": "modal",
        "callback_id": QUESTION,
        "title": _plain(title),
        "submit": _plain(title),
        "close": _plain("Cancel"),
        "private_metadata": pressed.to_metadata(),
        "blocks": [
            {
                "type": "input",
                "block_id": ANSWER,
                "optional": True,
                "label": _plain(clip(question, INPUT_LABEL_CHARS)),
                "element": {
                    "type": "plain_text_input",
                    "action_id": ANSWER,
                    "multiline": True,
                    "max_length": ANSWER_CHARS,
                },
                "hint": _plain(clip(f"It goes with {command}; leave it empty for none.", 2000)),
            }
        ],
    }


def answer_of(view: Mapping[str, Any]) -> str:
    """The answer typed into a submitted ``question_view`` ("" when none was)."""
    values = (view.get("state") or {}).get("values") or {}
    value = (values.get(ANSWER) or {}).get(ANSWER, {}).get("value")
    return value if isinstance(value, str) else ""


def _plain(text: str) -> Block:
    return {"type": "plain_text", "text": text, "emoji": True}


def decided(blocks: Sequence[Block], block_id: str | None, line: str) -> list[Block]:
    """The message's blocks with the pressed row of buttons replaced by ``line``."""
    note = _context(line)
    out = [note if _is_row(b, block_id) else b for b in blocks]
    return out if note in out else [*blocks, note]


def _is_row(block: Block, block_id: str | None) -> bool:
    return block.get("type") == "actions" and block.get("block_id") == block_id


# -- layout -------------------------------------------------------------------------------


def _layout(
    head: list[Block],
    text: str,
    pre: str | None,
    buttons: Buttons,
    values: Values,
    fallback: str,
) -> Rendered:
    content = [_section(escape(piece)) for piece in _pieces(text, SECTION_CHARS) if piece.strip()]
    file = None
    if pre:
        # A ``` inside the output would end the block early; zero-width spaces defuse it.
        shown = pre.replace(_FENCE, "`\u200b`\u200b`")
        limit = SECTION_CHARS - 2 * len(_FENCE) - 2
        if len(escape(pre)) > FILE_CHARS:  # the start here, all of it in a file
            file = pre
            lines = pre.count("\n") + 1
            more = f"_… {lines} lines in all: the whole output is in the file in the thread_"
            code = [_code(_pieces(shown[:limit], limit)[0]), _context(more)]
        else:
            code = [_code(piece) for piece in _pieces(shown, limit)]
        content += code
    rows = _rows(buttons, values)
    room = MAX_BLOCKS - len(head) - len(rows) - 1  # one for the "continued" note
    first, rest = _take(content, room)
    parts: list[list[Block]] = []
    while rest:
        part, rest = _take(rest, MAX_BLOCKS)
        parts.append(part)
    if parts:
        first.append(_context(f"_continued in the thread ({len(parts)} more messages)_"))
    blocks = head + first + rows
    summary = escape(clip(fallback, FALLBACK_CHARS)) or "(empty)"
    return Rendered(
        (Part(summary, blocks), *(Part(f"(continued) {summary}", p) for p in parts)), file
    )


def _take(blocks: list[Block], room: int) -> tuple[list[Block], list[Block]]:
    """As many blocks as fit one message (at least one), and the rest."""
    size = 0
    for i, block in enumerate(blocks):
        size += _size(block)
        if i and (i >= room or size > MESSAGE_CHARS):
            return blocks[:i], blocks[i:]
    return list(blocks), []


def _size(block: Block) -> int:
    text = block.get("text")
    return len(text["text"]) if isinstance(text, dict) else 0


def _pieces(text: str, limit: int) -> list[str]:
    """Split text so that each piece, escaped, fits ``limit``; at line ends if possible."""
    pieces: list[str] = []
    current, size = "", 0
    for line in text.splitlines(keepends=True):
        cost = len(escape(line))
        while cost > limit:  # a line longer than a section: cut it where it must
            if current:
                pieces.append(current)
                current, size = "", 0
            cut = _cut(line, limit)
            pieces.append(line[:cut])
            line = line[cut:]
            cost = len(escape(line))
        if size + cost > limit:
            pieces.append(current)
            current, size = "", 0
        current += line
        size += cost
    if current:
        pieces.append(current)
    return pieces


def _cut(line: str, limit: int) -> int:
    """How many characters of ``line`` fit in ``limit`` once escaped (at least one)."""
    size = 0
    for i, char in enumerate(line):
        size += len(escape(char))
        if size > limit:
            return max(1, i)
    return len(line)


def _rows(buttons: Buttons, values: Values) -> list[Block]:
    rows: list[Block] = []
    flat = [row[i : i + ROW_BUTTONS] for row in buttons for i in range(0, len(row), ROW_BUTTONS)]
    n = 0
    for r, row in enumerate(flat):
        elements = []
        for button in row:
            elements.append(_button(button, f"{ACTION_PREFIX}{n}", values))
            n += 1
        rows.append({"type": "actions", "block_id": f"{ROW_PREFIX}{r}", "elements": elements})
    return rows


def _button(button: Button, action_id: str, values: Values) -> Block:
    label = clip(button.label, LABEL_CHARS)
    element: Block = {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": label or "?", "emoji": True},
        "value": values.get(button, button.command),
    }
    if button.style:
        element["style"] = button.style
    return element


def _section(mrkdwn: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn}}


def _code(raw: str) -> Block:
    body = escape(raw[:-1] if raw.endswith("\n") else raw)
    return _section(f"{_FENCE}\n{body or ' '}\n{_FENCE}")


def _context(mrkdwn: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": _fit_mrkdwn(mrkdwn)}]}


def _fit_mrkdwn(text: str) -> str:
    # Titles and notes are one line; a longer one is clipped visibly, never silently.
    return clip(text, SECTION_CHARS)
