"""DCVC-RT container format (version 2). All integers little-endian.

Stream header, 19 bytes:
    magic b"DCRT" | version u8 | kind u8 (0 image, 1 video) | height u16 | width u16 |
    num_frames u32 | threads u8 | crc32 of the preceding 15 bytes u32
Per frame, 14 bytes + payload:
    type_flags u8 (high nibble: 1 = I, 2 = P; bit 0: reset the reference feature before this
    P-frame) | qp u8 | payload_len u32 | crc32(payload) u32 | model crc32 u32 (of the encoder's
    table index per y position, coding.model_crc) | payload (constriction 32-bit words coding the
    official 16-bit tables, coding.py)

`threads` is the CPU thread count the encoder ran with: the entropy models are computed by float
convolutions whose reductions are split differently per thread count, so the decoder must run with
the same count to rebuild them bit for bit (codec.py: `deterministic`). Version 1 (no thread count,
constriction's own Gaussian models) is rejected with a message saying so.

The official SPS/NAL layout (`official_stream.py`) has no checks; we add CRCs so that corrupt or
truncated input is rejected with BitstreamError instead of decoding to garbage.
"""

import struct
import zlib
from dataclasses import dataclass

from .coding import BitstreamError

MAGIC = b"DCRT"
VERSION = 2
MAX_THREADS = 255
# Largest frame a decoder accepts (8K UHD, 7680 x 4320), checked before any tensor is built: the
# intra decoder's widest activation is 1472 channels at 1/8 resolution, 4 * 1472 * 33.2M / 64 = 3.1 GB.
MAX_PIXELS = 7680 * 4320
KIND_IMAGE, KIND_VIDEO = 0, 1
FRAME_I, FRAME_P = 1, 2
_HEADER = struct.Struct("<4sBBHHIB")  # 15 bytes, then the crc32
_FRAME = struct.Struct("<BBIII")      # 14 bytes
HEADER_BYTES = _HEADER.size + 4       # 19
FRAME_HEADER_BYTES = _FRAME.size      # 14


@dataclass(frozen=True)
class StreamHeader:
    kind: int
    height: int
    width: int
    num_frames: int
    threads: int = 1


@dataclass(frozen=True)
class FrameRecord:
    frame_type: int
    qp: int
    reset: bool
    payload: bytes
    model_crc: int = 0

    @property
    def num_bytes(self) -> int:
        return FRAME_HEADER_BYTES + len(self.payload)


def write_header(h: StreamHeader) -> bytes:
    if not (0 < h.height < 65536 and 0 < h.width < 65536):
        raise ValueError(f"frame size {h.height}x{h.width} outside 1..65535")
    if h.height * h.width > MAX_PIXELS:
        raise ValueError(f"frame size {h.height}x{h.width} is over the {MAX_PIXELS}-pixel limit")
    if not 0 < h.threads <= MAX_THREADS:
        raise ValueError(f"thread count {h.threads} outside 1..{MAX_THREADS}")
    body = _HEADER.pack(MAGIC, VERSION, h.kind, h.height, h.width, h.num_frames, h.threads)
    return body + struct.pack("<I", zlib.crc32(body))


def write_frame(rec: FrameRecord) -> bytes:
    if not 0 <= rec.qp < 256:
        raise ValueError(f"qp {rec.qp} does not fit in one byte")
    flags = (rec.frame_type << 4) | int(bool(rec.reset))
    return _FRAME.pack(flags, rec.qp, len(rec.payload), zlib.crc32(rec.payload), rec.model_crc) + rec.payload


def read_header(data: bytes) -> StreamHeader:
    if len(data) < HEADER_BYTES:
        raise BitstreamError(f"stream of {len(data)} bytes is shorter than the {HEADER_BYTES}-byte header")
    magic, version, kind, height, width, n, threads = _HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise BitstreamError(f"not a DCVC-RT stream: magic {magic!r} != {MAGIC!r}")
    if version != VERSION:  # checked before the CRC: version 1's header is a byte shorter
        old = " (version 1 streams coded y with constriction's own Gaussian models; re-encode)" if version == 1 else ""
        raise BitstreamError(f"unsupported DCVC-RT stream version {version}, this decoder reads {VERSION}{old}")
    (crc,) = struct.unpack_from("<I", data, _HEADER.size)
    if crc != zlib.crc32(data[:_HEADER.size]):
        raise BitstreamError("stream header CRC mismatch (corrupt header)")
    if kind not in (KIND_IMAGE, KIND_VIDEO) or height == 0 or width == 0 or n == 0 or threads == 0:
        raise BitstreamError(f"invalid header: kind={kind} size={height}x{width} frames={n} threads={threads}")
    if height * width > MAX_PIXELS:
        raise BitstreamError(f"frame size {height}x{width} is over the decoder's {MAX_PIXELS}-pixel limit")
    if n * FRAME_HEADER_BYTES > len(data) - HEADER_BYTES:
        raise BitstreamError(f"header announces {n} frames but only {len(data) - HEADER_BYTES} bytes follow")
    return StreamHeader(kind, height, width, n, threads)


def _read_frame(data: bytes, offset: int, index: int):
    if offset + FRAME_HEADER_BYTES > len(data):
        raise BitstreamError(f"truncated stream: frame {index} header missing at byte {offset}")
    flags, qp, length, crc, mcrc = _FRAME.unpack_from(data, offset)
    start = offset + FRAME_HEADER_BYTES
    if start + length > len(data):
        raise BitstreamError(f"truncated stream: frame {index} needs {length} payload bytes, "
                             f"{len(data) - start} left")
    payload = bytes(data[start:start + length])
    if zlib.crc32(payload) != crc:
        raise BitstreamError(f"frame {index} payload CRC mismatch (corrupt data)")
    frame_type, reset = flags >> 4, bool(flags & 1)
    if frame_type not in (FRAME_I, FRAME_P) or flags & 0x0E:
        raise BitstreamError(f"frame {index}: invalid type/flags byte 0x{flags:02x}")
    return FrameRecord(frame_type, qp, reset, payload, mcrc), start + length


def parse_stream(data: bytes):
    """Validate and split a stream into (StreamHeader, [FrameRecord]); raises BitstreamError."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    header = read_header(data)
    frames, offset = [], HEADER_BYTES
    for i in range(header.num_frames):
        rec, offset = _read_frame(data, offset, i)
        frames.append(rec)
    if offset != len(data):
        raise BitstreamError(f"{len(data) - offset} trailing bytes after the last frame")
    if frames[0].frame_type != FRAME_I:
        raise BitstreamError("the first frame is not an I-frame")
    if header.kind == KIND_IMAGE and header.num_frames != 1:
        raise BitstreamError(f"image stream with {header.num_frames} frames")
    return header, frames
