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
from datamodules import codecs
from datamodules.degrade import degrade, resize_center_crop
from datamodules.latents import PrecomputeStage
from datamodules.schema import FORMAT_VERSION, bpp, sample_key
from datamodules.sink import FAILURES, ShardSink, append_jsonl, reconcile
from datamodules.stages import CaptionStage, PoseStage, SketchStage, check_dcvc
from disco_train.config import ConfigError
from disco_train.config_prepare import PrepareConfig
from disco_train.modalities import encode_text
from disco_train.video import VideoError, read_video, write_video

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


def encode_degraded(clip: np.ndarray, fps: float, cfg: PrepareConfig) -> tuple[bytes, dict]:
    """Degrade (keep 1/D_t frames, downsample by D_s) and code with the configured backend."""
    degraded = degrade(clip, cfg.ds, cfg.dt)
    qp = cfg.qp if cfg.qp >= 0 else None
    data, info = codecs.encode(cfg.codec, degraded, fps / cfg.dt, crf=cfg.crf, qp=qp, weights_dir=cfg.dcvc_rt_dir)
    return data, {"degraded_frames": int(degraded.shape[0]), "degraded_height": int(degraded.shape[1]),
                  "degraded_width": int(degraded.shape[2]), **info}


class Pipeline:
    """The per-video work: clips, caption, degraded video and the optional stages (see `datamodules.stages`)."""

    def __init__(self, cfg: PrepareConfig):
        self.cfg = cfg
        self.table = caption_table.load(cfg.captions, cfg.caption_key, cfg.caption_column) if cfg.captions else {}
        self.captioner = CaptionStage(cfg) if cfg.captioner else None
        self.aux = [stage(cfg) for flag, stage in ((cfg.sketch, SketchStage), (cfg.pose, PoseStage)) if flag]
        self.precompute = PrecomputeStage(cfg) if cfg.precompute else None

    def preflight(self) -> None:
        """Load every neural stage (fails on missing modules or weights) before any video is processed."""
        if self.cfg.codec == "dcvc_rt":
            check_dcvc(self.cfg, "codec")
        for stage in [self.captioner, *self.aux, self.precompute]:
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
        text = encode_text(caption)
        degraded, info = encode_degraded(clip, fps, cfg)
        meta = {"source": str(path), "clip_index": index, "start_frame": index * cfg.frames, "fps": fps,
                "frames": cfg.frames, "height": cfg.height, "width": cfg.width,
                "source_height": int(raw.shape[1]), "source_width": int(raw.shape[2]), "resized_up": resized_up,
                "ds": cfg.ds, "dt": cfg.dt, "codec": cfg.codec, "crf": cfg.crf, "qp": cfg.qp,
                "target_crf": cfg.target_crf, "caption_source": caption_source, **info,
                "bits": {"text": len(text) * 8, "video": len(degraded) * 8}, "format_version": FORMAT_VERSION}
        sample = {"__key__": sample_key(path.stem, index),
                  "video.mp4": write_video(None, clip, fps, crf=cfg.target_crf), "caption.zlib": text,
                  "degraded.bin": degraded}
        for stage in self.aux:
            stage.apply(clip, fps, sample, meta)
        if self.precompute is not None:
            self.precompute.apply(caption, sample, meta)
        meta["bpp"] = bpp(meta["bits"], cfg.frames, cfg.height, cfg.width)
        sample["meta.json"] = json.dumps(meta).encode()
        return sample


# Keys that may change between runs into the same output without making old and new samples inconsistent.
RESUMABLE_KEYS = {"input", "output", "captions", "caption_key", "caption_column", "caption_default", "captioner",
                  "shard_size", "device", "seed"}


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


INPUT_ERRORS = (VideoError, ValueError, OSError, codecs.CodecUnavailable)
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


def main(argv: list[str] | None = None) -> int:
    from disco_train.recipe import resolve

    try:
        cfg, _, _ = resolve(list(sys.argv[1:] if argv is None else argv), default_task="prepare")
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        counts = run(cfg)
    except ConfigError as err:  # a stage's module or weights are missing, or the output has other settings
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"prepare: {counts['done']} videos -> {counts['samples']} clips, {counts['failed']} failed, "
          f"{counts['skipped']} already done; shards in {cfg.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
