"""The autopilot across nodes: each of its steps carried out on the node it belongs to.

The autopilot runs on the leader and decides there, under one lock; its builders run on
the nodes holding their projects. ``RoutedBuilders`` is its ``Builders`` on a shared
database: a new builder goes to the least-loaded node holding the project (the rule
``/spawn`` follows, routing.least_loaded) -- or back to the node where the task's branch
is -- and every step that changes something (start a builder, verify, land, deploy,
retire) becomes a routed row (storage/routed.py, kind 'step') that the target claims
like a routed command (cluster/worker.py) and ``StepRunner`` carries out there, audited
as "autopilot". Reading a checkout on another node is a row too; on this node it is read
directly.

Nothing is done twice across a change of leader. A step carries the key of the recorded
state it carries out (the task's entry into its state, a wave's deploy number): the next
leader asks under the same key and is given the step already queued -- waiting for it if
it runs, its result if it ran. A step cut short by its node's death (the claim's lease
ran out) is answered "interrupted" without being run again, by the node's next life or by
the waiting leader; a step that looks before it acts (``Step.repeatable``) then runs
afresh as the key's next generation, and the others (a land command, a deploy) are
resolved by the autopilot. A step for a node that is not heard from, or that nobody took
within ``answer_timeout``, is not done at all (``NodeUnreachable``).

The steps' module is imported where a step is encoded or decoded: one node on SQLite
builds these but never routes a step, and does not load it.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from farmbot.cluster.nodes import NodeDirectory
from farmbot.cluster.routing import Replies, holders, least_loaded, quiet, unheld
from farmbot.config.node import NodeConfig
from farmbot.errors import CommandError, NodeUnreachable, StepInterrupted, TmuxError
from farmbot.models import NodeHealth, NodeState, RoutedCommand
from farmbot.storage import Storage
from farmbot.storage.routed import AUTOPILOT
from farmbot.supervisor.autopilot.builders import Builders, LocalBuilders
from farmbot.supervisor.autopilot.repo import GitError

if TYPE_CHECKING:
    from farmbot.supervisor.autopilot.steps import Step

log = logging.getLogger(__name__)

R = TypeVar("R")

# How an error raised on the target is raised again on the origin.
_ERRORS: dict[str, type[Exception]] = {
    "git": GitError,
    "tmux": TmuxError,
    "unreachable": NodeUnreachable,
    "command": CommandError,
}


class RoutedBuilders(Builders):
    """The autopilot's builders on a farm of nodes (see the module docstring)."""

    durable = True

    def __init__(
        self,
        config: NodeConfig,
        local: LocalBuilders,
        storage: Storage,
        directory: NodeDirectory,
        replies: Replies,
        claim: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.here = config.name
        self._config = config
        self._local = local
        self._routed = storage.routed
        self._directory = directory
        self._replies = replies
        self._claim = claim  # this life of the node, when it takes a step over
        self._clock = clock
        self.routed = 0
        self.taken_over = 0
        self.again = 0

    def __repr__(self) -> str:
        return (
            f"<RoutedBuilders {self.here!r} routed={self.routed} taken_over={self.taken_over}"
            f" again={self.again}>"
        )

    def statistics(self) -> dict[str, int | float | str]:
        return {"routed": self.routed, "taken_over": self.taken_over, "again": self.again}

    async def _states(self) -> dict[str, NodeState]:
        return {s.name: s for s in await self._directory.states()}

    async def place(self, project: str, home: str | None = None) -> str:
        states = await self._states()
        if home and home in holders(project, states) and states[home].health is NodeHealth.UP:
            return home
        chosen = least_loaded(project, states, self.here)
        if chosen is None:
            raise NodeUnreachable(unheld(project, states))
        return chosen

    async def holder(self, project: str) -> str:
        states = await self._states()
        up = [n for n in holders(project, states) if states[n].health is NodeHealth.UP]
        if not up:
            raise NodeUnreachable(unheld(project, states))
        return self.here if self.here in up else up[0]

    async def up(self) -> frozenset[str] | None:
        states = await self._states()
        return frozenset(n for n, s in states.items() if s.health is NodeHealth.UP)

    async def run(
        self, node: str, step: Step[R], key: str | None = None, *, again: bool = False
    ) -> R:
        node = node or await self.holder(step.project)
        try:
            return await self._run(node, step, key, again)
        except StepInterrupted as exc:
            if again or not step.repeatable:
                raise
            # It looks at what is there before it acts: run it afresh.
            log.warning("autopilot: %s was cut short (%s); running it again", step.describe(), exc)
            self.again += 1
            return await self._run(node, step, key, True)

    async def _run(self, node: str, step: Step[R], key: str | None, again: bool) -> R:
        from farmbot.supervisor.autopilot.steps import encode_step

        if key is None and node == self.here:
            return await self._local.run(node, step)  # a read here needs no row
        if key is not None:
            found = await self._routed.step_for(key)
            if found is not None and (
                found.status in ("pending", "claimed") or (found.status == "done" and not again)
            ):
                return _result(step, await self._answer(found, step))
        state = (await self._states()).get(node)
        if state is None or state.health is not NodeHealth.UP:
            why = "it has not started" if state is None else quiet(state)
            raise NodeUnreachable(
                f"node {node} is not heard from ({why}), so '{step.describe()}' waits for it"
            )
        row = await self._routed.submit_step(
            origin=self.here,
            target=node,
            key=key,
            text=json.dumps(encode_step(step)),
            wait=self._config.answer_timeout,
            now=self._clock(),
            again=again,
        )
        self.routed += 1
        log.info("autopilot: %s on node %s (routed step %d)", step.describe(), node, row.id)
        return _result(step, await self._answer(row, step))

    async def _answer(self, row: RoutedCommand, step: Step[Any]) -> dict[str, Any]:
        """The step's reply; the step answered as interrupted when its node died with it."""
        routed, timeout = self._routed, self._config.answer_timeout
        deadline = time.monotonic() + timeout
        while True:
            found = await self._replies.wait(row, self._replies.poll)
            if found.status == "done" and found.reply is not None:
                return found.reply
            if found.status == "cancelled":
                raise NodeUnreachable(f"node {found.target} never took '{step.describe()}'")
            if found.status == "claimed":
                taken = await routed.take_over(row.id, self._claim, self._config.lease)
                if taken is not None:
                    self.taken_over += 1
                    reply = {
                        "interrupted": f"node {found.target} stopped while carrying it out"
                        " (its claim expired)"
                    }
                    await routed.answer_command(row.id, self._claim, reply, self._clock())
                    return reply
            elif time.monotonic() > deadline and await routed.cancel_command(row.id):
                raise NodeUnreachable(
                    f"node {found.target} did not take '{step.describe()}' in {timeout:g} s;"
                    " it was not done"
                )


def _result(step: Step[R], reply: dict[str, Any]) -> R:
    if "interrupted" in reply:
        raise StepInterrupted(f"'{step.describe()}' was cut short: {reply['interrupted']}")
    if "error" in reply:
        raise _ERRORS.get(str(reply.get("kind")), CommandError)(str(reply["error"]))
    return step.decode(reply.get("result"))


class StepRunner:
    """A node's side of the autopilot's steps: carries out those routed to it, here."""

    def __init__(
        self,
        node: str,
        local: LocalBuilders,
        storage: Storage,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._node = node
        self._local = local
        self._audit = storage.audit
        self._clock = clock
        self.ran = 0
        self.interrupted = 0

    def __repr__(self) -> str:
        return f"<StepRunner ran={self.ran} interrupted={self.interrupted}>"

    async def __call__(self, command: RoutedCommand) -> dict[str, Any]:
        """Carry out one claimed step; its reply (a result, an error, or interrupted)."""
        from farmbot.supervisor.autopilot.steps import decode_step

        try:
            step = decode_step(json.loads(command.text))
        except (ValueError, KeyError, TypeError) as exc:
            return {"error": f"node {self._node} cannot read the step: {exc}", "kind": "command"}
        if command.attempts > 1:  # this node died carrying it out: resolved, not repeated
            self.interrupted += 1
            why = f"node {self._node} stopped while carrying it out"
            await self._record(step, command, "interrupted", why)
            return {"interrupted": why}
        reply: dict[str, Any]
        try:
            result = await self._local.run(self._node, step)
        except GitError as exc:
            reply, outcome = {"error": str(exc), "kind": "git"}, "error"
        except TmuxError as exc:
            reply, outcome = {"error": str(exc), "kind": "tmux"}, "error"
        except NodeUnreachable as exc:
            reply, outcome = {"error": str(exc), "kind": "unreachable"}, "refused"
        except CommandError as exc:
            reply, outcome = {"error": str(exc), "kind": "command"}, "refused"
        except Exception:  # this step's one boundary: the autopilot hears it failed
            incident = secrets.token_hex(4)
            log.exception("autopilot step %s failed (incident %s)", step.describe(), incident)
            reply = {"error": f"it failed on node {self._node} (incident {incident})"}
            outcome = "error"
        else:
            reply, outcome = {"result": step.encode(result)}, "ok"
        self.ran += 1
        await self._record(step, command, outcome, str(reply.get("error", "")))
        return reply

    async def _record(
        self, step: Step[Any], command: RoutedCommand, outcome: str, detail: str
    ) -> None:
        """One audit row for a step that changes something, as the autopilot."""
        if not step.changes:
            return
        await self._audit.add_audit(
            platform=AUTOPILOT,
            user_id=AUTOPILOT,
            user_name=AUTOPILOT,
            chat=f"node {command.origin}",
            command=f"autopilot: {step.describe()}",
            outcome=outcome,
            detail=detail[:200],
            now=self._clock(),
        )
