"""Chat commands: a pure parser from text to a typed command, or a UsageError.

No I/O here. The same text works everywhere: ``/spawn builder 42`` in Telegram or the
web console, ``/farm spawn builder 42`` in Slack (the adapter strips ``/farm``),
``farmbot cmd "/spawn builder 42"`` on the command line. The leading slash is optional
and a Telegram ``@botname`` suffix is ignored.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass

from farmbot.errors import UsageError
from farmbot.models import AgentKind, Role

MAX_TAIL = 2000
DEFAULT_TAIL = 40


@dataclass(frozen=True, slots=True)
class Help:
    topic: str | None = None


@dataclass(frozen=True, slots=True)
class Status:
    pass


@dataclass(frozen=True, slots=True)
class Projects:
    pass


@dataclass(frozen=True, slots=True)
class Activate:
    project: str


@dataclass(frozen=True, slots=True)
class Deactivate:
    project: str


@dataclass(frozen=True, slots=True)
class Spawn:
    kind: AgentKind
    number: int | None = None
    project: str | None = None


@dataclass(frozen=True, slots=True)
class Agents:
    pass


@dataclass(frozen=True, slots=True)
class Send:
    agent: str
    text: str


@dataclass(frozen=True, slots=True)
class Tail:
    agent: str
    lines: int = DEFAULT_TAIL


@dataclass(frozen=True, slots=True)
class Kill:
    agent: str
    remove_worktree: bool = False


@dataclass(frozen=True, slots=True)
class Gates:
    pass


@dataclass(frozen=True, slots=True)
class Approve:
    gate: int


@dataclass(frozen=True, slots=True)
class Reject:
    gate: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Alerts:
    pass


@dataclass(frozen=True, slots=True)
class Retry:
    outbox: int  # the id of a dead letter


Command = (
    Help
    | Status
    | Projects
    | Activate
    | Deactivate
    | Spawn
    | Agents
    | Send
    | Tail
    | Kill
    | Gates
    | Approve
    | Reject
    | Alerts
    | Retry
)


@dataclass(frozen=True, slots=True)
class Spec:
    name: str
    usage: str
    summary: str
    role: Role
    parse: Callable[[str, str], Command]  # (arguments, usage) -> command


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _words(args: str, usage: str, least: int, most: int) -> list[str]:
    words = args.split()
    if len(words) < least:
        raise UsageError("missing arguments", usage)
    if len(words) > most:
        raise UsageError(f"too many arguments: {' '.join(words[most:])!r}", usage)
    return words


def _name(word: str, what: str, usage: str) -> str:
    if not _NAME.match(word):
        raise UsageError(f"invalid {what} name {word!r}", usage)
    return word


def _int(word: str, what: str, usage: str, low: int, high: int) -> int:
    text = word.lstrip("#")
    # isdecimal, not isdigit: int() rejects "²"; the length cap keeps int() off huge input.
    value = int(text) if text.isdecimal() and len(text) <= 20 else None
    if value is None or not low <= value <= high:
        raise UsageError(f"{what} must be a whole number from {low} to {high}, not {word!r}", usage)
    return value


def _ref(word: str, what: str, listing: str, usage: str) -> int:
    """An id people copy from a list ("7" or "#7"); the error points to that list."""
    text = word.lstrip("#")
    if not (text.isdecimal() and len(text) <= 18 and int(text) > 0):
        raise UsageError(
            f"expected a {what} number such as 7 ({listing} lists them), not {word!r}", usage
        )
    return int(text)


def _no_args(make: Callable[[], Command]) -> Callable[[str, str], Command]:
    def parse(args: str, usage: str) -> Command:
        _words(args, usage, 0, 0)
        return make()

    return parse


def _help(args: str, usage: str) -> Command:
    words = _words(args, usage, 0, 1)
    return Help(words[0].lstrip("/").lower() if words else None)


def _project_arg(make: Callable[[str], Command]) -> Callable[[str, str], Command]:
    def parse(args: str, usage: str) -> Command:
        [project] = _words(args, usage, 1, 1)
        return make(_name(project, "project", usage))

    return parse


def _spawn(args: str, usage: str) -> Command:
    words = _words(args, usage, 1, 3)
    kinds = [k.value for k in AgentKind]
    if words[0].lower() not in kinds:
        close = difflib.get_close_matches(words[0].lower(), kinds, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f" (one of: {', '.join(kinds)})"
        raise UsageError(f"unknown agent kind '{words[0]}'{hint}", usage)
    kind = AgentKind(words[0].lower())
    rest = words[1:]
    number = None
    if rest and rest[0].lstrip("#").isdigit():
        number = _int(rest.pop(0), "the agent's number", usage, 1, 999_999)
    if len(rest) > 1:
        raise UsageError(f"too many arguments: {' '.join(rest)!r}", usage)
    project = _name(rest[0], "project", usage) if rest else None
    return Spawn(kind, number, project)


def _split_agent(args: str, usage: str) -> tuple[str, str]:
    stripped = args.lstrip()
    if not stripped:
        raise UsageError("missing arguments", usage)
    # The agent, then one separator: the rest of a line of blanks (any Unicode space, a
    # \r\n), or blanks. Always matches: ``stripped`` starts with a non-space.
    match = re.match(r"(\S+)(?:[^\S\n]*\n|\s+|$)", stripped)
    if match is None:
        raise UsageError("missing arguments", usage)
    return _name(match.group(1), "agent", usage), stripped[match.end() :]


def _send(args: str, usage: str) -> Command:
    agent, text = _split_agent(args, usage)
    if not text.strip():
        raise UsageError(f"nothing to send to {agent}", usage)
    return Send(agent, text.rstrip())


def _tail(args: str, usage: str) -> Command:
    words = _words(args, usage, 1, 2)
    lines = _int(words[1], "lines", usage, 1, MAX_TAIL) if len(words) > 1 else DEFAULT_TAIL
    return Tail(_name(words[0], "agent", usage), lines)


def _kill(args: str, usage: str) -> Command:
    words = _words(args, usage, 1, 2)
    remove = False
    if len(words) == 2:
        if words[1] not in ("--remove-worktree", "--rm"):
            raise UsageError(f"unknown option {words[1]!r}", usage)
        remove = True
    return Kill(_name(words[0], "agent", usage), remove)


def _approve(args: str, usage: str) -> Command:
    [gate] = _words(args, usage, 1, 1)
    return Approve(_ref(gate, "gate", "/gates", usage))


def _retry(args: str, usage: str) -> Command:
    [outbox] = _words(args, usage, 1, 1)
    return Retry(_ref(outbox, "dead letter", "/alerts", usage))


def _reject(args: str, usage: str) -> Command:
    words = args.split(maxsplit=1)
    if not words:
        raise UsageError("missing arguments", usage)
    reason = words[1].strip() if len(words) > 1 else ""
    return Reject(_ref(words[0], "gate", "/gates", usage), reason)


SPECS: dict[str, Spec] = {
    spec.name: spec
    for spec in (
        Spec("help", "/help [command]", "what farmbot can do", Role.VIEWER, _help),
        Spec(
            "status",
            "/status",
            "agents, gates and projects at a glance",
            Role.VIEWER,
            _no_args(Status),
        ),
        Spec("projects", "/projects", "the configured projects", Role.VIEWER, _no_args(Projects)),
        Spec(
            "activate",
            "/activate <project>",
            "allow spawning in a project",
            Role.ADMIN,
            _project_arg(Activate),
        ),
        Spec(
            "deactivate",
            "/deactivate <project>",
            "stop new spawns in a project",
            Role.ADMIN,
            _project_arg(Deactivate),
        ),
        Spec(
            "spawn",
            "/spawn <architect|builder|shell> [<n>] [project]",
            "start an agent (builders get their own git worktree)",
            Role.OPERATOR,
            _spawn,
        ),
        Spec("agents", "/agents", "every agent and its state", Role.VIEWER, _no_args(Agents)),
        Spec("send", "/send <agent> <text>", "type a prompt into an agent", Role.OPERATOR, _send),
        Spec(
            "tail",
            f"/tail <agent> [lines, default {DEFAULT_TAIL}]",
            "the last lines of an agent's screen",
            Role.VIEWER,
            _tail,
        ),
        Spec(
            "kill",
            "/kill <agent> [--remove-worktree]",
            "stop an agent on purpose (its worktree is kept unless asked)",
            Role.OPERATOR,
            _kill,
        ),
        Spec("gates", "/gates", "questions waiting for a human", Role.VIEWER, _no_args(Gates)),
        Spec("approve", "/approve <gate>", "approve a gate", Role.ADMIN, _approve),
        Spec("reject", "/reject <gate> [reason]", "reject a gate", Role.ADMIN, _reject),
        Spec(
            "alerts",
            "/alerts",
            "recent alerts, and dead letters to retry",
            Role.VIEWER,
            _no_args(Alerts),
        ),
        Spec("retry", "/retry <dead letter>", "send a dead letter again", Role.ADMIN, _retry),
    )
}


def spec_of(command: Command) -> Spec:
    """The spec (usage, required role) of a parsed command."""
    name = type(command).__name__.lower()
    return SPECS[name]


def parse(text: str) -> Command:
    """Parse one command. Raises UsageError naming what was wrong and the usage."""
    stripped = text.strip()
    if not stripped:
        raise UsageError("empty command; try /help")
    body = (stripped[1:] if stripped.startswith("/") else stripped).lstrip()
    match = re.match(r"(\S+)", body)
    if match is None:  # a lone "/"
        raise UsageError("empty command; try /help")
    word = match.group(1).split("@", 1)[0].lower()
    args = body[match.end() :]
    spec = SPECS.get(word)
    if spec is None:
        close = difflib.get_close_matches(word, list(SPECS), n=1)
        hint = f"; did you mean '/{close[0]}'?" if close else ""
        raise UsageError(f"unknown command '/{word}'{hint or '.'} Try /help.")
    return spec.parse(args, spec.usage)
