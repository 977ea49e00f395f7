"""Sketch clips for codec training (task `sketch_dcvc`): grayscale sketch videos in a folder, or the lossless
sketch frames of prepared shards (`sketch.mkv`, `prepare sketch=true sketch_frames=true`) -> YCbCr batches.

Source format. Codec training needs the raw sketch frames, not a sketch bitstream, so the source is a folder (or
glob) of sketch videos, one clip or one long sequence per file, read as grayscale (8 bit). The recommended storage
is lossless FFV1 with pix_fmt gray in .mkv (what `write_gray_video` and the synthetic generator write); x264 at
qp 0 also works. A sketch frame s (uint8) becomes YCbCr Y = s / 255, Cb = Cr = 0.5: exactly the BT.709 YCbCr of
the gray RGB frame (R = G = B), so the codec sees what it would see on the RGB sketch video.

Samples: a random window of `data.frames` consecutive frames, a random `height × width` crop and an optional
horizontal flip (the same for all frames of the clip), as DCVC-UF's video dataset. Batches are
{"frames": float [B,T,3,H,W] YCbCr in [0,1], "key": [str]}.

Synthetic data for debug runs and tests (black strokes on white, moving):
    python -m disco_train sketch-clips out=data/sketch_debug/clips [clips=8 frames=6 height=64 width=64 seed=0]
"""

from __future__ import annotations

import glob
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from datamodules.schema import SKETCH_FRAMES_FIELD
from datamodules.tars import MAX_MEMBER_BYTES, member_index, read_member
from disco_train.config import ConfigError
from disco_train.config.cli import REQUIRED, Command, moved
from disco_train.config import SketchDataConfig
from disco_train.io.video import count_frames, decode_gray, encode_gray

VIDEO_SUFFIXES = (".mkv", ".mp4", ".avi", ".mov", ".webm")


def write_gray_video(path: str | Path, frames: np.ndarray, fps: float = 24.0) -> Path:
    """uint8 [T,H,W] -> lossless FFV1 gray .mkv at `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    encode_gray(frames, fps, out=path)
    return path


def read_gray_video(path: str | Path, start: int = 0, count: int | None = None) -> np.ndarray:
    """Frames [start, start + count) as uint8 [T,H,W] (luma of colour sources)."""
    return decode_gray(path, start, count)


def gray_to_ycbcr(gray: torch.Tensor) -> torch.Tensor:
    """uint8 [..., H, W] -> float YCbCr [..., 3, H, W]: Y = s / 255, Cb = Cr = 0.5 (neutral chroma)."""
    y = gray.to(torch.float32).unsqueeze(-3) / 255.0
    return torch.cat((y, torch.full_like(y, 0.5), torch.full_like(y, 0.5)), dim=-3)


# ---- synthetic sketches -------------------------------------------------------------------------------------
def _draw_segment(canvas: np.ndarray, p0, p1, width: int) -> None:
    """Black line of `width` px from p0 to p1 (x, y), sampled at half-pixel steps; clipped at the borders."""
    h, w = canvas.shape
    n = int(max(abs(p1[0] - p0[0]), abs(p1[1] - p0[1])) * 2) + 2
    xs = np.linspace(p0[0], p1[0], n)
    ys = np.linspace(p0[1], p1[1], n)
    for dx in range(width):
        for dy in range(width):
            xi = np.clip(np.round(xs + dx - width // 2).astype(int), 0, w - 1)
            yi = np.clip(np.round(ys + dy - width // 2).astype(int), 0, h - 1)
            canvas[yi, xi] = 0


def sketch_frames(rng: np.random.Generator, frames: int, height: int, width: int, strokes: int = 4) -> np.ndarray:
    """A line drawing moving over white: `strokes` polylines and circle outlines, each with its own velocity."""
    shapes = []
    for _ in range(strokes):
        velocity = rng.uniform(-2.0, 2.0, size=2)
        if rng.random() < 0.5:  # polyline of 3-5 points
            points = rng.uniform((0, 0), (width, height), size=(int(rng.integers(3, 6)), 2))
            shapes.append(("line", points, velocity, int(rng.integers(1, 3))))
        else:  # circle outline as a 24-gon
            centre, radius = rng.uniform((0, 0), (width, height)), rng.uniform(4, min(height, width) / 4)
            angles = np.linspace(0, 2 * np.pi, 25)
            points = centre + radius * np.stack((np.cos(angles), np.sin(angles)), 1)
            shapes.append(("circle", points, velocity, 1))
    video = np.full((frames, height, width), 255, np.uint8)
    for t in range(frames):
        for _, points, velocity, stroke in shapes:
            moved = points + velocity * t
            for p0, p1 in zip(moved[:-1], moved[1:]):
                _draw_segment(video[t], p0, p1, stroke)
    return video


def make_sketch_clips(out: str | Path, clips: int = 8, frames: int = 6, height: int = 64, width: int = 64,
                      seed: int = 0) -> list[Path]:
    """Write `clips` synthetic sketch videos (FFV1 gray .mkv) to `out`; returns their paths."""
    rng = np.random.default_rng(seed)
    return [write_gray_video(Path(out) / f"sketch_{i:04d}.mkv", sketch_frames(rng, frames, height, width))
            for i in range(clips)]


# ---- dataset ------------------------------------------------------------------------------------------------
def find_clips(spec: str, key: str = "data.train_dir") -> list[Path]:
    """A folder (recursive) or a glob -> sorted sketch video paths. Raises ConfigError when there are none."""
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
    else:
        files = sorted(Path(p) for p in glob.glob(spec) if Path(p).suffix.lower() in VIDEO_SUFFIXES)
    if not files:
        raise ConfigError(f"{key}: no sketch videos ({', '.join(VIDEO_SUFFIXES)}) at {spec!r}; write some with "
                          f"`python -m disco_train sketch-clips out={spec}` (synthetic) or fix the path")
    return files


@dataclass(frozen=True)
class ShardClip:
    """The `sketch.mkv` member of one shard sample (`prepare sketch_frames=true`), read by offset on demand."""

    url: str
    key: str
    offset: int
    size: int
    frames: int

    @property
    def stem(self) -> str:
        return f"{Path(self.url).stem}/{self.key}"

    def __str__(self) -> str:
        return f"{self.url}:{self.key}"

    def read(self, start: int, count: int) -> np.ndarray:
        return decode_gray(read_member(self.url, self.offset, self.size), start, count)


def find_shard_clips(spec: str, max_member_bytes: int = MAX_MEMBER_BYTES) -> list[ShardClip]:
    """The sketch.mkv members of the shards `spec` names, with their frame counts from each sample's meta.json
    (only those two members are read). Raises ConfigError when there are none."""
    from datamodules.shards import expand_shards

    clips, urls = [], expand_shards(spec, "data.train_shards")
    for url in urls:
        for key, found in member_index(url, (SKETCH_FRAMES_FIELD, "meta.json"), max_member_bytes).items():
            if SKETCH_FRAMES_FIELD in found and "meta.json" in found:
                meta = json.loads(read_member(url, *found["meta.json"]))
                clips.append(ShardClip(url, key, *found[SKETCH_FRAMES_FIELD], int(meta["frames"])))
    if not clips:
        raise ConfigError(f"data.train_shards: no {SKETCH_FRAMES_FIELD} in the {len(urls)} shard(s) of {spec!r}; "
                          f"prepare them with sketch=true sketch_frames=true")
    return clips


class SketchClipDataset(Dataset):
    """Random windows and crops of sketch videos (files, or ShardClip members of shards); clips shorter or
    smaller than the sample are rejected upfront."""

    def __init__(self, files: list, cfg: SketchDataConfig):
        self.cfg = cfg
        self.files, self.lengths = [], []
        for path in files:
            n = path.frames if isinstance(path, ShardClip) else count_frames(path)
            self.files.append(path)
            self.lengths.append(n)
        short = [f"{p} ({n} frames)" for p, n in zip(self.files, self.lengths) if n < cfg.frames]
        if short:
            raise ConfigError(f"data.frames={cfg.frames}: clips too short: {', '.join(map(str, short[:5]))}")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        cfg, path = self.cfg, self.files[index]
        start = int(torch.randint(0, self.lengths[index] - cfg.frames + 1, ()))
        gray = torch.from_numpy(path.read(start, cfg.frames) if isinstance(path, ShardClip)
                                else read_gray_video(path, start, cfg.frames))
        _, h, w = gray.shape
        if h < cfg.height or w < cfg.width:
            raise ValueError(f"{path}: frames {h}×{w} are smaller than the crop {cfg.height}×{cfg.width}")
        top = int(torch.randint(0, h - cfg.height + 1, ()))
        left = int(torch.randint(0, w - cfg.width + 1, ()))
        gray = gray[:, top:top + cfg.height, left:left + cfg.width]
        if cfg.hflip and bool(torch.rand(()) < 0.5):
            gray = gray.flip(-1)
        return {"frames": gray_to_ycbcr(gray), "key": f"{path.stem}@{start}"}


class SketchClipDataModule(L.LightningDataModule):
    """Sketch videos in `cfg.train_dir` and the sketch.mkv members of `cfg.train_shards` -> batches
    {"frames": [B,T,3,H,W] YCbCr, "key"}."""

    def __init__(self, cfg: SketchDataConfig, seed: int = 0):
        super().__init__()
        self.cfg, self.seed = cfg, seed
        clips = []
        if cfg.train_dir:
            folder = Path(cfg.train_dir)
            if cfg.synthetic_clips > 0 and not (folder.is_dir() and any(folder.iterdir())):
                make_sketch_clips(folder, cfg.synthetic_clips, frames=max(cfg.frames, 4),
                                  height=max(cfg.height, 64), width=max(cfg.width, 64), seed=seed)
            clips += find_clips(cfg.train_dir)
        if cfg.train_shards:
            clips += find_shard_clips(cfg.train_shards)
        self.dataset = SketchClipDataset(clips, cfg)

    def train_dataloader(self) -> DataLoader:
        cfg = self.cfg
        generator = torch.Generator().manual_seed(self.seed)
        sampler = RandomSampler(self.dataset, replacement=cfg.epoch_length > 0,
                                num_samples=cfg.epoch_length or None, generator=generator)
        return DataLoader(self.dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers,
                          drop_last=len(self.dataset) >= cfg.batch_size or cfg.epoch_length > 0,
                          persistent_workers=cfg.num_workers > 0)


@dataclass
class SketchClipsArgs:
    out: str = REQUIRED
    """Folder to write the synthetic sketch clips (FFV1 gray .mkv) into."""
    clips: int = 8
    """Number of clips."""
    frames: int = 6
    """Frames per clip."""
    height: int = 64
    """Frame height."""
    width: int = 64
    """Frame width."""
    seed: int = 0
    """Random seed of the strokes."""


COMMAND = Command("python -m disco_train sketch-clips", "Synthetic sketch clips (black strokes on white, moving) "
                  "for sketch_dcvc debug runs and tests.", SketchClipsArgs)


def main(argv: list[str]) -> int:
    def run(a: SketchClipsArgs) -> None:
        paths = make_sketch_clips(a.out, clips=a.clips, frames=a.frames, height=a.height, width=a.width, seed=a.seed)
        print(f"{len(paths)} synthetic sketch clips in {a.out}")

    return COMMAND.main(argv, run, (ValueError, OSError))


if __name__ == "__main__":
    moved("datamodules.sketch_clips", COMMAND.prog)
    sys.exit(main(sys.argv[1:]))
