"""farmbot as a login service: the systemd user unit and the macOS LaunchAgent.

``farmbot service install`` writes one of them for the farmbot that runs the command (its
absolute path, and ``--config`` when one was given), so the service runs exactly the
install the person just used; with ``--enable`` it also enables and starts it
(``systemctl --user``, ``launchctl``), and a failure names the command that failed.
``deploy/farmbot.service`` and ``deploy/local.farmbot.plist`` are these same renderings
for a pipx install (a test keeps them equal).
"""

from __future__ import annotations

import os
import plistlib
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from farmbot.errors import FarmbotError

UNIT_NAME = "farmbot.service"
LAUNCHD_LABEL = "local.farmbot"
MANAGERS = ("systemd", "launchd")
_PLAIN = re.compile(r"[A-Za-z0-9_@+=:,./-]+")
# `systemctl --user enable --now` of a Type=notify unit waits for farmbot's READY=1.
ENABLE_TIMEOUT = 150.0

UNIT = """\
# farmbot as a systemd user service. `farmbot service install` writes this file with the
# farmbot that runs it (and its --config); by hand, after `pipx install .` in a clone:
#   mkdir -p ~/.config/systemd/user && cp deploy/farmbot.service ~/.config/systemd/user/
#   systemctl --user daemon-reload && systemctl --user enable --now farmbot
#   loginctl enable-linger "$USER"     # keep it (and the agents) running after you log out
#   journalctl --user -u farmbot -f    # its log, with levels
# Secrets: `farmbot secret set NAME` and "vault:NAME" in the config (README: Configuration),
# or variables in ~/.config/farmbot/env (mode 0600) and "env:NAME".

[Unit]
Description=farmbot: supervisor for AI coding agents in tmux, driven from chat

[Service]
Type=notify
# farmbot says READY=1 once the web console answers, and pings the watchdog while its loop runs.
WatchdogSec=60
ExecStart={exec_start}
# `systemctl --user reload farmbot` rereads the config (README: Reloading the configuration).
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=3
# Stop only farmbot itself: the agents' tmux server must outlive a restart of the daemon,
# which re-adopts them when it comes back.
KillMode=process
TimeoutStopSec=20
# Agents' panes, chat connections and hook requests all hold descriptors: 1024 is too few.
LimitNOFILE=65536
EnvironmentFile=-%h/.config/farmbot/env
Environment=PYTHONUNBUFFERED=1
# The vault key as an encrypted credential instead of state_dir/vault.key (user units need
# systemd 256 or newer; README: Running under systemd):
#LoadCredentialEncrypted=farmbot-vault-key:%h/.config/farmbot/vault-key.cred

[Install]
WantedBy=default.target
"""


@dataclass(frozen=True, slots=True)
class Step:
    """One command that enables the service; ``required``: its failure stops the rest."""

    args: tuple[str, ...]
    required: bool = True

    def __str__(self) -> str:
        return shlex.join(self.args)


@dataclass(frozen=True, slots=True)
class Installed:
    path: Path
    command: list[str]  # what the service runs
    next_steps: list[str]  # shell lines that enable and start it
    enable: tuple[Step, ...] = ()  # what --enable runs
    after: tuple[str, ...] = ()  # shell lines worth running once it is enabled


def farmbot_command(argv0: str, executable: str) -> list[str]:
    """How to run this very farmbot again: its script by absolute path, else ``-m``."""
    if os.path.basename(argv0) == "farmbot" and os.path.isfile(argv0):
        return [os.path.abspath(argv0)]  # not realpath: keep pipx's ~/.local/bin link
    return [os.path.abspath(executable), "-m", "farmbot"]


def service_command(farmbot: Sequence[str], config: Path | None) -> list[str]:
    options = ["--config", str(config.resolve())] if config is not None else []
    return [*farmbot, *options, "serve"]


def systemd_quote(arg: str) -> str:
    """One ExecStart= word: specifiers (%) and variables ($) escaped, quoted if needed."""
    escaped = arg.replace("%", "%%").replace("$", "$$")
    if arg != ";" and _PLAIN.fullmatch(arg.replace("%", "_").replace("$", "_")):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_unit(exec_start: str) -> str:
    """The user unit; ``exec_start`` is already an ExecStart= command line."""
    return UNIT.format(exec_start=exec_start)


def render_plist(command: Sequence[str], *, log_file: Path, path_env: str) -> bytes:
    """The LaunchAgent: run at login, restarted when it fails, agents left alone on stop."""
    return plistlib.dumps(
        {
            "Label": LAUNCHD_LABEL,
            "ProgramArguments": [*command, "--log-file", str(log_file)],
            "RunAtLoad": True,
            "KeepAlive": {"SuccessfulExit": False},  # like Restart=on-failure
            # like KillMode=process: the agents' tmux server outlives a stop
            "AbandonProcessGroup": True,
            "ExitTimeOut": 20,
            "StandardErrorPath": str(log_file),
            "EnvironmentVariables": {"PATH": path_env, "PYTHONUNBUFFERED": "1"},
        }
    )


def default_manager() -> str:
    return "launchd" if sys.platform == "darwin" else "systemd"


def unit_path(environ: Mapping[str, str], home: Path) -> Path:
    config_home = environ.get("XDG_CONFIG_HOME") or str(home / ".config")
    return Path(config_home) / "systemd" / "user" / UNIT_NAME


def plist_path(home: Path) -> Path:
    return home / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"


def install(
    manager: str,
    command: Sequence[str],
    *,
    state_dir: Path,
    environ: Mapping[str, str],
    home: Path,
    force: bool = False,
) -> Installed:
    """Write the unit (or plist) that runs ``command``; refuse to overwrite one."""
    if manager == "systemd":
        path = unit_path(environ, home)
        replaced = path.exists()
        content = render_unit(" ".join(systemd_quote(a) for a in command)).encode()
        enable: tuple[Step, ...] = (
            Step(("systemctl", "--user", "daemon-reload")),
            Step(("systemctl", "--user", "enable", "--now", UNIT_NAME)),
        )
        after: tuple[str, ...] = (
            'loginctl enable-linger "$USER"   # keep it running after you log out',
            "journalctl --user -u farmbot -f   # its log",
        )
        if replaced:  # `enable --now` leaves a farmbot that runs already on the old unit
            after = (f"systemctl --user restart {UNIT_NAME}   # to run the new unit", *after)
        steps = [" && ".join(str(step) for step in enable), *after]
    else:
        path = plist_path(home)
        replaced = path.exists()
        log = state_dir / "farmbot.log"
        content = render_plist(command, log_file=log, path_env=environ.get("PATH", ""))
        domain = f"gui/{os.getuid()}"
        # A LaunchAgent loaded already is unloaded first (bootstrap refuses it): it may
        # not be loaded at all, so that step may fail.
        unload = Step(("launchctl", "bootout", f"{domain}/{LAUNCHD_LABEL}"), required=False)
        enable = (
            *((unload,) if replaced else ()),
            Step(("launchctl", "bootstrap", domain, str(path))),
        )
        after = (
            f"launchctl kickstart -k gui/$(id -u)/{LAUNCHD_LABEL}   # restart it",
            f"farmbot logs -f   # its log ({log})",
        )
        steps = [f"launchctl bootstrap gui/$(id -u) {path}", *after]
    if replaced and not force:
        raise FarmbotError(f"{path} already exists; use --force to replace it")
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(content)
        os.chmod(tmp, 0o644)  # launchd refuses a plist others may write
        os.replace(tmp, path)
    except OSError as exc:
        raise FarmbotError(f"cannot write {exc.filename or path}: {exc.strerror}") from None
    return Installed(path, list(command), steps, enable, after)


def enable(installed: Installed, environ: Mapping[str, str]) -> list[str]:
    """Run ``installed.enable`` (the programs found on ``environ``'s PATH); return what
    ran. Raises ``FarmbotError``, one line naming the command, when one is missing or
    fails: the file stays written, and the message says so."""
    ran: list[str] = []
    for step in installed.enable:
        program = shutil.which(step.args[0], path=environ.get("PATH", os.defpath))
        left = f"{installed.path} is written but not enabled"
        if program is None:
            if not step.required:
                continue
            raise FarmbotError(
                f"--enable: {step.args[0]} is not on PATH ({step} cannot run); {left}"
            )
        try:
            done = subprocess.run(
                [program, *step.args[1:]],
                capture_output=True, text=True, errors="replace", stdin=subprocess.DEVNULL,
                env=dict(environ), timeout=ENABLE_TIMEOUT, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise FarmbotError(
                f"`{step}` did not finish within {ENABLE_TIMEOUT:g} s; {left} (or not yet "
                "started: see its log)"
            ) from None
        except OSError as exc:
            raise FarmbotError(f"`{step}` could not run: {exc.strerror}; {left}") from None
        if done.returncode != 0 and step.required:
            said = " ".join((done.stderr.strip() or done.stdout.strip()).split())[:300]
            raise FarmbotError(
                f"`{step}` failed (exit {done.returncode})"
                + (f": {said}" if said else "")
                + f"; {left}"
            )
        ran.append(str(step) + (f" (exit {done.returncode}, ignored)" if done.returncode else ""))
    return ran
