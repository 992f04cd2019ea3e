"""The agent state machine: one pure function decides every transition.

``decide(agent, observation, track, rules, gate, now)`` returns a ``Step``: the state
(and reason) the agent is in now, what is tracked about it from now on, and the effects
to carry out -- events to publish, a permission gate to open or mark stale, a usage-limit
pause, a prompt to queue, a QA run to request. No I/O here: the monitor observes (panes,
hooks, tmux's process table) and carries the effects out; tests drive this with plain
values and a number for the clock.

What it decides from (seed: the stuck rules and escalations of the tower daemon):

- Hook events decide first (Claude Code and Codex say when a turn starts, a tool runs,
  a permission is asked, a turn stops). For CLIs without hooks the pane decides: its
  process, whether its output changes, and the profile's idle/busy/waiting patterns.
  While farmbot holds a Codex permission hook no dialog is drawn (Codex shows itself
  running the hook): that question is not gone until the screen is idle again.
- A pane whose process exited is dead (with its exit status, or the signal that killed
  it); a vanished session is dead; a stop a human asked for is ``stopped``, never dead.
- Stuck: busy with no new output for 10 min, busy with no tool call for 5 min (CLIs with
  hooks), the same error line 3 times. Asking for help puts it in ``waiting``. Waiting on
  a human (or stuck) too long escalates: a warning, then critical.
- The help and waiting rules read only what the agent wrote after the last prompt it was
  given, so a person's own words ("need help with the design") are never its question.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from farmbot.config.schema import AgentProfile
from farmbot.events import (
    AgentDead,
    AgentNeedsHuman,
    AgentPaused,
    AgentResumed,
    AgentStuck,
    AgentWaitingTooLong,
    DomainEvent,
)
from farmbot.models import Agent, AgentKind, AgentState, DesiredState, Gate
from farmbot.supervisor import permissions
from farmbot.supervisor.limits import DEFAULT_PAUSE, reset_time
from farmbot.supervisor.panes import PanePatterns, bottom, classify, waiting_question

PERMISSION = "permission"  # the gate kind of an agent's permission question
STALE_GRACE = 3.0  # a dialog may take a moment to show after its hook event
ANSWER_GRACE = 5.0  # a dialog answered by keys may take a moment to leave the screen
LAST_LINES = 15  # lines of output an event about an agent carries
HEAD_CHARS = 60  # of a prompt's first line, to find its echo on the screen
ASKED_FOR_HELP = "asked for help"


# -- inputs -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Screen:
    """The pane is alive. ``lines`` is what it shows, or None when it was not read now
    (nothing changed on it since it was last read). ``held``: the CLI's hook waits for
    farmbot's answer to the pending gate."""

    lines: tuple[str, ...] | None
    held: bool = False


@dataclass(frozen=True, slots=True)
class PaneGone:
    """The pane's process exited (or the session vanished, ``vanished``)."""

    vanished: bool = False
    exit_status: int | None = None
    signal: int | None = None
    last_lines: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Hook:
    """A hook event from the agent's CLI."""

    name: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Typing:
    """farmbot is about to type a prompt (its echo is not the agent's words)."""

    text: str


@dataclass(frozen=True, slots=True)
class Delivered:
    """A prompt was typed and submitted."""

    text: str
    source: str


@dataclass(frozen=True, slots=True)
class Answered:
    """A permission question was answered through the pane (``question``: the dialog as
    its gate recorded it)."""

    approved: bool
    question: str = ""


@dataclass(frozen=True, slots=True)
class Stopped:
    """A human stopped the agent on purpose."""

    by: str


@dataclass(frozen=True, slots=True)
class StartFailed:
    """Its session could not be started at all (the person who spawned it is told)."""

    reason: str


Observation = Screen | PaneGone | Hook | Typing | Delivered | Answered | Stopped | StartFailed


@dataclass(frozen=True, slots=True)
class Track:
    """What is remembered about an agent between observations (persisted)."""

    last_output_at: float
    digest: str = ""
    last_hook_at: float | None = None
    last_tool_at: float | None = None
    reported_errors: tuple[str, ...] = ()
    help_digest: str = ""
    limit_line: str = ""
    escalated: int = 0  # 0 none, 1 warning sent, 2 critical sent
    prompt_head: str = ""  # the first line of the last prompt typed
    answered: str = ""  # the dialog last answered through the pane, while it still shows
    answered_at: float = 0.0  # ... and when

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any], now: float) -> Track:
        """A stored track; unknown or malformed fields fall back to a fresh one's."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if isinstance(known.get("reported_errors"), list):
            known["reported_errors"] = tuple(str(e) for e in known["reported_errors"])
        try:
            return cls(**{"last_output_at": now, **known})
        except TypeError:
            return cls(last_output_at=now)


@dataclass(frozen=True, slots=True)
class Rules:
    """A profile's patterns and thresholds, compiled once."""

    patterns: PanePatterns
    error: re.Pattern[str]
    help: re.Pattern[str]
    limit: re.Pattern[str]
    continue_prompt: str
    stuck_no_output: float
    stuck_no_tool: float
    stuck_repeated_error: int
    waiting_warn: float
    waiting_critical: float
    clear_keys: tuple[str, ...] = ()  # what empties the input line
    dialog_after_hook: bool = False  # no dialog is drawn while its hook is held (Codex)

    @classmethod
    def of(cls, profile: AgentProfile) -> Rules:
        return cls(
            patterns=PanePatterns.of(profile),
            error=re.compile(profile.error_pattern),
            help=re.compile(profile.help_pattern),
            limit=re.compile(profile.limit_pattern),
            continue_prompt=profile.continue_prompt,
            stuck_no_output=profile.stuck_no_output,
            stuck_no_tool=profile.stuck_no_tool,
            stuck_repeated_error=profile.stuck_repeated_error,
            waiting_warn=profile.waiting_warn,
            waiting_critical=profile.waiting_critical,
            clear_keys=profile.clear_keys,
            dialog_after_hook=profile.dialog_after_hook,
        )


# -- outputs ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Emit:
    """Publish an event."""

    event: DomainEvent


@dataclass(frozen=True, slots=True)
class OpenGate:
    """Open a permission gate for the agent (unless one is pending)."""

    title: str
    detail: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StaleGate:
    """Mark a pending gate stale: what it asked about is gone."""

    gate_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class Pause:
    """A usage limit: no prompts until ``until`` (None lifts the pause)."""

    until: float | None


@dataclass(frozen=True, slots=True)
class Queue:
    """Queue a prompt for when the agent is ready (and not before ``not_before``)."""

    text: str
    source: str
    not_before: float | None = None


@dataclass(frozen=True, slots=True)
class RequestQa:
    """Ask the QA runner to verify the agent's work."""

    trigger: str


Effect = Emit | OpenGate | StaleGate | Pause | Queue | RequestQa


@dataclass(frozen=True, slots=True)
class Step:
    """What one observation decides: the state, why, the track, and the effects."""

    state: AgentState
    reason: str
    track: Track
    effects: tuple[Effect, ...] = ()


# -- the machine ------------------------------------------------------------------------


@dataclass(slots=True)
class _Run:
    """One decision in progress: the agent as it becomes, and what to do about it."""

    agent: Agent
    track: Track
    now: float
    effects: list[Effect] = field(default_factory=list)

    def go(self, state: AgentState, reason: str) -> None:
        """Move to ``state`` (a reason changes only with the state)."""
        if state is self.agent.state:
            return
        was = self.agent.state
        self.agent = replace(self.agent, state=state, state_reason=reason, state_since=self.now)
        if state is AgentState.IDLE and was in (AgentState.BUSY, AgentState.STUCK):
            self.effects.append(RequestQa("idle"))

    def emit(self, event: DomainEvent) -> None:
        self.effects.append(Emit(event))

    def step(self) -> Step:
        return Step(self.agent.state, self.agent.state_reason, self.track, tuple(self.effects))


def decide(
    agent: Agent,
    observation: Observation,
    track: Track,
    rules: Rules | None,
    gate: Gate | None,
    now: float,
) -> Step:
    """The agent's next state, track and effects after ``observation``.

    ``rules`` is None for an agent whose profile is unknown; ``gate`` is its pending
    permission gate, if any.
    """
    run = _Run(agent, track, now)
    if isinstance(observation, Stopped):
        run.go(AgentState.STOPPED, f"stopped by {observation.by}")
        _stale(run, gate, f"{agent.id} was stopped")
        return run.step()
    if agent.desired is DesiredState.STOPPED:
        run.go(AgentState.STOPPED, "stopped")
        _stale(run, gate, f"{agent.id} is stopped")
        return run.step()
    if not agent.state.is_live:
        _stale(run, gate, f"{agent.id} is {agent.state.value}")
        return run.step()
    match observation:
        case PaneGone():
            _gone(run, observation, gate)
        case Screen(lines, held):
            _screen(run, lines, rules, gate, held=held)
        case Hook(name, payload):
            _hook(run, name, payload, gate)
        case Typing(text):
            run.track = replace(run.track, prompt_head=prompt_head(text))
        case Delivered(text, source):
            run.track = replace(run.track, prompt_head=prompt_head(text))
            run.go(AgentState.BUSY, f"working on a prompt from {source}")
        case StartFailed(reason):
            run.go(AgentState.DEAD, reason)
        case Answered(approved, question):
            run.track = replace(run.track, answered=question, answered_at=run.now)
            if approved:
                run.go(AgentState.BUSY, "permission approved")
            else:
                run.go(AgentState.IDLE, "permission denied")
    return run.step()


def _stale(run: _Run, gate: Gate | None, reason: str) -> None:
    if gate is not None:
        run.effects.append(StaleGate(gate.id, reason))


def _gone(run: _Run, gone: PaneGone, gate: Gate | None) -> None:
    reason = death_reason(gone)
    run.go(AgentState.DEAD, reason)
    agent = run.agent
    run.emit(
        AgentDead(
            agent_id=agent.id, project=agent.project, reason=reason, last_lines=gone.last_lines
        )
    )
    _stale(run, gate, f"{agent.id} died")


def death_reason(gone: PaneGone) -> str:
    """How an agent died, for people: its exit status, or the signal that killed it."""
    if gone.vanished:
        return "its tmux session vanished"
    if gone.signal is not None:
        return f"its process was killed by signal {gone.signal}{_signal_name(gone.signal)}"
    if gone.exit_status is not None:
        return f"its process exited with status {gone.exit_status}"
    return "its process exited"


def _signal_name(number: int) -> str:
    import signal

    try:
        return f" ({signal.Signals(number).name})"
    except ValueError:
        return ""


# -- hooks ------------------------------------------------------------------------------


def _hook(run: _Run, name: str, payload: dict[str, Any], gate: Gate | None) -> None:
    now = run.now
    run.track = replace(run.track, last_hook_at=now)
    state = run.agent.state
    if name in ("UserPromptSubmit", "PreToolUse", "PostToolUse"):
        run.track = replace(run.track, last_tool_at=now)
        if state is not AgentState.WAITING or name == "PostToolUse":
            run.go(AgentState.BUSY, f"{name} hook")
    elif name == "SessionStart" and state is AgentState.STARTING:
        run.go(AgentState.IDLE, "session started")
    elif name == "PermissionRequest" or (
        name == "Notification" and payload.get("notification_type") == "permission_prompt"
    ):
        run.go(AgentState.WAITING, "asks for permission")
        if gate is None:
            summary, detail = permissions.describe(payload)
            kept = {"source": "hook", **permissions.request_of(payload)}
            run.effects.append(OpenGate(_gate_title(run.agent, summary), detail, kept))
    elif name == "Notification" and payload.get("notification_type") == "idle_prompt":
        run.go(AgentState.IDLE, "waiting for input")
    elif name == "Stop":
        _stale(run, gate, "the agent finished its turn")
        run.go(AgentState.IDLE, "turn finished")


def _gate_title(agent: Agent, summary: str) -> str:
    return f"{agent.id} asks: {summary.strip()[:120] or 'a question'}"


# -- the pane ---------------------------------------------------------------------------


def _screen(
    run: _Run,
    lines: tuple[str, ...] | None,
    rules: Rules | None,
    gate: Gate | None,
    *,
    held: bool = False,
) -> None:
    agent = run.agent
    changed = False
    if lines is not None:
        digest = hashlib.blake2b("\n".join(lines).encode(), digest_size=16).hexdigest()
        changed = digest != run.track.digest
        if changed:
            run.track = replace(run.track, digest=digest, last_output_at=run.now)
    if agent.kind is AgentKind.SHELL:
        run.go(AgentState.IDLE, _why(AgentState.IDLE))
        return
    if agent.state is AgentState.PAUSED:
        if agent.paused_until is None or run.now >= agent.paused_until:
            run.effects.append(Pause(None))
            run.go(AgentState.IDLE, "usage limit reset")
            run.emit(AgentResumed(agent_id=agent.id, project=agent.project))
        return
    if rules is None:
        return
    if lines is not None and _maybe_pause(run, rules, lines):
        return
    said = after_prompt(lines, run.track.prompt_head) if lines is not None else None
    target = _pane_state(run, said, rules, changed, gate)
    question = (
        waiting_question(list(said), rules.patterns)
        if said is not None and target is AgentState.WAITING
        else ""
    )
    if (
        question
        and gate is None
        and run.now - run.track.answered_at < ANSWER_GRACE
        and _still_drawn(run.track.answered, question)
    ):
        # The dialog just answered, still drawn while the CLI takes the answer (a screen
        # read between its first lines of output and its prompt): not a new question.
        # Still there after the grace, the answer did not take: it is asked again.
        question, target = "", run.agent.state
    elif said is not None and target is not AgentState.WAITING and run.track.answered:
        run.track = replace(run.track, answered="")  # gone: the same dialog later is new
    if question:
        run.go(AgentState.WAITING, "asks a question")
        print_ = fingerprint(question)
        if gate is None or gate.payload.get("fingerprint") not in (None, print_):
            if gate is not None:
                run.effects.append(StaleGate(gate.id, "a different question is showing now"))
            asked = _asked_line(question, rules.patterns)
            run.effects.append(
                OpenGate(
                    _gate_title(run.agent, asked),
                    question,
                    {"source": "pane", "fingerprint": print_},
                )
            )
    elif (
        gate is not None
        and said is not None
        and run.now - gate.created_at > STALE_GRACE
        and not _hook_running(said, rules, held)
    ):
        run.effects.append(StaleGate(gate.id, "the question is no longer showing"))
    target = _help_and_stuck(run, rules, lines, said, target, changed)
    if target is not run.agent.state and not question:
        run.go(target, _why(target))
    _escalate(run, rules, lines)


def _still_drawn(answered: str, question: str) -> bool:
    """Whether ``question`` is the dialog just ``answered`` with the CLI's first output
    under it (its prompt not drawn yet): the same lines, and maybe more below them."""
    old = [ln.rstrip() for ln in answered.splitlines() if ln.strip()]
    new = [ln.rstrip() for ln in question.splitlines() if ln.strip()]
    return bool(old) and new[: len(old)] == old


def _hook_running(said: tuple[str, ...], rules: Rules, held: bool) -> bool:
    """Whether a question with no dialog on screen is still being asked: Codex draws none
    while farmbot holds its hook, and shows itself working ("Running hook") meanwhile.
    Idle again, it was interrupted (Escape): the question is gone."""
    if not (held and rules.dialog_after_hook):
        return False
    return classify(list(said), rules.patterns) is not AgentState.IDLE


def _maybe_pause(run: _Run, rules: Rules, lines: tuple[str, ...]) -> bool:
    line = next((ln for ln in bottom(list(lines), 3) if rules.limit.search(ln)), None)
    if line is None or line == run.track.limit_line:
        return False
    agent, now = run.agent, run.now
    run.track = replace(run.track, limit_line=line)
    until = reset_time(line, now)
    guessed = until is None
    until = until if until is not None else now + DEFAULT_PAUSE
    run.effects.append(Pause(until))
    run.go(AgentState.PAUSED, f"usage limit until {time.strftime('%H:%M UTC', time.gmtime(until))}")
    if rules.continue_prompt:
        run.effects.append(Queue(rules.continue_prompt, "usage-limit", until))
    run.emit(
        AgentPaused(
            agent_id=agent.id,
            project=agent.project,
            until=until,
            reason=line.strip(),
            guessed=guessed,
            will_continue=bool(rules.continue_prompt),
        )
    )
    return True


def _pane_state(
    run: _Run, said: tuple[str, ...] | None, rules: Rules, changed: bool, gate: Gate | None
) -> AgentState:
    agent = run.agent
    seen = classify(list(said), rules.patterns) if said is not None else None
    if run.track.last_hook_at is not None:
        # Hooks decide busy and idle; the pane only shows a question opening or going away
        # (after a plain "no" Claude Code sends no Stop event). A question asked through
        # the hook is drawn a moment later, or never while farmbot holds it: it is waiting
        # until its gate is decided or goes stale.
        if seen is AgentState.WAITING:
            return seen
        if gate is not None and agent.state is AgentState.WAITING:
            return agent.state
        if (
            said is not None
            and agent.state is AgentState.WAITING
            and agent.state_reason != ASKED_FOR_HELP
        ):
            return seen or AgentState.IDLE
        return agent.state
    if seen is None:
        if agent.state is AgentState.STARTING:
            return agent.state
        return AgentState.BUSY if changed else agent.state
    if agent.state is AgentState.STUCK and seen is AgentState.BUSY and not changed:
        return AgentState.STUCK
    return seen


def _help_and_stuck(
    run: _Run,
    rules: Rules,
    lines: tuple[str, ...] | None,
    said: tuple[str, ...] | None,
    target: AgentState,
    changed: bool,
) -> AgentState:
    agent = run.agent
    if said is not None:
        asking = next((ln for ln in bottom(list(said), 3) if rules.help.search(ln)), None)
        if asking is not None and fingerprint(asking) != run.track.help_digest:
            run.track = replace(run.track, help_digest=fingerprint(asking))
            run.go(AgentState.WAITING, ASKED_FOR_HELP)
            run.emit(
                AgentNeedsHuman(
                    agent_id=agent.id,
                    project=agent.project,
                    question=asking.strip(),
                    last_lines=_last(lines),
                )
            )
            return AgentState.WAITING
    if agent.state is AgentState.WAITING and agent.state_reason == ASKED_FOR_HELP:
        return AgentState.WAITING if not changed else target
    if agent.state is AgentState.STUCK and not changed:
        return AgentState.STUCK  # until its screen moves again
    if target not in (AgentState.BUSY, AgentState.STUCK, AgentState.IDLE):
        return target
    reason = _stuck_reason(run, rules, lines, busy=target is not AgentState.IDLE)
    if reason is None:
        return AgentState.BUSY if target is AgentState.STUCK else target
    if run.agent.state is not AgentState.STUCK:
        run.go(AgentState.STUCK, reason)
        run.emit(
            AgentStuck(
                agent_id=agent.id, project=agent.project, reason=reason, last_lines=_last(lines)
            )
        )
    return AgentState.STUCK


def _stuck_reason(
    run: _Run, rules: Rules, lines: tuple[str, ...] | None, *, busy: bool
) -> str | None:
    track, now, agent = run.track, run.now, run.agent
    if lines is not None:
        errors = Counter(ln.strip() for ln in lines if rules.error.search(ln))
        for line, count in errors.most_common():
            if count < rules.stuck_repeated_error:
                break
            if line not in track.reported_errors:
                run.track = replace(track, reported_errors=(*track.reported_errors, line))
                return f"the same error {count} times: {line[:200]}"
    if not busy:
        return None
    quiet = now - track.last_output_at
    if quiet >= rules.stuck_no_output:
        return f"busy with no new output for {minutes(quiet)}"
    if track.last_hook_at is not None and agent.state in (AgentState.BUSY, AgentState.STUCK):
        since = now - max(track.last_tool_at or 0.0, agent.state_since)
        if since >= rules.stuck_no_tool:
            return f"busy with no tool call for {minutes(since)}"
    return None


def _escalate(run: _Run, rules: Rules, lines: tuple[str, ...] | None) -> None:
    agent = run.agent
    if agent.state not in (AgentState.WAITING, AgentState.STUCK):
        if run.track.escalated:
            run.track = replace(run.track, escalated=0)
        return
    waited = run.now - agent.state_since
    level = 0
    if waited >= rules.waiting_critical:
        level = 2
    elif waited >= rules.waiting_warn and agent.state is AgentState.WAITING:
        level = 1
    if level > run.track.escalated:
        run.track = replace(run.track, escalated=level)
        run.emit(
            AgentWaitingTooLong(
                agent_id=agent.id,
                project=agent.project,
                level="critical" if level == 2 else "warning",
                minutes=int(waited // 60),
                state=agent.state.value,
                reason=agent.state_reason,
                last_lines=_last(lines),
            )
        )


# -- helpers ----------------------------------------------------------------------------


def fingerprint(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def prompt_head(text: str) -> str:
    """The part of a prompt that identifies its echo on the screen."""
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return first[:HEAD_CHARS]


def after_prompt(lines: tuple[str, ...], head: str) -> tuple[str, ...]:
    """The lines below the last echo of the prompt that starts ``head`` (all without one)."""
    if head:
        for index in range(len(lines) - 1, -1, -1):
            if head in lines[index]:
                return lines[index + 1 :]
    return lines


def _asked_line(question: str, patterns: PanePatterns) -> str:
    """The line of a pane's question that the waiting pattern matched."""
    lines = question.splitlines()
    if patterns.waiting is not None:
        for line in reversed(lines):
            if patterns.waiting.search(line):
                return line
    return next((ln for ln in lines if ln.strip()), "")


def _last(lines: tuple[str, ...] | None) -> tuple[str, ...]:
    return tuple(bottom(list(lines), LAST_LINES)) if lines is not None else ()


def _why(state: AgentState) -> str:
    return {
        AgentState.IDLE: "waiting for input",
        AgentState.BUSY: "working",
        AgentState.WAITING: "asks a question",
    }.get(state, "seen on the pane")


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min" if seconds >= 60 else f"{int(seconds)} s"
