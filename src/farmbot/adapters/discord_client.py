"""discord.py, set up for farmbot: the client, its slash commands and its persistent button.

Nothing here decides anything: the slash commands turn their typed options into command
text and hand it, with the interaction, to the ``Handler`` (the ``DiscordInterface``);
a button press hands over its ``custom_id``; gateway traffic is reported for ``hearing()``.

Modals (``question_modal`` for a button's question, ``task_form`` for ``/task``) are
sent already stopped, so discord.py keeps no state for them: their submission is read in
``on_interaction`` from its ``custom_id`` alone and handed over with the values typed,
which is how a form opened before a restart is still answered after it (as buttons are).

Pointing discord.py at another server (``api_base``, ``gateway_url``) without global state:

- REST: discord.py builds every URL as ``Route.BASE + path`` when a ``Route`` is made, and
  ``Route.BASE`` is a class attribute -- setting it would redirect every client in the
  process (two interfaces, two tests). ``RebasedHTTP`` (an ``HTTPClient`` subclass, one per
  client) rewrites the prefix of each route's URL in ``request()`` instead.
- Interaction callbacks and followups do not go through ``HTTPClient.request``: discord.py
  sends them with its webhook adapter, which it looks up in the context variable
  ``discord.webhook.async_.async_context``. ``use_rebased_webhooks()`` sets a rebasing
  adapter in the context of the interface's gateway task only; the tasks discord.py
  starts for each interaction inherit it, nothing else sees it.
- The gateway: a plain ``Client`` connects to ``DiscordWebSocket.DEFAULT_GATEWAY`` (another
  class attribute) and resumes at READY's ``resume_gateway_url``. ``RebasedHTTP.ws_connect``
  sends every connection to ``gateway_url`` when one is configured; with only ``api_base``
  configured it asks that server's ``/gateway/bot`` -- Discord's documented way to find the
  gateway -- at login.
- ``Client`` builds its ``HTTPClient`` in ``__init__`` and offers no parameter for another
  class, so ``FarmClient`` swaps in its ``RebasedHTTP`` right after (``self.http`` and
  the connection state's reference to it) and before anything used either.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, Literal, Protocol

import aiohttp
import discord
import yarl
from discord import app_commands
from discord.http import Route
from discord.webhook.async_ import AsyncWebhookAdapter, async_context

from farmbot.adapters.discord_render import (
    ANSWER_CHARS,
    DESCRIPTION_CHARS,
    TASK_FORM,
    TITLE_CHARS,
    farm_text,
    is_farm_modal,
    modal_values,
    slash_text,
)
from farmbot.config.discord import DISCORD_API, DiscordConfig
from farmbot.messages import clip

log = logging.getLogger(__name__)
MAX_RATELIMIT_WAIT = 30.0  # seconds discord.py may wait out a 429 itself (its minimum)
HEARTBEAT_TIMEOUT = 60.0  # seconds without a gateway message before discord.py reconnects
BUTTON_TEMPLATE = re.compile(r"(?P<data>/.+|a:\d+)")  # a command, or a stored one


class Handler(Protocol):
    """What the client hands its traffic to (the ``DiscordInterface``)."""

    async def on_command(
        self,
        interaction: discord.Interaction[FarmClient],
        text: str,
        files: tuple[discord.Attachment, ...] = (),
    ) -> None:
        """A slash command, as farmbot command text, with the files given to it."""

    async def on_press(self, interaction: discord.Interaction[FarmClient], data: str) -> None:
        """A press of a farmbot button, with its ``custom_id``."""

    async def on_submit(
        self, interaction: discord.Interaction[FarmClient], custom_id: str, values: dict[str, str]
    ) -> None:
        """A farmbot modal submitted: its ``custom_id`` and its inputs' values."""

    def on_gateway(self, event: str, payload: str | bytes | None = None) -> None:
        """Gateway traffic: "ready", "resumed", "disconnect", and "receive" (each message)."""


class RebasedHTTP(discord.http.HTTPClient):
    """discord.py's HTTP client, sending REST calls to ``api_base`` and the gateway to
    ``gateway_url`` (see the module docstring for why here)."""

    def __init__(self, loop: Any, *, api_base: str, gateway_url: str | None) -> None:
        super().__init__(loop, max_ratelimit_timeout=MAX_RATELIMIT_WAIT)
        self.api_base = api_base.rstrip("/")
        self.gateway_url = gateway_url

    @property
    def rebased(self) -> bool:
        return self.api_base != DISCORD_API

    def rebase(self, url: str) -> str:
        """A URL discord.py built for Discord, at ``api_base`` instead."""
        if self.rebased and url.startswith(Route.BASE):
            return self.api_base + url[len(Route.BASE) :]
        return url

    async def request(self, route: Route, **kwargs: Any) -> Any:
        route.url = self.rebase(route.url)
        return await super().request(route, **kwargs)

    async def close(self) -> None:
        await super().close()
        self.connector = discord.utils.MISSING  # closed with the session: a new login makes one

    async def ws_connect(self, url: str, *, compress: int = 0) -> aiohttp.ClientWebSocketResponse:
        if self.gateway_url:
            url = str(yarl.URL(self.gateway_url).with_query(yarl.URL(url).query))
        return await super().ws_connect(url, compress=compress)


class RebasedWebhooks(AsyncWebhookAdapter):
    """discord.py's webhook adapter (interaction responses, followups) at ``api_base``."""

    def __init__(self, rebase: Callable[[str], str]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._rebase = rebase

    async def request(self, route: Route, session: aiohttp.ClientSession, **kwargs: Any) -> Any:
        route.url = self._rebase(route.url)
        return await super().request(route, session, **kwargs)


def use_rebased_webhooks(http: RebasedHTTP) -> None:
    """Send this task's (and its child tasks') interaction responses to ``api_base``."""
    if http.rebased:
        async_context.set(RebasedWebhooks(http.rebase))


class FarmClient(discord.Client):
    """A discord.py client with farmbot's slash commands and persistent button."""

    http: RebasedHTTP

    def __init__(self, handler: Handler, config: DiscordConfig) -> None:
        super().__init__(
            intents=discord.Intents(guilds=True),  # the least discord.py works well with
            allowed_mentions=discord.AllowedMentions.none(),
            enable_debug_events=True,  # every gateway message, heartbeat ACKs included
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
        )
        self.http = RebasedHTTP(self.loop, api_base=config.api_base, gateway_url=config.gateway_url)
        self._connection.http = self.http
        self.handler = handler
        self.guild_ids = config.guild_ids
        self.synced: dict[int | None, str | None] = {}  # guild (None: global) -> problem
        self.tree: app_commands.CommandTree[FarmClient] = app_commands.CommandTree(self)
        guilds = [discord.Object(id=g) for g in config.guild_ids]
        for command in COMMANDS:
            if guilds:
                self.tree.add_command(command, guilds=guilds)
            else:
                self.tree.add_command(command)
        self.add_dynamic_items(FarmButton)

    async def setup_hook(self) -> None:
        """At login: find the gateway of a non-Discord ``api_base``; sync the commands."""
        if self.http.rebased and not self.http.gateway_url:
            _, self.http.gateway_url, _ = await self.http.get_bot_gateway()
        for guild in self.guild_ids or [None]:
            where = discord.Object(id=guild) if guild is not None else None
            try:
                await self.tree.sync(guild=where)
            except discord.HTTPException as exc:
                self.synced[guild] = f"{exc.status} {exc.text or exc}"
                log.warning("discord: the commands were not synced to %s: %s", _scope(guild), exc)
            else:
                self.synced[guild] = None

    async def on_ready(self) -> None:
        self.handler.on_gateway("ready")

    async def on_resumed(self) -> None:
        self.handler.on_gateway("resumed")

    async def on_disconnect(self) -> None:
        self.handler.on_gateway("disconnect")

    async def on_socket_raw_receive(self, payload: str | bytes) -> None:
        self.handler.on_gateway("receive", payload)

    async def on_interaction(self, interaction: discord.Interaction[FarmClient]) -> None:
        """A farmbot modal's submission (every other interaction has its own callback)."""
        if interaction.type is not discord.InteractionType.modal_submit:
            return
        data: Any = interaction.data or {}
        custom_id = str(data.get("custom_id", ""))
        if is_farm_modal(custom_id):
            values = modal_values(data.get("components") or [])
            await self.handler.on_submit(interaction, custom_id, values)

    async def on_error(self, event_method: str, /, *args: Any, **kwargs: Any) -> None:
        log.exception("discord: handling %s failed", event_method)


def _scope(guild: int | None) -> str:
    return f"guild {guild}" if guild is not None else "every guild (global commands)"


class FarmButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=BUTTON_TEMPLATE
):
    """A farmbot button: its ``custom_id`` is the command, or ``a:<id>`` of a stored one.

    Registered with ``Client.add_dynamic_items``, so a press is understood from the
    ``custom_id`` alone -- also on messages sent before a restart.
    """

    def __init__(self, item: discord.ui.Button[discord.ui.View]) -> None:
        super().__init__(item)

    @classmethod
    def make(cls, label: str, data: str, style: discord.ButtonStyle, row: int) -> FarmButton:
        return cls(discord.ui.Button(label=label, custom_id=data, style=style, row=row))

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[discord.Client],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> FarmButton:
        assert isinstance(item, discord.ui.Button)
        return cls(item)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        client = interaction.client
        if isinstance(client, FarmClient):
            await client.handler.on_press(interaction, self.custom_id)


# -- modals ---------------------------------------------------------------------------


def _field(
    text: str,
    custom_id: str,
    *,
    about: str | None = None,
    paragraph: bool = False,
    required: bool = False,
    default: str | None = None,
    max_length: int = ANSWER_CHARS,
) -> discord.ui.Label[discord.ui.View]:
    style = discord.TextStyle.paragraph if paragraph else discord.TextStyle.short
    box: discord.ui.TextInput[discord.ui.View] = discord.ui.TextInput(
        custom_id=custom_id, style=style, required=required, default=default, max_length=max_length
    )
    described = clip(about, DESCRIPTION_CHARS) if about else None
    return discord.ui.Label(text=clip(text, TITLE_CHARS), description=described, component=box)


def _stopped(modal: discord.ui.Modal) -> discord.ui.Modal:
    modal.stop()  # discord.py then keeps no state for it: on_interaction reads the answer
    return modal


def question_modal(custom_id: str, title: str, question: str, command: str) -> discord.ui.Modal:
    """The modal a button's question opens: one optional paragraph."""
    modal = discord.ui.Modal(title=clip(title or "farmbot", TITLE_CHARS), custom_id=custom_id)
    about = f"It goes with {command}; leave it empty for none."
    modal.add_item(_field(question, "answer", about=about, paragraph=True))
    return _stopped(modal)


def task_form(project: str | None) -> discord.ui.Modal:
    """``/task``'s form: a task's project, title, multi-line body and options."""
    modal = discord.ui.Modal(title="Queue a task", custom_id=TASK_FORM)
    modal.add_item(_field("Project", "project", required=True, default=project, max_length=100))
    modal.add_item(_field("Title", "title", required=True, max_length=200))
    modal.add_item(
        _field("Body", "body", about="what the builder should do; any lines", paragraph=True)
    )
    modal.add_item(_field("After", "after", about="task ids it waits for, like 1, 2"))
    modal.add_item(_field("Priority", "priority", about="high, normal or low", max_length=6))
    return _stopped(modal)


# -- the slash commands: typed options -> command text for the router --------------------

Interaction = discord.Interaction[FarmClient]
Kind = Literal["architect", "builder", "shell"]


async def _run(
    interaction: Interaction, text: str, files: tuple[discord.Attachment, ...] = ()
) -> None:
    await interaction.client.handler.on_command(interaction, text, files)


@app_commands.describe(text="the command, as in other chats: spawn builder 42, status, ...")
async def farm(interaction: Interaction, text: str = "") -> None:
    await _run(interaction, farm_text(text))


@app_commands.describe(
    kind="what to start", n="the builder's number (issue, ticket, ...)", project="the project"
)
async def spawn(
    interaction: Interaction, kind: Kind, n: int | None = None, project: str | None = None
) -> None:
    await _run(interaction, slash_text("spawn", kind, n, project))


@app_commands.describe(
    agent="the agent, like builder-42",
    text="what to type into it",
    file="a file to save in its worktree (its path is typed in)",
)
async def send(
    interaction: Interaction,
    agent: str,
    text: str | None = None,
    file: discord.Attachment | None = None,
) -> None:
    await _run(interaction, slash_text("send", agent, text), (file,) if file else ())


@app_commands.describe(agent="the agent, like builder-42", path="a file in its worktree")
async def file(interaction: Interaction, agent: str, path: str) -> None:
    await _run(interaction, slash_text("file", agent, path))


async def ping(interaction: Interaction) -> None:
    await _run(interaction, "/ping")


@app_commands.describe(agent="the agent, like builder-42", lines="how many lines")
async def tail(interaction: Interaction, agent: str, lines: int | None = None) -> None:
    await _run(interaction, slash_text("tail", agent, lines))


@app_commands.describe(gate="the gate's number, as /gates lists it")
async def approve(interaction: Interaction, gate: int) -> None:
    await _run(interaction, slash_text("approve", gate))


@app_commands.describe(gate="the gate's number, as /gates lists it", reason="why (optional)")
async def reject(interaction: Interaction, gate: int, reason: str | None = None) -> None:
    await _run(interaction, slash_text("reject", gate, reason))


@app_commands.describe(project="the project (the form asks for the rest)")
async def task(interaction: Interaction, project: str | None = None) -> None:
    # A form, since an option holds one line and a task's body may hold many.
    await interaction.response.send_modal(task_form(project))


async def status(interaction: Interaction) -> None:
    await _run(interaction, "/status")


async def agents(interaction: Interaction) -> None:
    await _run(interaction, "/agents")


async def gates(interaction: Interaction) -> None:
    await _run(interaction, "/gates")


@app_commands.describe(command="a command to explain")
async def help_command(interaction: Interaction, command: str | None = None) -> None:
    await _run(interaction, slash_text("help", command))


def _command(name: str, description: str, callback: Any) -> app_commands.Command[Any, Any, Any]:
    return app_commands.Command(name=name, description=description, callback=callback)


COMMANDS = (
    _command("farm", "run a farmbot command as typed elsewhere: /farm text:spawn builder 42", farm),
    _command("spawn", "start an agent (builders get their own git worktree)", spawn),
    _command("send", "type a prompt into an agent, or give it a file", send),
    _command("file", "a file from an agent's worktree", file),
    _command("ping", "does farmbot hear you here, and how fast does it answer", ping),
    _command("tail", "the last lines of an agent's screen", tail),
    _command("approve", "approve a gate", approve),
    _command("reject", "reject a gate", reject),
    _command("task", "queue a task for the autopilot (a form: title, body, options)", task),
    _command("status", "agents, gates and projects at a glance", status),
    _command("agents", "every agent and its state", agents),
    _command("gates", "questions waiting for a human", gates),
    _command("help", "what farmbot can do", help_command),
)
