"""The standard codecs against each other on natural-looking content, through `python -m disco_train benchmark`:
BD-rates (PSNR, SSIM) of x265 against x264 and of vvenc (H.266) against x265 and x264, and what each costs; and
first, what the encoder-info SEI that stored streams no longer carry would have cost (bytes per stream with the
encoder's self-description, without it, and the share of the stream it was).

    python bench/bench_codecs.py                   # 3 scenes 512×512×33, QPs 51-31 for all three codecs
    python bench/bench_codecs.py --tiny            # 1 scene 96×96×9, x264 + x265 only: a smoke run that can't rot

The scenes are `disco_train.benchmark.content.natural_video` (textured surfaces at every scale, occlusion edges,
a sub-pixel camera pan with a slow zoom, an object moving against it, sensor noise), written losslessly; every
codec gets the same QP ladder (`--qps`), its default preset (medium) and, for vvenc, its default perceptual QP
adaptation. The codecs' history says x265 < x264 and vvenc < x265 in rate at equal quality; a non-negative
figure here would mean a broken setting, not a finding. Printed: date, host, load, the command, the table.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from disco_train.benchmark.content import write_natural_set  # noqa: E402
from disco_train.config.recipe import resolve  # noqa: E402

PAIRS = (("x265", "x264"), ("vvenc", "x265"), ("vvenc", "x264"))


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=3)
    parser.add_argument("--size", type=int, default=512, help="square side of the scenes and clips")
    parser.add_argument("--frames", type=int, default=33)
    parser.add_argument("--qps", default="51,47,43,39,35,31", help="the QP ladder of every codec")
    parser.add_argument("--out", default="runs/bench_codecs")
    parser.add_argument("--tiny", action="store_true", help="1 scene 96×96×9, QPs 45,35, x264 and x265 only")
    args = parser.parse_args(argv)
    if args.tiny:
        args.videos, args.size, args.frames, args.qps = 1, 96, 9, "45,35"
    return args


def vvenc_found() -> bool:
    from disco_train.codec import vvenc

    shared = ROOT.parent / "shared" / "tools" / "vvenc" / "vvencapp"
    if not os.environ.get(vvenc.ENV) and shared.is_file():
        os.environ[vvenc.ENV] = str(shared)
    try:
        vvenc.find_app()
        return True
    except vvenc.VvencUnavailable:
        return False


def sei_rows(tiny: bool) -> list[str]:
    """Stream bytes with and without the encoder-info SEI: natural content at the paper's clip size, and the
    degraded videos of prepare's defaults (D_s = D_t = 4, CRF 35: 128×128, 15 of 57 frames) and of the demo
    recipe (64×64×17 -> 16×16, 5 frames, x264 CRF 30)."""
    from disco_train.benchmark.content import natural_video
    from disco_train.codec.standard import encode_bitstream
    from disco_train.modalities.degrade import degrade

    side, frames = (256, 9) if tiny else (512, 57)  # 256 / 4 = 64: x265 codes frames of at least 64 px
    clip = natural_video(frames, side, side, seed=7)
    cases = [(f"natural {side}×{side}×{frames}", clip, codec, 35) for codec in ("x264", "x265")]
    small = degrade(clip, 4, 4)
    cases += [(f"prepare default: degraded {small.shape[2]}×{small.shape[1]}×{len(small)}", small, c, 35)
              for c in ("x264", "x265")]
    demo = degrade(natural_video(17, 64, 64, seed=8), 4, 4)
    cases.append((f"demo recipe: degraded {demo.shape[2]}×{demo.shape[1]}×{len(demo)}", demo, "x264", 30))
    lines = ["| content | codec | with encoder SEI (B) | stored (B) | saved (B) | share of the stream |",
             "|---|---|---|---|---|---|"]
    for label, frames_, codec, crf in cases:
        full = len(encode_bitstream(frames_, 25.0, codec, crf=crf, encoder_info=True))
        stored = len(encode_bitstream(frames_, 25.0, codec, crf=crf))
        lines.append(f"| {label} | {codec} crf {crf} | {full:,} | {stored:,} | {full - stored:,} | "
                     f"{(full - stored) / full:.1%} |")
    return lines


def main(argv: list[str]) -> int:
    from disco_train.benchmark.runner import run

    args = parse(argv)
    out = Path(args.out)
    methods = ["x264", "x265"] + (["vvenc"] if vvenc_found() and not args.tiny else [])
    refs = out.with_name(f"{out.name}-scenes")  # beside the output: the benchmark never takes its own files as sources
    write_natural_set(refs, videos=args.videos, frames=args.frames, height=args.size, width=args.size)
    ladder = f"[{args.qps}]"
    keys = [f"refs={refs}", f"out={out}", f"methods={','.join(methods)}", f"size={args.size}x{args.size}",
            f"frames={args.frames}", "metrics.names=psnr,ssim", "device=cpu", f"x264.values={ladder}",
            f"x265.values={ladder}", f"vvenc.qp={ladder}"]
    print(f"# bench_codecs {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, host {platform.node()}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    print(f"# python bench/bench_codecs.py {' '.join(argv)}  ->  benchmark {' '.join(keys)}")
    print("\n".join(sei_rows(args.tiny)))
    start = time.perf_counter()
    tables = {}
    for anchor in methods[:2]:
        cfg, _, _ = resolve([*keys, f"anchor={anchor}"], default_task="benchmark")
        tables[anchor] = run(cfg, "(bench_codecs)", log=lambda *_: None)["table"]
    print(f"# {args.videos} scenes {args.size}×{args.size}×{args.frames}, QPs {args.qps}, "
          f"{time.perf_counter() - start:.0f} s, load {os.getloadavg()[0]:.2f}")
    print("| BD-rate (%) | PSNR | SSIM |\n|---|---|---|")
    for test, anchor in PAIRS:
        if test in methods and anchor in tables:
            cells = [tables[anchor][m][test] for m in ("psnr", "ssim")]
            print(f"| {test} vs {anchor} | " + " | ".join(_text(c) for c in cells) + " |")
    print((out / "curves.csv").read_text(), end="")
    return 0


def _text(cell: dict) -> str:
    from disco_train.benchmark.tables import cell_text

    return cell_text(cell)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
