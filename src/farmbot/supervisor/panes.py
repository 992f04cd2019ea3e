"""Reading an agent's state off its pane, for CLIs that send no structured events.

Pure functions over captured lines: the profile's patterns say what idle, busy and
waiting-for-a-human look like. The most recent signal in the bottom of the screen wins,
except that a busy indicator anywhere near the bottom means busy (TUIs draw their
"esc to interrupt" line above the input box, so the input box alone is no proof of idle).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from farmbot.config.schema import AgentProfile
from farmbot.models import AgentState

WINDOW = 12  # how many non-empty bottom lines decide


@dataclass(frozen=True, slots=True)
class PanePatterns:
    idle: re.Pattern[str] | None
    busy: re.Pattern[str] | None
    waiting: re.Pattern[str] | None
    input: re.Pattern[str] | None = None  # the input line; group 1: what is typed on it

    @classmethod
    def of(cls, profile: AgentProfile) -> PanePatterns:
        def compile_(pattern: str | None) -> re.Pattern[str] | None:
            return re.compile(pattern, re.MULTILINE) if pattern else None

        return cls(
            compile_(profile.idle_pattern),
            compile_(profile.busy_pattern),
            compile_(profile.waiting_pattern),
            compile_(profile.input_pattern),
        )


def _last_match(pattern: re.Pattern[str] | None, lines: list[str]) -> int:
    if pattern is None:
        return -1
    for index in range(len(lines) - 1, -1, -1):
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
    waiting = _last_match(patterns.waiting, tail)
    idle = _last_match(patterns.idle, tail)
    busy = _last_match(patterns.busy, tail)
    if waiting >= 0 and waiting > idle:
        return AgentState.WAITING if busy <= waiting else AgentState.BUSY
    # A prompt that ends the screen, below the last busy line, means that busy line is
    # history (REPL-style CLIs); TUIs keep hints under their input box, so there it isn't.
    if busy >= 0 and not (idle == len(tail) - 1 and idle > busy):
        return AgentState.BUSY
    if idle >= 0:
        return AgentState.IDLE
    return None


def waiting_question(lines: list[str], patterns: PanePatterns) -> str:
    """The lines of the question a waiting pane shows (from a few lines above the match)."""
    tail = bottom(lines, 20)
    index = _last_match(patterns.waiting, tail)
    if index < 0:
        return ""
    return "\n".join(tail[max(0, index - 4) :])


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
