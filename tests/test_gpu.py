"""GPU checks (run on a lent GPU: `pytest -m gpu`). The CPU suite deselects them; without CUDA they skip."""

import pytest
import torch

import train
from conftest import debug_overrides

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def _adapter(run):
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")["state_dict"]


def test_bf16_mixed_training_on_gpu(demo_shards, tmp_path):
    argv = debug_overrides(demo_shards, tmp_path, steps=4) + [
        "trainer.accelerator=gpu", "trainer.precision=bf16-mixed", "model.dtype=bf16", "data.num_workers=2"]
    assert train.main(argv) == 0
    state = _adapter(tmp_path / "test")
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in state.values())
    assert any(v.abs().sum() > 0 for k, v in state.items() if "lora_B" in k)  # the adapter moved


def test_gradient_checkpointing_matches_plain_loss(demo_shards, tmp_path):
    losses = {}
    for ckpt in ("true", "false"):
        argv = debug_overrides(demo_shards, tmp_path / ckpt, steps=1) + [
            "trainer.accelerator=gpu", "trainer.precision=32-true", f"model.gradient_checkpointing={ckpt}"]
        assert train.main(argv) == 0
        losses[ckpt] = _adapter(tmp_path / ckpt / "test")
    for key, value in losses["true"].items():
        torch.testing.assert_close(value, losses["false"][key], rtol=1e-4, atol=1e-5)


def test_deepspeed_zero2_single_gpu(demo_shards, tmp_path):
    argv = debug_overrides(demo_shards, tmp_path, steps=2) + [
        "trainer.accelerator=gpu", "trainer.devices=1", "trainer.strategy=deepspeed_stage_2",
        "trainer.precision=bf16-mixed", "model.dtype=bf16"]
    assert train.main(argv) == 0
    assert (tmp_path / "test" / "checkpoints").is_dir()
