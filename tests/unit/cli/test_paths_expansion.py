"""``cli.paths.expand`` checks plain paths itself (issue 12): it must give exactly what the library's
``expand_paths`` gives (files in order, each once as ``Path`` equality sees it, globs sorted) and the same misses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nuseal.cli.paths import expand
from nuseal.verify.paths import expand_paths


def _tree(root: Path) -> None:
    (root / "in" / "sub").mkdir(parents=True)
    for name in ("A.1.0.0.nupkg", "B.1.0.0.nupkg", "sub/C.1.0.0.nupkg"):
        (root / "in" / name).write_bytes(b"PK")
    (root / "in" / "link.nupkg").symlink_to("A.1.0.0.nupkg")
    (root / "in" / "dangling.nupkg").symlink_to("gone.nupkg")
    (root / "in" / "loop.nupkg").symlink_to("loop.nupkg")


ARGUMENTS = [
    "in/A.1.0.0.nupkg", "./in/A.1.0.0.nupkg", "in//A.1.0.0.nupkg/", "in/B.1.0.0.nupkg", "in", "nope.nupkg",
    "in/*.nupkg", "in/[AB]*", "in/**/*.nupkg", "in/../in/B.1.0.0.nupkg", "in/link.nupkg", "in/dangling.nupkg",
    "in/loop.nupkg", "in/A.1.0.0.nupkg/x", "in/zz*", "", "a\0b", "in/sub/C.1.0.0.nupkg",
]


def test_the_same_files_in_the_same_order_and_the_same_misses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    arguments = [*ARGUMENTS, str(tmp_path / "in" / "B.1.0.0.nupkg")]
    found, missing = expand_paths(arguments)
    files, unresolved = expand(arguments)
    assert files == list(dict.fromkeys(found))
    assert all(type(f) is type(g) for f, g in zip(files, found, strict=False))
    assert [u.pattern for u in unresolved] == missing
    # The fixture exercises every branch: duplicates folded, links followed, folders and odd names missed.
    assert len(files) == 6 and "in" in missing and "in/loop.nupkg" in missing and "a\0b" in missing


def test_a_folder_that_cannot_be_searched_raises_as_pathlib_does(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # root reads every folder: make the stat fail with an error pathlib does not ignore instead.
        name = "x" * 300  # ENAMETOOLONG
        with pytest.raises(OSError) as library:
            expand_paths([name])
        with pytest.raises(OSError) as ours:
            expand([name])
        assert ours.value.errno == library.value.errno
        return
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "A.nupkg").write_bytes(b"PK")
    locked.chmod(0)
    try:
        with pytest.raises(PermissionError):
            expand_paths([str(locked / "A.nupkg")])
        with pytest.raises(PermissionError):
            expand([str(locked / "A.nupkg")])
    finally:
        locked.chmod(0o755)
