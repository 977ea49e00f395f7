"""The DeepSpeed recipes on two CPU ranks (torchrun, gloo, DS_ACCELERATOR=cpu; tests/deepspeed_cpu.py lifts only
Lightning's CUDA-only checks): ZeRO-2 (disco_lora_h100x8) and ZeRO-3 (disco_lora_zero3_multinode) train the debug
decoder like one process doing both ranks' work, their sharded checkpoints resume after a rank is SIGKILLed
mid-save, and export from them equals export from the one-process checkpoint.

The DeepSpeed config is the one each full recipe produces (asserted key by key), except precision: the GPU recipes
train bf16-mixed (Lightning adds `bf16: {enabled: true}`), the CPU runs 32-true like the debug recipes.

Tolerances: losses 1e-5 relative, adapter weights 1e-5 absolute (weights are ~1e-2 after 4 steps at lr 2e-3).
Measured differences are ~1e-7: the ranks' gradients are averaged by an all-reduce in DeepSpeed and by summing two
backward passes here, float32 sums in another order.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import ROOT, SESSION_ENV

STEPS, WORLD = 4, 2
RECIPES = {2: "disco_lora_h100x8", 3: "disco_lora_zero3_multinode"}


def _overrides(shards: Path, out: Path, stage: int, name: str) -> list[str]:
    return [f"recipe={RECIPES[stage]}_debug", f"trainer.strategy=deepspeed_stage_{stage}", f"trainer.devices={WORLD}",
            "trainer.num_nodes=1", f"data.train_shards={shards}/train-*.tar", f"output_dir={out}", f"name={name}",
            f"trainer.max_steps={STEPS}", "data.num_workers=0", "logger.kind=csv", "trainer.log_every_n_steps=1",
            "checkpoint.every_n_steps=1", "checkpoint.keep_last=2"]


def _launch(argv: list[str], report: Path, kill: str = "") -> subprocess.CompletedProcess:
    """torchrun --standalone (it picks a free port) with WORLD CPU ranks of tests/deepspeed_cpu.py."""
    env = {**SESSION_ENV, "OMP_NUM_THREADS": "1", "DS_ACCELERATOR": "cpu", "PYTHONPATH": str(ROOT),
           "DISCO_TEST_REPORT": str(report), "DISCO_TEST_KILL": kill}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={WORLD}",
               "--max-restarts=0", str(ROOT / "tests" / "deepspeed_cpu.py"), *argv]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def _losses(metrics: Path) -> dict[int, float]:
    with open(metrics, newline="") as handle:
        return {int(r["step"]): float(r["train/loss"]) for r in csv.DictReader(handle) if r.get("train/loss")}


def one_process(cfg) -> tuple[list[list[float]], dict[str, torch.Tensor]]:
    """Both ranks' steps in one process without DeepSpeed: each rank's batches (`ShardDataModule.stream`) and σ/noise
    (`step_generator`), the gradients averaged as DeepSpeed's all-reduce does, clipped, one AdamW step. Returns the
    per-step, per-rank losses and the final adapter."""
    import lightning as L
    from torch.utils.data import DataLoader

    from disco_train.decoder.lora import lora_state_dict, trainable_parameters
    from disco_train.train.build import build_datamodule
    from disco_train.train.lora_module import DiscoLoRAModule, step_generator

    saved = {k: os.environ.get(k) for k in ("PL_GLOBAL_SEED", "PL_SEED_WORKERS")}
    L.seed_everything(cfg.seed, workers=True, verbose=False)  # as train.fit
    for key, value in saved.items():  # seed_everything exports the seed: later tests must not inherit it
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    module = DiscoLoRAModule(cfg)
    optim = module.configure_optimizers()
    optimizer, scheduler = optim["optimizer"], optim["lr_scheduler"]["scheduler"]
    streams = [iter(DataLoader(build_datamodule(cfg).stream(r, WORLD), batch_size=None)) for r in range(WORLD)]
    losses = []
    for step in range(cfg.trainer.max_steps):
        losses.append([])
        for rank, stream in enumerate(streams):
            inputs = module.decoder.prepare_batch(next(stream))
            loss = module.decoder.training_loss(inputs, step_generator(cfg.seed, rank, step))[0].mean()
            (loss / WORLD).backward()
            losses[-1].append(loss.item())
        torch.nn.utils.clip_grad_norm_(trainable_parameters(module.transformer), cfg.optim.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    return losses, lora_state_dict(module.transformer)


@pytest.fixture(scope="module")
def reference(demo_shards, tmp_path_factory):
    """The one-process run and its export (the same for both stages: ZeRO changes where state lives, not the math)."""
    from disco_train.config.recipe import resolve, to_yaml
    from disco_train.train.export import export

    root = tmp_path_factory.mktemp("one-process")
    cfg, merged, _ = resolve(_overrides(demo_shards, root, 2, "run"))
    losses, adapter = one_process(cfg)
    (root / "run" / "checkpoints").mkdir(parents=True)
    (root / "run" / "config.yaml").write_text(to_yaml(merged))
    ckpt = root / "run" / "checkpoints" / f"step{STEPS:06d}.ckpt"
    torch.save({"state_dict": {f"lora.{k}": v for k, v in adapter.items()}, "global_step": STEPS}, ckpt)
    return losses, adapter, export(ckpt, root / "export")


def _expected_config(stage: int) -> dict:
    """DeepSpeed's config dict for the full GPU recipe, as Lightning completes it (`_format_config`) minus precision."""
    from disco_train.config.recipe import resolve
    from disco_train.train.zero import DiscoDeepSpeedStrategy, deepspeed_options

    cfg, _, _ = resolve([f"recipe={RECIPES[stage]}"])
    assert cfg.trainer.strategy == f"deepspeed_stage_{stage}" and cfg.trainer.precision == "bf16-mixed"
    return {**DiscoDeepSpeedStrategy(**deepspeed_options(cfg)).config,
            "gradient_accumulation_steps": cfg.trainer.accumulate_grad_batches,
            "gradient_clipping": cfg.optim.grad_clip}


def _check_reports(report: Path, stage: int) -> None:
    ranks = [json.loads((report / f"rank{r}.json").read_text()) for r in range(WORLD)]
    for r in ranks:
        assert r["stage"] == stage and r["world"] == WORLD
        assert r["config"] == _expected_config(stage)
        lora, frozen = r["params"]["lora"], r["params"]["frozen"]
        assert lora["trainable"] > 0 and frozen["trainable"] == 0
        if stage == 3:  # the frozen base (and the adapter) partitioned: each rank holds about half of each
            assert frozen["local"] * WORLD >= frozen["full"] > frozen["local"] * (WORLD - 0.1)
        else:
            assert frozen["local"] == frozen["full"]
    if stage == 3:
        assert sum(r["params"]["frozen"]["local"] for r in ranks) >= ranks[0]["params"]["frozen"]["full"]


def _check_export(run: Path, reference) -> None:
    from safetensors.torch import load_file

    from disco_train.decoder.export import DIFFUSERS_FILE, read_manifest
    from disco_train.decoder.lora import load_adapter_file
    from disco_train.train.build import check_init_from
    from disco_train.train.export import export, load_config

    _, adapter, expected = reference
    out = export(run / "checkpoints" / "last.ckpt", run / "export")  # a link to the newest step folder
    assert read_manifest(out).source.global_step == STEPS
    got, want = load_file(str(out / DIFFUSERS_FILE)), load_file(str(expected / DIFFUSERS_FILE))
    assert set(got) == set(want) and len(got) == len(adapter)
    for key in want:
        torch.testing.assert_close(got[key], want[key], atol=1e-5, rtol=0, msg=key)
    assert any(v.abs().max() > 1e-3 for k, v in want.items() if "lora_B" in k)  # trained: lora_B starts at zero
    folder = run / "checkpoints" / f"step{STEPS:06d}.ckpt"
    cfg = load_config(run / "config.yaml", [f"lora.init_from={folder}"])
    check_init_from(cfg)  # lora.init_from=<folder>: the preflight, then what DiscoDecoder loads
    init_from = load_adapter_file(folder)
    for key, value in adapter.items():
        torch.testing.assert_close(init_from[key], value, atol=1e-5, rtol=0, msg=key)


@pytest.mark.slow
def test_zero3_trains_like_one_process_and_exports_the_same_adapter(demo_shards, tmp_path, reference):
    done = _launch(_overrides(demo_shards, tmp_path, 3, "z3"), tmp_path / "report")
    assert done.returncode == 0, done.stderr[-3000:]
    _check_reports(tmp_path / "report", 3)
    losses = _losses(tmp_path / "z3" / "logs" / "metrics.csv")
    assert sorted(losses) == list(range(STEPS))
    for step, loss in losses.items():  # the CSV logs rank 0's loss
        assert loss == pytest.approx(reference[0][step][0], rel=1e-5), f"step {step}"
    _check_export(tmp_path / "z3", reference)


@pytest.mark.slow
def test_zero2_rank_killed_mid_save_resumes_from_the_last_complete_checkpoint(demo_shards, tmp_path, reference):
    from disco_train.decoder.sharded import incomplete
    from disco_train.train.reliability import find_resume_checkpoint

    argv, run = _overrides(demo_shards, tmp_path, 2, "z2"), tmp_path / "z2"
    killed = _launch(argv, tmp_path / "report", kill="1:step000003.ckpt")  # rank 1 dies writing its shard
    assert killed.returncode != 0, "the run finished: rank 1 was not killed"
    assert "(SIGKILL)" in killed.stderr, killed.stderr[-3000:]  # torchrun names the rank and its signal
    _check_reports(tmp_path / "report", 2)
    cut = run / "checkpoints" / "step000003.ckpt"
    assert cut.is_dir() and incomplete(cut)  # DeepSpeed's rank files are there, in part
    assert find_resume_checkpoint(run).resolve() == (run / "checkpoints" / "step000002.ckpt").resolve()
    first = _losses(run / "logs" / "metrics.csv")

    resumed = _launch(argv + ["resume=auto"], tmp_path / "report-resumed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "continuing from" in resumed.stdout
    (log_dir,) = run.glob("logs-resumed-*")
    after = _losses(log_dir / "metrics.csv")
    assert sorted(after) == [2, 3] and {0, 1} <= set(first)
    for step, loss in {**first, **after}.items():
        assert loss == pytest.approx(reference[0][step][0], rel=1e-5), f"step {step}"
    assert not incomplete(run / "checkpoints" / f"step{STEPS:06d}.ckpt")
    _check_export(run, reference)
