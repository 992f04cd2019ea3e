"""The autopilot's configuration: per project, per profile, [supervisor]; errors name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from farmbot.config.schema import DEFAULT_TASK_PROMPT
from farmbot.models import AutopilotMode
from tests.test_config import failure, load

PROJECT = '[[projects]]\nname = "web"\npath = "."\n'


def test_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, PROJECT)
    [pc] = config.projects
    assert (pc.autopilot, pc.land, pc.land_command, pc.base_branch) == (
        AutopilotMode.OFF,
        "merge",
        None,
        None,
    )
    assert (pc.deploy_staging, pc.deploy_prod) == (None, None)
    sup = config.supervisor
    assert (sup.max_agents, sup.task_timeout, sup.max_attempts) == (16, 7200.0, 3)
    assert config.agents["demo"].task_prompt == DEFAULT_TASK_PROMPT


def test_every_key_is_read(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        PROJECT + 'base_branch = "develop"\nland = "rebase"\nautopilot = "auto_prod"\n'
        'deploy_staging = "make staging"\ndeploy_prod = "make prod"\n'
        "[supervisor]\nmax_agents = 5\ntask_timeout = 900\nmax_attempts = 2\n"
        '[agents.demo]\ntask_prompt = "Do {id} ({title}) on {branch} in {project}: {body}"\n',
    )
    [pc] = config.projects
    assert (pc.base_branch, pc.land, pc.autopilot) == ("develop", "rebase", AutopilotMode.AUTO_PROD)
    assert (pc.deploy_staging, pc.deploy_prod) == ("make staging", "make prod")
    sup = config.supervisor
    assert (sup.max_agents, sup.task_timeout, sup.max_attempts) == (5, 900.0, 2)
    assert config.agents["demo"].task_prompt.startswith("Do {id}")
    command = load(tmp_path, PROJECT + 'land_command = "gh pr create --fill"\n').projects[0]
    assert (command.land, command.land_command) == ("command", "gh pr create --fill")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            PROJECT + 'autopilot = "auto"\n',
            "config: projects[0].autopilot: unknown value 'auto' (use one of: off, observe, "
            "fix_forward, auto_staging, auto_prod); did you mean 'auto_prod'?",
        ),
        (
            PROJECT + 'land = "squash"\n',
            "config: projects[0].land: unknown value 'squash' (use one of: merge, rebase, command)",
        ),
        (
            PROJECT + 'land = "command"\n',
            'config: projects[0].land_command: missing (land = "command" runs it to land a task)',
        ),
        (
            PROJECT + 'land = "rebase"\nland_command = "x"\n',
            'config: projects[0].land: is "rebase", but land_command is set: use "command" or '
            "drop one",
        ),
        (PROJECT + 'base_branch = "a b"\n', "config: projects[0].base_branch: invalid branch name"),
        (PROJECT + 'deploy_prod = ""\n', "config: projects[0].deploy_prod: must not be empty"),
        (
            "[supervisor]\nmax_agents = 0\n",
            "config: supervisor.max_agents: must be at least 1, got 0",
        ),
        (
            "[supervisor]\ntask_timeout = 0\n",
            "config: supervisor.task_timeout: must be greater than 0",
        ),
        (
            '[supervisor]\nmax_attempts = "3"\n',
            'config: supervisor.max_attempts: expected an integer, got string "3"',
        ),
        (
            '[agents.demo]\ntask_prompt = "Task {n}"\n',
            "config: agents.demo.task_prompt: unknown placeholder {n}; only {id}, {title}, "
            "{body}, {project} and {branch} may be used",
        ),
        (PROJECT + 'autopilt = "observe"\n', "did you mean 'autopilot'?"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, toml: str, message: str) -> None:
    assert message in failure(tmp_path, toml)
