"""Video files in and out: source videos for the sender, reference clips and reconstructions.

Frames are uint8 numpy arrays [T, H, W, 3] (RGB) everywhere in the project. Reading uses decord (fast seeking);
decord 0.6.0 fails on some frame widths (measured: 48 px), so a decord error falls back to PyAV.
"""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from disco_train.config.base import DecodeError


class VideoError(DecodeError):
    """A video file or bitstream could not be read or written."""


# libx265 4.2 as shipped in the PyAV 18 wheel corrupts the heap on some tiny frames (measured: 32×48, 16×48
# abort the process), so x265 is only used from 64 px per side (512/8 = 64, the smallest paper setting).
X265_MIN_SIDE = 64


def read_video(source: str | Path | bytes, max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """Decode a whole video (file path or mp4 bytes) -> (frames [T,H,W,3] uint8, fps)."""
    if not isinstance(source, (bytes, bytearray)):
        try:
            return _read_decord(str(source), max_frames)
        except VideoError:
            raise
        except Exception:  # decord raises its own DECORDError/RuntimeError types; PyAV gives the real verdict
            pass
    return _read_pyav(source, max_frames)


def _read_decord(path: str, max_frames: int | None) -> tuple[np.ndarray, float]:
    import decord

    if not Path(path).is_file():
        raise VideoError(f"{path}: no such file")
    reader = decord.VideoReader(path, num_threads=1)
    count = len(reader) if max_frames is None else min(len(reader), max_frames)
    if count == 0:
        raise VideoError(f"{path}: no frames")
    frames = reader.get_batch(list(range(count))).asnumpy()
    return frames, float(reader.get_avg_fps())


def _read_pyav(source, max_frames: int | None) -> tuple[np.ndarray, float]:
    handle = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else str(source)
    frames = []
    try:
        with av.open(handle) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0) or 24.0
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except (av.FFmpegError, IndexError, OSError) as err:
        name = "<bytes>" if isinstance(source, (bytes, bytearray)) else source
        raise VideoError(f"{name}: unreadable video ({err})") from None
    if not frames:
        raise VideoError(f"{'<bytes>' if isinstance(source, (bytes, bytearray)) else source}: no frames")
    return np.stack(frames), fps


def write_video(target: str | Path | None, frames: np.ndarray, fps: float, codec: str = "libx264",
                crf: int = 18) -> bytes:
    """Encode frames into an mp4 (H.264 by default). Writes `target` if given; returns the mp4 bytes."""
    check_frames(frames)
    if codec == "libx265" and min(frames.shape[1:3]) < X265_MIN_SIDE:
        raise VideoError(f"libx265 needs frames of at least {X265_MIN_SIDE} px per side, got "
                         f"{frames.shape[1]}×{frames.shape[2]}")
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = ({"x265-params": f"crf={crf}:log-level=error"} if codec == "libx265"
                          else {"crf": str(crf)})
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = buffer.getvalue()
    if target is not None:
        Path(target).write_bytes(data)
    return data


def check_frames(frames: np.ndarray) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise VideoError(f"expected uint8 frames [T,H,W,3], got {frames.dtype} {tuple(frames.shape)}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise VideoError(f"4:2:0 video needs even height and width, got {frames.shape[1]}×{frames.shape[2]}")
