"""Data throughput benchmark (not a timed test): preprocessing and DataModule, raw vs precomputed shards.

    python bench/bench_data.py            # 512×512×57 clips from 640×480 sources, x265 CRF 35, D_s = D_t = 4
    python bench/bench_data.py --tiny     # CI-sized: 64×64×9 clips, x265 at D_s = 1 (x265 needs >= 64 px)

1. Preprocessing (`datamodules.prepare`, no neural stage): frames/s per core = clip frames written / CPU
   seconds of this process and its threads (getrusage), so multi-threaded encoders are not over-credited;
   wall-clock frames/s is printed beside it. Then the same sources with workers=1 and workers=2 side by side:
   workers=1 with torch's default threads (the first table's run), workers=1 with one torch thread, and
   workers=2 (one thread each): wall-clock frames/s of the processing (after the workers started: their start
   and stop is the set-up column, as is loading the stages), CPU seconds of this process and the workers, and
   the ratio to the first row. A 2-core host caps the ratio of workers=2 to one single-threaded process at 2×.
2. DataModule (`num_workers=0`: the loop runs in this process, i.e. one worker): samples/s per worker on
   the raw shards (decode mp4 + degraded bitstream, upsample, fill) and on shards with precomputed latents
   (read safetensors only). The latents come from the tiny random VAE/T5 (built in code, no weights): the
   reading cost does not depend on the weights, only on the latent shapes, which are those of LTX-Video's VAE
   geometry at 16 instead of 128 channels (so the real 128-channel files are ~8× larger to read).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from datamodules.demo import shape_video  # noqa: E402
from datamodules.prepare import run  # noqa: E402
from disco_train.config import DataConfig, ModelConfig  # noqa: E402
from disco_train.config import PrepareConfig  # noqa: E402
from disco_train.config.send import SendSettings  # noqa: E402
from disco_train.io.video import write_video  # noqa: E402

SETTINGS = {  # source size, clip frames × size, ds, dt
    "full": dict(source=(480, 640), source_frames=60, frames=57, size=512, ds=4, dt=4),
    "tiny": dict(source=(72, 96), source_frames=10, frames=9, size=64, ds=1, dt=4),
}


def cpu_seconds(children: bool = False) -> float:
    """CPU seconds of this process (and, with `children`, of its finished child processes: the workers)."""
    usage = [resource.getrusage(resource.RUSAGE_SELF)]
    if children:
        usage.append(resource.getrusage(resource.RUSAGE_CHILDREN))
    return sum(u.ru_utime + u.ru_stime for u in usage)


def make_sources(folder: Path, videos: int, s: dict) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(videos):
        video, _ = shape_video(rng, s["source_frames"], *s["source"])
        write_video(folder / f"src_{i:03d}.mp4", video, 25.0, crf=18)


def bench_prepare(work: Path, videos: int, s: dict, precompute: bool, workers: int = 1, name: str = "",
                  threads: int | None = None) -> dict:
    """One prepare run; `threads`: torch threads of this process for the run (workers always use one each)."""
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _bench_prepare(work, videos, s, precompute, workers, name) | {"threads": torch.get_num_threads()}
    finally:
        torch.set_num_threads(before)


def _bench_prepare(work: Path, videos: int, s: dict, precompute: bool, workers: int, name: str) -> dict:
    cfg = PrepareConfig(input=str(work / "src"), output=str(work / (name or ("pre" if precompute else "raw"))),
                        frames=s["frames"], height=s["size"], width=s["size"],
                        send=SendSettings(ds=s["ds"], dt=s["dt"], codec="x265", crf=35),
                        caption_default="a shape moving across a plain background",
                        shard_size=4, precompute=precompute, workers=workers,
                        model=ModelConfig(name="tiny", dtype="fp32", max_text_tokens=32))
    wall, cpu = time.perf_counter(), cpu_seconds(children=workers > 1)
    counts = run(cfg, log=print)
    wall, cpu = time.perf_counter() - wall, cpu_seconds(children=workers > 1) - cpu
    frames = counts["samples"] * s["frames"]
    return {"clips": counts["samples"], "frames": frames, "wall": wall, "cpu": cpu, "out": Path(cfg.output),
            "workers": counts["workers"], "seconds": counts["seconds"]}


def bench_loader(shards: Path, s: dict, latents: str, repeats: int) -> dict:
    from datamodules.shards import ShardDataModule

    cfg = DataConfig(train_shards=f"{shards}/train-*.tar", frames=s["frames"], height=s["size"], width=s["size"],
                     batch_size=1, num_workers=0, shuffle_buffer=1, latents=latents)
    module = ShardDataModule(cfg)
    loader = module.train_dataloader()
    next(iter(loader))  # warm-up: imports, first decoder set-up
    samples, start = 0, time.perf_counter()
    for _ in range(repeats):
        samples += sum(len(batch["key"]) for batch in loader)
    return {"samples": samples, "wall": time.perf_counter() - start, "latents": module.use_latents}


def report_workers(rows: list[dict]) -> None:
    print("\npreprocessing, workers side by side (same sources; frames/s of the processing, after the workers "
          "started)")
    print(f"  {'workers':>7} {'threads':>7} {'clips':>6} {'frames':>7} {'set-up s':>8} {'work s':>8} {'cpu s':>8} "
          f"{'frames/s':>9} {'ratio':>7}")
    base = rows[0]["frames"] / max(rows[0]["seconds"], 1e-9)
    for r in rows:
        rate = r["frames"] / max(r["seconds"], 1e-9)
        threads = f"{r['threads']}" if r["workers"] == 1 else "1 each"
        print(f"  {r['workers']:>7} {threads:>7} {r['clips']:>6} {r['frames']:>7} {r['wall'] - r['seconds']:>8.2f} "
              f"{r['seconds']:>8.2f} {r['cpu']:>8.2f} {rate:>9.1f} {rate / base:>6.2f}×")


def report(prep: dict, raw: dict, pre: dict, s: dict) -> None:
    print(f"\npreprocessing (no neural stage): {s['source'][1]}×{s['source'][0]} sources -> "
          f"{s['frames']}×{s['size']}×{s['size']} clips, x265 CRF 35, ds={s['ds']} dt={s['dt']}")
    print(f"  {'clips':>6} {'frames':>7} {'wall s':>8} {'cpu s':>8} {'frames/s (wall)':>16} {'frames/s/core':>14}")
    print(f"  {prep['clips']:>6} {prep['frames']:>7} {prep['wall']:>8.2f} {prep['cpu']:>8.2f} "
          f"{prep['frames'] / prep['wall']:>16.1f} {prep['frames'] / max(prep['cpu'], 1e-9):>14.1f}")
    print("\nDataModule (num_workers=0: one worker), batch 1")
    print(f"  {'shards':<22} {'samples':>8} {'s':>8} {'samples/s/worker':>17} {'ratio':>7}")
    base = raw["samples"] / raw["wall"]
    for name, r in (("raw (decode pixels)", raw), ("precomputed latents", pre)):
        rate = r["samples"] / r["wall"]
        print(f"  {name:<22} {r['samples']:>8} {r['wall']:>8.3f} {rate:>17.1f} {rate / base:>6.1f}×")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="CI-sized inputs (seconds)")
    parser.add_argument("--videos", type=int, default=None, help="source videos (default 4, tiny 4)")
    parser.add_argument("--repeats", type=int, default=None, help="passes over the shards (default 2, tiny 3)")
    parser.add_argument("--workdir", default="", help="keep the videos and shards here (default: a temp dir)")
    args = parser.parse_args(argv)
    s = SETTINGS["tiny" if args.tiny else "full"]
    videos, repeats = args.videos or 4, args.repeats or (3 if args.tiny else 2)
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench_data_"))
    try:
        make_sources(work / "src", videos, s)
        prep = bench_prepare(work, videos, s, precompute=False)
        one = bench_prepare(work, videos, s, precompute=False, name="raw_1thread", threads=1)
        two = bench_prepare(work, videos, s, precompute=False, workers=2, name="raw_workers2")
        pre_shards = bench_prepare(work, videos, s, precompute=True)["out"]
        raw = bench_loader(prep["out"], s, "never", repeats)
        pre = bench_loader(pre_shards, s, "always", repeats)
        report(prep, raw, pre, s)
        report_workers([prep, one, two])
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
