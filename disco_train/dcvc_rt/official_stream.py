"""The official DCVC-RT container (test_video.py / stream_helper.py), written and parsed here.

A stream is a sequence of NAL units, each starting with one byte (nal_type << 4) | sps_id:
- SPS (nal_type 0): height and width as adaptive uints, then one flag byte (ec_part << 2) | use_ada_i.
  A new SPS (the next id, at most 16) is written whenever (height, width, use_ada_i, ec_part) is new.
- I / P frame (nal_type 1 / 2): qp (1 byte), payload length (adaptive uint), the rANS payload
  (rans_official.py). A P-frame whose SPS has use_ada_i set resets the reference feature first.
Adaptive uint: < 2^7 in one byte (top bit 0); < 2^14 in two bytes, big-endian, top bits 10;
< 2^30 in four bytes, top bits 11.
ec_part = 1 (two rANS coders) for frames of more than 1280 x 720 pixels.

There are no magic bytes or checksums: a stream is recognised by its first byte (an SPS, high nibble 0;
our own container starts with "D" = 0x44), and corruption shows only as a failed rANS end-state check.
"""

from . import bitstream as bs
from .coding import BitstreamError

NAL_SPS, NAL_I, NAL_P = 0, 1, 2
TWO_CODERS_PIXELS = 1280 * 720


def uses_two_coders(height: int, width: int) -> bool:
    return height * width > TWO_CODERS_PIXELS


def looks_official(data: bytes) -> bool:
    return len(data) > 0 and data[0] >> 4 == NAL_SPS


def uint_adaptive(a: int) -> bytes:
    if a < (1 << 7):
        return bytes((a,))
    if a < (1 << 14):
        return bytes(((a >> 8) | 0x80, a & 0xFF))
    if a >= (1 << 30):
        raise ValueError(f"{a} does not fit the official 30-bit adaptive uint")
    return (a | (0xC0 << 24)).to_bytes(4, "big")


def write_stream(height: int, width: int, records) -> list:
    """bitstream.FrameRecords -> one byte chunk per frame (the SPS it introduces first)."""
    if not (0 < height and 0 < width and height * width <= bs.MAX_PIXELS):
        raise ValueError(f"frame size {height}x{width} outside 1..{bs.MAX_PIXELS} pixels")
    ec_part = int(uses_two_coders(height, width))
    sps_ids, chunks = {}, []
    for rec in records:
        ada = int(rec.frame_type == bs.FRAME_P and rec.reset)
        chunk = b""
        if ada not in sps_ids:
            sps_ids[ada] = len(sps_ids)
            chunk = (bytes(((NAL_SPS << 4) | sps_ids[ada],)) + uint_adaptive(height) + uint_adaptive(width)
                     + bytes(((ec_part << 2) | ada,)))
        nal = NAL_I if rec.frame_type == bs.FRAME_I else NAL_P
        chunk += bytes(((nal << 4) | sps_ids[ada], rec.qp)) + uint_adaptive(len(rec.payload)) + rec.payload
        chunks.append(chunk)
    return chunks


class _Cursor:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise BitstreamError(f"truncated official stream: {what} needs {n} bytes at byte {self.pos}, "
                                 f"{len(self.data) - self.pos} left")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def uint(self, what: str) -> int:
        a = self.take(1, what)[0]
        if a >> 7 == 0:
            return a
        if a >> 6 == 0b10:
            return ((a & 0x3F) << 8) | self.take(1, what)[0]
        return int.from_bytes(bytes((a & 0x3F,)) + self.take(3, what), "big")


def _read_sps(cur: _Cursor, sps_id: int, spss: dict):
    height, width = cur.uint("SPS height"), cur.uint("SPS width")
    flag = cur.take(1, "SPS flags")[0]
    if height == 0 or width == 0 or height * width > bs.MAX_PIXELS:
        raise BitstreamError(f"official SPS {sps_id}: frame size {height}x{width} outside 1..{bs.MAX_PIXELS} pixels")
    if flag & ~0x05:
        raise BitstreamError(f"official SPS {sps_id}: invalid flag byte 0x{flag:02x}")
    spss[sps_id] = (height, width, (flag >> 2) & 1, flag & 1)


def parse_stream(data: bytes):
    """Official stream -> ((height, width, ec_part), [bitstream.FrameRecord]); raises BitstreamError."""
    cur, spss, records, size = _Cursor(data), {}, [], None
    while cur.pos < len(data):
        flag = cur.take(1, "NAL header")[0]
        nal, sps_id = flag >> 4, flag & 0x0F
        if nal == NAL_SPS:
            _read_sps(cur, sps_id, spss)
            continue
        if nal not in (NAL_I, NAL_P):
            raise BitstreamError(f"official stream: NAL type {nal} at byte {cur.pos - 1} is not SPS, I or P")
        if sps_id not in spss:
            raise BitstreamError(f"official stream: frame {len(records)} refers to SPS {sps_id}, not yet sent")
        height, width, ec_part, ada = spss[sps_id]
        if size not in (None, (height, width, ec_part)):
            raise BitstreamError(f"official stream: frame size or coder count changes at frame {len(records)} "
                                 f"({size} -> {(height, width, ec_part)}), which this decoder does not support")
        size = (height, width, ec_part)
        qp = cur.take(1, "frame qp")[0]
        payload = cur.take(cur.uint("frame length"), f"frame {len(records)} payload")
        kind = bs.FRAME_I if nal == NAL_I else bs.FRAME_P
        records.append(bs.FrameRecord(kind, qp, bool(ada) and kind == bs.FRAME_P, payload))
    if not records:
        raise BitstreamError("official stream holds no frame")
    if records[0].frame_type != bs.FRAME_I:
        raise BitstreamError("the first frame is not an I-frame")
    return size, records
