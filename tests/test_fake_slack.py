"""The real slack_sdk / slack-bolt clients work against tests.fakes.slack_api.FakeSlack."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond, AsyncSay
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack_api import (
    FakeSlack,
    interactive_body,
    sign_request,
    slash_command_body,
)

BUTTONS: list[dict[str, Any]] = [
    {"type": "section", "block_id": "b-status", "text": {"type": "mrkdwn", "text": "approve?"}},
    {
        "type": "actions",
        "block_id": "b-gate",
        "elements": [
            {
                "type": "button",
                "action_id": "approve",
                "value": "gate-7",
                "text": {"type": "plain_text", "text": "Approve"},
            },
        ],
    },
]


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(bot_token="xoxb-test", app_token="xapp-test") as fake:
        yield fake


@pytest.fixture
def client(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(base_url=slack.api_url, token=slack.bot_token)


@pytest.fixture
async def app(slack: FakeSlack) -> AsyncIterator[AsyncApp]:
    """A bolt app connected over Socket Mode to the fake; listeners may be added later."""
    # Pass only client=: bolt logs a warning when token= is given too. The handler's own
    # SocketModeClient reuses app.client, so apps.connections.open also hits the fake.
    bolt = AsyncApp(client=AsyncWebClient(base_url=slack.api_url, token=slack.bot_token))
    # ping_interval also paces the client's reconnect checks (default 10 s).
    handler = AsyncSocketModeHandler(bolt, slack.app_token, ping_interval=1)
    await handler.connect_async()  # type: ignore[no-untyped-call]
    yield bolt
    await handler.close_async()  # type: ignore[no-untyped-call]


MODAL: dict[str, Any] = {
    "type": "modal",
    "callback_id": "why",
    "title": {"type": "plain_text", "text": "Reject"},
    "submit": {"type": "plain_text", "text": "Reject"},
    "private_metadata": "gate-7",
    "blocks": [
        {
            "type": "input",
            "block_id": "answer",
            "optional": True,
            "label": {"type": "plain_text", "text": "Why?"},
            "element": {"type": "plain_text_input", "action_id": "answer", "multiline": True},
        }
    ],
}


async def test_a_modal_opens_once_per_trigger_and_its_submission_is_an_envelope(
    slack: FakeSlack, app: AsyncApp
) -> None:
    opened: list[dict[str, Any]] = []
    submitted: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def on_press(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        answer = await client.views_open(trigger_id=body["trigger_id"], view=MODAL)
        assert isinstance(answer.data, dict)
        opened.append(answer.data)
        with pytest.raises(SlackApiError, match="invalid_trigger_id"):  # used already
            await client.views_open(trigger_id=body["trigger_id"], view=MODAL)
        long = {**MODAL, "title": {"type": "plain_text", "text": "x" * 25}}
        with pytest.raises(SlackApiError, match="invalid_arguments"):
            await client.views_open(trigger_id=slack._trigger_id(), view=long)

    async def on_submit(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        await ack()
        await submitted.put({"user": body["user"]["id"], "view": view})

    app.action("approve")(on_press)
    app.view("why")(on_submit)
    posted = await app.client.chat_postMessage(channel="C1", text="gate", blocks=BUTTONS)
    await slack.push_block_action("U1", channel="C1", message_ts=posted["ts"], action_id="approve")
    await slack.wait_until(lambda: bool(opened), what="the modal")
    view = opened[0]["view"]
    assert (view["callback_id"], view["private_metadata"], view["user"]) == ("why", "gate-7", "U1")
    await slack.push_view_submission("U2", view["id"], {"answer": {"answer": "a\nb"}})
    got = await asyncio.wait_for(submitted.get(), 5)
    assert got["user"] == "U2"  # a forged submission may come from anyone
    assert got["view"]["state"]["values"]["answer"]["answer"]["value"] == "a\nb"
    assert view["id"] not in slack.views  # submitted: closed


async def test_post_and_update_round_trip(slack: FakeSlack, client: AsyncWebClient) -> None:
    first = await client.chat_postMessage(channel="C1", text="hello", blocks=BUTTONS)
    second = await client.chat_postMessage(channel="C1", text="reply", thread_ts=first["ts"])
    assert float(second["ts"]) > float(first["ts"])
    assert second["message"]["thread_ts"] == first["ts"]

    await client.chat_update(channel="C1", ts=first["ts"], text="edited", blocks=[])
    texts = [(m.text, m.blocks, m.edited) for m in slack.messages("C1")]
    assert texts == [("edited", [], True), ("reply", [], False)]
    assert [m for m, _ in slack.calls] == ["chat.postMessage"] * 2 + ["chat.update"]

    with pytest.raises(SlackApiError) as caught:
        await client.chat_update(channel="C1", ts="1.000000", text="x")
    assert caught.value.response["error"] == "message_not_found"


async def test_slash_command_ack_say_respond(slack: FakeSlack, app: AsyncApp) -> None:
    seen: list[dict[str, Any]] = []

    @app.command("/farm")
    async def farm(
        ack: AsyncAck, command: dict[str, Any], say: AsyncSay, respond: AsyncRespond
    ) -> None:
        await ack()
        seen.append(command)
        await say(f"spawning {command['text']}")
        await respond("only you can see this")

    envelope_id = await slack.push_slash_command("U1", "spawn builder 42")
    assert await slack.wait_for_ack(envelope_id) is None  # a bare ack: {"envelope_id": ...}
    posted = await slack.wait_for("chat.postMessage")
    assert posted["channel"] == "C1" and posted["text"] == "spawning spawn builder 42"
    assert seen[0]["user_id"] == "U1" and seen[0]["command"] == "/farm"
    await slack.wait_for("auth.test")  # bolt's single-team authorization
    await slack.wait_until(lambda: bool(slack.response_url_posts), what="respond()")
    post = slack.response_url_posts[0]
    assert post.envelope_id == envelope_id and post.body["text"] == "only you can see this"
    assert slack.connections == 1


async def test_ack_with_text_is_the_envelope_payload(slack: FakeSlack, app: AsyncApp) -> None:

    @app.command("/farm")
    async def farm(ack: AsyncAck) -> None:
        await ack("usage: /farm spawn NAME")

    envelope_id = await slack.push_slash_command("U1", "")
    assert await slack.wait_for_ack(envelope_id) == {"text": "usage: /farm spawn NAME"}


async def test_app_mention_event(slack: FakeSlack, app: AsyncApp) -> None:
    events: list[dict[str, Any]] = []

    @app.event("app_mention")
    async def mentioned(event: dict[str, Any], say: AsyncSay) -> None:
        events.append(event)
        await say(text="on it", thread_ts=event["ts"])

    envelope_id = await slack.push_mention("U1", "spawn builder 42", thread_ts=None)
    await slack.wait_for_ack(envelope_id)
    posted = await slack.wait_for("chat.postMessage")
    assert events[0]["text"] == "<@UBOT> spawn builder 42"
    assert posted["thread_ts"] == events[0]["ts"]


async def test_block_action_acks_and_replaces_original(
    slack: FakeSlack, client: AsyncWebClient, app: AsyncApp
) -> None:
    clicks: list[dict[str, Any]] = []

    @app.action("approve")
    async def approve(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        clicks.append(action)
        assert body["message"]["text"] == "gate"
        await respond(text="approved", replace_original=True)

    posted = await client.chat_postMessage(channel="C1", text="gate", blocks=BUTTONS)
    envelope_id = await slack.push_block_action(
        "U1", channel="C1", message_ts=posted["ts"], action_id="approve"
    )
    assert await slack.wait_for_ack(envelope_id) is None
    await slack.wait_until(lambda: slack.messages()[0].text == "approved", what="replace")
    assert clicks[0]["value"] == "gate-7" and clicks[0]["block_id"] == "b-gate"
    with pytest.raises(AssertionError, match="no element"):
        await slack.push_block_action("U1", channel="C1", message_ts=posted["ts"], action_id="nope")


async def test_disconnect_then_reconnect(slack: FakeSlack, app: AsyncApp) -> None:
    texts: list[str] = []

    @app.command("/farm")
    async def farm(ack: AsyncAck, command: dict[str, Any]) -> None:
        await ack()
        texts.append(command["text"])

    await slack.wait_for_ack(await slack.push_slash_command("U1", "one"))
    started = time.monotonic()
    await slack.disconnect()
    await slack.wait_for_connections(2)
    reconnect_seconds = time.monotonic() - started
    await slack.wait_for_ack(await slack.push_slash_command("U1", "two"))
    assert texts == ["one", "two"]
    assert slack.connections == 2
    assert [m for m, _ in slack.calls].count("apps.connections.open") == 2
    assert reconnect_seconds < 1.0  # the client reconnects on the disconnect message itself


async def test_reconnects_after_outage(slack: FakeSlack, app: AsyncApp) -> None:

    @app.command("/farm")
    async def farm(ack: AsyncAck) -> None:
        await ack()

    await slack.go_down()
    await asyncio.sleep(1.5)  # outlast slack_sdk's one immediate retry of apps.connections.open
    await slack.come_up()
    await slack.wait_for_connections(2, timeout=8)  # found by the ping_interval monitor
    assert slack.connections == 2
    await slack.wait_for_ack(await slack.push_slash_command("U1", "after outage"))


async def test_rate_limited(slack: FakeSlack, client: AsyncWebClient) -> None:
    slack.fail_next("chat.postMessage", status=429, retry_after=7)
    with pytest.raises(SlackApiError) as caught:
        await client.chat_postMessage(channel="C1", text="hi")
    assert caught.value.response.status_code == 429
    assert caught.value.response.headers["Retry-After"] == "7"
    assert caught.value.response["error"] == "ratelimited"
    assert slack.messages() == []

    # Opt-in retry handler: sleeps int(Retry-After) + random() seconds, then retries once.
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=1))
    slack.fail_next("chat.postMessage", status=429, retry_after=0)
    response = await client.chat_postMessage(channel="C1", text="hi again")
    assert response["ok"] and [m.text for m in slack.messages()] == ["hi again"]
    assert [m for m, _ in slack.calls] == ["chat.postMessage"] * 3


async def test_server_errors_and_ok_false(slack: FakeSlack, client: AsyncWebClient) -> None:
    slack.fail_next("chat.postMessage", status=503)
    with pytest.raises(SlackApiError) as caught:
        await client.chat_postMessage(channel="C1", text="hi")
    assert caught.value.response.status_code == 503
    assert isinstance(caught.value.response.data, str)  # .get("error") would fail here

    slack.ok_false_next("chat.postMessage", "fatal_error")
    with pytest.raises(SlackApiError) as caught:
        await client.chat_postMessage(channel="C1", text="hi")
    assert caught.value.response["error"] == "fatal_error"
    with pytest.raises(AssertionError, match=r"no chat\.postMessage call matched"):
        await slack.wait_for("chat.postMessage", timeout=0.05)  # failed calls don't count


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"channel": "C404", "text": "x"}, "channel_not_found"),
        ({"channel": "C2", "text": "x"}, "not_in_channel"),
        ({"channel": "C1", "text": "x" * 40_001}, "msg_too_long"),
        ({"channel": "C1", "text": "t", "blocks": [{"type": "divider"}] * 51}, "invalid_blocks"),
        (
            {
                "channel": "C1",
                "text": "t",
                "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}],
            },
            "invalid_blocks",
        ),
        (
            {
                "channel": "C1",
                "text": "t",
                "blocks": [
                    {
                        "type": "actions",
                        "elements": [
                            {
                                "type": "button",
                                "action_id": "a",
                                "value": "v" * 2001,
                                "text": {"type": "plain_text", "text": "b"},
                            }
                        ],
                    }
                ],
            },
            "invalid_blocks",
        ),
        (
            {
                "channel": "C1",
                "text": "t",
                "blocks": [
                    {
                        "type": "actions",
                        "elements": [
                            {
                                "type": "button",
                                "action_id": "a" * 256,
                                "text": {"type": "plain_text", "text": "b"},
                            }
                        ],
                    }
                ],
            },
            "invalid_blocks",
        ),
    ],
)
async def test_post_message_errors(
    slack: FakeSlack, client: AsyncWebClient, kwargs: dict[str, Any], error: str
) -> None:
    slack.add_channel("C2", member=False)
    with pytest.raises(SlackApiError) as caught:
        await client.chat_postMessage(**kwargs)
    assert caught.value.response["error"] == error
    assert slack.messages() == []


async def test_no_text(slack: FakeSlack, client: AsyncWebClient) -> None:
    # slack_sdk itself warns (UserWarning) when chat_postMessage has no top-level text,
    # so with filterwarnings=error always send text (also alongside blocks).
    with pytest.warns(UserWarning, match="top-level `text` argument is missing"):
        with pytest.raises(SlackApiError) as caught:
            await client.chat_postMessage(channel="C1")
    assert caught.value.response["error"] == "no_text"


async def test_limits_are_inclusive(client: AsyncWebClient) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3000}}] * 50
    assert (await client.chat_postMessage(channel="C1", text="x" * 40_000, blocks=blocks))["ok"]


async def test_auth_and_unknown_methods(slack: FakeSlack, client: AsyncWebClient) -> None:
    auth = await client.auth_test()
    assert (auth["user_id"], auth["bot_id"], auth["team_id"]) == ("UBOT", "BBOT", "T1")
    cases = [
        (AsyncWebClient(base_url=slack.api_url, token="xoxb-wrong").auth_test(), "invalid_auth"),
        (AsyncWebClient(base_url=slack.api_url).auth_test(), "not_authed"),
        (client.apps_connections_open(app_token=slack.bot_token), "not_allowed_token_type"),
        (client.api_call("chat.teleport"), "unknown_method"),
    ]
    for call, error in cases:
        with pytest.raises(SlackApiError) as caught:
            await call
        assert caught.value.response["error"] == error
    opened = await client.apps_connections_open(app_token=slack.app_token)
    assert opened["url"].startswith(f"ws://127.0.0.1:{slack.port}/socket?ticket=")
    info = await client.conversations_info(channel="C1")
    assert info["channel"]["is_member"] is True
    assert (await client.users_info(user="U1"))["user"]["id"] == "U1"


async def test_files_upload_v2(slack: FakeSlack, client: AsyncWebClient) -> None:
    response = await client.files_upload_v2(
        channel="C1",
        thread_ts="1700000000.000100",
        filename="log.txt",
        title="Build log",
        content="line 1\nline 2\n",
    )
    assert response["file"]["name"] == "log.txt"
    [uploaded] = slack.files
    assert (uploaded.filename, uploaded.title, uploaded.content) == (
        "log.txt",
        "Build log",
        b"line 1\nline 2\n",
    )
    assert (uploaded.channel, uploaded.thread_ts) == ("C1", "1700000000.000100")


async def test_ephemeral(slack: FakeSlack, client: AsyncWebClient) -> None:
    response = await client.chat_postEphemeral(channel="C1", user="U1", text="psst")
    assert slack.ephemerals[0].visible_to == "U1"
    assert slack.ephemerals[0].ts == response["message_ts"]
    assert slack.messages() == []


def test_http_mode_helpers_pass_slack_sdk_verification() -> None:
    verifier = SignatureVerifier("s3cret")
    body = slash_command_body("U1", "spawn builder 42", channel_id="C9")
    assert verifier.is_valid_request(body, sign_request(body, "s3cret"))
    assert not verifier.is_valid_request(body, sign_request(body, "other"))
    stale = sign_request(body, "s3cret", timestamp=int(time.time()) - 600)
    assert not verifier.is_valid_request(body, stale)
    assert b"command=%2Ffarm" in body and b"channel_id=C9" in body
    assert interactive_body({"type": "block_actions"}).startswith(b"payload=%7B")
