"""Optional prepare stages: captioner, sketch, pose, precomputed latents.

Each stage imports its neural module lazily (so `prepare` works without them) and checks its weights in
`preflight`, before any video is touched; a missing module or file is a `ConfigError` naming the key to fix.
Per clip, `apply(clip, fps, sample, meta)` adds its tar members to `sample` and its parameters and bits to `meta`.
The calls into the other modules are kept to one adapter function each, so their API is wired in one place:

| stage     | module                          | calls                                                            |
|-----------|---------------------------------|------------------------------------------------------------------|
| captioner | `disco_train.caption`           | `Captioner(path, device=)`, `.caption(frames uint8 [N,H,W,3]) -> str` |
| sketch    | `disco_train.sketch`            | `load_sketch_generator(path, device=)`, `extract_sketches(gen, clip)` |
| pose      | `disco_train.pose_estimation`   | `DWPose(folder, device=)`, `estimator(clip) -> PoseSequence`     |
|           | `disco_train.pose`              | `encode_poses(PoseSequence) -> bytes`                            |
| precompute| `disco_train.models`, `.encoders` | `load_backbone(ModelConfig)`, `encode_video`, `encode_text`    |
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import torch

from datamodules import codecs
from datamodules.degrade import degrade, restore
from disco_train.config import ConfigError
from disco_train.config_prepare import PrepareConfig

CAPTION_FRAMES = 4  # frames sampled evenly from a clip for the captioner (image inputs: no torchvision needed)
DWPOSE_FILES = ("dw-ll_ucoco_384.onnx", "yolox_l.onnx")


def _import(module: str, key: str, what: str):
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ConfigError(f"{key}: needs {module} ({what}), which this installation lacks: {err}") from None


def _require(path: str, key: str, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{key}={path}: {what} not found; put it there (see checkpoints/README.md) or point "
                          f"{key} at it")
    return p


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
        self.cfg, self.model = cfg, None

    def preflight(self) -> None:
        _require(self.cfg.captioner, "captioner", "captioner model folder")
        module = _import("disco_train.caption", "captioner", "the vision-language captioner")
        self.model = module.Captioner(self.cfg.captioner, device=self.cfg.device)

    def __call__(self, clip: np.ndarray) -> str:
        picks = np.linspace(0, len(clip) - 1, CAPTION_FRAMES).round().astype(int)
        caption = str(self.model.caption(clip[picks])).strip()
        if not caption:
            raise ValueError("the captioner returned an empty caption")
        return caption


class SketchStage:
    """InformativeDrawings line drawings of every frame, degraded by sketch_ds/sketch_dt and coded."""

    def __init__(self, cfg: PrepareConfig):
        self.cfg, self.module, self.generator = cfg, None, None

    def preflight(self) -> None:
        _require(self.cfg.sketch_weights, "sketch_weights", "InformativeDrawings generator netG_A_latest.pth")
        if self.cfg.sketch_codec == "dcvc_rt":
            check_dcvc(self.cfg, "sketch_codec")
        self.module = _import("disco_train.sketch", "sketch", "the InformativeDrawings generator")
        self.generator = self.module.load_sketch_generator(self.cfg.sketch_weights, device=self.cfg.device)

    def apply(self, clip: np.ndarray, fps: float, sample: dict, meta: dict) -> None:
        cfg = self.cfg
        sketches = as_rgb_uint8(self.module.extract_sketches(self.generator, clip))
        if sketches.shape[:3] != clip.shape[:3]:
            raise ValueError(f"sketch extractor returned {sketches.shape[:3]} for a clip of {clip.shape[:3]}")
        coded = degrade(sketches, cfg.sketch_ds, cfg.sketch_dt)
        qp = cfg.sketch_qp if cfg.sketch_qp >= 0 else None
        data, info = codecs.encode(cfg.sketch_codec, coded, fps / cfg.sketch_dt, crf=cfg.sketch_crf, qp=qp,
                                   weights_dir=cfg.dcvc_rt_dir)
        sample["sketch.bin"] = data
        meta.update({"sketch_codec": cfg.sketch_codec, "sketch_crf": cfg.sketch_crf, "sketch_qp": cfg.sketch_qp,
                     "sketch_ds": cfg.sketch_ds, "sketch_dt": cfg.sketch_dt,
                     "sketch_frames": int(coded.shape[0]), "sketch_height": int(coded.shape[1]),
                     "sketch_width": int(coded.shape[2])})
        if "container_overhead_bytes" in info:
            meta["sketch_container_overhead_bytes"] = info["container_overhead_bytes"]
        meta["bits"]["sketch"] = len(data) * 8


class PoseStage:
    """DWPose keypoints of every frame (clip pixel coordinates), coded losslessly by encode_poses."""

    def __init__(self, cfg: PrepareConfig):
        self.cfg, self.estimator, self.encode = cfg, None, None

    def preflight(self) -> None:
        folder = _require(self.cfg.pose_dir, "pose_dir", "DWPose ONNX folder")
        for name in DWPOSE_FILES:
            _require(str(folder / name), "pose_dir", f"DWPose file {name}")
        self.encode = _import("disco_train.pose", "pose", "the pose codec").encode_poses
        module = _import("disco_train.pose_estimation", "pose", "DWPose")
        self.estimator = module.DWPose(str(folder), device=self.cfg.device)

    def apply(self, clip: np.ndarray, fps: float, sample: dict, meta: dict) -> None:
        poses = self.estimator(clip)
        if poses.num_frames != len(clip) or tuple(poses.frame_size) != clip.shape[1:3]:
            raise ValueError(f"pose estimator returned {poses.num_frames} frames of {poses.frame_size} for a "
                             f"clip of {clip.shape[:3]}")
        data = self.encode(poses)
        sample["pose.xz"] = data
        meta["pose_max_people"] = int(max(poses.poses_per_frame, default=0))
        meta["bits"]["pose"] = len(data) * 8


def check_dcvc(cfg: PrepareConfig, key: str) -> None:
    try:
        codecs.check_dcvc_weights(cfg.dcvc_rt_dir)
    except codecs.CodecUnavailable as err:
        raise ConfigError(f"{key}=dcvc_rt: {err}") from None
