"""The text modality: the caption as a zlib bitstream (paper §3.1: lossless; zlib chosen empirically)."""

from __future__ import annotations

import zlib


def encode_text(text: str, level: int = 9) -> bytes:
    """Caption -> zlib bytes (paper §3.1: lossless, zlib chosen empirically). The bytes are the bitstream."""
    return zlib.compress(text.encode("utf-8"), level)


def decode_text(data: bytes) -> str:
    """zlib bytes -> caption. Corrupt bytes raise ValueError."""
    try:
        return zlib.decompress(data).decode("utf-8")
    except (zlib.error, UnicodeDecodeError) as err:
        raise ValueError(f"corrupt text bitstream ({len(data)} bytes): {err}") from None
