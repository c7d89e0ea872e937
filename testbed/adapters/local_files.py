"""The files under a local folder, following symbolic links the way the operating system does.

`Path.rglob` and DuckDB's `**` glob both skip symlinked directories, so a lake whose `events/` (or one of
whose partitions) is a link was read one way and fingerprinted another. The fingerprint and the DuckDB engine
both list files here instead: the engine reads exactly the files the fingerprint hashed.
"""

from __future__ import annotations

import os
from pathlib import Path

from testbed.errors import LakeError


def files_under(root: Path) -> list[Path]:
    """Every regular file under `root`, by its path through the links (sorted), descending into linked folders.

    A dangling link or a link that loops back to a folder being walked is refused, naming the link.
    """
    found: list[Path] = []
    _walk(root, {os.path.realpath(root)}, found)
    return sorted(found)


def _walk(folder: Path, ancestors: set[str], found: list[Path]) -> None:
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        path = Path(entry.path)
        if entry.is_symlink() and not path.exists():
            raise LakeError(f"lake {path}: broken symbolic link (its target {os.readlink(path)} does not exist)")
        if entry.is_dir():
            real = os.path.realpath(path)
            if real in ancestors:
                raise LakeError(f"lake {path}: symbolic link loops back to {real}")
            _walk(path, ancestors | {real}, found)
        elif entry.is_file():
            found.append(path)
