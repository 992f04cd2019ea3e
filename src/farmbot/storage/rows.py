"""Database rows to domain records (and the JSON columns back)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict

from farmbot.messages import Button, Buttons, Severity
from farmbot.models import (
    Agent,
    AgentKind,
    AgentState,
    Alert,
    AuditEntry,
    DesiredState,
    Event,
    Gate,
    GateStatus,
    OutboxItem,
    OutboxStatus,
    Project,
    Prompt,
    PromptStatus,
    QaRun,
)
from farmbot.storage.connection import encode_json


def project(r: sqlite3.Row) -> Project:
    return Project(r["name"], r["path"], bool(r["active"]), r["verify"], bool(r["is_git"]))


def agent(r: sqlite3.Row) -> Agent:
    return Agent(
        **{
            **dict(r),
            "kind": AgentKind(r["kind"]),
            "desired": DesiredState(r["desired"]),
            "state": AgentState(r["state"]),
        }
    )


def prompt(r: sqlite3.Row) -> Prompt:
    return Prompt(
        **{**dict(r), "status": PromptStatus(r["status"]), "wait_ready": bool(r["wait_ready"])}
    )


def event(r: sqlite3.Row) -> Event:
    return Event(**{**dict(r), "data": json.loads(r["data"])})


def gate(r: sqlite3.Row) -> Gate:
    return Gate(
        **{**dict(r), "status": GateStatus(r["status"]), "payload": json.loads(r["payload"])}
    )


def audit(r: sqlite3.Row) -> AuditEntry:
    return AuditEntry(**dict(r))


def qa_run(r: sqlite3.Row) -> QaRun:
    passed = r["passed"]
    return QaRun(
        **{
            **dict(r),
            "passed": None if passed is None else bool(passed),
            "timed_out": bool(r["timed_out"]),
        }
    )


def alert(r: sqlite3.Row, prefix: str = "") -> Alert:
    """An alert from its columns, optionally named ``<prefix><column>`` (joins)."""
    return Alert(
        id=r[prefix + "id"],
        event_id=r[prefix + "event_id"],
        kind=r[prefix + "kind"],
        severity=Severity.parse(r[prefix + "severity"]),
        agent_id=r[prefix + "agent_id"],
        project=r[prefix + "project"],
        title=r[prefix + "title"],
        text=r[prefix + "text"],
        pre=r[prefix + "pre"],
        buttons=decode_buttons(r[prefix + "buttons"]),
        dedupe_key=r[prefix + "dedupe_key"],
        created_at=r[prefix + "created_at"],
    )


def outbox_item(r: sqlite3.Row) -> OutboxItem:
    """An outbox row joined with its alert's columns prefixed ``a_``."""
    return OutboxItem(
        id=r["id"],
        alert=alert(r, "a_"),
        interface=r["interface"],
        channel=r["channel"],
        status=OutboxStatus(r["status"]),
        attempts=r["attempts"],
        next_attempt_at=r["next_attempt_at"],
        not_before=r["not_before"],
        last_error=r["last_error"],
        count=r["count"],
        created_at=r["created_at"],
        last_at=r["last_at"],
        delivered_at=r["delivered_at"],
    )


def encode_buttons(buttons: Buttons) -> str:
    return encode_json([[asdict(b) for b in row] for row in buttons])


def decode_buttons(text: str) -> Buttons:
    return tuple(
        tuple(Button(b["label"], b["command"], b.get("style")) for b in row)
        for row in json.loads(text)
    )
