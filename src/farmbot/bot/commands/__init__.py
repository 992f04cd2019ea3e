"""Chat commands: one registry entry per command (usage, role, parse, handle), by domain.

The same text works everywhere: ``/spawn builder 42`` in Telegram or the web console,
``/farm spawn builder 42`` in Slack (the adapter strips ``/farm``), ``farmbot cmd "/spawn
builder 42"`` on the command line. The leading slash is optional and a Telegram
``@botname`` suffix is ignored. ``parse`` is pure; ``Commands.run`` handles a parsed,
authorized command and returns a ``Reply``.

Domains: farm.py (help, status, projects), agents.py (spawn, send, tail, kill),
gates.py (approve, reject), alerts.py (alerts, retry), autopilot.py (tasks, runs, modes,
gate diffs). A command of two words (``/task add``, ``/run start``) is a subcommand.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

from farmbot.bot.authz import Person
from farmbot.bot.commands import agents, alerts, autopilot, farm, gates
from farmbot.bot.commands.agents import (
    DEFAULT_TAIL,
    MAX_TAIL,
    Agents,
    File,
    Kill,
    Send,
    Spawn,
    Tail,
)
from farmbot.bot.commands.alerts import Alerts, Retry
from farmbot.bot.commands.autopilot import (
    AddTasks,
    AssignTask,
    CancelTask,
    GateDiff,
    ListTasks,
    RetryTask,
    RunPause,
    RunResume,
    RunStart,
    RunStatus,
    SetAutopilot,
    ShowTask,
)
from farmbot.bot.commands.base import Context, Spec, with_origin
from farmbot.bot.commands.farm import Activate, Deactivate, Help, Ping, Projects, Status
from farmbot.bot.commands.gates import Approve, Gates, Reject
from farmbot.errors import UsageError
from farmbot.messages import Reply

__all__ = [
    "DEFAULT_TAIL",
    "MAX_TAIL",
    "SPECS",
    "Activate",
    "AddTasks",
    "Agents",
    "Alerts",
    "Approve",
    "AssignTask",
    "CancelTask",
    "Command",
    "Commands",
    "Context",
    "Deactivate",
    "File",
    "GateDiff",
    "Gates",
    "Help",
    "Kill",
    "ListTasks",
    "Ping",
    "Projects",
    "Reject",
    "Retry",
    "RetryTask",
    "RunPause",
    "RunResume",
    "RunStart",
    "RunStatus",
    "Send",
    "SetAutopilot",
    "ShowTask",
    "Spawn",
    "Spec",
    "Status",
    "Tail",
    "menu",
    "parse",
    "parse_data",
    "spec_of",
    "with_origin",
]

Command = (
    Help
    | Status
    | Ping
    | Projects
    | Activate
    | Deactivate
    | Spawn
    | Agents
    | Send
    | Tail
    | File
    | Kill
    | Gates
    | Approve
    | Reject
    | Alerts
    | Retry
    | AddTasks
    | ShowTask
    | ListTasks
    | CancelTask
    | RetryTask
    | AssignTask
    | SetAutopilot
    | RunStart
    | RunPause
    | RunResume
    | RunStatus
    | GateDiff
)

SPECS: dict[str, Spec[Any]] = {
    spec.name: spec
    for spec in (*farm.SPECS, *agents.SPECS, *gates.SPECS, *alerts.SPECS, *autopilot.SPECS)
}
_BY_TYPE: dict[type, Spec[Any]] = {spec.type: spec for spec in SPECS.values()}


def spec_of(command: object) -> Spec[Any]:
    """The spec (usage, required role, handler) of a parsed command."""
    return _BY_TYPE[type(command)]


def parse(text: str, *, files: bool = False) -> Any:
    """Parse one command (one that came with ``files``, if so).

    Raises UsageError naming what was wrong and the usage.
    """
    spec, args = _find(text)
    if not files:
        return spec.parse(args, spec.usage)
    if spec.parse_files is None:
        takes = [s.usage for s in SPECS.values() if s.parse_files is not None]
        raise UsageError(
            f"/{spec.name} takes no file; send the file with the caption " + " or ".join(takes)
        )
    return spec.parse_files(args, spec.usage)


def parse_data(text: str, data: Mapping[str, Any]) -> Any:
    """Parse a command named by ``text`` whose arguments are JSON ``data``."""
    spec, args = _find(text)
    if spec.parse_data is None or args.strip():
        raise UsageError(f"/{spec.name} does not take JSON arguments")
    return spec.parse_data(data, spec.usage)


def _find(text: str) -> tuple[Spec[Any], str]:
    """The spec a command's text names, and the text of its arguments."""
    stripped = text.strip()
    if not stripped:
        raise UsageError("empty command; try /help")
    body = (stripped[1:] if stripped.startswith("/") else stripped).lstrip()
    match = re.match(r"(\S+)", body)
    if match is None:  # a lone "/"
        raise UsageError("empty command; try /help")
    word = match.group(1).split("@", 1)[0].lower()
    args = body[match.end() :]
    subs = {n.split(" ", 1)[1]: s for n, s in SPECS.items() if n.startswith(word + " ")}
    if subs:
        found = re.match(r"[^\S\n]*(\S+)", args)
        sub = found.group(1).lower() if found else ""
        if sub in subs:
            return subs[sub], args[found.end() if found else 0 :]
        if word not in SPECS:
            close = difflib.get_close_matches(sub, list(subs), n=1) if sub else []
            hint = f"; did you mean '/{word} {close[0]}'?" if close else ""
            what = f"unknown subcommand '/{word} {sub}'{hint}" if sub else f"/{word} needs more"
            raise UsageError(f"{what}. Try: " + ", ".join(f"/{word} {n}" for n in subs))
    spec = SPECS.get(word)
    if spec is None:
        close = difflib.get_close_matches(word, [n for n in SPECS if " " not in n], n=1)
        hint = f"; did you mean '/{close[0]}'?" if close else ""
        raise UsageError(f"unknown command '/{word}'{hint or '.'} Try /help.")
    return spec, args


def menu() -> tuple[tuple[str, str], ...]:
    """(command, summary) for a platform's command menu: one entry per first word."""
    found: dict[str, str] = {}
    for spec_name, spec in SPECS.items():
        word, _, sub = spec_name.partition(" ")
        if not sub:
            found.setdefault(word, spec.summary)
        else:
            subs = [n.split(" ", 1)[1] for n in SPECS if n.startswith(word + " ")]
            found.setdefault(word, f"{word} {'|'.join(subs)}")
    return tuple(found.items())


class Commands:
    """The registry bound to what its handlers act on."""

    def __init__(self, context: Context, specs: Mapping[str, Spec[Any]] = SPECS) -> None:
        self._context = context
        self.specs = specs

    async def run(self, command: object, person: Person) -> Reply:
        """Run a parsed, authorized command for ``person``."""
        return await spec_of(command).handle(command, person, self._context)
