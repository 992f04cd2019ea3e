"""Reading an agent's state off its pane, for CLIs that send no structured events.

Pure functions over captured lines, driven by the profile's patterns, reading the bottom
of the screen as a whole (``tests/screens/`` holds real screens of every CLI a profile is
built in for, and ``tests/test_panes.py`` checks each):

- **A visible question wins.** When the waiting pattern (a dialog's question, its footer,
  its selected option) matches, the pane is waiting -- even though an idle marker shows
  inside the dialog (Codex marks the selected option with the same ``›`` as its prompt) --
  unless the screen has moved on past it: a busy marker after it (the agent works again),
  or a fresh idle prompt ending the screen (REPL-style CLIs keep answered questions in
  their history).
- **Busy next.** A busy indicator near the bottom means busy: TUIs draw their "esc to
  interrupt" line above or below an input box that is on screen all the time, so the box
  alone is no proof of idle. For CLIs that show no busy marker while an answer streams
  (Codex, aider), a prompt the CLI echoed with no end-of-turn line after it is busy too.
- **Then idle**, when the idle marker shows; else the pane does not say (``None``).
- A screen that ends with tmux's ``Pane is dead (...)`` says nothing: whether an agent is
  alive is read from tmux's process table, never from its last screen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from farmbot.config.schema import AgentProfile
from farmbot.models import AgentState

WINDOW = 12  # how many non-empty bottom lines decide
DEAD = "Pane is dead ("


@dataclass(frozen=True, slots=True)
class PanePatterns:
    """What a profile's screens look like: the patterns that tell an agent's state."""

    idle: re.Pattern[str] | None
    busy: re.Pattern[str] | None
    waiting: re.Pattern[str] | None
    echo: re.Pattern[str] | None = None  # a prompt as the CLI shows it in its history
    turn_end: re.Pattern[str] | None = None  # a line that ends the CLI's turn
    input: re.Pattern[str] | None = None  # the input line; group 1: what is typed on it

    @classmethod
    def of(cls, profile: AgentProfile) -> PanePatterns:
        def compile_(pattern: str | None) -> re.Pattern[str] | None:
            return re.compile(pattern, re.MULTILINE) if pattern else None

        return cls(
            compile_(profile.idle_pattern),
            compile_(profile.busy_pattern),
            compile_(profile.waiting_pattern),
            compile_(profile.echo_pattern),
            compile_(profile.turn_end_pattern),
            compile_(profile.input_pattern),
        )


def _last_match(pattern: re.Pattern[str] | None, lines: list[str], end: int | None = None) -> int:
    if pattern is None:
        return -1
    for index in range((len(lines) if end is None else end) - 1, -1, -1):
        if pattern.search(lines[index]):
            return index
    return -1


def bottom(lines: list[str], count: int = WINDOW) -> list[str]:
    """The last ``count`` non-empty lines, right-stripped."""
    kept = [line.rstrip() for line in lines if line.strip()]
    return kept[-count:]


def classify(lines: list[str], patterns: PanePatterns) -> AgentState | None:
    """IDLE, BUSY or WAITING as the pane shows it, or None when it does not say."""
    tail = bottom(lines)
    if not tail or DEAD in tail[-1]:  # tmux writes it at the cursor, even mid-line
        return None
    last = len(tail) - 1
    waiting = _last_match(patterns.waiting, tail)
    idle = _last_match(patterns.idle, tail)
    busy = _last_match(patterns.busy, tail)
    fresh_prompt = idle == last  # an idle prompt ends the screen
    if waiting >= 0 and not (fresh_prompt and idle > waiting):
        return AgentState.BUSY if busy > waiting else AgentState.WAITING
    if busy >= 0 and not (fresh_prompt and idle > busy):
        return AgentState.BUSY
    if _mid_turn(lines, patterns, idle >= 0):
        return AgentState.BUSY
    if idle >= 0:
        return AgentState.IDLE
    return None


def _mid_turn(lines: list[str], patterns: PanePatterns, has_prompt: bool) -> bool:
    """Whether the last prompt the CLI echoed has no end-of-turn line after it."""
    if patterns.echo is None or patterns.turn_end is None:
        return False
    shown = [line.rstrip() for line in lines if line.strip()]
    # The input line itself matches the echo too: it is the last match while idle.
    end = _last_match(patterns.idle, shown) if has_prompt else len(shown)
    echo = _last_match(patterns.echo, shown, end if end >= 0 else len(shown))
    if echo < 0:
        return False
    return _last_match(patterns.turn_end, shown[echo + 1 :]) < 0


def waiting_question(lines: list[str], patterns: PanePatterns) -> str:
    """The lines of the question a waiting pane shows: from a few lines above the first
    match of the dialog (its question; a footer or option may match too) to the bottom."""
    tail = bottom(lines, 20)
    if patterns.waiting is None:
        return ""
    matches = [i for i, line in enumerate(tail) if patterns.waiting.search(line)]
    if not matches:
        return ""
    # The dialog's own lines: the matches within ten lines of its last one.
    first = next(i for i in matches if i >= matches[-1] - 10)
    return "\n".join(tail[max(0, first - 4) :])


def input_line(lines: list[str], patterns: PanePatterns) -> str | None:
    """What is typed on the CLI's input line ("" when nothing), or None when the screen
    shows no input line (or the profile has no ``input_pattern``).

    The last line that matches near the bottom is the input line (a TUI's box has hints
    under it); a multi-line draft's first line is what it shows.
    """
    if patterns.input is None:
        return None
    for line in reversed(bottom(lines)):
        found = patterns.input.search(line)
        if found is not None:
            typed = found.group(1) if found.re.groups else None
            return (typed or "").strip()
    return None
