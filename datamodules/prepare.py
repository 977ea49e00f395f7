"""Videos -> WebDataset shards of DiSCo modalities (paper §3.1 sender side, §4.1 data).

    python -m disco_train prepare input=<dir | glob | csv/jsonl> output=<shard dir> [key=value ...]
    python -m disco_train prepare ... workers=8                 # the per-video work in 8 processes
    python -m disco_train prepare ... part=K/N                  # 1/N of the inputs; N such runs into one output
    python -m disco_train prepare ... merge=true                # check the N parts, write the combined index

Re-running resumes: videos in the part's index (done) or failures (skipped, with the reason) are not processed
again; `datamodules.sink` says why a kill at any point leaves no partial shard, no duplicate and no lost video,
`datamodules.parts` how parts, locks and the merge work, `datamodules.workers` how workers share the work, and
`datamodules.pipeline` what one video becomes. Neural stages load before the first video, so missing weights
fail at once and lose nothing. Refusals (the output is locked, no video found, every video failed, a merge that
is incomplete) exit with code 2 and a message saying what to do.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from datamodules.inputs import (VIDEO_SUFFIXES, Video, check_unique, curate, list_videos, part_of,
                                with_captions)
from datamodules.jsonl import append_jsonl
from datamodules.parts import (PrepareError, check_same_settings, finish_part, hold_part, merge, resolve_device,
                               resolve_part, start_part)
from datamodules.pipeline import Pipeline
from datamodules.sink import Part, ShardSink, reconcile, seen_elsewhere
from datamodules.workers import Failure, WorkerPool
from disco_train.config import PrepareConfig
from disco_train.config.cli import Command, moved
from disco_train.modalities import captions as caption_table

MAX_UNEXPECTED_IN_A_ROW = 5  # unexpected errors on this many consecutive videos look systematic: stop


def _record_failure(path: Path, video: Video, failure: Failure, log) -> None:
    """One log line and one failures row. Errors that are not about the input (a stage crashing, out of memory)
    are marked retry: a later run tries those videos again instead of skipping them for good."""
    log(f"skipped {video.path}: {failure.reason}" + ("" if failure.expected else " (will be retried by the next run)"))
    append_jsonl(path, [{"video": str(video.path), "reason": failure.reason, "time": time.time(),
                         **({} if failure.expected else {"retry": True})}])


def _inline(pipeline: Pipeline, videos: list[Video]):
    for video in videos:
        try:
            yield video, pipeline.samples(video), None
        except Exception as err:  # a bad video must not stop the run; a systematic error must (see _write)
            yield video, None, Failure.of(err, video)


@contextmanager
def _processing(cfg: PrepareConfig, workers: int):
    """(results(videos) -> iterator of (video, samples | None, failure | None), the main-process finisher | None),
    with every stage loaded. Stages on a GPU stay in this process: precompute finishes the workers' samples here."""
    if workers <= 1:
        pipeline = Pipeline(cfg)
        pipeline.preflight()
        yield (lambda videos: _inline(pipeline, videos)), None
        return
    role = "worker" if cfg.precompute and cfg.device != "cpu" else "all"
    finisher = Pipeline(cfg, "finish") if role == "worker" else None
    if finisher is not None:
        finisher.preflight()
    with WorkerPool(cfg, workers, role) as pool:
        pool.preflight()
        yield pool.results, finisher


def _write(results, finisher, sink: ShardSink, failures: Path, counts: dict, log, bar) -> None:
    unexpected_in_a_row = 0
    for video, samples, failure in results:
        if samples is not None and finisher is not None:
            try:
                samples = finisher.finish_pending(samples)
            except Exception as err:  # as if it had failed in the worker
                samples, failure = None, Failure.of(err, video)
        bar.update(1)
        if failure is not None:
            _record_failure(failures, video, failure, log)
            counts["failed"] += 1
            counts.setdefault("first_failure", f"{video.path}: {failure.reason}")
            unexpected_in_a_row = 0 if failure.expected else unexpected_in_a_row + 1
            if unexpected_in_a_row >= MAX_UNEXPECTED_IN_A_ROW:
                sink.flush()
                raise RuntimeError(f"{unexpected_in_a_row} videos in a row failed with errors that are not about "
                                   f"their input (last: {failure.reason}); stopping. Finished shards are kept; fix "
                                   f"the cause and re-run to resume")
            continue
        unexpected_in_a_row = 0
        sink.add(str(video.path), samples)
        counts["done"] += 1
        counts["samples"] += len(samples)
        bar.set_postfix(clips=counts["samples"], failed=counts["failed"], refresh=False)
    sink.flush()


def available_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _run_part(cfg: PrepareConfig, output: Path, part: Part, mine: list[Video], log) -> dict:
    """Prepare this part's videos that are not done yet (the part's lock is held)."""
    check_same_settings(output, cfg, part.count)  # before anything loads
    seen = reconcile(output, part) | seen_elsewhere(output, part)
    todo = [v for v in mine if str(v.path) not in seen]
    counts = {"done": 0, "failed": 0, "skipped": len(mine) - len(todo), "samples": 0}
    workers, seconds = min(cfg.workers or available_cpus(), len(todo)), 0.0
    if todo:
        with _processing(cfg, workers) as (results, finisher):
            start_part(output, cfg, part)
            start = time.perf_counter()  # the processing alone: stages loaded and workers started before it
            # unit "video": tqdm shows videos/s and the ETA; the postfix adds clips and failures so far.
            with tqdm(total=len(todo), desc=f"prepare {part.label}" if part.count > 1 else "prepare", unit="video",
                      dynamic_ncols=True, mininterval=1.0) as bar:
                _write(results(todo), finisher, ShardSink(output, cfg.shard_size, part),
                       output / part.failures_file, counts, log, bar)
            seconds = time.perf_counter() - start
    else:
        start_part(output, cfg, part)
    counts.update(frames=counts["samples"] * cfg.frames, seconds=round(seconds, 3), workers=max(workers, 1),
                  frames_per_s=round(counts["samples"] * cfg.frames / seconds, 2) if seconds > 0 else 0.0)
    return counts


def run(cfg: PrepareConfig, log=print) -> dict:
    """Prepare this process's part of the inputs (or merge the parts); returns counts {done, failed, skipped,
    samples, frames, seconds, frames_per_s, ...}. Raises ConfigError or PrepareError (exit code 2)."""
    cfg.validate()
    part, part_source = resolve_part(cfg.part)
    output = Path(cfg.output)
    listing = list_videos(cfg.input)
    if not listing.videos:
        ignored = f"; {listing.ignored_note()}" if listing.ignored else ""
        raise PrepareError(f"input={cfg.input}: no video found (looked for {', '.join(sorted(VIDEO_SUFFIXES))})"
                           f"{ignored}")
    check_unique(listing.videos)
    # Curation first: the merge checks that every input it was for is prepared or failed.
    inputs, curated = curate(listing.videos, cfg.captions, cfg.caption_key, cfg.quality_column, cfg.min_quality)
    if curated:
        log(f"prepare: min_quality={cfg.min_quality}: {curated['below_min_quality']} of {len(listing.videos)} "
            f"videos below it and {curated['no_quality_score']} without a {cfg.quality_column!r} score in "
            f"{cfg.captions} skipped (not failures); {len(inputs)} kept")
    if cfg.merge:
        return merge(output, inputs, log)
    if listing.ignored:
        log(f"prepare: {listing.ignored_note()}")
    cfg = replace(cfg, device=resolve_device(cfg.device))
    table = caption_table.load(cfg.captions, cfg.caption_key, cfg.caption_column) if cfg.captions else \
        caption_table.CaptionTable({})
    kept = {v.path for v in inputs}
    # ambiguity is judged on all inputs, so every part agrees
    videos = [v for v in with_captions(listing.videos, table) if v.path in kept]
    mine = [v for v in videos if part.count == 1 or part_of(v.name, part.count) == part.index]
    output.mkdir(parents=True, exist_ok=True)
    with hold_part(output, part):
        counts = {**_run_part(cfg, output, part, mine, log), **curated}
        summary = {"part": part.label, "from": part_source, "videos": len(mine), "ignored": dict(listing.ignored),
                   "device": cfg.device, **{k: v for k, v in counts.items() if k != "first_failure"},
                   "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
        finish_part(output, part, summary)
    log(f"prepare{f' part {part.label} ({part_source})' if part.count > 1 else ''}: {len(mine)} videos -> "
        f"{counts['done']} done ({counts['samples']} clips), {counts['failed']} failed, {counts['skipped']} already "
        f"done; {counts['frames']} frames in {counts['seconds']:.1f} s = {counts['frames_per_s']:.1f} frames/s "
        f"with {counts['workers']} worker(s); shards {part.shard(0).replace('000000', '*')} in {output}")
    if part.count > 1:
        merge(output, inputs, log, auto=True)
    first_failure = counts.pop("first_failure", "")
    if counts["failed"] and not counts["done"]:
        raise PrepareError(f"every video this run tried failed ({counts['failed']}; first: {first_failure}); "
                           f"see {output / part.failures_file}")
    return counts


COMMAND = Command("python -m disco_train prepare", "Videos -> WebDataset shards of DiSCo modalities (caption, "
                  "degraded video, and sketch / pose / latents when asked).", PrepareConfig, task="prepare")


def main(argv: list[str] | None = None) -> int:
    # ConfigError also covers a stage's missing module or weights and an output folder with other settings;
    # PrepareError a locked output, no video, every video failed, an incomplete merge.
    return COMMAND.main(list(sys.argv[1:] if argv is None else argv), lambda cfg: run(cfg) and 0,
                        errors=(PrepareError,))


if __name__ == "__main__":
    moved("datamodules.prepare", COMMAND.prog)
    sys.exit(main())
