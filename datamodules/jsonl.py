"""The JSON-lines files of a shard folder (`index[-pKKK].jsonl`, `failures[-pKKK].jsonl`): appended a whole batch
of rows at a time, read back tolerating the torn last line a kill leaves. Written by `sink` and `prepare`, read by
`coded` (what a folder's samples were coded with) and the merge of parts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def scan_jsonl(path: Path) -> tuple[list[dict], list[int], bool]:
    """(rows, positions of unparsable lines among the rows, whether the file needs repair: a bad line or a last
    line without its newline, which the next append would glue onto)."""
    if not path.is_file():
        return [], [], False
    text = path.read_text()
    rows, bad = [], []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if isinstance(row, dict) and "video" in row:
            rows.append(row)
        else:
            bad.append(len(rows))
    return rows, bad, bool(bad) or (bool(text) and not text.endswith("\n"))


def read_jsonl(path: Path) -> list[dict]:
    """Parsable rows of a jsonl file; a torn line (killed mid-write) is ignored."""
    return scan_jsonl(path)[0]


def append_jsonl(path: Path, rows: list[dict]) -> None:
    # One write call per batch of rows, flushed and fsynced before returning: a kill tears at most the last line.
    with open(path, "a") as handle:
        handle.write("".join(json.dumps(r) + "\n" for r in rows))
        handle.flush()
        os.fsync(handle.fileno())
