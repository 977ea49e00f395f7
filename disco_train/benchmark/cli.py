"""`python -m disco_train benchmark recipe=NAME [key=value ...]`: the benchmark command.

    python -m disco_train benchmark recipe=benchmark_hevc_b refs=data/hevc_b export=exports/disco
    python -m disco_train benchmark recipe=benchmark_debug refs=data/demo/videos export=exports/debug
    torchrun --nproc-per-node=8 -m disco_train benchmark recipe=benchmark_hevc_b ... device=cuda   # 8 parts

Keys are `BenchmarkConfig`'s (`--help` lists them); recipes `benchmark_*` hold the paper's protocols.
"""

from __future__ import annotations

import sys

from omegaconf import OmegaConf

from disco_train.config.benchmark import BenchmarkConfig
from disco_train.config.cli import Command, moved

BENCHMARK = Command("python -m disco_train benchmark", "Test videos -> reference clips -> RD points of x264, x265, "
                    "vvenc (H.266), DCVC-RT and DiSCo -> results.csv, curves.csv, bdrate.csv/.md, rd_<metric>.png, "
                    "report.md in out/ (cached per cell: a rerun continues).", BenchmarkConfig, task="benchmark")


def _errors() -> tuple[type, ...]:
    from disco_train.codec.backends import CodecUnavailable
    from disco_train.codec.vvenc import VvencUnavailable

    return ValueError, OSError, CodecUnavailable, VvencUnavailable  # BenchmarkError is a ValueError


def main(argv: list[str]) -> int:
    def run(cfg: BenchmarkConfig) -> None:
        from disco_train.benchmark.runner import run as run_benchmark

        summary = run_benchmark(cfg, OmegaConf.to_yaml(OmegaConf.structured(cfg)))
        done = f"benchmark: {summary['computed']} cells computed, {summary['cached']} from the cache"
        if not summary["files"]:  # a part whose others are still running: the last one writes the tables
            print(f"{done} (part {summary['part']}); the tables wait for the other parts")
            return
        print(f"{done}; wrote " + ", ".join(p.name for p in summary["files"]) + f" in {cfg.out}")
        print(next(p for p in summary["files"] if p.name == "bdrate.md").read_text(), end="")

    return BENCHMARK.main(argv, run, _errors())


if __name__ == "__main__":
    moved("disco_train.benchmark.cli", BENCHMARK.prog)
    sys.exit(main(sys.argv[1:]))
