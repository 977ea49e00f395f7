"""Lossless grayscale video (FFV1, pix_fmt gray, Matroska): how sketch frames are stored for sketch-codec training,
as files (`datamodules.sketch_clips`) or as the `sketch.mkv` member of a shard sample (`prepare sketch_frames=true`).
"""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np

from disco_train.codec.videoio import mux_ffv1


def encode_gray(frames: np.ndarray, fps: float = 24.0, out: str | Path | None = None) -> bytes:
    """uint8 [T,H,W] -> FFV1 gray .mkv bytes (also written to `out` when given)."""
    frames = np.asarray(frames)
    if frames.ndim != 3 or frames.dtype != np.uint8 or frames.shape[0] == 0:
        raise ValueError(f"expected uint8 frames [T,H,W] with T >= 1, got {frames.dtype} {frames.shape}")
    buffer = io.BytesIO()
    mux_ffv1(buffer, frames, fps, "gray", "gray")
    data = buffer.getvalue()
    if out is not None:
        Path(out).write_bytes(data)
    return data


def decode_gray(source: bytes | str | Path, start: int = 0, count: int | None = None) -> np.ndarray:
    """Frames [start, start + count) of a video (bytes or a path) as uint8 [T,H,W] (luma of colour sources)."""
    name = "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
    frames = []
    with av.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else str(source)) as container:
        for index, frame in enumerate(container.decode(container.streams.video[0])):
            if index >= start:
                frames.append(frame.to_ndarray(format="gray"))
            if count is not None and len(frames) >= count:
                break
    if not frames or (count is not None and len(frames) < count):
        raise ValueError(f"{name}: needed frames {start}..{start + (count or 1) - 1}, the video has fewer")
    return np.stack(frames)
