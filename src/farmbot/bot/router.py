"""The router: identify the person, parse, limit, authorize, run, audit. One funnel for
errors.

Every command, allowed or refused, leaves one audit row: who, where, what, the outcome.
Outcomes are counted (``outcomes``) for the metrics.

A command handed over again because its first handling was cut short (``interrupted``:
a node died while running it, the chat leader died while handling the update) runs
again only if it needs no more than the viewer role, since nothing a viewer may do
changes anything. Any other is answered with what happened and not run, because it may
have taken effect already: nothing runs twice.

An answer to a button's question (a Reject's reason, typed into a modal or a reply) names
whom the question was put to (``Incoming.asked``); anyone else's answer is refused and
audited like any refusal, before the command is even parsed.

An audit row holds the command whatever its bytes: text no database or terminal can hold
(a lone UTF-16 surrogate, which JSON's ``\\ud800`` to ``\\udfff`` escapes and chat
platforms can deliver; a NUL) is replaced with U+FFFD on the way in, so the command, its
reply and its audit row all carry the same readable text.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

from farmbot.bot.authz import People, Person, users_line
from farmbot.bot.commands import Commands, parse, parse_data, spec_of, with_origin
from farmbot.bot.limits import RateLimiter
from farmbot.errors import (
    AccessDenied,
    CommandError,
    Conflict,
    NotFound,
    RateLimited,
    StorageError,
    UsageError,
)
from farmbot.messages import Incoming, Reply, clip, holdable
from farmbot.models import Role
from farmbot.storage.audit import AuditLog

log = logging.getLogger(__name__)

AUDIT_TEXT_LIMIT = 2000


class Router:
    def __init__(
        self,
        commands: Commands,
        people: People,
        audit: AuditLog,
        clock: Callable[[], float] = time.time,
        limits: RateLimiter | None = None,
    ) -> None:
        self._commands = commands
        self._people = people
        self._audit_log = audit
        self._clock = clock
        self.limits = limits
        self.handled = 0
        self.refused = 0
        self.outcomes: Counter[str] = Counter()  # every command's outcome, as audited
        self.interrupted = 0

    def __repr__(self) -> str:
        return (
            f"<Router handled={self.handled} refused={self.refused} interrupted={self.interrupted}>"
        )

    async def answer(self, msg: Incoming, reply: Reply, outcome: str) -> Reply:
        """Audit a command answered without running it here (it could not be routed to
        the node that runs it, say) and return ``reply``."""
        person = self._people.identify(msg.platform, msg.user_id)
        await self._audit(msg, person, outcome, reply.text[:200])
        return reply

    def reconfigure(self, people: People) -> None:
        """Take a new allowlist (a reloaded config) from the next command on."""
        self._people = people

    async def handle(self, msg: Incoming) -> Reply:
        """Run one command for one person and return the reply to show them."""
        msg = _holdable(msg)
        reply = await self._handle(msg)
        return replace(reply, text=holdable(reply.text), pre=holdable(reply.pre))

    async def _handle(self, msg: Incoming) -> Reply:
        if msg.received_at is None:
            msg = dataclasses.replace(msg, received_at=self._clock())
        person = self._people.identify(msg.platform, msg.user_id)
        if person is None:
            self.refused += 1
            await self._audit(msg, None, "denied", "not on the allowlist")
            return Reply(
                "Sorry, you are not on this farmbot's allowlist, so it does nothing for you. "
                f"An admin can add you to farmbot.toml: {users_line(msg.platform, msg.user_id)}",
                ok=False,
            )
        try:
            self._check_answerer(msg)
            if msg.data is None:
                command = parse(msg.text, files=bool(msg.files))
            else:
                command = parse_data(msg.text, msg.data)
            command = with_origin(command, msg)
            spec = spec_of(command)
            if self.limits is not None:
                self.limits.check(person.name, spec.name, msg.platform)
            if person.role < spec.role:
                article = "an" if str(person.role)[0] in "aeiou" else "a"
                raise AccessDenied(
                    f"{person.name} is {article} {person.role}; "
                    f"/{spec.name} needs {spec.role} or above"
                )
            if msg.interrupted and spec.role > Role.VIEWER:
                self.interrupted += 1
                await self._audit(msg, person, "interrupted", msg.interrupted)
                return Reply(interrupted_notice(msg), ok=False)
            reply = await self._commands.run(command, person)
        except CommandError as exc:
            outcome = _outcome(exc)
            if outcome == "denied":
                self.refused += 1
            await self._audit(msg, person, outcome, str(exc))
            return Reply(str(exc), ok=False)
        except Exception:
            incident = secrets.token_hex(4)
            log.exception("incident %s: %r from %s failed", incident, msg.text[:200], person)
            await self._audit(msg, person, "error", f"incident {incident}")
            return Reply(
                f"Something went wrong inside farmbot (incident {incident}); "
                "the farmbot log has the details.",
                ok=False,
            )
        self.handled += 1
        await self._audit(msg, person, "ok", "" if reply.ok else reply.text[:200])
        return reply

    def _check_answerer(self, msg: Incoming) -> None:
        """Refuse an answer to a question that was put to someone else."""
        if not misattributed(msg):
            return
        asked = self._people.identify(msg.platform, msg.asked)
        whom = asked.name if asked is not None else "someone else"
        raise AccessDenied(f"that question was put to {whom}: only they may answer it")

    async def _audit(self, msg: Incoming, person: Person | None, outcome: str, detail: str) -> None:
        self.outcomes[outcome] += 1
        # A database that is down must not turn the person's reply into a crash of the
        # interface; the lost row is logged instead (and /readyz reports the database).
        try:
            await self._audit_log.add_audit(
                platform=msg.platform,
                user_id=msg.user_id,
                user_name=person.name if person else None,
                chat=msg.chat,
                command=_audited(msg)[:AUDIT_TEXT_LIMIT],
                outcome=outcome,
                detail=(f"button; {detail}" if msg.button else detail)[:AUDIT_TEXT_LIMIT],
                now=self._clock(),
            )
        except StorageError as exc:
            log.error("audit row lost (%r -> %s %s): %s", msg, outcome, detail, exc)


def misattributed(msg: Incoming) -> bool:
    """Whether ``msg`` answers a question that was put to someone else (refused)."""
    return bool(msg.asked) and msg.asked != msg.user_id


def interrupted_notice(msg: Incoming) -> str:
    """What a person is told about a command that was cut short and is not run again."""
    return (
        f"{msg.interrupted}, so farmbot cannot tell whether {clip(msg.text.strip(), 200)!r}"
        " took effect; it was not run again. Check first (/agents, /tail <agent>), then"
        " run it again if it is still needed."
    )


def _holdable(msg: Incoming) -> Incoming:
    return replace(
        msg,
        user_id=holdable(msg.user_id),
        chat=holdable(msg.chat),
        text=holdable(msg.text),
        display_name=holdable(msg.display_name),
        data=None if msg.data is None else holdable(msg.data),
    )


def _outcome(exc: CommandError) -> str:
    if isinstance(exc, AccessDenied):
        return "denied"
    if isinstance(exc, UsageError):
        return "usage"
    if isinstance(exc, NotFound):
        return "not_found"
    if isinstance(exc, Conflict):
        return "conflict"
    if isinstance(exc, RateLimited):
        return "limited"
    return "failed"


def _audited(msg: Incoming) -> str:
    """The command as the audit shows it (JSON arguments follow the command's name)."""
    files = f" [files: {', '.join(f.name for f in msg.files)}]" if msg.files else ""
    if msg.data is None:
        return msg.text + files
    return f"{msg.text} {json.dumps(msg.data, ensure_ascii=False, default=str)}{files}"
