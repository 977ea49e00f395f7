"""Raw planar YUV 4:2:0 (`.yuv`) and YUV4MPEG2 (`.y4m`) sequences, streamed frame by frame as RGB uint8.

The test sets of the field ship as raw 4:2:0 files named after their format: HEVC-B `BasketballDrive_1920x1080_50.yuv`,
UVG `Beauty_1920x1080_120fps_420_8bit_YUV.yuv` / `..._10bit_YUV.yuv`, MCL-JCV `videoSRC01_1920x1080_30.yuv`.
`yuv_format` reads the name: a `WxH` token (or `WxHpFPS`), the frame rate in the token after it (`50`, `50fps`,
`59.94`), a bit depth token (`8bit`, `10bit`, `10b`; 8 when there is none) and a chroma token (`420`; `422`, `444`
and `400` are refused). Explicit values (`yuv_size=`, `yuv_fps=`, `yuv_bit_depth=` on the commands) win over the
name. 10-bit samples are stored in 16-bit little-endian words.

10 → 8 bit: v8 = min(255, (v10 + 2) >> 2), i.e. round(v / 4) with clipping (1022 and 1023 round to 256). Rounding
rather than truncating (v >> 2) keeps the mean level: truncation drops every sample by (v mod 4) / 4, 0.375 levels
on average, a visible darkening and a bias every metric would charge to the codecs.

YUV -> RGB: limited range ("studio swing": Y 16-235, C 16-240, the range of every one of these sets), BT.709
coefficients for frames of at least 1280×720 and BT.601 below (the HD and SD conventions), by swscale (PyAV).
The codecs then code RGB like any other source, so all methods are scored against the same RGB reference.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from disco_train.io.errors import VideoError

_SIZE = re.compile(r"(\d{2,5})x(\d{2,5})(?:p(\d+(?:\.\d+)?))?", re.I)
_FPS = re.compile(r"(\d+(?:\.\d+)?)(?:fps|hz)?", re.I)
_DEPTH = re.compile(r"(8|10|12|16)(?:bit|bits|b)", re.I)
_CHROMA = {"420", "422", "444", "400", "yuv420", "yuv422", "yuv444", "yuv420p", "yuv422p", "yuv444p"}
_Y4M_CHROMA = {"420jpeg": 8, "420paldv": 8, "420mpeg2": 8, "420": 8, "420p10": 10}


MAX_FPS = 1000
"""The highest frame rate a name or setting may give (test sequences run at 24 to 120; containers store a rate as
a fraction of 32-bit integers)."""
MAX_SIDE = 8192
"""The largest width or height (8K UHD is 7680×4320): `config.limits.MAX_SIDE`, which io may not import
(tests/test_work_bounds.py checks they agree)."""


@dataclass(frozen=True)
class YuvFormat:
    """What a raw .yuv file does not say about itself."""

    width: int
    height: int
    fps: float
    bit_depth: int = 8

    @property
    def frame_bytes(self) -> int:
        """A 4:2:0 frame: W·H luma + 2 · (W/2)·(H/2) chroma samples = 1.5·W·H, 2 bytes each above 8 bits."""
        return self.width * self.height * 3 // 2 * (1 if self.bit_depth == 8 else 2)

    def check(self, name: str) -> None:
        if self.width < 2 or self.height < 2 or self.width % 2 or self.height % 2:
            raise VideoError(f"{name}: 4:2:0 needs an even width and height, got {self.width}x{self.height}")
        if max(self.width, self.height) > MAX_SIDE:
            raise VideoError(f"{name}: {self.width}x{self.height} is larger than {MAX_SIDE} px per side")
        if not 0 < self.fps <= MAX_FPS:
            raise VideoError(f"{name}: frame rate {self.fps:g} is not in (0, {MAX_FPS}]")
        if self.bit_depth not in (8, 10):
            raise VideoError(f"{name}: {self.bit_depth}-bit samples; this reader takes 8- and 10-bit 4:2:0")


def parse_size(text: str, key: str = "size") -> tuple[int, int]:
    """'1920x1080' -> (1920, 1080) (width, height)."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(text))
    if match is None:
        raise ValueError(f"{key}: expected WIDTHxHEIGHT (e.g. 1920x1080), got {text!r}")
    return int(match.group(1)), int(match.group(2))


def _tokens(name: str) -> list[str]:
    return [t for t in re.split(r"[_\-\s]+", Path(name).stem) if t]


def format_from_name(name: str) -> dict:
    """What a test-sequence file name says: {width, height, fps, bit_depth} (the keys it has)."""
    tokens, found = _tokens(name), {}
    for i, token in enumerate(tokens):
        size = _SIZE.fullmatch(token)
        if size and "width" not in found:
            found["width"], found["height"] = int(size.group(1)), int(size.group(2))
            if size.group(3):
                found["fps"] = float(size.group(3))
            elif i + 1 < len(tokens) and tokens[i + 1].lower() not in _CHROMA and _FPS.fullmatch(tokens[i + 1]):
                found["fps"] = float(_FPS.fullmatch(tokens[i + 1]).group(1))
        elif re.fullmatch(r"\d+(?:\.\d+)?fps", token, re.I) and "fps" not in found:
            found["fps"] = float(token[:-3])
        depth = _DEPTH.fullmatch(token)
        if depth:
            found["bit_depth"] = int(depth.group(1))
        if token.lower() in _CHROMA and token.lower().lstrip("yuv").rstrip("p") != "420":
            raise VideoError(f"{name}: chroma format {token}; this reader takes 4:2:0 only")
    return found


def yuv_format(path: str | Path, given=None) -> YuvFormat:
    """The format of a raw .yuv file: `given` (a YuvFormat, or a dict of its fields; zeros/None = unknown) over
    what its name says. A missing size or frame rate is an error naming the keys that give it."""
    values = {k: v for k, v in format_from_name(Path(path).name).items()}
    given = given.__dict__ if isinstance(given, YuvFormat) else dict(given or {})
    values.update({k: v for k, v in given.items() if v})
    missing = [k for k in ("width", "height", "fps") if k not in values]
    if missing:
        raise VideoError(f"{path}: the name does not give the {'/'.join(missing)} of this raw YUV file (expected "
                         f"e.g. Name_1920x1080_50fps_420_10bit.yuv); give yuv_size=WxH yuv_fps=N [yuv_bit_depth=10]")
    fmt = YuvFormat(int(values["width"]), int(values["height"]), float(values["fps"]), int(values.get("bit_depth", 8)))
    fmt.check(str(path))
    return fmt


def to_rgb(planes: np.ndarray, width: int, height: int, bit_depth: int) -> np.ndarray:
    """One frame's planar samples (Y, then U, then V; uint8 or uint16) -> RGB uint8 [H,W,3]."""
    if bit_depth > 8:
        planes = np.minimum((planes.astype(np.uint16) + 2) >> 2, 255)  # round(v / 4), clipped: see the docstring
    frame = av.VideoFrame.from_ndarray(planes.astype(np.uint8).reshape(height * 3 // 2, width), format="yuv420p")
    hd = width >= 1280 and height >= 720
    rgb = frame.reformat(format="rgb24", src_colorspace="ITU709" if hd else "ITU601", src_color_range="MPEG",
                         interpolation="BILINEAR")
    return rgb.to_ndarray()


def _count(path: Path, fmt: YuvFormat) -> int:
    size = path.stat().st_size
    if size == 0 or size % fmt.frame_bytes:
        raise VideoError(f"{path}: {size:,} bytes is not a whole number of {fmt.width}x{fmt.height} "
                         f"{fmt.bit_depth}-bit 4:2:0 frames ({fmt.frame_bytes:,} bytes each): wrong size or bit depth?")
    return size // fmt.frame_bytes


def iter_yuv(path: Path, max_frames: int | None, given=None) -> tuple[Iterator[np.ndarray], float]:
    fmt = yuv_format(path, given)
    count = _count(path, fmt) if max_frames is None else min(_count(path, fmt), max_frames)
    dtype = np.uint8 if fmt.bit_depth == 8 else np.dtype("<u2")
    samples = fmt.width * fmt.height * 3 // 2

    def frames() -> Iterator[np.ndarray]:
        data = np.memmap(path, dtype=dtype, mode="r")  # pages in only the frames read
        for i in range(count):
            yield to_rgb(np.asarray(data[i * samples:(i + 1) * samples]), fmt.width, fmt.height, fmt.bit_depth)

    return frames(), fmt.fps


def _y4m_header(line: bytes, path: Path) -> tuple[YuvFormat, int]:
    fields = {t[:1]: t[1:] for t in line.decode("ascii", "replace").split()[1:]}
    chroma = fields.get("C", "420jpeg").lower()
    if chroma not in _Y4M_CHROMA:
        raise VideoError(f"{path}: y4m colour space C{chroma}; this reader takes 4:2:0 at 8 or 10 bits")
    try:
        rate = Fraction(*map(int, fields.get("F", "25:1").split(":")))
        fmt = YuvFormat(int(fields["W"]), int(fields["H"]), float(rate), _Y4M_CHROMA[chroma])
    except (KeyError, ValueError, ZeroDivisionError):
        raise VideoError(f"{path}: bad y4m header {line[:80]!r}") from None
    fmt.check(str(path))
    return fmt, len(line)


def _y4m_format(path: Path) -> tuple[YuvFormat, int]:
    with open(path, "rb") as handle:
        line = handle.readline(1024)
    if not line.startswith(b"YUV4MPEG2 ") or not line.endswith(b"\n"):
        raise VideoError(f"{path}: not a YUV4MPEG2 file")
    return _y4m_header(line, path)


def iter_y4m(path: Path, max_frames: int | None) -> tuple[Iterator[np.ndarray], float]:
    fmt, offset = _y4m_format(path)
    dtype = np.uint8 if fmt.bit_depth == 8 else np.dtype("<u2")

    def frames() -> Iterator[np.ndarray]:
        with open(path, "rb") as handle:
            handle.seek(offset)
            count = 0
            while max_frames is None or count < max_frames:
                marker = handle.readline(1024)
                if not marker:
                    return
                data = handle.read(fmt.frame_bytes)
                if not marker.startswith(b"FRAME") or len(data) < fmt.frame_bytes:
                    raise VideoError(f"{path}: frame {count} is truncated or has no FRAME marker")
                yield to_rgb(np.frombuffer(data, dtype), fmt.width, fmt.height, fmt.bit_depth)
                count += 1

    return frames(), fmt.fps


def declared(path: Path, given=None) -> tuple[int, int, int, float]:
    """(frames, width, height, fps) of a .yuv or .y4m file without reading its frames (a .y4m's frame count: 0,
    its header does not say)."""
    if path.suffix.lower() == ".y4m":
        fmt = _y4m_format(path)[0]
        return 0, fmt.width, fmt.height, fmt.fps
    fmt = yuv_format(path, given)
    return _count(path, fmt), fmt.width, fmt.height, fmt.fps


def iter_raw(path: Path, max_frames: int | None = None, given=None) -> tuple[Iterator[np.ndarray], float]:
    """(frames, fps) of a .yuv or .y4m file, one RGB uint8 frame at a time."""
    return iter_y4m(path, max_frames) if path.suffix.lower() == ".y4m" else iter_yuv(path, max_frames, given)


def write_yuv(path: str | Path, planes: list[np.ndarray]) -> None:
    """Frames given as planar 4:2:0 sample arrays ([1.5·H, W], uint8 or uint16) -> a raw .yuv file (tests)."""
    with open(path, "wb") as handle:
        for frame in planes:
            handle.write(frame.astype(np.uint8 if frame.dtype == np.uint8 else "<u2").tobytes())
