"""What configuration knows of one chat platform, declared once, in its own config module.

A chat platform (Telegram, Slack, Discord) is one ``ChatPlatform`` value at the end of
``config/<name>.py``, listed in ``config.chats.CHATS``. Whatever in farmbot used to name
the platforms one by one iterates over that list instead: the loader (reading
``[<name>]``, the alert routes its section stands for, the check that a route's platform
is configured, ``[users.<person>] <name> = <id>``), ``[alerts]`` (the interfaces a route
may name, the ones ``deaf_after`` applies to), ``[gates] interfaces``, authorization (who
an incoming id belongs to) and reloading (a section only a restart applies).

The adapter that speaks the platform is not named here (config never imports adapters):
it is registered with one line in ``farmbot.build.INTERFACES``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from farmbot.config import reader as tk
from farmbot.config.routes import AlertRoute

__all__ = ["NUMBER_IDS", "TEXT_IDS", "ChatPlatform", "UserIds"]

C = TypeVar("C")


@dataclass(frozen=True, slots=True)
class UserIds:
    """How a platform's people are written in ``[users.<person>]`` and recognised."""

    read: tk.Conv[int | str]  # reads ``[users.<person>] <platform> = ...``
    quoted: bool  # written as a TOML string ("U0123ABCD") rather than a number

    def same(self, configured: int | str, incoming: str) -> bool:
        """Whether a configured id is the one a message carries (platforms send text)."""
        return str(configured) == incoming

    def literal(self, incoming: str) -> str:
        """An incoming id as it would be written in farmbot.toml (told to strangers)."""
        return f'"{incoming}"' if self.quoted else incoming


NUMBER_IDS = UserIds(tk.integer(1), quoted=False)  # telegram = 1001
TEXT_IDS = UserIds(tk.text(tk.nonempty), quoted=True)  # slack = "U0123ABCD"


@dataclass(frozen=True, slots=True)
class ChatPlatform(Generic[C]):
    """One chat platform: its section, its people's ids, and what config does with them.

    ``name`` is at once the interface's name (in alert routes, ``Incoming.platform``,
    ``[gates] interfaces``), its section (``[telegram]``) and its key in
    ``[users.<person>]``; they are the same word on purpose, so a person learns one.
    """

    name: str
    # Reads the ``[<name>]`` table (``finish()`` included) into the section's config; it
    # gets the configured projects' names (Telegram checks its topics against them).
    parse: Callable[[tk.Table, Sequence[str]], C]
    routes: Callable[[C], tuple[AlertRoute, ...]]  # what alert_chats/_channels stand for
    ids: UserIds
    hears: bool = True  # reports whether it hears, so it can go deaf (alerts.deaf_after)
    restart: bool = True  # its section is read once, at start: a change needs a restart
