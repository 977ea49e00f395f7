"""Peak training memory vs how many blocks recompute (`model.checkpoint_blocks`), planned without the big GPU.

    python bench/bench_memory.py --config 13b                    # CPU, ≈ 10 min: the 13B plan at 4096 tokens
    python bench/bench_memory.py --config 13b --plot mem.png     # + the plot
    python bench/bench_memory.py --config tiny                   # seconds (what the test runs)
    python bench/bench_memory.py --config 19b                    # LTX-2 19B (disco_lora_ltx2); 22b: LTX-2.5
    python bench/bench_memory.py --config tiny_ltx2              # seconds: the LTX-2 path on tiny models

Method. Every transformer block of a config is the same module, so peak memory is linear in the number of
blocks L and in the number k of them that recompute in backward:
    peak(L, k) ≈ max(c₀ + k·s₁ + (L − k)·s₀,  c₁ + k·s₁ + (L − k)·p)      (second term only for k > 0)
s₀ = a block that stores its activations (bf16 weights + fp32 adapter, gradient, Adam m, v + activations),
s₁ = a block that stores only its input, p = its weights and adapter state alone (counted exactly), c = what
is not a block (embeddings, T5 states, the backward's working set; c₁ also the one block being recomputed).
The first term is the start of backward; the second the recompute of the last recomputing block, when every
later block is through backward (`Plan` has the exact form, with block 0's own term). The script measures real
training steps of 2- and 3-block models of the config's full width at the recipe's real token count (4096 for
13B), fits the model from five of them, checks it on a sixth (3 blocks, 2 recomputing), and extrapolates to the
full depth (48 blocks for 13B). LTX-2 (19b, 22b) is measured the same way through its video-only call
(`decoder.family`): its blocks carry the frozen audio stream (weights, one token of activations), and its
text is the recipe's 1024 Gemma tokens.

What is measured: live tensor bytes, tracked op by op (bench/memtrack.py), over the *second* step (so Adam's m
and v exist), separately for forward+backward and for clipping + AdamW. That is the quantity
`torch.cuda.max_memory_allocated` reports and bench_train.py's "peak GB" column shows; the CUDA context,
cuBLAS/NCCL workspaces and allocator fragmentation come on top (≈ 5-10 % of the card). Measured on the CPU,
the kernels differ from the GPU's (CPU flash attention, CPU autocast lists); the tensors kept for backward are
expected to match closely, which is not verified yet: bench_train.py on a GPU prints the real peak.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402  (puts the repository on sys.path)
import flops  # noqa: E402
import torch  # noqa: E402
from memtrack import LiveBytes, alive_tensors  # noqa: E402
from step import BareStep, make_batch  # noqa: E402

from disco_train.config.geometry import latent_grid  # noqa: E402

BUDGETS_GB = {"issue target": 60.0, "H100 80 GB": 72.0, "H200 141 GB": 127.0}
"""Tensor-memory budgets (max_memory_allocated): the issue's 60 GB, and 90 % of each card (80 GB → 72,
141 GB → 127), leaving ≈ 10 % for the CUDA context, library workspaces and fragmentation."""


def parse(argv):
    p = common.parser(__doc__, device_help="where to run the small models (cpu is enough)",
                      configs=tuple(common.CONFIGS))
    p.add_argument("--rank", type=int, default=None, help="LoRA rank (default: the recipe's; paper: 256)")
    p.add_argument("--attention", default="flash", help="SDPA kernel (model.attention) for the measured steps")
    p.add_argument("--plot", default=None, help="write a PNG of peak GB against recomputing blocks")
    return p.parse_args(argv)


def setup(args):
    rank = [f"lora.rank={args.rank}", f"lora.alpha={float(args.rank)}"] if args.rank else []
    over = [*rank, f"model.attention={args.attention}", "model.gradient_checkpointing=true",
            *common.clip_overrides(args)]
    cfg = common.recipe_config(args.config, over)
    args.rank = cfg.lora.rank
    if args.config not in common.TINY:
        cfg.trainer.precision = "bf16-mixed"  # the recipe's GPU precision, also when measured on the CPU
    return cfg, latent_grid(cfg.data.frames, cfg.data.height, cfg.data.width)


def measure(args, cfg, grid, layers: int, recompute: int) -> tuple[float, float, float]:
    """Peak live bytes (forward+backward, clip+AdamW) of the second step of a `layers`-block model, and the
    bytes of one block's weights and adapter state."""
    from disco_train.decoder.models import Backbone
    from disco_train.train.lora_module import DiscoLoRAModule

    dtype = torch.bfloat16 if cfg.model.dtype == "bf16" else torch.float32
    cfg.model.checkpoint_blocks = recompute
    transformer = common.random_transformer(args.config, args.device, dtype, layers=layers)
    module = DiscoLoRAModule(cfg, Backbone(transformer, None, None, None)).to(args.device)
    batch = make_batch(cfg, common.CONFIGS[args.config]["model"], grid, args.device, dtype)
    run = BareStep(module.transformer, batch, cfg, args.device)
    run()  # the first step creates Adam's state
    peaks = []
    for phase in (run.forward_backward, run.optimizer_step):
        inputs = [*batch.values(), run.tokens, run.coords, run.timesteps, run.goal]
        with LiveBytes(alive_tensors(module.transformer, run.opt, inputs)) as tracker:
            phase()
        peaks.append(float(tracker.peak))
    state = block_state_bytes(module.transformer)
    del run, module, transformer, batch
    gc.collect()
    return peaks[0], peaks[1], state


class Plan:
    """The model above, one per phase, from measured (L, k) -> bytes and p, one block's weights + adapter state.

    Two candidates for the peak: the start of backward, when the k recomputing blocks hold their inputs and the
    others their activations, and the recompute of block k − 1, by when every later block has been through
    backward and holds only its weights and adapter state p (c₁ + k·s₁ + (L − k)·p). The first k blocks are the
    ones that recompute, so the two never add up. Block 0 stores less than the others when it does not
    recompute (its input needs no gradient, so its first ops save nothing): recomputing it saves
    `first` = peak(2, 0) − peak(2, 1), measured, and every further block s₀ − s₁."""

    def __init__(self, m: dict, per_block_state: float):
        self.s0 = m[3, 0] - m[2, 0]
        self.s1 = m[3, 3] - m[2, 2]
        self.c0, self.c1 = m[2, 0] - 2 * self.s0, m[2, 2] - 2 * self.s1
        self.first = m[2, 0] - m[2, 1]
        self.p = per_block_state

    def peak(self, layers: int, k: int) -> float:
        stored = self.c0 + layers * self.s0
        if k == 0:
            return stored
        start_of_backward = stored - self.first - (k - 1) * (self.s0 - self.s1)
        recompute = self.c1 + k * self.s1 + (layers - k) * self.p
        return max(start_of_backward, recompute)


def block_state_bytes(transformer: torch.nn.Module) -> float:
    """Bytes one block keeps all step: frozen weights at their size, adapter weights ×4 (fp32 weight, gradient,
    Adam m and v: 4 × 4 B per parameter)."""
    block = transformer.transformer_blocks[0]
    return float(sum(p.numel() * (16 if p.requires_grad else p.element_size()) for p in block.parameters()))


def fit(args, cfg, grid) -> tuple[Plan, Plan, dict]:
    points = [(2, 0), (3, 0), (2, 1), (2, 2), (3, 3), (3, 2)]  # the last one only checks the fit
    measured = {}
    for layers, k in points:
        measured[layers, k] = measure(args, cfg, grid, layers, k)
        print(f"  measured {layers} blocks, {k} recomputing: backward {mb(measured[layers, k][0])}, "
              f"optimizer {mb(measured[layers, k][1])}", flush=True)
    plans = tuple(Plan({p: v[i] for p, v in measured.items()}, measured[2, 0][2]) for i in (0, 1))
    return plans[0], plans[1], measured


def mb(n_bytes: float) -> str:
    return f"{n_bytes / 1e6:,.1f} MB"


def block_forward_flops(args, cfg) -> float:
    """One block's forward FLOPs: the extra work of recomputing it (the forward is the same for every block)."""
    arch = common.CONFIGS[args.config]["model"]
    f, h, w = latent_grid(cfg.data.frames, cfg.data.height, cfg.data.width)
    shapes = flops.Shapes(seq=2 * f * h * w, text=cfg.model.max_text_tokens, batch=cfg.data.batch_size)
    count = flops.ltx2_flops if cfg.model.family == "ltx2" else flops.transformer_flops
    tally = [count(dict(arch, num_layers=n), shapes, args.rank, tuple(cfg.lora.targets)) for n in (1, 2)]
    return tally[1].total("forward") - tally[0].total("forward")


def report(args, cfg, grid, backward: Plan, optimizer: Plan, measured: dict) -> str:
    depth = common.CONFIGS[args.config]["model"]["num_layers"]
    predicted = backward.peak(3, 2)
    check = abs(predicted - measured[3, 2][0]) / measured[3, 2][0]
    step_fwd = block_forward_flops(args, cfg)
    lines = [f"  per block: stored {mb(backward.s0)}, recomputed {mb(backward.s1)}, of which weights and adapter "
             f"state {mb(backward.p)}; fit check at 3 blocks, 2 recomputing: predicted {mb(predicted)}, "
             f"measured {mb(measured[3, 2][0])} ({100 * check:.1f} % off)",
             f"  plan for {depth} blocks ({cfg.data.frames}×{cfg.data.height}×{cfg.data.width}, "
             f"{2 * grid[0] * grid[1] * grid[2]} tokens, rank {args.rank}):",
             f"  {'recompute':>9}{'backward GB':>13}{'optimizer GB':>14}{'peak GB':>9}{'recompute TFLOP':>17}"]
    for k in sorted({0, *range(0, depth + 1, max(1, depth // 6)), depth}):
        gb = [plan.peak(depth, k) / 1e9 for plan in (backward, optimizer)]
        lines.append(f"  {k:>9}{gb[0]:>13.4f}{gb[1]:>14.4f}{max(gb):>9.4f}{k * step_fwd / 1e12:>17.4f}")
    for label, budget in BUDGETS_GB.items():
        fits = [k for k in range(depth + 1)
                if max(backward.peak(depth, k), optimizer.peak(depth, k)) / 1e9 <= budget]
        advice = (f"model.checkpoint_blocks={min(fits)}" + (" (or gradient_checkpointing=false)" if min(fits) == 0
                  else f": {depth - min(fits)} blocks keep activations, saves "
                       f"{(depth - min(fits)) * step_fwd / 1e12:.1f} TFLOP/step of recompute")) \
            if fits else "does not fit even with every block recomputing"
        lines.append(f"  {label} ({budget:.0f} GB): {advice}")
    return "\n".join(lines)


def plot(path: str, backward: Plan, optimizer: Plan, depth: int, step_fwd: float, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = list(range(depth + 1))
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(ks, [max(backward.peak(depth, k), optimizer.peak(depth, k)) / 1e9 for k in ks], ".-",
            label="predicted peak (tensor memory)")
    for (label, budget), style in zip(BUDGETS_GB.items(), ("--", ":", "-.")):
        ax.axhline(budget, color="grey", linestyle=style, label=f"{label}: {budget:.0f} GB")
    ax.set_xlabel("blocks that recompute in backward (model.checkpoint_blocks)")
    ax.set_ylabel("GB")
    ax.set_title(title)
    extra = ax.twinx()
    extra.plot(ks, [k * step_fwd / 1e12 for k in ks], "--", color="tab:red", alpha=0.6)
    extra.set_ylabel("recompute TFLOP per step", color="tab:red")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    from diffusers.utils import logging as dlog

    dlog.set_verbosity_error()  # the bf16 cast warning of every random model would bury the table
    args = parse(argv)
    common.set_threads(args)
    cfg, grid = setup(args)
    print(common.bench_header("bench_memory", args))
    print(f"  {cfg.model.dtype} weights, {cfg.trainer.precision}, attention {cfg.model.attention}, "
          f"grad clip {cfg.optim.grad_clip}, AdamW (fp32 adapter, m, v); 2- and 3-block models of full width")
    backward, optimizer, measured = fit(args, cfg, grid)
    print(report(args, cfg, grid, backward, optimizer, measured))
    if args.plot:
        depth = common.CONFIGS[args.config]["model"]["num_layers"]
        plot(args.plot, backward, optimizer, depth, block_forward_flops(args, cfg),
             f"{args.config}: peak training memory vs recompute (measured on {args.device}, extrapolated)")
        print(f"  plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
