"""Videos -> WebDataset shards of DiSCo modalities (paper §3.1 sender side, §4.1 data).

    python -m datamodules.prepare input=<dir | glob | csv/jsonl> output=<shard dir> [key=value ...]

Re-running resumes: videos listed in <output>/index.jsonl (done) or failures.jsonl (skipped, with the reason) are
not processed again. A shard becomes visible only complete (written as .tmp, then renamed), and its videos are
recorded as done only after the rename, so a kill never leaves a partial shard or a half-recorded video.
"""

from __future__ import annotations

import glob
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import webdataset as wds
from tqdm import tqdm

from datamodules import captions as caption_table
from datamodules.degrade import degrade, resize_center_crop
from datamodules.schema import FORMAT_VERSION, bpp, sample_key
from disco_train.config import ConfigError, PrepareConfig
from disco_train.modalities import encode_text
from disco_train.video import VideoError, container_overhead, encode_bitstream, read_video, write_video

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
    if cfg.codec == "dcvc_rt":
        from disco_train.codecs.dcvc_rt.backend import encode_frames  # needs checkpoints/dcvc_rt/

        data = encode_frames(degraded, qp=cfg.qp if cfg.qp >= 0 else 32)
    else:
        data = encode_bitstream(degraded, fps / cfg.dt, cfg.codec, crf=cfg.crf, qp=qp)
    info = {"degraded_frames": int(degraded.shape[0]), "degraded_height": int(degraded.shape[1]),
            "degraded_width": int(degraded.shape[2])}
    if cfg.codec != "dcvc_rt":
        info["container_overhead_bytes"] = container_overhead(data, cfg.codec, fps / cfg.dt)
    return data, info


def clip_samples(path: Path, caption: str, cfg: PrepareConfig) -> list[dict]:
    """All samples of one video. Raises VideoError/ValueError with a one-line reason on bad input."""
    limit = cfg.frames * cfg.max_clips_per_video if cfg.max_clips_per_video else None
    frames, fps = read_video(path, max_frames=limit)
    count = len(frames) // cfg.frames
    if count == 0:
        raise VideoError(f"{len(frames)} frames, shorter than one clip of {cfg.frames}")
    text = encode_text(caption)
    samples = []
    for index in range(count):
        raw = frames[index * cfg.frames:(index + 1) * cfg.frames]
        clip, resized_up = resize_center_crop(raw, cfg.height, cfg.width)
        degraded, info = encode_degraded(clip, fps, cfg)
        bits = {"text": len(text) * 8, "video": len(degraded) * 8}
        meta = {"source": str(path), "clip_index": index, "start_frame": index * cfg.frames, "fps": fps,
                "frames": cfg.frames, "height": cfg.height, "width": cfg.width,
                "source_height": int(raw.shape[1]), "source_width": int(raw.shape[2]), "resized_up": resized_up,
                "ds": cfg.ds, "dt": cfg.dt, "codec": cfg.codec, "crf": cfg.crf, "qp": cfg.qp, **info,
                "bits": bits, "bpp": bpp(bits, cfg.frames, cfg.height, cfg.width), "format_version": FORMAT_VERSION}
        samples.append({"__key__": sample_key(path.stem, index), "video.mp4": write_video(None, clip, fps,
                        crf=cfg.target_crf), "caption.zlib": text, "degraded.bin": degraded,
                        "meta.json": json.dumps(meta).encode()})
    return samples


class ShardSink:
    """Buffers whole videos and writes complete shards atomically; records finished videos after each rename."""

    def __init__(self, output: Path, shard_size: int):
        self.output, self.shard_size = output, shard_size
        self.buffer: list[dict] = []
        self.videos: list[str] = []
        existing = sorted(output.glob("train-*.tar"))
        self.next_index = int(existing[-1].stem.split("-")[1]) + 1 if existing else 0
        for stale in output.glob("*.tar.tmp"):  # left by a killed run; its videos were never recorded as done
            stale.unlink()

    def add(self, video: str, samples: list[dict]) -> None:
        self.buffer.extend(samples)
        self.videos.append(video)
        if len(self.buffer) >= self.shard_size:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        final = self.output / f"train-{self.next_index:06d}.tar"
        tmp = final.with_suffix(".tar.tmp")
        with wds.TarWriter(str(tmp)) as sink:
            for sample in self.buffer:
                sink.write(sample)
        os.replace(tmp, final)
        with open(self.output / "index.jsonl", "a") as index:
            for video in self.videos:
                index.write(json.dumps({"video": video, "shard": final.name}) + "\n")
        self.next_index += 1
        self.buffer, self.videos = [], []


def _seen(output: Path) -> set[str]:
    seen = set()
    for name in ("index.jsonl", "failures.jsonl"):
        path = output / name
        if path.is_file():
            seen.update(json.loads(line)["video"] for line in path.read_text().splitlines() if line.strip())
    return seen


def run(cfg: PrepareConfig, log=print) -> dict:
    """Process every not-yet-seen video; returns counts {done, failed, skipped, samples}."""
    output = Path(cfg.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "prepare_config.json").write_text(json.dumps(asdict(cfg), indent=2))
    table = caption_table.load(cfg.captions, cfg.caption_key, cfg.caption_column) if cfg.captions else {}
    videos = list_videos(cfg.input)
    seen = _seen(output)
    todo = [v for v in videos if str(v) not in seen]
    sink, counts = ShardSink(output, cfg.shard_size), {"done": 0, "failed": 0, "skipped": len(videos) - len(todo),
                                                       "samples": 0}
    bar = tqdm(todo, desc="prepare", unit="video", dynamic_ncols=True)
    for video in bar:
        try:
            caption = table.get(video.name) or table.get(video.stem) or cfg.caption_default
            if not caption:
                raise ValueError(f"no caption in {cfg.captions or 'captions'} and caption_default is empty")
            samples = clip_samples(video, caption, cfg)
        except (VideoError, ValueError, OSError) as err:
            reason = str(err).replace(str(video) + ": ", "")
            log(f"skipped {video}: {reason}")
            with open(output / "failures.jsonl", "a") as failures:
                failures.write(json.dumps({"video": str(video), "reason": reason, "time": time.time()}) + "\n")
            counts["failed"] += 1
            continue
        sink.add(str(video), samples)
        counts["done"] += 1
        counts["samples"] += len(samples)
    sink.flush()
    return counts


def main(argv: list[str] | None = None) -> int:
    from disco_train.recipe import resolve

    try:
        cfg, _, _ = resolve(list(sys.argv[1:] if argv is None else argv), default_task="prepare")
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    counts = run(cfg)
    print(f"prepare: {counts['done']} videos -> {counts['samples']} clips, {counts['failed']} failed, "
          f"{counts['skipped']} already done; shards in {cfg.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
