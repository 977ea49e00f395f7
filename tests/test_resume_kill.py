"""A debug run killed with SIGKILL at a random step and resumed reaches the same losses as an uninterrupted run.

Tolerance: 1e-5 relative. Everything a step depends on is restored or recomputed exactly: adapter weights and
AdamW moments, LR schedule, step counter, σ/noise (drawn from a generator seeded by seed, rank and step), and the
data position (the stream order is a function of seed, epoch, rank and worker; a resume skips the consumed
batches). CPU float32 kernels are deterministic for a fixed thread count, so the match is in fact exact here.
"""

import csv
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT

STEPS = 40


def _argv(shards: Path, out: Path, name: str) -> list[str]:
    return [sys.executable, str(ROOT / "train.py"), "recipe=disco_lora_debug",
            f"data.train_shards={shards}/train-*.tar",
            f"output_dir={out}", f"name={name}", f"trainer.max_steps={STEPS}", "trainer.log_every_n_steps=1",
            "data.epoch_length=12", "data.num_workers=2", "checkpoint.every_n_steps=1", "checkpoint.keep_last=2",
            "logger.kind=csv"]


def _losses(metrics: Path) -> dict[int, float]:
    out = {}
    with open(metrics, newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get("train/loss"):
                out[int(row["step"])] = float(row["train/loss"])
    return out


@pytest.mark.slow
def test_sigkill_at_random_step_then_resume_matches_uninterrupted(demo_shards, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    subprocess.run(_argv(demo_shards, tmp_path, "full"), check=True, env=env, capture_output=True)
    reference = _losses(tmp_path / "full" / "logs" / "metrics.csv")
    assert len(reference) == STEPS

    kill_after = random.Random().randint(6, 25)
    proc = subprocess.Popen(_argv(demo_shards, tmp_path, "killed"), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    target = tmp_path / "killed" / "checkpoints" / f"step{kill_after:06d}.ckpt"
    deadline = time.time() + 300
    while not target.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"

    resumed = subprocess.run(_argv(demo_shards, tmp_path, "killed") + ["resume=auto"], env=env, text=True,
                             capture_output=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "continuing from" in resumed.stdout
    (log_dir,) = (tmp_path / "killed").glob("logs-resumed-*")
    after = _losses(log_dir / "metrics.csv")
    assert after and max(after) == STEPS - 1 and min(after) >= kill_after  # Lightning logs 0-based steps
    for step, loss in after.items():
        assert loss == pytest.approx(reference[step], rel=1e-5), f"step {step}"
