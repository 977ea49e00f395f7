"""The text modality: the caption as a zlib bitstream (paper §3.1: lossless; zlib chosen empirically)."""

from __future__ import annotations

import zlib

from disco_train.io.errors import DecodeError
from disco_train.config.limits import DecodeLimits

MAX_TEXT_BYTES = DecodeLimits.max_text_bytes


def encode_text(text: str, level: int = 9) -> bytes:
    """Caption -> zlib bytes (paper §3.1: lossless, zlib chosen empirically). The bytes are the bitstream."""
    return zlib.compress(text.encode("utf-8"), level)


def inflate(data: bytes, max_bytes: int, what: str) -> bytes:
    """zlib bytes -> at most `max_bytes` bytes; more (a zip bomb: 1 MB can inflate to 1 GiB) is a DecodeError
    after inflating max_bytes + 1, never the whole."""
    d = zlib.decompressobj()
    try:
        out = d.decompress(bytes(data), max_bytes + 1)
    except zlib.error as err:
        raise DecodeError(f"corrupt {what} ({len(data)} bytes): {err}") from None
    if len(out) > max_bytes:
        raise DecodeError(f"{what} inflates to more than {max_bytes:,} bytes (the limit); refusing it")
    if not d.eof or d.unused_data:
        raise DecodeError(f"corrupt {what} ({len(data)} bytes): truncated or trailing bytes after the zlib stream")
    return out


def decode_text(data: bytes, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """zlib bytes -> caption, at most `max_bytes` bytes of UTF-8. Corrupt or oversized bytes raise DecodeError."""
    raw = inflate(data, max_bytes, "text bitstream")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DecodeError(f"corrupt text bitstream ({len(data)} bytes): {err}") from None
