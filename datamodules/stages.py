"""Optional prepare stages: captioner, sketch, pose, precomputed latents.

Each stage imports its neural module lazily (so `prepare` works without them) and checks its weights in
`preflight`, before any video is touched; a missing module or file is a `ConfigError` naming the key to fix.
Per clip a stage returns its modality (a caption, sketch frames, poses); the sender (`disco_train.codec.sender`)
codes them. The calls into the modality modules are one adapter each, so their API is wired in one place:

| stage     | module                                   | calls                                                    |
|-----------|------------------------------------------|----------------------------------------------------------|
| captioner | `disco_train.modalities.caption`         | `Captioner(path, device=)`, `caption_clip(captioner, clip)` |
| sketch    | `disco_train.modalities.sketch`          | `load_sketch_generator(path, device=)`, `extract_sketches(gen, clip)` |
| pose      | `disco_train.modalities.pose_estimation` | `DWPose(folder, device=)`, `estimator(clip) -> PoseSequence` |
| precompute| `disco_train.decoder.models`, `.encoders`| `load_encoders(ModelConfig)`, `encode_video`, `encode_text` |
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import torch

from disco_train.codec import backends
from disco_train.config import ConfigError, PrepareConfig
from disco_train.config.hub import MissingWeightsError, resolve_weights

DWPOSE_FILES = ("dw-ll_ucoco_384.onnx", "yolox_l.onnx")


def _import(module: str, key: str, what: str):
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ConfigError(f"{key}: needs {module} ({what}), which this installation lacks: {err}") from None


def _require(path: str, key: str, what: str, patterns: list[str] | None = None) -> Path:
    """The local path of a weight setting (a Hub repo id is fetched); missing is a ConfigError naming the key."""
    try:
        return resolve_weights(path, key, what, patterns)
    except MissingWeightsError as err:
        raise ConfigError(str(err)) from None


def as_rgb_uint8(frames) -> np.ndarray:
    """[T,H,W] or [T,H,W,1|3], float in [0,1] or uint8, numpy or torch -> uint8 [T,H,W,3]."""
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu().numpy()
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        frames = (np.clip(frames.astype(np.float32), 0.0, 1.0) * 255.0).round().astype(np.uint8)
    if frames.ndim == 3:
        frames = frames[..., None]
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3):
        raise ValueError(f"expected frames [T,H,W] or [T,H,W,1|3], got {frames.shape}")
    return np.repeat(frames, 3, axis=-1) if frames.shape[-1] == 1 else frames


class CaptionStage:
    """Captions clips that the captions file does not cover."""

    def __init__(self, cfg: PrepareConfig):
        self.cfg, self.module, self.model = cfg, None, None

    def preflight(self) -> None:
        folder = _require(self.cfg.captioner, "captioner", "captioner model folder")
        self.module = _import("disco_train.modalities.caption", "captioner", "the vision-language captioner")
        self.model = self.module.Captioner(folder, device=self.cfg.device)

    def __call__(self, clip: np.ndarray) -> str:
        return self.module.caption_clip(self.model, clip)


class SketchStage:
    """InformativeDrawings line drawings of every frame (the sender degrades them by sketch_ds/sketch_dt and codes
    them with sketch_codec)."""

    def __init__(self, cfg: PrepareConfig):
        self.cfg, self.module, self.generator = cfg, None, None

    def preflight(self) -> None:
        weights = _require(self.cfg.sketch_weights, "sketch_weights", "InformativeDrawings generator netG_A_latest.pth")
        if self.cfg.sketch_codec == "dcvc_rt":
            check_dcvc(self.cfg, "sketch_codec")
        self.module = _import("disco_train.modalities.sketch", "sketch", "the InformativeDrawings generator")
        self.generator = self.module.load_sketch_generator(weights, device=self.cfg.device)

    def extract(self, clip: np.ndarray) -> np.ndarray:
        """Line drawings of every frame of the clip, uint8 [T,H,W,3] (dark lines on white)."""
        sketches = as_rgb_uint8(self.module.extract_sketches(self.generator, clip))
        if sketches.shape[:3] != clip.shape[:3]:
            raise ValueError(f"sketch extractor returned {sketches.shape[:3]} for a clip of {clip.shape[:3]}")
        return sketches


class PoseStage:
    """DWPose keypoints of every frame (clip pixel coordinates), coded losslessly by encode_poses."""

    def __init__(self, cfg: PrepareConfig):
        self.cfg, self.estimator = cfg, None

    def preflight(self) -> None:
        folder = _require(self.cfg.pose_dir, "pose_dir", "DWPose ONNX folder", list(DWPOSE_FILES))
        for name in DWPOSE_FILES:
            _require(str(folder / name), "pose_dir", f"DWPose file {name}")
        module = _import("disco_train.modalities.pose_estimation", "pose", "DWPose")
        self.estimator = module.DWPose(str(folder), device=self.cfg.device)

    def estimate(self, clip: np.ndarray):
        """DWPose keypoints of every frame, in the clip's pixel coordinates (a PoseSequence)."""
        poses = self.estimator(clip)
        if poses.num_frames != len(clip) or tuple(poses.frame_size) != clip.shape[1:3]:
            raise ValueError(f"pose estimator returned {poses.num_frames} frames of {poses.frame_size} for a "
                             f"clip of {clip.shape[:3]}")
        return poses


def check_dcvc(cfg: PrepareConfig, key: str) -> None:
    try:
        backends.check_dcvc_weights(cfg.dcvc_rt_dir)
    except backends.CodecUnavailable as err:
        raise ConfigError(f"{key}=dcvc_rt: {err}") from None
