"""Schema of `python -m disco_train calibrate`: an export's trained rate points measured on test clips, into its
rd_table.json (`disco_train.benchmark.calibrate`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from disco_train.config.base import check
from disco_train.config.benchmark import DiscoMethodConfig
from disco_train.config.cli import REQUIRED
from disco_train.config.metrics import MetricSettings

GRID_KEYS = ("ds", "dt", "qp", "codec")
"""The benchmark's grid keys of `disco.send`, which calibrate leaves null: it measures every trained point."""


@dataclass
class CalibrateConfig:
    export: str = REQUIRED
    """The export folder to calibrate (`python -m disco_train export`)."""
    refs: str = REQUIRED
    """Test videos: a folder or a glob, as the benchmark takes them."""
    out: str = ""
    """The calibrated copy of the export ('' = <export>-calibrated beside it)."""
    force: bool = False
    """With out='': write rd_table.json into the export itself; with out=DIR: replace an existing DIR."""
    work: str = "runs/calibrate"
    """Benchmark folder of the run (reference clips, cached cells, report), under <work>/<export name>."""
    size: str = ""
    """Clip size WxH ('' = the export's training size, data.width × data.height)."""
    frames: int = 0
    """Clip length (0 = the export's data.frames)."""
    max_videos: int = 0
    """Use only the first N videos in name order (0 = all)."""
    device: str = ""
    """Torch device of the decoder and metric ('' = cuda when available, else cpu)."""
    metrics: MetricSettings = field(default_factory=lambda: MetricSettings(names="lpips"))
    """The quality that orders the points: one per-video metric of `evaluate` in metrics.names (lpips needs its
    weight files in metrics.weights_dir; psnr and ssim need none)."""
    disco: DiscoMethodConfig = field(default_factory=DiscoMethodConfig)
    """Decoding and captions as the benchmark's disco method takes them (disco.steps, disco.guidance, disco.seed,
    disco.batch_size, disco.captions, disco.caption_default, disco.captioner, disco.send.dcvc_rt_dir ('' = the
    folder the export's training data used), disco.overrides, ...); its grid keys (disco.send.ds, ...) stay null."""

    RENAMED: ClassVar[dict[str, str]] = {
        "metric": "metrics.names", "weights_dir": "metrics.weights_dir",
        **{k: f"disco.{k}" for k in ("steps", "guidance", "seed", "batch_size", "captions", "caption_default",
                                     "captioner", "overrides")}, "dcvc_rt_dir": "disco.send.dcvc_rt_dir"}

    def validate(self) -> None:
        check(self.frames >= 0, "frames", "must be >= 0 (0: the export's data.frames)")
        check(self.max_videos >= 0, "max_videos", "must be >= 0")
        self.metrics.validate()
        self.disco.validate("disco")
        for key in GRID_KEYS:
            check(getattr(self.disco.send, key) is None, f"disco.send.{key}",
                  "calibrate measures every trained point of the export; leave the benchmark's grid keys null")
        check(not self.disco.variants, "disco.variants", "calibrate measures the export itself, no variants")
        check(self.disco.trained_only, "disco.trained_only", "calibrate measures the trained points only")
