"""DCVC-RT command line.

    python -m disco_train dcvc-rt encode in.mp4 out.bin qp=32 [qp_p=..] [intra_period=-1]
        [reset_interval=32] [max_frames=0] [ckpt_dir=checkpoints/dcvc_rt] [device=cpu]
        [threads=1] [format=disco|official]
    python -m disco_train dcvc-rt decode in.bin out.mp4 [fps=25] [vcodec=libx264rgb] [ckpt_dir=..]

Inputs/outputs ending in .npy are exact uint8 (T,H,W,3) RGB arrays; other paths go through PyAV.
`weights=synthetic` uses the deterministic test weights instead of checkpoints (smoke tests only).
`format=official` writes microsoft/DCVC's test_video.py byte format (one thread); decode reads both formats,
and a disco stream is decoded with the thread count recorded in it.
"""

import sys
import time
from dataclasses import dataclass
from typing import Optional

import torch

from disco_train.config.cli import REQUIRED, Command, moved
from disco_train.io.video import read_frames, write_with_vcodec

from .api import load_codec, synthetic_codec
from .coding import BitstreamError
from .loading import CheckpointMismatchError
from .color import uint8_frames_to_ycbcr, ycbcr_to_uint8_frames

@dataclass
class EncodeArgs:
    src: str = REQUIRED
    """Input video (.npy: exact uint8 (T,H,W,3) RGB; else read with PyAV)."""
    dst: str = REQUIRED
    """Output bitstream."""
    qp: int = REQUIRED  # type: ignore[assignment]
    """I-frame QP, 0 (lowest quality) to 63."""
    qp_p: Optional[int] = None
    """P-frame base QP (default: qp)."""
    intra_period: int = -1
    """Frames between I-frames (-1: only the first)."""
    reset_interval: int = 32
    """P-frames between feature-buffer resets."""
    max_frames: int = 0
    """Read at most this many frames (0: all)."""
    ckpt_dir: str = ""
    """Folder of the official checkpoints ('' = checkpoints/dcvc_rt)."""
    device: str = "cpu"
    """Torch device."""
    weights: str = "official"
    """'official' (ckpt_dir) or 'synthetic' (the deterministic test weights; smoke tests only)."""
    threads: int = 1
    """Intra-op threads of the encoder, recorded in a disco stream (its decoder uses the same count)."""
    format: str = "disco"
    """'disco' (CRC-checked container) or 'official' (microsoft/DCVC's byte format, one thread)."""


@dataclass
class DecodeArgs:
    src: str = REQUIRED
    """Input bitstream."""
    dst: str = REQUIRED
    """Output video (.npy: exact uint8 (T,H,W,3) RGB; else written with PyAV)."""
    fps: int = 25
    """Frame rate of the written video."""
    vcodec: str = "libx264rgb"
    """PyAV encoder of the written video."""
    crf: int = 0
    """CRF of the written video (0 with libx264rgb: lossless)."""
    ckpt_dir: str = ""
    """Folder of the official checkpoints ('' = checkpoints/dcvc_rt)."""
    device: str = "cpu"
    """Torch device."""
    weights: str = "official"
    """'official' (ckpt_dir) or 'synthetic' (the deterministic test weights)."""


PROG = "python -m disco_train dcvc-rt"
COMMANDS = {"encode": Command(f"{PROG} encode", "Video -> DCVC-RT bitstream.", EncodeArgs, ("src", "dst")),
            "decode": Command(f"{PROG} decode", "DCVC-RT bitstream -> video.", DecodeArgs, ("src", "dst"))}


def make_codec(a):
    if a.weights == "synthetic":
        return synthetic_codec(device=a.device)
    return load_codec(a.ckpt_dir or None, device=a.device)


def cmd_encode(a: EncodeArgs) -> None:
    frames = read_frames(a.src, a.max_frames)
    codec = make_codec(a)
    t0 = time.perf_counter()
    with torch.inference_mode():
        res = codec.encode_frames(uint8_frames_to_ycbcr(frames, codec.dtype, codec.device), a.qp, qp_p=a.qp_p,
                                  intra_period=a.intra_period, reset_interval=a.reset_interval, with_recon=False,
                                  threads=a.threads, stream_format=a.format)
    dt = time.perf_counter() - t0
    with open(a.dst, "wb") as f:
        f.write(res.bitstream)
    T, H, W = frames.shape[:3]
    print(f"encoded {T} frames {W}x{H} -> {len(res.bitstream)} bytes, {res.bpp:.4f} bpp, {T / dt:.2f} fps")


def cmd_decode(a: DecodeArgs) -> None:
    with open(a.src, "rb") as f:
        data = f.read()
    codec = make_codec(a)
    t0 = time.perf_counter()
    with torch.inference_mode():
        frames = ycbcr_to_uint8_frames(codec.decode_frames(data))
    dt = time.perf_counter() - t0
    write_with_vcodec(a.dst, frames, fps=a.fps, vcodec=a.vcodec, crf=a.crf)
    print(f"decoded {frames.shape[0]} frames {frames.shape[2]}x{frames.shape[1]} -> {a.dst}, "
          f"{frames.shape[0] / dt:.2f} fps")


ERRORS = (FileNotFoundError, BitstreamError, CheckpointMismatchError, ValueError)


def encode_main(argv: list[str]) -> int:
    return COMMANDS["encode"].main(argv, cmd_encode, ERRORS)


def decode_main(argv: list[str]) -> int:
    return COMMANDS["decode"].main(argv, cmd_decode, ERRORS)


def main(argv: list[str]) -> int:
    """`encode|decode ...`: the deprecated `python -m disco_train.dcvc_rt.cli` (and codec.dcvc_rt.cli) path."""
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: {PROG} encode|decode SRC DST [key=value ...]   (encode --help lists the keys)",
              file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return (encode_main if argv[0] == "encode" else decode_main)(argv[1:])


if __name__ == "__main__":
    moved("disco_train.dcvc_rt.cli", f"{PROG} encode|decode")
    sys.exit(main(sys.argv[1:]))
