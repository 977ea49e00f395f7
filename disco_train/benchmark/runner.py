"""The benchmark run: plan every (video, method, point) cell, compute the ones the cache lacks, write the report.

Planning does everything that can fail cheaply first — the reference clips, the exports, the encoders and weights
each method needs, the captions — so a bad setting stops the run before the first cell. Cells are computed in
clip order for the baselines (each clip is read once) and grouped by export and point for DiSCo (one decoder
build per export, batched decoding). Every finished cell is scored at once on the decoded frames, in memory
(`MetricSuite.evaluate_frames`: no file and no second codec between a decoder and a metric), and committed to
the cache; a progress bar counts cells with an ETA.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from disco_train.benchmark import cache as K
from disco_train.benchmark import clips as R
from disco_train.benchmark import disco as D
from disco_train.benchmark import methods as M
from disco_train.benchmark import parts as P
from disco_train.benchmark import tables as T
from disco_train.benchmark.points import Coded, Point
from disco_train.codec.pipeline import resolve_device
from disco_train.config.benchmark import RATE_METHOD, RESTORE_METHOD, split_list
from disco_train.config.metrics import DISTRIBUTION_METRICS
from disco_train.metrics.suite import MetricSuite


@dataclass(frozen=True)
class Cell:
    clip: R.RefClip
    point: Point
    key: str


@dataclass
class Plan:
    clips: list
    points: dict
    cells: list
    variants: list
    grids: set


METRIC_WEIGHTS = {"lpips": ("alexnet", "lpips_alex"), "lpips_vgg": ("vgg16", "lpips_vgg"), "dists": ("vgg16", "dists"),
                  "fid": ("inception",), "fvd": ("i3d",), "flolpips": ("alexnet", "lpips_alex", "pwcnet"),
                  "fvmd": ("pips2",)}
"""The weight files (metrics.weights keys) each metric network loads."""


def metric_key(cfg, names: list[str]) -> dict:
    """The metrics' part of every cell key: names, sampling settings, and the weight files those metrics load."""
    from disco_train.metrics.weights import WEIGHT_FILES

    part = cfg.metrics.cache_key(names)
    files = sorted({k for n in names for k in METRIC_WEIGHTS.get(n, ())})
    if files:
        part["weights"] = M.files_fingerprint([Path(cfg.metrics.weights_dir) / WEIGHT_FILES[k].relpath
                                               for k in files])
    return part


def yuv_settings(cfg) -> dict:
    width, height = (int(v) for v in cfg.yuv_size.split("x")) if cfg.yuv_size else (0, 0)
    return {"width": width, "height": height, "fps": cfg.yuv_fps, "bit_depth": cfg.yuv_bit_depth}


def make_plan(cfg, names: list[str], device: str, log: Callable) -> Plan:
    from tqdm import tqdm

    width, height = cfg.clip_size
    sources = R.find_videos(cfg.refs, cfg.max_videos, exclude=cfg.out)
    clips = [R.reference_clip(s, Path(cfg.out) / "refs", width, height, cfg.frames, yuv_settings(cfg))
             for s in tqdm(sources, desc="reference clips", unit="video", leave=False)]
    points = M.ladder_points(cfg)
    settings = {m: M.settings_of(cfg, m) for m in points}  # finds vvenc, checks DCVC-RT weights
    variants, grids = [], set()
    if {"disco", RATE_METHOD, RESTORE_METHOD} & set(split_list(cfg.methods)):
        variants = D.load_variants(cfg, device)
        points.update(D.variant_points(cfg, variants))
        for v in variants:
            missing = v.captions.missing([c.file_name for c in clips])
            if missing:
                where = (f"{v.captions.option}: no caption for {missing}" if v.captions.strict else
                         f"disco.captions: no caption for {missing} ({v.method}); give disco.captions=FILE, "
                         f"disco.caption_default=TEXT or disco.captioner=DIR")
                raise ValueError(where)
            if len({p.settings["export"] + str((p.settings.get("ds"), p.settings.get("dt")))
                    for p in points[v.method]}) > 1:  # disco@rate's points have none: a curve, not a grid
                grids.add(v.method)
    captions = {v.method: v.captions for v in variants}
    metrics = metric_key(cfg, names)
    cells = []
    for method in (m for m in cfg.method_list if m in points):
        for point in points[method]:
            for clip in clips:
                parts = {"clip": clip.digest, "method": method, "point": point.params, "metrics": metrics}
                if method in captions:
                    parts.update(settings=D.settings_of(cfg, point), caption=captions[method].key(clip.file_name))
                else:
                    parts["settings"] = settings[method]
                cells.append(Cell(clip, point, K.cell_key(parts)))
    log(f"benchmark: {len(clips)} reference clips {cfg.size}×{cfg.frames}, methods "
        f"{', '.join(f'{m} ({len(points[m])} points)' for m in cfg.method_list)}")
    return Plan(clips, points, cells, variants, grids)


def _record(cell: Cell, coded: Coded, scores: dict, caption: str | None) -> dict:
    clip = cell.clip
    record = {"video": clip.name, "method": cell.point.method, "point": cell.point.label,
              "params": dict(cell.point.params), "frames": clip.frames, "height": clip.height, "width": clip.width,
              "fps": clip.fps, "bits": coded.bits, "encode_s": coded.encode_s, "decode_s": coded.decode_s,
              "scores": scores, "extra": coded.extra}
    if caption is not None:
        record["caption"] = caption
    if coded.log:
        record["log"] = coded.log
    return record


def compute(cfg, plan: Plan, todo: list[Cell], names: list[str], device: str, cache: K.Cache, bar) -> list[dict]:
    """Code, decode and score every cell of `todo`, committing each to the cache as it finishes; returns the
    baseline and external cells that failed (DiSCo's errors stop the run)."""
    suite = MetricSuite.of(cfg.metrics, device, names)
    frames_of = R.ClipFrames(keep=cfg.disco.batch_size + 1)
    order = {c.name: i for i, c in enumerate(plan.clips)}

    def store(cell: Cell, coded: Coded, caption: str | None = None) -> None:
        result = suite.evaluate_frames(frames_of(cell.clip), coded.recon, cell.clip.name)
        cache.put(cell.key, _record(cell, coded, result.scores, caption), suite.take_features())
        bar.set_postfix_str(f"{cell.clip.name} {cell.point.method} {cell.point.label}", refresh=False)
        bar.update(1)

    disco_methods, failures = {v.method for v in plan.variants}, []
    for cell in sorted((c for c in todo if c.point.method not in disco_methods), key=lambda c: order[c.clip.name]):
        try:
            coded = M.code_baseline(cfg, cell.point, frames_of(cell.clip), cell.clip.fps, device)
        except (ValueError, OSError) as err:  # the other cells go on; the part reports this one at its end
            failures.append({"key": cell.key, "video": cell.clip.name, "method": cell.point.method,
                             "point": cell.point.label, "error": str(err)})
            bar.update(1)
            continue
        store(cell, coded)
    disco = {(c.clip.name, c.point.method, c.point.label): c for c in todo if c.point.method in disco_methods}
    if disco:
        pairs = [(c.clip, c.point) for c in disco.values()]
        for clip, point, coded, caption in D.run_disco(cfg, plan.variants, pairs, frames_of, device):
            store(disco[(clip.name, point.method, point.label)], coded, caption)
    return failures


def tabulate(cfg, plan: Plan, names: list[str], cache: K.Cache) -> tuple[list, list, dict]:
    """(results rows, pooled curves, BD-rate table) from the cached cells."""
    per_video = [n for n in names if n not in DISTRIBUTION_METRICS]
    results, groups = [], {}
    for cell in plan.cells:
        record, features = cache.get(cell.key)
        row = T.result_row(record, per_video)
        results.append(row)
        groups.setdefault((cell.point.method, cell.point.label), (cell.point, [], []))
        groups[(cell.point.method, cell.point.label)][1].append(row)
        groups[(cell.point.method, cell.point.label)][2].append(features)
    curves = [T.curve_row(method, point, rows, feats, names, per_video, cfg.metrics)
              for (method, _), (point, rows, feats) in groups.items()]
    table = T.bdrate_table(curves, cfg.method_list, names, cfg.anchor, plan.grids, cfg.interpolation,
                           cfg.min_overlap)
    return results, curves, table


def run(cfg, resolved_yaml: str, log: Callable = print) -> dict:
    """The whole benchmark, or part K/N of its cells (`benchmark.parts`); returns {'cells', 'cached',
    'computed', 'files', 'table', 'curves', 'points', 'part'} ('files' empty while other parts still run)."""
    from tqdm import tqdm

    names = cfg.metrics.name_list
    device = resolve_device(cfg.device)
    out = claim_output(cfg)
    skipped = skip_unavailable(cfg, log)
    cache = K.Cache(out / "cache")
    share = P.merged_share(out, cfg.part) if cfg.merge else P.share_of(cfg.part)
    if cfg.merge:
        plan = make_plan(cfg, names, device, log)
        return report(cfg, resolved_yaml, plan, names, cache, share, {"cached": len(plan.cells), "computed": 0},
                      log, skipped, auto=False)
    with P.hold(out, share) if share.count > 1 else nullcontext():
        plan = make_plan(cfg, names, device, log)
        owner = P.owners(plan.cells, {v.method for v in plan.variants}, cfg.disco.batch_size, share.count)
        mine = [c for c in plan.cells if owner[c.key] == share.index]
        if share.count > 1:
            P.start(out, share)
        todo = [c for c in mine if cache.get(c.key) is None]
        of = f" of part {share.label} ({share.source})" if share.count > 1 else ""
        log(f"benchmark: {len(mine)} cells{of}, {len(mine) - len(todo)} cached, {len(todo)} to compute")
        failures = []
        if todo:
            with tqdm(total=len(mine), initial=len(mine) - len(todo), unit="cell", desc="benchmark",
                      dynamic_ncols=True) as bar:
                failures = compute(cfg, plan, todo, names, device, cache, bar)
        counts = {"cached": len(mine) - len(todo), "computed": len(todo) - len(failures)}
        if share.count > 1:
            P.finish(out, share, plan.cells, counts, failures)
    if failures:
        where = f" in part {share.label}" if share.count > 1 else ""
        raise P.BenchmarkError(f"{len(failures)} cell(s) failed{where}: " + "; ".join(
            f"{f['video']} {f['method']} {f['point']}: {f['error']}" for f in failures[:3])
            + f"{'; ...' if len(failures) > 3 else ''} (finished cells are kept: fix it and run the same command)")
    return report(cfg, resolved_yaml, plan, names, cache, share, counts, log, skipped, auto=True, owner=owner)


def report(cfg, resolved_yaml: str, plan: Plan, names: list[str], cache: K.Cache, share, counts: dict, log,
           skipped: list[str], auto: bool, owner: dict | None = None) -> dict:
    """Check that every cell is cached (all parts done) and write the tables; without every part yet and `auto`,
    writes nothing."""
    from disco_train.benchmark.report import write_report

    out = Path(cfg.out)
    summary = {"cells": len(plan.cells), **counts, "files": [], "table": None, "curves": None,
               "points": plan.points, "part": share.label}
    with P.merge_lock(out) if share.count > 1 else nullcontext():
        if share.count > 1 or not auto:  # a one-process run has just computed every cell
            owner = owner or P.owners(plan.cells, {v.method for v in plan.variants}, cfg.disco.batch_size,
                                      share.count)
            if not P.check_complete(out, share, plan.cells, owner, lambda c: cache.get(c.key) is not None, auto,
                                    log):
                return summary
        results, curves, table = tabulate(cfg, plan, names, cache)
        files = write_report(out, cfg, resolved_yaml, plan.clips, results, curves, table, names, plan.grids,
                             skipped + notes(cfg, plan))
    return {**summary, "files": files, "table": table, "curves": curves}


def claim_output(cfg) -> Path:
    """The output folder, refused when it is or holds the reference videos, or holds files of something else (a
    folder with a benchmark's cache/ is one of its own, from before the marker)."""
    from disco_train.config.outputs import check_folder_output, claim_folder

    refs = Path(cfg.refs)
    while any(ch in str(refs) for ch in "*?[") and refs != refs.parent:  # a glob: its fixed folder
        refs = refs.parent
    out = Path(cfg.out)
    check_folder_output(out, [("refs", refs)], (out / "cache").is_dir(), "benchmark")
    return claim_folder(out, "benchmark")


def skip_unavailable(cfg, log: Callable) -> list[str]:
    """With `skip_unavailable` (the smoke recipes), drop vvenc from `cfg.methods` when its encoder is missing,
    saying so and how to build it; a vvenc anchor becomes x265 (else the first method). Returns the report notes."""
    from disco_train.codec import vvenc

    if not cfg.skip_unavailable or "vvenc" not in split_list(cfg.methods):
        return []
    try:
        vvenc.find_app(cfg.vvenc.app, "vvenc.app")
        return []
    except vvenc.VvencUnavailable as err:
        cfg.methods = ",".join(m for m in split_list(cfg.methods) if m != "vvenc")
        note = f"vvenc skipped (skip_unavailable=true): {err}"
        if cfg.anchor == "vvenc":
            cfg.anchor = "x265" if "x265" in cfg.method_list else cfg.method_list[0]
            note += f". BD-rates are against {cfg.anchor} instead"
    log(f"benchmark: {note}")
    return [note]


def notes(cfg, plan: Plan) -> list[str]:
    out = []
    if plan.grids:
        out.append(f"The curve of {', '.join(sorted(plan.grids))} for each metric is the Pareto front of its grid "
                   f"(the dots in the plots).")
    if "dcvc_rt" in cfg.method_list and cfg.dcvc_rt.weights == "synthetic":
        out.append("DCVC-RT ran with the synthetic test weights: real streams, meaningless reconstructions.")
    from disco_train.decoder.export import describe_settings

    for v in plan.variants:
        text = f"text {v.captions.fixed!r}" if v.captions.fixed else "captions"
        extra = f", overrides {' '.join(v.overrides)}" if v.overrides else ""
        for e in v.exports:
            out.append(f"{v.method}: export {e.name} trained on {describe_settings(list(e.trained))}; {text}; "
                       f"{e.steps or 'fixed'} steps, guidance {e.guidance}"
                       f"{''.join(f', {k} {v}' for k, v in e.speed)}{extra}; manifest sha256 {e.digest[:12]}")
    return out
