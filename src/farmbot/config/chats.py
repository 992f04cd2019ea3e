"""The chat platforms farmbot speaks, as configuration knows them: one line each.

Each is a ``ChatPlatform`` declared in its own module (``config/telegram.py``, ...);
everything that concerns chat platforms in config, authorization, alerts and reloading
iterates over ``CHATS`` (see ``config.platform``). The README's "Adding a chat interface"
lists the steps: a config module with its ``ChatPlatform``, a line here, the adapter, and
a line in ``farmbot.build.INTERFACES``.
"""

from __future__ import annotations

from typing import Any

from farmbot.config.discord import DISCORD
from farmbot.config.platform import ChatPlatform
from farmbot.config.slack import SLACK
from farmbot.config.telegram import TELEGRAM

__all__ = ["CHATS", "HEARING", "NAMES", "RESTART", "by_name"]

CHATS: tuple[ChatPlatform[Any], ...] = (
    TELEGRAM,
    SLACK,
    DISCORD,
)

NAMES = tuple(chat.name for chat in CHATS)
HEARING = tuple(chat.name for chat in CHATS if chat.hears)  # the ones that can go deaf
RESTART = tuple(chat.name for chat in CHATS if chat.restart)  # sections read at start only
_BY_NAME = {chat.name: chat for chat in CHATS}


def by_name(name: str) -> ChatPlatform[Any] | None:
    """The chat platform of that name (``Incoming.platform``), or None (web, cli, ...)."""
    return _BY_NAME.get(name)
