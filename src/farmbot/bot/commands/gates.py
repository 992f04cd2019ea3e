"""Commands about gates: list the questions waiting for a human, approve, reject."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from farmbot.bot.authz import Person
from farmbot.bot.commands.base import Context, Spec, no_args, ref, words
from farmbot.errors import UsageError
from farmbot.messages import Button, Decided, Reply, ago, reject_button, utc_time
from farmbot.models import Decision, Gate, Role


@dataclass(frozen=True, slots=True)
class Gates:
    """``/gates``: the questions waiting for a person."""


@dataclass(frozen=True, slots=True)
class Approve:
    """``/approve``: approve a gate."""

    gate: int
    session: bool = False  # and its like, for the rest of the agent's session


@dataclass(frozen=True, slots=True)
class Reject:
    """``/reject``: reject a gate, with a reason."""

    gate: int
    reason: str = ""


def gate_buttons(gate: Gate) -> tuple[Button, ...]:
    """One press each: approve (for an agent's question also: for its session), reject
    (which asks why, where the interface can)."""
    row: tuple[Button, ...] = (Button("Approve", f"/approve {gate.id}", "primary"),)
    if gate.kind == "permission":
        row += (Button("For session", f"/approve {gate.id} --session"),)
    row += (reject_button(gate.id),)
    if gate.kind == "milestone":  # the autopilot's: what would land
        row += (Button("Diff", f"/gate diff {gate.id}"),)
    return row


def _approve(args: str, usage: str) -> Approve:
    found = words(args, usage, 1, 2)
    session = False
    if len(found) == 2:
        if found[1] not in ("--session", "-s"):
            raise UsageError(f"unknown option {found[1]!r}", usage)
        session = True
    return Approve(ref(found[0], "gate", "/gates", usage), session)


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
        where = gate.payload.get("where")
        line = f"#{gate.id}{who} {gate.title} (open {ago(ctx.clock() - gate.created_at)})"
        lines.append(f"{line}\n    in {where}" if isinstance(where, str) and where else line)
    return Reply("\n".join(lines), buttons=tuple(gate_buttons(g) for g in gates[:10]))


async def decide(gate_id: int, decision: Decision, person: Person, ctx: Context) -> Reply:
    gate, done = await ctx.gates.decide(gate_id, decision, person.name, via=person.via)
    reason = decision.reason
    because = f" ({reason})" if reason else ""
    then = f"; {done}" if done else ""
    at = gate.decided_at or ctx.clock()
    return Reply(
        f"gate {gate.id} {decision.verb} by {person.name} at {utc_time(at)}{because}:"
        f" {gate.title}{then}",
        decided=Decided(gate.id, decision.approved, person.name, at),
    )


async def _approve_it(command: Approve, person: Person, ctx: Context) -> Reply:
    return await decide(command.gate, Decision(True, session=command.session), person, ctx)


async def _reject_it(command: Reject, person: Person, ctx: Context) -> Reply:
    return await decide(command.gate, Decision(False, reason=command.reason), person, ctx)


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
