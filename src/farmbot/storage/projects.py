"""Projects: the configured projects and whether new spawns are allowed in them."""

from __future__ import annotations

from typing import Protocol

from farmbot.models import Project
from farmbot.storage.db import Database, Row


class ProjectStore(Protocol):
    async def upsert_project(self, project: Project, now: float) -> None:
        """Insert or update a project by name. ``active`` of an existing row is kept."""

    async def get_project(self, name: str) -> Project | None:
        """The project of that name, or None."""

    async def list_projects(self) -> list[Project]:
        """All projects, ordered by name."""

    async def set_project_active(self, name: str, active: bool, now: float) -> None:
        """Mark a project active or inactive."""


class SqlProjectStore(ProjectStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def upsert_project(self, project: Project, now: float) -> None:
        await self._db.execute(
            "INSERT INTO projects (name, path, active, verify, is_git, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET path = excluded.path,"
            " verify = excluded.verify, is_git = excluded.is_git,"
            " updated_at = excluded.updated_at",
            (project.name, project.path, project.active, project.verify, project.is_git, now),
        )

    async def get_project(self, name: str) -> Project | None:
        row = await self._db.fetchone("SELECT * FROM projects WHERE name = ?", (name,))
        return None if row is None else _project(row)

    async def list_projects(self) -> list[Project]:
        found = await self._db.fetchall("SELECT * FROM projects ORDER BY name")
        return [_project(r) for r in found]

    async def set_project_active(self, name: str, active: bool, now: float) -> None:
        await self._db.execute(
            "UPDATE projects SET active = ?, updated_at = ? WHERE name = ?", (active, now, name)
        )


def _project(r: Row) -> Project:
    return Project(r["name"], r["path"], bool(r["active"]), r["verify"], bool(r["is_git"]))
