"""Put farmbot's hooks into an agent's ``.claude/settings.local.json``.

Claude Code merges that file with the project's and the user's settings. farmbot adds
one hook per event it watches and never clobbers anything else: other keys and other
hooks are kept, and earlier farmbot hooks are replaced, not duplicated. The file is
kept out of git through the repository's ``info/exclude`` (it may carry a hook token).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from farmbot.errors import CommandError
from farmbot.hook import valid_agent_id

SETTINGS = Path(".claude") / "settings.local.json"
TOKEN_FILE = Path(".claude") / "farmbot-hook-token"  # for hooks farmbot did not spawn
HOOK_EVENTS = (
    "SessionStart",
    "UserPromptSubmit",
    "PreToolUse",
    "PermissionRequest",
    "PostToolUse",
    "Notification",
    "Stop",
    "SubagentStop",
    "SessionEnd",
)
TOOL_EVENTS = frozenset({"PreToolUse", "PermissionRequest", "PostToolUse"})
TIMEOUT = 10  # seconds Claude Code waits for a hook; `farmbot hook` itself gives up after 2
# A PermissionRequest is held until a person decides (farmbot.hook.HOLD_TIMEOUT at most).
PERMISSION_TIMEOUT = 930


def default_hook_command(python: str = sys.executable) -> str:
    """The shell command that runs ``farmbot hook`` with this installation.

    The console script next to the interpreter starts faster than ``python -m farmbot``
    (no runpy; see bench/bench_hook.py), so it is preferred when it exists. ``-P`` keeps
    the agent's working directory off ``sys.path``: a project may have a ``farmbot/``.
    """
    script = Path(python).with_name("farmbot")
    if script.is_file() and os.access(script, os.X_OK):
        return f"{shlex.quote(str(script))} hook"
    return f"{shlex.quote(python)} -P -m farmbot hook"


def is_farmbot_hook(hook: object) -> bool:
    """Whether a hook entry is one farmbot installed (a ``farmbot hook`` command or our URL)."""
    if not isinstance(hook, dict):
        return False
    command, url = hook.get("command"), hook.get("url")
    if isinstance(command, str):
        return "farmbot" in command and " hook " in f"{command} "
    return isinstance(url, str) and "/hooks/claude/" in url


def install_hooks(
    workdir: Path, *, agent: str, command: str | None = None, http_url: str | None = None
) -> Path:
    """Merge farmbot's hooks into ``workdir/.claude/settings.local.json``; return its path.

    Give ``command`` (a ``command`` hook) or ``http_url`` (an ``http`` hook); with neither,
    the hook runs ``default_hook_command() --agent <agent>``. Raises ``CommandError`` when
    the existing file is not a JSON object (the file is left untouched).
    """
    if command is not None and http_url is not None:
        raise ValueError("give command or http_url, not both")
    if not valid_agent_id(agent):
        raise CommandError(
            f"invalid agent id {agent!r}: use 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    if not workdir.is_dir():
        raise CommandError(f"{workdir}: no such directory")
    if http_url is not None:
        hook: dict[str, Any] = {"type": "http", "url": http_url, "timeout": TIMEOUT}
    else:
        if command is None:
            command = f"{default_hook_command()} --agent {shlex.quote(agent)}"
        hook = {"type": "command", "command": command, "timeout": TIMEOUT}
    path = workdir / SETTINGS
    before, settings = _read_settings(path)
    merge_hooks(settings, hook, path)
    after = json.dumps(settings, indent=2, ensure_ascii=False) + "\n"
    if after != before:
        _write_atomically(path, after)
    exclude_from_git(workdir, SETTINGS.as_posix())
    return path


def write_token_file(workdir: Path, token: str) -> Path:
    """Write the agent's hook token to ``workdir/.claude/farmbot-hook-token`` (0600).

    ``farmbot hook --token-file`` reads it, so the token is on no command line. The file
    is kept out of git like the settings.
    """
    if not workdir.is_dir():
        raise CommandError(f"{workdir}: no such directory")
    path = workdir / TOKEN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(path, token + "\n", mode=0o600)
    exclude_from_git(workdir, TOKEN_FILE.as_posix())
    return path


def merge_hooks(settings: dict[str, Any], hook: dict[str, Any], path: Path) -> None:
    """Drop earlier farmbot hooks from ``settings`` and add ``hook`` for every event."""
    hooks = settings.setdefault("hooks", {})
    if not isinstance(hooks, dict):
        raise CommandError(f"{path}: 'hooks' is not a JSON object; fix or remove it")
    for event in list(hooks):
        groups = hooks[event]
        if not isinstance(groups, list):
            if event in HOOK_EVENTS:
                raise CommandError(f"{path}: 'hooks.{event}' is not a list; fix or remove it")
            continue
        kept = [group for group in map(_without_farmbot, groups) if group is not None]
        if kept or event in HOOK_EVENTS or len(kept) == len(groups):
            hooks[event] = kept
        else:  # only farmbot hooks were there, for an event farmbot no longer watches
            del hooks[event]
    for event in HOOK_EVENTS:
        group: dict[str, Any] = {"matcher": "*"} if event in TOOL_EVENTS else {}
        entry = dict(hook)
        if event == "PermissionRequest":  # held open until a person decides
            entry["timeout"] = PERMISSION_TIMEOUT
        group["hooks"] = [entry]
        hooks.setdefault(event, []).append(group)


def _without_farmbot(group: Any) -> Any:
    """The matcher group minus farmbot's hooks; None when nothing else was in it."""
    if not isinstance(group, dict) or not isinstance(group.get("hooks"), list):
        return group
    others = [h for h in group["hooks"] if not is_farmbot_hook(h)]
    if len(others) == len(group["hooks"]):
        return group
    return {**group, "hooks": others} if others else None


def _read_settings(path: Path) -> tuple[str | None, dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, {}
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"{path}: cannot read it: {exc}") from None
    try:
        settings = json.loads(text)
    except ValueError as exc:
        raise CommandError(f"{path}: not valid JSON ({exc}); fix it, then retry") from None
    if not isinstance(settings, dict):
        raise CommandError(f"{path}: expected a JSON object, found {type(settings).__name__}")
    return text, settings


def _write_atomically(path: Path, text: str, mode: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode is None:
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            mode = 0o600  # it may carry a hook token
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # whatever the umask
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def exclude_from_git(workdir: Path, relative: str) -> Path | None:
    """Add ``relative`` (a path under ``workdir``) to the repository's ``info/exclude``.

    Returns the exclude file, or None when ``workdir`` is not in a git work tree. A line
    that is already there is not added again.
    """
    try:
        found = subprocess.run(
            ["git", "-C", str(workdir), "rev-parse", "--show-prefix", "--git-path", "info/exclude"],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = found.stdout.splitlines()
    if found.returncode != 0 or len(lines) != 2:
        return None
    prefix, exclude = lines
    # A slash inside the pattern anchors it at the repository root, hence the prefix.
    pattern = prefix + relative
    exclude_file = workdir / exclude
    try:
        existing = exclude_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        existing = ""
    if pattern in (line.strip() for line in existing.splitlines()):
        return exclude_file
    exclude_file.parent.mkdir(parents=True, exist_ok=True)
    separator = "" if not existing or existing.endswith("\n") else "\n"
    with exclude_file.open("a", encoding="utf-8") as fh:
        fh.write(f"{separator}# farmbot: hook files may carry a token\n{pattern}\n")
    return exclude_file
