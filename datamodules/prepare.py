"""Videos -> WebDataset shards of DiSCo modalities (paper §3.1 sender side, §4.1 data).

    python -m datamodules.prepare input=<dir | glob | csv/jsonl> output=<shard dir> [key=value ...]

Re-running resumes: videos listed in <output>/index.jsonl (done) or failures.jsonl (skipped, with the reason) are
not processed again; see `datamodules.sink` for why a kill at any point leaves no partial shard, no duplicate and
no lost video. Optional stages (captioner, sketch, pose, precomputed latents) live in `datamodules.stages` and
`datamodules.latents`; they load before the first video, so missing weights fail at once and lose nothing.
"""

from __future__ import annotations

import glob
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from datamodules import captions as caption_table
from datamodules.latents import PrecomputeStage
from datamodules.schema import FORMAT_VERSION, STREAM_FIELDS, bpp, sample_key
from datamodules.sink import FAILURES, ShardSink, append_jsonl, reconcile
from datamodules.stages import CaptionStage, PoseStage, SketchStage, check_dcvc
from disco_train.codec import backends
from disco_train.codec.sender import SenderSettings, send_clip
from disco_train.codec.videoio import VideoError, read_video, write_video
from disco_train.config import ConfigError, PrepareConfig
from disco_train.config.cli import Command
from disco_train.modalities.degrade import resize_center_crop

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v"}


def list_videos(spec: str) -> list[Path]:
    """A folder (recursive), a glob, or a csv/jsonl whose first column / 'video' field holds paths."""
    path = Path(spec)
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
    if path.suffix in (".csv", ".jsonl") and path.is_file():
        return [Path(p) for p in caption_table.list_column(path, "video")]
    found = sorted(Path(p) for p in glob.glob(spec, recursive=True))
    if not found:
        raise ConfigError(f"input: {spec!r} matches no video (a folder, glob, or csv/jsonl list)")
    return found


class Pipeline:
    """The per-video work: clips, caption, degraded video and the optional stages (see `datamodules.stages`)."""

    def __init__(self, cfg: PrepareConfig):
        self.cfg, self.settings = cfg, SenderSettings.of(cfg)
        self.table = caption_table.load(cfg.captions, cfg.caption_key, cfg.caption_column) if cfg.captions else {}
        self.captioner = CaptionStage(cfg) if cfg.captioner else None
        self.sketch = SketchStage(cfg) if cfg.sketch else None
        self.pose = PoseStage(cfg) if cfg.pose else None
        self.precompute = PrecomputeStage(cfg) if cfg.precompute else None

    def preflight(self) -> None:
        """Load every neural stage (fails on missing modules or weights) before any video is processed."""
        if self.cfg.codec == "dcvc_rt":
            check_dcvc(self.cfg, "codec")
        for stage in [self.captioner, self.sketch, self.pose, self.precompute]:
            if stage is not None:
                stage.preflight()

    def caption(self, video: Path, clip: np.ndarray) -> tuple[str, str]:
        """(caption, where it came from): the captions file, else the captioner, else caption_default."""
        listed = self.table.get(video.name) or self.table.get(video.stem)
        if listed:
            return listed, "file"
        if self.captioner is not None:
            return self.captioner(clip), "captioner"
        if self.cfg.caption_default:
            return self.cfg.caption_default, "default"
        raise ValueError(f"no caption in {self.cfg.captions or 'captions'} and caption_default is empty")

    def samples(self, path: Path) -> list[dict]:
        """All samples of one video. Raises VideoError/ValueError with a one-line reason on bad input."""
        cfg = self.cfg
        limit = cfg.frames * cfg.max_clips_per_video if cfg.max_clips_per_video else None
        frames, fps = read_video(path, max_frames=limit)
        count = len(frames) // cfg.frames
        if count == 0:
            raise VideoError(f"{len(frames)} frames, shorter than one clip of {cfg.frames}")
        return [self.clip_sample(path, index, frames[index * cfg.frames:(index + 1) * cfg.frames], fps)
                for index in range(count)]

    def clip_sample(self, path: Path, index: int, raw: np.ndarray, fps: float) -> dict:
        cfg = self.cfg
        clip, resized_up = resize_center_crop(raw, cfg.height, cfg.width)
        caption, caption_source = self.caption(path, clip)
        sketch = self.sketch.extract(clip) if self.sketch else None
        poses = self.pose.estimate(clip) if self.pose else None
        streams, info = send_clip(clip, fps, caption, self.settings, sketch, poses)
        meta = {"source": str(path), "clip_index": index, "start_frame": index * cfg.frames, "fps": fps,
                "frames": cfg.frames, "height": cfg.height, "width": cfg.width,
                "source_height": int(raw.shape[1]), "source_width": int(raw.shape[2]), "resized_up": resized_up,
                "ds": cfg.ds, "dt": cfg.dt, "codec": cfg.codec, "crf": cfg.crf, "qp": cfg.qp,
                "target_crf": cfg.target_crf, "caption_source": caption_source,
                **stream_meta(info, cfg, poses), "bits": {s.kind: s.bits for s in streams},
                "format_version": FORMAT_VERSION}
        sample = {"__key__": sample_key(path.stem, index),
                  "video.mp4": write_video(None, clip, fps, crf=cfg.target_crf),
                  **{STREAM_FIELDS[s.kind]: s.data for s in streams}}
        if self.precompute is not None:
            self.precompute.apply(caption, sample, meta)
        meta["bpp"] = bpp(meta["bits"], cfg.frames, cfg.height, cfg.width)
        sample["meta.json"] = json.dumps(meta).encode()
        return sample


def stream_meta(info: dict[str, dict], cfg: PrepareConfig, poses) -> dict:
    """What meta.json records of the coded streams (schema: `datamodules.schema`)."""
    video = info["video"]
    meta = {"degraded_frames": video["frames"], "degraded_height": video["height"],
            "degraded_width": video["width"]}
    if "container_overhead_bytes" in video:
        meta["container_overhead_bytes"] = video["container_overhead_bytes"]
    if "sketch" in info:
        sketch = info["sketch"]
        meta.update({"sketch_codec": cfg.sketch_codec, "sketch_crf": cfg.sketch_crf, "sketch_qp": cfg.sketch_qp,
                     "sketch_ds": cfg.sketch_ds, "sketch_dt": cfg.sketch_dt, "sketch_frames": sketch["frames"],
                     "sketch_height": sketch["height"], "sketch_width": sketch["width"]})
        if "container_overhead_bytes" in sketch:
            meta["sketch_container_overhead_bytes"] = sketch["container_overhead_bytes"]
    if poses is not None:
        meta["pose_max_people"] = int(max(poses.poses_per_frame, default=0))
    return meta


# Keys that may change between runs into the same output without making old and new samples inconsistent.
RESUMABLE_KEYS = {"input", "output", "captions", "caption_key", "caption_column", "caption_default", "captioner",
                  "shard_size", "device", "seed", "print_config"}


def check_same_settings(output: Path, cfg: PrepareConfig) -> None:
    """A resumed run must make samples like the first run did; otherwise the shard folder would mix settings."""
    path = output / "prepare_config.json"
    if not path.is_file():
        return
    before, now = json.loads(path.read_text()), json.loads(json.dumps(asdict(cfg)))
    changed = sorted(k for k in set(before) | set(now) if k not in RESUMABLE_KEYS and before.get(k) != now.get(k))
    if changed:
        detail = ", ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in changed)
        raise ConfigError(f"output={output} was prepared with other settings ({detail}); use a new output folder "
                          f"or the old values")


INPUT_ERRORS = (VideoError, ValueError, OSError, backends.CodecUnavailable)
MAX_UNEXPECTED_IN_A_ROW = 5  # unexpected errors on this many consecutive videos look systematic: stop


def _record_failure(output: Path, video: Path, err: Exception, log) -> None:
    """One log line and one failures.jsonl row. Errors that are not about the input (a stage crashing, out of
    memory) are marked retry: a later run tries those videos again instead of skipping them for good."""
    expected = isinstance(err, INPUT_ERRORS)
    reason = str(err).replace(str(video) + ": ", "").replace("\n", " ")
    reason = reason if expected else f"{type(err).__name__}: {reason}"
    log(f"skipped {video}: {reason}" + ("" if expected else " (will be retried by the next run)"))
    append_jsonl(output / FAILURES, [{"video": str(video), "reason": reason, "time": time.time(),
                                      **({} if expected else {"retry": True})}])


def run(cfg: PrepareConfig, log=print) -> dict:
    """Process every not-yet-seen video; returns counts {done, failed, skipped, samples}."""
    output = Path(cfg.output)
    output.mkdir(parents=True, exist_ok=True)
    check_same_settings(output, cfg)
    videos = list_videos(cfg.input)
    pipeline = Pipeline(cfg)
    pipeline.preflight()
    (output / "prepare_config.json").write_text(json.dumps(asdict(cfg), indent=2))
    seen = reconcile(output)
    todo = [v for v in videos if str(v) not in seen]
    sink = ShardSink(output, cfg.shard_size)
    counts = {"done": 0, "failed": 0, "skipped": len(videos) - len(todo), "samples": 0}
    unexpected_in_a_row = 0
    # unit "video": tqdm shows videos/s and the ETA; the postfix adds clips and failures so far.
    bar = tqdm(todo, desc="prepare", unit="video", dynamic_ncols=True, mininterval=1.0)
    for video in bar:
        try:
            samples = pipeline.samples(video)
        except Exception as err:  # a bad video must not stop the run; a systematic error must (below)
            _record_failure(output, video, err, log)
            counts["failed"] += 1
            unexpected_in_a_row = 0 if isinstance(err, INPUT_ERRORS) else unexpected_in_a_row + 1
            if unexpected_in_a_row >= MAX_UNEXPECTED_IN_A_ROW:
                sink.flush()
                raise RuntimeError(f"{unexpected_in_a_row} videos in a row failed with errors that are not about "
                                   f"their input (last: {type(err).__name__}: {err}); stopping. Finished shards "
                                   f"are kept; fix the cause and re-run to resume") from err
            continue
        unexpected_in_a_row = 0
        sink.add(str(video), samples)
        counts["done"] += 1
        counts["samples"] += len(samples)
        bar.set_postfix(clips=counts["samples"], failed=counts["failed"], refresh=False)
    sink.flush()
    bar.close()
    return counts


COMMAND = Command("python -m datamodules.prepare", "Videos -> WebDataset shards of DiSCo modalities (caption, "
                  "degraded video, and sketch / pose / latents when asked).", PrepareConfig, task="prepare")


def main(argv: list[str] | None = None) -> int:
    def body(cfg: PrepareConfig) -> None:
        counts = run(cfg)
        print(f"prepare: {counts['done']} videos -> {counts['samples']} clips, {counts['failed']} failed, "
              f"{counts['skipped']} already done; shards in {cfg.output}")

    # ConfigError also covers a stage's missing module or weights and an output folder with other settings.
    return COMMAND.main(list(sys.argv[1:] if argv is None else argv), body)


if __name__ == "__main__":
    sys.exit(main())
