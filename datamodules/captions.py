"""Caption tables: csv (OpenVid-1M ships `video,caption,...`) or jsonl, keyed by the video's path.

A row's key is matched against the video's name, its path relative to the input root (`datamodules.inputs`):
exactly (with or without the file suffix), else by file name, else by stem, each fallback only where it is
unambiguous: one row of the table has that file name (stem) and one input video has it. So `a/video.mp4` and
`b/video.mp4` get their own rows `a/video.mp4` and `b/video.mp4`, and a table of bare file names (OpenVid-1M's)
still matches a folder of unique file names.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path, PurePosixPath

from disco_train.config import ConfigError


MAX_LINE_BYTES = 1 << 20
"""The longest line (row) of a captions file: a caption is a paragraph; a megabyte is no caption."""


def _lines(path: Path):
    """(line number, text) of a UTF-8 file (a byte order mark is dropped), each line at most MAX_LINE_BYTES."""
    with open(path, "rb") as handle:
        for number, line in enumerate(iter(lambda: handle.readline(MAX_LINE_BYTES + 1), b""), 1):
            if len(line) > MAX_LINE_BYTES:
                raise ConfigError(f"captions: {path}:{number}: a line longer than {MAX_LINE_BYTES:,} bytes")
            try:
                yield number, line.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                raise ConfigError(f"captions: {path}:{number}: not UTF-8 text (a binary file?)") from None


def _jsonl(path: Path) -> list[dict]:
    rows = []
    for number, line in _lines(path):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError) as err:
            raise ConfigError(f"captions: {path}:{number}: not JSON ({str(err)[:100]})") from None
        if not isinstance(row, dict):
            raise ConfigError(f"captions: {path}:{number}: a JSON {type(row).__name__}; each line is an object "
                              f"such as {{\"video\": ..., \"caption\": ...}}")
        rows.append(row)
    return rows


def _csv(path: Path) -> list[dict]:
    text = (line for _, line in _lines(path))
    try:
        return list(csv.DictReader(text))
    except csv.Error as err:
        raise ConfigError(f"captions: {path}: not a readable csv ({err})") from None


def _rows(path: Path) -> list[dict]:
    if not path.is_file():
        raise ConfigError(f"captions: file not found: {path}")
    if path.suffix == ".jsonl":
        return _jsonl(path)
    if path.suffix == ".csv":
        return _csv(path)
    raise ConfigError(f"captions: {path} must be .csv or .jsonl")


def _columns(rows: list[dict], path, columns: tuple[str, ...], setting: str) -> None:
    """Every row has the columns, the first (the key) not empty: a csv row that is too short has None there, a
    jsonl row may lack keys."""
    for number, row in enumerate(rows, 1):
        missing = [c for i, c in enumerate(columns) if (not row.get(c) if i == 0 else c not in row)]
        if missing:
            raise ConfigError(f"{setting}: {path} row {number} lacks {', '.join(map(repr, missing))}; it has "
                              f"{sorted(k for k in row if k is not None)[:10]}")


def _key(text: str) -> str:
    """A table key or video name, normalised: posix separators, no leading './'."""
    return PurePosixPath(str(text).replace("\\", "/")).as_posix().removeprefix("./")


class CaptionTable:
    """{normalised key: caption} with the unambiguous file-name and stem indexes."""

    def __init__(self, entries: dict[str, str], source: str = "captions"):
        self.source = source
        self.by_path = {_key(k): v for k, v in entries.items() if v}
        self.by_name = self._unique(lambda k: PurePosixPath(k).name)
        self.by_stem = self._unique(lambda k: PurePosixPath(k).stem)

    def _unique(self, part) -> dict[str, str | None]:
        counts = Counter(part(k) for k in self.by_path)
        return {part(k): (v if counts[part(k)] == 1 else None) for k, v in self.by_path.items()}

    def lookup(self, name: str, shared: set[tuple[str, str]] = frozenset()) -> tuple[str | None, str]:
        """(caption or None, why none when that is an ambiguity). `shared`: ('bare' | 'name' | 'stem', value)
        pairs that more than one input video has (`datamodules.inputs.with_captions`)."""
        name = _key(name)
        if name in self.by_path:
            return self.by_path[name], ""
        path = PurePosixPath(name)
        bare = str(path.with_suffix(""))
        for kind, what, index, part in (("bare", "path without its suffix", self.by_path, bare),
                                        ("name", "file name", self.by_name, path.name),
                                        ("stem", "stem", self.by_stem, path.stem)):
            if part in index:
                if index[part] is not None and (kind, part) not in shared:
                    return index[part], ""
                holders = f"several rows of {self.source}" if index[part] is None else "several input videos"
                return None, (f"its {what} {part!r} is ambiguous ({holders} have it); key its row by the path "
                              f"relative to the input folder, {name!r}")
        return None, ""


def load(path: str, key: str, column: str, setting: str = "captions") -> CaptionTable:
    """{video key: the column's text} of a captions/metadata file; `setting` names the key a missing column is
    about (the caption column, or `quality_column` for the curation score)."""
    rows = _rows(Path(path))
    if rows and (key not in rows[0] or column not in rows[0]):
        raise ConfigError(f"{setting}: {path} needs columns {key!r} and {column!r}; it has {sorted(rows[0])}")
    _columns(rows, path, (key, column), setting)
    return CaptionTable({str(row[key]): "" if row[column] is None else str(row[column]) for row in rows}, path)


def list_column(path: Path, column: str) -> list[str]:
    rows = _rows(path)
    if rows and column not in rows[0]:
        raise ConfigError(f"input: {path} needs a {column!r} column; it has {sorted(rows[0])}")
    _columns(rows, path, (column,), "input")
    return [str(row[column]) for row in rows]
