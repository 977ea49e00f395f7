"""The `.disco` file: every modality's bitstream behind one small header.

Layout (little-endian; all sizes in bytes):

    header   32  magic b"DSCO", version u8 (1 or 2), flags u8 (0), stream count u16,
                 frames u32, height u16, width u16            -- the sender's video
                 coded frames u32, coded height u16, coded width u16  -- what the decoder generates
                 fps numerator u32, fps denominator u32
    pattern  6   version 2 only: stream u8 (1 = selected), unit u8 (0 token, 1 latent_frame), a u16, b u16
    table    12 per stream: kind u8, codec u8, ds u8, dt u8, length u32, crc32 u32 (of the payload)
    crc      4   crc32 of header + pattern + table
    payloads the streams' bytes, in table order, nothing after them

Version 1 files hold full streams (every frame and pixel the sender's settings keep) and are what full streams
are still written as, byte for byte; version 2 files hold selected streams (`codec.selection`): each stream
carries only what the a:b token interleaving of `unit` reads from it, and the receiver rebuilds the rest from the
pattern. A pattern other than that (stream 0 or > 1, unit > 1, a or b of 0) is a ContainerError.

Coded sizes are what the LTX-Video VAE accepts (frames 8k+1, sides multiples of 32), >= the video's: the sender
pads at the bottom, right and end; the receiver generates the coded size and crops the top-left
frames × height × width. The rate of a stream is its payload length; the header, pattern and table are the
container's overhead (36 + 12 per stream bytes, 42 + 12 per stream with a pattern), reported apart.

Anything malformed — truncation, a flipped byte (every byte is under a CRC), unknown kinds or codecs, sizes that do
not add up, a coded size other than the sender's, a video over `DecodeLimits` — raises `ContainerError` (a
`DecodeError`) naming what was wrong; parsing is a bounded number of steps, never a loop over attacker-chosen
lengths.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from disco_train.config.base import parse_ratio
from disco_train.config.decoder import INTERLEAVE_UNITS
from disco_train.config.geometry import coded_size
from disco_train.config.limits import DecodeLimits
from disco_train.io.errors import DecodeError
from disco_train.io.files import atomic_write

MAGIC = b"DSCO"
VERSION = 2
"""The newest version; full streams are written as version 1 (module docstring), and both are read."""
MAX_STREAMS = 16
HEADER = struct.Struct("<4sBBHIHHIHHII")
PATTERN = struct.Struct("<BBHH")
ENTRY = struct.Struct("<BBBBII")
CRC = struct.Struct("<I")
KINDS = {1: "text", 2: "video", 3: "sketch", 4: "pose"}
CODECS = {1: "zlib", 2: "x264", 3: "x265", 4: "dcvc_rt", 5: "lzma", 6: "vvenc"}  # ids are never renumbered
_KIND_IDS = {v: k for k, v in KINDS.items()}
_CODEC_IDS = {v: k for k, v in CODECS.items()}


class ContainerError(DecodeError):
    """A .disco container is malformed, truncated, corrupt or over the limits (or a container to write is
    invalid)."""


@dataclass(frozen=True)
class Pattern:
    """What the streams of a container carry: everything ('full'), or what a:b interleaving of `unit` reads
    from each ('selected'). Full streams have no unit or ratio: FULL is the one full pattern."""

    stream: str = "full"
    unit: str = "token"
    a: int = 0
    b: int = 0

    @classmethod
    def of(cls, stream: str, unit: str, ratio: str | tuple[int, int]) -> "Pattern":
        if stream == "full":
            return FULL
        a, b = parse_ratio(ratio) if isinstance(ratio, str) else ratio
        return cls(stream, unit, int(a), int(b))

    @classmethod
    def of_condition(cls, condition) -> "Pattern":
        """A decoder's pattern (its `condition.*`: stream, interleave_unit, ratio)."""
        return cls.of(condition.stream, condition.interleave_unit, condition.ratio)

    @classmethod
    def of_settings(cls, settings) -> "Pattern":
        """The pattern of a `SendSettings` (stream, ratio, interleave_unit), or of what a shard folder recorded: a
        prepare_config.json (its `send` section) or a sample's meta.json, whose format names the ratio
        `interleave_ratio` (absent keys: full, as before they existed)."""
        if isinstance(settings, dict):
            send = settings.get("send", settings)
            ratio = send.get("ratio", send.get("interleave_ratio", "1:3"))
            return cls.of(send.get("stream", "full"), send.get("interleave_unit", "token"), ratio)
        return cls.of(settings.stream, settings.interleave_unit, settings.ratio)

    def __str__(self) -> str:
        return ("stream=full" if self == FULL else
                f"stream={self.stream} interleave_unit={self.unit} ratio={self.a}:{self.b}")


FULL = Pattern()


@dataclass(frozen=True)
class Geometry:
    frames: int
    height: int
    width: int
    coded_frames: int
    coded_height: int
    coded_width: int
    fps: Fraction

    def check(self, limits: DecodeLimits = DecodeLimits()) -> None:
        """The coded size must be the one the sender derives (the smallest 8k+1 × 32m × 32n covering the video:
        nothing else is ever written, so a header claiming more is corrupt or hostile) and within `limits`."""
        problems = []
        if min(self.frames, self.height, self.width) < 1:
            problems.append(f"empty video {self.frames}×{self.height}×{self.width}")
        elif (self.coded_frames, self.coded_height, self.coded_width) != coded_size(self.frames, self.height,
                                                                                    self.width):
            problems.append(f"coded size {self.coded_frames}×{self.coded_height}×{self.coded_width} is not the "
                            f"8k+1 × 32-multiple cover {coded_size(self.frames, self.height, self.width)} of "
                            f"{self.frames}×{self.height}×{self.width}")
        if max(self.coded_height, self.coded_width) > limits.max_side:
            problems.append(f"coded height×width {self.coded_height}×{self.coded_width} exceeds the "
                            f"{limits.max_side}-pixel side limit")
        elif self.coded_frames * self.coded_height * self.coded_width > limits.max_pixels:
            problems.append(f"{self.coded_frames} frames of {self.coded_height}×{self.coded_width} exceed the "
                            f"limit of {limits.max_pixels:,} pixels")
        if not 0 < self.fps <= 1000:
            problems.append(f"fps {self.fps} not in (0, 1000]")
        if problems:
            raise ContainerError("bad geometry: " + "; ".join(problems))


@dataclass(frozen=True)
class Stream:
    kind: str
    codec: str
    data: bytes
    ds: int = 1
    dt: int = 1

    @property
    def bits(self) -> int:
        return 8 * len(self.data)


@dataclass
class Container:
    geometry: Geometry
    streams: list[Stream] = field(default_factory=list)
    pattern: Pattern = FULL

    def get(self, kind: str) -> Stream | None:
        return next((s for s in self.streams if s.kind == kind), None)

    def bits(self) -> dict[str, int]:
        return {s.kind: s.bits for s in self.streams}

    @property
    def overhead_bytes(self) -> int:
        return HEADER.size + (PATTERN.size if self.pattern != FULL else 0) + ENTRY.size * len(self.streams) + CRC.size

    def bpp(self, with_overhead: bool = False) -> float:
        """Bits per pixel of the sender's video (not the padded size): the paper's rate measure."""
        g = self.geometry
        bits = sum(self.bits().values()) + (8 * self.overhead_bytes if with_overhead else 0)
        return bits / (g.frames * g.height * g.width)


def pack(container: Container) -> bytes:
    g = container.geometry
    g.check()
    streams = container.streams
    if not 1 <= len(streams) <= MAX_STREAMS:
        raise ContainerError(f"a container holds 1 to {MAX_STREAMS} streams, got {len(streams)}")
    kinds = [s.kind for s in streams]
    if len(set(kinds)) != len(kinds):
        raise ContainerError(f"duplicate stream kinds {kinds}")
    fps = Fraction(g.fps).limit_denominator(1_000_000)
    try:
        pattern = _pack_pattern(container.pattern)
        head = HEADER.pack(MAGIC, 2 if pattern else 1, 0, len(streams), g.frames, g.height, g.width,
                           g.coded_frames, g.coded_height, g.coded_width, fps.numerator, fps.denominator) + pattern
        table = b"".join(ENTRY.pack(_KIND_IDS[s.kind], _CODEC_IDS[s.codec], s.ds, s.dt, len(s.data),
                                    zlib.crc32(s.data)) for s in streams)
    except KeyError as err:
        raise ContainerError(f"unknown stream kind or codec {err}; kinds {sorted(_KIND_IDS)}, codecs "
                             f"{sorted(_CODEC_IDS)}") from None
    except struct.error as err:
        raise ContainerError(f"a value does not fit the container's fields: {err}") from None
    return head + table + CRC.pack(zlib.crc32(head + table)) + b"".join(bytes(s.data) for s in streams)


def _pack_pattern(p: Pattern) -> bytes:
    """b'' for full streams (a version 1 file), else the 6 pattern bytes of version 2."""
    if p == FULL:
        return b""
    if p.stream != "selected" or p.unit not in INTERLEAVE_UNITS or min(p.a, p.b) < 1:
        raise ContainerError(f"bad stream pattern {p}: selected streams need a unit of {INTERLEAVE_UNITS} and "
                             f"a, b >= 1")
    return PATTERN.pack(1, INTERLEAVE_UNITS.index(p.unit), p.a, p.b)


def _unpack_pattern(data: bytes, version: int) -> Pattern:
    """Version 2's pattern bytes (read after the header CRC matched), checked like every other field."""
    if version == 1:
        return FULL
    stream, unit, a, b = PATTERN.unpack_from(data, HEADER.size)
    if stream != 1 or unit >= len(INTERLEAVE_UNITS) or a == 0 or b == 0:
        raise ContainerError(f"corrupt stream pattern: stream {stream}, unit {unit}, ratio {a}:{b} (version 2 "
                             f"holds selected streams: stream 1, unit 0 or 1, a and b >= 1)")
    return Pattern("selected", INTERLEAVE_UNITS[unit], a, b)


def unpack(data: bytes, limits: DecodeLimits = DecodeLimits()) -> Container:
    data = bytes(data)
    if len(data) < HEADER.size + CRC.size:
        raise ContainerError(f"truncated: {len(data)} bytes, a container has at least {HEADER.size + CRC.size}")
    (magic, version, flags, count, frames, height, width, coded_frames, coded_height, coded_width, fps_num,
     fps_den) = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ContainerError(f"not a .disco container (magic {magic!r}, expected {MAGIC!r})")
    if version not in (1, 2):
        raise ContainerError(f"container version {version}; this reader knows versions 1 and 2")
    if not 1 <= count <= MAX_STREAMS:
        raise ContainerError(f"corrupt header: {count} streams (1 to {MAX_STREAMS})")
    table_start = HEADER.size + (PATTERN.size if version == 2 else 0)
    table_end = table_start + count * ENTRY.size
    if len(data) < table_end + CRC.size:
        raise ContainerError(f"truncated: {len(data)} bytes, the header and stream table need {table_end + 4}")
    (stored,) = CRC.unpack_from(data, table_end)
    if zlib.crc32(data[:table_end]) != stored:
        raise ContainerError("corrupt header: CRC mismatch")
    if flags != 0 or fps_den == 0:
        raise ContainerError(f"corrupt header: flags {flags}, fps {fps_num}/{fps_den}")
    pattern = _unpack_pattern(data, version)
    geometry = Geometry(frames, height, width, coded_frames, coded_height, coded_width, Fraction(fps_num, fps_den))
    geometry.check(limits)
    return Container(geometry, _streams(data, count, table_start, table_end + CRC.size, geometry), pattern)


def _streams(data: bytes, count: int, table: int, offset: int, g: Geometry) -> list[Stream]:
    entries = [ENTRY.unpack_from(data, table + i * ENTRY.size) for i in range(count)]
    total = offset + sum(e[4] for e in entries)
    if len(data) != total:
        state = "truncated" if len(data) < total else "trailing bytes"
        raise ContainerError(f"{state}: {len(data)} bytes, the stream table says {total}")
    streams, seen = [], set()
    for kind_id, codec_id, ds, dt, length, crc in entries:
        kind, codec = KINDS.get(kind_id), CODECS.get(codec_id)
        if kind is None or codec is None or ds == 0 or dt == 0 or kind in seen:
            raise ContainerError(f"corrupt stream table entry: kind {kind_id}, codec {codec_id}, ds {ds}, dt {dt}")
        if kind in ("video", "sketch") and (g.coded_height % (2 * ds) or g.coded_width % (2 * ds) or dt > g.frames):
            raise ContainerError(f"{kind} stream: ds={ds}, dt={dt} do not fit a {g.frames}-frame "
                                 f"{g.coded_height}×{g.coded_width} video (4:2:0 needs even sides after /ds)")
        payload = data[offset:offset + length]
        if zlib.crc32(payload) != crc:
            raise ContainerError(f"corrupt {kind} stream: CRC mismatch ({length} bytes)")
        streams.append(Stream(kind, codec, payload, ds, dt))
        seen.add(kind)
        offset += length
    return streams


def write(path: str | Path, container: Container) -> int:
    """Write a container (atomically); returns its size in bytes."""
    data = pack(container)
    atomic_write(path, data)
    return len(data)


def read(path: str | Path, limits: DecodeLimits = DecodeLimits(), max_bytes: int = 1 << 30) -> Container:
    """A .disco file (at most `max_bytes`: checked before it is read)."""
    path = Path(path)
    if not path.is_file():
        raise ContainerError(f"{path}: no such file")
    if path.stat().st_size > max_bytes:
        raise ContainerError(f"{path}: {path.stat().st_size:,} bytes, more than the {max_bytes:,}-byte limit")
    try:
        return unpack(path.read_bytes(), limits)
    except ContainerError as err:
        raise ContainerError(f"{path}: {err}") from None
