"""Optimizer and LR schedule from an `OptimConfig`, shared by every task's LightningModule."""

from __future__ import annotations

import math

import torch


def lr_factor(step: int, warmup: int, total: int, schedule: str, min_ratio: float) -> float:
    """Multiplier of the peak LR at optimizer step `step`: linear warm-up, then cosine / linear / constant decay
    to `min_ratio` at step `total`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    decay = {"cosine": 0.5 * (1 + math.cos(math.pi * progress)), "linear": 1 - progress, "constant": 1.0}[schedule]
    return min_ratio + (1 - min_ratio) * decay


def configure_adamw(params, oc, total_steps: int) -> dict:
    """AdamW over `params` with a per-step LambdaLR, in the form Lightning's `configure_optimizers` returns."""
    optimizer = torch.optim.AdamW(params, lr=oc.lr, betas=tuple(oc.betas), weight_decay=oc.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, oc.warmup_steps, total_steps, oc.schedule, oc.min_lr_ratio))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
