"""Caption tables: csv (OpenVid-1M ships `video,caption,...`) or jsonl, keyed by video file name."""

from __future__ import annotations

import csv
import json
from pathlib import Path

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


def load(path: str, key: str, column: str) -> dict[str, str]:
    """{video file name (and stem): caption}."""
    rows = _rows(Path(path))
    if rows and (key not in rows[0] or column not in rows[0]):
        raise ConfigError(f"captions: {path} needs columns {key!r} and {column!r}; it has {sorted(rows[0])}")
    table = {}
    for row in rows:
        name = Path(str(row[key])).name
        table[name] = table[Path(name).stem] = str(row[column])
    return table


def list_column(path: Path, column: str) -> list[str]:
    rows = _rows(path)
    if rows and column not in rows[0]:
        raise ConfigError(f"input: {path} needs a {column!r} column; it has {sorted(rows[0])}")
    return [str(row[column]) for row in rows]
