"""Who is asking, and what their role allows. Fails closed: unknown people get nothing."""

from __future__ import annotations

from dataclasses import dataclass, replace

from farmbot.config import chats
from farmbot.config.schema import UserConfig
from farmbot.models import Role

LOCAL_PLATFORMS = ("web", "cli")  # reached only with the local key


@dataclass(frozen=True, slots=True)
class Person:
    """A configured person, with the role they act in."""

    name: str
    role: Role
    via: str = ""  # the interface they came through: "web", "cli", "telegram", ...

    def __str__(self) -> str:
        return self.name


LOCAL_KEY_HOLDER = Person("local", Role.ADMIN)


class People:
    """The allowlist: configured users and their identity on each platform."""

    def __init__(self, users: tuple[UserConfig, ...]) -> None:
        self._users = users

    def __repr__(self) -> str:
        return f"<People users={len(self._users)}>"

    def identify(self, platform: str, user_id: str) -> Person | None:
        """The configured person behind an identity, or None for a stranger.

        The web console and the CLI are reached only with the local key. Whoever holds
        it acts as the user marked ``web = true``, or as the admin "local" when no user
        is -- so a farmbot with no users configured is usable by its owner and nobody else.
        """
        if platform in LOCAL_PLATFORMS:
            web_user = next((u for u in self._users if u.web), None)
            if web_user is None:
                return replace(LOCAL_KEY_HOLDER, via=platform)
            return Person(web_user.name, web_user.role, platform)
        if platform == "scheduler":
            user = next((u for u in self._users if u.name == user_id), None)
            return Person(user.name, user.role, platform) if user else None
        for user in self._users:
            if _matches(user, platform, user_id):
                return Person(user.name, user.role, platform)
        return None


def users_line(platform: str, user_id: str) -> str:
    """What an admin adds to farmbot.toml to let this identity in (told to strangers)."""
    chat = chats.by_name(platform)
    literal = chat.ids.literal(user_id) if chat is not None else user_id
    return f"[users.<name>] {platform} = {literal}"


def _matches(user: UserConfig, platform: str, user_id: str) -> bool:
    chat = chats.by_name(platform)  # each chat platform says how its ids compare
    configured = user.ids.get(platform)
    return chat is not None and configured is not None and chat.ids.same(configured, user_id)
