"""What every command is: a registry entry with its usage, role, parser and handler.

Parsing is pure: ``parse(arguments, usage)`` turns the text after the command word into a
typed command or raises ``UsageError`` naming what was wrong. Handling is async:
``handle(command, person, context)`` acts through the supervisor, gates and alerts in the
``Context`` and returns a ``Reply`` value; it never talks to a chat platform.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from farmbot.errors import UsageError
from farmbot.messages import Reply, ago
from farmbot.models import Agent, NodeHealth, NodeState, Role

if TYPE_CHECKING:
    from farmbot.alerts import Notifier
    from farmbot.bot.authz import Person
    from farmbot.storage.outbox import OutboxStore
    from farmbot.supervisor.agents import Supervisor
    from farmbot.supervisor.gates import Gates

C = TypeVar("C")


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
    nodes: NodeView | None = None  # several machines (PostgreSQL); None with one

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
    """One command: its name, usage line, summary, the role it needs, parse and handle."""

    name: str
    usage: str
    summary: str
    role: Role
    type: type[C]
    parse: Callable[[str, str], C]  # (arguments, usage) -> command
    handle: Callable[[C, Person, Context], Awaitable[Reply]]


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
