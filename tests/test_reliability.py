import random
import re

import numpy as np
import pytest
import torch

import train
from conftest import ROOT, debug_overrides
from disco_train.train.reliability import (AtomicCheckpointIO, NonFiniteGuard, find_resume_checkpoint,
                                           readable_checkpoint, rng_state, set_rng_state)


def test_atomic_save_and_resume_discovery_skip_partial_files(tmp_path):
    folder = tmp_path / "run" / "checkpoints"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"global_step": 4, "x": torch.ones(3)}, folder / "step000004.ckpt")
    io.save_checkpoint({"global_step": 8}, folder / "step000008.ckpt")
    assert not list(folder.glob("*.tmp"))
    (folder / "step000012.ckpt.tmp").write_bytes(b"half a checkpoint")  # a write killed mid-way
    (folder / "last.ckpt").write_bytes((folder / "step000008.ckpt").read_bytes()[:100])  # truncated copy
    assert not readable_checkpoint(folder / "last.ckpt")
    assert find_resume_checkpoint(tmp_path / "run") == folder / "step000008.ckpt"
    assert io.load_checkpoint(folder / "step000004.ckpt")["global_step"] == 4
    assert find_resume_checkpoint(tmp_path / "nothing") is None


def test_rng_state_round_trip():
    state = rng_state()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(state)
    assert torch.equal(torch.rand(3), expected[0]) and np.array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]


def test_nonfinite_guard_counts_and_stops():
    guard = NonFiniteGuard(limit=3)
    for finite in (False, True, False, False):
        guard.record(finite, 1)
    assert guard.total == 3 and guard.in_a_row == 2
    with pytest.raises(FloatingPointError, match="3 steps in a row"):
        guard.record(False, 5)


def _poison(monkeypatch, bad_calls):
    """Make the transformer return NaN on the given forward-call numbers."""
    from diffusers import LTXVideoTransformer3DModel

    original, calls = LTXVideoTransformer3DModel.forward, {"n": 0}

    def forward(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] in bad_calls:
            return (out[0] * float("nan"),)
        return out

    monkeypatch.setattr(LTXVideoTransformer3DModel, "forward", forward)


def test_nonfinite_steps_are_skipped_and_counted(demo_shards, tmp_path, monkeypatch, capsys):
    _poison(monkeypatch, {2, 3})
    assert train.main(debug_overrides(demo_shards, tmp_path, steps=3)) == 0
    out = capsys.readouterr().out
    assert out.count("non-finite loss, step skipped") == 2
    ckpt = torch.load(tmp_path / "test" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["disco"]["skipped_steps"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())


def test_nonfinite_streak_stops_with_message_and_keeps_checkpoint(demo_shards, tmp_path, monkeypatch, capsys):
    _poison(monkeypatch, set(range(3, 100)))
    argv = debug_overrides(demo_shards, tmp_path, steps=10) + ["trainer.max_nonfinite_in_a_row=3",
                                                               "checkpoint.every_n_steps=1", "checkpoint.keep_last=10"]
    assert train.main(argv) == 1
    assert "3 steps in a row had a non-finite" in capsys.readouterr().err
    folder = tmp_path / "test" / "checkpoints"
    last = torch.load(find_resume_checkpoint(tmp_path / "test"), weights_only=True)
    good = torch.load(folder / "step000002.ckpt", weights_only=True)
    # skipped steps advance the step counter (and LR schedule) but never the weights: the kept checkpoint holds
    # the adapter of the last good step, all finite
    assert last["disco"]["skipped_steps"] == 2 and last["global_step"] == 4
    for key, value in last["state_dict"].items():
        assert torch.isfinite(value).all() and torch.equal(value, good["state_dict"][key])


def test_resume_auto_continues_step_count(demo_shards, tmp_path, capsys):
    argv = debug_overrides(demo_shards, tmp_path, steps=2) + ["checkpoint.every_n_steps=1"]
    assert train.main(argv) == 0
    assert train.main(argv[:-1] + ["trainer.max_steps=4", "resume=auto"]) == 0
    assert "continuing from" in capsys.readouterr().out
    folder = tmp_path / "test" / "checkpoints"
    assert torch.load(folder / "last.ckpt", weights_only=True)["global_step"] == 4
    assert not list(folder.glob("last-v*.ckpt"))  # last.ckpt is replaced, never versioned beside


def test_config_errors_before_weights(tmp_path, capsys):
    assert train.main(["recipe=disco_lora_h100x8"]) == 2  # no weights here: named before anything loads
    assert "model.path" in capsys.readouterr().err
    argv = ["recipe=disco_lora_debug", "trainer.strategy=deepspeed_stage_2"]
    if not torch.cuda.is_available():
        assert train.main(argv) == 2
        assert "trainer.strategy=deepspeed_stage_2: DeepSpeed needs CUDA" in capsys.readouterr().err
    assert train.main(["recipe=disco_lora_debug", f"resume={tmp_path / 'x.ckpt'}"]) == 2


def test_every_torch_load_is_weights_only():
    offenders = []
    for path in list((ROOT / "disco_train").rglob("*.py")) + list((ROOT / "datamodules").rglob("*.py")):
        for line_no, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"torch\.load\(", line) and "weights_only=True" not in line:
                offenders.append(f"{path.relative_to(ROOT)}:{line_no}")
    assert not offenders, f"torch.load without weights_only=True: {offenders}"
