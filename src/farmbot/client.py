"""A small synchronous client for the daemon's JSON API, used by the CLI."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from farmbot import localkey
from farmbot.config.schema import Config
from farmbot.errors import DaemonUnavailable, FarmbotError


class Client:
    def __init__(
        self, base_url: str, key: str, timeout: float = 30.0, start_hint: str = "farmbot serve"
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = key
        self._timeout = timeout
        self._start_hint = start_hint  # how the person starts this farmbot, for messages

    @classmethod
    def for_config(cls, config: Config, start_hint: str = "farmbot serve") -> Client:
        key = localkey.read(config.server.state_dir)
        if key is None:
            raise DaemonUnavailable(
                f"farmbot is not running (no local key at "
                f"{localkey.path(config.server.state_dir)}; start it with `{start_hint}`)"
            )
        return cls(config.server.url, key, start_hint=start_hint)

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self._key}",
                "Content-Type": "application/json",
                "X-Farmbot-Client": "cli",
            },
        )
        not_farmbot = f"{self.base_url} does not answer like farmbot: is another program there?"
        try:
            with urllib.request.urlopen(req, timeout=self._timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read())["error"]
            except (ValueError, KeyError, TypeError):
                raise FarmbotError(f"{not_farmbot} (HTTP {exc.code})") from None
            raise FarmbotError(
                f"farmbot at {self.base_url} answered {exc.code}: {detail}"
            ) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DaemonUnavailable(
                f"farmbot is not running at {self.base_url} ({reason}); "
                f"start it with `{self._start_hint}`"
            ) from None
        except ValueError:  # an answer that is not JSON
            raise FarmbotError(not_farmbot) from None

    def command(self, text: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", "/api/command", {"text": text})
        return result

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/api/status")
        return result


def task_done(url: str, agent: str, token: str, note: str, timeout: float = 30.0) -> str:
    """Tell the daemon an agent's task is done (``farmbot task done``); what it answered.

    Authenticated with the agent's own hook token, so it can only finish its own task.
    Raises ``DaemonUnavailable`` when nothing answers, ``FarmbotError`` when refused.
    """
    req = urllib.request.Request(
        f"{url.rstrip('/')}/agents/{agent}/task-done",
        data=json.dumps({"note": note}).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "X-Farmbot-Hook-Token": token},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return str(json.loads(resp.read()).get("text", "done"))
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read())["error"]
        except (ValueError, KeyError, TypeError):
            detail = f"HTTP {exc.code}"
        raise FarmbotError(f"farmbot refused: {detail}") from None
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        raise DaemonUnavailable(
            f"farmbot is not answering at {url} ({getattr(exc, 'reason', exc)}); "
            "it notices the work when this agent goes idle with its commits"
        ) from None
