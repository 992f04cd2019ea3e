"""Command handlers: run a parsed, authorized command and return a Reply value.

Handlers never talk to a chat platform; they call the supervisor and describe the
result. Buttons they attach are commands too.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from farmbot.alerts import Notifier
from farmbot.bot import commands as c
from farmbot.bot.authz import Person
from farmbot.errors import Conflict, NotFound
from farmbot.messages import Button, Decided, Reply, ago, utc_time
from farmbot.models import Agent, AgentKind, AgentState, Gate
from farmbot.storage.outbox import OutboxStore
from farmbot.supervisor.agents import Supervisor
from farmbot.supervisor.gates import Gates

ALERTS_SHOWN = 10
DEAD_SHOWN = 10


def agent_buttons(agent_id: str) -> tuple[Button, ...]:
    return (Button("Tail", f"/tail {agent_id}"), Button("Kill", f"/kill {agent_id}", "danger"))


def gate_buttons(gate: Gate) -> tuple[Button, ...]:
    return (
        Button("Approve", f"/approve {gate.id}", "primary"),
        Button("Reject", f"/reject {gate.id}", "danger"),
    )


class CommandHandlers:
    """Runs each parsed command against the supervisor, gates and alerts."""

    def __init__(
        self,
        supervisor: Supervisor,
        gates: Gates,
        clock: Callable[[], float] = time.time,
        *,
        outbox: OutboxStore | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self._sup = supervisor
        self._gates = gates
        self._clock = clock
        self._store = outbox  # alerts and the outbox
        self._notifier = notifier

    async def run(self, command: c.Command, person: Person) -> Reply:
        match command:
            case c.Help(topic):
                return self._help(topic, person)
            case c.Status():
                return await self._status()
            case c.Projects():
                return await self._projects()
            case c.Activate(project) | c.Deactivate(project):
                active = isinstance(command, c.Activate)
                p = await self._sup.set_active(project, active)
                note = "" if active else "; running agents keep running (/kill them to stop them)"
                return Reply(f"project {p.name} is {'active' if active else 'deactivated'}{note}")
            case c.Spawn(kind, number, project):
                return await self._spawn(kind, number, project, person)
            case c.Agents():
                return await self._agents()
            case c.Send(agent, text):
                sent = await self._sup.send(agent, text, f"{person.name}")
                verb = "queued for" if sent.queued else "sent to"
                why = " (it is not ready yet; it gets it as soon as it is)" if sent.queued else ""
                removed = (
                    f"; removed {sent.removed} terminal control characters" if sent.removed else ""
                )
                return Reply(
                    f"{verb} {agent}{why}: {len(sent.prompt.text)} characters{removed}",
                    buttons=((Button("Tail", f"/tail {agent}"),),),
                )
            case c.Tail(agent, lines):
                found = await self._sup.get(agent)
                shown = await self._sup.tail(agent, lines)
                return Reply(
                    f"{agent} ({self._state(found)}): last {len(shown)} lines",
                    pre="\n".join(shown) or "(the screen is empty)",
                    buttons=((Button("Refresh", f"/tail {agent} {lines}"),),),
                )
            case c.Kill(agent, remove):
                stopped, dropped = await self._sup.kill(agent, person.name, remove=remove)
                notes = []
                if stopped.kind is AgentKind.BUILDER:
                    notes.append(
                        "worktree removed (its branch is kept)"
                        if remove
                        else f"worktree kept at {stopped.workdir}"
                    )
                if dropped:
                    notes.append(f"dropped {dropped} queued prompts")
                extra = f"; {'; '.join(notes)}" if notes else ""
                return Reply(f"stopped {agent} on purpose{extra}")
            case c.Gates():
                return await self._list_gates()
            case c.Approve(gate_id):
                return await self._decide(gate_id, True, person, "")
            case c.Reject(gate_id, reason):
                return await self._decide(gate_id, False, person, reason)
            case c.Alerts():
                return await self._alerts()
            case c.Retry(outbox_id):
                return await self._retry(outbox_id)
        raise AssertionError(f"unhandled command {command!r}")

    def _help(self, topic: str | None, person: Person) -> Reply:
        if topic is not None:
            spec = c.SPECS.get(topic)
            if spec is None:
                return Reply(f"no command '/{topic}'; /help lists them", ok=False)
            return Reply(f"{spec.usage}\n{spec.summary} (needs {spec.role})")
        lines = [f"farmbot commands (you are {person.name}, {person.role}):"]
        for spec in c.SPECS.values():
            mark = "" if person.role >= spec.role else f"  [{spec.role} only]"
            lines.append(f"{spec.usage} — {spec.summary}{mark}")
        return Reply("\n".join(lines))

    def _state(self, agent: Agent) -> str:
        since = ago(self._clock() - agent.state_since)
        return f"{agent.state.value} for {since}"

    async def _status(self) -> Reply:
        agents = await self._sup.list_agents()
        live = [a for a in agents if a.state.is_live]
        gates = await self._gates.pending()
        counts: dict[str, int] = {}
        for agent in live:
            counts[agent.state.value] = counts.get(agent.state.value, 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none running"
        lines = [f"agents: {summary}", f"pending gates: {len(gates)}"]
        attention = [a for a in live if a.state in (AgentState.WAITING, AgentState.STUCK)]
        attention += [a for a in agents if a.state is AgentState.DEAD]
        for agent in attention:
            lines.append(f"• {agent.id}: {self._state(agent)} — {agent.state_reason}")
        buttons = tuple(gate_buttons(g) for g in gates[:5])
        return Reply("\n".join(lines), buttons=buttons)

    async def _projects(self) -> Reply:
        projects = await self._sup.projects()
        if not projects:
            return Reply("no projects are configured")
        lines = [
            f"{p.name}: {'active' if p.active else 'deactivated'}, {p.path}"
            + ("" if p.is_git else " (not a git repository)")
            for p in projects
        ]
        return Reply("\n".join(lines))

    async def _spawn(
        self, kind: AgentKind, number: int | None, project: str | None, person: Person
    ) -> Reply:
        agent = await self._sup.spawn(kind, number, project, person.name)
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

    async def _agents(self) -> Reply:
        agents = await self._sup.list_agents()
        if not agents:
            return Reply("no agents yet; /spawn builder <issue> starts one")
        lines = [
            f"{a.id} [{a.project}] {self._state(a)}"
            + (f" — {a.state_reason}" if a.state in (AgentState.DEAD, AgentState.STUCK) else "")
            for a in agents
        ]
        buttons = tuple(agent_buttons(a.id) for a in agents if a.state.is_live)[:8]
        return Reply("\n".join(lines), buttons=buttons)

    async def _list_gates(self) -> Reply:
        gates = await self._gates.pending()
        if not gates:
            return Reply("no pending gates")
        lines = []
        for gate in gates:
            who = f" [{gate.agent_id}]" if gate.agent_id else ""
            lines.append(
                f"#{gate.id}{who} {gate.title} (open {ago(self._clock() - gate.created_at)})"
            )
        return Reply("\n".join(lines), buttons=tuple(gate_buttons(g) for g in gates[:10]))

    async def _decide(self, gate_id: int, approve: bool, person: Person, reason: str) -> Reply:
        gate, done = await self._gates.decide(gate_id, approve, person.name, reason)
        verb = "approved" if approve else "rejected"
        because = f" ({reason})" if reason else ""
        then = f"; {done}" if done else ""
        when = utc_time(gate.decided_at or self._clock())
        return Reply(
            f"gate {gate.id} {verb} by {person.name} at {when}{because}: {gate.title}{then}",
            decided=Decided(gate.id, approve, person.name, gate.decided_at or self._clock()),
        )

    def _outbox(self) -> OutboxStore:
        if self._store is None:
            raise Conflict("alerts are not set up in this farmbot")
        return self._store

    async def _alerts(self) -> Reply:
        store = self._outbox()
        now = self._clock()
        counts = await store.outbox_summary()
        lines = ["outbox: " + ", ".join(f"{n} {status}" for status, n in counts.items())]
        alerts = await store.recent_alerts(ALERTS_SHOWN)
        lines.append("recent alerts:" if alerts else "no alerts yet")
        for alert in alerts:
            lines.append(f"• [{alert.severity}] {alert.title} ({ago(now - alert.created_at)} ago)")
        dead = await store.dead_letters(DEAD_SHOWN)
        if dead:
            lines.append("dead letters (not delivered; /retry sends one again):")
        for item in dead:
            lines.append(
                f"• #{item.id} to {item.interface}:{item.channel}: {item.alert.title}"
                f" — {item.last_error}"
            )
        buttons = tuple(
            (Button(f"Retry #{item.id}", f"/retry {item.id}", "primary"),) for item in dead
        )
        return Reply("\n".join(lines), buttons=buttons)

    async def _retry(self, outbox_id: int) -> Reply:
        store = self._outbox()
        item = await store.retry_dead(outbox_id, self._clock())
        if item is None:
            found = await store.get_outbox(outbox_id)
            if found is None:
                raise NotFound(f"no dead letter {outbox_id}; /alerts lists them")
            raise Conflict(f"{outbox_id} is not a dead letter: it is {found.status.value}")
        if self._notifier is not None:
            self._notifier.notify_new()
        return Reply(
            f"dead letter {item.id} goes to {item.interface}:{item.channel} again:"
            f" {item.alert.title}"
        )
