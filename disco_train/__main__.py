"""`python -m disco_train COMMAND [key=value ...]`: the project's commands other than training."""

from __future__ import annotations

import sys


def _sweep(argv):
    from disco_train.sweep import main

    return main(argv)


def _evaluate(argv):
    from disco_train.metrics.evaluate import main

    return main(argv)


def _bdrate(argv):
    from disco_train.metrics.evaluate import bdrate_main

    return bdrate_main(argv)


def _plot(argv):
    from disco_train.metrics.evaluate import plot_main

    return plot_main(argv)


def _export(argv):
    from disco_train.export import main

    return main(argv)


def _encode(argv):
    from disco_train.codec_cli import encode_main

    return encode_main(argv)


def _decode(argv):
    from disco_train.codec_cli import decode_main

    return decode_main(argv)


COMMANDS = {
    "export": (_export, "ckpt=<.ckpt> out=<dir>: LoRA (diffusers + ComfyUI safetensors) + disco.json"),
    "encode": (_encode, "VIDEO OUT.disco [ds= dt= codec=x265|x264|dcvc_rt qp= caption= sketch= pose=]"),
    "decode": (_decode, "IN.disco OUT.mp4 export=<dir> [steps=50 guidance=3 seed=0 device=]"),
    "sweep": (_sweep, "one short training per value of sweep.KEY=v1,v2,... and a table of final metrics"),
    "evaluate": (_evaluate, "refs=DIR recons=DIR [metrics=psnr,ssim,lpips,dists,fid,fvd] out=CSV"),
    "bdrate": (_bdrate, "ANCHOR.csv TEST.csv [metric=lpips]: BD-rate (bjontegaard, Akima)"),
    "plot": (_plot, "A.csv B.csv ... metric=lpips out=rd.png: rate-distortion curves"),
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print("usage: python -m disco_train COMMAND [args]\n" +
              "\n".join(f"  {name:9s} {help_}" for name, (_, help_) in COMMANDS.items()), file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return COMMANDS[argv[0]][0](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
