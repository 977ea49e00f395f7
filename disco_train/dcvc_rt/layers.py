"""Building blocks of DCVC-RT (pure PyTorch).

Module and parameter names mirror the official `src/layers/layers.py` exactly, because the
official checkpoints are loaded strictly by key name. `nn.Sequential` indices are part of the
key names (e.g. `dc.3.weight`), so parameter-free activations keep their slot in the Sequential.
"""

import torch
from torch import nn


class WSiLU(nn.Module):
    """x * sigmoid(4x): a sharper SiLU used throughout DCVC-RT."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(4.0 * x) * x


class WSiLUChunkAdd(nn.Module):
    """WSiLU, then add the two channel halves (C -> C/2)."""

    def __init__(self):
        super().__init__()
        self.silu = WSiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.silu(x).chunk(2, 1)
        return x1 + x2


class SubpelConv2x(nn.Module):
    """Conv to 4*out channels followed by PixelShuffle(2): a learned 2x upsampler."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, padding: int = 0):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_ch, out_ch * 4, kernel_size=kernel_size, padding=padding),
            nn.PixelShuffle(2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class DepthConvBlock(nn.Module):
    """DCVC-RT "DCB": optional 1x1 adaptor, depthwise residual branch, gated FFN residual branch.

    Keys: `adaptor` (only if in_ch != out_ch or force_adaptor), `dc.{0,2,3}`, `ffn.{0,2}`.
    """

    def __init__(self, in_ch: int, out_ch: int, shortcut: bool = False, force_adaptor: bool = False):
        super().__init__()
        self.adaptor = None
        if in_ch != out_ch or force_adaptor:
            self.adaptor = nn.Conv2d(in_ch, out_ch, 1)
        self.shortcut = shortcut
        self.dc = nn.Sequential(
            nn.Conv2d(out_ch, out_ch, 1),
            WSiLU(),
            nn.Conv2d(out_ch, out_ch, 3, padding=1, groups=out_ch),
            nn.Conv2d(out_ch, out_ch, 1),
        )
        self.ffn = nn.Sequential(
            nn.Conv2d(out_ch, out_ch * 4, 1),
            WSiLUChunkAdd(),
            nn.Conv2d(out_ch * 2, out_ch, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.adaptor is not None:
            x = self.adaptor(x)
        out = self.dc(x) + x
        out = self.ffn(out) + out
        if self.shortcut:
            out = out + x
        return out


class ResidualBlockWithStride2(nn.Module):
    """2x2 stride-2 conv followed by a shortcut DCB (halves the resolution)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.down = nn.Conv2d(in_ch, out_ch, 2, stride=2)
        self.conv = DepthConvBlock(out_ch, out_ch, shortcut=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.down(x))


class ResidualBlockUpsample(nn.Module):
    """1x1 sub-pixel 2x upsampling followed by a shortcut DCB (doubles the resolution)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.up = SubpelConv2x(in_ch, out_ch, 1)
        self.conv = DepthConvBlock(out_ch, out_ch, shortcut=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.up(x))
