"""Shared by the bench/ scripts: which model each `--config` means, random-weight transformers, timing, reports.

`--config` names map to the training recipes, so a benchmark measures what `train.py recipe=...` runs:
tiny -> disco_lora_debug (tiny random LTX-Video, 64×64×17, rank 8 in the recipe), 2b -> disco_lora_2b,
13b -> disco_lora (512×512×57, rank 256, bf16). 2B/13B are only ever built on CUDA: 13B in bf16 is 26 GB of
weights (2 bytes × 13.0e9), and a CPU forward/backward over 4096 tokens would take hours on this kind of host.
LTX-2 (`model.family=ltx2`, bench_memory.py only): tiny_ltx2 -> disco_lora_ltx2_debug, 19b -> disco_lora_ltx2,
22b -> disco_lora_ltx25 (LTX-2.5).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402

from disco_train.decoder import ltx2, models  # noqa: E402

CONFIGS = {
    "tiny": {"recipe": "disco_lora_debug", "model": models.TINY_TRANSFORMER},
    "2b": {"recipe": "disco_lora_2b", "model": models.LTXV_CONFIGS["ltxv_2b"]},
    "13b": {"recipe": "disco_lora", "model": models.LTXV_CONFIGS["ltxv_13b"]},
    "tiny_ltx2": {"recipe": "disco_lora_ltx2_debug", "model": ltx2.TINY_LTX2, "family": "ltx2"},
    "19b": {"recipe": "disco_lora_ltx2", "model": ltx2.LTX2_CONFIGS["ltx2_19b"], "family": "ltx2"},
    "22b": {"recipe": "disco_lora_ltx25", "model": ltx2.LTX2_CONFIGS["ltx25_22b"], "family": "ltx2"},
}
LTXV_NAMES = ("tiny", "2b", "13b")
"""The configs every model benchmark takes; bench_memory.py also the LTX-2 ones."""
TINY = ("tiny", "tiny_ltx2")


def family(config: str):
    from disco_train.decoder.family import FAMILIES

    return FAMILIES[CONFIGS[config].get("family", "ltxv")]


def refuse_large_on_cpu(config: str, device: str) -> None:
    if config not in TINY and device == "cpu":
        raise SystemExit(f"--config {config} --device cpu: refusing to build the {config} transformer on the CPU "
                         f"(13B bf16 = 26 GB of weights; hours per step). Use --device cuda on an H100/H200, "
                         f"--flops-only for the analytic count, or --config tiny.")


def recipe_config(config: str, overrides: list[str] = ()):
    """The typed training config of the recipe behind `config` (no weights are loaded or checked here)."""
    from disco_train.config.recipe import resolve

    cfg, _, _ = resolve([f"recipe={CONFIGS[config]['recipe']}", "logger.kind=none", *overrides])
    return cfg


def random_transformer(config: str, device: str, dtype: torch.dtype, seed: int = 0,
                       layers: int | None = None) -> torch.nn.Module:
    """The config's transformer (LTX-Video or LTX-2) with random weights, frozen, built directly on `device`
    (never on the CPU first for 2B/13B: meta device, then `to_empty` on the GPU, then initialised in place).
    `layers` builds only that many blocks of the config's width (bench_memory.py measures 2- and 3-block models)."""
    import diffusers

    torch.manual_seed(seed)
    if config in TINY and layers is None:
        tiny = models.tiny_transformer(seed) if config == "tiny" else ltx2.tiny_transformer(seed)
        model = tiny.to(device=device, dtype=dtype)
    else:
        arch = dict(CONFIGS[config]["model"])
        arch["num_layers"] = layers or arch["num_layers"]
        with torch.device("meta"):
            model = getattr(diffusers, family(config).transformer_class)(**arch)
        # dtype first, still on meta: materialising fp32 then casting would need 13.0e9 × (4 + 2) B = 78 GB
        model = model.to(dtype).to_empty(device=device)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if p.dim() >= 2:  # ~unit-variance activations: std 1/sqrt(fan_in)
                    p.normal_(0.0, p.shape[-1] ** -0.5)
                elif name.endswith("bias"):
                    p.zero_()
                else:  # norm gains
                    p.fill_(1.0)
        if any(True for _ in model.buffers()):
            raise RuntimeError("the transformer has buffers that to_empty left uninitialised")
    model.requires_grad_(False).eval()
    return model


def parser(doc: str, device_help: str = "cpu or cuda", configs: tuple = LTXV_NAMES) -> argparse.ArgumentParser:
    """The arguments every model benchmark takes: --config (of `configs`), --threads, --device, --frames, --size."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--config", choices=configs, default="tiny")
    add_threads_arg(p)
    p.add_argument("--device", default="cpu", help=device_help)
    p.add_argument("--frames", type=int, default=None, help="default: the recipe's (13b: 57, tiny: 17)")
    p.add_argument("--size", type=int, default=None, help="height = width; default: the recipe's (13b: 512, tiny: 64)")
    return p


def clip_overrides(args) -> list[str]:
    """Recipe overrides for --frames / --size."""
    over = [f"data.frames={args.frames}"] if args.frames else []
    if args.size:
        over += [f"data.height={args.size}", f"data.width={args.size}"]
    return over


def add_threads_arg(parser) -> None:
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default 1 with --device cpu, torch's default otherwise)")


def set_threads(args) -> None:
    """One thread on the CPU by default: on this shared 2-core host, 2 OpenMP threads competing with other jobs
    stall at every parallel region (measured: tiny step 6 ms with 1 thread, 1.3-2.2 s with 2 under load 3.8)."""
    threads = args.threads if args.threads is not None else (1 if args.device == "cpu" else 0)
    if threads > 0:
        torch.set_num_threads(threads)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def median_s(times: list[float]) -> float:
    return statistics.median(times) if times else float("nan")


class Timer:
    """Wall time of one region, synchronised with the device on both ends."""

    def __init__(self, device: str):
        self.device, self.seconds = device, 0.0

    def __enter__(self):
        sync(self.device)
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        sync(self.device)
        self.seconds = time.perf_counter() - self.start


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def peak_gb(device: str) -> float | None:
    return torch.cuda.max_memory_allocated() / 1e9 if device.startswith("cuda") else None


def fmt(value, spec: str = ".3f", width: int = 10) -> str:
    return f"{'n/a':>{width}}" if value is None else f"{value:>{width}{spec}}"


def bench_header(script: str, args) -> str:
    return header(f"{script} --config {args.config} ({CONFIGS[args.config]['recipe']})", args.device)


def header(title: str, device: str) -> str:
    """Date, machine, torch, device and the load average: the host is shared, so timings need the load."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    name = torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor() or platform.machine()
    return (f"{title}\n  date {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC | host {platform.node()} | "
            f"{os.cpu_count()} cpus, torch threads {torch.get_num_threads()} | torch {torch.__version__} | "
            f"device {device} ({name}) | load avg {load}")
