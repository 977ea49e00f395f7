"""The LTX-Video VAE's geometry: the one home of the 32× spatial / 8× temporal factors.

A pixel clip of 8k+1 frames and sides multiple of 32 maps to a latent grid of k+1 frames (frame 0 alone, then 8
frames per latent frame: causal in time) and sides /32. Training clips must have this shape; the sender pads any
other video up to it and the receiver crops back.
"""

from __future__ import annotations

SPATIAL = 32
"""Pixels per latent row/column."""
TEMPORAL = 8
"""Pixel frames per latent frame after the first."""


def latent_grid(frames: int, height: int, width: int) -> tuple[int, int, int]:
    """Pixel clip size -> latent grid. 57×512×512 -> (8, 16, 16): 2048 tokens."""
    return (frames - 1) // TEMPORAL + 1, height // SPATIAL, width // SPATIAL


def coded_size(frames: int, height: int, width: int) -> tuple[int, int, int]:
    """The smallest size the decoder can generate that covers a video: 8k+1 frames, sides multiples of 32.
    70×50×20 (h×w×t) -> 96×64×25."""
    up = lambda n, m: -(-n // m) * m  # noqa: E731
    return up(frames - 1, TEMPORAL) + 1, up(height, SPATIAL), up(width, SPATIAL)


def compact_size(height: int, width: int, ds: int) -> tuple[int, int]:
    """Pixel size of a compact reference (`condition.reference=compact`): the degraded video's own size, padded up
    to the VAE's multiples of 32. 512×512 at D_s = 4 -> 128×128 (4×4 latent cells); 64×64 at 4 -> 32×32."""
    if height % ds or width % ds:
        raise ValueError(f"{height}×{width} is not divisible by ds={ds}")
    up = lambda n: -(-n // SPATIAL) * SPATIAL  # noqa: E731
    return up(height // ds), up(width // ds)
