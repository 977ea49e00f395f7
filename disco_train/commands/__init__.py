"""The commands: one dispatcher, `python -m disco_train COMMAND [PATH ...] [key=value ...]` (the console script
`disco COMMAND ...` is the same function), and the command lines that belong to no one package: `train` (the run
itself: `disco_train.train.run`), `export` (the library: `disco_train.train.export`), `sweep`, `weights`.

Every command speaks the grammar of `disco_train.config.cli`: `COMMAND --help` lists its keys with defaults and
docs. This layer may import every package; nothing imports it but the entry points (disco_train/__main__.py,
train.py, the `disco` script).
"""

from __future__ import annotations

import difflib
import importlib
import sys

PROG = "python -m disco_train"

# command -> ("module:function", one line of help), in the order of the journey (data, training, coding,
# evaluating, DCVC-RT alone). A module is imported only when its command runs.
COMMANDS = {
    "demo": ("datamodules.demo:main", "out=DIR: a small synthetic corpus (H.264 mp4 + captions.csv)"),
    "prepare": ("datamodules.prepare:main", "recipe=NAME | input= output=: videos -> WebDataset shards"),
    "sketch-clips": ("datamodules.sketch_clips:main", "out=DIR: synthetic sketch clips for codec debug runs"),
    "train": ("disco_train.commands.train:main", "recipe=NAME [key=value ...]: train a LoRA decoder or the sketch "
              "codec (= python train.py)"),
    "sweep": ("disco_train.commands.sweep:main", "recipe=NAME sweep.KEY=v1,v2,...: one short training per value, "
              "a table of final metrics"),
    "weights": ("disco_train.commands.weights:main", "recipe=NAME: every weight file the recipe needs, and whether "
                "it is present"),
    "export": ("disco_train.commands.export:main", "ckpt=<.ckpt> out=DIR: LoRA (diffusers + ComfyUI) + disco.json"),
    "encode": ("disco_train.codec.cli:encode_main", "VIDEO OUT.disco [caption= export= send.ds= send.dt= "
               "send.codec= send.qp= | target_kbps=]: one .disco file"),
    "decode": ("disco_train.codec.cli:decode_main", "IN.disco OUT.mkv|DIR|.mp4 export=DIR: the reconstructed video"),
    "calibrate": ("disco_train.benchmark.calibrate:main", "export=DIR refs=DIR: rd_table.json of the trained points "
                  "(for encode target_kbps=)"),
    "evaluate": ("disco_train.metrics.evaluate:main", "refs=DIR recons=DIR out=CSV: a csv row per video + overall"),
    "bdrate": ("disco_train.metrics.evaluate:bdrate_main", "ANCHOR.csv TEST.csv [metric=lpips]: BD-rate (%)"),
    "plot": ("disco_train.metrics.evaluate:plot_main", "A.csv B.csv ... metric= out=rd.png: rate-distortion curves"),
    "benchmark": ("disco_train.benchmark.cli:main", "recipe=NAME refs=DIR export=DIR: RD curves and BD-rates of "
                  "DiSCo and the standard codecs"),
    "dcvc-rt encode": ("disco_train.dcvc_rt.cli:encode_main", "VIDEO OUT.bin qp=N: a DCVC-RT bitstream"),
    "dcvc-rt decode": ("disco_train.dcvc_rt.cli:decode_main", "IN.bin OUT.mp4|.npy: the decoded video"),
    "dcvc-rt export": ("disco_train.dcvc_rt.export:main", "ckpt=<.ckpt> out=DIR: a sketch_dcvc run -> the official "
                       "checkpoint files"),
    "dcvc-rt conformance": ("disco_train.dcvc_rt.conformance:main", "FIXTURE.safetensors: compare every tensor with "
                            "a golden fixture"),
}


def main(argv: list[str] | None = None) -> int:
    """Run the command named by the first one or two words of argv (sys.argv[1:] by default)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    for words in (2, 1):
        name = " ".join(argv[:words])
        if len(argv) >= words and name in COMMANDS:
            module, function = COMMANDS[name][0].split(":")
            return getattr(importlib.import_module(module), function)(argv[words:])
    return usage(argv)


def usage(argv: list[str]) -> int:
    """The list of commands (of a group such as `dcvc-rt`, when named): on stdout with exit 0 when asked for with
    --help, else on stderr with exit 2 after one line saying what is wrong."""
    group = argv[0] if argv and any(name.startswith(argv[0] + " ") for name in COMMANDS) else ""
    rest = argv[1:] if group else argv
    lines = [f"usage: {PROG} {group + ' SUBCOMMAND' if group else 'COMMAND'} [PATH ...] [key=value ...]   "
             f"(or: disco ...; COMMAND --help lists its keys)"]
    lines += [f"  {name:20s} {help_}" for name, (_, help_) in COMMANDS.items() if name.startswith(group)]
    asked = rest[:1] in (["-h"], ["--help"])
    if not asked:
        lines.insert(0, f"{PROG}: error: {_wrong(group, rest)}")
    print("\n".join(lines), file=sys.stdout if asked else sys.stderr)
    return 0 if asked else 2


def _wrong(group: str, rest: list[str]) -> str:
    if not rest:
        return f"{group} needs a subcommand" if group else "no command given"
    word = f"{group} {rest[0]}".strip()
    names = [name for name in COMMANDS if name.startswith(group)]
    names += [] if group else sorted({name.split()[0] for name in names if " " in name})  # `dcvc-rt` itself
    close = difflib.get_close_matches(word, names, 1)
    return f"unknown command '{word}'" + (f"; did you mean '{close[0]}'?" if close else "")
