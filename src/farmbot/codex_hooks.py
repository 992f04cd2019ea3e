"""farmbot's hooks for Codex CLI, given on its command line together with their trust.

Codex (0.171.0) runs a hook only once it is trusted: its user config records
``[hooks.state."<source>:<event>:<group>:<handler>"] trusted_hash = "sha256:..."``, and a
hook without a matching hash stops Codex at start on its "Hooks need review" screen.
farmbot neither edits the person's ``$CODEX_HOME`` (Codex rewrites ``config.toml`` itself,
and a hook there would run in the person's own sessions too) nor uses
``--dangerously-bypass-hook-trust`` (it trusts every hook, also those a repository ships
in ``.codex/``). It appends ``-c`` overrides to the agent's command instead: one per event
defining farmbot's ``farmbot hook`` command, and one ``hooks.state`` table trusting exactly
those hooks by the hash of their content. Overrides are Codex's "session flags" layer,
whose hook state Codex honours (a project's ``.codex/config.toml`` cannot trust its own
hooks); they live as long as that one process, so nothing else is trusted, and a changed
hook command is trusted again at the next spawn for its new content only.

The hash, as Codex computes it (verified against the hashes Codex 0.171.0 wrote itself
after "Trust all", see docs/agent-clis.md): SHA-256 over the canonical JSON (keys sorted,
no whitespace, UTF-8) of ``{"event_name": <snake_case event>, "matcher": <as given, for
the tool events only>, "hooks": [{"type": "command", "command": ..., "timeout": <given,
else 600>, "async": false}]}`` -- one handler at a time, ``statusMessage`` only when set.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from typing import Any

# The trust key's source for hooks given with -c (Codex's synthetic path of that layer).
SESSION_FLAGS_SOURCE = "/<session-flags>/config.toml"
# Events farmbot watches, as Codex names them in config and in its trust keys.
EVENTS = {
    "SessionStart": "session_start",
    "UserPromptSubmit": "user_prompt_submit",
    "PreToolUse": "pre_tool_use",
    "PermissionRequest": "permission_request",
    "PostToolUse": "post_tool_use",
    "Stop": "stop",
}
TOOL_EVENTS = frozenset({"PreToolUse", "PermissionRequest", "PostToolUse"})
DEFAULT_TIMEOUT = 600  # what Codex assumes for a handler without one


def trusted_hash(
    event: str,
    command: str,
    *,
    timeout: int | None = None,
    matcher: str | None = None,
    status_message: str | None = None,
) -> str:
    """The ``trusted_hash`` Codex requires of one command hook (``sha256:<hex>``).

    ``matcher`` counts only for the tool events: Codex drops it from the others.
    """
    if event not in EVENTS:
        raise ValueError(f"not a Codex hook event farmbot knows: {event!r}")
    _check(command)
    handler: dict[str, Any] = {
        "type": "command",
        "command": command,
        "timeout": max(DEFAULT_TIMEOUT if timeout is None else timeout, 1),
        "async": False,
    }
    if status_message is not None:
        handler["statusMessage"] = status_message
    identity: dict[str, Any] = {"event_name": EVENTS[event], "hooks": [handler]}
    if matcher is not None and event in TOOL_EVENTS:
        identity["matcher"] = matcher
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def trust_key(event: str, source: str = SESSION_FLAGS_SOURCE) -> str:
    """The ``hooks.state`` key of the first (only) handler of ``event`` in ``source``."""
    return f"{source}:{EVENTS[event]}:0:0"


def overrides(command: str, *, timeout: int, permission_timeout: int) -> list[str]:
    """``-c`` arguments that define ``command`` as the hook of every event in ``EVENTS``
    and trust exactly those hooks; PermissionRequest waits ``permission_timeout``."""
    _check(command)
    args: list[str] = []
    states: list[str] = []
    for event in EVENTS:
        seconds = permission_timeout if event == "PermissionRequest" else timeout
        matcher = "*" if event in TOOL_EVENTS else None
        where = f"matcher={_toml(matcher)}," if matcher is not None else ""
        handler = f"{{type={_toml('command')},command={_toml(command)},timeout={seconds}}}"
        args += ["-c", f"hooks.{event}=[{{{where}hooks=[{handler}]}}]"]
        digest = trusted_hash(event, command, timeout=seconds, matcher=matcher)
        states.append(f"{_toml(trust_key(event))}={{trusted_hash={_toml(digest)}}}")
    # One inline table: Codex splits a -c key at every dot, also inside quotes, and the
    # trust keys hold one ("config.toml").
    args += ["-c", "hooks.state={" + ",".join(states) + "}"]
    return args


def with_hooks(program: str, command: str, *, timeout: int, permission_timeout: int) -> str:
    """The shell command ``program`` (a profile's, ending in the codex invocation) with
    farmbot's hook overrides appended as arguments."""
    args = overrides(command, timeout=timeout, permission_timeout=permission_timeout)
    return f"{program} {shlex.join(args)}"


def _toml(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's; DEL must be escaped too)."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def _check(command: str) -> None:
    # Codex hashes the string it parsed; with no control characters the canonical JSON
    # farmbot hashes is byte for byte the one Codex does (serde_json escapes those alike,
    # but nobody's hook command needs them).
    unprintable = (
        c for c in command if ord(c) < 0x20 or ord(c) == 0x7F or 0xD800 <= ord(c) < 0xE000
    )
    if not command.strip() or any(unprintable):
        raise ValueError(f"a Codex hook command must be one printable line, got {command!r}")
