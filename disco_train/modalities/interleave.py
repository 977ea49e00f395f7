"""Token interleaving (paper Fig. 4): which condition token comes from the degraded video and which from the
auxiliary modality (sketch or pose).

The a:b alternation runs over a unit of the frame-major (f, h, w) token order (`config.INTERLEAVE_UNITS`):
- 'token': token i is the video's when i mod (a+b) < a. On a 2×2 latent grid at 1:3 every latent frame holds one
  video token (its column 0 of row 0) and three auxiliary ones: both modalities describe every frame.
- 'latent_frame': all H·W tokens of latent frame f are the video's when f mod (a+b) < a. At 1:3 latent frames 0,
  4, 8, ... are the video's and 1-3, 5-7, ... the auxiliary modality's: each frame is described by one modality.
Latent frame 0 (and token 0) is always the video's, since a >= 1.
"""

from __future__ import annotations

import numpy as np
import torch

from disco_train.config.decoder import INTERLEAVE_UNITS


def interleave_tokens(video_tokens: torch.Tensor, aux_tokens: torch.Tensor, ratio: tuple[int, int],
                      unit: str = "token", frame_tokens: int = 1) -> torch.Tensor:
    """Token interleaving (paper Fig. 4) on aligned [B, N, C] token sets (`frame_tokens` = H·W per latent frame).

    The result has the same N and keeps every token at its own position, so its RoPE coordinates are those of
    the target token it aligns with.
    """
    if video_tokens.shape != aux_tokens.shape:
        raise ValueError(f"interleave needs aligned token sets, got {tuple(video_tokens.shape)} "
                         f"and {tuple(aux_tokens.shape)}")
    a, b = ratio
    if a < 1 or b < 1:
        raise ValueError(f"ratio must be positive integers a:b, got {ratio}")
    take_video = interleave_mask(video_tokens.shape[1], ratio, video_tokens.device, unit, frame_tokens)
    return torch.where(take_video[None, :, None], video_tokens, aux_tokens)


def interleave_mask(num_tokens: int, ratio: tuple[int, int], device=None, unit: str = "token",
                    frame_tokens: int = 1) -> torch.Tensor:
    """[N] bool: True where the interleaved condition token comes from the degraded video."""
    if unit not in INTERLEAVE_UNITS:
        raise ValueError(f"unknown interleave unit {unit!r}; choose {' or '.join(INTERLEAVE_UNITS)}")
    if unit == "latent_frame" and (frame_tokens < 1 or num_tokens % frame_tokens):
        raise ValueError(f"{num_tokens} tokens are not whole latent frames of {frame_tokens}")
    a, b = ratio
    index = torch.arange(num_tokens, device=device)
    if unit == "latent_frame":
        index = index // frame_tokens
    return (index % (a + b)) < a


def latent_ownership(grid: tuple[int, int, int], ratio: tuple[int, int], unit: str) -> np.ndarray:
    """bool [F, H, W] over a latent grid: True where the token is the video's (the same rule as `interleave_mask`,
    which the decoder applies, so a sender that keeps what this says keeps what the decoder reads)."""
    f, h, w = grid
    return interleave_mask(f * h * w, ratio, unit=unit, frame_tokens=h * w).numpy().reshape(f, h, w)
