"""The real Claude Code and Codex CLIs, offline in tmux against the fakes in tests/fakes.

Tests marked ``clis`` need the binaries that ``.ci/install-clis.sh`` installs: they skip
when those are missing, and fail instead under ``CI=true``. What they pin down is written
up in docs/agent-clis.md. The corpus test at the end needs no binary.
"""

from __future__ import annotations

import asyncio
import json
import re
import tomllib
from pathlib import Path

import aiohttp
import pytest

from farmbot import codex_hooks
from farmbot.config.schema import builtin_profiles
from farmbot.supervisor.panes import PanePatterns, input_line
from tests import agent_clis as clis
from tests.fakes import anthropic_api as anthropic
from tests.fakes import claude_hooks as hooks
from tests.fakes import openai_api as openai
from tests.helpers import retry_until

SCREENS = Path(__file__).parent / "screens"
EXPECTED = {"idle", "busy", "waiting", "unknown"}
# Keys sent the instant a dialog appears are dropped by Claude Code (and may be by Codex);
# a person never answers within a few hundred milliseconds, and neither should farmbot.
SETTLE = 0.5


async def start_claude(
    tmp_path: Path, socket: str, fake: anthropic.FakeAnthropic, **seed: object
) -> tuple[clis.CliSetup, clis.CliPane]:
    setup = clis.claude_setup(tmp_path, fake.url, **seed)  # type: ignore[arg-type]
    pane = clis.CliPane.start(socket, setup)
    await pane.wait_for(clis.CLAUDE_PROMPT, timeout=30)
    return setup, pane


async def start_codex(
    tmp_path: Path, socket: str, fake: openai.FakeOpenAI, **seed: object
) -> tuple[clis.CliSetup, clis.CliPane]:
    setup = clis.codex_setup(tmp_path, fake.url, **seed)  # type: ignore[arg-type]
    pane = clis.CliPane.start(socket, setup)
    await pane.wait_for(clis.CODEX_PROMPT, timeout=30)
    return setup, pane


# -- Claude Code ------------------------------------------------------------------------


@pytest.mark.clis
async def test_claude_asks_and_runs_the_command_when_approved_by_key(
    tmp_path: Path, tmux_socket: str
) -> None:
    async with anthropic.FakeAnthropic() as fake:
        setup, pane = await start_claude(tmp_path, tmux_socket, fake)
        fake.script(anthropic.bash("touch a.txt", "Create a.txt"), anthropic.Text("Created."))
        await pane.submit("create a.txt")
        screen = await pane.wait_for(clis.CLAUDE_DIALOG)
        assert "touch a.txt" in screen
        assert not (setup.workdir / "a.txt").exists()
        await asyncio.sleep(SETTLE)
        pane.keys("1")
        await pane.wait_for(r"Created\.")
        assert (setup.workdir / "a.txt").exists()
        [result] = (await fake.wait_for(2)).tool_results()
        assert result["is_error"] is False


@pytest.mark.clis
async def test_claude_permission_hook_allow_runs_the_command_with_no_keystroke(
    tmp_path: Path, tmux_socket: str
) -> None:
    async with anthropic.FakeAnthropic() as fake, hooks.HookReceiver() as receiver:
        receiver.answers["PermissionRequest"] = hooks.allow()
        project = hooks.http_hooks(receiver.url, events=("PermissionRequest", "Stop"))
        setup, pane = await start_claude(tmp_path, tmux_socket, fake, project_settings=project)
        fake.script(anthropic.bash("touch a.txt", "Create a.txt"), anthropic.Text("Created."))
        await pane.submit("create a.txt")
        asked = await receiver.wait_for("PermissionRequest")
        assert asked.body["tool_input"]["command"] == "touch a.txt"
        await receiver.wait_for("Stop")
        assert (setup.workdir / "a.txt").exists()
        assert "Allowed by PermissionRequest hook" in pane.capture()


@pytest.mark.clis
async def test_claude_permission_hook_deny_message_reaches_the_model(
    tmp_path: Path, tmux_socket: str
) -> None:
    reason = "farmbot: alice said no: write a.md instead"
    async with anthropic.FakeAnthropic() as fake, hooks.HookReceiver() as receiver:
        receiver.answers["PermissionRequest"] = hooks.deny(reason)
        project = hooks.http_hooks(receiver.url, events=("PermissionRequest",))
        setup, pane = await start_claude(tmp_path, tmux_socket, fake, project_settings=project)
        fake.script(anthropic.bash("touch a.txt", "Create a.txt"), anthropic.Text("Understood."))
        await pane.submit("create a.txt")
        [result] = (await fake.wait_for(2)).tool_results()
        assert result["is_error"] is True
        assert anthropic.tool_result_text(result) == reason
        await pane.wait_for(r"Understood\.")
        assert not (setup.workdir / "a.txt").exists()


@pytest.mark.clis
async def test_claude_hook_session_rule_stops_the_second_question(
    tmp_path: Path, tmux_socket: str
) -> None:
    rule = {
        "type": "addRules",
        "rules": [{"toolName": "Bash", "ruleContent": "touch a.txt"}],
        "behavior": "allow",
        "destination": "session",
    }
    async with anthropic.FakeAnthropic() as fake, hooks.HookReceiver() as receiver:
        receiver.answers["PermissionRequest"] = hooks.allow([rule])
        project = hooks.http_hooks(receiver.url, events=("PermissionRequest", "Stop"))
        setup, pane = await start_claude(tmp_path, tmux_socket, fake, project_settings=project)
        for turn in (1, 2):
            (setup.workdir / "a.txt").unlink(missing_ok=True)
            fake.script(anthropic.bash("touch a.txt", "Create a.txt"), anthropic.Text("Done."))
            await pane.submit(f"create a.txt, round {turn}")
            await receiver.wait_for("Stop", count=turn)
            assert (setup.workdir / "a.txt").exists()
        assert receiver.names().count("PermissionRequest") == 1


@pytest.mark.clis
async def test_claude_shows_its_dialog_when_the_hook_does_not_decide(
    tmp_path: Path, tmux_socket: str
) -> None:
    async with anthropic.FakeAnthropic() as fake, hooks.HookReceiver() as receiver:
        receiver.answers["PermissionRequest"] = hooks.Answer({"error": "boom"}, status=500)
        project = hooks.http_hooks(receiver.url, events=("PermissionRequest",))
        setup, pane = await start_claude(tmp_path, tmux_socket, fake, project_settings=project)
        fake.script(anthropic.bash("touch a.txt", "Create a.txt"), anthropic.Text("Created."))
        await pane.submit("create a.txt")
        await pane.wait_for(clis.CLAUDE_DIALOG)
        await asyncio.sleep(SETTLE)
        pane.keys("Escape")
        await pane.wait_for(r"Interrupted · What should Claude do instead\?")
        assert not (setup.workdir / "a.txt").exists()


@pytest.mark.clis
async def test_claude_draws_its_dialog_while_the_hook_is_pending_and_a_late_allow_closes_it(
    tmp_path: Path, tmux_socket: str
) -> None:
    async with anthropic.FakeAnthropic() as fake, hooks.HookReceiver() as receiver:
        receiver.answers["PermissionRequest"] = hooks.Answer(hooks.allow().body, delay=2.5)
        project = hooks.http_hooks(receiver.url, events=("PermissionRequest",), timeout=20)
        setup, pane = await start_claude(tmp_path, tmux_socket, fake, project_settings=project)
        fake.script(anthropic.bash("touch a.txt", "Create a.txt"), anthropic.Text("Created."))
        await pane.submit("create a.txt")
        await pane.wait_for(clis.CLAUDE_DIALOG)
        assert not receiver.finished, "the dialog came only after the hook answered"
        await pane.wait_for(r"Created\.", timeout=15)
        assert (setup.workdir / "a.txt").exists()
        assert "Allowed by PermissionRequest hook" in pane.capture()


# -- a draft left on the input line (what a crash mid-prompt leaves) ---------------------


async def _draft_is_read_and_cleared(pane: clis.CliPane, profile: str) -> None:
    """The profile's input_pattern reads a draft off the screen; its clear_keys empty it."""
    patterns = PanePatterns.of(builtin_profiles()[profile])
    assert input_line(pane.capture().splitlines(), patterns) == ""
    pane.type("relsec-p00045-builder-2relsec-p00045-builder-2")
    await pane.wait_for("relsec-p00045-builder-2relsec")
    draft = input_line(pane.capture().splitlines(), patterns)
    assert draft == "relsec-p00045-builder-2relsec-p00045-builder-2"
    pane.keys(*builtin_profiles()[profile].clear_keys)
    await pane.wait_for("relsec-p00045", absent=True)
    assert input_line(pane.capture().splitlines(), patterns) == ""
    assert not pane.dead


@pytest.mark.clis
async def test_claude_draft_is_read_and_cleared_by_its_profile(
    tmp_path: Path, tmux_socket: str
) -> None:
    async with anthropic.FakeAnthropic() as fake:
        _, pane = await start_claude(tmp_path, tmux_socket, fake)
        await _draft_is_read_and_cleared(pane, "claude")
        assert fake.requests == []  # nothing was submitted


@pytest.mark.clis
async def test_codex_draft_is_read_and_cleared_by_its_profile(
    tmp_path: Path, tmux_socket: str
) -> None:
    async with openai.FakeOpenAI() as fake:
        _, pane = await start_codex(tmp_path, tmux_socket, fake)
        await _draft_is_read_and_cleared(pane, "codex")
        assert fake.requests == []


# -- Codex ------------------------------------------------------------------------------


@pytest.mark.clis
async def test_codex_asks_and_runs_the_command_when_approved_by_key(
    tmp_path: Path, tmux_socket: str
) -> None:
    async with openai.FakeOpenAI() as fake:
        setup, pane = await start_codex(tmp_path, tmux_socket, fake)
        fake.script(openai.exec_command("touch a.txt", "Create a.txt?"), openai.Text("Done."))
        await pane.submit("create a.txt")
        screen = await pane.wait_for(clis.CODEX_DIALOG)
        assert "Reason: Create a.txt?" in screen
        await asyncio.sleep(SETTLE)
        pane.keys("y")
        await pane.wait_for(r"You approved codex to run touch a\.txt this time")
        await pane.wait_for(r"^• Done\.")
        assert (setup.workdir / "a.txt").exists()
        [output] = (await fake.wait_for(2)).function_outputs()
        assert "Process exited with code 0" in output


@pytest.mark.clis
async def test_codex_deny_with_escape_then_the_typed_reason_reaches_the_model(
    tmp_path: Path, tmux_socket: str
) -> None:
    async with openai.FakeOpenAI() as fake:
        setup, pane = await start_codex(tmp_path, tmux_socket, fake)
        fake.script(openai.exec_command("touch a.txt", "Create a.txt?"), openai.Text("OK."))
        await pane.submit("create a.txt")
        await pane.wait_for(clis.CODEX_DIALOG)
        await asyncio.sleep(SETTLE)
        pane.keys("Escape")
        await pane.wait_for(r"Conversation interrupted")
        await pane.submit("use a.md instead")
        request = await fake.wait_for(2)
        assert any("aborted by user" in out for out in request.function_outputs())
        assert request.user_texts()[-1] == "use a.md instead"
        assert not (setup.workdir / "a.txt").exists()
        await pane.wait_for(r"^• OK\.")  # the answer is drawn: no stream left open


@pytest.mark.clis
async def test_codex_permission_hook_deny_message_reaches_the_model(
    tmp_path: Path, tmux_socket: str
) -> None:
    answer = tmp_path / "answer.json"
    reason = "farmbot: alice said no"
    answer.write_text(hooks.dumps(hooks.permission_output({"behavior": "deny", "message": reason})))
    command = f"cat >/dev/null; cat {answer}"
    async with openai.FakeOpenAI() as fake:
        setup, pane = await start_codex(
            tmp_path,
            tmux_socket,
            fake,
            hooks=hooks.command_hook("PermissionRequest", command),
            extra_args=["--dangerously-bypass-hook-trust"],
        )
        fake.script(openai.exec_command("touch a.txt", "Create a.txt?"), openai.Text("OK."))
        await pane.submit("create a.txt")
        [output] = (await fake.wait_for(2)).function_outputs()
        assert reason in output
        await pane.wait_for(r"Blocked by hook")
        assert not (setup.workdir / "a.txt").exists()
        await pane.wait_for(r"^• OK\.")


@pytest.mark.clis
async def test_codex_hook_exit_status_2_refuses_the_command(
    tmp_path: Path, tmux_socket: str
) -> None:
    command = "cat >/dev/null; echo 'farmbot is unreachable' >&2; exit 2"
    async with openai.FakeOpenAI() as fake:
        setup, pane = await start_codex(
            tmp_path,
            tmux_socket,
            fake,
            hooks=hooks.command_hook("PermissionRequest", command),
            extra_args=["--dangerously-bypass-hook-trust"],
        )
        fake.script(openai.exec_command("touch a.txt", "Create a.txt?"), openai.Text("OK."))
        await pane.submit("create a.txt")
        [output] = (await fake.wait_for(2)).function_outputs()
        assert "farmbot is unreachable" in output
        assert not (setup.workdir / "a.txt").exists()
        await pane.wait_for(r"^• OK\.")


def recording_hook(tmp_path: Path) -> tuple[str, Path]:
    """A hook command that appends each event to a file and allows every permission."""
    events = tmp_path / "events.jsonl"
    allow = hooks.dumps(hooks.permission_output({"behavior": "allow"}))
    script = tmp_path / "hook.sh"
    script.write_text(
        f"#!/bin/sh\n{{ cat; echo; }} >> {events}\n"
        f'case "$(tail -n 1 {events})" in *\\"PermissionRequest\\"*) echo \'{allow}\';; esac\n'
    )
    script.chmod(0o755)
    return str(script), events


@pytest.mark.clis
async def test_codex_runs_farmbots_hooks_trusted_on_its_command_line(
    tmp_path: Path, tmux_socket: str
) -> None:
    """farmbot's -c overrides (codex_hooks.py): no review screen, every event reaches the
    hook, its allow runs the command with no dialog, and nothing is written to config."""
    command, events = recording_hook(tmp_path)
    args = codex_hooks.overrides(command, timeout=10, permission_timeout=930)
    async with openai.FakeOpenAI() as fake:
        setup, pane = await start_codex(tmp_path, tmux_socket, fake, extra_args=args)
        fake.script(openai.exec_command("touch a.txt", "Create a.txt?"), openai.Text("Done."))
        await pane.submit("create a.txt")
        await pane.wait_for(r"^• Done\.")
        assert (setup.workdir / "a.txt").exists()
        screen = pane.capture(history=True)
        assert "Hooks need review" not in screen and "You approved codex" not in screen

        def seen() -> list[str] | None:  # Stop's hook may still run after "Done." shows
            lines = [line for line in events.read_text().splitlines() if line.strip()]
            names = [json.loads(line)["hook_event_name"] for line in lines]
            return names if "Stop" in names else None

        names = await retry_until(seen, message="the Stop hook")
        assert names == list(codex_hooks.EVENTS)  # in the order Codex sends them
        written = tomllib.loads((setup.extra["codex_home"] / "config.toml").read_text())
        assert "hooks" not in written  # no trust recorded beyond this process


@pytest.mark.clis
@pytest.mark.parametrize("untrusted", ["a-changed-hook", "a-hook-of-its-own"])
async def test_codex_asks_to_review_any_hook_farmbot_did_not_trust(
    tmp_path: Path, tmux_socket: str, untrusted: str
) -> None:
    """Trust is for exactly farmbot's hook content: a hook changed after its hash was
    taken, or one in $CODEX_HOME/hooks.json, stops Codex on its review screen."""
    command, _ = recording_hook(tmp_path)
    args = codex_hooks.overrides(command, timeout=10, permission_timeout=930)
    seed: dict[str, object] = {}
    if untrusted == "a-changed-hook":
        at = args.index(next(a for a in args if a.startswith("hooks.PermissionRequest=")))
        args[at] = args[at].replace("timeout=930", "timeout=929")
    else:
        seed["hooks"] = hooks.command_hook("PermissionRequest", "true")
    async with openai.FakeOpenAI() as fake:
        setup = clis.codex_setup(tmp_path, fake.url, extra_args=args, **seed)  # type: ignore[arg-type]
        pane = clis.CliPane.start(tmux_socket, setup)
        screen = await pane.wait_for(r"Hooks need review", timeout=30)
        assert "1 hook is new or changed" in screen


# -- the fakes on their own (no CLI needed) ----------------------------------------------


def sse_events(raw: str) -> list[tuple[str, dict[str, object]]]:
    events = []
    for block in raw.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields.get("event", ""), json.loads(fields["data"])))
    return events


async def test_fake_anthropic_streams_a_tool_call_then_the_next_turn() -> None:
    async with anthropic.FakeAnthropic() as fake, aiohttp.ClientSession() as http:
        fake.script(anthropic.bash("touch a.txt"), anthropic.Text("Done."))
        body = {
            "model": "m",
            "stream": True,
            "tools": [{"name": "Bash"}],
            "messages": [{"role": "user", "content": "go"}],
        }
        async with http.post(f"{fake.url}/v1/messages?beta=true", json=body) as response:
            events = sse_events(await response.text())
        names = [name for name, _ in events]
        assert names[:2] == ["message_start", "ping"] and names[-1] == "message_stop"
        start = next(data for name, data in events if name == "content_block_start")
        assert start["content_block"]["name"] == "Bash"  # type: ignore[index]
        partial = "".join(
            str(data["delta"]["partial_json"])  # type: ignore[index]
            for name, data in events
            if name == "content_block_delta"
        )
        assert json.loads(partial)["command"] == "touch a.txt"
        assert events[-2][1]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
        result = {"type": "tool_result", "tool_use_id": "t", "content": "no, use a.md"}
        body = {**body, "stream": False, "messages": [{"role": "user", "content": [result]}]}
        async with http.post(f"{fake.url}/v1/messages", json=body) as response:
            message = await response.json()
        assert message["content"] == [{"type": "text", "text": "Done."}]
        [tool_result] = fake.main_requests()[1].tool_results()
        assert anthropic.tool_result_text(tool_result) == "no, use a.md"


async def test_fake_anthropic_fails_as_scripted() -> None:
    async with anthropic.FakeAnthropic() as fake, aiohttp.ClientSession() as http:
        fake.script(anthropic.Failure(529, "Overloaded", times=2), anthropic.Text("ok"))
        body = {"stream": False, "tools": [{"name": "Bash"}], "messages": []}
        statuses = []
        for _ in range(3):
            async with http.post(f"{fake.url}/v1/messages", json=body) as response:
                statuses.append(response.status)
                last = await response.json()
        assert statuses == [529, 529, 200] and last["content"][0]["text"] == "ok"


async def test_fake_openai_streams_a_function_call() -> None:
    async with openai.FakeOpenAI() as fake, aiohttp.ClientSession() as http:
        fake.script(openai.exec_command("touch a.txt", "Create it?"))
        body = {"model": "m", "stream": True, "tools": [{"type": "function"}], "input": []}
        async with http.post(f"{fake.url}/responses", json=body) as response:
            events = sse_events(await response.text())
        names = [name for name, _ in events]
        assert names[0] == "response.created" and names[-1] == "response.completed"
        done = next(data for name, data in events if name == "response.output_item.done")
        item = done["item"]
        assert item["type"] == "function_call" and item["name"] == "exec_command"  # type: ignore[index]
        arguments = json.loads(item["arguments"])  # type: ignore[index]
        assert arguments["sandbox_permissions"] == "require_escalated"


# -- harness and corpus -----------------------------------------------------------------


@pytest.mark.parametrize("ci", ["true", ""])
def test_a_missing_binary_skips_locally_and_fails_under_ci(
    ci: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FARMBOT_CLIS_DIR", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CI", ci)
    expected = pytest.fail.Exception if ci else pytest.skip.Exception
    for require in (clis.require_claude, clis.require_codex):
        with pytest.raises(expected, match="install-clis.sh"):
            require()


CORPUS = sorted(SCREENS.glob("*/*/*.txt"))


def test_the_corpus_covers_every_builtin_profile() -> None:
    assert {path.parts[-3] for path in CORPUS} >= set(builtin_profiles())


@pytest.mark.parametrize("path", CORPUS, ids=[str(p.relative_to(SCREENS)) for p in CORPUS])
def test_corpus_file_is_named_for_its_classification(path: Path) -> None:
    expected, separator, what = path.stem.partition("--")
    assert expected in EXPECTED and separator and re.fullmatch(r"[a-z0-9-]+", what), path.name
    assert path.read_text().strip(), f"{path.name} is empty"


IDLE = [p for p in CORPUS if p.stem.startswith("idle--") and p.parts[-3] in builtin_profiles()]


@pytest.mark.parametrize("path", IDLE, ids=[str(p.relative_to(SCREENS)) for p in IDLE])
def test_the_input_line_of_every_idle_screen_reads_empty_but_a_draft(path: Path) -> None:
    """What `farmbot` reads before typing a prompt again after a crash (delivery.py)."""
    patterns = PanePatterns.of(builtin_profiles()[path.parts[-3]])
    typed = input_line(path.read_text().splitlines(), patterns)
    assert typed == ("a draft nobody submitted" if "draft" in path.stem else "")
