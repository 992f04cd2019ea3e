"""Hook event bodies exactly as Claude Code and Codex send them (see docs/agent-clis.md).

Every event carries ``session_id``, ``transcript_path``, ``cwd`` and ``hook_event_name``,
then its own fields. ``payload(name, **changes)`` (Claude Code) and ``codex_payload``
return a fresh deep copy to modify.
"""

from __future__ import annotations

import copy
from typing import Any

SESSION_ID = "5f0c6a7e-2b1d-4c8e-9a3f-0d1e2f3a4b5c"
CWD = "/home/dev/.local/state/farmbot/worktrees/web/builder-42"
TRANSCRIPT = (
    "/home/dev/.claude/projects/-home-dev--local-state-farmbot-worktrees-web-builder-42/"
    f"{SESSION_ID}.jsonl"
)
PROMPT_ID = "b7e2c1d0-9f8e-4a6b-8c7d-2e1f0a9b8c7d"

_COMMON: dict[str, Any] = {"session_id": SESSION_ID, "transcript_path": TRANSCRIPT, "cwd": CWD}

_BASH_INPUT = {
    "command": "python -m pytest -q tests/test_login.py",
    "description": "Run the login tests",
}

_TOOL: dict[str, Any] = {
    "prompt_id": PROMPT_ID,
    "permission_mode": "default",
    "effort": {"level": "medium"},
    "tool_name": "Bash",
    "tool_input": _BASH_INPUT,
}

PAYLOADS: dict[str, dict[str, Any]] = {
    "SessionStart": {
        **_COMMON,
        "hook_event_name": "SessionStart",
        "source": "startup",
        "model": "claude-sonnet-4-5-20250929",
    },
    "UserPromptSubmit": {
        **_COMMON,
        "hook_event_name": "UserPromptSubmit",
        "prompt_id": PROMPT_ID,
        "permission_mode": "default",
        "prompt": "Work on issue #42 of web: the login form rejects valid e-mail addresses.",
    },
    "PreToolUse": {
        **_COMMON,
        "hook_event_name": "PreToolUse",
        **_TOOL,
        "tool_use_id": "toolu_01HqXk3m9VfZ2bN7cR4sT8wY",
    },
    "PermissionRequest": {
        **_COMMON,
        "hook_event_name": "PermissionRequest",
        **_TOOL,
        "permission_suggestions": [
            {
                "type": "addRules",
                "rules": [{"toolName": "Bash", "ruleContent": "python -m pytest:*"}],
                "behavior": "allow",
                "destination": "localSettings",
            }
        ],
    },
    "PostToolUse": {
        **_COMMON,
        "hook_event_name": "PostToolUse",
        **_TOOL,
        "tool_use_id": "toolu_01HqXk3m9VfZ2bN7cR4sT8wY",
        "tool_response": {
            "stdout": "....F.\n=== FAILURES ===\n___ test_plus_address ___\n"
            "AssertionError: 'a+b@example.com' rejected\n1 failed, 5 passed in 0.42s",
            "stderr": "",
            "interrupted": False,
            "isImage": False,
        },
        "duration_ms": 1873,
    },
    "Notification": {
        **_COMMON,
        "hook_event_name": "Notification",
        "message": "Claude needs your permission to use Bash",
        "notification_type": "permission_prompt",
    },
    "Stop": {
        **_COMMON,
        "hook_event_name": "Stop",
        "permission_mode": "default",
        "stop_hook_active": False,
        "last_assistant_message": "Fixed the e-mail validation; all 6 login tests pass.",
    },
    "SubagentStop": {
        **_COMMON,
        "hook_event_name": "SubagentStop",
        "permission_mode": "default",
        "stop_hook_active": False,
    },
    "SessionEnd": {**_COMMON, "hook_event_name": "SessionEnd", "reason": "prompt_input_exit"},
}


def payload(event: str, **changes: Any) -> dict[str, Any]:
    """A fresh copy of the ``event`` body with ``changes`` applied."""
    body = copy.deepcopy(PAYLOADS[event])
    body.update(changes)
    return body


# Codex 0.171.0 sends the same event names with fewer fields (captured from the real CLI
# through farmbot's -c hooks; docs/agent-clis.md): a turn id and the model, no prompt id,
# no permission suggestions; PreToolUse's tool_input has no description.
CODEX_SESSION_ID = "01a2319c-7689-7701-bdec-d2e11acbf04b"
CODEX_TURN_ID = "01a2319c-8827-7ec2-957d-f48f1cd33214"
_CODEX_COMMON: dict[str, Any] = {
    "session_id": CODEX_SESSION_ID,
    "transcript_path": "/home/dev/.codex/sessions/2026/12/01/rollout-2026-12-01T12-37-18-"
    f"{CODEX_SESSION_ID}.jsonl",
    "cwd": CWD,
    "model": "gpt-5-codex",
    "permission_mode": "default",
}
_CODEX_TURN = {**_CODEX_COMMON, "turn_id": CODEX_TURN_ID}

CODEX_PAYLOADS: dict[str, dict[str, Any]] = {
    "SessionStart": {**_CODEX_COMMON, "hook_event_name": "SessionStart", "source": "startup"},
    "UserPromptSubmit": {
        **_CODEX_TURN,
        "hook_event_name": "UserPromptSubmit",
        "prompt": "create a.txt",
    },
    "PreToolUse": {
        **_CODEX_TURN,
        "hook_event_name": "PreToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": "touch a.txt"},
        "tool_use_id": "call_fake000004",
    },
    "PermissionRequest": {
        **_CODEX_TURN,
        "hook_event_name": "PermissionRequest",
        "tool_name": "Bash",
        "tool_input": {"command": "touch a.txt", "description": "Create a.txt?"},
    },
    "PostToolUse": {
        **_CODEX_TURN,
        "hook_event_name": "PostToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": "touch a.txt"},
        "tool_response": "",
        "tool_use_id": "call_fake000004",
    },
    "Stop": {
        **_CODEX_TURN,
        "hook_event_name": "Stop",
        "stop_hook_active": False,
        "last_assistant_message": "Done.",
    },
}


def codex_payload(event: str, **changes: Any) -> dict[str, Any]:
    """A fresh copy of Codex's ``event`` body with ``changes`` applied."""
    body = copy.deepcopy(CODEX_PAYLOADS[event])
    body.update(changes)
    return body
