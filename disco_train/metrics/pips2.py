"""PIPs++ (Zheng et al. 2023, aharley/pips2 ``nets/pips2.py``) point tracker in plain torch, for FVMD.

The state dict matches the ``model_state_dict`` of FVMD's ``pips2_weights.pth`` key for key (FVMD loads it strictly
into this same definition; the pips2 reference model is saved from it too): ``fnet.*`` (a stride-8 CNN encoder),
``delta_block.*`` (a 1-D temporal ResNet that predicts coordinate updates) and ``norm.{weight,bias}`` (a GroupNorm
that the checkpoint carries although the forward pass never uses it). Every other norm is a parameter-free
InstanceNorm.

Tracking a segment (``track``): the query points start at their first-frame position in every frame; each of
``iters`` iterations samples, around each point's current position in every frame, a 7x7 window of a 4-level
correlation pyramid (levels at 1, 1/2, 1/4, 1/8 of the feature map) between the frame's features and three
templates (the point's first-frame feature, and its features 2 and 4 frames earlier at the current estimate),
and feeds those 3 * 4 * 49 = 588 costs plus a sin/cos embedding of the current frame-to-frame motion to the
delta block; the first frame stays fixed. Updates of the iterations after the first 3/4 (``it > 3 * iters // 4``,
``beautify``) are halved, as FVMD runs it.

Images are (N, 3, H, W) floats in [0, 255]; H and W must be multiples of 8 and at least 128, so that the
coarsest correlation level (1/64 of the image) is at least 2x2 (its bilinear lookup divides by W - 1).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .weights import WEIGHT_FILES, load_strict, load_weights

STRIDE = 8
LATENT = 128
CORR_LEVELS = 4
CORR_RADIUS = 3
# delta block input: 3 templates x 4 levels x 7x7 costs + 128-d motion embedding + the 2-d motion itself = 718
DELTA_IN = 3 * CORR_LEVELS * (2 * CORR_RADIUS + 1) ** 2 + LATENT + 2
MIN_SIZE = STRIDE * 2 ** (CORR_LEVELS - 1) * 2  # 128


class ResBlock2d(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.downsample = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride), nn.InstanceNorm2d(c_out))
                           if stride != 1 else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(F.instance_norm(self.conv1(x)))
        y = F.relu(F.instance_norm(self.conv2(y)))
        return F.relu((x if self.downsample is None else self.downsample(x)) + y)


class Encoder(nn.Module):
    """conv 7x7/2 -> 4 stages of two residual blocks (64, 96, 128, 128 channels at 1/2 .. 1/16) -> all four
    resized to 1/8 and concatenated (416) -> conv 3x3 to 256 -> conv 1x1 to 128."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3)
        c_in = 64
        for i, (c, s) in enumerate(((64, 1), (96, 2), (128, 2), (128, 2)), start=1):
            self.add_module(f"layer{i}", nn.Sequential(ResBlock2d(c_in, c, s), ResBlock2d(c, c, 1)))
            c_in = c
        self.conv2 = nn.Conv2d(64 + 96 + 128 + 128, 2 * LATENT, 3, padding=1)
        self.conv3 = nn.Conv2d(2 * LATENT, LATENT, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = (x.shape[2] // STRIDE, x.shape[3] // STRIDE)
        x = F.relu(F.instance_norm(self.conv1(x)))
        outs = []
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
            outs.append(F.interpolate(x, size=size, mode="bilinear", align_corners=True))
        return self.conv3(F.relu(F.instance_norm(self.conv2(torch.cat(outs, dim=1)))))


class Conv1d(nn.Module):
    """Kernel-3 'same' conv over time; a wrapper only so the keys read ``...conv.weight`` as published."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class ResBlock1d(nn.Module):
    def __init__(self, c_in: int, c_out: int, first: bool) -> None:
        super().__init__()
        self.c_in, self.c_out, self.first = c_in, c_out, first
        self.conv1 = Conv1d(c_in, c_out)
        self.conv2 = Conv1d(c_out, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.first else F.relu(F.instance_norm(x))
        out = self.conv2(F.relu(F.instance_norm(self.conv1(out))))
        if self.c_out != self.c_in:  # identity zero-padded on the channel axis, the extra half in front
            front = (self.c_out - self.c_in) // 2
            x = F.pad(x, (0, 0, front, self.c_out - self.c_in - front))
        return out + x


def block_channels() -> list[tuple[int, int]]:
    """(in, out) of the 8 residual blocks: width 128 doubling at blocks 2, 4 and 6 -> 1024."""
    chans, c = [], 128
    for i in range(8):
        out = 2 * c if i > 0 and i % 2 == 0 else c
        chans.append((c, out))
        c = out
    return chans


def motion_embedding(flow: torch.Tensor, dim: int = LATENT, temperature: float = 10000.0) -> torch.Tensor:
    """(B, S, 2) -> (B, S, dim + 2): [sin(x w), cos(x w), sin(y w), cos(y w), x, y], w_k = T^(-k / (dim/4 - 1))."""
    omega = 1.0 / temperature ** (torch.arange(dim // 4, device=flow.device, dtype=flow.dtype) / (dim // 4 - 1))
    x, y = flow[..., :1] * omega, flow[..., 1:] * omega
    return torch.cat([x.sin(), x.cos(), y.sin(), y.cos(), flow], dim=-1)


class DeltaBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first_block_conv = Conv1d(DELTA_IN, 128)
        self.basicblock_list = nn.ModuleList(ResBlock1d(i, o, first=k == 0)
                                             for k, (i, o) in enumerate(block_channels()))
        self.dense = nn.Linear(block_channels()[-1][1], 2)

    def forward(self, costs: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        """costs (P, S, 588), flow (P, S, 2) -> coordinate updates (P, S, 2), P = batch x points."""
        x = F.relu(self.first_block_conv(torch.cat([costs, motion_embedding(flow)], dim=2).transpose(1, 2)))
        for block in self.basicblock_list:
            x = block(x)
        return self.dense(F.relu(x).transpose(1, 2))


def sample_features(fmap: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """Bilinear features (B, N, C) at pixel positions xy (B, N, 2) of fmap (B, C, H, W), clamped at the border.

    Equals the reference's explicit 4-neighbour interpolation with clipped indices: grid_sample with pixel
    centres at integers (align_corners=True) and border padding.
    """
    h, w = fmap.shape[2:]
    grid = torch.stack([2 * xy[..., 0] / (w - 1) - 1, 2 * xy[..., 1] / (h - 1) - 1], dim=-1)
    out = F.grid_sample(fmap, grid[:, :, None], mode="bilinear", padding_mode="border", align_corners=True)
    return out[..., 0].transpose(1, 2)


class CostPyramid:
    """The 4-level feature pyramid of a segment, correlated with per-frame templates and sampled in windows."""

    def __init__(self, fmaps: torch.Tensor) -> None:
        b, s, c, h, w = fmaps.shape
        self.levels = [fmaps]
        for _ in range(CORR_LEVELS - 1):
            fmaps = F.avg_pool2d(fmaps.reshape(b * s, c, *fmaps.shape[3:]), 2, stride=2)
            fmaps = fmaps.reshape(b, s, c, *fmaps.shape[2:])
            self.levels.append(fmaps)
        r = CORR_RADIUS
        offsets = torch.linspace(-r, r, 2 * r + 1, device=fmaps.device)
        # The window's row index steps x and its column index steps y: the reference adds a (dy, dx) meshgrid
        # to (x, y) positions, and the delta block was trained on costs flattened in that order.
        self.window = torch.stack(torch.broadcast_tensors(offsets[:, None], offsets[None, :]), dim=-1)

    def costs(self, templates: torch.Tensor) -> list[torch.Tensor]:
        """templates (B, S, N, C) -> per level (B, S, N, h_l, w_l) dot products / sqrt(C)."""
        b, s, n, c = templates.shape
        return [torch.matmul(templates, f.flatten(3)).reshape(b, s, n, *f.shape[3:]) / c ** 0.5 for f in self.levels]

    def sample(self, costs: list[torch.Tensor], coords: torch.Tensor) -> torch.Tensor:
        """7x7 windows of every level around coords (B, S, N, 2) in level-0 cells -> (B, S, N, 4 * 49)."""
        b, s, n, _ = coords.shape
        out = []
        for level, cost in enumerate(costs):
            h, w = cost.shape[3:]
            xy = coords.reshape(b * s * n, 1, 1, 2) / 2 ** level + self.window
            grid = torch.stack([2 * xy[..., 0] / (w - 1) - 1, 2 * xy[..., 1] / (h - 1) - 1], dim=-1)
            win = F.grid_sample(cost.reshape(b * s * n, 1, h, w), grid, mode="bilinear", padding_mode="zeros",
                                align_corners=True)
            out.append(win.reshape(b, s, n, -1))
        return torch.cat(out, dim=-1)


class PIPs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fnet = Encoder()
        self.delta_block = DeltaBlock()
        self.norm = nn.GroupNorm(1, LATENT)  # in the checkpoint, unused by the forward pass
        self.eval().requires_grad_(False)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 255] -> (N, 128, H/8, W/8); frames are independent, so segments can share them."""
        h, w = images.shape[2:]
        if h % STRIDE or w % STRIDE or min(h, w) < MIN_SIZE:
            raise ValueError(f"PIPs++ needs frames of at least {MIN_SIZE}x{MIN_SIZE} with sides divisible by "
                             f"{STRIDE}, got {w}x{h}")
        return self.fnet(2 * (images / 255.0) - 1.0)

    def track(self, fmaps: torch.Tensor, queries: torch.Tensor, iters: int = 16, beautify: bool = True) -> torch.Tensor:
        """fmaps (B, S, C, h, w) of S consecutive frames, queries (B, N, 2) pixel (x, y) in frame 0 -> (B, S, N, 2)."""
        b, s = fmaps.shape[:2]
        n = queries.shape[1]
        coords = (queries / STRIDE)[:, None].repeat(1, s, 1, 1)
        start = coords[:, 0].clone()
        pyramid = CostPyramid(fmaps)
        template = sample_features(fmaps[:, 0], start)
        costs1 = pyramid.costs(template[:, None].expand(b, s, n, LATENT))
        feats2 = feats4 = template[:, None].expand(b, s, n, LATENT)
        for it in range(iters):
            if it >= 1:
                feats2, feats4 = (self._templates(fmaps, coords, lag) for lag in (2, 4))
            sampled = [pyramid.sample(c, coords) for c in (costs1, pyramid.costs(feats2), pyramid.costs(feats4))]
            costs = torch.cat(sampled, dim=-1).transpose(1, 2).reshape(b * n, s, -1)
            motion = (coords[:, 1:] - coords[:, :-1]).transpose(1, 2).reshape(b * n, s - 1, 2)
            motion = torch.cat([motion, motion[:, -1:]], dim=1)  # the last frame repeats the last motion
            delta = self.delta_block(costs, motion)
            if beautify and it > 3 * iters // 4:
                delta = delta * 0.5
            coords = coords + delta.reshape(b, n, s, 2).transpose(1, 2)
            coords[:, 0] = start
        return coords * STRIDE

    @staticmethod
    def _templates(fmaps: torch.Tensor, coords: torch.Tensor, lag: int) -> torch.Tensor:
        """Features at each frame's position ``lag`` frames earlier (frame 0 for the first ``lag`` frames)."""
        b, s, c, h, w = fmaps.shape
        idx = (torch.arange(s, device=fmaps.device) - lag).clamp(min=0)
        feats = sample_features(fmaps[:, idx].reshape(b * s, c, h, w), coords[:, idx].reshape(b * s, -1, 2))
        return feats.reshape(b, s, -1, c)


def load_pips(weights_dir: str | Path) -> PIPs:
    model = PIPs()
    load_strict(model, load_weights("pips2", weights_dir), str(Path(weights_dir) / WEIGHT_FILES["pips2"].relpath))
    return model
