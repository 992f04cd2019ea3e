"""Chat commands: one registry entry per command (usage, role, parse, handle), by domain.

The same text works everywhere: ``/spawn builder 42`` in Telegram or the web console,
``/farm spawn builder 42`` in Slack (the adapter strips ``/farm``), ``farmbot cmd "/spawn
builder 42"`` on the command line. The leading slash is optional and a Telegram
``@botname`` suffix is ignored. ``parse`` is pure; ``Commands.run`` handles a parsed,
authorized command and returns a ``Reply``.

Domains: farm.py (help, status, projects), agents.py (spawn, send, tail, kill),
gates.py (approve, reject), alerts.py (alerts, retry).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

from farmbot.bot.authz import Person
from farmbot.bot.commands import agents, alerts, farm, gates
from farmbot.bot.commands.agents import DEFAULT_TAIL, MAX_TAIL, Agents, Kill, Send, Spawn, Tail
from farmbot.bot.commands.alerts import Alerts, Retry
from farmbot.bot.commands.base import Context, Spec
from farmbot.bot.commands.farm import Activate, Deactivate, Help, Projects, Status
from farmbot.bot.commands.gates import Approve, Gates, Reject
from farmbot.errors import UsageError
from farmbot.messages import Reply

__all__ = [
    "DEFAULT_TAIL",
    "MAX_TAIL",
    "SPECS",
    "Activate",
    "Agents",
    "Alerts",
    "Approve",
    "Command",
    "Commands",
    "Context",
    "Deactivate",
    "Gates",
    "Help",
    "Kill",
    "Projects",
    "Reject",
    "Retry",
    "Send",
    "Spawn",
    "Spec",
    "Status",
    "Tail",
    "parse",
    "spec_of",
]

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

SPECS: dict[str, Spec[Any]] = {
    spec.name: spec for spec in (*farm.SPECS, *agents.SPECS, *gates.SPECS, *alerts.SPECS)
}
_BY_TYPE: dict[type, Spec[Any]] = {spec.type: spec for spec in SPECS.values()}


def spec_of(command: object) -> Spec[Any]:
    """The spec (usage, required role, handler) of a parsed command."""
    return _BY_TYPE[type(command)]


def parse(text: str) -> Any:
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


class Commands:
    """The registry bound to what its handlers act on."""

    def __init__(self, context: Context, specs: Mapping[str, Spec[Any]] = SPECS) -> None:
        self._context = context
        self.specs = specs

    async def run(self, command: object, person: Person) -> Reply:
        """Run a parsed, authorized command for ``person``."""
        return await spec_of(command).handle(command, person, self._context)
