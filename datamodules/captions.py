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


def _rows(path: Path) -> list[dict]:
    if not path.is_file():
        raise ConfigError(f"captions: file not found: {path}")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if path.suffix == ".csv":
        with open(path, newline="") as handle:
            return list(csv.DictReader(handle))
    raise ConfigError(f"captions: {path} must be .csv or .jsonl")


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
    return CaptionTable({str(row[key]): "" if row[column] is None else str(row[column]) for row in rows}, path)


def list_column(path: Path, column: str) -> list[str]:
    rows = _rows(path)
    if rows and column not in rows[0]:
        raise ConfigError(f"input: {path} needs a {column!r} column; it has {sorted(rows[0])}")
    return [str(row[column]) for row in rows]
