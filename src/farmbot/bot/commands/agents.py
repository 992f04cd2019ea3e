"""Commands about agents: spawn, list, send, tail, kill."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from farmbot.bot.authz import Person
from farmbot.bot.commands.base import Context, Spec, name, number, split_agent, words
from farmbot.errors import UsageError
from farmbot.messages import Button, Reply
from farmbot.models import AgentKind, AgentState, Role

MAX_TAIL = 2000
DEFAULT_TAIL = 40


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
    if rest and rest[0].lstrip("#").isdigit():
        n = number(rest.pop(0), "the agent's number", usage, 1, 999_999)
    if len(rest) > 1:
        raise UsageError(f"too many arguments: {' '.join(rest)!r}", usage)
    return Spawn(kind, n, name(rest[0], "project", usage) if rest else None)


def _send(args: str, usage: str) -> Send:
    agent, text = split_agent(args, usage)
    if not text.strip():
        raise UsageError(f"nothing to send to {agent}", usage)
    return Send(agent, text.rstrip())


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
    lines = [
        f"{a.id} [{a.project}] {ctx.state_of(a)}"
        + (f" — {a.state_reason}" if a.state in (AgentState.DEAD, AgentState.STUCK) else "")
        for a in agents
    ]
    buttons = tuple(agent_buttons(a.id) for a in agents if a.state.is_live)[:8]
    return Reply("\n".join(lines), buttons=buttons)


async def _do_send(command: Send, person: Person, ctx: Context) -> Reply:
    agent = command.agent
    sent = await ctx.supervisor.send(agent, command.text, person.name)
    verb = "queued for" if sent.queued else "sent to"
    why = " (it is not ready yet; it gets it as soon as it is)" if sent.queued else ""
    removed = f"; removed {sent.removed} terminal control characters" if sent.removed else ""
    return Reply(
        f"{verb} {agent}{why}: {len(sent.prompt.text)} characters{removed}",
        buttons=((Button("Tail", f"/tail {agent}"),),),
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
        "type a prompt into an agent",
        Role.OPERATOR,
        Send,
        _send,
        _do_send,
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
