"""farmbot's Codex hooks and their trust (farmbot/codex_hooks.py), with no Codex needed.

The hashes below are the ones Codex 0.171.0 wrote itself into ``config.toml`` after its
"Trust all" for this hooks.json (docs/agent-clis.md; tests/test_agent_clis.py checks the
recipe against the running CLI too)::

    {"hooks": {
     "PermissionRequest": [{"matcher": "*", "hooks": [
        {"type": "command", "command": "/bin/true --x 'é'", "timeout": 30}]}],
     "PreToolUse": [{"hooks": [{"type": "command", "command": "echo hi"}]}],
     "Stop": [{"matcher": "x", "hooks": [
        {"type": "command", "command": "echo a", "statusMessage": "m", "async": false},
        {"type": "command", "command": "echo b", "timeout": 5}]}]}}
"""

from __future__ import annotations

import shlex
import tomllib

import pytest

from farmbot import codex_hooks

SEEN_0_171_0 = [
    (
        "PermissionRequest",
        "/bin/true --x 'é'",
        {"timeout": 30, "matcher": "*"},
        "sha256:dc2117b584706f004e1b5106b1b7e51a7500e41d854347b1f64b823642e11f52",
    ),
    (
        "PreToolUse",
        "echo hi",
        {},
        "sha256:c2ab198fe0750494126041254c4d031ad06f4b267edca02168d8a6745e4141c5",
    ),
    (
        "Stop",
        "echo a",
        {"matcher": "x", "status_message": "m"},  # Codex drops a Stop hook's matcher
        "sha256:4644257cfeb5c2c3a00dab7faf26a540d357654f9c905bd7ed18237db211c908",
    ),
    (
        "Stop",
        "echo b",
        {"timeout": 5, "matcher": "x"},
        "sha256:e63a70b14f7a9aa52cdfb8041216809d8cfbc75601d66df8c1c833c58a791b48",
    ),
]


@pytest.mark.parametrize(("event", "command", "given", "expected"), SEEN_0_171_0)
def test_the_hash_is_the_one_codex_wrote_itself(
    event: str, command: str, given: dict[str, str | int], expected: str
) -> None:
    assert codex_hooks.trusted_hash(event, command, **given) == expected  # type: ignore[arg-type]


def test_a_changed_hook_has_another_hash() -> None:
    base = codex_hooks.trusted_hash("PermissionRequest", "farmbot hook", timeout=930, matcher="*")
    for changed in (
        codex_hooks.trusted_hash("PermissionRequest", "farmbot hook ", timeout=930, matcher="*"),
        codex_hooks.trusted_hash("PermissionRequest", "farmbot hook", timeout=931, matcher="*"),
        codex_hooks.trusted_hash("PermissionRequest", "farmbot hook", timeout=930),
        codex_hooks.trusted_hash("PreToolUse", "farmbot hook", timeout=930, matcher="*"),
    ):
        assert changed != base


def parsed(args: list[str]) -> dict[str, object]:
    """The ``-c key=value`` overrides as Codex reads them: the value is TOML."""
    assert args[::2] == ["-c"] * (len(args) // 2)
    found: dict[str, object] = {}
    for override in args[1::2]:
        key, _, value = override.partition("=")
        found[key] = tomllib.loads(f"v = {value}")["v"]
    return found


def test_overrides_define_one_hook_per_event_and_trust_exactly_those() -> None:
    command = "/opt/farm bot/bin/farmbot hook --agent builder-1"
    args = codex_hooks.overrides(command, timeout=10, permission_timeout=930)

    found = parsed(args)

    events = list(codex_hooks.EVENTS)
    assert list(found) == [f"hooks.{event}" for event in events] + ["hooks.state"]
    assert found["hooks.PermissionRequest"] == [
        {"matcher": "*", "hooks": [{"type": "command", "command": command, "timeout": 930}]}
    ]
    assert found["hooks.Stop"] == [
        {"hooks": [{"type": "command", "command": command, "timeout": 10}]}
    ]
    state = found["hooks.state"]
    assert isinstance(state, dict)
    assert sorted(state) == sorted(
        f"/<session-flags>/config.toml:{label}:0:0" for label in codex_hooks.EVENTS.values()
    )
    key = "/<session-flags>/config.toml:permission_request:0:0"
    digest = codex_hooks.trusted_hash("PermissionRequest", command, timeout=930, matcher="*")
    assert state[key] == {"trusted_hash": digest}


def test_with_hooks_appends_the_overrides_as_shell_words() -> None:
    command = "/opt/it's/farmbot hook --agent builder-1"
    line = codex_hooks.with_hooks("codex --no-daemon", command, timeout=10, permission_timeout=930)
    words = shlex.split(line)
    assert words[:2] == ["codex", "--no-daemon"]
    assert words[2:] == codex_hooks.overrides(command, timeout=10, permission_timeout=930)


@pytest.mark.parametrize("command", ["", "  ", "farmbot hook\n--agent x", "a\x7fb", "a\ud800"])
def test_a_command_codex_might_hash_otherwise_is_refused(command: str) -> None:
    with pytest.raises(ValueError, match="one printable line"):
        codex_hooks.overrides(command, timeout=10, permission_timeout=930)
