"""Who is asking, and what their role allows. Fails closed: unknown people get nothing."""

from __future__ import annotations

from dataclasses import dataclass, replace

from farmbot.config.schema import UserConfig
from farmbot.models import Role

LOCAL_PLATFORMS = ("web", "cli")  # reached only with the local key


@dataclass(frozen=True, slots=True)
class Person:
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


def _matches(user: UserConfig, platform: str, user_id: str) -> bool:
    if platform == "telegram":
        return user.telegram is not None and str(user.telegram) == user_id
    if platform == "slack":
        return user.slack is not None and user.slack == user_id
    if platform == "discord":
        return user.discord is not None and str(user.discord) == user_id
    return False
