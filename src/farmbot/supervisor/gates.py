"""Gates: questions only a human may answer, stored so they outlive a restart.

A gate is decided once (compare-and-set in storage), by a named person: approved,
approved for the rest of the agent's session, or rejected with an optional reason. The
decision is applied by the resolver registered for its kind -- e.g. permission gates
answer through the agent CLI's own hook, or type the answer into its pane. A gate whose
question is gone is stale.

Only people decide gates. The one way in is ``decide``, called by the ``/approve`` and
``/reject`` commands after the router identified and authorized a person (an agent's
hook token reaches the hook endpoint only, which never decides anything). ``[gates]``
narrows it further: ``approvers`` names who may decide, ``interfaces`` where from -- e.g.
not the web console and CLI, whose local key an agent running as farmbot's own Unix user
can read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from farmbot.bus import EventBus
from farmbot.config.schema import GatesConfig
from farmbot.errors import AccessDenied, Conflict, NotFound
from farmbot.events import GateDecided, GateOpened, GateStale
from farmbot.models import Decision, Gate, GateStatus
from farmbot.storage.gates import GateStore


class GateResolver(Protocol):
    """Applies decisions for one kind of gate."""

    async def stale_reason(self, gate: Gate) -> str | None:
        """Why the gate can no longer be decided, or None while it still can."""

    async def apply(self, gate: Gate, decision: Decision) -> str:
        """Carry out the recorded decision; return a short description of what was done.

        What cannot be carried out at all is ``refuses``'s to say, before the decision is
        recorded: by the time ``apply`` runs, the gate is decided.
        """

    async def refuses(self, gate: Gate, decision: Decision) -> str | None:
        """Why this decision cannot be carried out at all (e.g. an agent CLI with no
        "approve for this session"), checked before anything is recorded: the gate then
        stays pending. Reads what it needs itself, never a cache that may be cold."""


class Gates:
    def __init__(
        self,
        store: GateStore,
        bus: EventBus,
        clock: Callable[[], float] = time.time,
        policy: GatesConfig | None = None,
    ) -> None:
        self._store = store
        self._bus = bus
        self._clock = clock
        self._policy = policy or GatesConfig()
        self._resolvers: dict[str, GateResolver] = {}

    def register(self, kind: str, resolver: GateResolver) -> None:
        self._resolvers[kind] = resolver

    async def open(
        self,
        kind: str,
        title: str,
        *,
        agent_id: str | None = None,
        project: str | None = None,
        detail: str = "",
        payload: dict[str, Any] | None = None,
        where: str = "",
    ) -> Gate:
        gate = await self._store.add_gate(
            kind, agent_id, project, title, detail, payload or {}, self._clock()
        )
        await self._bus.publish(
            GateOpened(
                agent_id=agent_id,
                project=project,
                gate_id=gate.id,
                gate_kind=kind,
                title=title,
                detail=detail,
                where=where,
            )
        )
        return gate

    async def get(self, gate_id: int) -> Gate:
        gate = await self._store.get_gate(gate_id)
        if gate is None:
            raise NotFound(f"unknown gate {gate_id}; /gates lists the pending ones")
        return gate

    async def find(self, gate_id: int) -> Gate | None:
        return await self._store.get_gate(gate_id)

    async def pending(self) -> list[Gate]:
        return await self._store.list_gates(GateStatus.PENDING)

    def refuse_decider(self, by: str, via: str) -> None:
        """Raise ``AccessDenied`` unless ``by``, coming through ``via``, may decide gates."""
        policy = self._policy
        if policy.approvers and by not in policy.approvers:
            raise AccessDenied(
                f"{by} may not decide gates: [gates] approvers are {', '.join(policy.approvers)}"
            )
        if policy.interfaces and via not in policy.interfaces:
            raise AccessDenied(
                f"gates cannot be decided through {via or 'this interface'}: "
                f"[gates] interfaces are {', '.join(policy.interfaces)}"
            )

    async def decide(
        self, gate_id: int, decision: Decision, by: str, *, via: str = ""
    ) -> tuple[Gate, str]:
        """Decide a pending gate as person ``by`` (through interface ``via``); returns it and
        what was done about it."""
        self.refuse_decider(by, via)
        gate = await self.get(gate_id)
        if gate.status is not GateStatus.PENDING:
            raise Conflict(_already(gate))
        resolver = self._resolvers.get(gate.kind)
        if resolver is not None:
            refused = await resolver.refuses(gate, decision)
            if refused is not None:
                raise Conflict(f"gate {gate_id}: {refused}")
            stale = await resolver.stale_reason(gate)
            if stale is not None:
                await self.mark_stale(gate, stale)
                raise Conflict(f"gate {gate_id} is stale: {stale}")
        status = GateStatus.APPROVED if decision.approved else GateStatus.REJECTED
        decided = await self._store.decide_gate(
            gate_id, status, by, decision.reason, self._clock(), scope=decision.scope
        )
        if decided is None:
            raise Conflict(_already(await self.get(gate_id)))
        done = await resolver.apply(decided, decision) if resolver is not None else ""
        await self._bus.publish(
            GateDecided(
                agent_id=gate.agent_id,
                project=gate.project,
                gate_id=gate_id,
                approved=decision.approved,
                by=by,
                reason=decision.reason,
                done=done,
                scope=decision.scope,
            )
        )
        return decided, done

    async def mark_stale(self, gate: Gate, reason: str) -> None:
        if await self._store.decide_gate(gate.id, GateStatus.STALE, None, reason, self._clock()):
            await self._bus.publish(
                GateStale(
                    agent_id=gate.agent_id, project=gate.project, gate_id=gate.id, reason=reason
                )
            )


def _already(gate: Gate) -> str:
    if gate.status is GateStatus.STALE:
        return f"gate {gate.id} is stale: {gate.reason or 'its question is gone'}"
    when = time.strftime("%H:%M UTC", time.gmtime(gate.decided_at or 0))
    how = " for the session" if gate.scope == "session" else ""
    return f"gate {gate.id} was already {gate.status.value}{how} by {gate.decided_by} at {when}"
