"""The `disco` method: one or more exported decoders over a grid of D_s × D_t × the degraded video's codec QP.

Sender and receiver are the project's own: `codec.sender.send_video` makes the `.disco` container (caption +
degraded video), `codec.pipeline.decode_containers` restores it through `codec.receiver.receive` and samples with a
`DiscoDecoder`. Each export's decoder (transformer, VAE and T5) is built once for the whole run, and the clips of
one grid point are decoded `disco.batch_size` at a time, each with its own noise seed (`disco.seed`), so a clip's
result does not depend on which clips share its batch.

The rate of a point is the whole `.disco` file: every stream plus the container's header and table (36 + 12 per
stream bytes), which a receiver needs; the header is also reported apart (`overhead_bits`), as are the text and
video streams. Grid, per export: with `disco.trained_only` (default) exactly the rate points the export trained
on (disco.json `trained_settings`), narrowed by `disco.send.ds` / `.dt` / `.qp` / `.codec` where they are
set; a requested combination that no export trained on, or an export with no trained point in the request, is
refused, naming the trained sets (several exports, say one per D_s × D_t, share one grid this way). With
`disco.trained_only=false` every combination of `disco.send.ds` × `.dt` × `.qp` (each null: the values
the export trained on) runs, trained or not.

Ablations (paper Tables 4 and 5) are `disco.variants`: each its own method disco:<name> with its own exports,
text (a fixed "NA", or its own captions file) and decoder overrides, so the tables put the variants side by side
and `anchor=disco:<name>` gives their BD-rates against one of them.

The `disco@rate` method is DiSCo coded with rate control at each of `rate.targets_kbps` (or `rate.targets_bpp`),
so its RD curve is by target rate, as the standard codecs' is by QP. Per clip and target, `codec.rate` picks the
best trained point of the export (ordered by its rd_table.json when it has one) whose whole `.disco` file fits the
target at the clip's size and duration; the cell records the point chosen (`chosen`) and the candidates encoded
(`candidates_tried`) beside the bits. Decoding is the disco method's (the same decoder build, batches, seeds and
steps). A target no trained point meets for some clip stops the run, naming the clip and the smallest achievable
rate (the cells done stay cached).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from disco_train.benchmark.captions import Captions
from disco_train.benchmark.points import Coded, Point
from disco_train.codec import container as C
from disco_train.codec.sender import send_video
from disco_train.config import ConfigError
from disco_train.config.benchmark import RATE_METHOD, RESTORE_METHOD, split_list
from disco_train.config.send import SendSettings, as_list


SPEED_KEYS = ("schedule", "cache", "dtype")
"""Decode settings beyond steps and guidance; in a point's params only when not the default (so the cache keys
of benchmarks run before them stay valid)."""


@dataclass(frozen=True)
class Export:
    folder: str
    name: str
    digest: str
    """sha256 of its disco.json (which holds the sha256 of every file it lists)."""
    trained: tuple
    """The rate points {ds, dt, codec[, qp, crf]} it trained on."""
    steps: int | None
    guidance: float
    negative_prompt: str
    aux: str
    speed: tuple = ()
    """Decode settings beyond steps and guidance, as (key, value) pairs that differ from the default (schedule,
    cache, dtype): part of the points' cache keys and of which decoder build serves them."""


def load_exports(cfg, folders: str = "", overrides: list[str] | None = None, variant=None) -> list[Export]:
    """Read and check every export of `folders` (default: `export=`) with decoder `overrides` (default:
    disco.overrides) and the decode settings of `variant` (a DiscoVariant; default disco.*), before any video
    is coded."""
    from disco_train.decoder.export import MANIFEST, decoder_config, read_manifest, trained_settings

    exports, names = [], set()
    overrides = list(cfg.disco.overrides if overrides is None else overrides)
    for folder in split_list(folders or cfg.export):
        manifest = read_manifest(folder)
        decoder = decoder_config(folder, overrides, manifest)
        name = Path(folder).resolve().name
        if name in names:
            raise ConfigError(f"export: two exports named {name!r}; their points would share labels")
        names.add(name)
        if decoder.condition.aux != "none":
            raise ConfigError(f"export={folder}: conditioned on {decoder.condition.aux}; the benchmark sends text + "
                              f"video only (the paper's general version)")
        steps, guidance, speed = decode_settings(cfg, decoder, variant)
        exports.append(Export(str(folder), name, hashlib.sha256((Path(folder) / MANIFEST).read_bytes()).hexdigest(),
                              tuple(trained_settings(manifest)), steps, guidance,
                              decoder.validation.negative_prompt, decoder.condition.aux, speed))
    return exports


def decode_settings(cfg, decoder, variant=None) -> tuple[int | None, float, tuple]:
    """(steps, guidance, speed) of decoder config `decoder`: disco.*'s decode settings, those `variant` sets (a
    DiscoVariant, or restore.*) instead, else the decoder's own validation settings."""
    from disco_train.decoder import fast

    d = {k: getattr(cfg.disco, k) for k in ("steps", "guidance", "schedule", "cache", "dtype")}
    own = {k: getattr(variant, k, None) for k in d if getattr(variant, k, None) not in (None, "")}
    if "schedule" in own and "steps" not in own:  # a variant's schedule brings its own step count
        own["steps"] = None
    d.update(own)
    schedule, steps = decoder.validation.sampling(d["schedule"], d["steps"])
    fast.check(d["cache"], d["dtype"])
    speed = tuple((k, v) for k, v in zip(SPEED_KEYS, (schedule, d["cache"], d["dtype"]))
                  if v not in ("shifted", "none", ""))
    return steps, decoder.validation.guidance if d["guidance"] is None else d["guidance"], speed


def restore_export(cfg) -> Export:
    """The restore method's decoder (`benchmark.restore`): an export folder read as disco's are, or an IC-LoRA file
    on recipe `restore.base`."""
    from disco_train.benchmark import restore

    r = cfg.restore
    if Path(r.lora).is_dir():
        return load_exports(cfg, r.lora, list(r.overrides), variant=r)[0]
    decoder, digest = restore.lora_file_decoder(cfg)
    steps, guidance, speed = decode_settings(cfg, decoder, r)
    return Export(r.lora, Path(r.lora).stem, digest, (), steps, guidance, decoder.validation.negative_prompt, "none",
                  speed)


@dataclass
class Variant:
    """One DiSCo method of the tables: `disco` (every export of `export=`), or an ablation's disco:<name>."""

    method: str
    exports: list
    captions: Captions
    overrides: tuple
    """Decoder-config overrides: disco.overrides, then the variant's."""


def load_variants(cfg, device: str) -> list[Variant]:
    """The DiSCo methods of `cfg` (disco or its variants, disco@rate) with their exports and captions, checked
    before any video is coded."""
    d, shared, methods = cfg.disco, {}, split_list(cfg.methods)
    out = []
    if RESTORE_METHOD in methods:  # its text: the captions, or one fixed text (`restore.text`)
        fixed = "" if cfg.restore.text == "caption" else cfg.restore.text
        out.append(Variant(RESTORE_METHOD, [restore_export(cfg)], Captions(d, device, fixed, shared=shared),
                           tuple(cfg.restore.overrides)))
    if RATE_METHOD in methods:
        out.append(Variant(RATE_METHOD, load_exports(cfg), Captions(d, device, shared=shared), tuple(d.overrides)))
    if "disco" not in methods:
        return out
    if not d.variants:
        return [Variant("disco", load_exports(cfg), Captions(d, device, shared=shared), tuple(d.overrides)), *out]
    for i, v in enumerate(d.variants):
        overrides = (*d.overrides, *v.overrides)
        captions = Captions(d, device, v.text, v.captions, f"disco.variants[{i}].captions", shared)
        out.append(Variant(f"disco:{v.name}", load_exports(cfg, v.export, list(overrides), v), captions, overrides))
    return out


def _listed(value) -> list[int]:
    """A disco.send rate key as a list ([]: null, each export's trained values)."""
    return [] if value is None else as_list(value)


def grid_of(d, e: Export) -> tuple[list[dict], list[dict]]:
    """(the rate points {ds, dt, codec, qp[, crf]} export `e` runs at, the requested combinations it did not
    train on) (module docstring)."""
    from disco_train.codec.trained import matches

    (dss, dts, qps), codec = (_listed(getattr(d.send, k)) for k in ("ds", "dt", "qp")), d.send.codec
    if not d.trained_only:
        values = lambda key: sorted({p[key] for p in e.trained if key in p})  # noqa: E731
        first = e.trained[0]
        return [{"ds": ds, "dt": dt, "codec": codec or first["codec"], "qp": qp, "crf": first.get("crf")}
                for ds in (dss or values("ds")) for dt in (dts or values("dt"))
                for qp in (qps or values("qp"))], []
    grid, outside = [], []
    for ds, dt, qp in product(dss or [None], dts or [None], qps or [None]):
        given = {k: v for k, v in (("ds", ds), ("dt", dt), ("codec", codec), ("qp", qp)) if v is not None}
        found = [p for p in e.trained if matches(p, given)]
        outside += [given] if not found else []
        grid += [p for p in found if p not in grid]
    return grid, outside


def _grids(d, exports: list[Export]) -> list[list[dict]]:
    """Each export's grid; refuses a request that an export, or every export, did not train on."""
    from disco_train.decoder.export import describe_settings

    grids, unmatched = [], None
    for e in exports:
        grid, outside = grid_of(d, e)
        if not grid:
            raise ConfigError(f"disco: export {e.name} was trained on {describe_settings(list(e.trained))}, none of "
                              f"it in disco.send.ds={d.send.ds} dt={d.send.dt} qp={d.send.qp} codec={d.send.codec!r} "
                              f"(disco.trained_only=false "
                              f"runs it anyway)")
        grids.append(grid)
        unmatched = outside if unmatched is None else [g for g in unmatched if g in outside]
    if unmatched:
        trained = "; ".join(f"{e.name}: {describe_settings(list(e.trained))}" for e in exports)
        raise ConfigError(f"disco: no export trained on {describe_settings(unmatched)} ({trained}); narrow "
                          f"disco.send.ds/dt/qp/codec, or disco.trained_only=false runs it anyway")
    return grids


def point_label(p: dict) -> str:
    """'ds4_dt4_qp16' (or _crf30 where the point codes at a CRF) of a rate point."""
    qp = int(p.get("qp", -1))
    return f"ds{int(p['ds'])}_dt{int(p['dt'])}_" + (f"qp{qp}" if qp >= 0 else f"crf{p.get('crf')}")


def disco_points(cfg, exports: list[Export], method: str = "disco", overrides: tuple | None = None) -> list[Point]:
    """Every (export, D_s, D_t, QP) point of the grid, as points of `method`."""
    d, points = cfg.disco, []
    overrides = tuple(d.overrides) if overrides is None else tuple(overrides)
    for e, grid in zip(exports, _grids(d, exports)):
        for p in grid:
            ds, dt, codec, qp = int(p["ds"]), int(p["dt"]), str(p["codec"]), int(p.get("qp", -1))
            if codec in ("x264", "x265") and qp > 51:
                raise ConfigError(f"disco.send.qp: {qp} is above {codec}'s 51")
            label = point_label(p) + (f"@{e.name}" if len(exports) > 1 else "")
            crf = (("crf", p.get("crf")),) if qp < 0 else ()  # a crf point (x264/x265 at qp -1) is coded at it
            params = (("export", e.digest), ("ds", ds), ("dt", dt), ("codec", codec), ("qp", qp), *crf,
                      ("steps", e.steps), ("guidance", e.guidance), ("seed", d.seed),
                      ("merge_lora", d.merge_lora), ("overrides", overrides), *e.speed)
            # quality falls with D_s and D_t, and rises with the QP for DCVC-RT (63 best) but not x26x/vvenc
            order = (-ds * dt * 100 + (qp if codec == "dcvc_rt" else -qp))
            points.append(Point(method, label, params, order))
    return points


def variant_points(cfg, variants: list[Variant]) -> dict[str, list[Point]]:
    """{method: its points} of every DiSCo variant (disco@rate: one point per target, `rate_points`; restore: one
    per QP of its codec, `benchmark.restore`)."""
    from disco_train.benchmark import restore

    def points(v: Variant) -> list[Point]:
        if v.method == RATE_METHOD:
            return rate_points(cfg, v.exports[0], v.overrides)
        if v.method == RESTORE_METHOD:
            return restore.points(cfg, v.exports[0], v.overrides)
        return disco_points(cfg, v.exports, v.method, v.overrides)

    return {v.method: points(v) for v in variants}


def settings_of(cfg, point: Point) -> dict:
    """The cache-key part of a disco point beyond its params: the weights of the degraded video's codec."""
    from disco_train.benchmark.methods import files_fingerprint
    from disco_train.codec import backends

    if "dcvc_rt" not in (point.settings.get("codec"), *point.settings.get("codecs", ())):  # codecs: disco@rate's
        return {}
    weights = cfg.disco.send.dcvc_rt_dir or cfg.dcvc_rt.weights
    if weights == backends.SYNTHETIC:
        return {"dcvc_rt_dir": weights}
    return {"dcvc_rt_dir": files_fingerprint([Path(weights) / n for n in backends.DCVC_WEIGHTS])}


def sender_settings(s: dict, cfg) -> SendSettings:
    """How the sender codes rate point `s` {ds, dt, codec, qp[, crf]}."""
    crf = {"crf": s["crf"]} if s.get("crf") is not None else {}
    return SendSettings(ds=s["ds"], dt=s["dt"], codec=s["codec"], qp=s["qp"], **crf,
                        dcvc_rt_dir=cfg.disco.send.dcvc_rt_dir or cfg.dcvc_rt.weights)


def run_disco(cfg, variants: list[Variant], cells: list, frames_of: Callable, device: str
              ) -> Iterator[tuple[object, Point, Coded, str]]:
    """Code and decode `cells` [(clip, point)], yielding (clip, point, Coded, caption) as each one is done.
    Cells are grouped by decoder (export and overrides: one build each, shared by variants that differ only in
    text), then by method and point, in batches of `disco.batch_size`."""
    from disco_train.decoder import fast
    from disco_train.decoder.decoder import DiscoDecoder
    from disco_train.decoder.flow import schedule_steps

    by_method = {v.method: v for v in variants}
    builds = {}
    for v in variants:
        for e in v.exports:
            builds.setdefault((e.digest, v.overrides, e.speed), e)
    for (digest, overrides, speed), export in builds.items():
        mine = [c for c in cells if (c[1].settings["export"], c[1].settings["overrides"]) == (digest, overrides)
                and tuple(p for p in c[1].params if p[0] in SPEED_KEYS) == speed]
        if not mine:
            continue
        if Path(export.folder).is_file():  # restore's IC-LoRA file on its base recipe
            from disco_train.benchmark import restore

            decoder = restore.build(export, cfg, device)
        else:
            decoder = DiscoDecoder.from_export(export.folder, list(overrides), device, merge=cfg.disco.merge_lora)
        settings = dict(speed)
        fast.apply(decoder.transformer, settings.get("cache", "none"), settings.get("dtype", ""),
                   steps=schedule_steps(settings.get("schedule", "shifted"), export.steps))
        for method, label in dict.fromkeys((p.method, p.label) for _, p in mine):
            group = [c for c in mine if (c[1].method, c[1].label) == (method, label)]
            for start in range(0, len(group), cfg.disco.batch_size):
                yield from _batch(cfg, export, decoder, group[start:start + cfg.disco.batch_size], frames_of,
                                  by_method[method].captions)
        del decoder


def _batch(cfg, export: Export, decoder, batch: list, frames_of: Callable, captions: Captions):
    from disco_train.codec.pipeline import decode_containers

    sent, texts, encode_s, extras = [], [], [], []
    for clip, point in batch:
        frames = frames_of(clip)
        texts.append(captions(clip.file_name, frames))
        if point.method == RESTORE_METHOD:
            from disco_train.benchmark.restore import text_of

            texts[-1] = text_of(cfg.restore, texts[-1])
        start = time.perf_counter()
        if point.method == RATE_METHOD:
            container, chosen = send_at_target(export, point, clip.name, frames, clip.fps, texts[-1], cfg)
        else:
            container, chosen = send_video(frames, clip.fps, texts[-1], sender_settings(point.settings, cfg)), {}
        sent.append(container)
        extras.append(chosen)
        encode_s.append(time.perf_counter() - start)
    weights = cfg.disco.send.dcvc_rt_dir or cfg.dcvc_rt.weights
    start = time.perf_counter()
    recons = decode_containers(decoder, sent, export.steps, export.guidance, [cfg.disco.seed] * len(sent),
                               export.negative_prompt, weights, None, dict(export.speed).get("schedule", "shifted"))
    decode_s = (time.perf_counter() - start) / len(sent)
    for (clip, point), container, recon, enc, text, chosen in zip(batch, sent, recons, encode_s, texts, extras):
        streams = {f"{s.kind}_bits": s.bits for s in container.streams}
        coded = Coded(8 * len(C.pack(container)), recon, enc, decode_s,
                      {"overhead_bits": 8 * container.overhead_bytes, **streams, **chosen})
        if point.method == RESTORE_METHOD:  # the codec's bytes (+ the text's), not the container's
            from disco_train.benchmark.restore import bits

            coded.bits, coded.extra = bits(container, text)
        yield clip, point, coded, text


# ---- disco@rate ------------------------------------------------------------------------------------------------------
def rate_points(cfg, export: Export, overrides: tuple) -> list[Point]:
    """One point per target rate, labelled '20kbps' / '0.05bpp'."""
    unit, values = ("kbps", cfg.rate.targets_kbps) if cfg.rate.targets_kbps else ("bpp", cfg.rate.targets_bpp)
    codecs = tuple(sorted({p["codec"] for p in export.trained}))
    d = cfg.disco
    return [Point(RATE_METHOD, f"{v:g}{unit}", (("export", export.digest), (f"target_{unit}", float(v)),
                                                 ("codecs", codecs), ("steps", export.steps),
                                                 ("guidance", export.guidance), ("seed", d.seed),
                                                 ("merge_lora", d.merge_lora), ("overrides", tuple(overrides))),
                  float(v)) for v in values]


def send_at_target(export: Export, point: Point, clip: str, frames: np.ndarray, fps: float, caption: str, cfg
                   ) -> tuple[C.Container, dict]:
    """(the container of the best trained point that fits the point's target, what the cell records of it)."""
    from disco_train.codec import rate
    from disco_train.codec.sender import geometry_for, send_video

    s = point.settings
    target = rate.Target(s.get("target_kbps"), s.get("target_bpp"))
    send = lambda p: send_video(frames, fps, caption, sender_settings(p, cfg))  # noqa: E731
    try:
        container, found = rate.send_best(rate.ordered_points(export.folder), send, target,
                                          geometry_for(*frames.shape[:3], fps))
    except rate.RateError as err:
        raise rate.RateError(f"{clip}: {RATE_METHOD} {err}; raise rate.targets_*") from None
    return container, {"chosen": point_label(found.point), "candidates_tried": found.tried}
