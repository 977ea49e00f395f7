"""A resumed data stream continues exactly where the killed run's stream was, for any worker count."""

import pytest
import torch

from datamodules.shards import ShardDataModule
from disco_train.config.recipe import resolve


def _keys(loader, count):
    out = []
    for batch in loader:
        out.extend(batch["key"])
        if len(out) >= count:
            break
    return out[:count]


def _epochs(dm, epochs, skip_epoch=0, skip=0):
    """Keys of `epochs` epochs through a real DataLoader, the first one resumed after `skip` batches."""
    stream = dm.stream()
    stream.resume(skip_epoch, skip)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=dm.cfg.num_workers,
                                         persistent_workers=dm.cfg.num_workers > 0)
    return [key for _ in range(epochs) for key in _keys(loader, 10**6)]


@pytest.mark.parametrize("workers", [0, 2, 3])
def test_resume_continues_the_stream(demo_shards, workers):
    cfg, _, _ = resolve(["recipe=disco_lora_debug", f"data.train_shards={demo_shards}/train-*.tar",
                         f"data.num_workers={workers}", "data.epoch_length=6"])
    dm = ShardDataModule(cfg.data, seed=3)
    reference = _epochs(dm, 2)
    assert len(reference) == 12
    for done in (1, 2, 4, 5, 6):
        epoch, within = divmod(done, 6)
        resumed = _epochs(dm, 2 - epoch, epoch, within)
        assert resumed == reference[done:], f"resumed after {done} batches with {workers} workers"
