"""Alert rules: which events a person must hear about, how urgently, and where.

Pure: ``AlertRules.drafts_for(event)`` maps a typed event to alert drafts; the event bus
stores both in one transaction and the notifier delivers them. An alert names the agent
and project, says what happened, shows the last lines of output and offers buttons,
which are commands like any other.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from farmbot import events as ev
from farmbot.config.alerts import ALERT_KINDS, AlertsConfig
from farmbot.messages import Button, Buttons, Severity, ago, reject_button, utc_time
from farmbot.models import AgentKind, AlertDraft, Destination

__all__ = ["WEB_CONSOLE", "AlertRules"]

WEB_CONSOLE: Destination = ("web", "console")  # every alert goes here, chat account or not
PRE_LINES = 15  # last lines of output an alert shows
PRE_CHARS = 3000
SEND_LINES = 20  # lines of QA output a "Send failure to agent" button types in
SEND_CHARS = 3000  # well under the supervisor's prompt limit (16 KiB by default)
KEY_CHARS = 200  # of a dedupe key (some quote a question or an error line)
_AGENT_ID = re.compile(r"(?:^|-)(architect|builder|shell)(?:-(\d+))?$")

Body = tuple[str, str, str | None, Buttons, str]  # title, text, pre, buttons, dedupe key
Rule = Callable[[Any, str, str], Body | None]  # (event, agent, project) -> body


class AlertRules:
    """Turns events into alert drafts, with severities and routes from ``[alerts]``."""

    def __init__(self, config: AlertsConfig) -> None:
        self.config = config

    def __repr__(self) -> str:
        off = sorted(k for k, v in self.config.rules.items() if v is None)
        return f"<AlertRules routes={len(self.config.routes)} off={off}>"

    def drafts_for(self, event: ev.DomainEvent) -> list[AlertDraft]:
        """The alerts an event raises: none, or one routed to the console and matching routes."""
        rule = _RULES.get(type(event))
        severity = self.severity(event)
        if rule is None or severity is None:
            return []
        body = rule(event, event.agent_id or "-", event.project or "-")
        if body is None:
            return []
        title, text, pre, buttons, key = body
        routes = [WEB_CONSOLE]
        routes += [
            (r.interface, r.channel)
            for r in self.config.routes
            if r.matches(severity, event.project)
            # a deaf interface may still send, but the alert is for the people elsewhere
            and not (isinstance(event, ev.InterfaceDeaf) and r.interface == event.interface)
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

    def severity(self, event: ev.DomainEvent) -> Severity | None:
        """The event's alert severity, or None when it raises no alert (or is turned off)."""
        kind = event.kind
        if kind not in ALERT_KINDS:
            return None
        if kind in self.config.rules:
            return self.config.rules[kind]
        if isinstance(event, ev.AgentWaitingTooLong) and event.level == "critical":
            return Severity.CRITICAL
        return ALERT_KINDS[kind]


# -- the built-in rules -------------------------------------------------------------------


def _dead(event: ev.AgentDead, agent: str, project: str) -> Body:
    reason = event.reason.strip() or "it exited"
    row: tuple[Button, ...] = (Button("Tail", f"/tail {agent}"),)
    spawn = _spawn_command(agent, project)
    if spawn is not None:
        row += (Button("Spawn again", spawn, "primary"),)
    return (
        f"{agent} died",
        f"{agent} in project {project} died: {reason}",
        _pre(event.last_lines),
        (row,),
        f"agent.dead:{agent}:{reason}",
    )


def _stuck(event: ev.AgentStuck, agent: str, project: str) -> Body:
    reason = event.reason.strip() or "no progress"
    return (
        f"{agent} is stuck",
        f"{agent} in project {project} looks stuck: {reason}",
        _pre(event.last_lines),
        ((Button("Tail", f"/tail {agent}"), Button("Kill", f"/kill {agent}", "danger")),),
        f"agent.stuck:{agent}:{reason}",
    )


def _needs_human(event: ev.AgentNeedsHuman, agent: str, project: str) -> Body:
    question = event.question.strip() or "(no question shown)"
    return (
        f"{agent} needs a human",
        f"{agent} in project {project} asks for help: {question}\n"
        f"Answer with /send {agent} <text>.",
        _pre(event.last_lines),
        ((Button("Tail", f"/tail {agent}"),),),
        f"agent.needs_human:{agent}:{question}",
    )


def _waiting_too_long(event: ev.AgentWaitingTooLong, agent: str, project: str) -> Body:
    waited = f"{event.minutes} minutes"
    why = f" ({event.reason})" if event.reason else ""
    return (
        f"{agent} has been {event.state} for {waited}",
        f"{agent} in project {project} has been {event.state} for {waited}{why}.",
        _pre(event.last_lines),
        ((Button("Tail", f"/tail {agent}"),),),
        f"agent.waiting_too_long:{agent}:{event.level}",
    )


def _gate_opened(event: ev.GateOpened, agent: str, project: str) -> Body:
    gate = event.gate_id
    title = event.title.strip() or "a question"
    row: tuple[Button, ...] = (Button("Approve", f"/approve {gate}", "primary"),)
    if event.gate_kind == "permission":  # an agent's question: also for its session
        row += (Button("For session", f"/approve {gate} --session"),)
    row += (reject_button(gate),)
    if event.gate_kind == "milestone":
        row += (Button("Diff", f"/gate diff {gate}"),)
    if agent != "-":
        row += (Button("Tail", f"/tail {agent}"),)
    where = f" ({event.where})" if event.where else ""
    return (
        f"gate #{gate} waits for a decision: {title}",
        f"{agent} in project {project}{where} waits for a decision ({event.gate_kind} gate"
        f" #{gate}): {title}",
        event.detail.strip() or None,
        (row,),
        gate_key(gate),
    )


GATE_KEY = "gate.opened:"  # storage/outbox.py's OUTDATED spells it out too


def gate_key(gate_id: int) -> str:
    """The dedupe key of a gate's alert: its copies are found by it once it is decided."""
    return f"{GATE_KEY}{gate_id}"


def _deaf(event: ev.InterfaceDeaf, agent: str, project: str) -> Body:
    name = event.interface
    heard = f"; it last heard something at {utc_time(event.last_heard)}" if event.last_heard else ""
    return (
        f"{name} is deaf: nothing it is sent reaches farmbot",
        f"{name} has not been hearing for {ago(event.silent_for)}{_colon(event.detail)}{heard}. "
        f"Commands and button presses sent on {name} are lost until it hears again; use "
        "another interface meanwhile (/ping on it shows what farmbot hears).",
        None,
        (),
        f"interface.deaf:{name}",
    )


def _hears(event: ev.InterfaceHears, agent: str, project: str) -> Body:
    name = event.interface
    return (
        f"{name} hears again",
        f"{name} hears again after {ago(event.deaf_for)} deaf{_colon(event.detail)}.",
        None,
        (),
        f"interface.hears:{name}",
    )


def _qa_finished(event: ev.QaFinished, agent: str, project: str) -> Body | None:
    if event.passed:
        return None
    command = event.command.strip() or "the verify command"
    outcome = f"exit {event.exit_code}" if event.exit_code is not None else "timed out"
    row: tuple[Button, ...] = ()
    if agent != "-" and not event.trigger.startswith("task "):  # the autopilot sends those
        last = "\n".join(event.output_tail.splitlines()[-SEND_LINES:])[-SEND_CHARS:]
        text = f"QA failed ({command}, {outcome}):\n{last}".rstrip()
        row = (Button("Send failure to agent", f"/send {agent} {text}"),)
        row += (Button("Tail", f"/tail {agent}"),)
    return (
        f"QA failed for {agent}",
        f"QA failed for {agent} in project {project} (QA run {event.run_id}): {command}"
        f" → {outcome}",
        _pre(event.output_tail.splitlines()),
        (row,) if row else (),
        f"qa.failed:{agent}:{command}:{outcome}",
    )


def _paused(event: ev.AgentPaused, agent: str, project: str) -> Body:
    when = f" until {utc_time(event.until)}"
    return (
        f"{agent} paused{when}",
        f"{agent} in project {project} hit a usage limit and is paused{when}."
        + (f"\n{event.reason}" if event.reason else ""),
        None,
        (),
        f"agent.paused:{agent}:{event.until}",
    )


def _resumed(event: ev.AgentResumed, agent: str, project: str) -> Body:
    return (
        f"{agent} resumed",
        f"{agent} in project {project} resumed: its usage limit has reset.",
        None,
        ((Button("Tail", f"/tail {agent}"),),),
        f"agent.resumed:{agent}",
    )


def _task_retried(event: ev.TaskRetried, agent: str, project: str) -> Body:
    return (
        f"task {event.task_id} retried (attempt {event.attempt} of {event.max_attempts})",
        f"task {event.task_id} in project {project} ({event.title}{_by(agent)}): "
        f"{event.reason}. A fresh builder takes it.",
        None,
        ((Button("Show", f"/task show {event.task_id}"),),),
        f"task.retried:{event.task_id}:{event.attempt}",
    )


def _task_failed(event: ev.TaskFailed, agent: str, project: str) -> Body:
    return (
        f"task {event.task_id} failed",
        f"task {event.task_id} in project {project} ({event.title}{_by(agent)}) failed after "
        f"{event.attempts} attempts: {event.reason}. What depends on it waits; "
        f"/task retry {event.task_id} starts it over.",
        None,
        (
            (
                Button("Retry", f"/task retry {event.task_id}", "primary"),
                Button("Show", f"/task show {event.task_id}"),
            ),
        ),
        f"task.failed:{event.task_id}",
    )


def _task_not_landed(event: ev.TaskNotLanded, agent: str, project: str) -> Body:
    then = (
        "it waits for a person again (a new gate)"
        if event.refused
        else f"it goes back to {event.to} as its next prompt"
    )
    return (
        f"task {event.task_id} did not land",
        f"task {event.task_id} in project {project} ({event.title}{_by(agent)}) did not land; "
        f"{then}.",
        _pre(event.detail.splitlines()),
        ((Button("Show", f"/task show {event.task_id}"),),),
        f"task.not_landed:{event.task_id}:{event.detail[:80]}",
    )


def _task_landed(event: ev.TaskLanded, agent: str, project: str) -> Body:
    return (
        f"task {event.task_id} landed",
        f"task {event.task_id} in project {project} ({event.title}{_by(agent)}) landed by "
        f"{event.how} as {event.commit[:10]} ({event.by}).",
        None,
        ((Button("Show", f"/task show {event.task_id}"),),),
        f"task.landed:{event.task_id}:{event.commit}",
    )


def _run_blocked(event: ev.RunBlocked, agent: str, project: str) -> Body:
    row = tuple(Button(f"Retry {t}", f"/task retry {t}") for t in event.blocked_by[:3])
    return (
        f"run {event.run_id}: task {event.task_id} is blocked",
        f"run {event.run_id} in project {project}: task {event.task_id} ({event.title}) "
        f"{event.reason}. The run carries on with the rest.",
        None,
        ((*row, Button("Status", f"/run status {project}")),),
        f"run.blocked:{event.task_id}:{event.blocked_by}",
    )


def _wave_done(event: ev.WaveDone, agent: str, project: str) -> Body:
    parts = [f"{len(event.landed)} landed"]
    if event.failed:
        parts.append(f"failed: {', '.join(str(t) for t in event.failed)}")
    if event.blocked:
        parts.append(f"blocked: {', '.join(str(t) for t in event.blocked)}")
    approved = f", approved by {event.by}" if event.by != "autopilot" else ""
    return (
        f"wave {event.wave} of run {event.run_id} is done",
        f"run {event.run_id} in project {project}: wave {event.wave} is done "
        f"({'; '.join(parts)}){approved}.",
        None,
        ((Button("Status", f"/run status {project}"),),),
        f"wave.done:{event.run_id}:{event.wave}",
    )


def _run_finished(event: ev.RunFinished, agent: str, project: str) -> Body:
    how = "done" if event.state == "done" else "finished, with work blocked"
    return (
        f"run {event.run_id} {how}",
        f"run {event.run_id} in project {project} {how}: {event.done} done, "
        f"{event.failed} failed, {event.blocked} blocked, {event.cancelled} cancelled.",
        None,
        ((Button("Status", f"/run status {project}"),),),
        f"run.finished:{event.run_id}:{event.state}",
    )


def _deployed(event: ev.Deployed, agent: str, project: str) -> Body:
    verdict = "passed" if event.passed else "failed"
    return (
        f"deploy to {event.target} {verdict} (wave {event.wave} of run {event.run_id})",
        f"project {project}: `{event.command}` {verdict} after wave {event.wave} of run "
        f"{event.run_id}.",
        _pre(event.output_tail.splitlines()),
        ((Button("Status", f"/run status {project}"),),),
        f"deploy:{event.run_id}:{event.wave}:{event.target}:{verdict}",
    )


def _reloaded(event: ev.ConfigReloaded, agent: str, project: str) -> Body:
    changed = ", ".join(event.changed) or "nothing"
    return (
        "configuration reloaded",
        f"farmbot reloaded its configuration from {event.source}; changed: {changed}.",
        None,
        (),
        f"config.reloaded:{changed}",
    )


def _refused(event: ev.ConfigRefused, agent: str, project: str) -> Body:
    return (
        "configuration reload refused",
        f"farmbot refused the configuration in {event.source} and keeps the one in force: "
        f"{event.reason}",
        None,
        (),
        f"config.refused:{event.reason}",
    )


def _node_down(event: ev.NodeDown, agent: str, project: str) -> Body:
    node = event.node
    running = (
        f'; its agents ({", ".join(event.agents[:10])}) show as "node down" until it is back'
        if event.agents
        else ""
    )
    return (
        f"node {node} went quiet",
        f"node {node} has sent no heartbeat for {round(event.quiet)} s{running}."
        " Commands for it wait for it, or time out.",
        None,
        ((Button("Status", "/status"),),),
        f"node.down:{node}",
    )


def _node_up(event: ev.NodeUp, agent: str, project: str) -> Body:
    return (
        f"node {event.node} is back",
        f"node {event.node} is heard from again.",
        None,
        ((Button("Status", "/status"),),),
        f"node.up:{event.node}",
    )


def _prompt_failed(event: ev.PromptFailed, agent: str, project: str) -> Body:
    return (
        f"prompt #{event.prompt_id} to {agent} not delivered",
        f"The prompt from {event.source} to {agent} in project {project} was not typed: "
        f"{event.reason}\nIt began: {event.head}\nSend it again once {agent} can take it.",
        None,
        ((Button("Tail", f"/tail {agent}"),),),
        f"prompt.failed:{event.prompt_id}",
    )


_RULES: dict[type[ev.DomainEvent], Rule] = {
    ev.AgentDead: _dead,
    ev.AgentStuck: _stuck,
    ev.AgentNeedsHuman: _needs_human,
    ev.AgentWaitingTooLong: _waiting_too_long,
    ev.GateOpened: _gate_opened,
    ev.QaFinished: _qa_finished,
    ev.AgentPaused: _paused,
    ev.AgentResumed: _resumed,
    ev.PromptFailed: _prompt_failed,
    ev.TaskRetried: _task_retried,
    ev.TaskFailed: _task_failed,
    ev.TaskNotLanded: _task_not_landed,
    ev.TaskLanded: _task_landed,
    ev.RunBlocked: _run_blocked,
    ev.WaveDone: _wave_done,
    ev.RunFinished: _run_finished,
    ev.Deployed: _deployed,
    ev.ConfigReloaded: _reloaded,
    ev.ConfigRefused: _refused,
    ev.InterfaceDeaf: _deaf,
    ev.InterfaceHears: _hears,
    ev.NodeDown: _node_down,
    ev.NodeUp: _node_up,
}


def _colon(detail: str) -> str:
    return f": {detail.strip()}" if detail.strip() else ""


def _by(agent: str) -> str:
    return f", {agent}" if agent != "-" else ""


def _spawn_command(agent: str, project: str) -> str | None:
    """``/spawn <kind> [<n>] <project>`` for the agent, from its id."""
    match = _AGENT_ID.search(agent)
    if match is None or match.group(1) not in [k.value for k in AgentKind]:
        return None
    number = f" {match.group(2)}" if match.group(2) else ""
    where = f" {project}" if project != "-" else ""
    return f"/spawn {match.group(1)}{number}{where}"


def _pre(lines: Sequence[str]) -> str | None:
    """The last lines of output."""
    kept = [str(line).rstrip() for line in lines if str(line).strip()][-PRE_LINES:]
    return "\n".join(kept)[-PRE_CHARS:] or None
