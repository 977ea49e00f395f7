"""PWC-Net (Sun et al. 2018) optical flow in plain torch: the network FloLPIPS uses, with its weight layout.

FloLPIPS runs sniklaus/pytorch-pwc's PyTorch port of the official Caffe model ``pwc_net.caffemodel``; its
converted file ``network-default.pytorch`` loads here key for key, unchanged (126 tensors, 9,374,274 parameters).
The file's keys carry the port's old ``module`` prefix (``moduleExtractor.moduleOne.0.weight``), so the
submodules below are named that way and no key is renamed.

* Extractor: 6 levels, each 3 convs 3x3 (the first with stride 2) + LeakyReLU(0.1); 16, 32, 64, 96, 128, 196
  channels; a level's convs are ``module<Level>.{0,2,4}``.
* Decoders at levels 6..2 (1/64 .. 1/4 resolution): a 9x9 cost volume (81 channels), then 5 densely connected
  convs (128, 128, 96, 64, 32 outputs, each input = everything before it) and a conv to 2 flow channels.
  Below level 6 the decoder also takes the first frame's features, the upsampled flow and the upsampled
  features (transposed convs ``moduleUpflow``/``moduleUpfeat``) and correlates against the second frame
  warped by the upsampled flow.
* Refiner: 7 dilated convs (dilations 1, 2, 4, 8, 16, 1, 1) on the level-2 features, added to the flow.

The correlation layer (a CUDA kernel upstream) is written with padding and shifts: output channel
``(dy + 4) * 9 + (dx + 4)`` is ``mean_c f1[c, y, x] * f2[c, y + dy, x + dx]``, zero outside the image.
Inputs are RGB in [0, 1], (N, 3, H, W) with the same size; the output flow (N, 2, H, W) is in pixels,
channel 0 = x. FloLPIPS feeds RGB frames to this BGR-trained Caffe model; we do the same so scores match.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .weights import WEIGHT_FILES, load_strict, load_weights

_LEVELS = ("One", "Two", "Thr", "Fou", "Fiv", "Six")
_EXTRACTOR_CHANNELS = (16, 32, 64, 96, 128, 196)
_DENSE = (128, 128, 96, 64, 32)  # the densely connected convs of a decoder; they add sum(_DENSE) = 448 channels
_COST = 81  # 9x9 displacements of the correlation (max displacement 4)
# decoder input channels: cost volume + first-frame features at that level + upsampled flow (2) + upsampled feature (2)
_DECODER_IN = {6: _COST, 5: _COST + 128 + 4, 4: _COST + 96 + 4, 3: _COST + 64 + 4, 2: _COST + 32 + 4}
# Flow is predicted in units of 20 full-resolution pixels; at level l one pixel is 2**l full-resolution pixels,
# so warping at level l multiplies the upsampled flow by 20 / 2**l (0.625 at level 5 ... 5.0 at level 2).
_FLOW_SCALE = 20.0
_REFINER = ((128, 1), (128, 2), (128, 4), (96, 8), (64, 16), (32, 1), (2, 1))  # (out channels, dilation)


def _lrelu() -> nn.Module:
    return nn.LeakyReLU(negative_slope=0.1, inplace=False)


def correlation(first: torch.Tensor, second: torch.Tensor, radius: int = 4) -> torch.Tensor:
    """Cost volume (N, (2r+1)^2, H, W): channel-mean products with every shift of ``second`` up to ``radius``."""
    h, w = first.shape[2:]
    padded = F.pad(second, (radius, radius, radius, radius))
    side = 2 * radius + 1
    out = [(first * padded[:, :, dy:dy + h, dx:dx + w]).mean(dim=1) for dy in range(side) for dx in range(side)]
    return torch.stack(out, dim=1)


def backwarp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``image`` at x + flow (pixels, bilinear); pixels whose footprint leaves the image become 0.

    Same grid as FloLPIPS' copy of the port: pixel centres at -1 + 1/W .. 1 - 1/W with align_corners=False,
    the flow scaled by 2 / (W - 1) (H likewise), and a sample counts as inside only if a ones-channel warped
    with it stays above 0.999.
    """
    n, _, h, w = flow.shape
    gx = torch.linspace(-1.0 + 1.0 / w, 1.0 - 1.0 / w, w, device=flow.device, dtype=flow.dtype)
    gy = torch.linspace(-1.0 + 1.0 / h, 1.0 - 1.0 / h, h, device=flow.device, dtype=flow.dtype)
    grid_x = gx.view(1, 1, w) + flow[:, 0] / ((image.shape[3] - 1.0) / 2.0)
    grid_y = gy.view(1, h, 1) + flow[:, 1] / ((image.shape[2] - 1.0) / 2.0)
    with_ones = torch.cat([image, image.new_ones(n, 1, h, w)], dim=1)
    out = F.grid_sample(with_ones, torch.stack([grid_x, grid_y], dim=-1), mode="bilinear",
                        padding_mode="zeros", align_corners=False)
    return out[:, :-1] * (out[:, -1:] > 0.999).to(out.dtype)


class Extractor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        c_in = 3
        for name, c in zip(_LEVELS, _EXTRACTOR_CHANNELS):
            self.add_module(f"module{name}", nn.Sequential(
                nn.Conv2d(c_in, c, 3, stride=2, padding=1), _lrelu(),
                nn.Conv2d(c, c, 3, padding=1), _lrelu(),
                nn.Conv2d(c, c, 3, padding=1), _lrelu()))
            c_in = c

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for name in _LEVELS:
            x = getattr(self, f"module{name}")(x)
            feats.append(x)
        return feats  # level l (1..6) at index l - 1, resolution 1 / 2**l


class Decoder(nn.Module):
    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level
        c_in = _DECODER_IN[level]
        if level < 6:
            c_prev = _DECODER_IN[level + 1] + sum(_DENSE)
            self.moduleUpflow = nn.ConvTranspose2d(2, 2, 4, stride=2, padding=1)
            self.moduleUpfeat = nn.ConvTranspose2d(c_prev, 2, 4, stride=2, padding=1)
        for name, c_out in zip(_LEVELS, _DENSE):
            self.add_module(f"module{name}", nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), _lrelu()))
            c_in += c_out
        self.moduleSix = nn.Sequential(nn.Conv2d(c_in, 2, 3, padding=1))

    def forward(self, first: torch.Tensor, second: torch.Tensor,
                previous: tuple[torch.Tensor, torch.Tensor] | None) -> tuple[torch.Tensor, torch.Tensor]:
        if previous is None:
            feat = F.leaky_relu(correlation(first, second), 0.1)
        else:
            flow = self.moduleUpflow(previous[0])
            up = self.moduleUpfeat(previous[1])
            warped = backwarp(second, flow * (_FLOW_SCALE / 2 ** self.level))
            feat = torch.cat([F.leaky_relu(correlation(first, warped), 0.1), first, flow, up], dim=1)
        for name in _LEVELS[:5]:
            feat = torch.cat([getattr(self, f"module{name}")(feat), feat], dim=1)
        return self.moduleSix(feat), feat


class Refiner(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = _DECODER_IN[2] + sum(_DENSE)  # 565
        for i, (c_out, dilation) in enumerate(_REFINER):
            layers.append(nn.Conv2d(c_in, c_out, 3, padding=dilation, dilation=dilation))
            if i < len(_REFINER) - 1:
                layers.append(_lrelu())
            c_in = c_out
        self.moduleMain = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.moduleMain(x)


class PWCNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.moduleExtractor = Extractor()
        for level in (2, 3, 4, 5, 6):
            self.add_module(f"module{_LEVELS[level - 1]}", Decoder(level))
        self.moduleRefiner = Refiner()
        self.eval().requires_grad_(False)

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        if first.shape != second.shape or first.ndim != 4 or first.shape[1] != 3:
            raise ValueError(f"PWC-Net needs two (N, 3, H, W) batches of one size, got {tuple(first.shape)} "
                             f"and {tuple(second.shape)}")
        h, w = first.shape[2:]
        # the 6-level pyramid halves the size 6 times: resize to multiples of 2**6 = 64, undo it on the flow
        hp, wp = 64 * math.ceil(h / 64), 64 * math.ceil(w / 64)
        a, b = (F.interpolate(t, size=(hp, wp), mode="bilinear", align_corners=False) for t in (first, second))
        fa, fb = self.moduleExtractor(a), self.moduleExtractor(b)
        estimate = None
        for level in (6, 5, 4, 3, 2):
            estimate = getattr(self, f"module{_LEVELS[level - 1]}")(fa[level - 1], fb[level - 1], estimate)
        flow = estimate[0] + self.moduleRefiner(estimate[1])
        flow = _FLOW_SCALE * F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False)
        return torch.stack([flow[:, 0] * (w / wp), flow[:, 1] * (h / hp)], dim=1)


def load_pwcnet(weights_dir: str | Path) -> PWCNet:
    model = PWCNet()
    load_strict(model, load_weights("pwcnet", weights_dir), str(Path(weights_dir) / WEIGHT_FILES["pwcnet"].relpath))
    return model
