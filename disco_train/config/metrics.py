"""The metric settings every scoring command shares, as one section `metrics.*` of `evaluate`, the benchmark and
`calibrate`: which metrics, their weight files, device and batch, FVD's clip and FVMD's sampling
(`metrics.suite.MetricSuite.of` builds the networks from it)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from disco_train.config.base import ConfigError, check

FRAME_METRICS = ("psnr", "ssim", "lpips", "lpips_vgg", "dists")
PAIR_METRICS = ("flolpips",)  # one value per video, from its consecutive frame pairs
DISTRIBUTION_METRICS = ("fid", "fvd", "fvmd")
ALL_METRICS = FRAME_METRICS + PAIR_METRICS + DISTRIBUTION_METRICS

FVMD_PROTOCOLS = ("package", "definition")
"""package: fvmd 1.0.0 as published (the default); definition: the paper's acceleration, exact Fréchet distance."""
FVMD_CELL = 5
"""Grid points per FVMD histogram cube side."""
FVMD_CUBE_FRAMES = 4
"""Frames per FVMD histogram cube."""
FVMD_ANGLE_BINS = 8
"""Direction bins of FVMD's motion histograms."""
TRACKER_STRIDE, TRACKER_MIN_SIZE = 8, 128
"""PIPs++'s feature stride and smallest input side (`metrics.pips2` STRIDE, MIN_SIZE; a test holds them equal)."""


RENAMED_METRIC_KEYS = {"metrics": "metrics.names", "weights_dir": "metrics.weights_dir",
                       "fvd_clip_len": "metrics.fvd_clip_len", "fvmd_clip_len": "metrics.fvmd.clip_len",
                       "fvmd_stride": "metrics.fvmd.window_stride", "fvmd_points": "metrics.fvmd.points",
                       "fvmd_size": "metrics.fvmd.size", "fvmd_iters": "metrics.fvmd.iters",
                       "fvmd_protocol": "metrics.fvmd.protocol"}
"""The flat keys the `metrics` section replaced (evaluate, benchmark, calibrate): each names its new key."""


def parse_metric_names(spec: str | list[str]) -> list[str]:
    """'psnr,ssim' -> ['psnr', 'ssim']; unknown or duplicate names raise ValueError."""
    names = [n.strip().lower() for n in (spec.split(",") if isinstance(spec, str) else spec) if n.strip()]
    if not names:
        raise ValueError(f"no metrics given; choose from {', '.join(ALL_METRICS)}")
    unknown = [n for n in names if n not in ALL_METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {', '.join(ALL_METRICS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate metric names in {names}")
    return names


@dataclass
class FVMDSettings:
    """FVMD's sampling (defaults: the published one, `metrics.fvmd`): GPU work; a CPU smoke run can use e.g.
    clip_len=4 window_stride=4 points=25 size=128 iters=1, not comparable with published numbers."""

    clip_len: int = 16
    """Frames per tracked window (published: 16; at least 4, one histogram cube in time)."""
    window_stride: int = 1
    """A new window starts every this many frames (published: 1)."""
    points: int = 400
    """Query points tracked per window, a square number >= 25 (published: 400 = 20×20)."""
    size: int = 256
    """Frame side after resizing for PIPs++, a multiple of 8, >= 128 (published: 256)."""
    iters: int = 16
    """PIPs++ refinement iterations (published: 16)."""
    protocol: str = "package"
    """'package' (fvmd 1.0.0, what papers report) or 'definition' (the paper's acceleration, an exact Fréchet
    distance; not comparable with published numbers)."""

    def validate(self, key: str = "fvmd") -> None:
        side = math.isqrt(self.points)
        check(self.clip_len >= FVMD_CUBE_FRAMES, f"{key}.clip_len",
              f"must be >= {FVMD_CUBE_FRAMES} (one histogram cube in time), got {self.clip_len}")
        check(side * side == self.points and side >= FVMD_CELL, f"{key}.points",
              f"must be a square number >= {FVMD_CELL ** 2} (a grid of >= {FVMD_CELL}x{FVMD_CELL}), got {self.points}")
        check(self.size >= TRACKER_MIN_SIZE and self.size % TRACKER_STRIDE == 0, f"{key}.size",
              f"must be a multiple of {TRACKER_STRIDE} and >= {TRACKER_MIN_SIZE}, got {self.size}")
        check(self.protocol in FVMD_PROTOCOLS, f"{key}.protocol",
              f"protocol must be one of {', '.join(FVMD_PROTOCOLS)}, got {self.protocol!r}")
        check(self.iters >= 1 and self.window_stride >= 1, f"{key}.iters",
              f"iters and window_stride must be >= 1, got {self.iters} and {self.window_stride}")

    @property
    def grid_side(self) -> int:
        return math.isqrt(self.points)

    @property
    def feature_dim(self) -> int:
        cubes = (self.clip_len // FVMD_CUBE_FRAMES) * (self.grid_side // FVMD_CELL) ** 2
        return 2 * cubes * FVMD_ANGLE_BINS


@dataclass
class MetricSettings:
    """What a scoring command computes and how (`metrics.<key>=` of evaluate, the benchmark and calibrate)."""

    names: str = "psnr,ssim"
    """Comma-separated metrics: psnr, ssim (no weight files), lpips, lpips_vgg, dists, fid, fvd, flolpips, fvmd
    (weight files in weights_dir: the table in docs/metrics.md)."""
    weights_dir: str = "checkpoints/metrics"
    """Folder of the metric networks' weight files."""
    device: str = ""
    """Torch device of the metric networks ('' = the command's own: the benchmark's and calibrate's `device`;
    evaluate's cpu)."""
    batch_size: int = 4
    """Frames per forward pass of the perceptual networks."""
    fvd_clip_len: int = 16
    """Frames per FVD clip (non-overlapping)."""
    fvmd: FVMDSettings = field(default_factory=FVMDSettings)
    """FVMD's sampling."""

    @property
    def name_list(self) -> list[str]:
        return parse_metric_names(self.names)

    def validate(self, key: str = "metrics") -> None:
        try:
            self.name_list
        except ValueError as err:
            raise ConfigError(f"{key}.names: {err}") from None
        check(self.batch_size >= 1, f"{key}.batch_size", f"must be >= 1, got {self.batch_size}")
        check(self.fvd_clip_len >= 1, f"{key}.fvd_clip_len", f"must be >= 1, got {self.fvd_clip_len}")
        check(re.fullmatch(r"|cpu|cuda(:\d+)?", self.device) is not None, f"{key}.device",
              f"'', cpu or cuda[:N], got {self.device!r}")
        self.fvmd.validate(f"{key}.fvmd")

    def cache_key(self, names: list[str]) -> dict:
        """The settings that change the scores of `names`: part of every benchmark cell's key."""
        part: dict = {"names": sorted(names)}
        if "fvd" in names:
            part["fvd_clip_len"] = self.fvd_clip_len
        if "fvmd" in names:
            f = self.fvmd
            part["fvmd"] = [f.clip_len, f.window_stride, f.points, f.size, f.iters, f.protocol]
        return part
