"""Training-step benchmark (not a timed test): our LoRA step through Lightning vs a bare diffusers loop, side by side.

    python bench/bench_train.py --config tiny --device cpu --steps 5          # seconds; what the test runs
    python bench/bench_train.py --config 13b --device cuda --steps 10         # the paper's setup on an H100/H200
    python bench/bench_train.py --config 13b --flops-only                     # analytic FLOPs, any machine
    python bench/bench_train.py --config 13b --device cuda --ckpt-blocks 21 --attention flash --compile

Rows, all on the same random-weight transformer + LoRA and the same latent/text shapes (no VAE, no T5: the
intended training path reads precomputed latents from the shards):
  bare       a plain loop: transformer forward on [cond ‖ x_t], MSE on the target tokens, backward, AdamW
             (+ grad-norm clipping when the recipe clips), under the same autocast as Lightning's precision;
  lightning  `DiscoLoRAModule.training_step` + its `optimizer_step` through a `lightning.Trainer`
             (logger, checkpoints and progress bar off), batches already in device memory;
  datamodule the same Trainer fed by `ShardDataModule` reading precomputed-latent shards (`--workers`
             loader processes), written here with random tensors of the config's exact shapes;
  loader     the DataModule alone in this process (num_workers=0: one worker), s/batch, no model.
Ratios: overhead = lightning / bare (target ≤ 1.05); loader/step = loader / lightning (< 1 means one worker
keeps up: the loader is not the bottleneck); datamodule / lightning shows what the loader costs the step.
MFU = analytic FLOPs (bench/flops.py: frozen base, input gradients only) / (s/step × peak FLOP/s).
"""

from __future__ import annotations

import gc
import io
import json
import os
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402  (puts the repository on sys.path)
import flops  # noqa: E402
import torch  # noqa: E402
from step import BareStep, make_batch  # noqa: E402

from disco_train.config.geometry import latent_grid  # noqa: E402
from disco_train.config import ATTENTION_KERNELS  # noqa: E402

PAPER_S_PER_STEP = 4.5 * 3600 / 8000  # §4.5: 8000 steps in ≈ 4.5 h on one H100 -> 2.025 s/step
TARGET_S_PER_STEP = 1.0
COLUMNS = ("path", "s/step", "ratio", "peak GB", "TFLOP/s", "MFU")


def quiet() -> None:
    """Lightning's banner/tips and the frozen-base warnings would bury the table."""
    import logging
    import warnings

    import lightning  # noqa: F401  (its import sets its loggers to INFO: set them after)

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=r".*(eval mode|LeafSpec|litlogger|should be kept in float32).*")
    from diffusers.utils import logging as dlog

    dlog.set_verbosity_error()


def parse(argv):
    p = common.parser(__doc__)
    p.add_argument("--steps", type=int, default=5, help="timed steps per row")
    p.add_argument("--rounds", type=int, default=1, help="repeat the rows; report each row's best median")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (allocator, kernels, compile)")
    p.add_argument("--rank", type=int, default=256, help="LoRA rank (paper: 256)")
    p.add_argument("--batch", type=int, default=1, help="clips per step (paper: 1 per GPU)")
    p.add_argument("--workers", type=int, default=1, help="DataLoader workers for the datamodule row")
    p.add_argument("--grad-ckpt", choices=("on", "off"), default=None, help="default: the recipe's")
    p.add_argument("--ckpt-blocks", type=int, default=None,
                   help="with grad-ckpt on: how many blocks recompute (-1 all); default: the recipe's")
    p.add_argument("--attention", choices=ATTENTION_KERNELS, default=None, help="SDPA kernel; default: the recipe's")
    p.add_argument("--compile", action="store_true", help="torch.compile each transformer block (model.compile)")
    p.add_argument("--peak-tflops", type=float, default=None, help="peak FLOP/s for MFU (default: H100/H200 989)")
    p.add_argument("--rows", default="bare,lightning,datamodule,loader",
                   help="which rows to run; 'loader' alone builds no model (so runs on the CPU for any config)")
    p.add_argument("--flops-only", action="store_true", help="print the analytic FLOP table only (no model)")
    return p.parse_args(argv)


def setup(args):
    """(training config, token shapes): the recipe's, with this run's overrides."""
    over = [f"lora.rank={args.rank}", f"data.batch_size={args.batch}", f"data.num_workers={args.workers}",
            *common.clip_overrides(args)]
    if args.grad_ckpt:
        over.append(f"model.gradient_checkpointing={args.grad_ckpt == 'on'}")
    if args.ckpt_blocks is not None:
        over.append(f"model.checkpoint_blocks={args.ckpt_blocks}")
    if args.attention:
        over.append(f"model.attention={args.attention}")
    if args.compile:
        over.append("model.compile=true")
    if args.device.startswith("cuda"):
        over.append("trainer.accelerator=gpu")
    cfg = common.recipe_config(args.config, over)
    f, h, w = latent_grid(cfg.data.frames, cfg.data.height, cfg.data.width)
    shapes = flops.Shapes(seq=2 * f * h * w, text=cfg.model.max_text_tokens, batch=args.batch)  # [cond ‖ target]
    return cfg, (f, h, w), shapes


def bare_loop(module, batch: dict, cfg, device: str, n: int) -> list[float]:
    """The same forward/backward/AdamW work with no framework (bench/step.py)."""
    run = BareStep(module.transformer, batch, cfg, device)
    times = []
    for _ in range(n):
        with common.Timer(device) as t:
            run()
        times.append(t.seconds)
    del run
    release(module)
    return times


class Repeat:
    """An iterable of the same in-memory batch (Lightning accepts any iterable as a train loader)."""

    def __init__(self, batch: dict, n: int):
        self.batch, self.n = batch, n

    def __iter__(self):
        return iter([self.batch] * self.n)

    def __len__(self):
        return self.n


def lightning_fit(module, loader, cfg, device: str, n: int) -> list[float]:
    """Fit `n` steps; step time = interval between consecutive on_train_batch_end (data fetch included)."""
    import lightning as L

    ends: list[float] = []

    class StepEnds(L.Callback):
        def on_train_batch_end(self, *args):
            common.sync(device)
            ends.append(time.perf_counter())

    trainer = L.Trainer(max_steps=n, accelerator="gpu" if device.startswith("cuda") else "cpu", devices=1,
                        precision=cfg.trainer.precision, gradient_clip_val=cfg.optim.grad_clip or None,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                        callbacks=[StepEnds()], default_root_dir=tempfile.gettempdir())
    trainer.fit(module, train_dataloaders=loader)
    release(module)
    return [b - a for a, b in zip(ends, ends[1:])]


def release(module) -> None:
    """Drop the finished Trainer (it holds the optimizer: 13B rank 256 = 6.4 GB of Adam state) and the last
    gradients (3.2 GB), so the next row's peak memory is its own."""
    module.trainer = None
    for p in module.parameters():
        p.grad = None
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def write_shards(folder: Path, batch: dict, cfg, samples: int) -> str:
    """Shards with the fields the latent path reads (meta.json, caption.zlib, latents.safetensors), the
    latents of `batch` at the config's exact shapes and dtype (real shards also carry video.mp4 and
    degraded.bin, which the latent path reads from the tar but never decodes)."""
    import webdataset as wds
    from safetensors.torch import save as save_safetensors

    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: batch[k][0].detach().cpu().contiguous() for k in ("target", "degraded", "text", "text_mask")}
    meta = {"frames": cfg.data.frames, "height": cfg.data.height, "width": cfg.data.width, "fps": 25.0, "bpp": 0.01,
            "latents": {"fill": cfg.condition.fill, "model": cfg.model.name, "dtype": cfg.model.dtype,
                        "max_text_tokens": cfg.model.max_text_tokens,
                        "shapes": {k: list(v.shape) for k, v in tensors.items()}}}
    with wds.TarWriter(str(folder / "train-000000.tar")) as sink:
        for i in range(samples):
            sink.write({"__key__": f"clip{i:04d}_c0", "meta.json": json.dumps(meta).encode(),
                        "caption.zlib": zlib.compress(b"a person walks a dog along a beach at sunset", 9),
                        "latents.safetensors": save_safetensors(tensors)})
    return str(folder / "train-*.tar")


def datamodule(cfg, shards: str, workers: int, length: int):
    from datamodules.shards import ShardDataModule

    cfg.data.train_shards, cfg.data.latents, cfg.data.num_workers = shards, "always", workers
    cfg.data.epoch_length, cfg.data.shuffle_buffer = length, 1  # resampled: any number of batches
    return ShardDataModule(cfg.data, fill=cfg.condition.fill, seed=cfg.seed, aux=cfg.condition.aux)


def loader_alone(cfg, shards: str, n: int) -> list[float]:
    it = iter(datamodule(cfg, shards, 0, n + 1).train_dataloader())
    next(it)  # first batch: opens the shard
    times = []
    for _ in range(n):
        start = time.perf_counter()
        next(it)
        times.append(time.perf_counter() - start)
    return times


def build_module(args, cfg, device: str, dtype: torch.dtype):
    from disco_train.decoder.models import Backbone
    from disco_train.train.lora_module import DiscoLoRAModule

    transformer = common.random_transformer(args.config, device, dtype)
    return DiscoLoRAModule(cfg, Backbone(transformer, None, None, None)).to(device)


def run_rows(args, cfg, grid, shapes) -> dict:
    device, model_cfg = args.device, common.CONFIGS[args.config]["model"]
    dtype = torch.bfloat16 if cfg.model.dtype == "bf16" and (device.startswith("cuda") or args.config != "tiny") \
        else torch.float32  # the shards of a bf16 recipe hold bf16 latents, whatever device reads them
    rows, n, wanted = {}, args.warmup + args.steps, args.rows.split(",")
    module = build_module(args, cfg, device, dtype) if set(wanted) - {"loader"} else None
    batch = make_batch(cfg, model_cfg, grid, device, dtype)
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        shards = write_shards(Path(tmp), {k: v.cpu() for k, v in batch.items()}, cfg, samples=8)
        runs = {"bare": lambda: bare_loop(module, batch, cfg, device, n),
                "lightning": lambda: lightning_fit(module, Repeat(batch, n), cfg, device, n),
                "datamodule": lambda: lightning_fit(module, datamodule(cfg, shards, args.workers, n + 1), cfg,
                                                    device, n)}
        for _ in range(args.rounds):  # the rows alternate; each keeps its best round (a shared, noisy host)
            for name in [r for r in wanted if r in runs]:  # in the order asked (to check order effects)
                gc.collect()
                common.reset_peak(device)
                row = (common.median_s(runs[name]()[-args.steps:]), common.peak_gb(device))
                rows[name] = min(rows.get(name, row), row, key=lambda r: r[0])
        if "loader" in wanted:
            rows["loader"] = (common.median_s(loader_alone(cfg, shards, max(args.steps, 5))), None)
    return rows


def ckpt_text(cfg) -> str:
    m = cfg.model
    return "off" if not m.gradient_checkpointing else "all blocks" if m.checkpoint_blocks == -1 \
        else f"first {m.checkpoint_blocks} blocks"


def peak_flops(args) -> float | None:
    if args.peak_tflops:
        return args.peak_tflops * 1e12
    return flops.peak_flops_for(torch.cuda.get_device_name()) if args.device.startswith("cuda") else None


def report(args, cfg, shapes, rows: dict, step_flops: float) -> str:
    peak = peak_flops(args)
    out = io.StringIO()
    w = out.write
    w(f"  {COLUMNS[0]:<11}{COLUMNS[1]:>10}{COLUMNS[2]:>8}{COLUMNS[3]:>9}{COLUMNS[4]:>9}{COLUMNS[5]:>7}\n")
    bare = rows.get("bare", (None,))[0]
    for name, (s, gb) in rows.items():
        if name == "loader":
            ref = rows.get("lightning", (None,))[0]
            w(f"  {name:<11}{s:>10.4f}{common.fmt(ref and s / ref, '.3f', 8)}{common.fmt(None, '', 9)}"
              f"{common.fmt(None, '', 9)}{common.fmt(None, '', 7)}\n")
            continue
        rate = step_flops / s / 1e12
        mfu = step_flops / (s * peak) if peak else None
        w(f"  {name:<11}{s:>10.4f}{common.fmt(bare and s / bare, '.3f', 8)}{common.fmt(gb, '.1f', 9)}"
          f"{rate:>9.3f}{common.fmt(mfu and 100 * mfu, '.1f', 6)}%\n".replace("n/a%", " n/a"))
    w("  (ratio: s/step ÷ bare; for loader: s/batch of one worker ÷ lightning s/step)\n")
    if "lightning" in rows and bare:
        extra_ms = 1000 * (rows["lightning"][0] - bare)  # a per-step constant: weigh it against the real step
        w(f"  framework overhead lightning/bare = {rows['lightning'][0] / bare:.3f} (target <= 1.05), "
          f"{extra_ms:+.2f} ms/step\n")
    if "loader" in rows and "lightning" not in rows and args.config == "13b":
        for label, s in (("paper", PAPER_S_PER_STEP), ("target", TARGET_S_PER_STEP)):
            w(f"  loader/step at the {label}'s {s:.3f} s/step = {rows['loader'][0] / s:.4f}\n")
    if "loader" in rows and "lightning" in rows:
        ratio = rows["loader"][0] / rows["lightning"][0]
        w(f"  loader/step = {ratio:.4f}: one worker {'keeps up' if ratio < 1 else 'is the BOTTLENECK'}\n")
    if "datamodule" in rows and "lightning" in rows:
        w(f"  datamodule/lightning = {rows['datamodule'][0] / rows['lightning'][0]:.3f} "
          f"({args.workers} worker(s))\n")
    if args.config == "13b" and "lightning" in rows:
        s = rows["lightning"][0]
        w(f"  vs paper {PAPER_S_PER_STEP:.3f} s/step: {s / PAPER_S_PER_STEP:.3f}×; vs target "
          f"{TARGET_S_PER_STEP:.1f} s/step: {s / TARGET_S_PER_STEP:.3f}×\n")
    return out.getvalue()


def flops_report(args, shapes, targets) -> tuple[float, str]:
    model_cfg = common.CONFIGS[args.config]["model"]
    tally = flops.transformer_flops(model_cfg, shapes, args.rank, tuple(targets), backward=True)
    step = tally.total()
    scale, unit = flops.unit_for(step)
    dense = flops.dense_equivalent(model_cfg, shapes)
    lines = [f"analytic FLOPs per step ({shapes.batch} × {shapes.seq} tokens + {shapes.text} text tokens, "
             f"LoRA rank {args.rank} on {','.join(targets)}):", flops.format_table(tally),
             f"  LoRA step {step / scale:.4f} {unit}; dense-equivalent 3×forward {dense / scale:.4f} {unit}"]
    peak = peak_flops(args) or flops.PEAK_FLOPS["H100"]
    for label, s in (("paper", PAPER_S_PER_STEP), ("target", TARGET_S_PER_STEP)) if args.config == "13b" else ():
        lines.append(f"  at {s:.3f} s/step ({label}) on {peak / 1e12:.0f} TFLOP/s: MFU {100 * step / s / peak:.1f}% "
                     f"(dense-equivalent {100 * dense / s / peak:.1f}%)")
    return step, "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    common.set_threads(args)
    if args.warmup < 1:
        raise SystemExit("--warmup must be >= 1 (step times are intervals between step ends)")
    if not args.flops_only and args.rows != "loader":  # the loader row alone builds no model
        common.refuse_large_on_cpu(args.config, args.device)
    cfg, grid, shapes = setup(args)
    step_flops, text = flops_report(args, shapes, cfg.lora.targets)
    print(common.bench_header("bench_train", args))
    print(f"  {cfg.data.frames}×{cfg.data.height}×{cfg.data.width} clips -> latent {grid}, batch {args.batch}, "
          f"rank {args.rank}, {cfg.trainer.precision}, grad-ckpt {ckpt_text(cfg)}, "
          f"attention {cfg.model.attention}, compile {cfg.model.compile}, warmup {args.warmup}, "
          f"steps {args.steps} (median), best of {args.rounds} round(s)")
    print(text)
    if args.flops_only:
        return 0
    quiet()
    rows = run_rows(args, cfg, grid, shapes)
    print(report(args, cfg, shapes, rows, step_flops), end="")
    print(f"  load avg after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
