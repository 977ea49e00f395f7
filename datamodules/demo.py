"""A small demo corpus: synthetic moving-shape videos with matching captions, as real H.264 mp4 files.

    python -m disco_train demo out=data/demo [videos=12]   # then `python -m disco_train prepare` makes shards
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from disco_train.config.cli import REQUIRED, Command, moved
from disco_train.io.video import write_video

COLORS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (50, 80, 230), "yellow": (235, 210, 40),
          "white": (240, 240, 240), "purple": (150, 60, 200)}
BACKGROUNDS = {"black": (10, 10, 10), "gray": (110, 110, 110), "navy": (20, 30, 90), "teal": (20, 110, 110)}
DIRECTIONS = {"right": (1, 0), "left": (-1, 0), "down": (0, 1), "up": (0, -1)}


def shape_video(rng: np.random.Generator, frames: int, height: int, width: int) -> tuple[np.ndarray, str]:
    """One clip of a square or disc gliding over a flat background, with its caption."""
    color, background, direction = (rng.choice(list(d)) for d in (COLORS, BACKGROUNDS, DIRECTIONS))
    shape = rng.choice(["square", "circle"])
    size = int(rng.integers(min(height, width) // 6, min(height, width) // 3))
    speed = float(rng.uniform(0.8, 2.0))
    dx, dy = DIRECTIONS[direction]
    x0, y0 = rng.uniform(size, width - size), rng.uniform(size, height - size)
    yy, xx = np.mgrid[0:height, 0:width]
    video = np.empty((frames, height, width, 3), np.uint8)
    video[:] = BACKGROUNDS[background]
    for t in range(frames):
        cx = (x0 + dx * speed * t) % width
        cy = (y0 + dy * speed * t) % height
        if shape == "circle":
            inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= (size / 2) ** 2
        else:
            inside = (abs(xx - cx) <= size / 2) & (abs(yy - cy) <= size / 2)
        video[t][inside] = COLORS[color]
    caption = f"a {color} {shape} moving {direction} across a {background} background"
    return video, caption


def outline_sketch(video: np.ndarray) -> np.ndarray:
    """A synthetic sketch of a demo clip [T,H,W,3]: dark lines on white where the luminance steps by more than 20
    between neighbouring pixels (the shapes' outlines: what a line drawing of these videos looks like)."""
    y = video.astype(np.float32).mean(-1)
    edge = np.abs(np.diff(y, axis=1, prepend=y[:, :1])) + np.abs(np.diff(y, axis=2, prepend=y[:, :, :1])) > 20
    return np.repeat(np.where(edge, 0, 255).astype(np.uint8)[..., None], 3, -1)


def make_demo(out: str | Path, videos: int = 12, seed: int = 0) -> Path:
    """Write `videos` mp4 files of varied sizes, rates and lengths plus captions.csv; returns the folder."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sizes = [(72, 96), (96, 96), (80, 112), (96, 128)]
    rows = []
    for i in range(videos):
        height, width = sizes[i % len(sizes)]
        frames = int(rng.choice([20, 26, 36]))
        fps = float(rng.choice([24.0, 25.0, 30.0]))
        video, caption = shape_video(rng, frames, height, width)
        name = f"shapes_{i:03d}.mp4"
        write_video(out / name, video, fps, crf=18)
        rows.append({"video": name, "caption": caption})
    with open(out / "captions.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["video", "caption"])
        writer.writeheader()
        writer.writerows(rows)
    return out


@dataclass
class DemoArgs:
    out: str = REQUIRED
    """Folder to write the demo videos and captions.csv into."""
    videos: int = 12
    """Number of videos."""
    seed: int = 0
    """Random seed of sizes, rates, lengths and content."""


COMMAND = Command("python -m disco_train demo", "A small demo corpus: synthetic videos (real H.264 mp4) with "
                  "captions.csv, for `make demo` and tests.", DemoArgs)


def main(argv: list[str]) -> int:
    def run(a: DemoArgs) -> None:
        print(f"demo videos in {make_demo(a.out, a.videos, a.seed)}")

    return COMMAND.main(argv, run, (ValueError, OSError))


if __name__ == "__main__":
    moved("datamodules.demo", COMMAND.prog)
    sys.exit(main(sys.argv[1:]))
