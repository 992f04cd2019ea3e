"""The fake Telegram Bot API speaks well enough for the real python-telegram-bot."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from telegram import (
    Bot,
    ForceReply,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    ReplyParameters,
    Update,
)
from telegram.error import (
    BadRequest,
    Conflict,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
)

from tests.fakes.telegram_api import FakeTelegram
from tests.helpers import retry_until

CHAT = 4242


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token="123:ABC") as fake:
        fake.add_chat(CHAT)
        yield fake


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    async with Bot(tg.token, base_url=tg.base_url, base_file_url=tg.base_file_url) as b:
        yield b


def build_app(tg: FakeTelegram) -> Application:  # type: ignore[type-arg]
    return (
        ApplicationBuilder()
        .token(tg.token)
        .base_url(tg.base_url)
        .base_file_url(tg.base_file_url)
        .build()
    )


@contextlib.asynccontextmanager
async def polling(
    app: Application,  # type: ignore[type-arg]
    errors: list[TelegramError] | None = None,
) -> AsyncIterator[None]:
    """Run the app's updater the way the adapter will, long-polling with a 1 s timeout."""
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(
            poll_interval=0.0, timeout=1, error_callback=None if errors is None else errors.append
        )
        try:
            yield
        finally:
            await app.updater.stop()
            await app.stop()


@pytest.mark.parametrize("suffix", ["", "{token}"])
async def test_bot_round_trip_with_both_base_url_forms(tg: FakeTelegram, suffix: str) -> None:
    async with Bot(tg.token, base_url=tg.base_url + suffix) as bot:
        me = await bot.get_me()
        first = await bot.send_message(CHAT, "<b>hi</b> &amp; bye", parse_mode="HTML")
        second = await bot.send_message(CHAT, "again", message_thread_id=7)

    assert me.id == 123 and me.is_bot
    assert first.text == "hi & bye" and first.entities[0].type == "bold"
    assert first.from_user is not None and first.from_user.id == me.id
    assert second.message_id == first.message_id + 1 and second.message_thread_id == 7
    assert [m["text"] for m in tg.sent_messages(CHAT)] == ["hi & bye", "again"]


async def test_wrong_token_is_unauthorized(tg: FakeTelegram) -> None:
    with pytest.raises(InvalidToken):
        async with Bot("123:WRONG", base_url=tg.base_url):
            pass


async def test_application_handles_command_and_callback(tg: FakeTelegram) -> None:
    app = build_app(tg)

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        button = InlineKeyboardButton("Approve", callback_data="approve:1")
        await update.effective_message.reply_text(
            "Pick one", reply_markup=InlineKeyboardMarkup([[button]])
        )

    async def pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer(f"got {query.data}")
        await query.edit_message_text("Approved")

    app.add_handler(CommandHandler("start", start))
    app.add_handler(CallbackQueryHandler(pressed))
    async with polling(app):
        tg.push_message(77, "/start", first_name="Ada")
        sent = await tg.wait_for("sendMessage", lambda p: p["chat_id"] == 77)
        assert sent["text"] == "Pick one"
        [message] = tg.sent_messages(77)
        query_id = tg.push_callback(77, message, "approve:1")
        await tg.wait_for("editMessageText")

    assert tg.answered_callbacks[0]["callback_query_id"] == query_id
    assert tg.answered_callbacks[0]["text"] == "got approve:1"
    [edited] = tg.sent_messages(77)
    assert edited["text"] == "Approved" and "reply_markup" not in edited
    # the updater confirmed what it handled, so nothing is redelivered
    assert tg.calls[-1][0] == "getUpdates" and tg.calls[-1][1]["offset"] == 3


async def test_long_poll_returns_as_soon_as_an_update_arrives(tg: FakeTelegram, bot: Bot) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await tg.wait_for("getUpdates")
    started = time.monotonic()
    tg.push_message(77, "hello")
    [update] = await poll
    assert time.monotonic() - started < 1
    assert update.message is not None and update.message.text == "hello"
    assert await bot.get_updates(offset=update.update_id + 1, timeout=0) == ()


async def test_retry_after_carries_the_seconds(
    tg: FakeTelegram, bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Reading RetryAfter.retry_after as int is deprecated in PTB 22 (a warning, so an error
    # here); PTB_TIMEDELTA opts in to the future timedelta type.
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    tg.fail_next("sendMessage", 429, retry_after=7)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(CHAT, "hi")
    assert caught.value.retry_after == dtm.timedelta(seconds=7)
    assert (await bot.send_message(CHAT, "hi")).text == "hi"


async def test_server_errors_are_network_errors(tg: FakeTelegram, bot: Bot) -> None:
    tg.fail_next("sendMessage", 502, count=2)
    for _ in range(2):
        with pytest.raises(NetworkError, match="Bad Gateway"):
            await bot.send_message(CHAT, "hi")
    await bot.send_message(CHAT, "hi")


async def test_conflict_reaches_get_updates_and_the_updater(tg: FakeTelegram, bot: Bot) -> None:
    tg.conflict = True
    with pytest.raises(Conflict, match="terminated by other getUpdates request"):
        await bot.get_updates(timeout=0)
    errors: list[TelegramError] = []
    async with polling(build_app(tg), errors):
        await retry_until(lambda: errors, timeout=3, message="updater error callback")
        # PTB's retry loop now sleeps 1 s (not interruptible by stop()); let its final
        # cleanup getUpdates succeed so it logs no error on the way out.
        tg.conflict = False
    assert isinstance(errors[0], Conflict)


async def test_a_second_poller_terminates_the_first(tg: FakeTelegram, bot: Bot) -> None:
    # A second Bot: PTB gives getUpdates its own one-connection pool, so one Bot can't overlap.
    async with Bot(tg.token, base_url=tg.base_url) as other:
        first = asyncio.create_task(bot.get_updates(timeout=5))
        await tg.wait_for("getUpdates")
        assert await other.get_updates(timeout=0) == ()
        with pytest.raises(Conflict):
            await first


async def test_raw_http_get_json_and_unknown_method(tg: FakeTelegram) -> None:
    url = f"{tg.base_url}{tg.token}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/sendMessage", params={"chat_id": CHAT, "text": "q"}) as r:
            assert (await r.json())["result"]["text"] == "q"
        markup = {"inline_keyboard": [[{"text": "a", "callback_data": "a"}]]}
        body = {"chat_id": CHAT, "text": "j", "reply_markup": markup}
        async with http.post(f"{url}/sendmessage", json=body) as r:
            assert (await r.json())["result"]["reply_markup"] == markup
        async with http.post(f"{url}/sendSticker", json={}) as r:
            assert r.status == 404
            assert await r.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
    assert [name for name, _ in tg.calls] == ["sendMessage", "sendMessage", "sendSticker"]


@pytest.mark.parametrize(
    ("text", "parse_mode", "error"),
    [
        ("x" * 4097, None, "Message is too long"),
        ("😀" * 2049, None, "Message is too long"),  # 4098 UTF-16 code units
        ("<b>" + "x" * 4096 + "</b>" + "y", "HTML", "Message is too long"),
        ("1 < 2", "HTML", "Can't parse entities"),
        ("<b>bold</i>", "HTML", "Can't parse entities"),
        ("<b>open", "HTML", "Can't parse entities"),
        ("<div>x</div>", "HTML", "Can't parse entities"),
        ("fish & chips", "HTML", "Can't parse entities"),
        ("   ", None, "Message text is empty"),
    ],
)
async def test_send_message_validation(
    bot: Bot, text: str, parse_mode: str | None, error: str
) -> None:
    with pytest.raises(BadRequest, match=error):
        await bot.send_message(CHAT, text, parse_mode=parse_mode)


async def test_accepted_html_and_length(bot: Bot) -> None:
    message = await bot.send_message(
        CHAT,
        '<a href="https://x.y">l</a> <tg-spoiler>s</tg-spoiler> &lt;&#65;&#x42;&quot;'
        '<pre><code class="language-py">p</code></pre>',
        parse_mode="HTML",
    )
    assert message.text == 'l s <AB"p'
    assert [e.type for e in message.entities] == ["text_link", "spoiler", "pre"]
    assert message.entities[2].language == "py"
    assert (await bot.send_message(CHAT, "😀" * 2048)).text == "😀" * 2048


async def test_callback_data_over_64_bytes_is_rejected(bot: Bot) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="é" * 33)]])
    with pytest.raises(BadRequest, match="Button_data_invalid"):
        await bot.send_message(CHAT, "pick", reply_markup=keyboard)


async def test_a_force_reply_question_and_the_reply_to_it(tg: FakeTelegram, bot: Bot) -> None:
    alert = await bot.send_message(CHAT, "gate 7")
    asked = await bot.send_message(
        CHAT,
        "Why?",
        reply_parameters=ReplyParameters(alert.message_id),
        reply_markup=ForceReply(selective=True, input_field_placeholder="why"),
    )
    assert asked.reply_to_message is not None
    assert asked.reply_to_message.message_id == alert.message_id
    assert asked.reply_markup is None  # a Message shows only inline keyboards
    with pytest.raises(BadRequest, match="Message to be replied not found"):
        await bot.send_message(CHAT, "x", reply_parameters=ReplyParameters(999))
    orphan = ReplyParameters(999, allow_sending_without_reply=True)
    assert (await bot.send_message(CHAT, "x", reply_parameters=orphan)).reply_to_message is None
    with pytest.raises(BadRequest, match="input_field_placeholder"):
        await bot.send_message(CHAT, "x", reply_markup=ForceReply(input_field_placeholder="y" * 65))

    reply = tg.push_message(CHAT, "because", reply_to=tg.sent_messages(CHAT)[1])
    assert reply["reply_to_message"]["message_id"] == asked.message_id
    assert "reply_to_message" not in reply["reply_to_message"]  # one level, as Telegram


async def test_unknown_chat_and_bad_edits(tg: FakeTelegram, bot: Bot) -> None:
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.send_message(999, "hi")
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await bot.edit_message_text("x", chat_id=CHAT, message_id=99)
    message = await bot.send_message(CHAT, "same")
    with pytest.raises(BadRequest, match="Message is not modified"):
        await message.edit_text("same")
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("ok", callback_data="ok")]])
    await message.edit_reply_markup(keyboard)
    assert tg.sent_messages(CHAT)[0]["reply_markup"]["inline_keyboard"][0][0]["text"] == "ok"


async def test_documents_commands_and_chat_actions(tg: FakeTelegram, bot: Bot) -> None:
    await bot.send_document(
        CHAT, b"log line\n", filename="run.log", caption="<i>log</i>", parse_mode="HTML"
    )
    await bot.send_chat_action(CHAT, "typing")
    await bot.set_my_commands([("status", "Show agents")])
    assert [c.command for c in await bot.get_my_commands()] == ["status"]
    assert tg.commands == [{"command": "status", "description": "Show agents"}]
    [doc] = tg.documents
    assert (doc["filename"], doc["caption"], doc["data"]) == ("run.log", "log", b"log line\n")
    with pytest.raises(BadRequest):
        await bot.set_my_commands([("Bad-Command", "x")])


async def test_go_down_refuses_connections_until_come_up(tg: FakeTelegram, bot: Bot) -> None:
    port = tg.base_url
    await tg.go_down()
    with pytest.raises(NetworkError):
        await bot.get_me()
    await tg.come_up()
    assert tg.base_url == port
    assert (await bot.get_me()).id == 123


async def test_wait_for_names_what_was_called(tg: FakeTelegram, bot: Bot) -> None:
    await bot.get_me()
    with pytest.raises(AssertionError, match=r"sendMessage.*getMe"):
        await tg.wait_for("sendMessage", timeout=0.05)
