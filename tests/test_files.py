"""Files in and out of a worktree: nothing outside it is read, nothing is written outside
its uploads folder, whatever the name, ``..``, symlinks or a planted link."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from farmbot.errors import CommandError, NotFound
from farmbot.supervisor.files import UPLOADS, clean_name, read_file, save_upload


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "worktree"
    (root / "src").mkdir(parents=True)
    (root / "src" / "main.py").write_text("print('hi')\n")
    (tmp_path / "secret.txt").write_text("s3cret")
    return root


def test_a_file_inside_is_read_by_relative_or_absolute_path(tree: Path) -> None:
    found = read_file(tree, "src/main.py", 1024)
    assert (found.name, found.path, found.data) == ("main.py", "src/main.py", b"print('hi')\n")
    assert read_file(tree, str(tree / "src" / "main.py"), 1024).path == "src/main.py"
    assert read_file(tree, "src/../src/./main.py", 1024).path == "src/main.py"
    (tree / "link.py").symlink_to("src/main.py")  # a link that stays inside is fine
    assert read_file(tree, "link.py", 1024).path == "src/main.py"


@pytest.mark.parametrize(
    "path",
    ["../secret.txt", "src/../../secret.txt", "{tmp}/secret.txt", "out/secret.txt",
     "deep/secret.txt", "../nothing-here"],
)  # fmt: skip
def test_nothing_outside_is_read_by_dots_absolute_paths_or_links(
    tree: Path, tmp_path: Path, path: str
) -> None:
    (tree / "out").symlink_to(tmp_path)  # a link to a directory outside
    (tree / "deep").mkdir()
    (tree / "deep" / "secret.txt").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(CommandError, match="is outside builder-1's worktree") as refused:
        read_file(tree, path.format(tmp=tmp_path), 1024, whose="builder-1")
    assert not isinstance(refused.value, NotFound)  # outside is refused, there or not


def test_missing_large_directories_and_devices_get_clear_errors(tree: Path) -> None:
    with pytest.raises(NotFound, match=r"^no file nope\.txt in builder-1's worktree"):
        read_file(tree, "nope.txt", 10, whose="builder-1")
    with pytest.raises(CommandError, match=r"src/main\.py is 12 B; farmbot sends files up to 10 B"):
        read_file(tree, "src/main.py", 10)
    with pytest.raises(CommandError, match=r"^src is a directory; /file sends one file$"):
        read_file(tree, "src", 10)
    os.mkfifo(tree / "pipe")  # opening it must not hang
    with pytest.raises(CommandError, match=r"^pipe is not a regular file$"):
        read_file(tree, "pipe", 10)
    (tree / "loop").symlink_to("loop")
    with pytest.raises(CommandError, match=r"^cannot read loop"):
        read_file(tree, "loop", 10)


def test_an_upload_goes_into_its_folder_under_a_clean_unique_name(tree: Path) -> None:
    assert save_upload(tree, "../../etc/passwd", b"1") == f"{UPLOADS}/passwd"
    assert save_upload(tree, "passwd", b"2") == f"{UPLOADS}/passwd-1"
    assert save_upload(tree, "report.final.pdf", b"3") == f"{UPLOADS}/report.final.pdf"
    assert save_upload(tree, "report.final.pdf", b"4") == f"{UPLOADS}/report.final-1.pdf"
    folder = tree / UPLOADS
    assert (folder / "passwd").read_bytes() == b"1" and (folder / "passwd-1").read_bytes() == b"2"
    assert (folder / ".gitignore").read_text().splitlines()[-1] == "*"
    assert sorted(p.name for p in folder.iterdir()) == [
        ".gitignore", "passwd", "passwd-1", "report.final-1.pdf", "report.final.pdf",
    ]  # fmt: skip
    assert not (tree.parent / "etc").exists()


def test_an_uploads_folder_planted_as_a_link_is_refused(tree: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tree / UPLOADS).symlink_to(outside)
    with pytest.raises(CommandError, match=rf"cannot use {UPLOADS} in builder-1's worktree"):
        save_upload(tree, "x.txt", b"x", whose="builder-1")
    assert list(outside.iterdir()) == []


def test_a_link_planted_under_the_upload_name_is_not_followed(tree: Path, tmp_path: Path) -> None:
    (tree / UPLOADS).mkdir()
    (tree / UPLOADS / "notes.txt").symlink_to(tmp_path / "secret.txt")
    assert save_upload(tree, "notes.txt", b"new") == f"{UPLOADS}/notes-1.txt"
    assert (tmp_path / "secret.txt").read_text() == "s3cret"


@pytest.mark.parametrize(
    ("name", "clean"),
    [
        ("notes.txt", "notes.txt"),
        ("C:\\Users\\eve\\evil.bat", "evil.bat"),
        ("..", "file"),
        (".bashrc", "bashrc"),
        ("a\nb\x00c.txt", "abc.txt"),
        ("rm -rf $(x);.sh", "rm -rf _(x)_.sh"),
        ("x" * 300 + ".tar.gz", "x" * 117 + ".gz"),
        ("", "file"),
    ],
)
def test_names_are_cleaned(name: str, clean: str) -> None:
    assert clean_name(name) == clean
