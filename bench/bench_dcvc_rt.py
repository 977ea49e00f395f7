"""Benchmark DCVC-RT encode/decode throughput (frames/s) on real bitstreams.

    python bench/bench_dcvc_rt.py                 # 256x256 and 512x512, CPU (+ CUDA if available)
    python bench/bench_dcvc_rt.py --tiny          # 64x64, 2 frames: a smoke run that can't rot
    python bench/bench_dcvc_rt.py --ckpt-dir checkpoints/dcvc_rt   # official weights

The codec always runs with one CPU thread (codec.py: `deterministic`, so that a decoder elsewhere computes the
same entropy models), so these are single-thread CPU figures whatever the machine.
Without --ckpt-dir the deterministic synthetic weights are used: the networks and the coder do the
same work, only the rate differs from real content/weights. Timings include entropy coding and
the Python container, i.e. what a user of encode_frames/decode_frames gets.
"""

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from disco_train.codec.dcvc_rt.api import load_codec, synthetic_codec  # noqa: E402
from disco_train.codec.dcvc_rt.golden_input import make_frame  # noqa: E402


def frames_for(size, n, device, dtype):
    return torch.cat([make_frame(size, size, t) for t in range(n)]).to(device=device, dtype=dtype)


def timed(fn, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def bench_one(codec, size, n_frames, qp):
    frames = frames_for(size, n_frames, codec.device, codec.dtype)
    codec.encode_frames(frames[:2], qp)  # warm-up: kernels, coder model tables
    res, t_enc = timed(lambda: codec.encode_frames(frames, qp), codec.device)
    dec, t_dec = timed(lambda: codec.decode_frames(res.bitstream), codec.device)
    if not torch.equal(dec, res.recon):
        raise SystemExit(f"round trip mismatch at {size}x{size}")
    return n_frames / t_enc, n_frames / t_dec, res.bpp


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="64x64, 2 frames (smoke test)")
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--qp", type=int, default=32)
    p.add_argument("--ckpt-dir", default=None)
    p.add_argument("--devices", nargs="+", default=None, help="default: cpu, plus cuda when available")
    return p.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    sizes, n_frames = ([64], 2) if args.tiny else (args.sizes, args.frames)
    devices = args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    print(f"torch {torch.__version__}, codec threads 1 (pinned), "
          f"weights {'official' if args.ckpt_dir else 'synthetic'}")
    print(f"{'device':<8}{'dtype':<10}{'size':<10}{'frames':<8}{'enc fps':>10}{'dec fps':>10}{'bpp':>10}")
    with torch.inference_mode():
        for dev in devices:
            dtype = torch.float16 if dev == "cuda" else torch.float32
            codec = (load_codec(args.ckpt_dir, device=dev, dtype=dtype) if args.ckpt_dir
                     else synthetic_codec(device=dev, dtype=dtype))
            for size in sizes:
                enc, dec, bpp = bench_one(codec, size, n_frames, args.qp)
                print(f"{dev:<8}{str(dtype).split('.')[-1]:<10}{f'{size}x{size}':<10}{n_frames:<8}"
                      f"{enc:>10.2f}{dec:>10.2f}{bpp:>10.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
