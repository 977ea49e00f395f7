"""Optional prepare stages: captioner, sketch, pose, precomputed latents.

Each stage imports its neural module lazily (so `prepare` works without them) and checks its weights in
`preflight`, before any video is touched; a missing module or file is a `ConfigError` naming the key to fix.
Per clip a stage returns its modality (a caption, sketch frames, poses); the sender (`disco_train.codec.sender`)
codes them. Sketch and pose extraction are `disco_train.modalities.extract`, the code `encode sketch=auto
pose=auto` runs too; the calls into the modality modules are one adapter each, so their API is wired in one place:

| stage     | module                                   | calls                                                    |
|-----------|------------------------------------------|----------------------------------------------------------|
| captioner | `disco_train.modalities.caption`         | `Captioner(path, device=)`, `caption_clip(captioner, clip)` |
| sketch    | `disco_train.modalities.extract`         | `SketchExtractor(sketch_weights, device)(clip)`          |
| pose      | `disco_train.modalities.extract`         | `PoseExtractor(pose_dir, device)(clip) -> PoseSequence`  |
| precompute| `disco_train.decoder.models`, `.encoders`| `load_encoders(ModelConfig)`, `encode_video`, `encode_text` |
"""

from __future__ import annotations

import numpy as np

from disco_train.codec import backends
from disco_train.config import ConfigError, PrepareConfig
from disco_train.modalities.extract import (DWPOSE_FILES, PoseExtractor, SketchExtractor, as_rgb_uint8,
                                            import_stage, require)

__all__ = ["DWPOSE_FILES", "CaptionStage", "PoseStage", "SketchStage", "as_rgb_uint8", "check_dcvc"]


class CaptionStage:
    """Captions clips that the captions file does not cover."""

    def __init__(self, cfg: PrepareConfig):
        self.cfg, self.module, self.model = cfg, None, None

    def preflight(self) -> None:
        folder = require(self.cfg.captioner, "captioner", "captioner model folder")
        self.module = import_stage("disco_train.modalities.caption", "captioner", "the vision-language captioner")
        self.model = self.module.Captioner(folder, device=self.cfg.device)

    def __call__(self, clip: np.ndarray) -> str:
        return self.module.caption_clip(self.model, clip)


class SketchStage:
    """InformativeDrawings line drawings of every frame (the sender degrades them by sketch_ds/sketch_dt and codes
    them with sketch_codec)."""

    def __init__(self, cfg: PrepareConfig):
        self.cfg, self.extractor = cfg, None

    @property
    def generator(self):
        return self.extractor.generator if self.extractor is not None else None

    def preflight(self) -> None:
        self.extractor = SketchExtractor(self.cfg.send.sketch_weights, self.cfg.device)
        if self.cfg.send.sketch_codec == "dcvc_rt":
            check_dcvc(self.cfg, "sketch_codec")

    def extract(self, clip: np.ndarray) -> np.ndarray:
        """Line drawings of every frame of the clip, uint8 [T,H,W,3] (dark lines on white)."""
        return self.extractor(clip)


class PoseStage:
    """DWPose keypoints of every frame (clip pixel coordinates), coded losslessly by encode_poses."""

    def __init__(self, cfg: PrepareConfig):
        self.cfg, self.extractor = cfg, None

    @property
    def estimator(self):
        return self.extractor.estimator if self.extractor is not None else None

    def preflight(self) -> None:
        self.extractor = PoseExtractor(self.cfg.send.pose_dir, self.cfg.device)

    def estimate(self, clip: np.ndarray):
        """DWPose keypoints of every frame, in the clip's pixel coordinates (a PoseSequence)."""
        return self.extractor(clip)


def check_dcvc(cfg: PrepareConfig, key: str) -> None:
    """The DCVC-RT weights `key` (codec or sketch_codec) codes with: send.dcvc_rt_dir, or send.sketch_dcvc_dir for
    the sketch when set."""
    s = cfg.send
    sketch = key == "sketch_codec" and bool(s.sketch_dcvc_dir)
    try:
        backends.check_dcvc_weights(s.sketch_dcvc_dir if sketch else s.dcvc_rt_dir,
                                    "send.sketch_dcvc_dir" if sketch else "send.dcvc_rt_dir")
    except backends.CodecUnavailable as err:
        raise ConfigError(f"send.{key}=dcvc_rt: {err}") from None
