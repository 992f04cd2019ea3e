"""`farmbot serve` as a real process: spawn over HTTP, SIGTERM, restart and re-adopt, the CLI."""

from __future__ import annotations

import os
from pathlib import Path

from tests.daemon import farmbot, free_port, git_project, run, serve
from tests.helpers import retry_until


async def tmux_has_session(sock: str, name: str) -> bool:
    return (await run("tmux", "-L", sock, "has-session", "-t", f"={name}")).code == 0


async def test_serve_spawn_sigterm_restart_readopt(tmp_path: Path, tmux_socket: str) -> None:
    repo = await git_project(tmp_path / "repo")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = tmp_path / "farmbot.toml"
    config.write_text(
        f"""
[server]
host = "127.0.0.1"
port = {port}
state_dir = "state"

[tmux]
socket = "{tmux_socket}"

[supervisor]
tick_seconds = 0.2

[[projects]]
name = "farm"
path = "{repo}"

[agents.demo]
env = {{ FARMBOT_DEMO_STEP = "0.02" }}
"""
    )
    worktree = tmp_path / "state" / "worktrees" / "farm" / "builder-42"

    async with serve(config, url, tmp_path / "first") as daemon:
        assert f"{url}/#key={daemon.key}" in daemon.stdout.read_text()
        spawned = await daemon.command("/spawn builder 42")
        assert spawned["ok"] is True, spawned
        assert f"worktree {worktree} on branch farmbot/builder-42" in spawned["text"]
        assert (worktree / ".git").is_file()
        branch = await run("git", "-C", str(worktree), "branch", "--show-current")
        assert branch.out.strip() == "farmbot/builder-42"
        where = await run(
            "tmux", "-L", tmux_socket, "display-message", "-p", "-t", "=builder-42:",
            "#{pane_current_path}",
        )  # fmt: skip
        assert Path(where.out.strip()).resolve() == worktree.resolve()

        async def screen_shows(text: str) -> str | None:
            tail = await daemon.command("/tail builder-42 60")
            return tail["pre"] if text in tail["pre"] else None

        screen: str = await retry_until(
            lambda: screen_shows("✓ done: You are builder 42 on project farm"),
            timeout=15,
            message="the builder prompt to be worked on",
        )
        assert "> received: You are builder 42 on project farm. Work on issue #42" in screen
        sent = await daemon.command("/send builder-42 add a login page\n  with two fields")
        assert sent["ok"] is True, sent
        screen = await retry_until(
            lambda: screen_shows("✓ done: add a login page"),
            message="the sent text to be worked on",
        )
        assert "demo> add a login page\n  ...   with two fields\n" in screen
        assert "> received: add a login page (+1 more lines)" in screen
        assert await daemon.terminate() == 0
    assert await tmux_has_session(tmux_socket, "builder-42"), "SIGTERM took the agent down"

    async with serve(config, url, tmp_path / "second") as daemon:
        # The login link holds the key: printed at the first start only (the journal keeps
        # every start's output), and by `farmbot login-link` on request.
        assert daemon.key not in daemon.stdout.read_text()
        assert "login-link" in daemon.stdout.read_text()
        assert (await farmbot(config, "login-link")).out == f"{url}/#key={daemon.key}\n"
        agents = await daemon.command("/agents")
        [line] = [x for x in agents["text"].splitlines() if x.startswith("builder-42 ")]
        assert line.startswith("builder-42 [farm] ")
        assert not any(word in line for word in ("dead", "stopped")), line
        assert ("agent.readopted", "builder-42") in await daemon.events()
        listed = await farmbot(config, "cmd", "/agents")
        assert listed.code == 0, listed.err
        assert "builder-42 [farm]" in listed.out
        assert await daemon.terminate() == 0
    assert await tmux_has_session(tmux_socket, "builder-42")

    stopped = await farmbot(config, "cmd", "/status")
    assert stopped.code != 0
    assert stopped.out == ""
    assert len(stopped.err.strip().splitlines()) == 1
    assert stopped.err.startswith(f"farmbot is not running at {url}")


async def test_serve_with_a_bad_config_key_says_which_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[server]\nprot = 8080\n")
    done = await farmbot(config, "serve")
    assert done.code == 2
    assert done.err == "config: server.prot: unknown key (did you mean 'port'?)\n"
    assert not os.path.exists(tmp_path / "state")
