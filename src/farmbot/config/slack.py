"""The ``[slack]`` section: farmbot as a Slack app (Socket Mode or HTTP), and its alerts.

::

    [slack]
    bot_token = "env:FARMBOT_SLACK_BOT_TOKEN"     # xoxb-...
    app_token = "env:FARMBOT_SLACK_APP_TOKEN"     # xapp-..., Socket Mode (the default)
    # signing_secret = "env:FARMBOT_SLACK_SIGNING_SECRET"   # HTTP mode
    mode = "socket"                  # or "http": Slack POSTs to /hooks/slack/events
    api_url = "https://slack.com/api/"   # GovSlack: https://slack-gov.com/api/
    command = "/farm"                # the slash command of the app manifest
    alert_channels = ["C0123ABCD"]   # channel IDs that get alerts
    alert_min_severity = "warning"
    thread_per_agent = false         # true: each agent's alerts stay in one thread

Tokens and the signing secret are secrets: written ``env:NAME`` or ``vault:NAME`` only,
never shown in errors, logs or ``repr``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from farmbot.config import reader as tk
from farmbot.config.platform import TEXT_IDS, ChatPlatform
from farmbot.config.routes import AlertRoute
from farmbot.errors import ConfigError
from farmbot.messages import Severity

Mode = Literal["socket", "http"]
SLACK_API_URL = "https://slack.com/api/"
_COMMAND = re.compile(r"/[a-z0-9][a-z0-9_-]{0,31}")
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]+")


@dataclass(frozen=True, slots=True, repr=False)
class SlackConfig:
    """How farmbot reaches Slack. The secrets never appear in ``repr``."""

    bot_token: str = field(repr=False)
    app_token: str | None = field(default=None, repr=False)
    signing_secret: str | None = field(default=None, repr=False)
    mode: Mode = "socket"
    api_url: str = SLACK_API_URL
    command: str = "/farm"
    alert_channels: tuple[str, ...] = ()
    alert_min_severity: Severity = Severity.WARNING
    thread_per_agent: bool = False

    def __repr__(self) -> str:
        hidden = [
            f"{name}=<hidden>"
            for name in ("bot_token", "app_token", "signing_secret")
            if getattr(self, name)
        ]
        return (
            f"SlackConfig(mode={self.mode!r}, api_url={self.api_url!r}, "
            f"command={self.command!r}, alert_channels={self.alert_channels!r}, "
            f"alert_min_severity='{self.alert_min_severity}', "
            f"thread_per_agent={self.thread_per_agent}, {', '.join(hidden)})"
        )

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret value, for log redaction."""
        values = (self.bot_token, self.app_token, self.signing_secret)
        return tuple(v for v in values if v)


def parse_slack(t: tk.Table) -> SlackConfig:
    """Read ``[slack]``; errors name the key, never a token."""
    d = SlackConfig(bot_token="")
    mode = t.get("mode", tk.text(_mode), str(d.mode))
    app_token = t.get("app_token", _token("xapp-", "an app-level token"))
    signing_secret = t.get("signing_secret", tk.secret)
    if mode == "socket" and app_token is None:
        raise t.error(
            "app_token",
            "missing; Socket Mode needs an app-level token (xapp-...) with connections:write, "
            'or set mode = "http" with a signing_secret',
        )
    if mode == "http" and signing_secret is None:
        raise t.error(
            "signing_secret",
            "missing; HTTP mode needs the app's signing secret (Basic Information → "
            "App Credentials) to verify Slack's requests",
        )
    config = SlackConfig(
        bot_token=t.need("bot_token", _token("xoxb-", "a bot token")),
        app_token=app_token,
        signing_secret=signing_secret,
        mode="http" if mode == "http" else "socket",
        api_url=_with_slash(t.get("api_url", tk.text(tk.http_url), d.api_url)),
        command=t.get("command", tk.text(_command), d.command),
        alert_channels=t.get("alert_channels", _channels, d.alert_channels),
        alert_min_severity=Severity.parse(
            t.get("alert_min_severity", tk.text(tk.severity), str(d.alert_min_severity))
        ),
        thread_per_agent=t.get("thread_per_agent", tk.boolean, d.thread_per_agent),
    )
    t.finish()
    return config


def slack_routes(config: SlackConfig) -> tuple[AlertRoute, ...]:
    """The alert routes of ``alert_channels``, to add to ``[alerts]``'s own."""
    return tuple(
        AlertRoute("slack", channel, config.alert_min_severity) for channel in config.alert_channels
    )


# What config, authorization, alerts and reloading know of Slack (config.chats).
SLACK: ChatPlatform[SlackConfig] = ChatPlatform(
    "slack",
    parse=lambda t, _projects: parse_slack(t),
    routes=slack_routes,
    ids=TEXT_IDS,  # [users.alice] slack = "U0123ABCD"
    hears=True,
    restart=True,
)


def _token(prefix: str, what: str) -> tk.Conv[str]:
    def conv(t: tk.Table, key: str, raw: object) -> str:
        value = tk.secret(t, key, raw)
        if not value.startswith(prefix):
            problem = f"{tk.source_of(raw)} must hold {what} starting with {prefix}"
            raise ConfigError(key, problem)
        return value

    return conv


def _mode(value: str, shown: str) -> str | None:
    return None if value in ("socket", "http") else f'unknown mode {shown} (use "socket" or "http")'


def _command(value: str, shown: str) -> str | None:
    if _COMMAND.fullmatch(value):
        return None
    return f"invalid slash command {shown}: a '/' then up to 32 of a-z, 0-9, '-' and '_'"


def _with_slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def _channels(t: tk.Table, key: str, raw: object) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise tk.type_error(key, "an array of channel IDs", raw)
    for item in raw:
        if not _CHANNEL_ID.fullmatch(item):
            raise ConfigError(
                key,
                f"'{item}' is not a channel ID; use the ID like C0123ABCD (in Slack: the "
                "channel's name → About → Channel ID at the bottom)",
            )
    return tuple(dict.fromkeys(raw))
