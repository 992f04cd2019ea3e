"""The autopilot's commands as parsed text (and JSON): pure, no farm needed."""

from __future__ import annotations

import pytest

from farmbot.bot import commands as c
from farmbot.bot.commands import SPECS, menu, parse, parse_data, spec_of
from farmbot.errors import UsageError
from farmbot.models import AutopilotMode, Priority, Role
from farmbot.supervisor.autopilot import TaskDraft


def add(*drafts: TaskDraft) -> c.AddTasks:
    return c.AddTasks(drafts)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/task add web Fix the login", add(TaskDraft("web", "Fix the login"))),
        (
            "/task add web Fix it --after 3,#4 --priority high",
            add(TaskDraft("web", "Fix it", "", Priority.HIGH, (3, 4))),
        ),
        (
            "/task add web --priority=low Docs --after=2",
            add(TaskDraft("web", "Docs", "", Priority.LOW, (2,))),
        ),
        (
            "/task add web Fix it --body the form\n  keeps two fields\n\nand a button",
            add(TaskDraft("web", "Fix it", "the form\n  keeps two fields\n\nand a button")),
        ),
        (
            "/task add web Fix it --priority high\nThe form.\n  Indented line.\n",
            add(TaskDraft("web", "Fix it", "The form.\n  Indented line.", Priority.HIGH)),
        ),
        (
            "/task add web Docs --body --after 3 is body text",
            add(TaskDraft("web", "Docs", "--after 3 is body text")),
        ),
        ("/task show 7", c.ShowTask(7)),
        ("/task show #7", c.ShowTask(7)),
        ("/tasks", c.ListTasks()),
        ("/tasks web --all", c.ListTasks("web", True)),
        ("/tasks --all", c.ListTasks(None, True)),
        ("/task cancel 3", c.CancelTask(3)),
        ("/task retry 3", c.RetryTask(3)),
        ("/task assign 3 builder-2", c.AssignTask(3, "builder-2")),
        ("/autopilot web", c.SetAutopilot("web")),
        ("/autopilot web Fix_Forward", c.SetAutopilot("web", AutopilotMode.FIX_FORWARD)),
        ("/run start web", c.RunStart("web")),
        ("/run pause web", c.RunPause("web")),
        ("/run resume web", c.RunResume("web")),
        ("/run status", c.RunStatus()),
        ("/run status web", c.RunStatus("web")),
        ("/gate diff 12", c.GateDiff(12)),
        ("/TASK SHOW 7", c.ShowTask(7)),
    ],
)
def test_happy_paths(text: str, expected: object) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("/task", "/task needs more. Try: /task add, /task show"),
        ("/task shwo 3", "unknown subcommand '/task shwo'; did you mean '/task show'?"),
        ("/run", "/run needs more"),
        ("/task add", "missing arguments"),
        ("/task add web", "missing the task's title"),
        ("/task add web x --priority urgent", "unknown priority 'urgent'"),
        ("/task add web x --after", "--after needs a value"),
        ("/task add web x --after abc", "expected a task number"),
        ("/task add web x --prio high", "did you mean '--priority'?"),
        ("/task show", "missing arguments"),
        ("/task assign 3", "missing arguments"),
        ("/tasks web other", "too many arguments"),
        ("/tasks --mine", "unknown option '--mine'"),
        ("/autopilot web turbo", "unknown mode 'turbo' (one of: off, observe, fix_forward"),
        ("/autopilot web fix-forward", "did you mean 'fix_forward'?"),
        ("/gate diff x", "expected a gate number"),
    ],
)
def test_bad_input_says_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse(text)
    assert says in str(caught.value)


def test_json_arguments_of_task_add_name_the_field_that_is_wrong() -> None:
    one = parse_data("/task add", {"project": "web", "title": "x", "after": [1], "priority": "low"})
    assert one == add(TaskDraft("web", "x", "", Priority.LOW, (1,)))
    batch = parse_data(
        "/task add",
        {
            "project": "web",
            "tasks": [{"title": "a", "ref": "a"}, {"title": "b", "after": ["a", 2]}],
        },
    )
    assert batch == add(TaskDraft("web", "a", ref="a"), TaskDraft("web", "b", after=("a", 2)))
    for data, says in (
        ({"title": "x"}, "project: missing"),
        ({"project": "web"}, "title: missing"),
        ({"project": "web", "title": "x", "priority": 3}, "priority: expected"),
        ({"project": "web", "title": "x", "after": [0]}, "after: expected a list of task ids"),
        ({"project": "web", "title": "x", "after": [True]}, "after: expected a list"),
        (
            {"project": "web", "title": "x", "titel": 1},
            "titel: unknown field; did you mean 'title'?",
        ),
        ({"tasks": []}, "tasks: expected a non-empty list"),
        ({"tasks": [{"project": "web"}]}, "tasks[0].title: missing"),
        ({"tasks": [1]}, "tasks[0].: expected a task object"),
    ):
        with pytest.raises(UsageError, match=r".*") as caught:
            parse_data("/task add", data)
        assert says in str(caught.value), (data, str(caught.value))
    with pytest.raises(UsageError, match="does not take JSON arguments"):
        parse_data("/task show", {"task": 1})


def test_roles_and_the_menu() -> None:
    assert spec_of(parse("/task add web x")).role is Role.OPERATOR
    assert spec_of(parse("/task show 1")).role is Role.VIEWER
    assert spec_of(parse("/tasks")).role is Role.VIEWER
    assert spec_of(parse("/run start web")).role is Role.OPERATOR
    assert spec_of(parse("/run status")).role is Role.VIEWER
    assert spec_of(parse("/autopilot web")).role is Role.VIEWER  # setting a mode checks admin
    entries = dict(menu())
    assert all(" " not in name for name in entries)  # Telegram's menu takes single words
    assert entries["task"] == "task add|show|cancel|retry|assign"
    assert entries["run"] == "run start|pause|resume|status"
    assert {"tasks", "autopilot", "gate", "spawn"} <= entries.keys()
    assert "task add" in SPECS and "tasks" in SPECS
