"""FVMD, the Fréchet Video Motion Distance (Liu et al. 2024): Fréchet distance between motion histograms.

Definition (defaults = the published sampling and protocol, ``FVMDSettings``):

1. Segments: every video is cut into windows of ``clip_len`` = 16 consecutive frames starting every
   ``window_stride`` = 1 frames (a video of T >= clip_len frames gives (T - clip_len) // stride + 1 windows,
   shorter videos none); frames are resized to ``size`` x ``size`` = 256 x 256 (bilinear, antialiased, as the
   authors' frame-folder loader does, aspect ratio not kept) and rounded to 8-bit values.
2. Tracks: PIPs++ (``pips2.PIPs``, ``iters`` = 16 refinements) follows ``points`` = 400 query points laid on a
   20 x 20 grid over the first frame of the window, x_i = 8 + i / 19 * (W - 16) (y likewise): tracks Y (F, N, 2).
3. Velocity V_t = Y_t - Y_t-1 with V_0 = 0; acceleration A_t = V_t - V_t-1 for t >= 2, A_0 = A_1 = 0
   (the paper's; the default ``package`` protocol takes A_t = Y_t - Y_t-1 instead, see below).
4. Histograms: V and A, each (F, 20, 20, 2), are cut into cubes of 4 frames x 5 x 5 grid points (16 x 20 x 20
   -> 4 x 4 x 4 = 64 cubes); a cube's histogram has 8 direction bins, bin = floor((atan2(v_x, v_y) + pi) / (pi / 4))
   (an angle of exactly pi joins bin 7),
   and each vector adds its quantised log-magnitude ceil(log2(1 + min(|v|, 255))) / 8 (0 for no motion, 1/8
   up to 1 px, ..., 1 above 127 px). A window's feature is [hist(V), hist(A)] flattened: 2 x 64 x 8 = 1024 values.
5. FVMD = Fréchet distance between Gaussians fitted to the reference windows' and the reconstruction
   windows' features, over the whole set (like FVD). Lower is better.

Protocols (``protocol``). The default, ``package``, is what the authors' pip package fvmd 1.0.0 computes and so
what papers report; values match its ``calc_hist`` + ``calculate_fd_given_vectors`` on the same tracks to
round-off (tests/test_metrics_fvmd.py transcribes both). It differs from the paper's definition in two places:

* Its tracking script hands the *tracks* to its acceleration function (whose docstring asks for the velocity),
  so the "acceleration" histograms are of Y_t - Y_t-1 (= V_t) from t = 2 on, frames 0 and 1 zero.
* Its Fréchet distance adds 1e-5 to the diagonal of both covariances inside the matrix square root only, so
  identical sets score -2 * 1e-5 * D (-0.02 for D = 1024) and a score can be slightly negative.

``protocol="definition"`` follows the definition instead: acceleration A_t = V_t - V_t-1 (3), and the 1e-5
ridge on the covariances themselves, an exact Fréchet distance (symmetric, >= 0, 0 for identical sets). Its
numbers are not comparable with published ones: on the package's own tracks of one test set it gave 47.94 where
the package gives 33.86.

Minimum: each video contributes only if it has >= clip_len frames, and the set needs >= 2 windows (a covariance);
clip_len >= 4 (one cube in time), points a square number with side >= 5 (one cube in space), size >= 128.
"""

from __future__ import annotations

import math
from collections import deque
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from disco_train.config.metrics import FVMD_ANGLE_BINS as ANGLE_BINS
from disco_train.config.metrics import FVMD_CELL as CELL
from disco_train.config.metrics import FVMD_CUBE_FRAMES as CUBE_FRAMES
from disco_train.config.metrics import FVMDSettings

from .distribution import frechet_distance_from_stats, gaussian_stats
from .pips2 import PIPs, load_pips

MAX_MAGNITUDE = 255  # px; log2(1 + 255) = 8 magnitude levels
MARGIN = 8  # px between the query grid and the frame border
FRECHET_RIDGE = 1e-5


def query_grid(side: int, height: int, width: int) -> torch.Tensor:
    """(side * side, 2) pixel (x, y) positions, row-major (y outer): an even grid MARGIN px inside the frame."""
    t = torch.arange(side, dtype=torch.float32) / (side - 1)
    y, x = torch.meshgrid(MARGIN + t * (height - 2 * MARGIN), MARGIN + t * (width - 2 * MARGIN), indexing="ij")
    return torch.stack([x.flatten(), y.flatten()], dim=-1)


def velocity(tracks: np.ndarray) -> np.ndarray:
    """(F, N, 2) positions -> (F, N, 2) first differences, frame 0 zero."""
    return np.concatenate([np.zeros_like(tracks[:1]), np.diff(tracks, axis=0)])


def acceleration(vel: np.ndarray) -> np.ndarray:
    """(F, N, 2) velocities -> (F, N, 2) differences V_t - V_t-1 from t = 2 on, frames 0 and 1 zero."""
    return np.concatenate([np.zeros_like(vel[:2]), vel[2:] - vel[1:-1]])


def motion_histograms(vectors: np.ndarray) -> np.ndarray:
    """(F, N, 2) vectors on a sqrt(N) x sqrt(N) grid -> (F // 4, side // 5, side // 5, 8) cube histograms."""
    f, n, _ = vectors.shape
    side = math.isqrt(n)
    ms, mc = f // CUBE_FRAMES, side // CELL
    v = np.asarray(vectors, dtype=np.float64).reshape(f, side, side, 2)[:ms * CUBE_FRAMES, :mc * CELL, :mc * CELL]
    v = v.reshape(ms, CUBE_FRAMES, mc, CELL, mc, CELL, 2).transpose(0, 2, 4, 1, 3, 5, 6)
    v = v.reshape(ms, mc, mc, CUBE_FRAMES * CELL * CELL, 2)
    angle = np.arctan2(v[..., 0], v[..., 1])
    bins = np.clip((angle + np.pi) // (2 * np.pi / ANGLE_BINS), 0, ANGLE_BINS - 1).astype(np.int64)
    levels = math.log2(MAX_MAGNITUDE + 1)  # 8
    weight = np.ceil(np.clip(np.log2(np.clip(np.linalg.norm(v, axis=-1), 0, MAX_MAGNITUDE) + 1), 0, levels)) / levels
    return (np.eye(ANGLE_BINS)[bins] * weight[..., None]).sum(axis=-2)


def window_feature(tracks: np.ndarray, protocol: str = "package") -> np.ndarray:
    """(F, N, 2) tracks of one window -> its FVMD feature [hist(V), hist(A)] flattened."""
    vel = velocity(tracks)
    # the package's script differences the positions here, giving Y_t - Y_t-1 (= V_t) from t = 2 on
    acc = acceleration(tracks if protocol == "package" else vel)
    return np.concatenate([motion_histograms(vel).ravel(), motion_histograms(acc).ravel()])


def fvmd_distance(features_a: np.ndarray, features_b: np.ndarray, protocol: str = "package") -> float:
    """Fréchet distance between Gaussians of two (n, D) feature sets (n >= 2 each), with the 1e-5 ridge where
    `protocol` puts it: inside the matrix square root only (package) or on both covariances (definition)."""
    (mu_a, cov_a), (mu_b, cov_b) = gaussian_stats(features_a), gaussian_stats(features_b)
    if protocol == "package":
        return frechet_distance_from_stats(mu_a, cov_a, mu_b, cov_b, sqrt_ridge=FRECHET_RIDGE)
    ridge = FRECHET_RIDGE * np.eye(mu_a.shape[0])
    # an exact Fréchet distance is >= 0; the clamp only removes sqrtm round-off around 0
    return max(0.0, frechet_distance_from_stats(mu_a, cov_a + ridge, mu_b, cov_b + ridge))


def preprocess(frames: np.ndarray, size: int) -> torch.Tensor:
    """uint8 (n, H, W, 3) -> float (n, 3, size, size) in [0, 255], resized and re-quantised like a uint8 image."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x.round_().clamp_(0, 255)


class MotionStream:
    """One video streamed in chunks -> the FVMD feature of every window completed so far.

    Encoder features are per frame, so each frame is encoded once and shared by the clip_len windows that
    contain it; only the tracking runs per window.
    """

    def __init__(self, model: PIPs, settings: FVMDSettings, device: str = "cpu", batch_size: int = 16) -> None:
        self.model, self.settings, self.device, self.batch_size = model, settings, torch.device(device), batch_size
        s = settings
        self.queries = query_grid(s.grid_side, s.size, s.size).to(self.device)
        self.reset()

    def reset(self) -> None:
        self._fmaps: deque[torch.Tensor] = deque(maxlen=self.settings.clip_len)
        self._seen = 0

    @torch.inference_mode()
    def add(self, frames: np.ndarray) -> list[np.ndarray]:
        s = self.settings
        out = []
        for i in range(0, frames.shape[0], self.batch_size):
            fmaps = self.model.encode(preprocess(frames[i:i + self.batch_size], s.size).to(self.device))
            for fmap in fmaps:
                self._fmaps.append(fmap)
                self._seen += 1
                start = self._seen - s.clip_len
                if start >= 0 and start % s.window_stride == 0:
                    tracks = self.model.track(torch.stack(list(self._fmaps))[None], self.queries[None], s.iters)
                    out.append(window_feature(tracks[0].double().cpu().numpy(), s.protocol))
        return out


class FVMD:
    """Set-level FVMD: ``begin_video()``, ``add(ref, rec)`` per chunk of uint8 (n, H, W, 3) frames, ``score()``."""

    def __init__(self, model: PIPs, settings: FVMDSettings | None = None, device: str = "cpu") -> None:
        self.settings = settings or FVMDSettings()
        self.settings.validate()
        model = model.to(device)
        self._streams = (MotionStream(model, self.settings, device), MotionStream(model, self.settings, device))
        self.features: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])

    @classmethod
    def from_weights(cls, weights_dir: str | Path, settings: FVMDSettings | None = None,
                     device: str = "cpu") -> "FVMD":
        return cls(load_pips(weights_dir), settings, device)

    def begin_video(self) -> None:
        for stream in self._streams:
            stream.reset()

    def add(self, ref: np.ndarray, rec: np.ndarray) -> None:
        for stream, frames, pool in zip(self._streams, (ref, rec), self.features):
            pool.extend(stream.add(frames))

    @property
    def windows(self) -> int:
        return len(self.features[0])

    def score(self) -> float:
        if self.windows < 2:
            raise ValueError(f"FVMD needs at least 2 windows of {self.settings.clip_len} frames over all videos "
                             f"(a video of T frames gives (T - {self.settings.clip_len}) // "
                             f"{self.settings.window_stride} + 1), got {self.windows}")
        return fvmd_distance(np.stack(self.features[0]), np.stack(self.features[1]), self.settings.protocol)
