"""Minimal video reading for evaluation (PyAV, which bundles FFmpeg in its wheel)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np


def iter_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Yield the frames of the first video stream as (H, W, 3) uint8 RGB arrays, in decode order.

    Streaming (rather than loading the whole clip) keeps memory bounded for long 1080p sequences such as
    UVG (600 frames ~ 3.7 GB as uint8). The project's one reader (`codec.videoio.iter_video`: raw .yuv / .y4m from
    the test-sequence name, and the display rotation every command applies, so a reference pairs with what
    encode and decode made of it).
    """
    path = Path(path)
    if path.is_dir():  # PNG frames, as `decode` writes a folder
        yield from _png_frames(path)
        return
    if not path.is_file():
        raise FileNotFoundError(f"video not found: {path}")
    from disco_train.codec.videoio import iter_video

    frames, _ = iter_video(path)
    yield from frames


def _png_frames(folder: Path) -> Iterator[np.ndarray]:
    from PIL import Image

    frames = sorted(folder.glob("*.png"))
    if not frames:
        raise FileNotFoundError(f"no PNG frames in {folder}")
    for p in frames:
        with Image.open(p) as image:
            yield np.asarray(image.convert("RGB"))


def read_video(path: str | Path) -> np.ndarray:
    """Decode a whole video into a (T, H, W, 3) uint8 RGB array."""
    frames = list(iter_frames(path))
    if not frames:
        raise ValueError(f"{path} contains no decodable frames")
    return np.stack(frames)


def iter_chunks(path: str | Path, chunk: int) -> Iterator[np.ndarray]:
    """Yield (n, H, W, 3) uint8 chunks of ``chunk`` consecutive frames (the last one may be shorter)."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    buf: list[np.ndarray] = []
    for frame in iter_frames(path):
        buf.append(frame)
        if len(buf) == chunk:
            yield np.stack(buf)
            buf = []
    if buf:
        yield np.stack(buf)


def write_video(path: str | Path, frames: np.ndarray, fps: int = 25, codec: str = "libx264",
                crf: int | None = None) -> Path:
    """Encode (T, H, W, 3) uint8 RGB frames (H, W even for yuv420p); used by tests and for quick anchors."""
    import av

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    path = Path(path)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        if crf is not None:
            stream.options = {"crf": str(crf)}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
