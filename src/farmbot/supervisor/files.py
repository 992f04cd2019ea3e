"""Files in and out of an agent's worktree, never outside it.

``read_file`` is ``/file <agent> <path>``: a regular file under the worktree, at most
``limit`` bytes. The path is resolved (symlinks followed, ``..`` applied) and must land
inside the worktree; the file is then opened without following a last symlink and the
descriptor's own path is checked again, so a link swapped in between the check and the
open does not lead outside either.

``save_upload`` is ``/send <agent>`` with a file: the file goes into ``UPLOADS`` at the
top of the worktree under a cleaned name (no directories, no leading dots; ``-1``,
``-2``... when taken), created exclusively through a descriptor of that folder opened
without following symlinks, so neither the name nor a link planted in the worktree
puts it elsewhere. The folder ignores itself in git (its own ``.gitignore``), so an
agent does not commit what people sent it.

Both are plain blocking functions: the supervisor runs them in a thread.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from farmbot.errors import CommandError, NotFound

UPLOADS = ".farmbot-uploads"  # in a worktree: the files people sent the agent
NAME_CHARS = 120  # of a saved file's name
_UNSAFE = re.compile(r"[^\w.+@()\- ]+")
_PROC_FD = Path("/proc/self/fd")


@dataclass(frozen=True, slots=True)
class WorktreeFile:
    """A file read from a worktree."""

    name: str  # its name, no directories
    path: str  # relative to the worktree
    data: bytes


def read_file(root: Path, path: str, limit: int, *, whose: str = "the agent") -> WorktreeFile:
    """A regular file of at most ``limit`` bytes inside ``root``; ``CommandError`` otherwise."""
    base = _base(root, whose)
    if not path.strip() or "\0" in path:
        raise CommandError(f"no such file name: {path!r}")
    target = Path(path)
    target = target if target.is_absolute() else base / target
    try:
        real = target.resolve()  # where it would be: outside is refused, there or not
    except (OSError, RuntimeError) as exc:  # a symlink loop, a permission
        raise CommandError(f"cannot read {path}: {_why(exc)}") from exc
    if not real.is_relative_to(base):
        raise CommandError(
            f"{path} is outside {whose}'s worktree ({base}); farmbot sends files from it only"
        )
    if not real.exists():
        raise NotFound(f"no file {path} in {whose}'s worktree ({base})")
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {_why(exc)}") from exc
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise CommandError(f"{path} is a directory; /file sends one file")
        if not stat.S_ISREG(info.st_mode):
            raise CommandError(f"{path} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as file:
        opened = _opened(fd)
        if opened is not None and not opened.is_relative_to(base):
            raise CommandError(f"{path} moved outside {whose}'s worktree; not sent")
        if info.st_size > limit:
            raise CommandError(_too_big(path, info.st_size, limit))
        data = file.read(limit + 1)
    if len(data) > limit:  # it grew meanwhile
        raise CommandError(_too_big(path, len(data), limit))
    return WorktreeFile(real.name, str(real.relative_to(base)), data)


def save_upload(root: Path, name: str, data: bytes, *, whose: str = "the agent") -> str:
    """Save ``data`` as a new file in ``root``/``UPLOADS``; return its path relative to root."""
    base = _base(root, whose)
    folder = base / UPLOADS
    try:
        folder.mkdir(mode=0o755, exist_ok=True)
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:  # a file or a symlink planted where the folder goes
        raise CommandError(f"cannot use {UPLOADS} in {whose}'s worktree: {_why(exc)}") from exc
    try:
        _ignore_itself(dir_fd)
        wanted = clean_name(name)
        for attempt in range(1000):
            candidate = wanted if attempt == 0 else _numbered(wanted, attempt)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                fd = os.open(candidate, flags, 0o644, dir_fd=dir_fd)
            except FileExistsError:
                continue
            except OSError as exc:
                raise CommandError(f"cannot save {name}: {_why(exc)}") from exc
            with os.fdopen(fd, "wb") as file:
                file.write(data)
            return f"{UPLOADS}/{candidate}"
        raise CommandError(f"{UPLOADS} in {whose}'s worktree has too many files named {wanted}")
    finally:
        os.close(dir_fd)


def clean_name(name: str) -> str:
    """A file name safe to create: its last path part, tame characters, no leading dot."""
    last = re.split(r"[/\\]", name.strip())[-1]
    cleaned = _UNSAFE.sub("_", "".join(c for c in last if c.isprintable())).strip(" .")
    if not cleaned:
        return "file"
    if len(cleaned) > NAME_CHARS:
        stem, dot, ext = cleaned.rpartition(".")
        keep = ext[:20] if dot and stem else ""
        cleaned = cleaned[: NAME_CHARS - len(keep) - 1] + ("." + keep if keep else "")
    return cleaned


def _numbered(name: str, n: int) -> str:
    stem, dot, ext = name.rpartition(".")
    return f"{stem}-{n}.{ext}" if dot and stem else f"{name}-{n}"


def _ignore_itself(dir_fd: int) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(".gitignore", flags, 0o644, dir_fd=dir_fd)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as file:
        file.write("# files people sent this agent through farmbot; not for committing\n*\n")


def _base(root: Path, whose: str) -> Path:
    try:
        return root.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise CommandError(f"{whose}'s worktree {root} is not there ({_why(exc)})") from exc


def _opened(fd: int) -> Path | None:
    """Where an open descriptor really is (Linux's /proc); None where that is not known."""
    try:
        return Path(os.readlink(_PROC_FD / str(fd)))
    except OSError:
        return None


def _too_big(path: str, size: int, limit: int) -> str:
    return (
        f"{path} is {_size(size)}; farmbot sends files up to {_size(limit)} "
        "(supervisor.max_file_bytes)"
    )


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 1024 / 1024:.1f} MiB"


def _why(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
