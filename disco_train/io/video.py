"""Video files in and out, the one home of PyAV containers: source videos, reference clips, reconstructions,
sketch videos.

Frames are uint8 numpy arrays [T, H, W, 3] (RGB) everywhere in the project (gray sketches: [T, H, W]).
`read_video` / `iter_video` are the one reader of prepare, encode, evaluate and benchmark:
- raw `.yuv` (planar 4:2:0, 8- or 10-bit little-endian, the form of HEVC-B, UVG and MCL-JCV) and `.y4m`, in
  `rawyuv` (size, fps and bit depth from the usual test-sequence names, or given);
- anything else PyAV reads, frame by frame (one reader and one rotation policy everywhere: a display rotation is
  applied; decord, once used for whole files, applied it where PyAV did not, so encode and evaluate disagreed).
`iter_frames` / `iter_chunks` / `read_frames` also take a folder of PNG frames (what `decode` writes) and, for
`read_frames`, an exact `.npy` array (DCVC-RT's command line).

Writing: `write_video` (H.264 mp4, lossy: for viewing and training targets), `write_lossless` (FFV1 in .mkv, RGB
bgr0: every pixel back exactly), `write_png_frames` (a folder of PNGs); `write_output` picks one by path.
`write_with_vcodec` writes any container with a named PyAV encoder (or a .npy); `encode_gray` / `decode_gray` are
the lossless gray sketch videos; `mux_mp4` wraps an elementary stream without re-encoding it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction
from itertools import islice
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from disco_train.io import rawyuv
from disco_train.io.errors import TooLarge, VideoError
from disco_train.io.files import atomic_open

# libx265 4.2 as shipped in the PyAV 18 wheel corrupts the heap on some tiny frames (measured: 32×48, 16×48
# abort the process), so x265 is only used from 64 px per side (512/8 = 64, the smallest paper setting).
X265_MIN_SIDE = 64


def read_video(source: str | Path | bytes, max_frames: int | None = None, yuv=None, max_bytes: int | None = None,
               size: tuple[int, int] | None = None) -> tuple[np.ndarray, float]:
    """Decode a video (file path or mp4 bytes) -> (frames [T,H,W,3] uint8, fps), streamed by `iter_video`: at most
    `max_frames` frames and `max_bytes` bytes of them (a file declaring more is refused before decoding, one
    that holds more when it is reached), each of `size` (height, width) when given. `yuv`: a `rawyuv.YuvFormat`
    (or its fields as a dict) for .yuv files whose names do not say their format."""
    stream, fps = iter_video(source, max_frames, yuv, max_bytes, size)
    frames = list(stream)
    if not frames:
        raise VideoError(f"{_name(source)}: no frames")
    return np.stack(frames), fps


RAW_SUFFIXES = (".yuv", ".y4m")
VIDEO_SUFFIXES = (".yuv", ".y4m", ".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".ts", ".mpg", ".mpeg")
"""What the project reads as a video file (PyAV's containers, raw .yuv and .y4m)."""


def _name(source) -> str:
    return "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)


def _open(source: str | Path | bytes):
    """(container, its first video stream) of a path or bytes; anything PyAV cannot open is a VideoError."""
    try:
        container = av.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else str(source))
    except (av.FFmpegError, OSError) as err:
        raise VideoError(f"{_name(source)}: unreadable video ({err})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{_name(source)}: unreadable video (no video stream)")
    return container, container.streams.video[0]


def _fps(stream) -> float:
    return float(stream.average_rate or stream.guessed_rate or 0) or 24.0


def iter_video(source: str | Path | bytes, max_frames: int | None = None, yuv=None, max_bytes: int | None = None,
               size: tuple[int, int] | None = None) -> tuple[Iterator[np.ndarray], float]:
    """(frames, fps): the frames [H,W,3] uint8 one at a time (bounded memory: a 600-frame 1080p sequence is
    3.7 GB as uint8), of any file or mp4 bytes; the one reader of every command. A display rotation (a phone's
    portrait video) is applied, as players show it. `max_bytes` / `size`: see `read_video`."""
    if not isinstance(source, (bytes, bytearray)):
        path = Path(source)
        if not path.is_file():
            raise VideoError(f"{path}: no such file")
        if path.suffix.lower() in RAW_SUFFIXES:
            frames, fps = rawyuv.iter_raw(path, max_frames, yuv)
            return _bounded(frames, _name(source), max_bytes, size), fps
    container, stream = _open(source)
    declared = min(stream.frames or 0, max_frames or stream.frames or 0) * stream.width * stream.height * 3
    if max_bytes is not None and declared > max_bytes:
        container.close()
        raise TooLarge(f"{_name(source)}: declares {stream.frames} frames of {stream.width}×{stream.height} "
                       f"({declared / (1 << 30):.1f} GB as RGB), more than the {max_bytes / (1 << 30):.1f} GB "
                       f"this reads")
    frames = _iter_pyav(container, stream, _name(source), max_frames)
    return _bounded(frames, _name(source), max_bytes, size), _fps(stream)


def _bounded(frames: Iterator[np.ndarray], name: str, max_bytes: int | None, size) -> Iterator[np.ndarray]:
    total = 0
    for frame in frames:
        if size is not None and frame.shape[:2] != tuple(size):
            raise VideoError(f"{name}: frames of {frame.shape[1]}×{frame.shape[0]}, expected {size[1]}×{size[0]}")
        total += frame.nbytes
        if max_bytes is not None and total > max_bytes:
            raise TooLarge(f"{name}: more than {max_bytes / (1 << 30):.1f} GB of frames (RGB), the most this reads")
        yield frame


@dataclass(frozen=True)
class Probe:
    """What a video file declares before any frame is decoded."""

    frames: int
    """The frame count its header gives; 0 when it gives none (Matroska, y4m)."""
    width: int
    height: int
    """The stored size (a display rotation of a quarter turn swaps them in the frames read)."""
    fps: float


def probe(path: str | Path, yuv=None) -> Probe:
    """What a video file declares (frames, size, frame rate), without decoding it (raw .yuv: from its name or
    `yuv`, and its length)."""
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: no such file")
    if path.suffix.lower() in RAW_SUFFIXES:
        return Probe(*rawyuv.declared(path, yuv))
    container, stream = _open(path)
    with container:
        return Probe(stream.frames or 0, stream.width, stream.height, _fps(stream))


def probe_fps(path: str | Path, yuv=None) -> float:
    """The frame rate of a video file, without decoding it (raw .yuv: from its name or `yuv`)."""
    return probe(path, yuv).fps


def count_frames(path: str | Path) -> int:
    """Frames in a video file, by counting packets (no decoding; .mkv headers carry no frame count)."""
    container, stream = _open(path)
    with container:
        return sum(1 for packet in container.demux(stream) if packet.size)


def _iter_pyav(container, stream, name: str, max_frames: int | None, fmt: str = "rgb24") -> Iterator[np.ndarray]:
    stream.thread_type = "AUTO"  # frame+slice threading: sequential decoding is PyAV's fast path
    count = 0
    with container:
        try:
            for frame in container.decode(stream):
                pixels = frame.to_ndarray(format=fmt)
                turns = round((frame.rotation or 0) / 90) % 4  # counterclockwise quarter turns of the display
                yield np.ascontiguousarray(np.rot90(pixels, turns)) if turns else pixels
                count += 1
                if max_frames is not None and count >= max_frames:
                    return
        except av.FFmpegError as err:
            raise VideoError(f"{name}: unreadable video after {count} frames ({err})") from None


def iter_frames(path: str | Path) -> Iterator[np.ndarray]:
    """The RGB frames of a folder of PNG frames (as `decode` writes one) or of any video file (`iter_video`), one
    at a time: what evaluate pairs. A missing path is a FileNotFoundError."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.png"))
        if not files:
            raise FileNotFoundError(f"no PNG frames in {path}")
        from PIL import Image

        for file in files:
            with Image.open(file) as image:
                yield np.asarray(image.convert("RGB"))
        return
    if not path.is_file():
        raise FileNotFoundError(f"video not found: {path}")
    yield from iter_video(path)[0]


def iter_chunks(path: str | Path, chunk: int) -> Iterator[np.ndarray]:
    """(n, H, W, 3) uint8 chunks of `chunk` consecutive frames of `iter_frames` (the last one may be shorter)."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    frames = iter_frames(path)
    while batch := list(islice(frames, chunk)):
        yield np.stack(batch)


def read_frames(path: str | Path, max_frames: int | None = None) -> np.ndarray:
    """A whole clip, uint8 [T,H,W,3], of at most `max_frames` frames (None or 0: all): an exact `.npy` array, a
    folder of PNG frames or any video file (`iter_frames`)."""
    path = Path(path)
    if path.suffix == ".npy" and path.is_file():
        frames = np.load(path, allow_pickle=False)
        return frames[:max_frames] if max_frames else frames
    frames = list(islice(iter_frames(path), max_frames or None))
    if not frames:
        raise VideoError(f"{path}: no frames")
    return np.stack(frames)


def decode_gray(source: bytes | str | Path, start: int = 0, count: int | None = None) -> np.ndarray:
    """Frames [start, start + count) of a video (bytes or a path) as uint8 [T,H,W] (luma of colour sources)."""
    container, stream = _open(source)
    end = None if count is None else start + count
    frames = list(islice(_iter_pyav(container, stream, _name(source), end, "gray"), start, end))
    if not frames or (count is not None and len(frames) < count):
        raise VideoError(f"{_name(source)}: needed frames {start}..{start + (count or 1) - 1}, the video has fewer")
    return np.stack(frames)


def yuv420p(frame: np.ndarray) -> "av.VideoFrame":
    """An RGB frame converted to 4:2:0 by one swscale thread. PyAV's implicit conversion inside `encode`, and a
    sliced multi-threaded one, give different bytes from run to run (measured with PyAV 18's wheel: 5 different
    streams in 40 encodes of one 64×64 clip; about 1 in 30 runs of a 32×32 clip under load); one thread gave one
    stream in 600 encodes, so the same frames code to the same stream in any process."""
    return av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p", threads=1)


def write_video(target: str | Path | None, frames: np.ndarray, fps: float = 25.0, codec: str = "libx264",
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
    """FFV1 in Matroska, RGB (bgr0): decodes to exactly these frames. Written atomically (`io.files.atomic_open`)."""
    check_frames(frames, even=False)
    with atomic_open(target) as handle:
        mux_ffv1(handle, frames, fps, "bgr0", "rgb24")
    return Path(target)


def write_png_frames(folder: str | Path, frames: np.ndarray) -> Path:
    """One lossless PNG per frame, `folder/000000.png` on, each written atomically."""
    from PIL import Image

    check_frames(frames, even=False)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        with atomic_open(folder / f"{i:06d}.png") as handle:
            Image.fromarray(frame).save(handle, format="PNG")
    return folder


def write_with_vcodec(path: str | Path, frames: np.ndarray, fps: int = 25, vcodec: str = "libx264rgb",
                      crf: int = 0) -> None:
    """uint8 [T,H,W,3] to `path`: a `.npy` is exact; any other container (by its suffix) is coded by the PyAV
    encoder `vcodec` at `crf` (the default, x264 in RGB at crf 0, is lossless)."""
    path = Path(path)
    if path.suffix == ".npy":
        np.save(path, frames)
        return
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(vcodec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "rgb24" if vcodec in ("libx264rgb", "ffv1") else "yuv420p"
        if vcodec.startswith("libx264"):
            stream.options = {"crf": str(crf)}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def encode_gray(frames: np.ndarray, fps: float = 24.0, out: str | Path | None = None) -> bytes:
    """uint8 [T,H,W] -> lossless FFV1 gray .mkv bytes (also written to `out` when given): how sketch frames are
    stored for sketch-codec training, as files or as the `sketch.mkv` member of a shard sample."""
    frames = np.asarray(frames)
    if frames.ndim != 3 or frames.dtype != np.uint8 or frames.shape[0] == 0:
        raise ValueError(f"expected uint8 frames [T,H,W] with T >= 1, got {frames.dtype} {frames.shape}")
    buffer = io.BytesIO()
    mux_ffv1(buffer, frames, fps, "gray", "gray")
    data = buffer.getvalue()
    if out is not None:
        Path(out).write_bytes(data)
    return data


def mux_mp4(packets, codec: str, fps: float, width: int, height: int, options: dict | None = None) -> bytes:
    """Parsed packets of one elementary stream wrapped in an mp4 as they are (no re-encoding); `options` go to
    the stream (the muxer opens an encoder for headers)."""
    rate = Fraction(fps).limit_denominator(1001)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = width, height
        if options:
            stream.options = options
        for i, packet in enumerate(packets):
            packet.stream, packet.pts, packet.dts, packet.time_base = stream, i, i, 1 / rate
            container.mux(packet)
    return buffer.getvalue()


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
    Path(target).parent.mkdir(parents=True, exist_ok=True)  # `decode x.disco recons/x.mkv` into a new folder
    if kind.endswith("PNG frames"):
        write_png_frames(target, frames)
    elif kind.endswith("FFV1"):
        write_lossless(target, frames, fps)
    else:
        write_video(target, frames, fps, codec="libx264" if crf is not None else "libx264rgb", crf=crf)
    return kind
