"""The fake Discord speaks Discord well enough for the real discord.py: login, READY, the
command sync, interactions answered every way farmbot answers them (modals too), rate
limits, and a dropped gateway resumed -- all through ``FarmClient``, as the interface uses
it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import discord
import pytest
from discord.http import Route
from discord.webhook.async_ import async_context

from farmbot.adapters.discord_client import (
    COMMANDS,
    FarmClient,
    task_form,
    use_rebased_webhooks,
)
from farmbot.config.discord import DiscordConfig
from tests.fakes.discord_api import APP_ID, FakeDiscord

GUILD, CHANNEL, ALICE = (
    1_300_000_000_000_000_001,
    1_300_000_000_000_000_002,
    1_300_000_000_000_000_003,
)


@dataclass
class Recorder:
    """A ``Handler`` that answers every command with ``answer`` and records traffic."""

    answer: str = "pong"
    deferred: bool = False
    events: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    modal: discord.ui.Modal | None = None  # the answer to a command, when set
    errors: list[int] = field(default_factory=list)  # Discord's codes of refused answers
    submitted: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    async def on_command(
        self,
        interaction: discord.Interaction[FarmClient],
        text: str,
        files: tuple[discord.Attachment, ...] = (),
    ) -> None:
        self.commands.append(f"{interaction.user.id} {text}")
        if self.modal is not None:
            try:
                await interaction.response.send_modal(self.modal)
            except discord.HTTPException as exc:
                self.errors.append(exc.code)
                self.changed.set()
            return
        if self.deferred:
            await interaction.response.defer(thinking=True)
            await interaction.followup.send(self.answer)
        else:
            await interaction.response.send_message(self.answer)

    async def on_press(self, interaction: discord.Interaction[FarmClient], data: str) -> None:
        self.commands.append(f"press {data}")
        await interaction.response.defer()

    async def on_submit(
        self, interaction: discord.Interaction[FarmClient], custom_id: str, values: dict[str, str]
    ) -> None:
        self.submitted.append((custom_id, values))
        await interaction.response.defer(thinking=True)
        await interaction.followup.send(self.answer)

    def on_gateway(self, event: str, payload: str | bytes | None = None) -> None:
        if event not in ("send", "receive"):
            self.events.append(event)
            self.changed.set()


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        fake.add_channel(CHANNEL, GUILD)
        fake.add_user(ALICE, "alice")
        yield fake


@contextlib.asynccontextmanager
async def connected(fake: FakeDiscord, recorder: Recorder) -> AsyncIterator[FarmClient]:
    config = DiscordConfig(token=fake.token, guild_ids=(GUILD,), api_base=fake.api_base)
    client = FarmClient(recorder, config)
    await client.login(fake.token)

    async def run() -> None:
        use_rebased_webhooks(client.http)
        await client.connect()

    task = asyncio.create_task(run())
    try:
        await fake.wait_identified()
        yield client
    finally:
        await client.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_login_ready_and_the_command_sync(fake: FakeDiscord) -> None:
    recorder = Recorder()
    async with connected(fake, recorder) as client:
        assert client.user is not None and client.user.id == APP_ID
        assert client.application_id == APP_ID
        assert [c["name"] for c in fake.commands[GUILD]] == [c.name for c in COMMANDS]
        assert None not in fake.commands  # guild commands only: they show at once
        spawn = next(c for c in fake.commands[GUILD] if c["name"] == "spawn")
        kinds = {o["name"]: (o["type"], o.get("required", False)) for o in spawn["options"]}
        assert kinds == {"kind": (3, True), "n": (4, False), "project": (3, False)}
        assert fake.gateway_log == [("identify", 1)]  # GUILDS only: no message content
        await fake.wait_for(lambda: client.get_guild(GUILD), message="GUILD_CREATE")
        assert all(c.authorized for c in fake.calls)
        assert [c.route for c in fake.calls[:3]] == [
            "GET /users/@me",
            "GET /oauth2/applications/@me",
            "GET /gateway/bot",  # where the gateway is, when api_base is not Discord's
        ]
        assert fake.heartbeats >= 1
    assert Route.BASE == "https://discord.com/api/v10"  # nothing global was changed


async def test_an_interaction_is_received_and_answered(fake: FakeDiscord) -> None:
    recorder = Recorder()
    async with connected(fake, recorder):
        slash = await fake.slash(ALICE, "spawn", channel_id=CHANNEL, kind="builder", n=42)
        await fake.wait_for(lambda: fake.replies(slash), message="the answer")
        assert recorder.commands == [f"{ALICE} /spawn builder 42"]
        assert slash.ack_type == 4 and slash.ack_delay is not None and slash.ack_delay < 3
        [answer] = fake.replies(slash)
        assert answer["content"] == "pong"

        recorder.deferred = True
        later = await fake.slash(ALICE, "status", channel_id=CHANNEL)
        await fake.wait_for(lambda: fake.replies(later), message="the followup")
        assert later.ack_type == 5
        [followup] = fake.replies(later)  # it replaced the "thinking..." message
        assert followup["content"] == "pong" and followup["id"] == str(later.original_id)
    assert async_context.get().__class__.__name__ == "AsyncWebhookAdapter"  # untouched here


class Survey(discord.ui.Modal, title="A survey"):
    """discord.py's own kind of modal (kept by discord.py), in both of Discord's layouts."""

    why: discord.ui.Label[Survey] = discord.ui.Label(
        text="Why?",
        component=discord.ui.TextInput(custom_id="why", style=discord.TextStyle.paragraph),
    )
    old: discord.ui.TextInput[Survey] = discord.ui.TextInput(
        label="The old way", custom_id="old", required=False
    )

    def __init__(self) -> None:
        super().__init__()
        self.answered: asyncio.Future[tuple[str, str]] = asyncio.get_running_loop().create_future()

    async def on_submit(self, interaction: discord.Interaction[discord.Client]) -> None:
        box = self.why.component
        assert isinstance(box, discord.ui.TextInput)
        self.answered.set_result((box.value, self.old.value))
        await interaction.response.defer(thinking=True)  # no message to update: a command's


async def test_a_modal_is_shown_and_its_submission_reaches_discord_py(fake: FakeDiscord) -> None:
    recorder = Recorder()
    async with connected(fake, recorder):
        survey = recorder.modal = Survey()
        slash = await fake.slash(ALICE, "status", channel_id=CHANNEL)
        await fake.wait_for(lambda: slash.callbacks, message="the modal")
        assert slash.ack_type == 9 and slash.modal is not None
        assert [c["type"] for c in slash.modal["components"]] == [18, 1]
        with pytest.raises(ValueError, match="'why' is required"):
            await fake.submit(ALICE, slash)
        submitted = await fake.submit(ALICE, slash, {"why": "two\nlines"})
        assert await asyncio.wait_for(survey.answered, 5) == ("two\nlines", "")
        await fake.wait_for(lambda: submitted.callbacks, message="the deferral")
        assert (submitted.type, submitted.ack_type) == (5, 5)
        assert recorder.submitted == []  # not farmbot's: discord.py's own modal had it

        # farmbot's form is sent stopped: discord.py keeps nothing, FarmClient reads it.
        recorder.modal = task_form("proj")
        form = await fake.slash(ALICE, "status", channel_id=CHANNEL)
        await fake.wait_for(lambda: form.callbacks, message="the form")
        answered = await fake.submit(ALICE, form, {"title": "Add it", "body": "a\nb"})
        await fake.wait_for(lambda: fake.replies(answered), message="the answer")
        assert answered.ack_type == 5  # a modal submitted from a command: a new message
        assert recorder.submitted == [
            ("farmbot:task", {"project": "proj", "title": "Add it", "body": "a\nb",
                              "after": "", "priority": ""}),
        ]  # fmt: skip
        with pytest.raises(ValueError, match="no inputs"):
            await fake.submit(ALICE, form, {"title": "Add it", "nope": "x"})


async def test_a_modal_discord_would_refuse_is_refused(fake: FakeDiscord) -> None:
    recorder = Recorder()
    async with connected(fake, recorder):
        recorder.modal = discord.ui.Modal(title="x" * 46)  # titles hold 45 characters
        recorder.modal.add_item(discord.ui.TextInput(label="Why?"))
        await fake.slash(ALICE, "status", channel_id=CHANNEL)
        await fake.wait_for(lambda: recorder.errors, message="the refusal")
        recorder.modal = discord.ui.Modal(title="Why?")
        recorder.modal.add_item(discord.ui.TextInput(label="y" * 46))  # so do labels
        await fake.slash(ALICE, "status", channel_id=CHANNEL)
        await fake.wait_for(lambda: len(recorder.errors) == 2, message="the refusal")
        assert recorder.errors == [50035, 50035]  # Invalid Form Body


async def test_a_dropped_gateway_resumes_and_replays_what_was_missed(fake: FakeDiscord) -> None:
    recorder = Recorder()
    async with connected(fake, recorder):
        fake.drop_gateway()
        await fake.wait_for(lambda: not fake.connected, message="the drop")
        missed = await fake.slash(ALICE, "agents", channel_id=CHANNEL)  # while disconnected
        await fake.wait_for(lambda: "resumed" in recorder.events, message="RESUMED")
        await fake.wait_for(lambda: fake.replies(missed), message="the missed interaction")
        assert [kind for kind, _ in fake.gateway_log] == ["identify", "resume"]
        assert recorder.events[recorder.events.index("disconnect") :][:2] == [
            "disconnect",
            "resumed",
        ]


async def test_a_refused_token_is_a_login_failure(fake: FakeDiscord) -> None:
    config = DiscordConfig(token="a.b.c", api_base=fake.api_base)
    client = FarmClient(Recorder(), config)
    with pytest.raises(discord.LoginFailure):
        await client.login("a.b.c")
    await client.close()
    assert [(c.route, c.authorized) for c in fake.calls] == [("GET /users/@me", False)]


async def test_a_global_429_is_waited_out_by_discord_py(fake: FakeDiscord) -> None:
    route = "PUT /applications/{app}/guilds/{guild}/commands"
    fake.fail_next(route, 429, retry_after=0.2, scope="global")
    async with connected(fake, Recorder()):
        assert len(fake.requests(route)) == 2
        assert fake.commands[GUILD]


async def test_two_clients_on_two_fakes_do_not_share_anything(fake: FakeDiscord) -> None:
    async with FakeDiscord(token="b.second.token") as other:
        other.add_channel(CHANNEL, GUILD)
        first, second = Recorder("from the first"), Recorder("from the second")
        async with connected(fake, first), connected(other, second):
            one = await fake.slash(ALICE, "status", channel_id=CHANNEL)
            two = await other.slash(ALICE, "status", channel_id=CHANNEL)
            await fake.wait_for(lambda: fake.replies(one) and other.replies(two))
            assert fake.replies(one)[0]["content"] == "from the first"
            assert other.replies(two)[0]["content"] == "from the second"
            for each, mine in ((fake, one), (other, two)):
                answered = [c.path for c in each.calls if c.path.startswith("/interactions")]
                assert answered == [f"/interactions/{mine.id}/{mine.token}/callback"]
                rest = [c for c in each.calls if not c.path.startswith("/interactions")]
                assert all(c.authorized for c in rest)  # each with its own token
