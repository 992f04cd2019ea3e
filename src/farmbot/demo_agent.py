"""A small interactive program that behaves like a coding-agent CLI (standard library only).

farmbot's default agent, and what the test suite drives in real tmux. Its behaviour is
deterministic and documented in docs/demo-agent.md. On a terminal it reads keys itself
(non-canonical, no echo, bracketed paste), so a multi-line paste and then Enter is one
prompt, as with the real CLIs; otherwise it reads lines.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import select
import signal
import subprocess
import sys
import termios
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Literal, NoReturn

Answer = Literal["yes", "session", "no"]  # to the permission dialog

BANNER = "farmbot demo agent — type 'help' for the inputs it understands"
PROMPT = "demo> "
CONTINUATION = "  ... "  # as wide as PROMPT, and never mistaken for it
SPINNER = "⠋⠙⠹⠸"
DEFAULT_COMMAND = "touch demo.txt"
FAIL_LINE = "Error: build failed: exit status 1"
REPEAT_LINE = "Error: test_login failed: AssertionError"
HELP_LINE = "I need human help: I can't decide between two designs. Which one should I use?"
# Worded so that none of its lines looks like a prompt, a busy line, a dialog or an error.
HELP_TEXT = """\
inputs the demo agent understands (case-insensitive):
  exit, /exit                          say bye and exit with status 0
  help                                 show this list
  crash                                exit at once with status 3
  hang                                 one busy line, then silence until Ctrl-C
  fail                                 one busy step, then a broken build
  repeat-error                         the same complaint three times, one per step
  text with "help me" or "need help"   ask the human which of two designs to use
  limit                                the usage limit, with the time it resets
  run <command>, text with permission  a permission dialog (1/y/Enter yes, 2/n/Esc no)
  Task <n>: <title> (a task prompt)    do the task: write a file, commit, report done
  anything else                        a few busy steps, then a done line"""

# Tasks (docs/demo-agent.md, "Tasks"): a prompt whose first line is "Task <n>: <title>".
TASK_LINE = re.compile(r"^task (\d+):\s*(.*)$", re.IGNORECASE)
TASKS_DIR = "demo-tasks"
TASK_FLAGS = (
    "fail-verify-once",
    "fail-verify",
    "hang-once",
    "hang",
    "crash-once",
    "crash",
    "no-done",
)
FLAG = re.compile(r"\bdemo:(" + "|".join(TASK_FLAGS) + r")\b", re.IGNORECASE)
VERIFY_FAIL = "verify: fail"
IDENTITY = ["-c", "user.name=farmbot demo agent", "-c", "user.email=demo-agent@farmbot.invalid"]
COMMAND_TIMEOUT = 60.0

ESCAPE_WAIT = 0.05  # a lone ESC byte is the Escape key if nothing follows within this
PASTE_START, PASTE_END = b"\x1b[200~", b"\x1b[201~"


class Interrupted(Exception):
    """Ctrl-C while the agent was working."""


@dataclass(frozen=True, slots=True)
class Key:
    """char/paste (with ``text``), enter, backspace, escape, ctrl-c, ctrl-d, ctrl-u or eof."""

    kind: str
    text: str = ""


def parse_key(buf: bytes | bytearray) -> tuple[Key | None, int]:
    """Split the first key off ``buf``: ``(key, bytes used)``.

    ``(None, 0)`` means the bytes so far are incomplete; ``(None, n)`` means the first
    ``n`` bytes are a key to ignore (arrows, function keys, Alt+key, other controls).
    """
    if not buf:
        return None, 0
    first = buf[0]
    if first == 0x1B:
        if len(buf) == 1:
            return None, 0
        if buf[1] == 0x5B:  # CSI: ESC [ parameters... final byte
            end = next((i for i in range(2, len(buf)) if 0x40 <= buf[i] <= 0x7E), -1)
            if end < 0:
                return (None, len(buf)) if len(buf) > 64 else (None, 0)
            if buf[: end + 1] != PASTE_START:
                return None, end + 1
            stop = buf.find(PASTE_END, end + 1)
            if stop < 0:
                return None, 0
            text = bytes(buf[end + 1 : stop]).decode("utf-8", "replace")
            text = text.replace("\r\n", "\n").replace("\r", "\n")
            return Key("paste", text), stop + len(PASTE_END)
        if buf[1] == 0x4F:  # SS3: ESC O x
            return (None, 0) if len(buf) < 3 else (None, 3)
        if buf[1] == 0x1B:
            return Key("escape"), 1
        return None, 2  # Alt+key
    if first in (0x0D, 0x0A):
        return Key("enter"), 2 if buf[:2] == b"\r\n" else 1
    controls = {
        0x03: "ctrl-c",
        0x04: "ctrl-d",
        0x15: "ctrl-u",
        0x7F: "backspace",
        0x08: "backspace",
    }
    if first in controls:
        return Key(controls[first]), 1
    if first < 0x20:
        return None, 1
    size = 1 if first < 0x80 else 2 if first < 0xE0 else 3 if first < 0xF0 else 4
    if len(buf) < size:
        return None, 0
    return Key("char", bytes(buf[:size]).decode("utf-8", "replace")), size


class KeyReader:
    """Keys from a terminal file descriptor in non-canonical mode."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = bytearray()

    def next(self, timeout: float | None = None) -> Key | None:
        """The next key, or None when ``timeout`` seconds pass without one."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            key, used = parse_key(self.buf)
            del self.buf[:used]
            if key is not None:
                return key
            if used:  # an ignored key; look at what follows
                continue
            # An incomplete escape sequence (not a paste) resolves after a short silence.
            pending_escape = self.buf[:1] == b"\x1b" and not self.buf.startswith(PASTE_START)
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if pending_escape:
                wait = ESCAPE_WAIT
            ready, _, _ = select.select([self.fd], [], [], wait)
            if ready:
                chunk = os.read(self.fd, 4096)
                if not chunk:
                    return Key("eof")
                self.buf += chunk
            elif pending_escape:
                lone = self.buf == b"\x1b"
                self.buf.clear()
                if lone:
                    return Key("escape")
            elif deadline is not None and time.monotonic() >= deadline:
                return None


def write(text: str) -> None:
    """Write ``text`` to stdout as UTF-8, whatever the locale, and flush."""
    sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.buffer.flush()


class TerminalConsole:
    """Keys from a TTY, echoed and edited here; Ctrl-C interrupts work."""

    def __init__(self, keys: KeyReader) -> None:
        self.keys = keys
        self.typeahead: deque[Key] = deque()  # typed while busy, for the next prompt

    def read_prompt(self) -> str | None:
        text = ""
        write(PROMPT)
        while True:
            key = self.typeahead.popleft() if self.typeahead else self.keys.next()
            assert key is not None
            if key.kind == "char":
                text += key.text
                write(key.text)
            elif key.kind == "paste":
                text += key.text
                write(key.text.replace("\n", "\n" + CONTINUATION))
            elif key.kind == "backspace" and text:
                text, gone = text[:-1], text[-1]
                if gone != "\n":
                    write("\b \b")
                else:  # back to the end of the previous line
                    column = len(PROMPT) + len(text.rsplit("\n", 1)[-1])
                    write(f"\r\x1b[K\x1b[A\r\x1b[{column}C")
            elif key.kind == "enter":
                write("\n")
                return text
            elif key.kind in ("ctrl-c", "ctrl-u"):  # the whole draft goes, every line of it
                write("\r\x1b[K\x1b[A" * text.count("\n") + "\r\x1b[K" + PROMPT)
                text = ""
            elif (key.kind == "ctrl-d" and not text) or key.kind == "eof":
                write("\n")
                return None

    def pause(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            key = self.keys.next(None if math.isinf(left) else left)
            if key is None:
                return
            if key.kind == "eof":
                raise SystemExit(0)
            if key.kind == "ctrl-c":
                self.typeahead.clear()
                raise Interrupted
            self.typeahead.append(key)

    def confirm(self) -> Answer:
        # Fresh keys only: what was typed while busy stays queued for the prompt.
        while True:
            key = self.keys.next()
            assert key is not None
            if key.kind == "enter" or (key.kind == "char" and key.text in ("1", "y", "Y")):
                return "yes"
            if key.kind == "char" and key.text == "2":
                return "session"
            if key.kind == "escape" or (key.kind == "char" and key.text in ("3", "n", "N")):
                return "no"
            if key.kind == "ctrl-c":
                raise Interrupted
            if key.kind == "eof":
                raise SystemExit(0)


class LineConsole:
    """Lines from a pipe or file: no editing, no interrupts except SIGINT."""

    def read_prompt(self) -> str | None:
        write(PROMPT)
        line = sys.stdin.readline()
        write(line if line.endswith("\n") else line + "\n")  # a transcript like a terminal's
        return line.rstrip("\r\n") if line else None

    def pause(self, seconds: float) -> None:
        try:
            while seconds > 0:
                time.sleep(min(seconds, 3600.0))
                seconds -= 3600.0
        except KeyboardInterrupt:
            raise Interrupted from None

    def confirm(self) -> Answer:
        while line := sys.stdin.readline():
            answer = line.strip().lower()
            if answer in ("", "1", "y"):
                return "yes"
            if answer == "2":
                return "session"
            if answer in ("3", "n"):
                return "no"
        raise SystemExit(0)


def say(*lines: str) -> None:
    write("".join(line + "\n" for line in lines))


@dataclass
class DemoAgent:
    """The read–act loop; what each input does is in docs/demo-agent.md."""

    console: TerminalConsole | LineConsole  # prompts, dialog answers, waiting
    step: float = 0.5
    steps: int = 4
    limit_minutes: int = 2
    log_path: str | None = None  # append {"ts", "prompt"} JSON lines here
    clock: Callable[[], float] = time.time
    transient: bool = False  # redraw one status line in place, as TUIs do (on a terminal)
    allowed: set[str] = field(default_factory=set)  # approved "don't ask again" this run

    def run(self) -> int:
        """Show the banner and answer prompts until one ends the program; its exit status."""
        say(BANNER)
        while (prompt := self.console.read_prompt()) is not None:
            code = self.submit(prompt)
            if code is not None:
                return code
        return 0

    def submit(self, prompt: str) -> int | None:
        """Act on one submitted prompt; an exit status when the program should end."""
        text = prompt.strip()
        if not text:
            return None
        self._log(prompt)
        lines = text.splitlines()
        more = f" (+{len(lines) - 1} more lines)" if len(lines) > 1 else ""
        say(f"> received: {lines[0]}{more}")
        try:
            return self._act(text, lines[0])
        except (Interrupted, KeyboardInterrupt):  # Ctrl-C on a terminal, SIGINT otherwise
            self._clear_status()
            say("Interrupted")
            return None

    def _act(self, text: str, first: str) -> int | None:
        low = text.lower()
        task = TASK_LINE.match(first.strip())
        if task is not None:
            return self._task(task.group(1), task.group(2).strip(), text)
        if low in ("exit", "/exit"):
            say("bye")
            return 0
        if low == "help":
            say(HELP_TEXT)
        elif low == "crash":
            say("Fatal: demo agent crashed")
            return 3
        elif low == "hang":
            self._busy(1, keep=True)
            self.console.pause(math.inf)
        elif low == "fail":
            self._busy(1)
            say(FAIL_LINE)
        elif low == "repeat-error":
            for _ in range(3):
                say(REPEAT_LINE)
                self.console.pause(self.step)
        elif "help me" in low or "need help" in low:
            say(HELP_LINE)
        elif low == "limit":
            resets = datetime.fromtimestamp(self.clock() + 60 * self.limit_minutes, UTC)
            say(f"Usage limit reached. Your limit resets at {resets:%H:%M} UTC.")
        elif re.search(r"\bpermission", low) or low.startswith("run "):
            command = first.strip()[4:].strip() if low.startswith("run ") else ""
            self._ask_permission(command or DEFAULT_COMMAND, first)
        else:
            self._work(first)
        return None

    def _busy(self, count: int, *, keep: bool = False) -> None:
        for i in range(1, count + 1):
            status = f"{SPINNER[(i - 1) % len(SPINNER)]} working... step {i}/{self.steps}"
            if self.transient:
                write(f"\r\x1b[K{status}")
            else:
                say(status)
            if not keep or i < count:
                self.console.pause(self.step)
        if not keep:
            self._clear_status()

    def _clear_status(self) -> None:
        """A finished status line disappears, like a real CLI's spinner."""
        if self.transient:
            write("\r\x1b[K")

    def _work(self, first: str) -> None:
        self._busy(self.steps)
        say(f"✓ done: {first[:60]}")

    def _ask_permission(self, command: str, first: str) -> None:
        self._busy(1)
        if command in self.allowed:
            say(f"✓ allowed (don't ask again): {command}")
            self._work(first)
            return
        say(
            " Bash command",
            f"   {command}",
            " Do you want to proceed?",
            " ❯ 1. Yes",
            f"   2. Yes, and don't ask again for: {command}",
            "   3. No",
            " Esc to cancel",
        )
        answer = self.console.confirm()
        if answer == "no":
            say("✗ denied. What should I do instead?")
            return
        if answer == "session":
            self.allowed.add(command)
        say(f"✓ approved: {command}")
        self._work(first)

    def _task(self, task_id: str, title: str, text: str) -> int | None:
        """Do a task: write demo-tasks/task-<n>.md, commit it, run `farmbot task done`."""
        path = Path(TASKS_DIR) / f"task-{task_id}.md"
        old = read_task_file(path)
        flags = sorted(set(old.flags) | {f.lower() for f in FLAG.findall(text)})
        revision = old.revision + 1
        title = old.title or title
        self._busy(self.steps)
        crash = "crash" in flags or ("crash-once" in flags and not old.crashed)
        hang = "hang" in flags or ("hang-once" in flags and not old.hung)
        fail = "fail-verify" in flags or ("fail-verify-once" in flags and revision == 1)
        lines = [f"# Task {task_id}: {title}", f"revision: {revision}"]
        lines += [f"flags: {' '.join(flags)}"] if flags else []
        lines += [VERIFY_FAIL] if fail else []
        lines += ["crashed: yes"] if crash or old.crashed else []
        lines += ["hung: yes"] if hang or old.hung else []
        path.parent.mkdir(exist_ok=True)
        path.write_text("\n".join([*lines, "", text.strip(), ""]), encoding="utf-8")
        commit = _commit(path, f"task {task_id}: {title} (revision {revision})")
        if crash:
            say("Fatal: demo agent crashed")
            return 3
        if hang:
            self._busy(1, keep=True)
            self.console.pause(math.inf)
            return None
        if "no-done" not in flags:
            note = f"wrote {path} (revision {revision})"
            say(_run([sys.executable, "-m", "farmbot", "task", "done", "--note", note]))
        say(f"✓ done: task {task_id} (commit {commit or 'none: not a git repository'})")
        return None

    def _log(self, prompt: str) -> None:
        if self.log_path:
            entry = json.dumps({"ts": self.clock(), "prompt": prompt}, ensure_ascii=False)
            with open(self.log_path, "a", encoding="utf-8") as log:
                log.write(entry + "\n")


@dataclass
class TaskFile:
    """What an earlier revision of a task file says (all empty when there is none)."""

    title: str = ""
    revision: int = 0
    flags: tuple[str, ...] = ()
    crashed: bool = False
    hung: bool = False


def read_task_file(path: Path) -> TaskFile:
    found = TaskFile()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return found
    for line in text.splitlines():
        if line.startswith("# Task ") and ": " in line and not found.title:
            found.title = line.split(": ", 1)[1]
        elif line.startswith("revision: ") and line[10:].strip().isdigit():
            found.revision = int(line[10:].strip())
        elif line.startswith("flags: "):
            found.flags = tuple(line[len("flags: ") :].split())
        elif line == "crashed: yes":
            found.crashed = True
        elif line == "hung: yes":
            found.hung = True
        elif not line:
            break
    return found


def _commit(path: Path, message: str) -> str:
    """Commit ``path`` on the current branch; the short commit id ("" outside git)."""
    if subprocess.run(["git", "rev-parse", "--git-dir"], capture_output=True).returncode:
        return ""
    _run(["git", "add", "--", str(path)])
    _run(["git", *IDENTITY, "commit", "-q", "-m", message, "--", str(path)])
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip()


def _run(argv: list[str]) -> str:
    """Run a command; its last line of output (what it said)."""
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"({argv[0]} did not run: {exc})"
    said = (done.stdout + done.stderr).strip().splitlines()
    return said[-1] if said else f"({' '.join(argv[:3])}: exit {done.returncode})"


def verify(directory: Path) -> int:
    """``--verify``: exit 1 when a demo task file was told to fail verification."""
    files = sorted((directory / TASKS_DIR).glob("task-*.md"))
    failing = [f for f in files if VERIFY_FAIL in f.read_text(encoding="utf-8").splitlines()]
    for f in failing:
        say(f"FAILED {f.relative_to(directory)}: the task asked for it (demo:fail-verify)")
    if failing:
        return 1
    say(f"ok: {len(files)} demo task file{'s' if len(files) != 1 else ''} pass")
    return 0


@contextmanager
def terminal_mode(fd: int) -> Iterator[None]:
    """Non-canonical, no echo, no signal keys, bracketed paste; all undone on the way out.

    SIGTERM, SIGHUP and SIGQUIT become ``SystemExit`` so the terminal is restored then too.
    """
    saved = termios.tcgetattr(fd)
    mode = termios.tcgetattr(fd)
    mode[0] &= ~(termios.ICRNL | termios.INLCR | termios.IGNCR | termios.IXON)
    mode[3] &= ~(termios.ICANON | termios.ECHO | termios.ISIG | termios.IEXTEN)
    mode[6][termios.VMIN] = 1
    mode[6][termios.VTIME] = 0

    def on_signal(signum: int, frame: FrameType | None) -> NoReturn:
        raise SystemExit(128 + signum)

    handled = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
    previous = {signum: signal.signal(signum, on_signal) for signum in handled}
    try:
        termios.tcsetattr(fd, termios.TCSANOW, mode)
        write("\x1b[?2004h")
        yield
    finally:
        with suppress(OSError):  # stdout or the terminal may be gone (SIGHUP)
            write("\x1b[?2004l")
        with suppress(termios.error):
            termios.tcsetattr(fd, termios.TCSANOW, saved)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _seconds(text: str) -> float:
    with suppress(ValueError):
        if 0 <= (value := float(text)) < math.inf:
            return value
    raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}")


def _count(minimum: int) -> Callable[[str], int]:
    def convert(text: str) -> int:
        with suppress(ValueError):
            if (value := int(text)) >= minimum:
                return value
        raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}")

    return convert


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Options; FARMBOT_DEMO_STEP/FARMBOT_DEMO_STEPS set the defaults. Exits 2 on bad ones."""
    parser = _Parser(
        prog="farmbot demo-agent",
        description="A demo coding-agent CLI; type 'help' at its prompt. Environment: "
        "FARMBOT_DEMO_STEP and FARMBOT_DEMO_STEPS change the defaults, FARMBOT_DEMO_LOG=FILE "
        "appends each submitted prompt to FILE as a JSON line.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )

    def from_env(name: str, convert: Callable[[str], float], fallback: str) -> float:
        try:
            return convert(os.environ.get(name, fallback))
        except argparse.ArgumentTypeError as exc:
            parser.error(f"{name}: {exc}")

    step = from_env("FARMBOT_DEMO_STEP", _seconds, "0.5")
    steps = from_env("FARMBOT_DEMO_STEPS", _count(1), "4")
    add = parser.add_argument
    add("--step", type=_seconds, default=step, metavar="SECONDS", help="seconds per busy step")
    add("--steps", type=_count(1), default=steps, metavar="N", help="busy steps per task")
    add("--limit-minutes", type=_count(0), default=2, metavar="M", help="until a limit resets")
    add(
        "--verify",
        action="store_true",
        help="check the demo task files here instead (a project's verify command)",
    )
    args = parser.parse_args(argv)
    if log_path := os.environ.get("FARMBOT_DEMO_LOG"):
        try:
            open(log_path, "a", encoding="utf-8").close()
        except OSError as exc:
            parser.error(f"FARMBOT_DEMO_LOG: cannot append to {log_path!r}: {exc.strerror}")
    args.log_path = log_path or None
    return args


def main(argv: list[str]) -> int:
    """Run the demo agent; its exit status (2 for bad options)."""
    try:
        args = parse_args(argv)
        if args.verify:
            return verify(Path.cwd())
        tty = sys.stdin.isatty()
        console = TerminalConsole(KeyReader(sys.stdin.fileno())) if tty else LineConsole()
        agent = DemoAgent(
            console, args.step, int(args.steps), args.limit_minutes, args.log_path, transient=tty
        )
        with terminal_mode(sys.stdin.fileno()) if tty else nullcontext():
            return agent.run()
    except SystemExit as exc:  # bad options, end of input, SIGTERM/SIGHUP/SIGQUIT
        return exc.code if isinstance(exc.code, int) else 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
