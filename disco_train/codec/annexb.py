"""Annex-B elementary streams (H.264, H.265, H.266): NAL units, and removing the encoder's self-description.

x264 writes its version and whole option string as a user-data-unregistered SEI message (payloadType 5) in the
first access unit; x265 does the same unless `info=0` (about 2.3 kB at its defaults); a decoder reads neither.
User-data-unregistered messages are opaque to the decoding process by definition (a 16-byte UUID and bytes no
decoder interprets), so dropping them changes no decoded sample — `tests/test_annexb.py` checks that the stripped
stream decodes to identical frames. Other SEI messages are kept: an SEI NAL unit that carries only user-data
payloads is removed with its start code, one that carries others too is rewritten without the user-data ones.

NAL unit header and SEI NAL types:
- H.264: 1 byte, nal_unit_type = byte0 & 0x1F; SEI = 6.
- H.265: 2 bytes, nal_unit_type = (byte0 >> 1) & 0x3F; prefix SEI = 39, suffix SEI = 40.
- H.266: 2 bytes, nal_unit_type = byte1 >> 3; prefix SEI = 23, suffix SEI = 24.
An SEI RBSP is a list of sei_message()s — payloadType and payloadSize each coded as a run of 0xFF bytes (255
each) plus one last byte, then payloadSize payload bytes — followed by rbsp_trailing_bits (0x80). Inside a NAL
unit the encoder inserts an emulation-prevention byte 0x03 after every 00 00 that precedes a byte <= 3.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

USER_DATA_UNREGISTERED = 5
_SEI_TYPES = {"h264": (6,), "hevc": (39, 40), "vvc": (23, 24)}
_HEADER_BYTES = {"h264": 1, "hevc": 2, "vvc": 2}
_START = re.compile(b"\x00\x00\x01")
_EMULATION = re.compile(b"\x00\x00\x03")  # a decoder drops every 03 after 00 00
_NEEDS_EMULATION = re.compile(b"\x00\x00(?=[\x00-\x03])")


@dataclass(frozen=True)
class NalUnit:
    prefix: bytes
    """The start code before the unit (00 00 01, with any leading zero bytes)."""
    data: bytes
    """The NAL unit: header and payload, emulation prevention included."""


def nal_type(data: bytes, syntax: str) -> int:
    if syntax == "h264":
        return data[0] & 0x1F
    if syntax == "hevc":
        return (data[0] >> 1) & 0x3F
    return data[1] >> 3


def split(stream: bytes) -> list[NalUnit]:
    """An Annex-B byte stream -> its NAL units in order. Zero bytes before a start code belong to that start code
    (zero_byte / trailing_zero_8bits), so joining prefix + data of every unit gives the stream back exactly."""
    starts = [m.start() for m in _START.finditer(stream)]
    if not starts:
        return []
    units, begin = [], 0
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(stream)
        if i + 1 < len(starts):
            while end > start + 3 and stream[end - 1] == 0:  # zeros before the next start code are its prefix
                end -= 1
        units.append(NalUnit(stream[begin:start + 3], stream[start + 3:end]))
        begin = end
    return units


def join(units: list[NalUnit]) -> bytes:
    return b"".join(u.prefix + u.data for u in units)


def _read_varint(rbsp: bytes, pos: int) -> tuple[int, int]:
    value = 0
    while pos < len(rbsp) and rbsp[pos] == 0xFF:
        value, pos = value + 255, pos + 1
    if pos >= len(rbsp):
        raise ValueError("SEI message truncated")
    return value + rbsp[pos], pos + 1


def _write_varint(value: int) -> bytes:
    return b"\xff" * (value // 255) + bytes([value % 255])


def sei_messages(rbsp: bytes) -> list[tuple[int, bytes]]:
    """An SEI RBSP (after the NAL header, emulation prevention removed) -> [(payloadType, payload)]."""
    messages, pos = [], 0
    end = len(rbsp.rstrip(b"\x00"))
    while pos < end and not (pos == end - 1 and rbsp[pos] == 0x80):  # the last byte is rbsp_trailing_bits
        kind, pos = _read_varint(rbsp, pos)
        size, pos = _read_varint(rbsp, pos)
        if pos + size > end:
            raise ValueError(f"SEI payload of {size} bytes runs past the NAL unit")
        messages.append((kind, rbsp[pos:pos + size]))
        pos += size
    return messages


def _sei_unit(header: bytes, messages: list[tuple[int, bytes]]) -> bytes:
    rbsp = b"".join(_write_varint(k) + _write_varint(len(p)) + p for k, p in messages) + b"\x80"
    return header + _NEEDS_EMULATION.sub(b"\x00\x00\x03", rbsp)


def strip_encoder_info(stream: bytes, syntax: str) -> bytes:
    """The stream without user-data-unregistered SEI messages (the encoder's version and option text).
    `syntax`: 'h264', 'hevc' or 'vvc'. A stream without such messages comes back unchanged."""
    if syntax not in _SEI_TYPES:
        raise ValueError(f"unknown NAL syntax {syntax!r}; choose one of {sorted(_SEI_TYPES)}")
    kept, header_bytes, carried = [], _HEADER_BYTES[syntax], b""
    for unit in split(bytes(stream)):
        data = unit.data
        if len(data) > header_bytes and nal_type(data, syntax) in _SEI_TYPES[syntax]:
            try:
                messages = sei_messages(_EMULATION.sub(b"\x00\x00", data[header_bytes:]))
            except ValueError:
                messages = []  # a unit this parser does not understand is passed on untouched
            others = [(k, p) for k, p in messages if k != USER_DATA_UNREGISTERED]
            if messages and not others:
                # Dropped with its start code; a 4-byte start code (zero_byte: first unit of an access unit)
                # passes to the next unit.
                carried = max(carried, unit.prefix, key=len)
                continue
            if len(others) < len(messages):
                data = _sei_unit(data[:header_bytes], others)
        kept.append(NalUnit(max(unit.prefix, carried, key=len), data))
        carried = b""
    return join(kept)


def user_data(stream: bytes, syntax: str) -> list[bytes]:
    """Payloads of every user-data-unregistered SEI message in the stream (for tests and reports)."""
    found = []
    for unit in split(bytes(stream)):
        if len(unit.data) > _HEADER_BYTES[syntax] and nal_type(unit.data, syntax) in _SEI_TYPES[syntax]:
            rbsp = _EMULATION.sub(b"\x00\x00", unit.data[_HEADER_BYTES[syntax]:])
            found += [p for k, p in sei_messages(rbsp) if k == USER_DATA_UNREGISTERED]
    return found
