"""In-context conditioning for LTX-Video, as pure tensor functions (paper §3.2; the in-context LoRA layout).

Sequence layout: [condition tokens ‖ target tokens]. Condition tokens are clean latents with timestep 0 and the
RoPE coordinates of the target token they align with; target tokens carry x_t and σ·1000. Attention is full and
bidirectional, so token order only matters for the slicing done here (loss on the last N tokens).
"""

from __future__ import annotations

import torch

from disco_train.config.geometry import SPATIAL, TEMPORAL
from disco_train.decoder.flow import TIMESTEP_SCALE
from disco_train.modalities.interleave import interleave_tokens


ROPE_CONVENTION = {
    "coordinates": "video_coords passed to LTXVideoTransformer3DModel: (seconds, pixels, pixels) per token",
    "time": "max(0, 8*f - 7) / fps for latent frame f (frame 0 stands alone: the VAE is causal in time)",
    "space": "32 * row and 32 * column of the latent grid, in pixels",
    "fps": "the clip's own frame rate (a .disco header carries it); a decoder that assumes 25 or 30 shifts "
           "every latent frame after the first by up to 7/fps",
    "condition_tokens": "prepended to the target tokens, timestep 0, the coordinates of the target token each "
                        "aligns with",
    "compact_reference": "condition.reference=compact: the degraded video VAE-encoded at its coded size / D_s "
                         "(padded to multiples of 32), forward-filled to the target's frames; its token (f, i, j) "
                         "has the target's time and space 32*D_s*i + 16*(D_s-1): the centre of the D_s x D_s block "
                         "of target tokens it covers (LTX-2's convention: its IC-LoRA scales [start, end) patch "
                         "bounds by reference_downscale_factor and its RoPE takes their midpoint)",
}
"""How the decoder places tokens in time and space: recorded in every export so external decoders can match it."""


def pack(latents: torch.Tensor) -> torch.Tensor:
    """[B, C, F, H, W] -> [B, F·H·W, C] (patch size 1: one token per latent voxel, frame-major)."""
    b, c = latents.shape[:2]
    return latents.permute(0, 2, 3, 4, 1).reshape(b, -1, c)


def unpack(tokens: torch.Tensor, frames: int, height: int, width: int) -> torch.Tensor:
    """[B, F·H·W, C] -> [B, C, F, H, W]."""
    b, n, c = tokens.shape
    if n != frames * height * width:
        raise ValueError(f"{n} tokens do not form a {frames}×{height}×{width} latent grid")
    return tokens.reshape(b, frames, height, width, c).permute(0, 4, 1, 2, 3)


def latent_coords(frames: int, height: int, width: int, fps: float | torch.Tensor, batch: int,
                  device=None) -> torch.Tensor:
    """RoPE coordinates [B, 3, F·H·W] in the units LTX-Video expects (seconds, pixels, pixels).

    Latent frame f covers pixel frames up to 8f (frame 0 alone, causal VAE), so its time is max(0, 8f+1-8)/fps —
    the convention of diffusers' LTXConditionPipeline, used for training AND sampling here so they agree.
    """
    f = torch.arange(frames, device=device, dtype=torch.float32)
    h = torch.arange(height, device=device, dtype=torch.float32)
    w = torch.arange(width, device=device, dtype=torch.float32)
    grid = torch.stack(torch.meshgrid(f, h, w, indexing="ij"), 0).flatten(1)  # [3, N]
    t = (grid[0] * TEMPORAL + 1 - TEMPORAL).clamp_min(0)
    fps = torch.as_tensor(fps, dtype=torch.float32, device=device).reshape(-1, 1).expand(batch, 1)
    coords = torch.stack([t.expand(batch, -1) / fps,
                          (grid[1] * SPATIAL).expand(batch, -1),
                          (grid[2] * SPATIAL).expand(batch, -1)], dim=1)
    return coords


def reference_coords(frames: int, height: int, width: int, fps: float | torch.Tensor, batch: int, ds: int,
                     device=None) -> torch.Tensor:
    """RoPE coordinates [B, 3, F·h·w] of a compact reference's latent grid on the target's grid (block centre).

    LTX-2 (diffusers `LTX2ICLoraPipeline._encode_reference_conditions`, Lightricks ltx-trainer's
    `reference_downscale_factor`) multiplies a reference patch's pixel bounds [32i, 32i+32) by D_s and its RoPE
    uses the midpoint: 32·D_s·i + 16·D_s, the centre of the D_s×D_s target cells the token covers. LTX-Video's
    coordinates are the cell's corner (32j for target cell j, whose centre is 32j + 16), so the same place is
    32·D_s·i + 16·(D_s − 1) here. D_s = 1 gives the target's own coordinates. Time is the target's: the reference
    is forward-filled to the target's frame count, so latent frame f of both covers the same pixel frames.
    """
    coords = latent_coords(frames, height, width, fps, batch, device)
    coords[:, 1:] = coords[:, 1:] * ds + SPATIAL * (ds - 1) / 2
    return coords


def condition_tokens(video: torch.Tensor, aux: torch.Tensor | None, mode: str, ratio: tuple[int, int],
                     unit: str = "token", frame_tokens: int = 1) -> tuple[torch.Tensor, int]:
    """Condition tokens for a mode and how many target-grid copies they span (1, or 2 for 'concat').
    `unit` and `frame_tokens` (H·W of the latent grid) say what 'interleave' alternates (`modalities.interleave`)."""
    if mode == "video_only":
        return video, 1
    if aux is None:
        raise ValueError(f"condition mode {mode!r} needs auxiliary tokens")
    if mode == "interleave":
        return interleave_tokens(video, aux, ratio, unit, frame_tokens), 1
    if mode == "concat":
        return torch.cat([video, aux], dim=1), 2
    raise ValueError(f"unknown condition mode {mode!r}")


def assemble(noisy: torch.Tensor, cond: torch.Tensor, copies: int, coords: torch.Tensor,
             sigmas: torch.Tensor, cond_coords: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Join condition and noisy target tokens. Returns (tokens, coords, per-token timesteps).

    Condition copy k reuses the target coordinates, so condition token i and target token i share a position;
    `cond_coords` (a compact reference, `reference_coords`) gives the condition tokens their own instead.
    """
    b, n, _ = noisy.shape
    if cond_coords is None:
        if cond.shape[1] != copies * n:
            raise ValueError(f"{cond.shape[1]} condition tokens for {n} target tokens × {copies}")
        cond_coords = torch.cat([coords] * copies, dim=2)
    elif cond_coords.shape[2] != cond.shape[1]:
        raise ValueError(f"{cond.shape[1]} condition tokens with {cond_coords.shape[2]} coordinates")
    tokens = torch.cat([cond.to(noisy.dtype), noisy], dim=1)
    all_coords = torch.cat([cond_coords, coords], dim=2)
    target_t = (sigmas.float() * TIMESTEP_SCALE).reshape(b, 1).expand(b, n)
    timesteps = torch.cat([torch.zeros(b, cond.shape[1], device=noisy.device), target_t.to(noisy.device)], dim=1)
    return tokens, all_coords, timesteps


def target_slice(pred: torch.Tensor, num_target: int) -> torch.Tensor:
    """The model output at the target tokens (the last `num_target`): the only tokens the loss sees."""
    return pred[:, -num_target:]
