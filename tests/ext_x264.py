"""A stand-in external codec for the benchmark's `ext:` methods: H.264 by PyAV's libx264, raw YUV 4:2:0 in and out,
driven by the command line the way VTM or HM are.

    python ext_x264.py encode INPUT.yuv BITSTREAM WIDTH HEIGHT QP [--sleep S] [--drop N]
    python ext_x264.py decode BITSTREAM OUTPUT.yuv

--sleep waits before coding (a hung codec), --drop leaves out the last N decoded frames (a broken one)."""

import sys
import time

import av
import numpy as np


def encode(source, target, width, height, qp, sleep=0.0):
    time.sleep(sleep)
    print(f"encoding {source} at qp {qp}", file=sys.stderr)
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.options = {"preset": "medium", "qp": str(qp)}
    data = np.fromfile(source, np.uint8).reshape(-1, height * 3 // 2, width)
    out = bytearray()
    for i, planes in enumerate(data):
        frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
        frame.pts = i
        out += b"".join(bytes(p) for p in ctx.encode(frame))
    out += b"".join(bytes(p) for p in ctx.encode(None))
    open(target, "wb").write(out)


def decode(source, target, drop=0):
    ctx = av.CodecContext.create("h264", "r")
    frames = [f for p in ctx.parse(open(source, "rb").read()) + ctx.parse(b"") for f in ctx.decode(p)]
    frames += list(ctx.decode(None))
    with open(target, "wb") as out:
        for f in frames[:len(frames) - drop]:
            out.write(f.to_ndarray().tobytes())


if __name__ == "__main__":
    args, flags = [a for a in sys.argv[1:] if not a.startswith("--")], {}
    for a in sys.argv[1:]:
        if a.startswith("--"):
            key, _, value = a[2:].partition("=")
            flags[key] = float(value)
    if args[0] == "encode":
        encode(args[1], args[2], int(args[3]), int(args[4]), int(args[5]), flags.get("sleep", 0.0))
    else:
        decode(args[1], args[2], int(flags.get("drop", 0)))
