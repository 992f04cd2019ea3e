"""The chat platform seam: a platform is described once, in ``config.chats``, and every part
that concerns chat platforms (the loader, ``[users]`` and authorization, alerts and gates,
reloading, the composition root) knows exactly the platforms listed there. A platform
added to the list but missed by one of them fails here, by name."""

from __future__ import annotations

import importlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from farmbot.bot.authz import People, users_line
from farmbot.build import INTERFACES
from farmbot.config import Config, load_config
from farmbot.config.alerts import BUILTIN_INTERFACES, HEARING_INTERFACES
from farmbot.config.chats import CHATS, NAMES, by_name
from farmbot.config.loader import GATE_INTERFACES
from farmbot.config.platform import ChatPlatform
from farmbot.errors import ConfigError
from farmbot.reload import RESTART_ONLY, changes, restart_needed

EACH = pytest.mark.parametrize("chat", CHATS, ids=[chat.name for chat in CHATS])
NOT_CHATS = ("web", "cli", "scheduler")  # interfaces that are not chat platforms


def load(tmp_path: Path, toml: str) -> Config:
    path = tmp_path / "farmbot.toml"
    path.write_text(toml)
    return load_config(path, {}, tmp_path)


def test_each_platform_is_listed_once_under_its_own_name() -> None:
    assert len(set(NAMES)) == len(CHATS)
    assert not set(NAMES) & set(NOT_CHATS)
    assert [by_name(name) for name in NAMES] == list(CHATS)
    assert by_name("web") is None


def test_the_interfaces_config_alerts_and_reload_know_are_exactly_the_registry() -> None:
    assert set(GATE_INTERFACES) - set(NOT_CHATS) == set(NAMES)
    assert set(BUILTIN_INTERFACES) - {"web"} == set(NAMES)
    assert set(HEARING_INTERFACES) == {chat.name for chat in CHATS if chat.hears}
    sections = {key for key in RESTART_ONLY if "." not in key} - {"webhooks"}
    assert sections == {chat.name for chat in CHATS if chat.restart}


@EACH
def test_the_loader_hands_the_section_to_the_platform(
    tmp_path: Path, chat: ChatPlatform[Any]
) -> None:
    """An empty ``[<name>]`` is read by the platform's parser (not an unknown key)."""
    try:
        config = load(tmp_path, f"[{chat.name}]\n")
    except ConfigError as exc:
        assert exc.key.startswith(f"{chat.name}."), str(exc)
    else:
        assert chat.name in config.chats


@EACH
def test_a_stranger_added_as_the_refusal_says_is_let_in(
    tmp_path: Path, chat: ChatPlatform[Any]
) -> None:
    line = users_line(chat.name, "1001")  # what the router tells a stranger to add
    config = load(tmp_path, line.replace("[users.<name>] ", '[users.zed]\nrole = "viewer"\n'))
    people = People(config.users)
    zed = people.identify(chat.name, "1001")
    assert zed is not None and (zed.name, zed.via) == ("zed", chat.name)
    assert people.identify(chat.name, "1002") is None
    for other in NAMES:  # an id is someone's on its own platform only
        if other != chat.name:
            assert people.identify(other, "1001") is None


@EACH
def test_alerts_and_gates_take_the_platform(tmp_path: Path, chat: ChatPlatform[Any]) -> None:
    route = f'[[alerts.routes]]\ninterface = "{chat.name}"\nchannel = "1"\n'
    with pytest.raises(ConfigError) as info:
        load(tmp_path, route)  # known, but the platform is not configured
    assert str(info.value) == (
        f"config: alerts.routes[0].interface: '{chat.name}' is not configured; "
        f"add a [{chat.name}] section"
    )
    config = load(tmp_path, f'[gates]\ninterfaces = ["{chat.name}"]\n')
    assert config.gates.interfaces == (chat.name,)
    deaf = f"[alerts]\ndeaf_after = {{ {chat.name} = 60 }}\n"
    if chat.hears:
        assert load(tmp_path, deaf).alerts.deaf_after_of(chat.name) == 60
    else:
        with pytest.raises(ConfigError, match="is not a chat interface"):
            load(tmp_path, deaf)


@EACH
def test_reload_names_the_section_and_whether_it_needs_a_restart(
    chat: ChatPlatform[Any],
) -> None:
    old = Config()
    new = replace(old, chats={chat.name: object()})
    assert changes(old, new) == [chat.name]
    assert restart_needed(changes(new, old)) == ([chat.name] if chat.restart else [])


def test_the_composition_root_registers_one_adapter_per_platform_named_as_it() -> None:
    sections = {chat.name: object() for chat in CHATS}
    config = Config(chats=sections)
    for chat in CHATS:
        takers = [r for r in INTERFACES if sections[chat.name] in r.sections(config)]
        assert len(takers) == 1, f"{chat.name}: {len(takers)} registrations in build.INTERFACES"
        module, _, name = takers[0].factory.partition(":")
        assert getattr(importlib.import_module(module), name).name == chat.name
