"""Prompt text made safe to paste into an agent's pane.

Text reaches a pane as a literal paste, so tmux never interprets it; but the program in
the pane would still act on terminal control sequences inside the text (an ESC could
cancel a dialog, a bracketed-paste end marker could turn the rest into keystrokes).
So every control character except newline and tab is removed, escape sequences whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from farmbot.errors import CommandError

# CSI / OSC / other ESC sequences first (so their parameters go with them), then any
# remaining C0 control except \t and \n, DEL, and the C1 range.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI ... final byte
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC ... BEL or ST
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"  # DCS, SOS, PM, APC ... ST
    r"|\x1b[@-Z\\-_]"  # two-byte sequences
    r"|\x1b"  # a lone ESC
)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")


@dataclass(frozen=True, slots=True)
class CleanText:
    """A prompt without terminal control, and how much was taken out."""

    text: str
    removed: int  # characters removed as terminal control


def clean_prompt(text: str, max_bytes: int) -> CleanText:
    """Return ``text`` without terminal control, or raise CommandError when unusable."""
    normalized = text.replace("\r\n", "\n").replace("\r", "\n")
    without_escapes = _ESCAPES.sub("", normalized)
    cleaned = _CONTROLS.sub("", without_escapes)
    removed = len(normalized) - len(cleaned)
    cleaned = cleaned.strip("\n")
    if not cleaned.strip():
        raise CommandError("nothing to send: the text is empty once control characters are removed")
    size = len(cleaned.encode("utf-8"))
    if size > max_bytes:
        raise CommandError(
            f"text too long: {size} bytes; the limit is {max_bytes} bytes "
            "(supervisor.prompt_max_bytes). Put long instructions in a file in the "
            "agent's worktree and send a prompt that points to it."
        )
    return CleanText(cleaned, removed)
