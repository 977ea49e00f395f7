"""Streaming computation of a set of metrics over (reference, reconstruction) video pairs.

Per-frame metrics (PSNR, SSIM, LPIPS, DISTS) are averaged over the frames of each video, FloLPIPS over its
consecutive frame pairs (videos need >= 2 frames). Distribution metrics (FID, FVD, FVMD) compare the feature
distributions of all reference vs all reconstructed material of a run, so they only exist for the whole set:
FID over every frame, FVD over every non-overlapping clip of ``clip_len`` consecutive frames (a trailing
partial clip is not used), FVMD over every window of ``fvmd.clip_len`` frames starting every
``fvmd.window_stride`` frames (see fvmd.py; the set needs >= 2 windows).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from disco_train.config.metrics import DISTRIBUTION_METRICS, FRAME_METRICS, MetricSettings, parse_metric_names

from .fidelity import check_video_pair, psnr_frames, ssim_frames
from disco_train.io.video import iter_chunks

FrameFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass
class VideoResult:
    frames: int
    height: int
    width: int
    scores: dict[str, float] = field(default_factory=dict)


def _build_frame_metric(name: str, weights_dir: Path, device: str, batch_size: int) -> FrameFn:
    if name == "psnr":
        return psnr_frames
    if name == "ssim":
        return ssim_frames
    from .perceptual import TorchFrameMetric, load_dists, load_lpips

    if name == "dists":
        model = load_dists(weights_dir)
    else:
        model = load_lpips("vgg" if name == "lpips_vgg" else "alex", weights_dir)
    return TorchFrameMetric(model, device=device, batch_size=batch_size)


class MetricSuite:
    """Holds the loaded metric models and accumulates features for the distribution metrics."""

    def __init__(self, names: list[str], *, weights_dir: str | Path = "checkpoints/metrics",
                 device: str = "cpu", batch_size: int = 4, clip_len: int = 16, fvmd=None):
        """``fvmd``: an ``FVMDSettings`` (default: the published sampling, 16 frames, 400 points, 256 px)."""
        self.names = parse_metric_names(names)
        if batch_size < 1 or clip_len < 1:
            raise ValueError(f"batch_size and clip_len must be >= 1, got {batch_size} and {clip_len}")
        self.clip_len = clip_len
        wdir = Path(weights_dir)
        # Build every model up front so missing weight files are reported before any video is decoded.
        self._frame = {n: _build_frame_metric(n, wdir, device, batch_size)
                       for n in self.names if n in FRAME_METRICS}
        self._fid = self._fvd = None
        if "fid" in self.names or "fvd" in self.names:
            from .distribution import FIDFeatures, FVDFeatures

            if "fid" in self.names:
                self._fid = FIDFeatures.from_weights(wdir, device=device, batch_size=batch_size)
            if "fvd" in self.names:
                self._fvd = FVDFeatures.from_weights(wdir, device=device)
        self._feats: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {"fid": ([], []), "fvd": ([], [])}
        self._flolpips = self._fvmd = None
        if "flolpips" in self.names:
            from .flolpips import FloLPIPSVideo

            self._flolpips = FloLPIPSVideo.from_weights(wdir, device=device, batch_size=batch_size)
        if "fvmd" in self.names:
            from .fvmd import FVMD

            self._fvmd = FVMD.from_weights(wdir, fvmd, device=device)

    @classmethod
    def of(cls, settings: MetricSettings, device: str, names: list[str] | None = None) -> "MetricSuite":
        """The suite a command's `metrics.*` section describes (`names`: a subset of its names); `device`: the
        command's, used where `metrics.device` is ''."""
        return cls(names or settings.name_list, weights_dir=settings.weights_dir, device=settings.device or device,
                   batch_size=settings.batch_size, clip_len=settings.fvd_clip_len, fvmd=settings.fvmd)

    @property
    def frame_metric_names(self) -> list[str]:
        """Metrics with one score per video (in ``VideoResult.scores``); the others come from distribution_scores."""
        return list(self._frame) + (["flolpips"] if self._flolpips is not None else [])

    def evaluate_pair(self, ref_path: str | Path, rec_path: str | Path) -> VideoResult:
        """Per-video means of the per-frame metrics; also feeds the FID/FVD feature pools."""
        return self._evaluate(iter_chunks(ref_path, self.clip_len), iter_chunks(rec_path, self.clip_len),
                              str(ref_path), str(rec_path))

    def evaluate_frames(self, ref: np.ndarray, rec: np.ndarray, name: str = "video") -> VideoResult:
        """`evaluate_pair` on frames in memory, uint8 [T,H,W,3] each (decoded output scored directly, with no
        file and no second codec in between)."""
        def chunks(frames: np.ndarray):
            return (frames[i:i + self.clip_len] for i in range(0, len(frames), self.clip_len))

        return self._evaluate(chunks(ref), chunks(rec), f"{name} (reference)", f"{name} (reconstruction)")

    def _evaluate(self, ref_it, rec_it, ref_path: str, rec_path: str) -> VideoResult:
        sums = dict.fromkeys(self._frame, 0.0)
        n, shape = 0, None
        if self._flolpips is not None:
            self._flolpips.reset()
        if self._fvmd is not None:
            self._fvmd.begin_video()  # windows never span two videos
        while True:
            a, b = next(ref_it, None), next(rec_it, None)
            if a is None and b is None:
                break
            if a is None or b is None or a.shape[0] != b.shape[0]:
                n_ref = n + _count(a, ref_it)
                n_rec = n + _count(b, rec_it)
                raise ValueError(f"frame counts differ: {ref_path} has {n_ref}, {rec_path} has {n_rec}")
            if a.shape != b.shape:
                raise ValueError(f"resolutions differ: {ref_path} is {a.shape[2]}x{a.shape[1]}, "
                                 f"{rec_path} is {b.shape[2]}x{b.shape[1]} (WxH)")
            check_video_pair(a, b)
            shape = a.shape[1:3]
            for name, fn in self._frame.items():
                sums[name] += float(np.sum(fn(a, b)))
            if self._flolpips is not None:
                self._flolpips.add(a, b)
            self._pool(a, b)
            n += a.shape[0]
        if n == 0:
            raise ValueError(f"no decodable frames in {ref_path} / {rec_path}")
        scores = {k: v / n for k, v in sums.items()}
        if self._flolpips is not None:
            try:
                scores["flolpips"] = self._flolpips.mean()
            except ValueError as exc:
                raise ValueError(f"{ref_path}: {exc}") from None
        return VideoResult(frames=n, height=shape[0], width=shape[1], scores=scores)

    def take_features(self) -> dict[str, np.ndarray]:
        """The set-level features pooled since the last call, and forget them: {'fid_ref', 'fid_rec', 'fvd_ref',
        ..., 'fvmd_rec'} arrays [n, dim] for the requested distribution metrics. With `pooled_scores` this lets a
        caller keep each video's features (a benchmark's cache) and pool any set of videos later."""
        out = {}
        pools = dict(self._feats)
        if self._fvmd is not None:
            pools["fvmd"] = self._fvmd.features
        for name, (ref, rec) in pools.items():
            if name in self.names:
                for side, feats in (("ref", ref), ("rec", rec)):
                    out[f"{name}_{side}"] = (np.concatenate([np.atleast_2d(f) for f in feats]) if feats
                                             else np.zeros((0,)))
                ref.clear()
                rec.clear()
        return out

    def _pool(self, a: np.ndarray, b: np.ndarray) -> None:
        if self._fid is not None:
            self._feats["fid"][0].append(self._fid(a))
            self._feats["fid"][1].append(self._fid(b))
        if self._fvd is not None and a.shape[0] == self.clip_len:
            self._feats["fvd"][0].append(self._fvd(a[None]))
            self._feats["fvd"][1].append(self._fvd(b[None]))
        if self._fvmd is not None:
            self._fvmd.add(a, b)

    def distribution_scores(self) -> dict[str, float]:
        """FID/FVD/FVMD between everything seen so far by ``evaluate_pair`` (only the requested ones)."""
        out = {"fvmd": self._fvmd.score()} if self._fvmd is not None else {}
        for name, needed in (("fid", self._fid), ("fvd", self._fvd)):
            if needed is None:
                continue
            from .distribution import frechet_distance

            ref, rec = self._feats[name]
            if sum(len(f) for f in ref) < 2:
                unit = "frames" if name == "fid" else f"complete {self.clip_len}-frame clips"
                raise ValueError(f"{name.upper()} needs at least 2 {unit} over all videos, "
                                 f"got {sum(len(f) for f in ref)}")
            out[name] = frechet_distance(np.concatenate(ref), np.concatenate(rec))
        return out


def pooled_scores(names: list[str], features: list[dict[str, np.ndarray]], settings: MetricSettings
                  ) -> dict[str, float]:
    """FID/FVD/FVMD (those of `names`) over the union of several videos' `take_features()`, made with `settings`
    (FVMD's protocol is the one that made its features); a metric without enough samples raises ValueError saying
    how many it needs."""
    from .distribution import frechet_distance

    out = {}
    for name in (n for n in names if n in DISTRIBUTION_METRICS):
        ref, rec = ([f[f"{name}_{side}"] for f in features if f[f"{name}_{side}"].size] for side in ("ref", "rec"))
        ref, rec = (np.concatenate(x) if x else np.zeros((0, 1)) for x in (ref, rec))
        if len(ref) < 2:
            unit = {"fid": "frames", "fvd": f"complete {settings.fvd_clip_len}-frame clips",
                    "fvmd": f"windows of {settings.fvmd.clip_len} frames"}[name]
            raise ValueError(f"{name.upper()} needs at least 2 {unit} over all videos, got {len(ref)}")
        if name == "fvmd":
            from .fvmd import fvmd_distance

            out[name] = fvmd_distance(ref, rec, settings.fvmd.protocol)
        else:
            out[name] = frechet_distance(ref, rec)
    return out


def _count(first: np.ndarray | None, rest) -> int:
    return (0 if first is None else first.shape[0]) + sum(c.shape[0] for c in rest)
