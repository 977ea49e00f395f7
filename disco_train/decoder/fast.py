"""Decode-time speed settings, all through diffusers' own hooks (none is re-implemented here): step caches
(`transformer.enable_cache`), fp8 weight storage (`enable_layerwise_casting`), regional compilation
(`compile_repeated_blocks`) and VAE tiling (`vae.enable_tiling`). `bench/bench_decode.py` measures what each buys;
BENCHMARKS.md §4b says how far each moves the output.

Caches skip transformer blocks on steps whose first-block residual (FirstBlockCache) or accumulated magnitude
ratio (MagCache) barely changes, so they change the output; fp8 storage rounds every weight to 3 mantissa bits.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import torch

from disco_train.decoder import speed

CACHES = ("none", "first_block", "mag")
"""`cache=` kinds: 'first_block:<threshold>' (diffusers FirstBlockCacheConfig), 'mag:<threshold>:<ratios.json>'
(MagCacheConfig with the model's calibrated magnitude ratios, a JSON list) or 'mag:calibrate' (no skipping;
diffusers logs the ratios of this model and schedule at the end of the run)."""


def cache_config(spec: str, steps: int):
    """A diffusers cache config for `cache=<spec>`, or None for 'none'. ValueError naming what is wrong."""
    from diffusers.hooks import FirstBlockCacheConfig, MagCacheConfig

    kind, _, rest = spec.partition(":")
    if kind == "none" and not rest:
        return None
    if kind == "first_block":
        return FirstBlockCacheConfig(threshold=_threshold(spec, rest or "0.05"))
    if kind == "mag" and rest == "calibrate":
        return MagCacheConfig(calibrate=True, num_inference_steps=steps)
    if kind == "mag":
        threshold, _, ratios = rest.partition(":")
        if not ratios:
            raise ValueError(f"cache={spec}: MagCache needs this model's magnitude ratios, mag:<threshold>:<file.json> "
                             f"(a JSON list; get it with cache=mag:calibrate: diffusers ships none for LTX-Video)")
        values = json.loads(Path(ratios).read_text())
        return MagCacheConfig(threshold=_threshold(spec, threshold), mag_ratios=values, num_inference_steps=steps)
    raise ValueError(f"cache={spec}: unsupported; choose none, first_block:<threshold> or mag:<threshold>:<ratios.json>"
                     f" / mag:calibrate (diffusers' caches that run on LTX-Video's transformer blocks)")


def _threshold(spec: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"cache={spec}: the threshold {text!r} is not a number") from None
    if value <= 0:
        raise ValueError(f"cache={spec}: the threshold must be > 0")
    return value


def check(cache: str, dtype: str) -> None:
    """ValueError for a cache or dtype setting `apply` would refuse (before anything is decoded or built)."""
    if dtype not in ("", "fp8"):
        raise ValueError(f"dtype={dtype!r}: '' (model.dtype) or fp8")
    cache_config(cache, 1)


def apply(transformer: torch.nn.Module, cache: str = "none", dtype: str = "", compile: bool = False,
          steps: int = 50) -> None:
    """Register the chosen hooks on a built (LoRA already merged) transformer. `dtype='fp8'`: weights stored in
    float8_e4m3fn and cast per layer to the transformer's dtype to compute; diffusers' default skip list keeps
    norms, patch and position embeddings in their own dtype."""
    check(cache, dtype)
    if dtype == "fp8":
        transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=transformer.dtype)
    config = cache_config(cache, steps)
    if config is not None:
        transformer.enable_cache(config)
    if compile:
        speed.compile_blocks(transformer)


def cache_context(transformer: torch.nn.Module):
    """The context diffusers' caches key their state by (one name: guidance runs both branches as one batch, as
    LTX pipelines do with 'cond_uncond'); nothing without a cache."""
    if getattr(transformer, "is_cache_enabled", False):
        return transformer.cache_context("cond_uncond")
    return contextlib.nullcontext()


def reset(transformer: torch.nn.Module) -> None:
    """Forget the previous clip's cached residuals before sampling the next one."""
    if getattr(transformer, "is_cache_enabled", False):
        transformer._reset_stateful_cache()


def configure_vae(vae: torch.nn.Module, height: int, width: int, threshold: int) -> None:
    """Tile the VAE when a side of the clip exceeds `threshold` pixels (0: never): diffusers' own tiling bounds
    the decoder's memory at large sizes (1440×768 and up) and blends tile seams."""
    if threshold and max(height, width) > threshold:
        vae.enable_tiling()
    else:
        vae.disable_tiling()
