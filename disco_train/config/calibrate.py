"""Schema of `python -m disco_train calibrate`: an export's trained rate points measured on test clips, into its
rd_table.json (`disco_train.benchmark.calibrate`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from disco_train.config.base import check
from disco_train.config.cli import REQUIRED


@dataclass
class CalibrateConfig:
    export: str = REQUIRED
    """The export folder to calibrate (`python -m disco_train export`)."""
    refs: str = REQUIRED
    """Test videos: a folder or a glob, as the benchmark takes them."""
    metric: str = "lpips"
    """The quality that orders the points: a per-video metric of `evaluate` (lpips needs its weight files in
    weights_dir; psnr and ssim need none)."""
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
    weights_dir: str = "checkpoints/metrics"
    """Folder of the metric networks' weight files."""
    steps: Optional[int] = None
    """Euler steps (default: the export's validation.steps)."""
    guidance: Optional[float] = None
    """Classifier-free guidance scale (default: the export's validation.guidance)."""
    seed: int = 0
    """Noise seed of every clip."""
    batch_size: int = 1
    """Clips decoded together."""
    captions: str = ""
    """csv or jsonl of captions by video name ('' = caption_default, else the captioner)."""
    caption_default: str = ""
    """Caption of videos the captions file lacks."""
    captioner: str = ""
    """A local LLaVA-family folder that captions the rest."""
    dcvc_rt_dir: str = ""
    """DCVC-RT weights of the degraded video when its codec is dcvc_rt ('' = checkpoints/dcvc_rt)."""
    overrides: list[str] = field(default_factory=list)
    """Decoder-config overrides as section.key=value (e.g. model.path=...)."""

    def validate(self) -> None:
        check(self.frames >= 0, "frames", "must be >= 0 (0: the export's data.frames)")
        check(self.max_videos >= 0, "max_videos", "must be >= 0")
        check(self.batch_size >= 1, "batch_size", "must be >= 1")
        check(self.steps is None or self.steps >= 1, "steps", "must be >= 1")
