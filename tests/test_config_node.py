"""``[node]`` and the projects a node holds: one node with SQLite, several on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from farmbot.config import Config, load_config
from farmbot.config.node import NodeConfig, default_node_name
from farmbot.errors import ConfigError

SHARED = '[storage]\nurl = "postgresql://farmbot@db.example.com/farm"\n'


def load(tmp_path: Path, toml: str) -> Config:
    path = tmp_path / "farmbot.toml"
    path.write_text(f'[server]\nstate_dir = "state"\n{toml}')
    return load_config(path, {}, tmp_path)


def failure(tmp_path: Path, toml: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, toml)
    return str(caught.value)


def test_the_node_is_named_after_the_host_unless_configured(tmp_path: Path) -> None:
    default = load(tmp_path, "").node
    assert default == NodeConfig(name=default_node_name()) and default.name
    assert default.down_after == 9.0  # three heartbeats of 3 s
    node = load(tmp_path, '[node]\nname = "gpu.box-1"\nheartbeat = 1\nlease = 5\n').node
    assert (node.name, node.heartbeat, node.lease, node.down_after) == ("gpu.box-1", 1.0, 5.0, 3.0)


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('name = "-gpu"', "config: node.name: invalid node name '-gpu'"),
        ('name = "a b"', "config: node.name: invalid node name 'a b'"),
        ("heartbeat = 0.1", "config: node.heartbeat: must be from 0.2 to 60 seconds, got 0.1"),
        ("lease = 0.5", "config: node.lease: must be at least 1 second, got 0.5"),
        ("answer_timeout = 0", "config: node.answer_timeout: must be greater than 0, got 0"),
        ("nmae = 'x'", "config: node.nmae: unknown key (did you mean 'name'?)"),
    ],
)
def test_node_errors_name_the_key(tmp_path: Path, toml: str, expected: str) -> None:
    assert failure(tmp_path, f"[node]\n{toml}\n").startswith(expected)


def project(name: str, path: Path | str, nodes: str = "") -> str:
    return f'[[projects]]\nname = "{name}"\npath = "{path}"\n{nodes}\n'


def test_a_shared_database_holds_projects_where_named_or_where_their_path_exists(
    tmp_path: Path,
) -> None:
    here = tmp_path / "here"
    here.mkdir()
    toml = (
        SHARED
        + '[node]\nname = "gpu"\n'
        + project("local", here)
        + project("elsewhere", "/nonexistent/checkout")
        + project("named", here, 'nodes = ["build"]')
        + project("mine", here, 'nodes = ["gpu", "build"]')
    )
    held = {p.name: (p.held, p.nodes) for p in load(tmp_path, toml).projects}
    assert held == {
        "local": (True, ()),
        "elsewhere": (False, ()),
        "named": (False, ("build",)),
        "mine": (True, ("gpu", "build")),
    }


def test_a_project_held_here_needs_its_path(tmp_path: Path) -> None:
    toml = SHARED + '[node]\nname = "gpu"\n' + project("p", "/nonexistent/x", 'nodes = ["gpu"]')
    assert failure(tmp_path, toml) == "config: projects[0].path: /nonexistent/x: no such directory"


def test_one_node_with_sqlite_holds_every_project_as_before(tmp_path: Path) -> None:
    assert failure(tmp_path, project("p", "/nonexistent/x")) == (
        "config: projects[0].path: /nonexistent/x: no such directory"
    )
    assert failure(tmp_path, project("p", tmp_path, 'nodes = ["gpu"]')) == (
        "config: projects[0].nodes: is used only with a shared database (storage.url)"
    )
    assert [p.held for p in load(tmp_path, project("p", tmp_path)).projects] == [True]
    assert failure(tmp_path, SHARED + project("p", tmp_path, 'nodes = ["a b"]')).startswith(
        "config: projects[0].nodes[0]: invalid node name 'a b'"
    )
