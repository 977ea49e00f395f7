"""Bytes of full vs selected streams (`condition.stream`, `disco_train.codec.selection`) on the demo corpus.

    python bench/bench_selected.py                      # the demo shards' clips: 64×64×17, 8 clips
    python bench/bench_selected.py --size 256 --frames 57 --videos 4   # larger demo clips: less per-frame overhead

Clips are cut and resized as `prepare` does for the `demo_shards` fixture (`datamodules.demo` videos, seed 1, two
clips a video) and coded as it does: video D_s = D_t = 4 x264 CRF 30, sketch x264 CRF 35 at D_s = D_t = 1 (prepare's
defaults). Two sketch sources: InformativeDrawings with random weights (what the tests' sketch stage produces:
a low-contrast texture) and synthetic outlines (the shapes' edges, dark on white: what a line drawing of them
looks like). For each pattern the table gives the video and sketch payload bytes summed over the clips, and the
PSNR of the pixels the decoder's tokens read (the owned 32×32 blocks of each stream's restored frames), selected
against full: the decoder input differs only by how the codec coded the carried pixels. `--flat mean` codes the
flattened blocks as each block's mean instead of mid-grey (the alternative `selection.FLAT` was measured against).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from tempfile import TemporaryDirectory

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from datamodules.demo import outline_sketch  # noqa: E402
from disco_train.codec import selection  # noqa: E402
from disco_train.codec.container import FULL, Pattern  # noqa: E402
from disco_train.codec.receiver import restore_video  # noqa: E402
from disco_train.codec.sender import send_clip
from disco_train.config.send import SendSettings  # noqa: E402
from disco_train.config.geometry import SPATIAL, TEMPORAL, latent_grid  # noqa: E402
from disco_train.modalities.interleave import latent_ownership  # noqa: E402

PATTERNS = [FULL] + [Pattern("selected", unit, *ratio) for unit in ("token", "latent_frame")
                     for ratio in ((1, 1), (1, 3), (3, 1))]
VIDEO = {"ds": 4, "dt": 4, "codec": "x264", "crf": 30}


def demo_clips(videos: int, frames: int, size: int) -> list[tuple[np.ndarray, float]]:
    """The demo corpus cut into clips as prepare cuts it (max_clips_per_video=2); other sizes: the demo's moving
    shapes drawn at that size and length directly (its videos are 20-36 frames long), one clip each at 24 fps."""
    from datamodules.demo import make_demo, shape_video
    from disco_train.io.video import read_video
    from disco_train.modalities.degrade import resize_center_crop

    if (frames, size) != (17, 64):
        rng = np.random.default_rng(1)
        return [(shape_video(rng, frames, size, size)[0], 24.0) for _ in range(videos)]
    clips = []
    with TemporaryDirectory() as tmp:
        folder = make_demo(Path(tmp), videos=videos, seed=1)
        for path in sorted(folder.glob("*.mp4")):
            video, fps = read_video(path)
            for i in range(min(2, len(video) // frames)):
                clips.append((resize_center_crop(video[i * frames:(i + 1) * frames], size, size)[0], fps))
    return clips


def generator_sketches(clips) -> list[np.ndarray]:
    import torch

    from disco_train.modalities.sketch import SketchGenerator, extract_sketches

    torch.manual_seed(0)
    generator = SketchGenerator().eval()
    return [np.repeat(extract_sketches(generator, clip)[..., None], 3, -1) for clip, _ in clips]


def owned_pixels(pattern: Pattern, side: str, frames: int, size: int) -> np.ndarray:
    """bool [T, H, W]: the pixels of the tokens `side` describes (all of them for full streams)."""
    grid = latent_grid(frames, size, size)
    if pattern == FULL:
        return np.ones((frames, size, size), bool)
    own = latent_ownership(grid, (pattern.a, pattern.b), pattern.unit)
    mine = own if side == "video" else ~own
    latent = (np.arange(frames) + TEMPORAL - 1) // TEMPORAL
    block = np.arange(size) // SPATIAL
    return mine[latent][:, block][:, :, block]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def measure(clips, sketches, pattern: Pattern) -> tuple[int, int, list, list]:
    """Bytes of the video and sketch streams over the clips, and each stream's restored frames."""
    s = SendSettings(**VIDEO, stream=pattern.stream,
                       **({} if pattern == FULL else {"ratio": f"{pattern.a}:{pattern.b}",
                                                      "interleave_unit": pattern.unit}))
    sizes, restored = {"video": 0, "sketch": 0}, {"video": [], "sketch": []}
    for (clip, fps), sketch in zip(clips, sketches):
        streams, _ = send_clip(clip, fps, "x", s, sketch)
        t, h, w = clip.shape[:3]
        for stream in streams[1:]:
            sizes[stream.kind] += len(stream.data)
            restored[stream.kind].append(restore_video(stream.data, stream.codec, stream.ds, stream.dt, t, h, w,
                                                       "forward", kind=stream.kind, pattern=pattern))
    return sizes["video"], sizes["sketch"], restored["video"], restored["sketch"]


def block_mean_select(small, carried, needed, ds):
    """`selection.select` with each flattened block at its own mean (per frame and channel)."""
    out = np.array(small[carried])
    b = SPATIAL // ds
    k, h, w, c = out.shape
    mean = out.reshape(k, h // b, b, w // b, b, c).mean((2, 4), keepdims=True).round().astype(np.uint8)
    mean = np.broadcast_to(mean, (k, h // b, b, w // b, b, c)).reshape(out.shape)
    rows = needed[:, (np.arange(h) * ds) // SPATIAL]
    pixels = rows[:, :, (np.arange(w) * ds) // SPATIAL]
    out[~pixels] = mean[~pixels]
    return out


def table(clips, sketches, name: str) -> None:
    frames, size = clips[0][0].shape[:2]
    print(f"\n{name}: {len(clips)} clips of {size}×{size}×{frames}\n")
    print("| pattern | video bytes | sketch bytes | total | saved | PSNR read pixels video / sketch (dB) |")
    print("|---|---:|---:|---:|---:|---|")
    full = None
    for pattern in PATTERNS:
        video, sketch, rv, rs = measure(clips, sketches, pattern)
        full = full or (video + sketch, rv, rs)
        q = [np.mean([psnr(a[m], b[m]) for a, b in zip(ours, base)]) if m.any() else float("nan")
             for ours, base, side in ((rv, full[1], "video"), (rs, full[2], "aux"))
             for m in [owned_pixels(pattern, side, frames, size)]]  # nan: the decoder reads none of the stream
        label = "full" if pattern == FULL else f"selected {pattern.unit} {pattern.a}:{pattern.b}"
        saved = 1 - (video + sketch) / full[0]
        print(f"| {label} | {video:,} | {sketch:,} | {video + sketch:,} | {saved:.0%} | "
              f"{q[0]:.1f} / {q[1]:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--flat", choices=["grey", "mean"], default="grey")
    args = parser.parse_args()
    if args.flat == "mean":
        selection.select = block_mean_select
    clips = demo_clips(args.videos, args.frames, args.size)
    table(clips, generator_sketches(clips), "sketch: InformativeDrawings, random weights")
    table(clips, [outline_sketch(c) for c, _ in clips], "sketch: synthetic outlines")


if __name__ == "__main__":
    main()
