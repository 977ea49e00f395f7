"""LPIPS (Zhang et al. 2018, v0.1) and DISTS (Ding et al. 2020) on plain-torch VGG16/AlexNet backbones.

Both re-implement the reference code (richzhang/PerceptualSimilarity ``lpips/lpips.py``,
dingkeyan93/DISTS ``DISTS_pytorch/DISTS_pt.py``) and load its weight files unchanged:

* LPIPS state dict = backbone ``net.features.*`` (torchvision keys under ``net.``) + heads
  ``lin{k}.model.1.weight`` of shape (1, C_k, 1, 1); the ".1" is there because a Dropout precedes the 1x1
  conv in the reference ``NetLinLayer``. The v0.1 head files hold exactly these 5 tensors.
* DISTS weights.pt = {"alpha", "beta"}, each (1, 1475, 1, 1) with 1475 = 3+64+128+256+512+512.

Inputs to ``forward`` are float RGB in [0, 1], shape (N, 3, H, W); outputs are one distance per image (N,),
0 for identical images, higher = more different.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .backbones import build_backbone, run_taps
from .weights import WEIGHT_FILES, load_strict, load_weights

# Layer indices inside torchvision ``features`` whose outputs LPIPS uses: the ReLU closing each reference
# slice (alex [0:2],[2:5],[5:8],[8:10],[10:12]; vgg [0:4],[4:9],[9:16],[16:23],[23:30]).
_LPIPS_TAPS = {"alex": (1, 4, 7, 9, 11), "vgg": (3, 8, 15, 22, 29)}
_LPIPS_CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
_BACKBONE = {"alex": "alexnet", "vgg": "vgg16"}


class LPIPS(nn.Module):
    def __init__(self, net: str = "alex") -> None:
        super().__init__()
        if net not in _LPIPS_TAPS:
            raise ValueError(f"LPIPS net must be 'alex' or 'vgg', got {net!r}")
        self.net_type = net
        self.net = build_backbone(_BACKBONE[net], None)
        for k, c in enumerate(_LPIPS_CHANNELS[net]):
            self.add_module(f"lin{k}", nn.Module())
            getattr(self, f"lin{k}").model = nn.Sequential(nn.Dropout(), nn.Conv2d(c, 1, 1, bias=False))
        # ScalingLayer of the reference; non-persistent so the state dict has only the standard keys.
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)
        self.eval().requires_grad_(False)

    def layer_maps(self, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        """The 5 per-layer distance maps (N, 1, h_k, w_k) whose spatial means sum to LPIPS (FloLPIPS reweights them)."""
        taps = _LPIPS_TAPS[self.net_type]
        # [0,1] -> [-1,1] (the reference's normalize=True), then the v0.1 scaling layer
        fx, fy = ((run_taps(self.net.features, ((2 * v - 1) - self.shift) / self.scale, taps)) for v in (x, y))
        return [getattr(self, f"lin{k}").model((_unit_normalize(a) - _unit_normalize(b)) ** 2)
                for k, (a, b) in enumerate(zip(fx, fy))]

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return sum(m.mean(dim=(2, 3)) for m in self.layer_maps(x, y)).flatten()


def _unit_normalize(t: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    # same eps placement as lpips.normalize_tensor: x / (||x||_2 over channels + eps)
    return t / (torch.sqrt(torch.sum(t ** 2, dim=1, keepdim=True)) + eps)


class L2Pool(nn.Module):
    """DISTS' L2pooling: sqrt(Hanning-3x3-blur(x^2)) with stride 2, replacing VGG's max-pools."""

    def __init__(self) -> None:
        super().__init__()
        a = np.hanning(5)[1:-1]
        g = torch.tensor(a[:, None] * a[None, :], dtype=torch.float32)
        self.register_buffer("filter", (g / g.sum())[None, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.filter.expand(x.shape[1], 1, 3, 3)
        return (F.conv2d(x ** 2, w, stride=2, padding=1, groups=x.shape[1]) + 1e-12).sqrt()


class DISTS(nn.Module):
    CHANNELS = (3, 64, 128, 256, 512, 512)
    TAPS = (3, 8, 15, 22, 29)  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
    POOLS = (4, 9, 16, 23)

    def __init__(self) -> None:
        super().__init__()
        self.vgg = build_backbone("vgg16", None)
        self.alpha = nn.Parameter(torch.full((1, sum(self.CHANNELS), 1, 1), 0.1))
        self.beta = nn.Parameter(torch.full((1, sum(self.CHANNELS), 1, 1), 0.1))
        self.l2pool = L2Pool()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)
        self.eval().requires_grad_(False)

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        # stage 0 is the raw [0,1] image (not ImageNet-normalised), as in the reference forward_once
        h = (x - self.mean) / self.std
        return [x] + run_taps(self.vgg.features, h, self.TAPS, {i: self.l2pool for i in self.POOLS})

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        c1 = c2 = 1e-6
        w_sum = self.alpha.sum() + self.beta.sum()
        alphas = torch.split(self.alpha / w_sum, self.CHANNELS, dim=1)
        betas = torch.split(self.beta / w_sum, self.CHANNELS, dim=1)
        dist1 = dist2 = 0
        for a, b, fa, fb in zip(alphas, betas, self._features(x), self._features(y)):
            ma, mb = fa.mean([2, 3], keepdim=True), fb.mean([2, 3], keepdim=True)
            s1 = (2 * ma * mb + c1) / (ma ** 2 + mb ** 2 + c1)
            va, vb = ((fa - ma) ** 2).mean([2, 3], keepdim=True), ((fb - mb) ** 2).mean([2, 3], keepdim=True)
            cov = (fa * fb).mean([2, 3], keepdim=True) - ma * mb
            s2 = (2 * cov + c2) / (va + vb + c2)
            dist1 = dist1 + (a * s1).sum(1, keepdim=True)
            dist2 = dist2 + (b * s2).sum(1, keepdim=True)
        return (1 - (dist1 + dist2)).flatten()


def load_lpips(net: str, weights_dir: str | Path) -> LPIPS:
    """LPIPS-``net`` with torchvision backbone weights and the v0.1 linear heads from ``weights_dir``."""
    model = LPIPS(net)
    backbone_key, head_key = _BACKBONE[net], f"lpips_{net}"
    state = {f"net.{k}": v for k, v in load_weights(backbone_key, weights_dir).items() if k.startswith("features.")}
    state.update(load_weights(head_key, weights_dir))
    files = " + ".join(str(Path(weights_dir) / WEIGHT_FILES[k].relpath) for k in (backbone_key, head_key))
    load_strict(model, state, files)
    return model


def load_dists(weights_dir: str | Path) -> DISTS:
    """DISTS with torchvision VGG16 weights and the reference alpha/beta from ``weights_dir``."""
    model = DISTS()
    state = {f"vgg.{k}": v for k, v in load_weights("vgg16", weights_dir).items() if k.startswith("features.")}
    state.update(load_weights("dists", weights_dir))
    files = " + ".join(str(Path(weights_dir) / WEIGHT_FILES[k].relpath) for k in ("vgg16", "dists"))
    load_strict(model, state, files)
    return model


class TorchFrameMetric:
    """Adapts an (x, y) -> (N,) distance network to uint8 (T, H, W, 3) frame batches -> (T,) numpy."""

    def __init__(self, model: nn.Module, device: str = "cpu", batch_size: int = 4) -> None:
        self.model = model.to(device)
        self.device = torch.device(device)
        self.batch_size = batch_size

    def _tensor(self, frames: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
        return t.permute(0, 3, 1, 2).float().div_(255.0)

    @torch.inference_mode()
    def __call__(self, ref: np.ndarray, rec: np.ndarray) -> np.ndarray:
        out = [self.model(self._tensor(ref[i:i + self.batch_size]), self._tensor(rec[i:i + self.batch_size]))
               for i in range(0, ref.shape[0], self.batch_size)]
        return torch.cat(out).double().cpu().numpy()
