"""Token interleaving (paper Fig. 4): which condition token comes from the degraded video and which from the
auxiliary modality (sketch or pose)."""

from __future__ import annotations

import torch


def interleave_tokens(video_tokens: torch.Tensor, aux_tokens: torch.Tensor, ratio: tuple[int, int]) -> torch.Tensor:
    """Token interleaving (paper Fig. 4) on aligned [B, N, C] token sets.

    With ratio a:b the condition token at position i comes from the degraded video when i mod (a+b) < a and from
    the auxiliary modality otherwise; the result has the same N and keeps every token at its own position, so
    its RoPE coordinates are those of the target token it aligns with.
    """
    if video_tokens.shape != aux_tokens.shape:
        raise ValueError(f"interleave needs aligned token sets, got {tuple(video_tokens.shape)} "
                         f"and {tuple(aux_tokens.shape)}")
    a, b = ratio
    if a < 1 or b < 1:
        raise ValueError(f"ratio must be positive integers a:b, got {ratio}")
    take_video = interleave_mask(video_tokens.shape[1], ratio, video_tokens.device)
    return torch.where(take_video[None, :, None], video_tokens, aux_tokens)


def interleave_mask(num_tokens: int, ratio: tuple[int, int], device=None) -> torch.Tensor:
    """[N] bool: True where the interleaved condition token comes from the degraded video."""
    a, b = ratio
    return (torch.arange(num_tokens, device=device) % (a + b)) < a
