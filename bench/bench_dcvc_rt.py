"""Benchmark DCVC-RT on real bitstreams: speed (1 vs 2 threads, new vs previous P-frame path) and rate
(our coder against the ideal -log2 p of the official 16-bit tables, and against the official byte format).

    python bench/bench_dcvc_rt.py                 # 256x256 and 512x512, 4 frames, CPU (+ CUDA if available)
    python bench/bench_dcvc_rt.py --tiny          # 64x64, 2 frames: a smoke run that can't rot
    python bench/bench_dcvc_rt.py --ckpt-dir checkpoints/dcvc_rt   # official weights

Speed rows, per device / size / thread count, the best of --rounds rounds (configurations alternate inside
a round, so host load hits them alike):
- enc fps: `encode_frames(with_recon=False)`, what api.encode_video and the prepare path run;
- enc+recon fps: the previous path, which also built every P-frame's pixels (recon_generation_net);
- dec fps: `decode_frames`; round trips are checked bit-exact.
Streams record their thread count and decode only with it (codec.py), so each row's stream is decoded
at its own count. "official" rows code the same frames in the official byte format (Python rANS loop).
Rate rows: bytes of the default stream, of the official format, and the coder's payload against the ideal
(-log2 p of the coded symbols under the tables, 2 bits per bypass bin).
Without --ckpt-dir the deterministic synthetic weights are used: the networks and the coder do the same
work, only the rate differs from real content/weights. Input: `golden_input.make_frame`, through uint8 RGB.
"""

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from disco_train.dcvc_rt.api import load_codec, synthetic_codec  # noqa: E402
from disco_train.dcvc_rt.color import uint8_frames_to_ycbcr, ycbcr_to_uint8_frames  # noqa: E402
from disco_train.dcvc_rt.golden_input import make_frame  # noqa: E402


def frames_for(size, n, device, dtype):
    frames = torch.cat([make_frame(size, size, t) for t in range(n)]).float()
    return uint8_frames_to_ycbcr(ycbcr_to_uint8_frames(frames)).to(device=device, dtype=dtype)


def timed(fn, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def run_config(codec, frames, qp, threads, fmt):
    """(encode s, encode + P pixels s, decode s, result) of one configuration; checks the round trip."""
    enc = lambda recon: codec.encode_frames(frames, qp, threads=threads, stream_format=fmt, with_recon=recon)
    lean, t_enc = timed(lambda: enc(False), codec.device)
    full, t_full = timed(lambda: (lambda r: (r, r.recon))(enc(True))[0], codec.device)
    dec, t_dec = timed(lambda: codec.decode_frames(lean.bitstream), codec.device)
    if lean.bitstream != full.bitstream or not torch.equal(dec, full.recon):
        raise SystemExit(f"round trip mismatch ({fmt}, {threads} threads)")
    return t_enc, t_full, t_dec, lean


def bench_size(codec, size, n_frames, qp, threads_list, rounds, official):
    frames = frames_for(size, n_frames, codec.device, codec.dtype)
    configs = [(t, "disco") for t in threads_list] + ([(1, "official")] if official else [])
    codec.encode_frames(frames[:2], qp, with_recon=False)  # warm-up: kernels, coder tables
    best = {}
    for _ in range(rounds):
        for threads, fmt in configs:
            t_enc, t_full, t_dec, res = run_config(codec, frames, qp, threads, fmt)
            old = best.get((threads, fmt), (float("inf"),) * 3 + (res,))
            best[(threads, fmt)] = (min(old[0], t_enc), min(old[1], t_full), min(old[2], t_dec), res)
    return best


def print_speed(dev, dtype, size, n, best):
    base = best[(1, "disco")]
    for (threads, fmt), (t_enc, t_full, t_dec, res) in best.items():
        print(f"{dev:<7}{dtype:<9}{f'{size}x{size}':<9}{n:<4}{threads:<4}{fmt:<10}{n / t_enc:>9.2f}{n / t_full:>12.2f}"
              f"{t_full / t_enc:>8.2f}{n / t_dec:>9.2f}{base[0] / t_enc:>8.2f}{base[2] / t_dec:>8.2f}{res.bpp:>8.4f}")


def print_rate(size, n, best):
    disco, official = best[(1, "disco")][3], best.get((1, "official"), (None,) * 4)[3]
    payload, ideal = sum(disco.payload_bytes), sum(disco.ideal_bits) / 8
    off = f"{len(official.bitstream):>11,}{len(disco.bitstream) / len(official.bitstream):>9.4f}" if official \
        else f"{'-':>11}{'-':>9}"
    print(f"{f'{size}x{size}':<9}{n:<4}{len(disco.bitstream):>11,}{off}{payload:>11,}{ideal:>13,.1f}"
          f"{100 * (payload / ideal - 1):>+9.3f}%")


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="64x64, 2 frames, 1 round (smoke test)")
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--qp", type=int, default=32)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--no-official", action="store_true", help="skip the official byte format rows")
    p.add_argument("--ckpt-dir", default=None)
    p.add_argument("--devices", nargs="+", default=None, help="default: cpu, plus cuda when available")
    return p.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    sizes, n_frames, rounds = ([64], 2, 1) if args.tiny else (args.sizes, args.frames, args.rounds)
    devices = args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    print(f"torch {torch.__version__}, weights {'official' if args.ckpt_dir else 'synthetic'}, qp {args.qp}, "
          f"best of {rounds} round(s); ratios x1t: against 1 thread, disco format")
    print(f"{'device':<7}{'dtype':<9}{'size':<9}{'T':<4}{'thr':<4}{'format':<10}{'enc fps':>9}{'enc+recon':>12}"
          f"{'ratio':>8}{'dec fps':>9}{'enc x1t':>8}{'dec x1t':>8}{'bpp':>8}")
    rates = []
    with torch.inference_mode():
        for dev in devices:
            dtype = torch.float16 if dev == "cuda" else torch.float32
            codec = (load_codec(args.ckpt_dir, device=dev, dtype=dtype) if args.ckpt_dir
                     else synthetic_codec(device=dev, dtype=dtype))
            for size in sizes:
                best = bench_size(codec, size, n_frames, args.qp, args.threads, rounds, not args.no_official)
                print_speed(dev, str(dtype).split(".")[-1], size, n_frames, best)
                rates.append((size, n_frames, best))
    print(f"\n{'size':<9}{'T':<4}{'bytes':>11}{'official':>11}{'ratio':>9}{'payload':>11}{'ideal':>13}"
          f"{'overhead':>10}")
    for size, n, best in rates:
        print_rate(size, n, best)
    return 0


if __name__ == "__main__":
    sys.exit(main())
