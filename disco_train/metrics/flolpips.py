"""FloLPIPS (Danier, Zhang & Bull, PCS 2022): LPIPS weighted by where the motion of the distorted video is wrong.

For each pair of consecutive frames t, t+1 (reference R, distorted D), as the authors' ``calc_flolpips``:

    flow_R = PWC(R_t, R_t+1),  flow_D = PWC(D_t, D_t+1),  e = |flow_R - flow_D|   (per-pixel magnitude)
    FloLPIPS_t = sum_k sum_xy  lpips_k(R_t, D_t)[x, y] * e_k[x, y] / sum_xy e_k

where lpips_k is LPIPS-alex (v0.1) layer k's distance map before spatial averaging and e_k the flow difference
resized (bilinear, align_corners=False) to that map's size *before* taking the magnitude. The weights of a layer
sum to 1, so FloLPIPS is LPIPS with the spatial mean replaced by a mean over the regions whose motion differs.
A video's score is the mean over its T - 1 pairs (so it needs at least 2 frames); lower is better, 0 for
identical videos. Where the two flows agree exactly everywhere (e.g. identical videos) the reference divides
0 by 0; there we use uniform weights, i.e. plain LPIPS for that pair.

The LPIPS part is the project's LPIPS-alex (``lpips/v0.1/alex.pth`` + the torchvision AlexNet, the files
FloLPIPS itself ships/loads); the flow is ``pwcnet.PWCNet`` (``pwcnet/network-default.pytorch``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .perceptual import LPIPS, load_lpips
from .pwcnet import PWCNet, load_pwcnet


def flow_weighted_mean(dist: torch.Tensor, flow_diff: torch.Tensor) -> torch.Tensor:
    """(N, 1, h, w) distance map, (N, 2, H, W) flow difference -> (N,) mean of the map weighted by |flow_diff|."""
    h, w = dist.shape[2:]
    f = F.interpolate(flow_diff, size=(h, w), mode="bilinear", align_corners=False)
    mag = torch.sqrt(f[:, 0:1] ** 2 + f[:, 1:2] ** 2)
    total = mag.sum(dim=(1, 2, 3), keepdim=True)
    weight = torch.where(total > 0, mag / total.clamp_min(torch.finfo(mag.dtype).tiny), 1.0 / (h * w))
    return (dist * weight).sum(dim=(1, 2, 3))


class FloLPIPS(nn.Module):
    def __init__(self, lpips: LPIPS, flow: PWCNet) -> None:
        super().__init__()
        if lpips.net_type != "alex":
            raise ValueError("FloLPIPS is defined on LPIPS-alex")
        self.lpips, self.flow = lpips, flow
        self.eval().requires_grad_(False)

    def forward(self, ref0: torch.Tensor, ref1: torch.Tensor, dis0: torch.Tensor, dis1: torch.Tensor) -> torch.Tensor:
        """Frames t and t+1 of both videos, (N, 3, H, W) RGB in [0, 1] -> FloLPIPS of frame t, (N,)."""
        n = ref0.shape[0]
        flows = self.flow(torch.cat([ref0, dis0]), torch.cat([ref1, dis1]))  # one batch for both videos
        diff = flows[:n] - flows[n:]
        return sum(flow_weighted_mean(m, diff) for m in self.lpips.layer_maps(ref0, dis0))


def load_flolpips(weights_dir: str | Path) -> FloLPIPS:
    return FloLPIPS(load_lpips("alex", weights_dir), load_pwcnet(weights_dir))


class FloLPIPSVideo:
    """Per-video FloLPIPS over a video streamed in chunks: the last frame of a chunk pairs with the next one's first.

    ``reset()`` before each video, ``add(ref, rec)`` per chunk of uint8 (n, H, W, 3) frames, ``mean()`` at the end.
    """

    def __init__(self, model: FloLPIPS, device: str = "cpu", batch_size: int = 4) -> None:
        self.model = model.to(device)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.reset()

    @classmethod
    def from_weights(cls, weights_dir: str | Path, device: str = "cpu", batch_size: int = 4) -> "FloLPIPSVideo":
        return cls(load_flolpips(weights_dir), device, batch_size)

    def reset(self) -> None:
        self._prev: tuple[np.ndarray, np.ndarray] | None = None
        self._sum, self._pairs = 0.0, 0

    def _tensor(self, frames: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
        return t.permute(0, 3, 1, 2).float().div_(255.0)

    @torch.inference_mode()
    def add(self, ref: np.ndarray, rec: np.ndarray) -> np.ndarray:
        """Feed the next frames; returns the FloLPIPS of each pair completed by them."""
        if self._prev is not None:
            ref, rec = np.concatenate([self._prev[0], ref]), np.concatenate([self._prev[1], rec])
        self._prev = ref[-1:], rec[-1:]
        scores = []
        for i in range(0, ref.shape[0] - 1, self.batch_size):
            j = min(i + self.batch_size, ref.shape[0] - 1)
            r, d = self._tensor(ref[i:j + 1]), self._tensor(rec[i:j + 1])
            scores.append(self.model(r[:-1], r[1:], d[:-1], d[1:]).double().cpu())
        out = torch.cat(scores).numpy() if scores else np.zeros(0)
        self._sum += float(out.sum())
        self._pairs += out.size
        return out

    def mean(self) -> float:
        if self._pairs == 0:
            raise ValueError("FloLPIPS needs videos of at least 2 frames (it scores consecutive frame pairs)")
        return self._sum / self._pairs
