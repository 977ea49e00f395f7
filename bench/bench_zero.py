"""Per-rank model-state memory of the DeepSpeed recipes (ZeRO-2 `disco_lora_h100x8`, ZeRO-3
`disco_lora_zero3_multinode`) by DeepSpeed's own estimators, next to the single-GPU plan measured by
bench_memory.py.

    python bench/bench_zero.py                         # 13B, 8 and 16 ranks (seconds: the model is on meta)
    python bench/bench_zero.py --config tiny --ranks 2 # what the test runs

DeepSpeed's estimators (`estimate_zero2_model_states_mem_needs`, `estimate_zero3_model_states_mem_needs`, the
functions the `..._all_live` / `..._all_cold` printers call) assume every parameter is trained: 2 B of 16-bit
weights per parameter (replicated in ZeRO-2, partitioned in ZeRO-3) plus 18 B of gradients, fp32 master weights
and Adam moments partitioned over the ranks. Here only the LoRA is trained, so the table gives them (a) the whole
model, their headline figure, and (b) the LoRA parameters, what ZeRO really shards for us; the frozen base adds
2 B per parameter (bf16, no gradient, no optimizer state), whole on each rank in ZeRO-2 and split over the ranks in
ZeRO-3. The `_all_live` printers count parameters by storage pointer, which a meta-device model lacks (every
pointer is 0), so the counts come from the meta model directly; the largest layer is DeepSpeed's own count.

Projected peak = the measured single-GPU peak − the measured single-GPU model states + the ZeRO model states per
rank: the activations of one clip per rank stay what the single-GPU plan measured. bench_memory.py measures that
plan (`--config 13b`, ≈ 10 min on the CPU): its figures are the defaults below, BENCHMARKS.md §3b.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402  (puts the repository on sys.path)

MEASURED_PLAN_GB = {"13b": (58.69, 38.99)}
"""bench_memory.py --config 13b (BENCHMARKS.md §3b), disco_lora's 32 recomputing blocks: (peak of forward +
backward, peak of clip + AdamW = the model states: bf16 base, fp32 LoRA weights, gradients, Adam m and v)."""


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", choices=common.LTXV_NAMES, default="13b")
    p.add_argument("--ranks", type=int, nargs="+", default=[8, 16], help="world sizes (8 GPUs per node)")
    p.add_argument("--rank", type=int, default=None, help="LoRA rank (default: the recipe's; 13b: 256)")
    return p.parse_args(argv)


def parameter_counts(cfg) -> tuple[int, int, int]:
    """(frozen base, LoRA, largest layer) parameters of the recipe's model, on the meta device."""
    from deepspeed.runtime.zero.stage3 import model_to_params

    from disco_train.decoder.lora import adapter_layout
    from disco_train.decoder.models import meta_transformer

    meta = meta_transformer(cfg.model.name, cfg.model.family)
    lora = sum(a * b for a, b in adapter_layout(meta, cfg.lora.rank, cfg.lora.targets).values())
    return sum(p.numel() for p in meta.parameters()), lora, model_to_params(meta)[1]


def per_rank_bytes(stage: int, ranks: int, base: int, lora: int, largest: int) -> dict[str, float]:
    """DeepSpeed's GPU estimate (no offload) for the whole model and for the LoRA, and the frozen base's bytes."""
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    per_node = min(ranks, 8)
    shape = {"num_gpus_per_node": per_node, "num_nodes": ranks // per_node, "cpu_offload": False}
    if stage == 2:
        estimate = lambda n: estimate_zero2_model_states_mem_needs(n, **shape)[1]  # noqa: E731
        frozen = 2 * base
    else:
        estimate = lambda n: estimate_zero3_model_states_mem_needs(n, largest, cpu_offload_params=False,  # noqa: E731
                                                                   **shape)[1]
        frozen = 2 * base / ranks
    return {"all trained": estimate(base + lora), "lora": estimate(lora), "frozen": frozen}


def table(config: str, ranks_list: list[int], base: int, lora: int, largest: int) -> str:
    plan, unit = MEASURED_PLAN_GB.get(config), 1e9 if config != "tiny" else 1e3
    gb = lambda b: f"{b / unit:>9.2f}"  # noqa: E731
    lines = [f"{'recipe':<28}{'ZeRO':>5}{'ranks':>6}{'DS: all':>10}{'DS: LoRA':>10}{'+ base':>9}{'= states':>10}"
             f"{'peak':>9}",
             f"{'1 GPU, measured (no ZeRO)':<28}{'-':>5}{1:>6}{'':>10}{'':>10}{'':>9}"
             + (f"{plan[1]:>10.2f}{plan[0]:>9.2f}" if plan else f"{'n/a':>10}{'n/a':>9}")]
    for stage, recipe in ((2, "disco_lora_h100x8"), (3, "disco_lora_zero3_multinode")):
        for ranks in ranks_list:
            b = per_rank_bytes(stage, ranks, base, lora, largest)
            states = (b["lora"] + b["frozen"]) / unit
            peak = f"{plan[0] - plan[1] + states:>9.2f}" if plan else f"{'n/a':>9}"
            lines.append(f"{recipe:<28}{stage:>5}{ranks:>6}{gb(b['all trained']):>10}{gb(b['lora']):>10}"
                         f"{gb(b['frozen'])}{states:>10.2f}{peak}")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse(argv if argv is not None else sys.argv[1:])
    cfg = common.recipe_config(args.config, [f"lora.rank={args.rank}", f"lora.alpha={float(args.rank)}"]
                               if args.rank else [])
    base, lora, largest = parameter_counts(cfg)
    print(common.header(f"bench_zero.py --config {args.config} ({common.CONFIGS[args.config]['recipe']})", "cpu"))
    unit = "GB per rank (1e9 B)" if args.config != "tiny" else "kB per rank (1e3 B)"
    print(f"  {base:,} frozen base parameters, {lora:,} LoRA parameters (rank {cfg.lora.rank}), largest layer "
          f"{largest:,}; {unit}. DS: DeepSpeed's estimate for the whole model as if all of it were "
          f"trained, and for the LoRA alone; + base: the frozen bf16 base; peak: projected from the measured plan")
    print(table(args.config, args.ranks, base, lora, largest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
