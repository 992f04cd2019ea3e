"""The pure command parser: text in, a typed command or a UsageError out."""

from __future__ import annotations

import pytest

from farmbot.bot import commands as c
from farmbot.bot.commands import SPECS, parse, spec_of
from farmbot.errors import UsageError
from farmbot.models import AgentKind, Role

B = AgentKind.BUILDER


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/help", c.Help()),
        ("/help /Spawn", c.Help("spawn")),
        ("/status", c.Status()),
        ("/projects", c.Projects()),
        ("/activate myproj", c.Activate("myproj")),
        ("/deactivate myproj", c.Deactivate("myproj")),
        ("/spawn builder 42 myproj", c.Spawn(B, 42, "myproj")),
        ("/spawn builder #42", c.Spawn(B, 42)),
        ("/spawn builder myproj", c.Spawn(B, None, "myproj")),
        ("/spawn architect", c.Spawn(AgentKind.ARCHITECT)),
        ("/spawn shell", c.Spawn(AgentKind.SHELL)),
        ("/spawn@farmbot_bot builder 7", c.Spawn(B, 7)),
        ("/SPAWN Builder 7", c.Spawn(B, 7)),
        ("spawn builder 7", c.Spawn(B, 7)),
        ("  /agents  ", c.Agents()),
        ("/send builder-42 hello there", c.Send("builder-42", "hello there")),
        ("/tail builder-42", c.Tail("builder-42", c.DEFAULT_TAIL)),
        ("/tail builder-42 200", c.Tail("builder-42", 200)),
        ("/kill builder-42", c.Kill("builder-42")),
        ("/kill x --remove-worktree", c.Kill("x", remove_worktree=True)),
        ("/kill x --force --rm", c.Kill("x", remove_worktree=True, force=True)),
        ("/gates", c.Gates()),
        ("/approve 7", c.Approve(7)),
        ("/approve #7", c.Approve(7)),
        ("/reject #7", c.Reject(7)),
        ("/reject 3 too risky", c.Reject(3, "too risky")),
        ("/reject 3   too   risky, redo it  ", c.Reject(3, "too   risky, redo it")),
    ],
)
def test_happy_paths(text: str, expected: c.Command) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "sent"),
    [
        (
            "/send builder-1 line one\n  indented\tTAB\n\n    last line",
            "line one\n  indented\tTAB\n\n    last line",
        ),
        ("/send builder-1\n  first\n second  ", "  first\n second"),
        ("/send builder-1 a  b   c", "a  b   c"),
    ],
)
def test_send_keeps_newlines_and_inner_whitespace(text: str, sent: str) -> None:
    assert parse(text) == c.Send("builder-1", sent)


@pytest.mark.parametrize(
    ("text", "problem", "usage"),
    [
        ("/spawn", "missing arguments", "spawn"),
        ("/spawn buidler 4", "unknown agent kind 'buidler'; did you mean 'builder'?", "spawn"),
        ("/spawn robot", "unknown agent kind 'robot' (one of: architect, builder, shell)", "spawn"),
        ("/spawn builder 0", "number must be a whole number from 1 to 999999, not '0'", "spawn"),
        ("/spawn builder -1", "number must be a whole number from 1 to 999999, not '-1'", "spawn"),
        (
            "/spawn builder #-1",
            "number must be a whole number from 1 to 999999, not '#-1'",
            "spawn",
        ),
        ("/spawn builder 1000000", "from 1 to 999999, not '1000000'", "spawn"),
        ("/spawn builder 4 proj extra", "too many arguments: 'extra'", "spawn"),
        ("/spawn builder 4 ../etc", "invalid project name '../etc'", "spawn"),
        ("/send builder-1", "nothing to send to builder-1", "send"),
        ("/send", "missing arguments", "send"),
        ("/tail x 0", "lines must be a whole number from 1 to 2000, not '0'", "tail"),
        ("/tail x 2001", "lines must be a whole number from 1 to 2000, not '2001'", "tail"),
        ("/tail x ³", "lines must be a whole number from 1 to 2000, not '³'", "tail"),
        ("/kill x --force", "--force goes with --remove-worktree", "kill"),
        ("/kill x --purge", "unknown option '--purge'", "kill"),
        ("/approve", "missing arguments", "approve"),
        ("/approve seven", "expected a gate number such as 7 (/gates lists them)", "approve"),
        ("/approve " + "9" * 5000, "expected a gate number such as 7", "approve"),
        ("/reject", "missing arguments", "reject"),
        ("/reject 0 no", "expected a gate number such as 7 (/gates lists them)", "reject"),
        ("/status now", "too many arguments: 'now'", "status"),
        ("/activate", "missing arguments", "activate"),
    ],
)
def test_usage_errors_name_the_problem_and_show_usage(text: str, problem: str, usage: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse(text)
    message = str(caught.value)
    assert problem in message.splitlines()[0]
    assert caught.value.usage == SPECS[usage].usage
    assert message.endswith(f"\nusage: {SPECS[usage].usage}")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("/spwan builder 4", "unknown command '/spwan'; did you mean '/spawn'? Try /help."),
        ("/aprove 3", "unknown command '/aprove'; did you mean '/approve'? Try /help."),
        ("/xyzzy", "unknown command '/xyzzy'. Try /help."),
        ("", "empty command; try /help"),
        ("/", "empty command; try /help"),
    ],
)
def test_unknown_or_empty_commands(text: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse(text)
    assert str(caught.value) == message


def test_the_core_commands_parse_to_their_own_spec_and_role() -> None:
    examples = {
        "help": "/help",
        "status": "/status",
        "projects": "/projects",
        "activate": "/activate p",
        "deactivate": "/deactivate p",
        "spawn": "/spawn shell",
        "agents": "/agents",
        "send": "/send a hi",
        "tail": "/tail a",
        "kill": "/kill a",
        "gates": "/gates",
        "approve": "/approve 1",
        "reject": "/reject 1",
    }
    assert set(examples) <= set(SPECS)
    roles = {name: spec_of(parse(text)).role for name, text in examples.items()}
    assert {n for n, r in roles.items() if r is Role.VIEWER} == {
        "help", "status", "projects", "agents", "tail", "gates"
    }  # fmt: skip
    assert {n for n, r in roles.items() if r is Role.OPERATOR} == {"spawn", "send", "kill"}
    assert {n for n, r in roles.items() if r is Role.ADMIN} == {
        "activate", "deactivate", "approve", "reject"
    }  # fmt: skip
    assert all(spec_of(parse(text)).name == name for name, text in examples.items())


@pytest.mark.parametrize("separator", ["\r\n", "\u00a0", "\u3000", " \r\n", "\t"])
def test_send_accepts_any_separator_after_the_agent(separator: str) -> None:
    assert parse(f"/send builder-1{separator}hello") == c.Send("builder-1", "hello")
