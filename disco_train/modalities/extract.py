"""Sketch and pose extraction from a clip: the one code path `prepare` (`datamodules.stages`) and
`encode sketch=auto pose=auto` (`disco_train.codec.cli`) share, so a transmitted sketch or pose is made the way
the decoder's training data was.

Each extractor imports its neural module lazily and resolves its weights when built; a missing module or file is a
`ConfigError` naming the key to fix (`sketch_weights`, `pose_dir`, or the key the caller names); 'synthetic' for
either builds a stand-in in code (`modalities.synthetic`).

| extractor       | module                                   | calls                                                   |
|-----------------|------------------------------------------|---------------------------------------------------------|
| SketchExtractor | `disco_train.modalities.sketch`          | `load_sketch_generator(path, device=)`, `extract_sketches`|
| PoseExtractor   | `disco_train.modalities.pose_estimation` | `DWPose(folder, device=)`, `estimator(clip)`            |
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import torch

from disco_train.config import ConfigError
from disco_train.io.hub import MissingWeightsError, resolve_weights
from disco_train.modalities.synthetic import SYNTHETIC, SyntheticPose, random_sketch_generator

DWPOSE_FILES = ("dw-ll_ucoco_384.onnx", "yolox_l.onnx")


def import_stage(module: str, key: str, what: str):
    """The stage's module; an installation without it is a ConfigError naming `key`."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ConfigError(f"{key}: needs {module} ({what}), which this installation lacks: {err}") from None


def require(path: str, key: str, what: str, patterns: list[str] | None = None) -> Path:
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


class SketchExtractor:
    """InformativeDrawings line drawings of every frame, uint8 [T,H,W,3] (dark lines on white)."""

    def __init__(self, weights: str, device: str = "cpu", key: str = "sketch_weights", stage: str = "sketch"):
        self.module = import_stage("disco_train.modalities.sketch", stage, "the InformativeDrawings generator")
        if weights == SYNTHETIC:  # random weights built in code: the demo and smoke runs
            self.generator = random_sketch_generator(device)
            return
        path = require(weights, key, "InformativeDrawings generator netG_A_latest.pth")
        self.generator = self.module.load_sketch_generator(path, device=device)

    def __call__(self, clip: np.ndarray) -> np.ndarray:
        sketches = as_rgb_uint8(self.module.extract_sketches(self.generator, clip))
        if sketches.shape[:3] != clip.shape[:3]:
            raise ValueError(f"sketch extractor returned {sketches.shape[:3]} for a clip of {clip.shape[:3]}")
        return sketches


class PoseExtractor:
    """DWPose keypoints of every frame, in the clip's pixel coordinates (a PoseSequence)."""

    def __init__(self, folder: str, device: str = "cpu", key: str = "pose_dir", stage: str = "pose"):
        if folder == SYNTHETIC:  # poses of the frames' foreground, without a network: the demo and smoke runs
            self.estimator = SyntheticPose()
            return
        found = require(folder, key, "DWPose ONNX folder", list(DWPOSE_FILES))
        for name in DWPOSE_FILES:
            require(str(found / name), key, f"DWPose file {name}")
        module = import_stage("disco_train.modalities.pose_estimation", stage, "DWPose")
        self.estimator = module.DWPose(str(found), device=device)

    def __call__(self, clip: np.ndarray):
        poses = self.estimator(clip)
        if poses.num_frames != len(clip) or tuple(poses.frame_size) != clip.shape[1:3]:
            raise ValueError(f"pose estimator returned {poses.num_frames} frames of {poses.frame_size} for a "
                             f"clip of {clip.shape[:3]}")
        return poses
