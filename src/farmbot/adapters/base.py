"""What every interface (web, Telegram, Slack, ...) is to the rest of farmbot.

An interface translates: platform updates become ``Incoming`` values handed to the
injected ``on_incoming`` callback (the router), whose ``Reply`` the interface renders.
It decides nothing itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from farmbot.bot.replies import Reply


@dataclass(frozen=True, slots=True)
class Incoming:
    """One command from a person, on some platform."""

    platform: str  # "web", "cli", "telegram", "slack", "scheduler", ...
    user_id: str  # the platform's id of the person
    chat: str  # where it came from (chat id, channel id, "console")
    text: str  # command text, e.g. "/spawn builder 42"
    display_name: str = ""
    button: bool = False  # a button press rather than typed text


OnIncoming = Callable[[Incoming], Awaitable[Reply]]


class Interface(Protocol):
    """A way people reach farmbot."""

    name: str

    async def start(self, on_incoming: OnIncoming) -> None:
        """Start receiving; hand every command to ``on_incoming``."""

    async def stop(self) -> None:
        """Stop receiving and release resources. Safe to call twice."""
