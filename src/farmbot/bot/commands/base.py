"""What every command is: a registry entry with its usage, role, parser and handler.

Parsing is pure: ``parse(arguments, usage)`` turns the text after the command word into a
typed command or raises ``UsageError`` naming what was wrong (``parse_files`` instead, when
the message carries files: only commands that take files have one). Handling is async:
``handle(command, person, context)`` acts through the supervisor, gates and alerts in the
``Context`` and returns a ``Reply`` value; it never talks to a chat platform.

A command with an ``origin`` field gets the ``Incoming`` it came from (``with_origin``):
``/ping`` reads its timestamps, ``/send`` its files.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from farmbot.errors import CommandError, UsageError
from farmbot.messages import Hearing, Incoming, Reply, ago
from farmbot.models import Agent, NodeHealth, NodeState, Role

if TYPE_CHECKING:
    from farmbot.alerts import Notifier
    from farmbot.bot.authz import Person
    from farmbot.storage.outbox import OutboxStore
    from farmbot.supervisor.agents import Supervisor
    from farmbot.supervisor.autopilot import Control
    from farmbot.supervisor.gates import Gates

C = TypeVar("C")
MAX_FILE_BYTES = 8 * 1024 * 1024


def _no_hearing() -> Mapping[str, Hearing]:
    return {}


class NodeView(Protocol):
    """The nodes of a farm on a shared database, as ``/status`` and ``/agents`` show them."""

    async def states(self) -> list[NodeState]:
        """Every node: health, load, who leads."""


@dataclass(frozen=True, slots=True)
class Context:
    """What command handlers act on."""

    supervisor: Supervisor
    gates: Gates
    outbox: OutboxStore
    notifier: Notifier | None = None
    clock: Callable[[], float] = time.time
    specs: Mapping[str, Spec[Any]] = field(default_factory=dict)  # for /help
    autopilot: Control | None = None
    hearing: Callable[[], Mapping[str, Hearing]] = _no_hearing  # each chat interface's, now
    max_file_bytes: int = MAX_FILE_BYTES  # what /file sends and /send saves, at most
    nodes: NodeView | None = None  # several machines (PostgreSQL); None with one

    @property
    def pilot(self) -> Control:
        """The autopilot's operations (configured by the builder)."""
        if self.autopilot is None:
            raise CommandError("the autopilot is not set up in this farmbot")
        return self.autopilot

    def state_of(self, agent: Agent, unheard: Mapping[str, NodeState] | None = None) -> str:
        """ "busy for 3m": the agent's state and how long it has been in it; "node down"
        for a live agent whose node is in ``unheard`` (down or stopped)."""
        node = (unheard or {}).get(agent.node)
        if node is not None and agent.state.is_live:
            return f"node {node.health.value} ({agent.node} quiet for {ago(node.node.quiet)})"
        return f"{agent.state.value} for {ago(self.clock() - agent.state_since)}"

    async def unheard_nodes(self) -> dict[str, NodeState]:
        """The nodes not heard from (down, or stopped on purpose), by name."""
        if self.nodes is None:
            return {}
        return {n.name: n for n in await self.nodes.states() if n.health is not NodeHealth.UP}


@dataclass(frozen=True, slots=True)
class Spec(Generic[C]):
    """One command: its name, usage line, summary, the role it needs, parse and handle.

    A name of two words (``task add``) is a subcommand: ``/task add ...``. ``parse_data``
    reads the command from JSON instead of text (``POST /api/tasks``), where it can.
    """

    name: str
    usage: str
    summary: str
    role: Role
    type: type[C]
    parse: Callable[[str, str], C]  # (arguments, usage) -> command
    handle: Callable[[C, Person, Context], Awaitable[Reply]]
    parse_data: Callable[[Mapping[str, Any], str], C] | None = None
    parse_files: Callable[[str, str], C] | None = None  # when files came with the text


def with_origin(command: C, msg: Incoming) -> C:
    """The command, given the message it came from if it has an ``origin`` field."""
    if dataclasses.is_dataclass(command) and any(
        f.name == "origin" for f in dataclasses.fields(command)
    ):
        return dataclasses.replace(command, origin=msg)  # type: ignore[type-var]
    return command


def size(n: int) -> str:
    """A byte count for people: 900 B, 12.5 KiB, 8.0 MiB."""
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 1024 / 1024:.1f} MiB"


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def words(args: str, usage: str, least: int, most: int) -> list[str]:
    found = args.split()
    if len(found) < least:
        raise UsageError("missing arguments", usage)
    if len(found) > most:
        raise UsageError(f"too many arguments: {' '.join(found[most:])!r}", usage)
    return found


def name(word: str, what: str, usage: str) -> str:
    if not _NAME.match(word):
        raise UsageError(f"invalid {what} name {word!r}", usage)
    return word


def number(word: str, what: str, usage: str, low: int, high: int) -> int:
    text = word.lstrip("#")
    # isdecimal, not isdigit: int() rejects "²"; the length cap keeps int() off huge input.
    value = int(text) if text.isdecimal() and len(text) <= 20 else None
    if value is None or not low <= value <= high:
        raise UsageError(f"{what} must be a whole number from {low} to {high}, not {word!r}", usage)
    return value


def ref(word: str, what: str, listing: str, usage: str) -> int:
    """An id people copy from a list ("7" or "#7"); the error points to that list."""
    text = word.lstrip("#")
    if not (text.isdecimal() and len(text) <= 18 and int(text) > 0):
        raise UsageError(
            f"expected a {what} number such as 7 ({listing} lists them), not {word!r}", usage
        )
    return int(text)


def no_args(make: Callable[[], C]) -> Callable[[str, str], C]:
    def parse(args: str, usage: str) -> C:
        words(args, usage, 0, 0)
        return make()

    return parse


def one_name(what: str, make: Callable[[str], C]) -> Callable[[str, str], C]:
    def parse(args: str, usage: str) -> C:
        [word] = words(args, usage, 1, 1)
        return make(name(word, what, usage))

    return parse


def split_agent(args: str, usage: str) -> tuple[str, str]:
    """The agent named first, and the rest of the text exactly as typed."""
    stripped = args.lstrip()
    if not stripped:
        raise UsageError("missing arguments", usage)
    # The agent, then one separator: the rest of a line of blanks (any Unicode space, a
    # \r\n), or blanks. Always matches: ``stripped`` starts with a non-space.
    match = re.match(r"(\S+)(?:[^\S\n]*\n|\s+|$)", stripped)
    if match is None:
        raise UsageError("missing arguments", usage)
    return name(match.group(1), "agent", usage), stripped[match.end() :]
