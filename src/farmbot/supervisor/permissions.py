"""Permission requests: what an agent asks to do, and the answer its CLI's hook takes.

Pure functions over a ``PermissionRequest`` hook payload (Claude Code; Codex sends the
same shape): a one-line summary and a detail for the gate a person decides, the part of
the request kept with the gate, and the decision JSON the hook answers with (verified
against Claude Code 2.1.332 and Codex 0.171.0, see docs/agent-clis.md):

- allow: ``{"behavior": "allow"}``; for the rest of the session, on Claude Code with an
  ``addRules`` entry whose ``destination`` is ``session`` (the same command is then not
  asked again). Codex refuses ``updatedPermissions`` (its hook then counts as failed and
  the dialog shows), so there the answer is a plain allow and farmbot keeps the rule
  itself: ``session_key`` is what a later request must match -- the same session, the
  same tool, the same input exactly (for Bash: the same command, not a prefix);
- deny: ``{"behavior": "deny", "message": ...}`` without ``interrupt`` -- the model gets the
  message as the tool's result and carries on with it (with ``interrupt`` it never would;
  Codex refuses it as it does ``updatedPermissions``).
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from farmbot.models import Decision

SUMMARY_CHARS = 120
DETAIL_LINES = 24
DETAIL_CHARS = 3000
NO_ANSWER: dict[str, Any] = {}  # the hook decides nothing: the CLI shows its own dialog


def request_of(payload: dict[str, Any]) -> dict[str, Any]:
    """What is kept of a request with its gate: the tool, its input, the CLI's session."""
    tool_input = payload.get("tool_input")
    return {
        "tool_name": str(payload.get("tool_name") or ""),
        "tool_input": tool_input if isinstance(tool_input, dict) else {},
        "session_id": str(payload.get("session_id") or ""),
    }


def session_key(request: dict[str, Any]) -> str | None:
    """What a request approved for the session is matched by (None: nothing to match).

    A request payload, or what ``request_of`` kept of one. The input's ``description``
    (the model's reason for the call, which it words anew each time) does not count.
    """
    session, tool = request.get("session_id"), request.get("tool_name")
    given = request.get("tool_input")
    if not isinstance(session, str) or not session or not isinstance(tool, str) or not tool:
        return None
    args = {k: v for k, v in given.items() if k != "description"} if isinstance(given, dict) else {}
    return json.dumps([session, tool, args], sort_keys=True, ensure_ascii=False)


def describe(payload: dict[str, Any]) -> tuple[str, str]:
    """(summary, detail) of a request: ``Bash: rm -rf build``, and what it would do."""
    tool = str(payload.get("tool_name") or payload.get("message") or "a tool")
    given = payload.get("tool_input")
    args: dict[str, Any] = given if isinstance(given, dict) else {}
    command, path = args.get("command"), args.get("file_path")
    if isinstance(command, str) and command:
        why = args.get("description")
        detail = f"$ {command}" + (f"\n({why})" if isinstance(why, str) and why else "")
        return _one_line(f"{tool}: {command}"), _clip(detail)
    if isinstance(path, str) and path:
        old, new = args.get("old_string"), args.get("new_string")
        if isinstance(old, str) and isinstance(new, str):
            diff = difflib.unified_diff(
                old.splitlines(), new.splitlines(), path, path, lineterm="", n=2
            )
            return _one_line(f"{tool}: {path}"), _clip("\n".join(diff))
        content = args.get("content")
        if isinstance(content, str):
            return _one_line(f"{tool}: {path}"), _clip(f"{path}:\n{content}")
        return _one_line(f"{tool}: {path}"), path
    if args:
        return _one_line(tool), _clip(json.dumps(args, indent=1, ensure_ascii=False))
    return _one_line(tool), ""


def hook_answer(
    decision: Decision, request: dict[str, Any], *, by: str, grants_rules: bool = True
) -> dict[str, Any]:
    """The JSON a ``PermissionRequest`` hook answers with to carry out ``decision``;
    ``grants_rules`` false: the CLI takes no rule (Codex), a session approval is an allow."""
    if decision.approved:
        verdict: dict[str, Any] = {"behavior": "allow"}
        if decision.session and grants_rules:
            verdict["updatedPermissions"] = [session_rule(request)]
    else:
        reason = decision.reason or f"{by} rejected this through farmbot"
        verdict = {"behavior": "deny", "message": reason}
    return {"hookSpecificOutput": {"hookEventName": "PermissionRequest", "decision": verdict}}


def session_rule(request: dict[str, Any]) -> dict[str, Any]:
    """A rule allowing this request (a Bash command, or the tool) for the session."""
    tool = str(request.get("tool_name") or "")
    args = request.get("tool_input") or {}
    rule: dict[str, Any] = {"toolName": tool}
    command = args.get("command") if isinstance(args, dict) else None
    if tool == "Bash" and isinstance(command, str) and command:
        rule["ruleContent"] = command
    return {"type": "addRules", "rules": [rule], "behavior": "allow", "destination": "session"}


def _one_line(text: str) -> str:
    first = " ".join(text.split())
    return first if len(first) <= SUMMARY_CHARS else first[: SUMMARY_CHARS - 1] + "…"


def _clip(text: str) -> str:
    lines = text.splitlines()
    kept = "\n".join(lines[:DETAIL_LINES])
    if len(lines) > DETAIL_LINES:
        kept += f"\n… ({len(lines) - DETAIL_LINES} more lines)"
    return kept if len(kept) <= DETAIL_CHARS else kept[: DETAIL_CHARS - 1] + "…"
