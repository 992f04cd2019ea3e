"""The ``[telegram]`` section: the bot's token, how it receives updates, where alerts go.

::

    [telegram]
    token = "env:FARMBOT_TELEGRAM_TOKEN"     # from @BotFather; never written in the file
    # base_url = "http://localhost:8081/bot" # a self-hosted Bot API server (default Telegram's)
    mode = "polling"                         # or "webhook"
    # webhook_url = "https://farm.example.com"   # webhook mode: where Telegram reaches
    # webhook_secret = "env:FARMBOT_TELEGRAM_WEBHOOK_SECRET"  # farmbot's web server
    alert_chats = [-1001234567890]           # chat ids (or "@channel") that get alerts
    alert_min_severity = "warning"
    poll_timeout = 30                        # seconds one long poll waits

    [telegram.topics]                        # in forum supergroups among alert_chats,
    web = 7                                  # project "web" -> message_thread_id 7

People are identified by their numeric user id: ``[users.alice] telegram = 1001``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Literal

from farmbot.config import reader as tk
from farmbot.config.platform import NUMBER_IDS, ChatPlatform
from farmbot.config.routes import AlertRoute
from farmbot.errors import ConfigError
from farmbot.messages import Severity

TELEGRAM_API = "https://api.telegram.org/bot"
TELEGRAM_FILES = "https://api.telegram.org/file/bot"
MAX_POLL_TIMEOUT = 50.0  # seconds; Telegram's long polls end well before a minute
_TOKEN = re.compile(r"[0-9]+:[A-Za-z0-9_-]+")
_WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")  # Telegram's rule for secret_token
_USERNAME = re.compile(r"@[A-Za-z][A-Za-z0-9_]{3,}")

Mode = Literal["polling", "webhook"]


@dataclass(frozen=True, slots=True, repr=False)
class TelegramConfig:
    """How farmbot talks to Telegram. ``token`` and ``webhook_secret`` never show in repr."""

    token: str
    base_url: str = TELEGRAM_API
    base_file_url: str = TELEGRAM_FILES
    mode: Mode = "polling"
    webhook_url: str | None = None  # the public https URL of farmbot's web server
    webhook_secret: str | None = None
    alert_chats: tuple[int | str, ...] = ()
    alert_min_severity: Severity = Severity.WARNING
    topics: Mapping[str, int] = field(default_factory=dict)  # project -> message_thread_id
    poll_timeout: float = 30.0

    def __repr__(self) -> str:
        secret = ", webhook_secret=<hidden>" if self.webhook_secret else ""
        return (
            f"TelegramConfig(token=<hidden>{secret}, base_url={self.base_url!r}, "
            f"mode={self.mode!r}, webhook_url={self.webhook_url!r}, "
            f"alert_chats={self.alert_chats!r}, alert_min_severity={self.alert_min_severity}, "
            f"topics={dict(self.topics)!r}, poll_timeout={self.poll_timeout:g})"
        )


def parse_telegram(t: tk.Table, projects: Collection[str] | None = None) -> TelegramConfig:
    """Read ``[telegram]``; ``projects``, when given, are the names ``topics`` may use."""
    token = t.need("token", tk.secret)
    if not _TOKEN.fullmatch(token):
        raise t.error("token", "does not look like a bot token (digits:letters, from @BotFather)")
    base_url = t.get("base_url", tk.text(tk.http_url), TELEGRAM_API)
    mode = t.get("mode", tk.text(_mode), "polling")
    config = TelegramConfig(
        token=token,
        base_url=base_url,
        base_file_url=t.get("base_file_url", tk.text(tk.http_url), _file_url(base_url)),
        mode="webhook" if mode == "webhook" else "polling",
        webhook_url=t.get("webhook_url", tk.text(_https_url)),
        webhook_secret=t.get("webhook_secret", tk.secret),
        alert_chats=t.get("alert_chats", _chats, ()),
        alert_min_severity=Severity.parse(
            t.get("alert_min_severity", tk.text(tk.severity), "warning")
        ),
        topics=_topics(t.table("topics"), projects),
        poll_timeout=t.get("poll_timeout", tk.number, 30.0),
    )
    if config.poll_timeout > MAX_POLL_TIMEOUT:
        raise t.error("poll_timeout", f"must be at most {MAX_POLL_TIMEOUT:g} seconds")
    if config.webhook_secret is not None and not _WEBHOOK_SECRET.fullmatch(config.webhook_secret):
        raise t.error("webhook_secret", "must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
    if config.mode == "webhook":
        why = ' (mode = "webhook")'
        if config.webhook_url is None:
            raise t.error("webhook_url", f"missing{why}: the public https URL of farmbot's web")
        if config.webhook_secret is None:
            raise t.error("webhook_secret", f'missing{why}; use "env:NAME" or "vault:NAME"')
    t.finish()
    return config


def telegram_routes(config: TelegramConfig) -> tuple[AlertRoute, ...]:
    """The alert routes ``alert_chats`` stand for: every project, from the minimum severity."""
    return tuple(
        AlertRoute("telegram", str(chat), config.alert_min_severity) for chat in config.alert_chats
    )


# What config, authorization, alerts and reloading know of Telegram (config.chats).
TELEGRAM: ChatPlatform[TelegramConfig] = ChatPlatform(
    "telegram",
    parse=lambda t, projects: parse_telegram(t, projects=projects or None),
    routes=telegram_routes,
    ids=NUMBER_IDS,  # [users.alice] telegram = 1001
    hears=True,
    restart=True,
)


def _file_url(base_url: str) -> str:
    """Where a self-hosted server serves files: ``.../bot`` -> ``.../file/bot``."""
    if base_url == TELEGRAM_API:
        return TELEGRAM_FILES
    head, sep, _ = base_url.rstrip("/").rpartition("/bot")
    return f"{head}/file/bot" if sep else TELEGRAM_FILES


def _chats(t: tk.Table, key: str, raw: object) -> tuple[int | str, ...]:
    """An array of chat ids: integers, numeric strings or ``"@channelname"``."""
    if not isinstance(raw, list):
        raise tk.type_error(key, 'an array of chat ids (like [-1001234567890, "@ops"])', raw)
    chats: list[int | str] = []
    for i, item in enumerate(raw):
        where = f"{key}[{i}]"
        if isinstance(item, int) and not isinstance(item, bool):
            chats.append(item)
        elif isinstance(item, str) and re.fullmatch(r"-?[0-9]+", item):
            chats.append(int(item))
        elif isinstance(item, str) and _USERNAME.fullmatch(item):
            chats.append(item)
        else:
            raise tk.type_error(where, 'a chat id (an integer, or "@channelname")', item)
    if len(set(chats)) != len(chats):
        raise ConfigError(key, "lists a chat twice")
    return tuple(chats)


def _topics(t: tk.Table, projects: Collection[str] | None) -> dict[str, int]:
    topics = t.items(tk.integer(1))
    for project in topics:
        problem = tk.project_name(project, f"'{project}'")
        if problem:
            raise t.error(project, problem)
        if projects is not None and project not in projects:
            close = tk.closest(project, projects)
            hint = f"; did you mean '{close}'?" if close else ""
            known = ", ".join(sorted(projects)) or "none"
            raise t.error(project, f"unknown project '{project}' (known: {known}){hint}")
    return topics


def _mode(value: str, shown: str) -> str | None:
    return (
        None
        if value in ("polling", "webhook")
        else f'unknown mode {shown} (use "polling" or "webhook")'
    )


def _https_url(value: str, shown: str) -> str | None:
    if re.fullmatch(r"https://[^\s/]+(/\S*)?", value):
        return None
    return f"must be an https:// URL (Telegram calls webhooks over https only), got {shown}"
