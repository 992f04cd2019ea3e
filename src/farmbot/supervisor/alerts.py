"""Alert rules: which events a person must hear about, how urgently, and where.

Pure: ``AlertRules.drafts_for(event)`` maps an event not yet stored to alert drafts;
the event log stores both in one transaction (``Store.add_event_with_alerts``) and the
notifier delivers them. An alert names the agent and project, says what happened, shows
the last lines of output and offers buttons, which are commands like any other.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from farmbot.config.alerts import ALERT_KINDS, AlertsConfig
from farmbot.messages import Button, Buttons, Severity, utc_time
from farmbot.models import AgentKind, AlertDraft, Destination, NewEvent

__all__ = ["WEB_CONSOLE", "AlertRules"]

WEB_CONSOLE: Destination = ("web", "console")  # every alert goes here, chat account or not
PRE_LINES = 15  # last lines of output an alert shows
PRE_CHARS = 3000
SEND_LINES = 20  # lines of QA output a "Send failure to agent" button types in
SEND_CHARS = 3000  # well under the supervisor's prompt limit (16 KiB by default)
KEY_CHARS = 200  # of a dedupe key (some quote a question or an error line)
_AGENT_ID = re.compile(r"(?:^|-)(architect|builder|shell)(?:-(\d+))?$")

Body = tuple[str, str, str | None, Buttons, str]  # title, text, pre, buttons, dedupe key
Rule = Callable[[str, str, Mapping[str, Any]], Body]  # (agent, project, data) -> body


class AlertRules:
    """Turns events into alert drafts, with severities and routes from ``[alerts]``."""

    def __init__(self, config: AlertsConfig) -> None:
        self.config = config

    def __repr__(self) -> str:
        off = sorted(k for k, v in self.config.rules.items() if v is None)
        return f"<AlertRules routes={len(self.config.routes)} off={off}>"

    def drafts_for(self, event: NewEvent) -> list[AlertDraft]:
        """The alerts an event raises: none, or one routed to the console and matching routes."""
        rule = _RULES.get(event.kind)
        severity = self.severity(event)
        if rule is None or severity is None:
            return []
        agent = event.agent_id or "-"
        project = event.project or "-"
        title, text, pre, buttons, key = rule(agent, project, event.data)
        routes = [WEB_CONSOLE]
        routes += [
            (r.interface, r.channel)
            for r in self.config.routes
            if r.matches(severity, event.project)
        ]
        return [
            AlertDraft(
                kind=event.kind,
                severity=severity,
                agent_id=event.agent_id,
                project=event.project,
                title=title,
                text=text,
                pre=pre,
                buttons=buttons,
                dedupe_key=key[:KEY_CHARS],
                routes=tuple(dict.fromkeys(routes)),
            )
        ]

    def severity(self, event: NewEvent) -> Severity | None:
        """The event's alert severity, or None when it raises no alert (or is turned off)."""
        if event.kind not in ALERT_KINDS:
            return None
        if event.kind in self.config.rules:
            return self.config.rules[event.kind]
        if event.kind == "agent.waiting_too_long" and event.data.get("level") == "critical":
            return Severity.CRITICAL
        return ALERT_KINDS[event.kind]


# -- the built-in rules -------------------------------------------------------------------


def _dead(agent: str, project: str, data: Mapping[str, Any]) -> Body:
    reason = _str(data.get("reason")) or "it exited"
    row: tuple[Button, ...] = (Button("Tail", f"/tail {agent}"),)
    spawn = _spawn_command(agent, project, data)
    if spawn is not None:
        row += (Button("Spawn again", spawn, "primary"),)
    return (
        f"{agent} died",
        f"{agent} in project {project} died: {reason}",
        _pre(data.get("last_lines")),
        (row,),
        f"agent.dead:{agent}:{reason}",
    )


def _stuck(agent: str, project: str, data: Mapping[str, Any]) -> Body:
    reason = _str(data.get("reason")) or "no progress"
    return (
        f"{agent} is stuck",
        f"{agent} in project {project} looks stuck: {reason}",
        _pre(data.get("last_lines")),
        ((Button("Tail", f"/tail {agent}"), Button("Kill", f"/kill {agent}", "danger")),),
        f"agent.stuck:{agent}:{reason}",
    )


def _needs_human(agent: str, project: str, data: Mapping[str, Any]) -> Body:
    question = _str(data.get("question")) or "(no question shown)"
    return (
        f"{agent} needs a human",
        f"{agent} in project {project} asks for help: {question}\n"
        f"Answer with /send {agent} <text>.",
        _pre(data.get("last_lines")),
        ((Button("Tail", f"/tail {agent}"),),),
        f"agent.needs_human:{agent}:{question}",
    )


def _waiting_too_long(agent: str, project: str, data: Mapping[str, Any]) -> Body:
    minutes = data.get("minutes")
    waited = f"{minutes} minutes" if isinstance(minutes, int | float) else "a long time"
    state = _str(data.get("state")) or "waiting"
    reason = _str(data.get("reason"))
    why = f" ({reason})" if reason else ""
    level = _str(data.get("level")) or "warning"
    return (
        f"{agent} has been {state} for {waited}",
        f"{agent} in project {project} has been {state} for {waited}{why}.",
        _pre(data.get("last_lines")),
        ((Button("Tail", f"/tail {agent}"),),),
        f"agent.waiting_too_long:{agent}:{level}",
    )


def _gate_opened(agent: str, project: str, data: Mapping[str, Any]) -> Body:
    gate = data.get("gate_id")
    title = _str(data.get("title")) or "a question"
    kind = _str(data.get("gate_kind")) or "gate"
    row: tuple[Button, ...] = ()
    if isinstance(gate, int):
        row = (
            Button("Approve", f"/approve {gate}", "primary"),
            Button("Reject", f"/reject {gate}", "danger"),
        )
    if agent != "-":
        row += (Button("Tail", f"/tail {agent}"),)
    number = f" #{gate}" if gate is not None else ""
    return (
        f"gate{number} waits for a decision: {title}",
        f"{agent} in project {project} waits for a decision ({kind} gate{number}): {title}",
        _str(data.get("detail")) or None,
        (row,) if row else (),
        f"gate.opened:{gate}",
    )


def _qa_failed(agent: str, project: str, data: Mapping[str, Any]) -> Body:
    command = _str(data.get("command")) or "the verify command"
    code = data.get("exit_code")
    outcome = f"exit {code}" if isinstance(code, int) else "timed out"
    output = _str(data.get("output_tail"))
    run = data.get("run_id")
    row: tuple[Button, ...] = ()
    if agent != "-":
        last = "\n".join(output.splitlines()[-SEND_LINES:])[-SEND_CHARS:]
        text = f"QA failed ({command}, {outcome}):\n{last}".rstrip()
        row = (Button("Send failure to agent", f"/send {agent} {text}"),)
        row += (Button("Tail", f"/tail {agent}"),)
    run_note = f" (QA run {run})" if run is not None else ""
    return (
        f"QA failed for {agent}",
        f"QA failed for {agent} in project {project}{run_note}: {command} → {outcome}",
        _pre(output.splitlines()),
        (row,) if row else (),
        f"qa.failed:{agent}:{command}:{outcome}",
    )


def _paused(agent: str, project: str, data: Mapping[str, Any]) -> Body:
    until = data.get("until")
    when = f" until {utc_time(until)}" if isinstance(until, int | float) else ""
    reason = _str(data.get("reason"))
    return (
        f"{agent} paused{when}",
        f"{agent} in project {project} hit a usage limit and is paused{when}."
        + (f"\n{reason}" if reason else ""),
        None,
        (),
        f"agent.paused:{agent}:{until}",
    )


def _resumed(agent: str, project: str, data: Mapping[str, Any]) -> Body:
    return (
        f"{agent} resumed",
        f"{agent} in project {project} resumed: its usage limit has reset.",
        None,
        ((Button("Tail", f"/tail {agent}"),),),
        f"agent.resumed:{agent}",
    )


_RULES: dict[str, Rule] = {
    "agent.dead": _dead,
    "agent.stuck": _stuck,
    "agent.needs_human": _needs_human,
    "agent.waiting_too_long": _waiting_too_long,
    "gate.opened": _gate_opened,
    "qa.failed": _qa_failed,
    "agent.paused": _paused,
    "agent.resumed": _resumed,
}


def _spawn_command(agent: str, project: str, data: Mapping[str, Any]) -> str | None:
    """``/spawn <kind> [<n>] <project>`` for the agent, from the event or its id."""
    kind = data.get("kind", data.get("agent_kind"))
    number = data.get("number")
    match = _AGENT_ID.search(agent)
    if kind not in [k.value for k in AgentKind]:
        if match is None:
            return None
        kind = match.group(1)
        number = int(match.group(2)) if match.group(2) else None
    n = f" {number}" if isinstance(number, int) and not isinstance(number, bool) else ""
    where = f" {project}" if project != "-" else ""
    return f"/spawn {kind}{n}{where}"


def _pre(lines: object) -> str | None:
    """The last lines of output, from a list of lines or one string."""
    if isinstance(lines, str):
        lines = lines.splitlines()
    if not isinstance(lines, list | tuple):
        return None
    kept = [str(line).rstrip() for line in lines if str(line).strip()][-PRE_LINES:]
    return "\n".join(kept)[-PRE_CHARS:] or None


def _str(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""
