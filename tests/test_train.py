import numpy as np
import pytest
import torch

import train
from conftest import debug_overrides


def test_two_step_training_run_writes_adapter_only_checkpoint(demo_shards, tmp_path, capsys):
    assert train.main(debug_overrides(demo_shards, tmp_path, steps=2) + ["checkpoint.every_n_steps=1"]) == 0
    out = capsys.readouterr().out
    assert "trainable LoRA parameters" in out and "steps 2:" in out
    run = tmp_path / "test"
    assert (run / "config.yaml").is_file()
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    keys = list(ckpt["state_dict"])
    assert keys and all(k.startswith("lora.") and "lora_" in k for k in keys)  # no frozen base weights
    assert ckpt["optimizer_states"][0]["state"]  # AdamW moments of the adapter
    assert ckpt["global_step"] == 2


def test_missing_shards_fail_before_model(tmp_path, capsys):
    argv = debug_overrides(tmp_path / "none", tmp_path)
    assert train.main(argv) == 2
    assert "data.train_shards: no shard" in capsys.readouterr().err


def test_datamodule_batches(demo_shards):
    from datamodules.shards import ShardDataModule
    from disco_train.config.recipe import resolve

    cfg, _, _ = resolve(debug_overrides(demo_shards, demo_shards.parent))
    batch = next(iter(ShardDataModule(cfg.data, fill="forward").train_dataloader()))
    assert batch["video"].shape == (1, 17, 64, 64, 3) and batch["video"].dtype == torch.uint8
    assert batch["cond"].shape == batch["video"].shape
    # forward filling: with D_t = 4 frames 1-3 repeat frame 0
    cond = batch["cond"][0].numpy()
    assert all(np.array_equal(cond[i], cond[0]) for i in (1, 2, 3))
    assert isinstance(batch["caption"][0], str) and batch["bpp"].shape == (1,)


@pytest.mark.slow
def test_debug_run_loss_falls(demo_shards, tmp_path, capsys):
    from disco_train.train.callbacks import LossHistory

    seen = {}
    original = LossHistory.summary

    def spy(self, *args, **kwargs):
        seen["losses"] = list(self.losses)
        return original(self, *args, **kwargs)

    LossHistory.summary = spy
    try:
        assert train.main(debug_overrides(demo_shards, tmp_path, steps=100)) == 0
    finally:
        LossHistory.summary = original
    losses = seen["losses"]
    assert len(losses) == 100
    assert np.mean(losses[-20:]) < np.mean(losses[:20])
