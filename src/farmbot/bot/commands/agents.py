"""Commands about agents: spawn, list, send (text, or files into the worktree), tail,
file (a file out of the worktree), kill."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from farmbot.bot.authz import Person
from farmbot.bot.commands.base import Context, Spec, name, number, size, split_agent, words
from farmbot.errors import AdapterError, CommandError, UsageError
from farmbot.messages import Attachment, Button, Incoming, Reply
from farmbot.models import AgentKind, AgentState, Role

MAX_TAIL = 2000
DEFAULT_TAIL = 40


@dataclass(frozen=True, slots=True)
class Spawn:
    """``/spawn``: start an agent (a builder gets its own git worktree)."""

    kind: AgentKind
    number: int | None = None
    project: str | None = None


@dataclass(frozen=True, slots=True)
class Agents:
    """``/agents``: every agent and its state."""


@dataclass(frozen=True, slots=True)
class Send:
    """``/send``: type a prompt into an agent (with files: save them in its worktree)."""

    agent: str
    text: str
    origin: Incoming | None = field(default=None, compare=False)  # its files, if any


@dataclass(frozen=True, slots=True)
class Tail:
    """``/tail``: the last lines of an agent's screen."""

    agent: str
    lines: int = DEFAULT_TAIL


@dataclass(frozen=True, slots=True)
class File:
    """``/file``: a file from an agent's worktree, sent to the person."""

    agent: str
    path: str  # relative to the agent's worktree


@dataclass(frozen=True, slots=True)
class Kill:
    """``/kill``: stop an agent on purpose (its worktree is kept unless asked)."""

    agent: str
    remove_worktree: bool = False
    force: bool = False  # remove it even if that loses uncommitted work


def agent_buttons(agent_id: str) -> tuple[Button, ...]:
    return (Button("Tail", f"/tail {agent_id}"), Button("Kill", f"/kill {agent_id}", "danger"))


# -- parse ------------------------------------------------------------------------------


def _spawn(args: str, usage: str) -> Spawn:
    found = words(args, usage, 1, 3)
    kinds = [k.value for k in AgentKind]
    if found[0].lower() not in kinds:
        close = difflib.get_close_matches(found[0].lower(), kinds, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f" (one of: {', '.join(kinds)})"
        raise UsageError(f"unknown agent kind '{found[0]}'{hint}", usage)
    kind = AgentKind(found[0].lower())
    rest = found[1:]
    n = None
    if rest and _looks_numeric(rest[0]):  # "-1" and "#-1" are bad numbers, not projects
        n = number(rest.pop(0), "the agent's number", usage, 1, 999_999)
    if len(rest) > 1:
        raise UsageError(f"too many arguments: {' '.join(rest)!r}", usage)
    return Spawn(kind, n, name(rest[0], "project", usage) if rest else None)


def _looks_numeric(word: str) -> bool:
    return word.lstrip("#").lstrip("+-").isdigit()


def _send(args: str, usage: str) -> Send:
    agent, text = split_agent(args, usage)
    if not text.strip():
        raise UsageError(f"nothing to send to {agent}", usage)
    return Send(agent, text.rstrip())


def _send_files(args: str, usage: str) -> Send:
    """``/send <agent> [text]`` as a file's caption: the text is optional."""
    agent, text = split_agent(args, usage)
    return Send(agent, text.rstrip())


def _file(args: str, usage: str) -> File:
    agent, path = split_agent(args, usage)
    if not path.strip():
        raise UsageError(f"which file of {agent}'s?", usage)
    return File(agent, path.strip())


def _tail(args: str, usage: str) -> Tail:
    found = words(args, usage, 1, 2)
    lines = number(found[1], "lines", usage, 1, MAX_TAIL) if len(found) > 1 else DEFAULT_TAIL
    return Tail(name(found[0], "agent", usage), lines)


def _kill(args: str, usage: str) -> Kill:
    found = words(args, usage, 1, 3)
    remove = force = False
    for option in found[1:]:
        if option in ("--remove-worktree", "--rm"):
            remove = True
        elif option == "--force":
            force = True
        else:
            raise UsageError(f"unknown option {option!r}", usage)
    if force and not remove:
        raise UsageError("--force goes with --remove-worktree", usage)
    return Kill(name(found[0], "agent", usage), remove, force)


def _agents(args: str, usage: str) -> Agents:
    words(args, usage, 0, 0)
    return Agents()


# -- handle -----------------------------------------------------------------------------


async def _do_spawn(command: Spawn, person: Person, ctx: Context) -> Reply:
    agent = await ctx.supervisor.spawn(command.kind, command.number, command.project, person.name)
    where = f"worktree {agent.workdir}" if agent.kind is AgentKind.BUILDER else agent.workdir
    branch = f" on branch {agent.branch}" if agent.branch else ""
    prompt = (
        " Its builder prompt goes in as soon as it is ready."
        if agent.kind is AgentKind.BUILDER
        else ""
    )
    return Reply(
        f"spawned {agent.id} ({agent.profile}) in project {agent.project}: "
        f"{where}{branch}.{prompt}",
        buttons=(agent_buttons(agent.id),),
    )


async def _do_agents(command: Agents, person: Person, ctx: Context) -> Reply:
    agents = await ctx.supervisor.list_agents()
    if not agents:
        return Reply("no agents yet; /spawn builder <issue> starts one")
    unheard = await ctx.unheard_nodes()
    lines = [
        f"{a.id} [{a.project}{f' @{a.node}' if ctx.nodes else ''}] {ctx.state_of(a, unheard)}"
        + (f" — {a.state_reason}" if a.state in (AgentState.DEAD, AgentState.STUCK) else "")
        for a in agents
    ]
    buttons = tuple(
        agent_buttons(a.id) for a in agents if a.state.is_live and a.node not in unheard
    )[:8]
    return Reply("\n".join(lines), buttons=buttons)


async def _do_send(command: Send, person: Person, ctx: Context) -> Reply:
    agent = command.agent
    files = command.origin.files if command.origin is not None else ()
    if files:
        return await _give_files(command, person, ctx)
    sent = await ctx.supervisor.send(agent, command.text, person.name)
    verb = "queued for" if sent.queued else "sent to"
    why = " (it is not ready yet; it gets it as soon as it is)" if sent.queued else ""
    removed = f"; removed {sent.removed} terminal control characters" if sent.removed else ""
    return Reply(
        f"{verb} {agent}{why}: {len(sent.prompt.text)} characters{removed}",
        buttons=((Button("Tail", f"/tail {agent}"),),),
    )


async def _give_files(command: Send, person: Person, ctx: Context) -> Reply:
    """Save the files in the agent's worktree, then type their paths (after the text)."""
    assert command.origin is not None
    agent, limit = command.agent, ctx.max_file_bytes
    await ctx.supervisor.get(agent)  # an unknown agent before any download
    saved: list[str] = []
    for received in command.origin.files:
        too_big = (
            f"{received.name} is {{}}; farmbot takes files up to {size(limit)} "
            "(supervisor.max_file_bytes)"
        )
        if received.size is not None and received.size > limit:
            raise CommandError(too_big.format(size(received.size)))
        try:
            data = await received.fetch()
        except AdapterError as exc:
            raise CommandError(f"{received.name} could not be fetched: {exc}") from exc
        if len(data) > limit:
            raise CommandError(too_big.format(size(len(data))))
        saved.append(await ctx.supervisor.save_file(agent, received.name, data))
    lines = [command.text] if command.text.strip() else []
    lines += [f"{person.name} sent you a file: {path}" for path in saved]
    sent = await ctx.supervisor.send(agent, "\n".join(lines), person.name)
    verb = "queued for" if sent.queued else "typed into"
    return Reply(
        f"saved in {agent}'s worktree: {', '.join(saved)}; the path{'s' * (len(saved) > 1)} "
        f"{verb} {agent}",
        buttons=((Button("Tail", f"/tail {agent}"),),),
    )


async def _do_file(command: File, person: Person, ctx: Context) -> Reply:
    found = await ctx.supervisor.read_file(command.agent, command.path, ctx.max_file_bytes)
    try:
        text: str | None = found.data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return Reply(
        f"{command.path} from {command.agent}'s worktree ({size(len(found.data))})",
        file=Attachment(found.name, found.data, text),
    )


async def _do_tail(command: Tail, person: Person, ctx: Context) -> Reply:
    agent, lines = command.agent, command.lines
    found = await ctx.supervisor.get(agent)
    shown = await ctx.supervisor.tail(agent, lines)
    return Reply(
        f"{agent} ({ctx.state_of(found)}): last {len(shown)} lines",
        pre="\n".join(shown) or "(the screen is empty)",
        buttons=((Button("Refresh", f"/tail {agent} {lines}"),),),
    )


async def _do_kill(command: Kill, person: Person, ctx: Context) -> Reply:
    remove = command.remove_worktree
    killed = await ctx.supervisor.kill(
        command.agent, person.name, remove=remove, force=command.force
    )
    stopped, dropped = killed.agent, killed.dropped
    notes = []
    if stopped.kind is AgentKind.BUILDER:
        branch = f" {stopped.branch}" if stopped.branch else ""
        if not remove:
            notes.append(f"worktree kept at {stopped.workdir}")
        elif killed.lost:
            notes.append(
                f"worktree removed with what was not on its branch{branch} "
                f"(lost: {'; '.join(killed.lost)})"
            )
        else:
            notes.append(f"worktree removed; everything in it is on its branch{branch}")
    if dropped:
        notes.append(f"dropped {dropped} queued prompts")
    extra = f"; {'; '.join(notes)}" if notes else ""
    return Reply(f"stopped {command.agent} on purpose{extra}")


SPECS: tuple[Spec[Any], ...] = (
    Spec(
        "spawn",
        "/spawn <architect|builder|shell> [<n>] [project]",
        "start an agent (builders get their own git worktree)",
        Role.OPERATOR,
        Spawn,
        _spawn,
        _do_spawn,
    ),
    Spec(
        "agents", "/agents", "every agent and its state", Role.VIEWER, Agents, _agents, _do_agents
    ),
    Spec(
        "send",
        "/send <agent> <text>",
        "type a prompt into an agent (as a file's caption: save the file in its worktree)",
        Role.OPERATOR,
        Send,
        _send,
        _do_send,
        parse_files=_send_files,
    ),
    Spec(
        "file",
        "/file <agent> <path>",
        "a file from an agent's worktree, sent here",
        Role.OPERATOR,
        File,
        _file,
        _do_file,
    ),
    Spec(
        "tail",
        f"/tail <agent> [lines, default {DEFAULT_TAIL}]",
        "the last lines of an agent's screen",
        Role.VIEWER,
        Tail,
        _tail,
        _do_tail,
    ),
    Spec(
        "kill",
        "/kill <agent> [--remove-worktree [--force]]",
        "stop an agent on purpose (its worktree is kept unless asked)",
        Role.OPERATOR,
        Kill,
        _kill,
        _do_kill,
    ),
)
