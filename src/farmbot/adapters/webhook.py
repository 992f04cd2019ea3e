"""A generic webhook interface: each alert is POSTed as JSON to a configured URL.

Outbound only. The body is::

    {"title": ..., "text": ..., "severity": "warning", "agent": "builder-42",
     "project": "farm", "pre": "last lines" | null,
     "buttons": [{"label": "Tail", "command": "/tail builder-42"}], "count": 1,
     "alert_id": 17}

A 2xx answer is a delivery. 429 (honouring Retry-After), 408, 5xx, timeouts and
connection errors raise ``DeliveryError``; any other answer, and a URL aiohttp cannot
use, raise ``PermanentDeliveryError``. The URL and headers may hold secrets, so errors
and logs name the webhook and its host only (aiohttp's error texts may quote the URL:
only their type is shown).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import aiohttp

from farmbot.adapters.shared import InterfaceDeps, parse_retry_after
from farmbot.config.alerts import WebhookConfig
from farmbot.errors import DeliveryError, PermanentDeliveryError
from farmbot.messages import OnIncoming, OutboundMessage

ERROR_BODY_CHARS = 200  # of a failed answer, quoted in the error


class WebhookInterface:
    """POSTs alerts to one URL through one aiohttp session."""

    def __init__(self, config: WebhookConfig, deps: InterfaceDeps) -> None:
        self.name = config.name
        self._config = config
        self._clock = deps.clock
        self._host = urlsplit(config.url).hostname or "?"
        self._session: aiohttp.ClientSession | None = None
        self.sent = 0
        self.failed = 0

    def __repr__(self) -> str:
        return f"<WebhookInterface {self.name} {self._host} sent={self.sent} failed={self.failed}>"

    async def start(self, on_incoming: OnIncoming) -> None:
        """Open the HTTP session (a webhook receives no commands)."""
        self._client()

    async def stop(self) -> None:
        """Close the HTTP session. Safe to call twice."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def send(self, channel: str, message: OutboundMessage) -> None:
        """POST one alert (nothing to edit later); raise ``DeliveryError`` and the like."""
        where = f"webhook {self.name} ({self._host})"
        try:
            # A redirect is not followed: a POST that moves is a misconfigured URL.
            post = self._client().post(self._config.url, json=body(message), allow_redirects=False)
            async with post as response:
                status = response.status
                if 200 <= status < 300:
                    self.sent += 1
                    return
                detail = (await response.text(errors="replace"))[:ERROR_BODY_CHARS].strip()
                wait = parse_retry_after(response.headers.get("Retry-After"), self._clock())
        except TimeoutError as exc:
            self.failed += 1
            raise DeliveryError(f"{where}: timed out") from exc
        except aiohttp.InvalidURL as exc:  # its text is the URL, query string and all
            self.failed += 1
            problem = f"{where}: {type(exc).__name__}: fix the webhook's url"
            raise PermanentDeliveryError(problem) from exc
        except aiohttp.ClientError as exc:
            self.failed += 1
            raise DeliveryError(f"{where}: {type(exc).__name__}") from exc
        self.failed += 1
        problem = f"{where}: HTTP {status}" + (f": {detail}" if detail else "")
        if status == 429 or status == 408 or status >= 500:
            raise DeliveryError(problem, retry_after=wait)
        raise PermanentDeliveryError(problem)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self._config.timeout)
            self._session = aiohttp.ClientSession(
                timeout=timeout, headers=dict(self._config.headers)
            )
        return self._session


def body(message: OutboundMessage) -> dict[str, Any]:
    """The JSON a webhook receives for one alert."""
    return {
        "title": message.title,
        "text": message.text,
        "severity": str(message.severity),
        "agent": message.agent_id,
        "project": message.project,
        "pre": message.pre,
        "buttons": [
            {"label": b.label, "command": b.command} for row in message.buttons for b in row
        ],
        "count": message.count,
        "alert_id": message.alert_id,
    }
