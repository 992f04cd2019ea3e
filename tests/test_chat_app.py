"""The whole daemon (farmbot.daemon) with Telegram and Slack configured, against their fakes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import aiohttp

from farmbot.config.schema import UserConfig
from farmbot.config.slack import SlackConfig
from farmbot.config.telegram import TelegramConfig
from farmbot.daemon import Daemon
from farmbot.models import Role
from tests.fakes.slack_api import FakeSlack
from tests.fakes.telegram_api import FakeTelegram
from tests.farm import make_config
from tests.helpers import retry_until


async def test_app_runs_both_chat_interfaces(tmp_path: Path, tmux_socket: str) -> None:
    async with FakeTelegram() as tg, FakeSlack() as slack:
        config = dataclasses.replace(
            make_config(tmp_path, tmux_socket),
            users=(UserConfig("alice", Role.ADMIN, ids={"telegram": 1001, "slack": "UALICE"}),),
            chats={
                "telegram": TelegramConfig(
                    token=tg.token, base_url=tg.base_url, base_file_url=tg.base_file_url,
                    poll_timeout=1,
                ),
                "slack": SlackConfig(
                    bot_token="xoxb-test", app_token="xapp-test", signing_secret=None,
                    api_url=slack.api_url,
                ),
            },
        )  # fmt: skip
        async with Daemon(config) as app:
            assert set(app.farm.interfaces) >= {"web", "telegram", "slack"}
            tg.push_message(1001, "/spawn architect")
            await tg.wait_for(
                "sendMessage", lambda p: "spawned architect" in str(p.get("text")), timeout=10
            )
            await slack.wait_for_connections(1, timeout=10)
            await slack.push_slash_command("UALICE", "agents")
            await slack.wait_for(
                "chat.postMessage", lambda p: "architect" in str(p.get("text")), timeout=10
            )

            async def ready() -> bool:
                url = f"{app.url}/readyz"
                headers = {"Authorization": f"Bearer {app.farm.key}"}
                async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as r:
                    body = await r.json()
                    return r.status == 200 and {"telegram", "slack"} <= set(body["checks"])

            assert await retry_until(ready, timeout=10, message="/readyz with both chats")
            audit = await app.farm.storage.audit.recent_audit(5)
            assert {(a.platform, a.user_name) for a in audit} >= {
                ("telegram", "alice"),
                ("slack", "alice"),
            }
