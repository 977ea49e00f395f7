"""Sampling the DiSCo decoder: Euler integration of the learned velocity with classifier-free guidance.

The schedule comes from `flow.sampling_sigmas`, which uses the same token-count shift as the training σ sampler,
and the model call is the module's `denoise` (the training code path), so training and inference cannot drift
apart in token layout, RoPE coordinates or timestep scaling.
"""

from __future__ import annotations

from typing import Callable

import torch

from disco_train.config.decoder import SHIFT_TOKENS, SHIFT_VALUES
from disco_train.decoder import flow

Denoise = Callable[..., torch.Tensor]


@torch.no_grad()
def sample_tokens(denoise: Denoise, cond: torch.Tensor, copies: int, coords: torch.Tensor, text: torch.Tensor,
                  text_mask: torch.Tensor, negative: tuple[torch.Tensor, torch.Tensor] | None, num_target: int,
                  channels: int, steps: int = 50, guidance: float = 3.0, shift_tokens=SHIFT_TOKENS,
                  shift_values=SHIFT_VALUES, generator: torch.Generator | list[torch.Generator] | None = None,
                  schedule: str = "shifted", cond_coords: torch.Tensor | None = None) -> torch.Tensor:
    """Integrate from noise (σ=1) to data (σ=0); returns clean target tokens [B, N, C].

    With guidance g ≠ 1 and a negative prompt, v = v_neg + g·(v_text − v_neg); both branches run as one
    batch of 2B. `generator` may be one per sample: then each sample's noise is its own generator's, whatever
    else shares the batch (only the starting noise is random; the Euler steps are deterministic).
    `schedule`: `flow.SCHEDULES` (a distilled list fixes `steps`); `cond_coords`: a compact reference's positions.
    """
    b = cond.shape[0]
    if isinstance(generator, (list, tuple)):
        if len(generator) != b:
            raise ValueError(f"{len(generator)} generators for a batch of {b}")
        x = torch.cat([torch.randn(1, num_target, channels, generator=g, device=cond.device, dtype=torch.float32)
                       for g in generator])
    else:
        x = torch.randn(b, num_target, channels, generator=generator, device=cond.device, dtype=torch.float32)
    sigmas = flow.schedule_sigmas(schedule, steps, num_target, shift_tokens, shift_values).tolist()
    guided = negative is not None and guidance != 1.0
    if guided:
        neg_text, neg_mask = (t.expand(b, *t.shape[1:]) for t in negative)
        text2, mask2 = torch.cat([neg_text.to(text), text]), torch.cat([neg_mask.to(text_mask), text_mask])
        cond2, coords2 = torch.cat([cond, cond]), torch.cat([coords, coords])
        cond_coords2 = None if cond_coords is None else torch.cat([cond_coords, cond_coords])
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        s = torch.full((b,), sigma, device=cond.device)
        if guided:
            v_neg, v_pos = denoise(torch.cat([x, x]), cond2, copies, coords2, torch.cat([s, s]), text2,
                                   mask2, cond_coords=cond_coords2).float().chunk(2)
            velocity = v_neg + guidance * (v_pos - v_neg)
        else:
            velocity = denoise(x, cond, copies, coords, s, text, text_mask, cond_coords=cond_coords).float()
        x = flow.euler_step(x, velocity, sigma, sigma_next)
    return x
