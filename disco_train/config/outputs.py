"""Outputs never over inputs: every command resolves what it will write before any work starts.

- A file output that is one of the command's inputs (same path, a symlink or a hard link to it) is refused, always.
- A file output that exists is refused unless the command's `overwrite=true` (nothing is replaced by accident), or
  it is in the command's own format (encode replaces a .disco file).
- A folder output must not be, or hold, one of the inputs, and is used only when it is new, empty, or the command's
  own (it holds the command's marker file, `.disco-output`, written when the command first filled it);
  `overwrite=true` lets a command write into any other folder.
Every refusal is a `ConfigError` (exit 2) naming the key and the reason.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from disco_train.config.base import ConfigError
from disco_train.io.files import atomic_write

MARKER = ".disco-output"
"""Written into each folder a command fills; its text names the command, which may write there again."""

Inputs = Iterable[tuple[str, "str | Path | None"]]
"""(key, path) of each input of a command; empty paths are skipped."""


def _same(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)  # hard links, bind mounts
    except OSError:
        return False


def _inside(child: Path, folder: Path) -> bool:
    return child.resolve().is_relative_to(folder.resolve())


def _given(inputs: Inputs) -> list[tuple[str, Path]]:
    return [(key, Path(path)) for key, path in inputs if path not in (None, "")]


def check_file_output(out: str | Path, inputs: Inputs, overwrite: bool, key: str = "out", magic: bytes = b"") -> Path:
    """The path of a file output, refused (ConfigError) when it is an input, a folder, or exists without
    `overwrite` (a file that starts with `magic`, the command's own format, may be replaced)."""
    path = Path(out)
    for name, given in _given(inputs):
        if _same(path, given):
            raise ConfigError(f"{key}={out}: is the input {name}={given}; an output never replaces an input, "
                              f"write it elsewhere")
    if path.is_dir():
        raise ConfigError(f"{key}={out}: is a folder; give a file name")
    _check_parent(path, key, out)
    if path.exists() and not overwrite and not (magic and _starts_with(path, magic)):
        raise ConfigError(f"{key}={out}: exists; choose a new name or pass overwrite=true to replace it")
    return path


def _check_parent(path: Path, key: str, out) -> None:
    """Refuses (ConfigError) an output whose folders cannot be made: the nearest existing one is a file or not
    writable (missing folders are created when the output is written; this fails now, not after the work)."""
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{key}={out}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{key}={out}: cannot write into {parent} (permission denied)")


def _starts_with(path: Path, magic: bytes) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(len(magic)) == magic
    except OSError:
        return False


def owns(folder: Path, command: str) -> bool:
    """Whether `command` filled `folder` before (its marker is there)."""
    marker = Path(folder) / MARKER
    try:
        return marker.is_file() and marker.read_text(errors="replace").strip() == command
    except OSError:
        return False


def check_folder_output(out: str | Path, inputs: Inputs, overwrite: bool, command: str, key: str = "out") -> Path:
    """The path of a folder output, refused (ConfigError) when it is or holds an input, is a file, or holds files
    that `command` did not write (unless `overwrite`)."""
    path = Path(out)
    for name, given in _given(inputs):
        if _same(path, given) or _inside(given, path):
            raise ConfigError(f"{key}={out}: holds the input {name}={given}; write into another folder")
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{key}={out}: exists and is not a folder")
    _check_parent(path, key, out)
    if path.is_dir() and not overwrite and not owns(path, command):
        found = sorted(p.name for p in path.iterdir() if not p.name.startswith(MARKER))  # a marker being written
        if found:
            shown = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
            raise ConfigError(f"{key}={out}: folder holds files {command} did not write ({shown}); give a new or "
                              f"empty folder, or overwrite=true to write into it")
    return path


def claim_folder(folder: str | Path, command: str) -> Path:
    """Create `folder` (if needed) and mark it as `command`'s own."""
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    if not owns(path, command):  # atomically: parts of one command claim the folder at the same time
        atomic_write(path / MARKER, command + "\n")
    return path
