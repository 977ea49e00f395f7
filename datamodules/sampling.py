"""Which shards each rank and DataLoader worker reads, and in what order: explicit, seeded, reproducible.

A reader is one (rank, worker) pair; with R ranks and K workers per rank there are R·K slots and reader
(r, k) is slot s = r·K + k. Each process counts how often it has started iterating (its epoch), which with
persistent workers (or num_workers=0) advances exactly once per training epoch.

- One pass (`resampled=False`): every epoch the shard list is permuted with a generator seeded by (seed, epoch),
  identical on every reader, and slot s takes shards s, s + R·K, s + 2·R·K, ... of it: each shard is read by
  exactly one reader per epoch.
- Resampled (`resampled=True`): slot s draws shards with replacement from a generator seeded by
  (seed, epoch, s), forever; the caller cuts the stream at the epoch length. Different slots see different
  streams, and the same seed gives the same streams.
"""

from __future__ import annotations

import os
import random
from typing import Iterator

import torch


def rank_and_world(trainer=None) -> tuple[int, int]:
    """Global rank and world size: torch.distributed if initialised, else the Lightning trainer, else env."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if trainer is not None:
        return int(trainer.global_rank), int(trainer.world_size)
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def worker_and_count() -> tuple[int, int]:
    info = torch.utils.data.get_worker_info()
    return (info.id, info.num_workers) if info is not None else (0, 1)


def seeded(*parts) -> random.Random:
    # String seeds hash with SHA-512 inside random.Random, so they are stable across processes and runs
    # (unlike hash() of a tuple, which is salted per process for str parts).
    return random.Random(":".join(str(p) for p in parts))


def shard_stream(urls: list[str], seed: int, epoch: int, slot: int, slots: int,
                 resampled: bool) -> Iterator[dict]:
    """{'url': ...} dicts for one reader and one epoch (see module docstring)."""
    if resampled:
        rng = seeded("resample", seed, epoch, slot)
        while True:
            yield {"url": rng.choice(urls)}
    order = list(urls)
    seeded("order", seed, epoch).shuffle(order)
    for url in order[slot::slots]:
        yield {"url": url}


def shuffled(items: Iterator, bufsize: int, rng: random.Random) -> Iterator:
    """Reservoir-style shuffle with a buffer of `bufsize` items; deterministic for a given rng state."""
    if bufsize <= 1:
        yield from items
        return
    buffer = []
    for item in items:
        buffer.append(item)
        if len(buffer) >= bufsize:
            yield buffer.pop(rng.randrange(len(buffer)))
    while buffer:
        yield buffer.pop(rng.randrange(len(buffer)))


def share(total: int, worker: int, workers: int) -> int:
    """Batches that worker `worker` of `workers` yields so the rank's workers together yield `total`:
    10 batches over 4 workers -> 3, 3, 2, 2."""
    return total // workers + (1 if worker < total % workers else 0)
