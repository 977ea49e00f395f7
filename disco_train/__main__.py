"""`python -m disco_train COMMAND [PATH ...] [key=value ...]`: the project's commands other than training.

Every command speaks the grammar of `disco_train.config.cli`: `--help` lists its keys with defaults and docs.
"""

from __future__ import annotations

import importlib
import sys

# command -> (module, function, help). Modules are imported only when their command runs.
COMMANDS = {
    "export": ("disco_train.train.export", "main",
               "ckpt=<.ckpt> out=<dir>: LoRA (diffusers + ComfyUI safetensors) + disco.json"),
    "encode": ("disco_train.codec.cli", "encode_main",
               "VIDEO OUT.disco [caption= export= ds= dt= codec=x265|x264|vvenc|dcvc_rt qp= | target_kbps= size= "
               "sketch= pose=]"),
    "decode": ("disco_train.codec.cli", "decode_main",
               "IN.disco OUT.mkv|DIR|.mp4 export=<dir> [steps=50 guidance=3 seed=0 device= crf=]"),
    "calibrate": ("disco_train.benchmark.calibrate", "main",
                  "export=<dir> refs=DIR [metric=lpips out= force=]: rd_table.json of the trained points, for "
                  "encode target_kbps="),
    "weights": ("disco_train.train.weights", "main",
                "recipe=NAME: every weight file the recipe needs, where it goes, whether it is present"),
    "sweep": ("disco_train.train.sweep", "main",
              "one short training per value of sweep.KEY=v1,v2,... and a table of final metrics"),
    "evaluate": ("disco_train.metrics.evaluate", "main",
                 "refs=DIR recons=DIR out=CSV [metrics=psnr,ssim bitstreams=DIR]: a csv row per video + overall"),
    "bdrate": ("disco_train.metrics.evaluate", "bdrate_main",
               "ANCHOR.csv TEST.csv [metric=lpips]: BD-rate (bjontegaard, Akima)"),
    "plot": ("disco_train.metrics.evaluate", "plot_main",
             "A.csv B.csv ... metric=lpips out=rd.png: rate-distortion curves"),
    "benchmark": ("disco_train.benchmark.cli", "main",
                  "recipe=benchmark_hevc_b refs=DIR export=DIR [methods= anchor=vvenc out=]: RD curves, BD-rates"),
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print("usage: python -m disco_train COMMAND [args]   (COMMAND --help lists its keys)\n" +
              "\n".join(f"  {name:9s} {help_}" for name, (_, _, help_) in COMMANDS.items()), file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    module, function, _ = COMMANDS[argv[0]]
    return getattr(importlib.import_module(module), function)(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
