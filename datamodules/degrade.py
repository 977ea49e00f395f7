"""Frame-level operations of the sender and receiver: resize/crop to the clip size, spatiotemporal degradation
and its inverse (upsampling + temporal filling). Pure numpy/torch; no I/O."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from disco_train.modalities import forward_fill, kept_frame_indices


def _resize(frames: np.ndarray, height: int, width: int, antialias: bool = True) -> np.ndarray:
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    y = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=antialias)
    return y.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def resize_center_crop(frames: np.ndarray, height: int, width: int) -> tuple[np.ndarray, bool]:
    """Scale so the frame covers height×width (short side first), then centre-crop.

    Videos smaller than the target are scaled UP the same way (bilinear) and flagged, so users can filter them:
    the returned bool says whether any side was enlarged.
    """
    h, w = frames.shape[1:3]
    scale = max(height / h, width / w)
    new_h, new_w = max(height, round(h * scale)), max(width, round(w * scale))
    resized = _resize(frames, new_h, new_w) if (new_h, new_w) != (h, w) else frames
    top, left = (new_h - height) // 2, (new_w - width) // 2
    return resized[:, top:top + height, left:left + width], scale > 1.0


def degrade(frames: np.ndarray, ds: int, dt: int) -> np.ndarray:
    """Keep 1 of every D_t frames (starting at 0) and bilinearly downsample by D_s (paper §3.1)."""
    h, w = frames.shape[1:3]
    if h % ds or w % ds:
        raise ValueError(f"frame size {h}×{w} is not divisible by ds={ds}")
    kept = frames[kept_frame_indices(len(frames), dt)]
    return _resize(kept, h // ds, w // ds) if ds > 1 else kept


def restore(degraded: np.ndarray, height: int, width: int, dt: int, frames: int, fill: str = "forward") -> np.ndarray:
    """Receiver side: bilinear upsampling to height×width, then temporal filling to `frames` frames."""
    up = _resize(degraded, height, width, antialias=False) if degraded.shape[1:3] != (height, width) else degraded
    return forward_fill(up, dt, fill, num_frames=frames)
