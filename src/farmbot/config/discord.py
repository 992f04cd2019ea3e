"""The ``[discord]`` section: the bot's token, the guilds it serves, where alerts go.

::

    [discord]
    token = "env:FARMBOT_DISCORD_TOKEN"      # Developer Portal → Bot → Reset Token
    guild_ids = [123456789012345678]         # slash commands are synced here at start
    alert_channels = [234567890123456789]    # channel ids that get alerts
    alert_min_severity = "warning"
    threads = "none"                         # or "project" / "agent": a thread per each
    # api_base = "https://discord.com/api/v10"   # a REST proxy, or a test server
    # gateway_url = "wss://gateway.discord.gg/"  # default: Discord's (or /gateway/bot of api_base)

People are identified by their numeric user id: ``[users.alice] discord = 345678901234567890``.
The token is a secret: written ``env:NAME`` only, never shown in errors, logs or ``repr``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from farmbot.config import reader as tk
from farmbot.config.platform import NUMBER_IDS, ChatPlatform
from farmbot.config.routes import AlertRoute
from farmbot.errors import ConfigError
from farmbot.messages import Severity

DISCORD_API = "https://discord.com/api/v10"
Threads = Literal["none", "project", "agent"]
THREADS: tuple[Threads, ...] = ("none", "project", "agent")
_TOKEN = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_WS_URL = re.compile(r"wss?://[^\s/]+(/\S*)?")
MAX_SNOWFLAKE = 2**63 - 1
_NONE: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, repr=False)
class DiscordConfig:
    """How farmbot talks to Discord. ``token`` never shows in ``repr``."""

    token: str = field(repr=False)
    guild_ids: tuple[int, ...] = ()
    alert_channels: tuple[str, ...] = ()  # channel ids, as alert routes carry them
    alert_min_severity: Severity = Severity.WARNING
    threads: Threads = "none"
    api_base: str = DISCORD_API
    gateway_url: str | None = None  # None: Discord's, or what api_base's /gateway/bot says

    def __repr__(self) -> str:
        return (
            f"DiscordConfig(token=<hidden>, guild_ids={self.guild_ids!r}, "
            f"alert_channels={self.alert_channels!r}, "
            f"alert_min_severity='{self.alert_min_severity}', threads={self.threads!r}, "
            f"api_base={self.api_base!r}, gateway_url={self.gateway_url!r})"
        )


def parse_discord(t: tk.Table) -> DiscordConfig:
    """Read ``[discord]``; errors name the key, never the token."""
    d = DiscordConfig(token="")
    token = t.need("token", tk.secret)
    if token.lower().startswith("bot "):
        raise t.error("token", 'holds "Bot " and a token; store the token alone')
    if not _TOKEN.fullmatch(token):
        raise t.error(
            "token",
            "does not look like a bot token (three parts joined by dots: Developer Portal → "
            "your application → Bot → Reset Token)",
        )
    config = DiscordConfig(
        token=token,
        guild_ids=tuple(int(g) for g in t.get("guild_ids", _snowflakes("guild"), _NONE)),
        alert_channels=t.get("alert_channels", _snowflakes("channel"), _NONE),
        alert_min_severity=Severity.parse(
            t.get("alert_min_severity", tk.text(tk.severity), str(d.alert_min_severity))
        ),
        threads=_threads(t.get("threads", tk.text(_thread_mode), str(d.threads))),
        api_base=t.get("api_base", tk.text(tk.http_url), d.api_base).rstrip("/"),
        gateway_url=t.get("gateway_url", tk.text(_ws_url)),
    )
    t.finish()
    return config


def discord_routes(config: DiscordConfig) -> tuple[AlertRoute, ...]:
    """The alert routes ``alert_channels`` stand for: every project, from the minimum severity."""
    return tuple(
        AlertRoute("discord", channel, config.alert_min_severity)
        for channel in config.alert_channels
    )


# What config, authorization, alerts and reloading know of Discord (config.chats).
DISCORD: ChatPlatform[DiscordConfig] = ChatPlatform(
    "discord",
    parse=lambda t, _projects: parse_discord(t),
    routes=discord_routes,
    ids=NUMBER_IDS,  # [users.alice] discord = 345678901234567890
    hears=True,
    restart=True,
)


def _snowflakes(what: str) -> tk.Conv[tuple[str, ...]]:
    """An array of Discord ids (integers, or numeric strings as copied from Discord)."""

    def conv(t: tk.Table, key: str, raw: object) -> tuple[str, ...]:
        example = f"an array of {what} ids (like [234567890123456789])"
        if not isinstance(raw, list):
            raise tk.type_error(key, example, raw)
        ids: list[str] = []
        for i, item in enumerate(raw):
            where = f"{key}[{i}]"
            if isinstance(item, str) and item.isascii() and item.isdecimal():
                item = int(item)
            if isinstance(item, bool) or not isinstance(item, int):
                raise tk.type_error(where, f"a {what} id (right-click it → Copy ID)", item)
            if not 0 < item <= MAX_SNOWFLAKE:
                raise ConfigError(where, f"{item} is not a Discord id")
            ids.append(str(item))
        if len(set(ids)) != len(ids):
            raise ConfigError(key, f"lists a {what} twice")
        return tuple(ids)

    return conv


def _thread_mode(value: str, shown: str) -> str | None:
    if value in THREADS:
        return None
    return f'unknown threads mode {shown} (use "none", "project" or "agent")'


def _threads(value: str) -> Threads:
    return next(mode for mode in THREADS if mode == value)


def _ws_url(value: str, shown: str) -> str | None:
    if _WS_URL.fullmatch(value):
        return None
    return "must be a ws:// or wss:// URL"
