"""Commands about gates: list the questions waiting for a human, approve, reject."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from farmbot.bot.authz import Person
from farmbot.bot.commands.base import Context, Spec, no_args, ref, words
from farmbot.errors import UsageError
from farmbot.messages import Button, Decided, Reply, ago, utc_time
from farmbot.models import Gate, Role


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


def gate_buttons(gate: Gate) -> tuple[Button, ...]:
    row: tuple[Button, ...] = (
        Button("Approve", f"/approve {gate.id}", "primary"),
        Button("Reject", f"/reject {gate.id}", "danger"),
    )
    if gate.kind == "milestone":  # the autopilot's: what would land
        row += (Button("Diff", f"/gate diff {gate.id}"),)
    return row


def _approve(args: str, usage: str) -> Approve:
    [gate] = words(args, usage, 1, 1)
    return Approve(ref(gate, "gate", "/gates", usage))


def _reject(args: str, usage: str) -> Reject:
    found = args.split(maxsplit=1)
    if not found:
        raise UsageError("missing arguments", usage)
    reason = found[1].strip() if len(found) > 1 else ""
    return Reject(ref(found[0], "gate", "/gates", usage), reason)


async def _list(command: Gates, person: Person, ctx: Context) -> Reply:
    gates = await ctx.gates.pending()
    if not gates:
        return Reply("no pending gates")
    lines = []
    for gate in gates:
        who = f" [{gate.agent_id}]" if gate.agent_id else ""
        lines.append(f"#{gate.id}{who} {gate.title} (open {ago(ctx.clock() - gate.created_at)})")
    return Reply("\n".join(lines), buttons=tuple(gate_buttons(g) for g in gates[:10]))


async def decide(gate_id: int, approve: bool, person: Person, reason: str, ctx: Context) -> Reply:
    gate, done = await ctx.gates.decide(gate_id, approve, person.name, reason)
    verb = "approved" if approve else "rejected"
    because = f" ({reason})" if reason else ""
    then = f"; {done}" if done else ""
    at = gate.decided_at or ctx.clock()
    return Reply(
        f"gate {gate.id} {verb} by {person.name} at {utc_time(at)}{because}: {gate.title}{then}",
        decided=Decided(gate.id, approve, person.name, at),
    )


async def _approve_it(command: Approve, person: Person, ctx: Context) -> Reply:
    return await decide(command.gate, True, person, "", ctx)


async def _reject_it(command: Reject, person: Person, ctx: Context) -> Reply:
    return await decide(command.gate, False, person, command.reason, ctx)


SPECS: tuple[Spec[Any], ...] = (
    Spec(
        "gates",
        "/gates",
        "questions waiting for a human",
        Role.VIEWER,
        Gates,
        no_args(Gates),
        _list,
    ),
    Spec(
        "approve", "/approve <gate>", "approve a gate", Role.ADMIN, Approve, _approve, _approve_it
    ),
    Spec(
        "reject",
        "/reject <gate> [reason]",
        "reject a gate",
        Role.ADMIN,
        Reject,
        _reject,
        _reject_it,
    ),
)
