"""The daemon's logging: human-readable or JSON lines, to stderr or a rotating file.

- ``text``: ``2025-06-01 12:00:00,123 INFO farmbot.daemon: message`` (traceback below it)
- ``json``: one object per line with ``ts``, ``level``, ``logger``, ``message``, ``exc``
- ``--log-file PATH``: size-based rotation (``PATH.1`` ... ``PATH.<backups>``), files 0600.
  When stdout/stderr are that file too (``farmbot start``), they follow it across a
  rotation, so output that bypasses logging (a crash's traceback) lands in the current file.
- Under systemd, when stderr is the journal (``$JOURNAL_STREAM`` names stderr's device and
  inode), every line carries its syslog priority (``<3>``, ``<4>``, ``<6>``, ``<7>``) so
  journald records the level, and the text format drops the timestamp journald adds itself.

Redaction (``farmbot.redact``) hooks the log record factory, so every record reaching any
handler here is already clean; the formatters use the record's cleaned ``exc_text`` rather
than formatting the exception again.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import IO, Any, TextIO

from farmbot.errors import FarmbotError

FORMATS = ("text", "json")
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_BACKUPS = 5
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JOURNAL_TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"  # journald stamps the time
NOISY = ("apscheduler", "aiohttp.access", "httpx", "httpcore")

# syslog priorities (sd-daemon(3)): what journald reads from a "<N>" line prefix
_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))


@dataclass(frozen=True, slots=True)
class LogOptions:
    """How the daemon logs (``farmbot serve --log-format/--log-file/...``)."""

    level: int = logging.INFO
    format: str = "text"  # one of FORMATS
    file: Path | None = None  # None: stderr
    max_bytes: int = DEFAULT_MAX_BYTES  # rotate a log file past this size
    backups: int = DEFAULT_BACKUPS  # rotated files kept


def priority(levelno: int) -> int:
    """The syslog priority of a logging level."""
    return next((p for level, p in _PRIORITIES if levelno >= level), 7)


def journal_prefixed(text: str, levelno: int) -> str:
    """Every line of ``text`` with the record's syslog priority prefix."""
    prefix = f"<{priority(levelno)}>"
    return "\n".join(prefix + line for line in text.split("\n"))


class TextFormatter(logging.Formatter):
    """The human-readable format; with ``journal``, lines carry priorities, no timestamp."""

    def __init__(self, *, journal: bool = False) -> None:
        super().__init__(JOURNAL_TEXT_FORMAT if journal else TEXT_FORMAT)
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return journal_prefixed(text, record.levelno) if self.journal else text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, exc (null without one)."""

    def __init__(self, *, journal: bool = False) -> None:
        super().__init__()
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        exc = record.exc_text or None
        if record.stack_info:
            stack = self.formatStack(record.stack_info)
            exc = f"{exc}\n{stack}" if exc else stack
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "exc": exc,
        }
        line = json.dumps(doc, ensure_ascii=False)
        return journal_prefixed(line, record.levelno) if self.journal else line


class RotatingLogFile(RotatingFileHandler):
    """Size-based rotation; every file it creates is 0600; stdout/stderr follow it."""

    def _open(self) -> io.TextIOWrapper:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return open(fd, "a", encoding=self.encoding, errors=self.errors)

    def doRollover(self) -> None:
        followers = [fd for fd in (1, 2) if self.stream is not None and _same(fd, self.stream)]
        super().doRollover()
        if self.stream is not None:
            self.stream.flush()
            for fd in followers:
                os.dup2(self.stream.fileno(), fd)


def _same(fd: int, stream: IO[str]) -> bool:
    try:
        a, b = os.fstat(fd), os.fstat(stream.fileno())
    except (OSError, ValueError):
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def stderr_is_journal(environ: Mapping[str, str], fd: int = 2) -> bool:
    """Whether ``fd`` is the journal stream systemd connected (``$JOURNAL_STREAM``)."""
    device, _, inode = environ.get("JOURNAL_STREAM", "").partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (int(device), int(inode))


def make_handler(
    options: LogOptions, environ: Mapping[str, str], stream: TextIO | None = None
) -> logging.Handler:
    """The handler ``options`` ask for (not yet attached to any logger)."""
    handler: logging.Handler
    if options.file is not None:
        journal = False
        try:
            handler = RotatingLogFile(
                options.file, maxBytes=options.max_bytes, backupCount=options.backups
            )
        except OSError as exc:
            raise FarmbotError(
                f"cannot write the log file {options.file}: {exc.strerror or exc}"
            ) from None
    else:
        handler = logging.StreamHandler(stream)
        target = handler.stream
        journal = _fileno(target) == 2 and stderr_is_journal(environ)
    if options.format == "json":
        handler.setFormatter(JsonFormatter(journal=journal))
    else:
        handler.setFormatter(TextFormatter(journal=journal))
    return handler


def _fileno(stream: IO[str]) -> int | None:
    try:
        return stream.fileno()
    except (OSError, ValueError, AttributeError):
        return None


def setup(
    options: LogOptions,
    environ: Mapping[str, str],
    *,
    root: logging.Logger | None = None,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send ``root``'s records (default: the root logger's) through one handler."""
    root = root or logging.getLogger()
    handler = make_handler(options, environ, stream)
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(options.level)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return handler
