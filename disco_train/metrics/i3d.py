"""I3D (Carreira & Zisserman 2017, Inception-v1 inflated) for FVD, in plain torch.nn.

Layout and numerics follow the PyTorch port used for FVD by VideoGPT/TATS (``pytorch_i3d.py``, from
piergiaj/pytorch-i3d), so ``i3d_pretrained_400.pt`` (Kinetics-400, converted from
tfhub.dev/deepmind/i3d-kinetics-400/1) loads key for key: 57 conv+BN units ``<unit>.conv3d.weight`` and
``<unit>.bn.{weight,bias,running_mean,running_var}`` plus ``logits.conv3d.{weight,bias}`` = 287 tensors.
Unit names: Conv3d_1a_7x7, Conv3d_2b_1x1, Conv3d_2c_3x3 and, for each Mixed_{3b,3c,4b..4f,5b,5c},
branches b0, b1a, b1b, b2a, b2b, b3b.

FVD features are the 400 logits (before softmax) averaged over time, for frames whose short side is scaled to 224
and centre-cropped to 224x224, in [-1, 1] (``preprocess_clips``: VideoGPT's and StyleGAN-V's geometry, TATS
``fvd.py``'s scaling). StyleGAN-V's FVD uses a TorchScript export of the TF
model instead; numbers from the two are close but not interchangeable (the port uses BN eps 1e-5, TF 1e-3).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .weights import WEIGHT_FILES, load_strict, load_weights

# Mixed block: (input channels, [b0, b1a, b1b, b2a, b2b, b3b] output channels), in network order.
_MIXED = {
    "Mixed_3b": (192, [64, 96, 128, 16, 32, 32]),
    "Mixed_3c": (256, [128, 128, 192, 32, 96, 64]),
    "Mixed_4b": (480, [192, 96, 208, 16, 48, 64]),
    "Mixed_4c": (512, [160, 112, 224, 24, 64, 64]),
    "Mixed_4d": (512, [128, 128, 256, 24, 64, 64]),
    "Mixed_4e": (512, [112, 144, 288, 32, 64, 64]),
    "Mixed_4f": (528, [256, 160, 320, 32, 128, 128]),
    "Mixed_5b": (832, [256, 160, 320, 32, 128, 128]),
    "Mixed_5c": (832, [384, 192, 384, 48, 128, 128]),
}
# max-pools inserted before these blocks: (kernel, stride), TF "SAME" padding
_POOL_BEFORE = {"Mixed_3b": ((1, 3, 3), (1, 2, 2)), "Mixed_4b": ((3, 3, 3), (2, 2, 2)),
                "Mixed_5b": ((2, 2, 2), (2, 2, 2))}


def _same_pad(x: torch.Tensor, kernel, stride) -> torch.Tensor:
    """TF 'SAME' padding (extra pixel at the end), computed from the input size like the reference port."""
    pads = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride)):
        total = max(k - s, 0) if size % s == 0 else max(k - size % s, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


def _max_pool_same(x: torch.Tensor, kernel, stride) -> torch.Tensor:
    return F.max_pool3d(_same_pad(x, kernel, stride), kernel, stride)


class Unit3D(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel=(1, 1, 1), stride=(1, 1, 1), bn_relu: bool = True) -> None:
        super().__init__()
        self.kernel, self.stride, self.bn_relu = tuple(kernel), tuple(stride), bn_relu
        self.conv3d = nn.Conv3d(c_in, c_out, self.kernel, self.stride, padding=0, bias=not bn_relu)
        if bn_relu:
            self.bn = nn.BatchNorm3d(c_out, eps=1e-5, momentum=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(_same_pad(x, self.kernel, self.stride))
        return F.relu(self.bn(x)) if self.bn_relu else x


class InceptionModule(nn.Module):
    def __init__(self, c_in: int, c: list[int]) -> None:
        super().__init__()
        self.b0 = Unit3D(c_in, c[0])
        self.b1a = Unit3D(c_in, c[1])
        self.b1b = Unit3D(c[1], c[2], kernel=(3, 3, 3))
        self.b2a = Unit3D(c_in, c[3])
        self.b2b = Unit3D(c[3], c[4], kernel=(3, 3, 3))
        self.b3b = Unit3D(c_in, c[5])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.b3b(_max_pool_same(x, (3, 3, 3), (1, 1, 1)))
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), b3], dim=1)


class InceptionI3d(nn.Module):
    """Input (B, 3, T, 224, 224) in [-1, 1], T >= 9 (the final 2x7x7 average pool needs 2 time steps).

    Output (B, num_classes) logits averaged over the remaining time steps.
    """

    def __init__(self, num_classes: int = 400) -> None:
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, kernel=(7, 7, 7), stride=(2, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, kernel=(3, 3, 3))
        for name, (c_in, c) in _MIXED.items():
            self.add_module(name, InceptionModule(c_in, c))
        self.logits = Unit3D(1024, num_classes, bn_relu=False)
        self.eval().requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[1] != 3:
            raise ValueError(f"I3D expects (B, 3, T, H, W), got {tuple(x.shape)}")
        x = self.Conv3d_1a_7x7(x)
        x = _max_pool_same(x, (1, 3, 3), (1, 2, 2))
        x = self.Conv3d_2c_3x3(self.Conv3d_2b_1x1(x))
        for name in _MIXED:
            if name in _POOL_BEFORE:
                x = _max_pool_same(x, *_POOL_BEFORE[name])
            x = getattr(self, name)(x)
        if x.shape[2] < 2 or min(x.shape[3:]) < 7:
            raise ValueError(f"I3D input too small: needs >= 9 frames of 224x224 (final features {tuple(x.shape)})")
        x = F.avg_pool3d(x, kernel_size=(2, 7, 7), stride=1)
        return self.logits(x).squeeze(4).squeeze(3).mean(dim=2)


def preprocess_clips(clips: torch.Tensor, size: int = 224) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) -> float (B, 3, T, size, size) in [-1, 1], as VideoGPT's ``preprocess``: each frame's
    short side scaled to `size` (long side ceil(long * size / short); bilinear, align_corners=False, no
    antialiasing), then the centre size x size crop, so any aspect ratio keeps its geometry."""
    if clips.ndim != 5 or clips.shape[-1] != 3:
        raise ValueError(f"clips must be (B, T, H, W, 3), got {tuple(clips.shape)}")
    b, t, h, w = clips.shape[:4]
    frames = clips.reshape(b * t, h, w, 3).permute(0, 3, 1, 2).float()
    scale = size / min(h, w)
    target = (size, math.ceil(w * scale)) if h < w else (math.ceil(h * scale), size)
    frames = F.interpolate(frames, size=target, mode="bilinear", align_corners=False)
    top, left = (target[0] - size) // 2, (target[1] - size) // 2
    frames = frames[:, :, top:top + size, left:left + size]
    return (2.0 * frames / 255.0 - 1.0).reshape(b, t, 3, size, size).transpose(1, 2).contiguous()


def load_i3d(weights_dir: str | Path) -> InceptionI3d:
    model = InceptionI3d(400)
    load_strict(model, load_weights("i3d", weights_dir), str(Path(weights_dir) / WEIGHT_FILES["i3d"].relpath))
    return model
