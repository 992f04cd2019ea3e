"""Commands about the farm as a whole: help, status, ping, projects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from farmbot.bot.authz import Person
from farmbot.bot.commands.base import Context, Spec, no_args, one_name, words
from farmbot.bot.commands.gates import gate_buttons
from farmbot.messages import Incoming, Reply, ago
from farmbot.models import AgentState, NodeHealth, NodeState, Role


@dataclass(frozen=True, slots=True)
class Help:
    """``/help``: what farmbot can do, or one command's usage."""

    topic: str | None = None


@dataclass(frozen=True, slots=True)
class Status:
    """``/status``: agents, gates and projects at a glance."""


@dataclass(frozen=True, slots=True)
class Ping:
    """``/ping``: whether farmbot hears the person here, and how fast it answers."""

    origin: Incoming | None = field(default=None, compare=False)  # the message to time


@dataclass(frozen=True, slots=True)
class Projects:
    """``/projects``: the configured projects."""


@dataclass(frozen=True, slots=True)
class Activate:
    """``/activate``: allow spawning in a project."""

    project: str


@dataclass(frozen=True, slots=True)
class Deactivate:
    """``/deactivate``: stop new spawns in a project."""

    project: str


def _help(args: str, usage: str) -> Help:
    found = words(args, usage, 0, 1)
    return Help(found[0].lstrip("/").lower() if found else None)


async def _show_help(command: Help, person: Person, ctx: Context) -> Reply:
    if command.topic is not None:
        spec = ctx.specs.get(command.topic)
        if spec is None:
            return Reply(f"no command '/{command.topic}'; /help lists them", ok=False)
        return Reply(f"{spec.usage}\n{spec.summary} (needs {spec.role})")
    lines = [f"farmbot commands (you are {person.name}, {person.role}):"]
    for spec in ctx.specs.values():
        mark = "" if person.role >= spec.role else f"  [{spec.role} only]"
        lines.append(f"{spec.usage} — {spec.summary}{mark}")
    return Reply("\n".join(lines))


async def _status(command: Status, person: Person, ctx: Context) -> Reply:
    agents = await ctx.supervisor.list_agents()
    nodes = await ctx.nodes.states() if ctx.nodes is not None else []
    unheard = {n.name: n for n in nodes if n.health is not NodeHealth.UP}
    live = [a for a in agents if a.state.is_live and a.node not in unheard]
    gates = await ctx.gates.pending()
    counts: dict[str, int] = {}
    for agent in live:
        counts[agent.state.value] = counts.get(agent.state.value, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none running"
    lines = [f"agents: {summary}", f"pending gates: {len(gates)}"]
    if nodes:
        lines.insert(0, "nodes: " + ", ".join(_node_line(n) for n in nodes))
    attention = [a for a in live if a.state in (AgentState.WAITING, AgentState.STUCK)]
    attention += [a for a in agents if a.state is AgentState.DEAD]
    attention += [a for a in agents if a.state.is_live and a.node in unheard]
    for agent in attention:
        reason = "" if agent.node in unheard else f" — {agent.state_reason}"
        lines.append(f"• {agent.id}: {ctx.state_of(agent, unheard)}{reason}")
    return Reply("\n".join(lines), buttons=tuple(gate_buttons(g) for g in gates[:5]))


async def _ping(command: Ping, person: Person, ctx: Context) -> Reply:
    """Which interface answers, how long the message took to this answer, who hears."""
    msg, now = command.origin, ctx.clock()
    where = msg.platform if msg is not None else "?"
    timed: list[str] = []
    if msg is not None and msg.sent_at is not None:
        coarse = " (its clock counts whole seconds)" if msg.precision >= 1 else ""
        timed.append(f"{_ms(now - msg.sent_at)} from your message to this answer{coarse}")
    elif msg is not None and msg.platform not in ("web", "cli", "scheduler"):
        timed.append(f"{where} gives no time for this kind of message")
    if msg is not None and msg.received_at is not None:
        timed.append(f"{_ms(now - msg.received_at)} of it inside farmbot")
    lines = [f"pong from {where}" + (": " + "; ".join(timed) if timed else "")]
    for name, hearing in sorted(ctx.hearing().items()):
        state = "hears" if hearing.ok else "DOES NOT HEAR"
        lines.append(f"{name} {state}: {hearing.detail}")
    return Reply("\n".join(lines))


def _ms(seconds: float) -> str:
    seconds = max(0.0, seconds)
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else ago(seconds)


def _node_line(state: NodeState) -> str:
    """ "gpu (leader, 2 agents)", "laptop (node down, quiet 40s, 3 agents)"."""
    notes = []
    if state.leader:
        notes.append("leader")
    if state.here:
        notes.append("here")
    if state.health is not NodeHealth.UP:
        notes.append(f"node {state.health.value}, quiet {ago(state.node.quiet)}")
    notes.append(f"{state.agents} agent{'' if state.agents == 1 else 's'}")
    return f"{state.name} ({', '.join(notes)})"


async def _projects(command: Projects, person: Person, ctx: Context) -> Reply:
    projects = await ctx.supervisor.projects()
    if not projects:
        return Reply("no projects are configured")
    lines = [
        f"{p.name}: {'active' if p.active else 'deactivated'}, {p.path}"
        + ("" if p.is_git else " (not a git repository)")
        for p in projects
    ]
    return Reply("\n".join(lines))


async def _set_active(command: Activate | Deactivate, person: Person, ctx: Context) -> Reply:
    active = isinstance(command, Activate)
    project = await ctx.supervisor.set_active(command.project, active)
    note = "" if active else "; running agents keep running (/kill them to stop them)"
    return Reply(f"project {project.name} is {'active' if active else 'deactivated'}{note}")


SPECS: tuple[Spec[Any], ...] = (
    Spec("help", "/help [command]", "what farmbot can do", Role.VIEWER, Help, _help, _show_help),
    Spec(
        "status",
        "/status",
        "agents, gates and projects at a glance",
        Role.VIEWER,
        Status,
        no_args(Status),
        _status,
    ),
    Spec(
        "ping",
        "/ping",
        "does farmbot hear you here, and how fast does it answer",
        Role.VIEWER,
        Ping,
        no_args(Ping),
        _ping,
    ),
    Spec(
        "projects",
        "/projects",
        "the configured projects",
        Role.VIEWER,
        Projects,
        no_args(Projects),
        _projects,
    ),
    Spec(
        "activate",
        "/activate <project>",
        "allow spawning in a project",
        Role.ADMIN,
        Activate,
        one_name("project", Activate),
        _set_active,
    ),
    Spec(
        "deactivate",
        "/deactivate <project>",
        "stop new spawns in a project",
        Role.ADMIN,
        Deactivate,
        one_name("project", Deactivate),
        _set_active,
    ),
)
