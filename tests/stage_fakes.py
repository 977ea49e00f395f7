"""Stand-ins for the neural modules the optional prepare stages call. The real sketch, DWPose and captioner modules
need weights these tests do not have (the wiring tests write empty stand-in weight files), so their fakes are
always installed, like the DCVC-RT api's; the pose codec is pure code and always the real one. The fakes follow the adapters' interface documented in `datamodules.stages` and produce real,
decodable data, so the wiring around them is tested for real. The real modules have their own tests
(tests/test_sketch.py, test_pose_estimation.py, test_caption.py)."""

from __future__ import annotations

import io
import sys
import types
import zlib
from dataclasses import dataclass, field

import numpy as np


def _sketch_module():
    mod = types.ModuleType("disco_train.sketch")
    mod.load_sketch_generator = lambda path, device="cpu": {"path": path}

    def extract_sketches(generator, frames):  # dark lines on white, float [T,H,W] in [0,1] like the generator
        gray = frames.astype(np.float32).mean(-1) / 255.0
        edges = np.abs(np.diff(gray, axis=2, prepend=gray[:, :, :1])) * 4
        return 1.0 - np.clip(edges, 0, 1)

    mod.extract_sketches = extract_sketches
    return mod


@dataclass
class FakePoseSequence:
    keypoints: list
    scores: list
    frame_size: tuple
    poses_per_frame: list = field(init=False)

    def __post_init__(self):
        self.poses_per_frame = [len(k) for k in self.keypoints]

    @property
    def num_frames(self):
        return len(self.keypoints)


def _pose_estimation_module(pose_module):
    mod = types.ModuleType("disco_train.pose_estimation")

    class DWPose:
        def __init__(self, folder, device="cpu"):
            self.folder = folder

        def __call__(self, clip):  # one person whose keypoints drift right by one pixel per frame
            t, h, w = clip.shape[:3]
            base = np.stack([np.linspace(0, w - 1, 134), np.linspace(0, h - 1, 134)], -1).astype(np.float32)
            kps = [((base + [i, 0]) % [w, h])[None] for i in range(t)]
            return pose_module.PoseSequence(kps, [np.ones((1, 134), np.float32)] * t, (h, w))

    mod.DWPose = DWPose
    return mod


def _caption_module():
    mod = types.ModuleType("disco_train.caption")

    class Captioner:
        def __init__(self, path, device="cpu"):
            self.path = path

        def caption(self, frames):
            return f"{len(frames)} frames of mean brightness {frames.mean():.0f}"

    mod.Captioner = Captioner
    return mod


def _dcvc_api_module():
    """A lossless toy 'neural codec': zlib over the raw frames, behind the real api's three names."""
    mod = types.ModuleType("disco_train.codecs.dcvc_rt.api")
    mod.load_codec = lambda ckpt_dir=None: "toy"

    def encode_video(frames, qp, codec=None):
        buffer = io.BytesIO()
        np.save(buffer, frames)
        return b"TOY" + bytes([qp]) + zlib.compress(buffer.getvalue())

    mod.encode_video = encode_video
    mod.decode_video = lambda data, codec=None: np.load(io.BytesIO(zlib.decompress(data[4:])))
    return mod


def install(monkeypatch) -> None:
    """Put fakes in sys.modules for the stage modules that need weights (the real ones are tested in their own
    files, with built state dicts and tiny models)."""
    monkeypatch.setitem(sys.modules, "disco_train.sketch", _sketch_module())
    import disco_train.pose as pose

    monkeypatch.setitem(sys.modules, "disco_train.pose_estimation", _pose_estimation_module(pose))
    monkeypatch.setitem(sys.modules, "disco_train.caption", _caption_module())
    # Import the real package first (its __init__ needs the real api), then swap the api module for the fake
    # both in sys.modules and as the package attribute that `from disco_train.codecs.dcvc_rt import api` reads.
    import disco_train.codecs.dcvc_rt as package

    fake = _dcvc_api_module()
    monkeypatch.setitem(sys.modules, "disco_train.codecs.dcvc_rt.api", fake)
    monkeypatch.setattr(package, "api", fake)
