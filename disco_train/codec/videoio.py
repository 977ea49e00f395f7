"""Video files in and out: source videos for the sender, reference clips and reconstructions.

Frames are uint8 numpy arrays [T, H, W, 3] (RGB) everywhere in the project. `read_video` / `iter_video` are the one
reader of prepare, encode, evaluate and benchmark:
- raw `.yuv` (planar 4:2:0, 8- or 10-bit little-endian, the form of HEVC-B, UVG and MCL-JCV) and `.y4m`, in
  `rawyuv` (size, fps and bit depth from the usual test-sequence names, or given);
- anything else PyAV reads; decord first for whole files (fast seeking; decord 0.6.0 fails on some frame widths,
  measured: 48 px, so a decord error falls back to PyAV).

Writing: `write_video` (H.264 mp4, lossy: for viewing and training targets), `write_lossless` (FFV1 in .mkv, RGB
bgr0: every pixel back exactly) and `write_frames` (a folder of PNGs). `write_output` picks by path.
"""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from disco_train.config.base import DecodeError


class VideoError(DecodeError):
    """A video file or bitstream could not be read or written."""


# libx265 4.2 as shipped in the PyAV 18 wheel corrupts the heap on some tiny frames (measured: 32×48, 16×48
# abort the process), so x265 is only used from 64 px per side (512/8 = 64, the smallest paper setting).
X265_MIN_SIDE = 64


def read_video(source: str | Path | bytes, max_frames: int | None = None, yuv=None) -> tuple[np.ndarray, float]:
    """Decode a whole video (file path or mp4 bytes) -> (frames [T,H,W,3] uint8, fps). `yuv`: a
    `rawyuv.YuvFormat` (or its fields as a dict) for .yuv files whose names do not say their format."""
    if not isinstance(source, (bytes, bytearray)) and Path(source).suffix.lower() in RAW_SUFFIXES:
        frames, fps = iter_video(source, max_frames, yuv)
        stacked = list(frames)
        if not stacked:
            raise VideoError(f"{source}: no frames")
        return np.stack(stacked), fps
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


RAW_SUFFIXES = (".yuv", ".y4m")


def iter_video(path: str | Path, max_frames: int | None = None, yuv=None) -> tuple[Iterator[np.ndarray], float]:
    """(frames, fps): the frames [H,W,3] uint8 one at a time (bounded memory: a 600-frame 1080p sequence is
    3.7 GB as uint8), for any file `read_video` reads."""
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: no such file")
    if path.suffix.lower() in RAW_SUFFIXES:
        from disco_train.codec import rawyuv

        return rawyuv.iter_raw(path, max_frames, yuv)
    try:
        container = av.open(str(path))
        stream = container.streams.video[0]
    except (av.FFmpegError, IndexError, OSError) as err:
        raise VideoError(f"{path}: unreadable video ({err})") from None
    fps = float(stream.average_rate or stream.guessed_rate or 0) or 24.0
    return _iter_pyav(container, stream, path, max_frames), fps


def probe_fps(path: str | Path, yuv=None) -> float:
    """The frame rate of a video file, without decoding it (raw .yuv: from its name or `yuv`)."""
    path = Path(path)
    if path.suffix.lower() in RAW_SUFFIXES:
        return iter_video(path, 0, yuv)[1]
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            return float(stream.average_rate or stream.guessed_rate or 0) or 24.0
    except (av.FFmpegError, IndexError, OSError) as err:
        raise VideoError(f"{path}: unreadable video ({err})") from None


def _iter_pyav(container, stream, path: Path, max_frames: int | None) -> Iterator[np.ndarray]:
    stream.thread_type = "AUTO"  # frame+slice threading: sequential decoding is PyAV's fast path
    count = 0
    with container:
        try:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")
                count += 1
                if max_frames is not None and count >= max_frames:
                    return
        except av.FFmpegError as err:
            raise VideoError(f"{path}: unreadable video after {count} frames ({err})") from None


def yuv420p(frame: np.ndarray) -> "av.VideoFrame":
    """An RGB frame converted to 4:2:0 by one swscale thread. PyAV's implicit conversion inside `encode`, and a
    sliced multi-threaded one, give different bytes from run to run (measured with PyAV 18's wheel: 5 different
    streams in 40 encodes of one 64×64 clip; about 1 in 30 runs of a 32×32 clip under load); one thread gave one
    stream in 600 encodes, so the same frames code to the same stream in any process."""
    return av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p", threads=1)


def write_video(target: str | Path | None, frames: np.ndarray, fps: float, codec: str = "libx264",
                crf: int | None = 18) -> bytes:
    """Encode frames into an mp4 (H.264 4:2:0 by default, lossy). Writes `target` if given; returns the mp4 bytes.
    `codec='libx264rgb'` codes the RGB frames at qp 0 instead: lossless (the crf is not used)."""
    rgb = codec == "libx264rgb"
    check_frames(frames, even=not rgb)
    if codec == "libx265" and min(frames.shape[1:3]) < X265_MIN_SIDE:
        raise VideoError(f"libx265 needs frames of at least {X265_MIN_SIDE} px per side, got "
                         f"{frames.shape[1]}×{frames.shape[2]}")
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "rgb24" if rgb else "yuv420p"
        if rgb:
            stream.options = {"qp": "0", "preset": "veryfast"}
        elif codec == "libx265":
            stream.options = {"x265-params": f"crf={crf}:info=0:log-level=error"}
        else:
            stream.options = {"crf": str(crf)}
        for frame in frames:
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24") if rgb else yuv420p(frame)
            for packet in stream.encode(picture):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = buffer.getvalue()
    if target is not None:
        Path(target).write_bytes(data)
    return data


def check_frames(frames: np.ndarray, even: bool = True) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
        raise VideoError(f"expected uint8 frames [T,H,W,3], got {frames.dtype} {tuple(frames.shape)}")
    if even and (frames.shape[1] % 2 or frames.shape[2] % 2):
        raise VideoError(f"4:2:0 video needs even height and width, got {frames.shape[1]}×{frames.shape[2]}")


def mux_ffv1(target, frames: np.ndarray, fps: float, pix_fmt: str, frame_format: str) -> None:
    """frames -> FFV1 in Matroska at `target` (a path or a binary file object): the one lossless writer, of RGB
    reconstructions (pix_fmt bgr0 from rgb24) and of gray sketches (gray from gray)."""
    with av.open(target if hasattr(target, "write") else str(target), "w", format="matroska") as container:
        stream = container.add_stream("ffv1", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format=frame_format)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_lossless(target: str | Path, frames: np.ndarray, fps: float) -> Path:
    """FFV1 in Matroska, RGB (bgr0): decodes to exactly these frames. Written to a temporary sibling, then renamed."""
    check_frames(frames, even=False)
    target = Path(target)
    tmp = target.with_name(f".{target.name}.tmp.mkv")
    mux_ffv1(tmp, frames, fps, "bgr0", "rgb24")
    tmp.replace(target)
    return target


def write_frames(folder: str | Path, frames: np.ndarray) -> Path:
    """One lossless PNG per frame, `folder/000000.png` on."""
    from PIL import Image

    check_frames(frames, even=False)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        tmp = folder / f".{i:06d}.png.tmp"
        Image.fromarray(frame).save(tmp, format="PNG")
        tmp.replace(folder / f"{i:06d}.png")
    return folder


def output_kind(target: str | Path, crf: int | None = None) -> str:
    """How `write_output` writes `target`, in words; a target it cannot write raises VideoError (checked before
    any decoding starts)."""
    target = Path(target)
    suffix = target.suffix.lower()
    if crf is not None and suffix != ".mp4":
        raise VideoError(f"crf={crf}: a lossy viewing copy is an .mp4 (got {target})")
    if target.is_dir() or not suffix:
        return "lossless PNG frames"
    if suffix == ".mkv":
        return "lossless FFV1"
    if suffix == ".mp4":
        return f"lossy H.264 4:2:0 at crf {crf}" if crf is not None else "lossless H.264 RGB at qp 0"
    raise VideoError(f"{target}: write a folder (PNG frames), .mkv (FFV1, lossless) or .mp4 (H.264)")


def write_output(target: str | Path, frames: np.ndarray, fps: float, crf: int | None = None) -> str:
    """A reconstruction to disk, lossless unless a CRF asks for a viewing copy: a path without a suffix (or an
    existing folder) -> PNG frames; .mkv -> FFV1; .mp4 -> libx264rgb at qp 0 (lossless RGB) or, with `crf`, x264
    4:2:0 (lossy). Returns `output_kind`."""
    kind = output_kind(target, crf)
    if kind.endswith("PNG frames"):
        write_frames(target, frames)
    elif kind.endswith("FFV1"):
        write_lossless(target, frames, fps)
    else:
        write_video(target, frames, fps, codec="libx264" if crf is not None else "libx264rgb", crf=crf)
    return kind
