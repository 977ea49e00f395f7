"""Caption tables: csv (OpenVid-1M ships `video,caption,...`) or jsonl, keyed by the video's path; the one rule
that matches a row to a video, for `prepare` (`datamodules.inputs`) and the benchmark (`benchmark.captions`).

A row's key is matched against the video's name (prepare: its path relative to the input root; the benchmark: its
file name): exactly (with or without the file suffix), else by file name, else by stem, each fallback only where it
is unambiguous: one row of the table has that file name (stem) and one input video has it. So `a/video.mp4` and
`b/video.mp4` get their own rows `a/video.mp4` and `b/video.mp4`, and a table of bare file names (OpenVid-1M's)
still matches a folder of unique file names. An ambiguity (two rows that match, or one key given two captions) is
never settled by row order: the video gets no caption and the reason names the rows.
"""

from __future__ import annotations

import csv
import json
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
    """The rows of a captions table by normalised key, with the file-name and stem indexes (module docstring)."""

    def __init__(self, entries, source: str = "captions"):
        """`entries`: {key: text} or (key, text) pairs in row order (rows are numbered from 1); empty texts are
        no rows."""
        self.source = source
        self.rows: dict[str, list[tuple[int, str]]] = {}
        for number, (key, text) in enumerate(entries.items() if isinstance(entries, dict) else entries, 1):
            if text:
                self.rows.setdefault(_key(key), []).append((number, text))
        self.by_name = self._index(lambda k: PurePosixPath(k).name)
        self.by_stem = self._index(lambda k: PurePosixPath(k).stem)

    def _index(self, part) -> dict[str, list[str]]:
        index: dict[str, list[str]] = {}
        for key in self.rows:
            index.setdefault(part(key), []).append(key)
        return index

    def _rows(self, keys: list[str]) -> str:
        found = [f"row {n} {k!r}" for k in keys for n, _ in self.rows[k]]
        return ", ".join(found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")

    def _one(self, key: str) -> tuple[str | None, str]:
        texts = {text for _, text in self.rows[key]}
        if len(texts) > 1:
            return None, f"several rows of {self.source} have its key with different captions: {self._rows([key])}"
        return texts.pop(), ""

    def lookup(self, name: str, shared: set[tuple[str, str]] = frozenset()) -> tuple[str | None, str]:
        """(caption or None, why none when that is an ambiguity, naming the rows). `shared`: ('bare' | 'name' |
        'stem', value) pairs that more than one input video has (`datamodules.inputs.with_captions`)."""
        name = _key(name)
        if name in self.rows:
            return self._one(name)
        path = PurePosixPath(name)
        bare = str(path.with_suffix(""))
        for kind, what, part, keys in (("bare", "path without its suffix", bare, [bare] if bare in self.rows else []),
                                       ("name", "file name", path.name, self.by_name.get(path.name, [])),
                                       ("stem", "stem", path.stem, self.by_stem.get(path.stem, []))):
            if not keys:
                continue
            if len(keys) == 1 and (kind, part) not in shared:
                return self._one(keys[0])
            holders = (f"several rows of {self.source} have it: {self._rows(keys)}" if len(keys) > 1 else
                       "several input videos have it")
            return None, (f"its {what} {part!r} is ambiguous ({holders}); key its row by the path relative to the "
                          f"input folder, {name!r}")
        return None, ""


def load(path: str, key: str, column: str, setting: str = "captions") -> CaptionTable:
    """{video key: the column's text} of a captions/metadata file; `setting` names the key a missing column is
    about (the caption column, or `quality_column` for the curation score)."""
    rows = _rows(Path(path))
    if rows and (key not in rows[0] or column not in rows[0]):
        raise ConfigError(f"{setting}: {path} needs columns {key!r} and {column!r}; it has {sorted(rows[0])}")
    _columns(rows, path, (key, column), setting)
    return CaptionTable([(str(row[key]), "" if row[column] is None else str(row[column])) for row in rows], path)


def list_column(path: Path, column: str) -> list[str]:
    rows = _rows(path)
    if rows and column not in rows[0]:
        raise ConfigError(f"input: {path} needs a {column!r} column; it has {sorted(rows[0])}")
    _columns(rows, path, (column,), "input")
    return [str(row[column]) for row in rows]
