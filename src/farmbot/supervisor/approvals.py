"""Approvals for the rest of a session that farmbot keeps itself, for CLIs whose
permission hook can allow or deny but cannot grant a rule (Codex).

When a person approves a request "for the session" and the CLI's hook answers it, the
hook can only say allow; the gate is recorded approved with scope ``session``, and this
keeps its ``permissions.session_key``. A later ``PermissionRequest`` of the same agent with
the same key -- the same CLI session (``session_id``), the same tool, the same input
exactly (a Bash command matches only itself, never a longer one that starts like it) --
is answered allow at once: no gate, nobody asked, one audit row saying whose approval
allowed it. A new session of the agent's CLI (it was restarted) has a new ``session_id``,
so nothing carries over.

The keys are read from the approved gates once per agent (so a daemon restart keeps them)
and added to as people decide; a deliberate stop of the agent forgets them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from farmbot.config.schema import AgentProfile
from farmbot.errors import StorageError
from farmbot.models import Agent, Decision, Gate
from farmbot.storage.audit import AuditLog
from farmbot.supervisor import permissions
from farmbot.supervisor.gates import Gates

log = logging.getLogger(__name__)

PLATFORM = "farmbot"  # the audit rows' platform and user: farmbot allowed it
USER = "session-approval"


class SessionApprovals:
    """The session approvals farmbot answers for, per agent."""

    def __init__(
        self,
        gates: Gates,
        audit: AuditLog | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._gates = gates
        self._audit = audit
        self._clock = clock
        self._by_agent: dict[str, dict[str, Gate]] = {}  # agent -> key -> the approving gate
        self.allowed = 0

    def __repr__(self) -> str:
        kept = sum(len(keys) for keys in self._by_agent.values())
        return f"<SessionApprovals agents={len(self._by_agent)} kept={kept} allowed={self.allowed}>"

    async def answer(
        self, agent: Agent, profile: AgentProfile | None, request: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The hook's allow for a request already approved for the session, when farmbot
        answers for the CLI (its hook cannot take a rule); else None: a person decides."""
        if profile is None or profile.hook_grants_rules:
            return None
        gate = await self.covering(agent.id, request)
        if gate is None:
            return None
        await self.allow(agent, request, gate)
        return permissions.hook_answer(Decision(True), request, by="", grants_rules=False)

    async def covering(self, agent_id: str, request: dict[str, Any]) -> Gate | None:
        """The gate whose session approval covers ``request``, if one does."""
        key = permissions.session_key(request)
        if key is None:
            return None
        return (await self._keys(agent_id)).get(key)

    def remember(self, gate: Gate) -> None:
        """A gate was just approved for the session (once loaded, keep it up to date)."""
        key = permissions.session_key(gate.payload)
        if key is not None and gate.agent_id in self._by_agent:
            self._by_agent[gate.agent_id].setdefault(key, gate)

    def forget(self, agent_id: str) -> None:
        """The agent stopped: its session, and what was approved for it, are over."""
        self._by_agent.pop(agent_id, None)

    async def allow(self, agent: Agent, request: dict[str, Any], gate: Gate) -> None:
        """Record that ``request`` was allowed on the strength of ``gate``."""
        self.allowed += 1
        if self._audit is None:
            return
        summary, _ = permissions.describe(request)
        detail = (
            f"approved for {agent.id}'s session by {gate.decided_by or 'someone'} (gate {gate.id})"
        )
        try:
            await self._audit.add_audit(
                platform=PLATFORM,
                user_id=USER,
                user_name=gate.decided_by,
                chat=agent.id,
                command=f"allow {summary}",
                outcome="ok",
                detail=detail,
                now=self._clock(),
            )
        except StorageError as exc:  # the CLI is waiting: its answer must not depend on it
            log.error("audit row lost (%s allowed %s): %s", agent.id, summary, exc)

    async def _keys(self, agent_id: str) -> dict[str, Gate]:
        keys = self._by_agent.get(agent_id)
        if keys is None:
            keys = {}
            for gate in await self._gates.approved_for_session(agent_id):
                key = permissions.session_key(gate.payload)
                if key is not None:
                    keys.setdefault(key, gate)
            self._by_agent[agent_id] = keys
        return keys
