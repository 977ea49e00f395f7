"""Closed-form synthetic test frames, the inputs of the conformance fixtures (YCbCr 4:4:4 in [0,1])."""

import torch


def make_frame(H: int, W: int, t: int, offset: float = 0.0) -> torch.Tensor:
    """(1,3,H,W) float64 frame: moving square and disc, a bump, stripes and a texture.

    Sums are evaluated left to right in float64, as the spec prescribes, so the result is
    bitwise the stored fixture input.
    """
    i = torch.arange(H, dtype=torch.int64).view(H, 1).expand(H, W)
    j = torch.arange(W, dtype=torch.int64).view(1, W).expand(H, W)
    u = (j.double() + 0.5) / W
    v = (i.double() + 0.5) / H
    s = max(4, min(H, W) // 4)
    r0, c0 = H // 4, W // 5 + 2 * t
    sq = ((i >= r0) & (i < r0 + s) & (j >= c0) & (j < c0 + s)).double()
    cy, cx = H - H // 3, W // 2 + W // 8 - 3 * t
    R2 = (min(H, W) // 5) ** 2
    d2 = (i - cy) ** 2 + (j - cx) ** 2
    disc = (d2 < R2).double()
    bump = torch.clamp(1 - d2.double() / R2, min=0.0) ** 2
    stripes = (torch.remainder(i + j + t, 8) < 4).double()
    tex = torch.remainder(7 * i + 13 * j + 5 * t, 17).double() / 17
    Y = 0.10 + 0.40 * v + 0.15 * u + 0.20 * sq + 0.25 * bump + 0.06 * stripes + 0.04 * tex + offset
    Cb = 0.50 + 0.25 * (u - 0.5) + 0.10 * disc - 0.05 * sq
    Cr = 0.50 - 0.20 * (v - 0.5) + 0.12 * sq - 0.03 * stripes
    return torch.clamp(torch.stack([Y, Cb, Cr]), 0.0, 1.0)[None]
