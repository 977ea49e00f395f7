"""What a receiver accepts from untrusted bytes (a `.disco` file from the network, a shard sample), checked against
the declared sizes before any model is built or any large buffer allocated. The defaults are generous for real
use: the paper's largest clip, 1440×768×233, is 0.26 G pixels; a 600-frame 1080p sequence is 1.24 G.
"""

from __future__ import annotations

from dataclasses import dataclass

from disco_train.config.base import check


@dataclass(frozen=True)
class DecodeLimits:
    max_side: int = 8192
    """Largest height or width of a video (8K UHD is 7680×4320)."""
    max_pixels: int = 1 << 31
    """Largest frames × height × width of the video the decoder generates (2.1 G pixels ≈ 6.4 GB as uint8 RGB)."""
    max_text_bytes: int = 1 << 16
    """Largest caption after inflating (64 KiB; T5 reads 128 tokens)."""
    max_people: int = 256
    """Most poses in one frame of a pose stream."""

    def validate(self, prefix: str = "limits") -> None:
        for name in ("max_side", "max_pixels", "max_text_bytes", "max_people"):
            check(getattr(self, name) > 0, f"{prefix}.{name}", "must be positive")
