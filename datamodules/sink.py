"""Crash-safe shard writing and the bookkeeping that makes `prepare` resumable, per part of the inputs.

Each part (`Part`: the whole input, or part K of N) owns its own files in the output folder: shards
`train-NNNNNN.tar` (N = 1) or `train-pKKK-NNNNNN.tar`, `index[-pKKK].jsonl` ({video, shard, coded} per finished
video)
and `failures[-pKKK].jsonl`; nothing of one part is ever written or deleted by another.

The shards are the source of truth. A shard is written to `<name>.tar.<pid>.tmp` and renamed when complete, so a reader
never sees a partial one. A video's clips all go into one shard, and the video is appended to the index after
the rename (one write per shard, then fsync). A kill can land in three places:
- while the .tmp is written: the part's .tmp files are deleted on restart and their videos, never recorded, are
  redone;
- between the rename and the index append: `reconcile` reads the sources of that shard's samples back from their
  `meta.json` and records them, so they are not redone (no duplicates);
- in the middle of an index or failures line: the unparsable line is dropped and the shards of the rows around it
  (the last shard, for a torn tail) are read back, so a video whose row was cut is recorded, not redone; a dropped
  failure row is simply retried.
Every file that is rewritten rather than appended (a repaired index, prepare_config.json, a part's done marker,
the merged index) is written to a .tmp beside it, fsynced and renamed over the old one (`io.files.atomic_write`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import webdataset as wds

from datamodules.coded import shard_metas, summarize
from datamodules.jsonl import append_jsonl, read_jsonl, scan_jsonl
from disco_train.config.parts import part_tag
from disco_train.io.files import atomic_open, atomic_write, temporaries

INDEX, FAILURES = "index.jsonl", "failures.jsonl"


@dataclass(frozen=True)
class Part:
    """Part `index` of `count` of the inputs, and the names of the files it owns."""

    index: int = 0
    count: int = 1

    @property
    def tag(self) -> str:
        """'' for the whole input (the file names of a single run), else '-pKKK' (3 digits or more)."""
        return part_tag(self.index, self.count)

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"

    def shard(self, number: int) -> str:
        return f"train{self.tag}-{number:06d}.tar"

    def shard_number(self, name: str) -> int | None:
        match = re.fullmatch(rf"train{re.escape(self.tag)}-(\d{{6,}})\.tar", name)
        return int(match.group(1)) if match else None

    @property
    def index_file(self) -> str:
        return f"index{self.tag}.jsonl"

    @property
    def failures_file(self) -> str:
        return f"failures{self.tag}.jsonl"

    @property
    def lock_file(self) -> str:
        return f"prepare{self.tag}.lock"

    @property
    def done_file(self) -> str:
        return f"done{self.tag}.json"

    def shards(self, output: Path) -> list[Path]:
        """The part's finished shards, in the order they were written."""
        found = [(self.shard_number(p.name), p) for p in output.glob(f"train{self.tag}-*.tar")]
        return [p for number, p in sorted((n, p) for n, p in found if n is not None)]


def _rewrite(path: Path, rows: list[dict]) -> None:
    atomic_write(path, "".join(json.dumps(r) + "\n" for r in rows))


def shard_sources(shard: Path) -> dict[str, list[dict]]:
    """Source videos of a finished shard (in order) with their samples' meta, read from the meta.json members."""
    sources: dict[str, list[dict]] = {}
    for meta in shard_metas(shard):
        sources.setdefault(meta["source"], []).append(meta)
    return sources


def index_row(video: str, shard: str, metas: list[dict]) -> dict:
    """A finished video's index row: where its samples are and what they were coded with (`datamodules.coded`)."""
    return {"video": video, "shard": shard, "coded": summarize(metas)}


def _unique(rows: list[dict]) -> list[dict]:
    seen, out = set(), []
    for row in rows:
        if row["video"] not in seen:
            seen.add(row["video"])
            out.append(row)
    return out


def reconcile(output: Path, part: Part = Part()) -> set[str]:
    """Repair this part's bookkeeping after a kill and return its videos already seen (done or failed)."""
    # Never renamed, so their videos were never recorded. Only this part's own: other parts may be writing theirs.
    stale = [p for p in temporaries(output, "train-*.tar") if part.shard_number(p.name.rsplit(".", 2)[0]) is not None]
    for path in [*stale, *temporaries(output, part.index_file), *temporaries(output, part.failures_file)]:
        path.unlink()
    index, bad, torn = scan_jsonl(output / part.index_file)
    shards = part.shards(output)
    recorded = {row["shard"] for row in index}
    suspects = {s.name for s in shards if s.name not in recorded}
    # A cut line belongs to one shard's batch of rows: the rows around it name that shard (or none of it parsed,
    # and it is unrecorded, above); for a torn tail that is the last shard.
    suspects |= {index[i]["shard"] for pos in bad for i in (pos - 1, pos) if 0 <= i < len(index)}
    if torn and shards:
        suspects.add(shards[-1].name)
    known = {row["video"] for row in index}
    missing = [index_row(v, s.name, metas) for s in shards if s.name in suspects
               for v, metas in shard_sources(s).items() if v not in known]
    rows = _unique(index + missing)
    if missing or torn or len(rows) != len(index):
        _rewrite(output / part.index_file, rows)
    failures, _, failures_torn = scan_jsonl(output / part.failures_file)
    if failures_torn:
        _rewrite(output / part.failures_file, failures)
    final_failures = {row["video"] for row in failures if not row.get("retry")}  # retry rows: tried again
    return {row["video"] for row in rows} | final_failures


def seen_elsewhere(output: Path, part: Part) -> set[str]:
    """Videos the other parts finished or gave up on (read only; a line they are writing is ignored), so that a
    video is never prepared twice even if the listing changed and moved it to another part."""
    if part.count == 1:
        return set()
    seen = set()
    for k in range(part.count):
        if k != part.index:
            other = Part(k, part.count)
            seen |= {row["video"] for row in read_jsonl(output / other.index_file)}
            seen |= {row["video"] for row in read_jsonl(output / other.failures_file) if not row.get("retry")}
    return seen


class ShardSink:
    """Buffers whole videos and writes complete shards atomically; records finished videos after each rename."""

    def __init__(self, output: Path, shard_size: int, part: Part = Part()):
        self.output, self.shard_size, self.part = output, shard_size, part
        self.buffer: list[dict] = []
        self.videos: list[tuple[str, list[dict]]] = []
        existing = part.shards(output)
        self.next_index = part.shard_number(existing[-1].name) + 1 if existing else 0
        self.shards_written = 0

    def add(self, video: str, samples: list[dict]) -> None:
        self.buffer.extend(samples)
        self.videos.append((video, [json.loads(sample["meta.json"]) for sample in samples]))
        if len(self.buffer) >= self.shard_size:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        final = self.output / self.part.shard(self.next_index)
        with atomic_open(final) as handle, wds.TarWriter(handle) as sink:
            for sample in self.buffer:
                sink.write(sample)
        append_jsonl(self.output / self.part.index_file, [index_row(v, final.name, m) for v, m in self.videos])
        self.next_index += 1
        self.shards_written += 1
        self.buffer, self.videos = [], []
