"""The per-video work of `prepare`: clips, caption, degraded video and the optional stages, as samples.

`Pipeline.samples(video)` is a pure function of the video file, its name and caption, and the settings: no worker
id, time or processing order enters a sample, so a video gives the same bytes in any process (`workers=N`) or
part. Optional stages (captioner, sketch, pose, precomputed latents) live in `datamodules.stages` and
`datamodules.latents`; they load in `preflight`, before the first video, so missing weights fail at once.

In the 'worker' role the precompute stage is left to the caller: samples come back with their meta dict and
caption under `PENDING`, and `finish` (in the process that holds the GPU) adds the latents and meta.json exactly
as the one-process path does.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import numpy as np

from datamodules.inputs import Video
from datamodules.latents import PrecomputeStage
from datamodules.schema import AUX_FIELDS, FORMAT_VERSION, SKETCH_FRAMES_FIELD, STREAM_FIELDS, bpp, grid_key, sample_key
from datamodules.stages import CaptionStage, PoseStage, SketchStage, check_dcvc
from disco_train.codec.backends import used_qp
from disco_train.codec.sender import send_clip
from disco_train.config import PrepareConfig
from disco_train.config.prepare import GridPoint
from disco_train.io.video import VideoError, encode_gray, read_video, write_video
from disco_train.modalities.degrade import resize_center_crop

PENDING = "__pending__"
"""Key of an unfinished sample's (meta, caption), left for `Pipeline.finish` in another process."""

__all__ = ["PENDING", "Pipeline", "draw_point", "stream_meta", "used_qp"]


def draw_point(key: str, grid: list[GridPoint]) -> GridPoint:
    """grid=sample: the point of clip `key`, from the sha256 of the key alone (any worker, part or rerun agrees)."""
    return grid[int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % len(grid)]


class Pipeline:
    """The per-video work (module docstring). `role`: 'all' runs every stage here; 'worker' all but precompute,
    whose inputs are left under PENDING; 'finish' holds only the precompute stage, for `finish_pending`."""

    def __init__(self, cfg: PrepareConfig, role: str = "all"):
        self.cfg, self.role = cfg, role
        self.grid = cfg.grid_points()
        point = self.grid[0]  # the lists replaced by one point; each sample gets its own (`clip_samples`)
        self.settings = replace(cfg.send, ds=point.ds, dt=point.dt, qp=point.qp, crf=point.crf)
        here = role != "finish"
        self.captioner = CaptionStage(cfg) if cfg.captioner and here else None
        self.sketch = SketchStage(cfg) if cfg.sketch and here else None
        self.pose = PoseStage(cfg) if cfg.pose and here else None
        self.precompute = PrecomputeStage(cfg) if cfg.precompute and role != "worker" else None

    def preflight(self) -> None:
        """Load every neural stage (fails on missing modules or weights) before any video is processed."""
        if self.role != "finish" and self.cfg.send.codec == "dcvc_rt":
            check_dcvc(self.cfg, "codec")
        for stage in [self.captioner, self.sketch, self.pose, self.precompute]:
            if stage is not None:
                stage.preflight()

    def caption(self, video: Video, clip: np.ndarray) -> tuple[str, str]:
        """(caption, where it came from): the captions file, else the captioner, else caption_default."""
        if video.caption:
            return video.caption, "file"
        if self.captioner is not None:
            return self.captioner(clip), "captioner"
        if self.cfg.caption_default:
            return self.cfg.caption_default, "default"
        where = f"in {self.cfg.captions}" + (f" ({video.no_caption})" if video.no_caption else "") \
            if self.cfg.captions else "(no captions file)"
        raise ValueError(f"no caption for {video.name} {where}, no captioner, and caption_default is empty")

    def samples(self, video: Video) -> list[dict]:
        """All samples of one video. Raises VideoError/ValueError with a one-line reason on bad input."""
        cfg = self.cfg
        limit = cfg.frames * cfg.max_clips_per_video if cfg.max_clips_per_video else None
        frames, fps = read_video(video.path, max_frames=limit, max_bytes=self.max_bytes())
        count = len(frames) // cfg.frames
        if count == 0:
            raise VideoError(f"{len(frames)} frames, shorter than one clip of {cfg.frames}")
        return [sample for index in range(count)
                for sample in self.clip_samples(video, index, frames[index * cfg.frames:(index + 1) * cfg.frames],
                                                fps)]

    def max_bytes(self) -> int:
        """The frames one video may hold in this worker: max_memory_gb, else 24 GB shared by the workers, over
        the copies a clip makes (read, resized, the degraded and auxiliary inputs)."""
        from disco_train.config.limits import ENCODE_COPIES, budget_bytes

        import os

        workers = self.cfg.workers or os.cpu_count() or 1
        share = budget_bytes(self.cfg.max_memory_gb) // (1 if self.cfg.max_memory_gb else workers)
        return share // ENCODE_COPIES

    def points(self, key: str) -> list[GridPoint]:
        """The rate points clip `key` is coded at: the whole grid (grid=all), or one drawn from its key."""
        return [draw_point(key, self.grid)] if self.cfg.grid == "sample" else self.grid

    def clip_samples(self, video: Video, index: int, raw: np.ndarray, fps: float) -> list[dict]:
        """The samples of one clip: one per rate point (`points`), sharing the target, caption and modalities."""
        cfg = self.cfg
        clip, resized_up = resize_center_crop(raw, cfg.height, cfg.width)
        caption, caption_source = self.caption(video, clip)
        sketch = self.sketch.extract(clip) if self.sketch else None
        poses = self.pose.estimate(clip) if self.pose else None
        key, target = sample_key(video.name, index), write_video(None, clip, fps, crf=cfg.target_crf)
        clip_meta = {"source": str(video.path), "clip_index": index, "start_frame": index * cfg.frames, "fps": fps,
                     "frames": cfg.frames, "height": cfg.height, "width": cfg.width,
                     "source_height": int(raw.shape[1]), "source_width": int(raw.shape[2]), "resized_up": resized_up}
        samples, shared, points = [], None, self.points(key)
        for point in points:
            settings = replace(self.settings, ds=point.ds, dt=point.dt, qp=point.qp, crf=point.crf)
            # Sketch and pose streams do not depend on the rate point: coded once per clip, shared by its samples.
            streams, info = send_clip(clip, fps, caption, settings, *((sketch, poses) if shared is None else ()))
            if shared is None:
                shared = [s for s in streams if s.kind in AUX_FIELDS], {k: v for k, v in info.items() if k != "video"}
            else:
                streams, info = streams + shared[0], {**info, **shared[1]}
            qp = used_qp(cfg.send.codec, point.qp)
            meta = {**clip_meta, "ds": point.ds, "dt": point.dt, "codec": cfg.send.codec, "crf": point.crf, "qp": qp,
                    "target_crf": cfg.target_crf, "caption_source": caption_source,
                    **stream_meta(info, cfg, poses), "bits": {s.kind: s.bits for s in streams},
                    "format_version": FORMAT_VERSION}
            sample = {"__key__": key if len(points) == 1 else grid_key(key, point.ds, point.dt, qp, point.crf),
                      "video.mp4": target, **{STREAM_FIELDS[s.kind]: s.data for s in streams}}
            if cfg.sketch_frames and not samples:  # the lossless frames once per clip (sketch-codec data)
                sample[SKETCH_FRAMES_FIELD] = encode_gray(np.ascontiguousarray(sketch[..., 0]), fps)
            samples.append({**sample, PENDING: (meta, caption)} if self.role == "worker" and cfg.precompute
                           else self.finish(sample, meta, caption))
        return samples

    def finish(self, sample: dict, meta: dict, caption: str) -> dict:
        """The precompute stage (if any), the bpp and meta.json."""
        cfg = self.cfg
        if self.precompute is not None:
            self.precompute.apply(caption, sample, meta)
        meta["bpp"] = bpp(meta["bits"], cfg.frames, cfg.height, cfg.width)
        sample["meta.json"] = json.dumps(meta).encode()
        return sample

    def finish_pending(self, samples: list[dict]) -> list[dict]:
        """Samples from a 'worker' pipeline, finished here."""
        return [self.finish(s, *s.pop(PENDING)) if PENDING in s else s for s in samples]


def stream_meta(info: dict[str, dict], cfg: PrepareConfig, poses) -> dict:
    """What meta.json records of the coded streams (schema: `datamodules.schema`; the sample format keeps its
    names, e.g. interleave_ratio for send.ratio)."""
    s = cfg.send
    video = info["video"]
    meta = {"degraded_frames": video["frames"], "degraded_height": video["height"],
            "degraded_width": video["width"]}
    if "container_overhead_bytes" in video:
        meta["container_overhead_bytes"] = video["container_overhead_bytes"]
    if "sketch" in info:
        sketch = info["sketch"]
        meta.update({"sketch_codec": s.sketch_codec, "sketch_crf": s.sketch_crf,
                     "sketch_qp": used_qp(s.sketch_codec, s.sketch_qp), "sketch_ds": s.sketch_ds,
                     "sketch_dt": s.sketch_dt, "sketch_frames": sketch["frames"],
                     "sketch_height": sketch["height"], "sketch_width": sketch["width"]})
        if "container_overhead_bytes" in sketch:
            meta["sketch_container_overhead_bytes"] = sketch["container_overhead_bytes"]
        if s.sketch_codec == "dcvc_rt":
            meta["sketch_dcvc_dir"] = s.sketch_dcvc_weights()
    if poses is not None:
        meta["pose_max_people"] = int(max(poses.poses_per_frame, default=0))
    if s.codec == "dcvc_rt":
        meta["dcvc_rt_dir"] = s.dcvc_rt_dir
    if s.stream != "full":  # what the receiver needs to put selected streams back (`codec.selection`)
        meta.update({"stream": s.stream, "interleave_ratio": s.ratio, "interleave_unit": s.interleave_unit})
    return meta
