"""Speed levers of the transformer step, chosen in `model.*`: which blocks recompute in backward, the attention
kernel, regional compilation. `bench/bench_train.py` and `bench/bench_memory.py` measure what each one buys.

Why per-block checkpointing: with LTX-Video 13B at 4096 tokens a block that keeps its activations for backward
holds ≈ 1.2 GB more than one that recomputes them. All 48 keeping them peak at ≈ 97 GB, over an 80 GB card; all
48 recomputing peak at ≈ 41 GB but add 48 block forwards (111 TFLOP, a third of the step's work). Recomputing
only some blocks spends the memory there is (`python bench/bench_memory.py` measures and prints the plan).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.checkpoint import checkpoint

ATTENTION = {"default": None, "flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
             "cudnn": SDPBackend.CUDNN_ATTENTION, "math": SDPBackend.MATH}
"""`model.attention`: the scaled-dot-product kernel PyTorch tries first ('default': PyTorch's own choice)."""


def attention_context(name: str):
    """A context in which SDPA prefers kernel `name`. The cross-attention carries the T5 padding mask, which the
    flash kernel cannot take, so the memory-efficient kernel and then math stay allowed as fallbacks; the
    self-attention over all video tokens (the cost) gets the chosen one."""
    if name not in ATTENTION:
        raise ValueError(f"model.attention={name!r}: choose one of {', '.join(ATTENTION)}")
    if ATTENTION[name] is None:
        return contextlib.nullcontext()
    order = list(dict.fromkeys([ATTENTION[name], SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]))
    return sdpa_kernel(order, set_priority=True)


def checkpointed_blocks(num_blocks: int, blocks: int) -> range:
    """Indices of the blocks that recompute: the first `blocks` (-1: all). The first ones, because backward
    reaches them last: by the time they recompute, every later block has freed its activations, so the
    recompute's own working set never adds to the stored activations' peak."""
    if blocks < -1:
        raise ValueError(f"model.checkpoint_blocks={blocks}: use -1 (all blocks) or a count >= 0")
    return range(num_blocks if blocks == -1 else min(blocks, num_blocks))


def configure_checkpointing(transformer: torch.nn.Module, enabled: bool, blocks: int = -1,
                            attention: str = "default") -> int:
    """Enable diffusers' gradient checkpointing for the chosen blocks only; returns how many recompute.

    The recompute runs during backward, outside the forward's `attention_context`: it gets the same context
    again (checkpoint's `context_fn`), else it could pick another SDPA kernel than the forward it repeats."""
    if not enabled:
        transformer.disable_gradient_checkpointing()
        return 0
    all_blocks = transformer.transformer_blocks
    chosen = {id(all_blocks[i]) for i in checkpointed_blocks(len(all_blocks), blocks)}

    def contexts():  # (forward, recompute)
        return attention_context(attention), attention_context(attention)

    def run_block(block: Callable, *args):
        if id(block) not in chosen:
            return block(*args)
        return checkpoint(block.__call__, *args, use_reentrant=False, context_fn=contexts)

    transformer.enable_gradient_checkpointing(gradient_checkpointing_func=run_block)
    return len(chosen)


def compile_blocks(transformer: torch.nn.Module) -> None:
    """Regional compilation (diffusers' `compile_repeated_blocks`): `torch.compile` each transformer block, all
    sharing one compiled graph, not the whole model: it compiles once per block shape instead of tracing 48
    blocks, and the peft/diffusers glue around the blocks stays eager."""
    transformer.compile_repeated_blocks()


def merge_lora(transformer: torch.nn.Module) -> None:
    """Fold the trained adapter into the frozen weights for inference, W ← W + (α/r)·B·A (diffusers'
    `fuse_lora` over peft's layers). The forward then has no rank-r branch: for 13B at rank 256 that is
    5.0 of 112.4 TFLOP per call (bench/flops.py) and 16 small matmuls per block, ×100 calls per clip at
    50 steps with guidance. In bf16 the folded weight is rounded once (relative 2⁻⁹), like any bf16 weight."""
    transformer.fuse_lora()
