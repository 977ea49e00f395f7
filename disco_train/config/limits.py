"""What a receiver accepts from untrusted bytes (a `.disco` file from the network, a shard sample), checked against
the declared sizes before any model is built or any large buffer allocated. The defaults are generous for real
use: the paper's largest clip, 1440×768×233, is 0.26 G pixels; a 600-frame 1080p sequence is 1.24 G.
"""

from __future__ import annotations

from dataclasses import dataclass

from disco_train.config.base import ConfigError, check

MAX_SIDE = 8192
"""The largest height or width of a video anything here makes or reads (8K UHD is 7680×4320): the receiver's
default `DecodeLimits.max_side`, so encode refuses what a default receiver would (`codec.guards.check_source`)."""


@dataclass(frozen=True)
class DecodeLimits:
    max_side: int = MAX_SIDE
    """Largest height or width of a video (8K UHD is 7680×4320)."""
    max_pixels: int = 1 << 31
    """Largest frames × height × width of the video the decoder generates (2.1 G pixels ≈ 6.4 GB as uint8 RGB)."""
    max_text_bytes: int = 1 << 16
    """Largest caption after inflating (64 KiB; T5 reads 128 tokens)."""
    max_people: int = 256
    """Most poses in one frame of a pose stream."""
    max_memory_gb: float = 0.0
    """Memory the decode may need, estimated from the declared geometry before anything is decoded (0 = 24 GB
    on CPU, the GPU's memory on CUDA)."""

    def validate(self, prefix: str = "limits") -> None:
        for name in ("max_side", "max_pixels", "max_text_bytes", "max_people"):
            check(getattr(self, name) > 0, f"{prefix}.{name}", "must be positive")
        check(self.max_memory_gb >= 0, f"{prefix}.max_memory_gb", "must be >= 0 (0: the machine's default)")


GB = 1 << 30
CPU_MEMORY_GB = 24.0
"""The default budget of CPU work: a 24 GB machine."""

DECODE_BYTES_PER_PIXEL = 3 * 2 + 3 * 4 * 2
"""What decoding holds per pixel of the coded clip at least: the restored condition and the output as uint8 RGB,
and the VAE's float32 input and output (its activations come on top)."""
ENCODE_COPIES = 4
"""Copies of the source frames encode holds at once (read, padded to the coded grid, the degraded and sketch
inputs)."""
STREAM_BYTES_PER_PIXEL = 3 * 2 + 3 * 4
"""What encode holds per pixel of the one source frame it works on when it streams (`codec.source`): the frame
and its copy padded to the coded grid as uint8 RGB, and the float32 copy the downsampling takes."""


def budget_bytes(max_memory_gb: float, device_bytes: int | None = None) -> int:
    """The budget in bytes: `max_memory_gb` if set, else the device's memory (CUDA), else 24 GB."""
    if max_memory_gb > 0:
        return int(max_memory_gb * GB)
    return device_bytes or int(CPU_MEMORY_GB * GB)


def check_budget(need: int, budget: int, what: str, key: str) -> None:
    """ConfigError naming the estimate when `need` bytes exceed `budget`."""
    if need > budget:
        raise ConfigError(f"{what} needs at least {_gb(need)} GB, more than the {_gb(budget)} GB budget "
                          f"({key}=GB sets it; a larger machine or a shorter, smaller clip)")


def _gb(size: int) -> str:
    """Gigabytes to one decimal, to two significant digits below 1 GB (0.1 GB budgets are refused at 0.12)."""
    return f"{size / GB:.1f}" if size >= GB else f"{size / GB:.2g}"


def stream_bytes(frames: int, height: int, width: int, ds: int, dt: int, frame_pixels: int) -> int:
    """At least the memory of encode streaming `frames` frames padded to height × width: the degraded video it keeps
    (1 of dt frames, sides / ds; `ENCODE_COPIES` copies while it is coded) and the working set of one source frame
    of `frame_pixels` pixels."""
    kept = -(-frames // dt)
    return kept * (height // ds) * (width // ds) * 3 * ENCODE_COPIES + frame_pixels * STREAM_BYTES_PER_PIXEL


def decode_bytes(frames: int, height: int, width: int, modalities: int = 1) -> int:
    """At least the memory decoding a coded clip of frames × height × width takes (`modalities`: condition
    videos restored, 2 with a sketch or pose)."""
    return frames * height * width * (DECODE_BYTES_PER_PIXEL + 3 * (modalities - 1))
