"""Daemon logging: JSON lines, rotation, journald priorities, redaction with every handler."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from farmbot import lifecycle, logs
from farmbot.redact import Redactor
from tests.daemon import free_port

SECRET = "123456:tok-s3cret-value"


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """A logger of its own, with the redactor installed for SECRET."""
    redactor = Redactor([SECRET])
    redactor.install()
    log = logging.getLogger("farmbot.test.logs")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    yield log
    for handler in list(log.handlers):
        handler.close()
        log.removeHandler(handler)
    redactor.uninstall()


def log_a_failure(log: logging.Logger) -> None:
    try:
        raise RuntimeError(f"Telegram refused https://api.telegram.org/bot{SECRET}/getMe")
    except RuntimeError:
        log.exception("poll failed for token %s", SECRET)


def test_json_lines_rotate_in_0600_files_and_stay_redacted(
    tmp_path: Path, logger: logging.Logger
) -> None:
    path = tmp_path / "farmbot.log"
    options = logs.LogOptions(format="json", file=path, max_bytes=2048, backups=2)
    logger.addHandler(logs.make_handler(options, {}))
    for i in range(60):
        logger.info("filler line %d with %s", i, SECRET)
    log_a_failure(logger)

    files = sorted(tmp_path.iterdir())
    assert [f.name for f in files] == ["farmbot.log", "farmbot.log.1", "farmbot.log.2"]
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    assert all(f.stat().st_size <= 2048 for f in files)
    assert not [f for f in files if SECRET in f.read_text()]
    records = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert all(set(r) == {"ts", "level", "logger", "message", "exc"} for r in records)
    last = json.loads(path.read_text().splitlines()[-1])
    assert (last["level"], last["logger"]) == ("ERROR", "farmbot.test.logs")
    assert last["message"] == "poll failed for token <redacted>"
    assert last["exc"].startswith("Traceback (most recent call last):")
    assert last["exc"].endswith(
        "RuntimeError: Telegram refused https://api.telegram.org/bot<redacted>/getMe"
    )
    assert last["ts"].endswith("+00:00")
    assert records[0]["exc"] is None


def test_text_lines_stay_redacted(logger: logging.Logger) -> None:
    stream = io.StringIO()
    logger.addHandler(logs.make_handler(logs.LogOptions(), {}, stream))
    log_a_failure(logger)
    text = stream.getvalue()
    assert " ERROR farmbot.test.logs: poll failed for token <redacted>\n" in text
    assert "Traceback" in text and SECRET not in text


def test_syslog_priorities() -> None:
    levels = [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL]
    assert [logs.priority(level) for level in levels] == [7, 6, 4, 3, 2]
    assert logs.journal_prefixed("boom\nTraceback:\n  x", logging.ERROR) == (
        "<3>boom\n<3>Traceback:\n<3>  x"
    )


def test_under_journald_each_line_carries_its_priority(tmp_path: Path, tmux_socket: str) -> None:
    port = free_port()
    config = tmp_path / "farmbot.toml"
    config.write_text(
        f'[server]\nport = {port}\nstate_dir = "state"\n[tmux]\nsocket = "{tmux_socket}"\n'
    )
    lines: dict[str, list[str]] = {}
    for name, journal in (("journal", True), ("elsewhere", False)):
        stderr = tmp_path / name
        with stderr.open("wb") as err:
            st = os.fstat(err.fileno())
            # systemd sets JOURNAL_STREAM to the device and inode of the stream it connected
            stream = f"{st.st_dev}:{st.st_ino}" if journal else f"{st.st_dev}:{st.st_ino + 1}"
            env = {k: v for k, v in os.environ.items() if not k.startswith("FARMBOT_")}
            daemon = subprocess.Popen(
                [sys.executable, "-m", "farmbot", "--config", str(config), "serve", "-v"],
                stdout=subprocess.DEVNULL, stderr=err, env={**env, "JOURNAL_STREAM": stream},
            )  # fmt: skip
        try:
            for _ in range(150):
                if lifecycle.healthy(f"http://127.0.0.1:{port}"):
                    break
                assert daemon.poll() is None, stderr.read_text()
                time.sleep(0.1)
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(15) == 0
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()
        lines[name] = stderr.read_text().splitlines()
    stopping = "INFO farmbot.daemon: stopping: interfaces stop, agents keep running"
    assert f"<6>{stopping} in tmux" in lines["journal"]  # no timestamp: journald adds its own
    assert all(line[:3] in ("<7>", "<6>", "<4>", "<3>", "<2>") for line in lines["journal"])
    assert not any(line.startswith("<") for line in lines["elsewhere"])
    assert any(line.endswith(f" {stopping} in tmux") for line in lines["elsewhere"])


STRAY = """
import logging, sys
from pathlib import Path
from farmbot import logs
logs.setup(logs.LogOptions(file=Path(sys.argv[1]), max_bytes=1024, backups=1), {})
for i in range(60):
    logging.getLogger("farmbot.test").info("filler line %d", i)
print("stray output, as a crash's traceback would be", file=sys.stderr, flush=True)
"""


def test_stderr_that_was_the_log_file_follows_it_across_rotations(tmp_path: Path) -> None:
    path = tmp_path / "farmbot.log"
    with path.open("ab") as err:  # what `farmbot start` gives its daemon as stderr
        subprocess.run([sys.executable, "-c", STRAY, str(path)], stderr=err, check=True)
    current = path.read_text()
    assert current.endswith("stray output, as a crash's traceback would be\n")
    assert "filler line 59" in current
    assert "stray" not in path.with_name("farmbot.log.1").read_text()


def test_an_unwritable_log_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    done = subprocess.run(
        [sys.executable, "-m", "farmbot", "serve", "--log-file", str(tmp_path / "file" / "x.log")],
        capture_output=True, text=True, check=False, env={**os.environ, "HOME": str(tmp_path)},
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (
        1,
        f"farmbot: cannot write the log file {tmp_path / 'file' / 'x.log'}: Not a directory\n",
    )
