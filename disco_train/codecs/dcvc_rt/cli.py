"""DCVC-RT command line.

    python -m disco_train.codecs.dcvc_rt.cli encode in.mp4 out.bin qp=32 [qp_p=..] [intra_period=-1]
        [reset_interval=32] [max_frames=0] [ckpt_dir=checkpoints/dcvc_rt] [device=cpu]
        [threads=1] [format=disco|official]
    python -m disco_train.codecs.dcvc_rt.cli decode in.bin out.mp4 [fps=25] [vcodec=libx264rgb] [ckpt_dir=..]

Inputs/outputs ending in .npy are exact uint8 (T,H,W,3) RGB arrays; other paths go through PyAV.
`weights=synthetic` uses the deterministic test weights instead of checkpoints (smoke tests only).
`format=official` writes microsoft/DCVC's test_video.py byte format (one thread); decode reads both formats,
and a disco stream is decoded with the thread count recorded in it.
"""

import sys
import time

import torch

from .api import load_codec, synthetic_codec
from .coding import BitstreamError
from .loading import CheckpointMismatchError
from .color import uint8_frames_to_ycbcr, ycbcr_to_uint8_frames
from .video_io import read_frames, write_frames

_INT_KEYS = {"qp", "qp_p", "intra_period", "reset_interval", "max_frames", "fps", "crf", "threads"}
_STR_KEYS = {"ckpt_dir", "device", "weights", "vcodec", "format"}
USAGE = __doc__


def parse_options(items):
    """key=value pairs -> dict with ints converted; unknown keys are an error."""
    opts = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in _INT_KEYS | _STR_KEYS:
            raise SystemExit(f"bad option {item!r}; expected key=value with key in "
                             f"{sorted(_INT_KEYS | _STR_KEYS)}\n{USAGE}")
        try:
            opts[key] = int(value) if key in _INT_KEYS else value
        except ValueError:
            raise SystemExit(f"option {key} needs an integer, got {value!r}") from None
    return opts


def make_codec(opts):
    device = opts.get("device", "cpu")
    if opts.get("weights", "official") == "synthetic":
        return synthetic_codec(device=device)
    return load_codec(opts.get("ckpt_dir"), device=device)


def cmd_encode(src, dst, opts):
    if "qp" not in opts:
        raise SystemExit("encode needs qp=<0..63>")
    frames = read_frames(src, opts.get("max_frames", 0))
    codec = make_codec(opts)
    t0 = time.perf_counter()
    res = codec.encode_frames(uint8_frames_to_ycbcr(frames, codec.dtype, codec.device), opts["qp"],
                              qp_p=opts.get("qp_p"), intra_period=opts.get("intra_period", -1),
                              reset_interval=opts.get("reset_interval", 32), with_recon=False,
                              threads=opts.get("threads", 1), stream_format=opts.get("format", "disco"))
    dt = time.perf_counter() - t0
    with open(dst, "wb") as f:
        f.write(res.bitstream)
    T, H, W = frames.shape[:3]
    print(f"encoded {T} frames {W}x{H} -> {len(res.bitstream)} bytes, {res.bpp:.4f} bpp, {T / dt:.2f} fps")


def cmd_decode(src, dst, opts):
    with open(src, "rb") as f:
        data = f.read()
    codec = make_codec(opts)
    t0 = time.perf_counter()
    frames = ycbcr_to_uint8_frames(codec.decode_frames(data))
    dt = time.perf_counter() - t0
    write_frames(dst, frames, fps=opts.get("fps", 25), vcodec=opts.get("vcodec", "libx264rgb"),
                 crf=opts.get("crf", 0))
    print(f"decoded {frames.shape[0]} frames {frames.shape[2]}x{frames.shape[1]} -> {dst}, "
          f"{frames.shape[0] / dt:.2f} fps")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 3 or argv[0] not in ("encode", "decode"):
        raise SystemExit(USAGE)
    opts = parse_options(argv[3:])
    try:
        with torch.inference_mode():
            (cmd_encode if argv[0] == "encode" else cmd_decode)(argv[1], argv[2], opts)
    except (FileNotFoundError, BitstreamError, CheckpointMismatchError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
