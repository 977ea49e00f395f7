"""BT.709 full-range RGB <-> YCbCr 4:4:4, as DCVC-RT's `src/utils/transforms.py`.

Y = 0.2126 R + 0.7152 G + 0.0722 B; Cb = (B - Y) / 1.8556 + 0.5; Cr = (R - Y) / 1.5748 + 0.5
(1 / 1.8556 = 0.5389, 1 / 1.5748 = 0.6350, the rounded factors the official code uses).
Channel axis is -3 (works for CHW and NCHW).
"""

import numpy as np
import torch

KR, KG, KB = 0.2126, 0.7152, 0.0722


def rgb_to_ycbcr(rgb: torch.Tensor, clamp: bool = True) -> torch.Tensor:
    r, g, b = rgb.chunk(3, -3)
    y = KR * r + KG * g + KB * b
    cb = (b - y) * 0.5389 + 0.5
    cr = (r - y) * 0.6350 + 0.5
    out = torch.cat((y, cb, cr), dim=-3)
    return out.clamp(0.0, 1.0) if clamp else out


def ycbcr_to_rgb(ycbcr: torch.Tensor, clamp: bool = True) -> torch.Tensor:
    y, cb, cr = ycbcr.chunk(3, -3)
    cb, cr = cb - 0.5, cr - 0.5
    r = y + 1.5748 * cr
    b = y + 1.8556 * cb
    g = (y - KR * r - KB * b) / KG
    out = torch.cat((r, g, b), dim=-3)
    return out.clamp(0.0, 1.0) if clamp else out


def uint8_frames_to_ycbcr(frames, dtype=torch.float32, device="cpu") -> torch.Tensor:
    """(T,H,W,3) or (H,W,3) uint8 RGB -> (T,3,H,W) YCbCr in [0,1]."""
    arr = frames.cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if arr.dtype != np.uint8:
        raise TypeError(f"frames must be uint8 RGB, got dtype {arr.dtype}")
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.shape[0] == 0:
        raise ValueError(f"frames must have shape (T,H,W,3) or (H,W,3) with T >= 1, got {arr.shape}")
    rgb = torch.from_numpy(np.ascontiguousarray(arr)).to(device=device).permute(0, 3, 1, 2)
    return rgb_to_ycbcr(rgb.to(dtype) / 255.0)


def ycbcr_to_uint8_frames(ycbcr: torch.Tensor) -> np.ndarray:
    """(T,3,H,W) YCbCr in [0,1] -> (T,H,W,3) uint8 RGB (rounded to nearest)."""
    rgb = ycbcr_to_rgb(ycbcr.float())
    return torch.round(rgb * 255.0).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
