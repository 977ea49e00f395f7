"""Two real processes in a gloo process group: each rank's DataModule reads its own shards (rank from
torch.distributed, as under Lightning DDP), in one-pass and in resampled mode."""

import json
import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from datamodules.shards import ShardDataModule
from disco_train.config import DataConfig
from test_datamodule import NUM_VIDEOS, shards  # noqa: F401  (module-scoped shard fixture)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, pattern: str, out: str) -> None:
    # A forked child must not enter the parent's OpenMP thread pool (GNU libgomp deadlocks after fork once a
    # parent test ran ops on 2 threads): one intra-op thread, as DataLoader workers have.
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        result = {}
        for mode, epoch_length in (("one_pass", 0), ("resampled", 4)):
            cfg = DataConfig(train_shards=pattern, frames=9, height=32, width=32, batch_size=1, num_workers=1,
                             shuffle_buffer=1, epoch_length=epoch_length)
            loader = ShardDataModule(cfg, seed=5).train_dataloader()  # rank and world from torch.distributed
            result[mode] = [k for batch in loader for k in batch["key"]]
        gathered = [None] * world
        dist.all_gather_object(gathered, result)  # also proves the group is real
        if rank == 0:
            with open(out, "w") as handle:
                json.dump(gathered, handle)
    finally:
        dist.destroy_process_group()


def test_two_ranks_read_different_shards(shards, tmp_path):  # noqa: F811
    out = tmp_path / "keys.json"
    # fork: the ranks inherit the imported modules (spawn re-imports torch + lightning: ~20 s on 2 cores)
    mp.start_processes(_worker, args=(2, _free_port(), f"{shards}/train-*.tar", str(out)), nprocs=2,
                       start_method="fork", join=True)
    rank0, rank1 = json.loads(out.read_text())
    everything = [f"v{i}_c0000" for i in range(NUM_VIDEOS)]
    assert not set(rank0["one_pass"]) & set(rank1["one_pass"])
    assert sorted(rank0["one_pass"] + rank1["one_pass"]) == everything
    # resampled: every rank yields exactly epoch_length batches (DDP needs equal counts), from its own stream
    assert len(rank0["resampled"]) == len(rank1["resampled"]) == 4
    assert rank0["resampled"] != rank1["resampled"]
