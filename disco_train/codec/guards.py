"""What `encode` and `decode` refuse before any work (exit 2, one line naming the cause): outputs over inputs or
over files they did not write (`config.outputs`), settings their receiver would refuse, and clips whose declared
geometry needs more memory than the budget (`config.limits`)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np

from disco_train.codec.sender import CodecError
from disco_train.config import DecodeLimits
from disco_train.config.outputs import check_file_output, check_folder_output, claim_folder, owns
from disco_train.io.errors import DecodeError


def check_encode(a) -> None:
    """What the receiver would refuse is refused here, before the video is read: a caption over the receiver's
    text limit, rate settings out of range."""
    from disco_train.config.base import check
    from disco_train.decoder.manifest import RANGES

    size = len((a.caption or "").encode())
    check(size <= DecodeLimits.max_text_bytes, "caption", f"{size:,} bytes; a receiver reads at most "
          f"{DecodeLimits.max_text_bytes:,} (limits.max_text_bytes; T5 reads the first 128 tokens)")
    for key, (low, high) in RANGES.items():
        value = getattr(a.send, key, None)
        check(value is None or low <= value <= high, f"send.{key}", f"must be in {low}..{high}, got {value}")
    check(a.max_memory_gb >= 0, "max_memory_gb", "must be >= 0 (0: 24 GB)")


def check_encode_output(a) -> None:
    """Refuses (ConfigError) an `out` that is one of the files encode reads, or an existing file that is not a
    .disco file (unless overwrite)."""
    from disco_train.codec.container import MAGIC

    inputs = [("video", a.video), ("export", a.export)] + [(k, getattr(a, k)) for k in ("sketch", "pose")
                                                           if getattr(a, k) != "auto"]
    check_file_output(a.out, inputs, a.overwrite, magic=MAGIC)


def check_source(a) -> None:
    """The receiver's own geometry check (`Geometry.check`: sides, pixels, frame rate under the default
    `DecodeLimits`) on what the video declares, scaled to `size=` when given, before any frame is decoded: encode
    never codes what a receiver would refuse."""
    from disco_train.codec.container import ContainerError
    from disco_train.codec.sender import geometry_for
    from disco_train.io.video import probe

    info = probe(a.video)
    width, height = info.width, info.height
    if a.size:
        from disco_train.codec.trained import clip_size

        width, height = clip_size(a.size, a.export)
    try:
        geometry_for(max(info.frames, 1), height, width, info.fps).check()
    except ContainerError as err:
        scaled = f", size={a.size}" if a.size else ""
        raise CodecError(f"{a.video}: {width}×{height} (width×height{scaled}) is refused by its receiver: "
                         f"{str(err).removeprefix('bad geometry: ')}") from None


def read_source(path: str, a, size: tuple[int, int] | None = None) -> tuple[np.ndarray, float]:
    """A video encode reads, refused (before it is decoded, when its header says so) beyond the memory budget."""
    from disco_train.config.limits import ENCODE_COPIES, budget_bytes
    from disco_train.io.video import TooLarge, read_video

    try:
        return read_video(path, max_bytes=budget_bytes(a.max_memory_gb) // ENCODE_COPIES, size=size)
    except TooLarge as err:
        raise CodecError(f"{err}; encode holds about {ENCODE_COPIES} copies of it (max_memory_gb="
                         f"{a.max_memory_gb or 'default 24'} sets the budget)") from None


def check_decode(a) -> None:
    from disco_train.config.base import check
    from disco_train.config.decoder import MAX_STEPS

    check(a.steps is None or 0 < a.steps <= MAX_STEPS, "steps", f"must be in 1..{MAX_STEPS}, got {a.steps}")
    check(a.guidance is None or 1 <= a.guidance <= 100, "guidance", f"must be in 1..100, got {a.guidance}")
    a.limits.validate()


def check_memory(a, c, cfg, device: str) -> None:
    """Refuses (ConfigError) a file whose declared clip needs more than the budget, before anything is decoded."""
    import torch

    from disco_train.config.limits import budget_bytes, check_budget, decode_bytes

    g = c.geometry
    gpu = torch.cuda.get_device_properties(device).total_memory if device.startswith("cuda") else None
    need = decode_bytes(g.coded_frames, g.coded_height, g.coded_width, 1 + (cfg.condition.aux != "none"))
    check_budget(need, budget_bytes(a.limits.max_memory_gb, gpu),
                 f"{a.input}: decoding {g.coded_frames} frames of {g.coded_width}×{g.coded_height}",
                 "limits.max_memory_gb")


def check_viewing_copy(a, c) -> None:
    """crf=N writes 4:2:0, which needs even sides: refused before sampling, not after."""
    from disco_train.config.base import check

    g = c.geometry
    check(a.crf is None or not (g.width % 2 or g.height % 2), "crf",
          f"a 4:2:0 viewing copy needs an even width and height; {a.input} is {g.width}×{g.height} (leave crf out: "
          f"lossless RGB has no such limit)")


def check_output(a) -> None:
    """Refuses (ConfigError) an `out` that is an input, an existing file (unless overwrite) or a folder decode did
    not fill (unless overwrite); a path that `write_output` cannot write raises VideoError."""
    from disco_train.io.video import output_kind

    inputs = [("input", a.input), ("export", a.export), ("dcvc_rt_dir", a.dcvc_rt_dir),
              ("sketch_dcvc_dir", a.sketch_dcvc_dir)]
    if Path(a.out).is_dir() or not Path(a.out).suffix:
        check_folder_output(a.out, inputs, a.overwrite, "decode")
    else:
        check_file_output(a.out, inputs, a.overwrite)
    output_kind(a.out, a.crf)


@contextmanager
def memory_errors(a):
    """MemoryError, and torch's allocation RuntimeErrors (OutOfMemoryError), as a DecodeError naming the budget."""
    try:
        yield
    except (MemoryError, RuntimeError) as err:
        if not isinstance(err, MemoryError) and "alloc" not in str(err) and "out of memory" not in str(err):
            raise
        raise DecodeError(f"{a.input}: decoding needs more memory than this machine has; lower "
                          f"limits.max_memory_gb={a.limits.max_memory_gb} or use a larger machine") from None


def write_decoded(a, frames: np.ndarray, fps: float) -> None:
    """The reconstruction to `a.out` (`io.video.write_output`); a folder of frames becomes decode's own."""
    from disco_train.io.video import output_kind, write_output

    if output_kind(a.out, a.crf).endswith("PNG frames"):
        own_frames(a.out, len(frames))
    write_output(a.out, frames, fps, crf=a.crf)


def own_frames(folder: str, count: int) -> None:
    """Mark a new or empty `folder` as decode's; in decode's own folder, remove the frames of an earlier, longer
    decode (a folder given with overwrite=true keeps whatever else it holds)."""
    path = Path(folder)
    if owns(path, "decode"):
        for stale in path.glob("[0-9][0-9][0-9][0-9][0-9][0-9].png"):
            if int(stale.stem) >= count:
                stale.unlink()
    elif not path.exists() or not any(path.iterdir()):
        claim_folder(path, "decode")
