"""``[node]``: this machine's name in a farm of several, and the farm's timings.

::

    [node]
    name = "gpu"            # default: this machine's host name
    heartbeat = 3           # seconds between heartbeats; quiet for 3 of them = "node down"
    lease = 15              # seconds a claimed command is held (renewed while it runs)
    answer_timeout = 30     # seconds a command routed to another node is waited for

The section matters only with a shared PostgreSQL database (``[storage] url``). With
SQLite there is one node: agents get its name, and nothing else changes.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field

from farmbot.config import reader as tk

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
DOWN_AFTER = 3  # heartbeats a node may miss before it is "node down"


def default_node_name() -> str:
    """This machine's host name (its first label), as a node name."""
    host = socket.gethostname().split(".", 1)[0]
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "-", host).strip("-_")[:63]
    return cleaned or "node"


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """``[node]``: this machine's name in a farm of nodes, and its heartbeat."""

    name: str = field(default_factory=default_node_name)
    heartbeat: float = 3.0
    lease: float = 15.0
    answer_timeout: float = 30.0

    @property
    def down_after(self) -> float:
        """Seconds without a heartbeat after which a node is "node down"."""
        return DOWN_AFTER * self.heartbeat


def node_name(value: str, shown: str) -> str | None:
    if _NAME.fullmatch(value):
        return None
    return (
        f"invalid node name {shown}: use 1-63 of A-Z, a-z, 0-9, '.', '-' and '_',"
        " starting with a letter or digit"
    )


def parse_node(t: tk.Table) -> NodeConfig:
    """Read ``[node]``; every problem names its key."""
    d = NodeConfig()
    config = NodeConfig(
        name=t.get("name", tk.text(node_name), d.name),
        heartbeat=t.get("heartbeat", tk.number, d.heartbeat),
        lease=t.get("lease", tk.number, d.lease),
        answer_timeout=t.get("answer_timeout", tk.number, d.answer_timeout),
    )
    if not 0.2 <= config.heartbeat <= 60:
        raise t.error("heartbeat", f"must be from 0.2 to 60 seconds, got {config.heartbeat:g}")
    if config.lease < 1:
        raise t.error("lease", f"must be at least 1 second, got {config.lease:g}")
    t.finish()
    return config
