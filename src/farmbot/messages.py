"""The vocabulary every layer shares: what people send, what farmbot answers, and the
interfaces that carry both.

This module is the bottom floor: it imports nothing of farmbot's, so the supervisor, the
bot, storage and every adapter can speak it without importing one another.

- ``Incoming``: one command from a person on some platform (typed, or a button press),
  with the platform's timestamp of it where there is one (``/ping`` measures from it), the
  files that came with it (``ReceivedFile``, fetched only when a command wants them), the
  update it came from (``source``), when it is handed over again after a crash, what
  interrupted its first handling (``interrupted``) and, when it answers a button's
  question, whom the question was put to (``asked``: only they may answer it).
- ``Reply``: what a command answers -- text, a preformatted block, buttons, a file
  (``Attachment``) -- and, when the command decided a gate, the ``Decided`` record, so an
  interface can edit the message that carried the buttons without re-reading the command.
  ``to_json`` and ``from_json`` carry it between nodes.
- ``Button``: a label and a command; pressing it runs the command as the presser. A
  button that ``asks`` lets the presser add an answer to its command first (Reject's
  optional reason): each interface asks its own way (a modal on Discord and Slack, a
  reply on Telegram, a field on the web console), and the command with the answer goes
  to the router like a typed one. ``reject_button`` is the one every gate shows.
- ``OutboundMessage``: one alert for one channel, as the notifier hands it over; ``send``
  returns the platform's handle of what it posted (a ``MessageRef``), which the outbox
  keeps so the alert can be edited later (``EditsAlerts``).
- ``Interface``: what every way of reaching farmbot is (web, Telegram, Slack, Discord,
  webhooks). What only some interfaces can do is a small optional capability Protocol
  (``ServesRoutes``, ``ReportsReadiness``, ``Hears``, ``EditsAlerts``, ``HasStatistics``),
  checked at runtime, so the composition root never names a concrete adapter class.
"""

from __future__ import annotations

import base64
import enum
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Style = Literal["primary", "danger"] | None
ELLIPSIS = "…"


class Severity(enum.IntEnum):
    """How urgent an alert is; higher is more urgent."""

    INFO = 1
    WARNING = 2
    CRITICAL = 3

    @classmethod
    def parse(cls, text: str) -> Severity:
        return cls[text.upper()]

    def __str__(self) -> str:
        return self.name.lower()


_MARKS = {Severity.CRITICAL: "🔴", Severity.WARNING: "⚠️", Severity.INFO: "ℹ️"}


@dataclass(frozen=True, slots=True)
class Button:
    label: str
    command: str  # e.g. "/approve 7"
    style: Style = None
    # A question whose answer, if the presser gives one, follows the command ("/reject 7"
    # + " the tests fail"); unanswered, the command runs as it is. "" asks nothing.
    asks: str = ""


Buttons = tuple[tuple[Button, ...], ...]  # rows of buttons
WHY = "Why? (optional; sent to the agent)"  # what a gate's Reject asks


def reject_button(gate: int) -> Button:
    """A gate's Reject: one press rejects; an interface that can ask takes a reason too."""
    return Button("Reject", f"/reject {gate}", "danger", asks=WHY)


def with_answer(command: str, answer: str) -> str:
    """``command`` with the answer to its button's question after it, if there is one."""
    answer = answer.strip()
    return f"{command} {answer}" if answer else command


@dataclass(frozen=True, slots=True)
class Decided:
    """A gate decision a command made: who, when, which way."""

    gate_id: int
    approved: bool
    by: str
    at: float


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file a reply carries (``/file``): every interface sends it as a file."""

    name: str  # the file's name, no directories
    data: bytes = field(repr=False)
    text: str | None = field(default=None, repr=False)  # the content, when it is UTF-8 text

    @property
    def size(self) -> int:
        return len(self.data)

    def to_json(self) -> dict[str, Any]:
        """A small text file as text (the console shows it as ``pre``), else base64."""
        shown: dict[str, Any] = {"name": self.name, "size": self.size}
        if self.text is not None and len(self.data) <= SHOWN_TEXT_BYTES:
            return {**shown, "text": self.text}
        return {**shown, "base64": base64.b64encode(self.data).decode("ascii")}


SHOWN_TEXT_BYTES = 64 * 1024  # a text file up to this size is shown, not only downloaded


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    pre: str | None = None  # terminal output and the like, shown monospaced
    buttons: Buttons = field(default=())
    ok: bool = True
    decided: Decided | None = None  # the gate this command decided, if it decided one
    data: dict[str, Any] | None = None  # what a JSON API caller reads (created records)
    file: Attachment | None = None  # a file to send with the text

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "data": self.data,
            "text": self.text,
            "pre": self.pre,
            "file": None if self.file is None else self.file.to_json(),
            "buttons": [
                [
                    {"label": b.label, "command": b.command, "style": b.style, "asks": b.asks}
                    for b in row
                ]
                for row in self.buttons
            ],
            "decided": None
            if self.decided is None
            else {
                "gate_id": self.decided.gate_id,
                "approved": self.decided.approved,
                "by": self.decided.by,
                "at": self.decided.at,
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Reply:
        """The reply ``to_json`` wrote."""
        decided = data.get("decided")
        return cls(
            text=str(data["text"]),
            pre=None if data.get("pre") is None else str(data["pre"]),
            buttons=tuple(
                tuple(
                    Button(
                        str(b["label"]), str(b["command"]), b.get("style"), str(b.get("asks", ""))
                    )
                    for b in row
                )
                for row in data.get("buttons", ())
            ),
            ok=bool(data.get("ok", True)),
            decided=None
            if decided is None
            else Decided(
                gate_id=int(decided["gate_id"]),
                approved=bool(decided["approved"]),
                by=str(decided["by"]),
                at=float(decided["at"]),
            ),
        )


@dataclass(frozen=True, slots=True)
class ReceivedFile:
    """A file a person sent with a command; its bytes are fetched only when wanted.

    ``fetch`` raises ``AdapterError`` when the platform does not hand the file over.
    """

    name: str  # as the person's client named it (not trusted: a path is cut to its name)
    size: int | None  # bytes, when the platform says so before the download
    fetch: Callable[[], Awaitable[bytes]] = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Incoming:
    """One command from a person, on some platform.

    ``sent_at`` and ``received_at`` are when the person sent it (by the platform's clock,
    where the platform says) and when farmbot got it; they and ``files`` describe the
    message, not the command, so two messages with the same command compare equal.
    """

    platform: str  # "web", "cli", "telegram", "slack", "discord", "scheduler", ...
    user_id: str  # the platform's id of the person
    chat: str  # where it came from (chat id, channel id, "console")
    text: str  # command text, e.g. "/spawn builder 42"
    display_name: str = ""
    button: bool = False  # a button press rather than typed text (the audit says so)
    data: dict[str, Any] | None = None  # JSON arguments (a JSON API call) instead of text
    sent_at: float | None = field(default=None, compare=False)  # epoch s, platform's clock
    received_at: float | None = field(default=None, compare=False)  # epoch s, farmbot's
    files: tuple[ReceivedFile, ...] = field(default=(), compare=False)
    precision: float = field(default=0.001, compare=False)  # of ``sent_at``, in seconds
    source: str = ""  # the platform's update it came from ("telegram:<bot>:<update_id>")
    # Handed over again because its first handling was cut short: by what ("node gpu
    # stopped while running it"). The router runs it again only if it changes nothing.
    interrupted: str = ""
    # The platform's id of the person a button's question was put to, when this answers
    # one (a modal submitted, a reply to a question): the router refuses anyone else.
    asked: str = ""


OnIncoming = Callable[[Incoming], Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One alert for one channel, as the notifier hands it to an interface."""

    alert_id: int
    outbox_id: int  # the same id on a retry: lets a platform drop a duplicate
    severity: Severity
    title: str
    text: str  # ends with "(repeated 4× in the last 5 min)" when count > 1
    pre: str | None  # the last lines of output, shown monospaced
    buttons: Buttons  # rows of buttons; each is a command, run as whoever presses it
    agent_id: str | None
    project: str | None
    count: int = 1  # how many alerts this message stands for
    note: str = ""  # what an edit adds: "✅ approved by alice at 12:03 UTC"

    @property
    def body(self) -> str:
        """The text with the edit's note, if any, after a blank line."""
        return f"{self.text}\n\n{self.note}" if self.note else self.text


MessageRef = str  # an interface's handle of a posted message: "chat:message_id", a ts, ...


class Interface(Protocol):
    """A way people reach farmbot: it translates, and decides nothing itself."""

    name: str

    async def start(self, on_incoming: OnIncoming) -> None:
        """Start receiving; hand every command to ``on_incoming``."""

    async def stop(self) -> None:
        """Stop receiving and release resources. Safe to call twice."""

    async def send(self, channel: str, message: OutboundMessage) -> MessageRef | None:
        """Deliver one alert to ``channel``; return the handle of what was posted, if any.

        Raises ``DeliveryError`` (with ``retry_after`` when the platform gave one) when a
        retry may help -- rate limits, 5xx, timeouts -- and ``PermanentDeliveryError``
        when it cannot (e.g. channel_not_found). Returning means delivered.
        """


# -- optional capabilities ------------------------------------------------------------

WebHandler = Callable[[Any], Awaitable[Any]]  # farmbot.adapters.http: Request -> Response
WebRoute = tuple[str, str, WebHandler]  # (method, path, handler)


@runtime_checkable
class ServesRoutes(Protocol):
    """Takes requests on farmbot's own web server (webhooks, hook events).

    Such a route checks its own credentials (a platform's signature, a hook token): the
    local key is not asked for. Routes are collected before the server starts.
    """

    def routes(self) -> list[WebRoute]: ...


@runtime_checkable
class ReportsReadiness(Protocol):
    """Has a readiness check: None while it works, else what is wrong (for /readyz)."""

    async def ready(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Hearing:
    """Whether an interface's inbound path works, and when it last heard anything."""

    ok: bool
    last_heard: float | None  # epoch seconds of the last inbound update, None if never
    detail: str  # e.g. "gateway heartbeat acked 4 s ago"


@runtime_checkable
class Hears(Protocol):
    """Can tell whether it still receives (a chat bot that is not deaf)."""

    def hearing(self) -> Hearing: ...


@runtime_checkable
class EditsAlerts(Protocol):
    """Can change an alert it posted: a decided gate's buttons come off every copy."""

    async def edit(self, channel: str, ref: MessageRef, message: OutboundMessage) -> None:
        """Show ``message`` (the alert as it is now) in place of the one ``ref`` names.

        Raises ``DeliveryError`` when a retry may help, ``PermanentDeliveryError`` when the
        message is gone or can no longer be edited.
        """


@runtime_checkable
class HasStatistics(Protocol):
    """Live counters for the status page."""

    def statistics(self) -> dict[str, int | float | str]: ...


@runtime_checkable
class Closes(Protocol):
    """Holds resources released at shutdown."""

    async def aclose(self) -> None: ...


# -- text every interface shows the same way --------------------------------------------


def utc_time(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def ago(seconds: float) -> str:
    """A duration for people: 42s, 7m, 3h05m, 2d."""
    seconds = max(0, int(seconds))
    if seconds < 90:
        return f"{seconds}s"
    if seconds < 90 * 60:
        return f"{seconds // 60}m"
    if seconds < 36 * 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d"


def clip(text: str, n: int) -> str:
    """``text`` if it has at most ``n`` characters, else its start and "…" (``n`` in all)."""
    return text if len(text) <= n else text[: n - 1] + ELLIPSIS


def severity_mark(severity: Severity) -> str:
    """The emoji an alert's title starts with, the same on every platform."""
    return _MARKS[severity]


def decided_line(approved: bool, text: str) -> str:
    """The line a decided Approve/Reject message gets: "✅ <reply>" or "❌ <reply>"."""
    return f"{'✅' if approved else '❌'} {text}"


_UNHOLDABLE = re.compile("[\ud800-\udfff\x00]")  # lone UTF-16 surrogates, NUL


def holdable(value: Any) -> Any:
    """``value`` (a string, or JSON-like lists and dicts of them) with every lone surrogate
    and NUL replaced by U+FFFD: text a database, a terminal and a chat platform can hold.

    JSON's ``\\ud800``-``\\udfff`` escapes and some chat clients deliver such text; left in,
    it fails wherever it is encoded (an audit row, a log line, a reply).
    """
    if isinstance(value, str):
        return _UNHOLDABLE.sub("\ufffd", value) if _UNHOLDABLE.search(value) else value
    if isinstance(value, dict):
        return {holdable(str(k)): holdable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [holdable(v) for v in value]
    return value
