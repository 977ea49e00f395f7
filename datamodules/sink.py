"""Crash-safe shard writing and the bookkeeping that makes `prepare` resumable.

The shards are the source of truth. A shard is written as `train-NNNNNN.tar.tmp` and renamed when complete, so a
reader never sees a partial one. A video's clips all go into one shard, and the video is appended to `index.jsonl`
after the rename. A kill can land in three places:
- while the .tmp is written: the .tmp is deleted on restart and its videos, never recorded, are redone;
- between the rename and the index append: `reconcile` reads the sources of that shard's samples back from their
  `meta.json` and records them, so they are not redone (no duplicates);
- in the middle of an index or failures line: unparsable lines are dropped (a dropped failure is simply retried).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import webdataset as wds

INDEX, FAILURES = "index.jsonl", "failures.jsonl"


def read_jsonl(path: Path) -> list[dict]:
    """Parsable lines of a jsonl file; a torn last line (killed mid-write) is ignored."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "video" in row:
            rows.append(row)
    return rows


def _rewrite(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(tmp, path)


def shard_sources(shard: Path) -> list[str]:
    """Source videos of a finished shard, read from its samples' meta.json."""
    sources = []
    for sample in wds.WebDataset(str(shard), shardshuffle=False):
        source = json.loads(sample["meta.json"])["source"]
        if source not in sources:
            sources.append(source)
    return sources


def reconcile(output: Path) -> set[str]:
    """Repair the bookkeeping after a kill and return the videos already seen (done or failed)."""
    for stale in output.glob("*.tmp"):  # never renamed: their videos were never recorded as done
        stale.unlink()
    index = read_jsonl(output / INDEX)
    recorded = {row["shard"] for row in index}
    unrecorded = [{"video": v, "shard": shard.name} for shard in sorted(output.glob("train-*.tar"))
                  if shard.name not in recorded for v in shard_sources(shard)]
    failures = read_jsonl(output / FAILURES)
    # Rewrite a file when a row must be added or a torn line dropped (so later appends start on a clean line).
    if unrecorded or _torn(output / INDEX, index):
        _rewrite(output / INDEX, index + unrecorded)
    if _torn(output / FAILURES, failures):
        _rewrite(output / FAILURES, failures)
    final_failures = {row["video"] for row in failures if not row.get("retry")}  # retry rows: tried again
    return {row["video"] for row in index + unrecorded} | final_failures


def _torn(path: Path, rows: list[dict]) -> bool:
    """Whether a kill left an unparsable line or a last line without its newline (the next append would glue
    onto it)."""
    if not path.is_file():
        return False
    text = path.read_text()
    return (bool(text) and not text.endswith("\n")) or len(rows) != sum(1 for l in text.splitlines() if l.strip())


def append_jsonl(path: Path, rows: list[dict]) -> None:
    # One write call per batch of rows, flushed before returning: a kill tears at most the last line.
    with open(path, "a") as handle:
        handle.write("".join(json.dumps(r) + "\n" for r in rows))


class ShardSink:
    """Buffers whole videos and writes complete shards atomically; records finished videos after each rename."""

    def __init__(self, output: Path, shard_size: int):
        self.output, self.shard_size = output, shard_size
        self.buffer: list[dict] = []
        self.videos: list[str] = []
        existing = sorted(output.glob("train-*.tar"))
        self.next_index = int(existing[-1].stem.split("-")[1]) + 1 if existing else 0
        self.shards_written = 0

    def add(self, video: str, samples: list[dict]) -> None:
        self.buffer.extend(samples)
        self.videos.append(video)
        if len(self.buffer) >= self.shard_size:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        final = self.output / f"train-{self.next_index:06d}.tar"
        tmp = final.with_suffix(".tar.tmp")
        with wds.TarWriter(str(tmp)) as sink:
            for sample in self.buffer:
                sink.write(sample)
        os.replace(tmp, final)
        append_jsonl(self.output / INDEX, [{"video": v, "shard": final.name} for v in self.videos])
        self.next_index += 1
        self.shards_written += 1
        self.buffer, self.videos = [], []
