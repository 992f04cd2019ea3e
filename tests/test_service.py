"""`farmbot service install`: the systemd user unit (checked by systemd-analyze) and the plist."""

from __future__ import annotations

import os
import plistlib
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from farmbot import service

REPO = Path(__file__).parent.parent
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def install(
    home: Path, *args: str, argv0: list[str] | None = None, path: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FARMBOT_", "XDG_"))}
    env["HOME"] = str(home)
    if path is not None:
        env["PATH"] = path
    command = argv0 or [sys.executable, "-m", "farmbot"]
    return subprocess.run(
        [*command, "service", "install", *args],
        capture_output=True, text=True, env=env, timeout=30, check=False,
    )  # fmt: skip


def stand_in(bin_dir: Path, name: str, log: Path, *, fail_on: str = "", said: str = "") -> None:
    """A ``name`` program that records its arguments in ``log`` (systemd itself cannot
    run here); with ``fail_on``, arguments containing it exit 1 after printing ``said``."""
    bin_dir.mkdir(exist_ok=True)
    program = bin_dir / name
    program.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$*" >> "{log}"\n'
        + (f'case "$*" in *{fail_on}*) echo "{said}" >&2; exit 1;; esac\n' if fail_on else "")
        + "exit 0\n"
    )
    program.chmod(0o755)


def verify(unit: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """systemd-analyze verify as the user manager would load it; warnings count as failures."""
    assert SYSTEMD_ANALYZE is not None
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    return subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--user", str(unit)],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)},
    )  # fmt: skip


def exec_start(unit: Path) -> str:
    [line] = [x for x in unit.read_text().splitlines() if x.startswith("ExecStart=")]
    return line.removeprefix("ExecStart=")


def test_install_writes_the_user_unit_for_this_farmbot(tmp_path: Path) -> None:
    config_dir = tmp_path / "my conf 100%"  # a space and a specifier character to escape
    config_dir.mkdir()
    config = config_dir / "farmbot.toml"
    config.write_text('[server]\nstate_dir = "state"\n')

    done = install(tmp_path, "--config", str(config))

    unit = tmp_path / ".config" / "systemd" / "user" / "farmbot.service"
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith(f"wrote {unit}, which runs: {sys.executable}")
    assert "  systemctl --user daemon-reload && systemctl --user enable --now farmbot.service" in (
        done.stdout.splitlines()
    )
    assert 'loginctl enable-linger "$USER"' in done.stdout
    assert exec_start(unit) == (
        f'{sys.executable} -m farmbot --config "{tmp_path}/my conf 100%%/farmbot.toml" serve'
    )
    text = unit.read_text()
    assert "\nLimitNOFILE=65536\n" in text and "\nType=notify\n" in text
    assert "\nKillMode=process\n" in text
    assert "network-online" not in text  # a user unit cannot order itself after it

    again = install(tmp_path, "--config", str(config))
    assert (again.returncode, again.stderr) == (
        1,
        f"farmbot: {unit} already exists; use --force to replace it\n",
    )
    assert install(tmp_path, "--force").returncode == 0
    assert exec_start(unit) == f"{sys.executable} -m farmbot serve"


def test_enable_reloads_systemd_then_enables_and_starts_the_unit(tmp_path: Path) -> None:
    log = tmp_path / "systemctl.log"
    stand_in(tmp_path / "bin", "systemctl", log)

    done = install(tmp_path, "--enable", path=f"{tmp_path / 'bin'}:{os.environ['PATH']}")

    assert done.returncode == 0, done.stderr
    assert log.read_text().splitlines() == [
        "--user daemon-reload",
        "--user enable --now farmbot.service",
    ]
    lines = done.stdout.splitlines()
    assert lines[1:4] == [
        "ran: systemctl --user daemon-reload",
        "ran: systemctl --user enable --now farmbot.service",
        "farmbot.service is enabled and started; next:",
    ]
    assert any("loginctl enable-linger" in line for line in lines)
    assert (tmp_path / ".config/systemd/user/farmbot.service").is_file()

    log.unlink()  # replacing the unit: a farmbot already running needs a restart for it
    again = install(tmp_path, "--force", "--enable", path=f"{tmp_path / 'bin'}:/usr/bin:/bin")
    assert again.returncode == 0, again.stderr
    assert len(log.read_text().splitlines()) == 2
    assert "  systemctl --user restart farmbot.service   # to run the new unit" in again.stdout


def test_enable_that_fails_is_one_line_naming_the_command(tmp_path: Path) -> None:
    log = tmp_path / "systemctl.log"
    bus = "Failed to connect to bus: No medium found"
    stand_in(tmp_path / "bin", "systemctl", log, fail_on="enable", said=bus)

    done = install(tmp_path, "--enable", path=f"{tmp_path / 'bin'}:/usr/bin:/bin")

    unit = tmp_path / ".config" / "systemd" / "user" / "farmbot.service"
    assert (done.returncode, done.stderr) == (
        1,
        f"farmbot: `systemctl --user enable --now farmbot.service` failed (exit 1): {bus}; "
        f"{unit} is written but not enabled\n",
    )
    assert log.read_text().splitlines() == [
        "--user daemon-reload",
        "--user enable --now farmbot.service",
    ]
    assert unit.is_file()


def test_enable_without_systemctl_says_so(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()

    done = install(tmp_path, "--enable", path=str(tmp_path / "empty"))

    unit = tmp_path / ".config" / "systemd" / "user" / "farmbot.service"
    assert (done.returncode, done.stderr) == (
        1,
        "farmbot: --enable: systemctl is not on PATH (systemctl --user daemon-reload cannot "
        f"run); {unit} is written but not enabled\n",
    )
    assert unit.is_file()


def test_enable_bootstraps_the_launch_agent(tmp_path: Path) -> None:
    log = tmp_path / "launchctl.log"
    stand_in(tmp_path / "bin", "launchctl", log, fail_on="bootout", said="Boot-out failed: 3")
    path = f"{tmp_path / 'bin'}:/usr/bin:/bin"
    plist = tmp_path / "Library" / "LaunchAgents" / "local.farmbot.plist"

    done = install(tmp_path, "--manager", "launchd", "--enable", path=path)

    assert done.returncode == 0, done.stderr
    domain = f"gui/{os.getuid()}"
    assert log.read_text().splitlines() == [f"bootstrap {domain} {plist}"]
    assert f"ran: launchctl bootstrap {domain} {plist}" in done.stdout.splitlines()
    log.unlink()
    # Replaced: the loaded one is booted out first, which may fail (it was not loaded).
    again = install(tmp_path, "--manager", "launchd", "--force", "--enable", path=path)
    assert again.returncode == 0, again.stderr
    assert log.read_text().splitlines() == [
        f"bootout {domain}/local.farmbot",
        f"bootstrap {domain} {plist}",
    ]
    assert f"ran: launchctl bootout {domain}/local.farmbot (exit 1, ignored)" in again.stdout


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_passes_on_the_generated_unit(tmp_path: Path) -> None:
    config_dir = tmp_path / "my conf 100%"
    config_dir.mkdir()
    (config_dir / "farmbot.toml").write_text("")
    assert install(tmp_path, "--config", str(config_dir / "farmbot.toml")).returncode == 0
    unit = tmp_path / ".config" / "systemd" / "user" / "farmbot.service"

    checked = verify(unit, tmp_path)

    assert (checked.returncode, checked.stdout, checked.stderr) == (0, "", "")
    broken = tmp_path / "broken" / "farmbot.service"  # the check does catch a bad unit
    broken.parent.mkdir()
    broken.write_text(unit.read_text().replace("Type=notify", "Type=notifyy"))
    assert "Failed to parse service type" in verify(broken, tmp_path).stderr


def test_the_console_script_is_run_by_its_absolute_path(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "farmbot"
    if not script.is_file():
        pytest.skip("farmbot is not installed as a console script next to this python")
    done = install(tmp_path, argv0=[str(script)])
    assert done.returncode == 0, done.stderr
    assert exec_start(tmp_path / ".config/systemd/user/farmbot.service") == f"{script} serve"


def test_install_writes_the_launch_agent_plist(tmp_path: Path) -> None:
    config = tmp_path / "farmbot.toml"
    config.write_text('[server]\nstate_dir = "state"\n')

    done = install(tmp_path, "--manager", "launchd", "--config", str(config))

    plist = tmp_path / "Library" / "LaunchAgents" / "local.farmbot.plist"
    assert done.returncode == 0, done.stderr
    assert f"  launchctl bootstrap gui/$(id -u) {plist}" in done.stdout.splitlines()
    agent = plistlib.loads(plist.read_bytes())
    log = str(tmp_path / "state" / "farmbot.log")
    assert agent["Label"] == "local.farmbot"
    assert agent["ProgramArguments"] == [
        sys.executable, "-m", "farmbot", "--config", str(config), "serve", "--log-file", log,
    ]  # fmt: skip
    assert agent["StandardErrorPath"] == log
    assert agent["KeepAlive"] == {"SuccessfulExit": False}
    assert agent["AbandonProcessGroup"] is True  # the agents' tmux outlives a stop
    assert agent["EnvironmentVariables"]["PATH"] == os.environ["PATH"]  # tmux must be found
    assert stat.S_IMODE(plist.stat().st_mode) & 0o022 == 0


def test_the_shipped_templates_are_what_install_writes_for_a_pipx_install() -> None:
    assert (REPO / "deploy" / "farmbot.service").read_text() == service.render_unit(
        "%h/.local/bin/farmbot serve"
    )
    assert (REPO / "deploy" / "local.farmbot.plist").read_bytes() == service.render_plist(
        ["/Users/you/.local/bin/farmbot", "serve"],
        log_file=Path("/Users/you/.local/state/farmbot/farmbot.log"),
        path_env="/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
    )


@pytest.mark.parametrize(
    ("arg", "word"),
    [
        ("/usr/bin/farmbot", "/usr/bin/farmbot"),
        ("/a b/c", '"/a b/c"'),
        ("100%", "100%%"),
        ("$HOME", "$$HOME"),
        ('say "hi"\\', '"say \\"hi\\"\\\\"'),
        ("", '""'),
        (";", '";"'),
    ],
)
def test_systemd_quoting(arg: str, word: str) -> None:
    assert service.systemd_quote(arg) == word
