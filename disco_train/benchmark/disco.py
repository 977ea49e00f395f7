"""The `disco` method: one or more exported decoders over a grid of D_s × D_t × the degraded video's codec QP.

Sender and receiver are the project's own: `codec.sender.send_video` makes the `.disco` container (caption +
degraded video), `codec.cli.decode_containers` restores it through `codec.receiver.receive` and samples with a
`DiscoDecoder`. Each export's decoder (transformer, VAE and T5) is built once for the whole run, and the clips of
one grid point are decoded `disco.batch_size` at a time, each with its own noise seed (`disco.seed`), so a clip's
result does not depend on which clips share its batch.

The rate of a point is the whole `.disco` file: every stream plus the container's header and table (36 + 12 per
stream bytes), which a receiver needs; the header is also reported apart (`overhead_bits`), as are the text and
video streams. Grid, per export: with `disco.trained_only` (default) exactly the rate points the export trained
on (disco.json `trained_settings`), narrowed by `disco.ds` / `disco.dt` / `disco.qp` / `disco.codec` where they are
set; a requested combination that no export trained on, or an export with no trained point in the request, is
refused, naming the trained sets (several exports, say one per D_s × D_t, share one grid this way). With
`disco.trained_only=false` every combination of `disco.ds` × `disco.dt` × `disco.qp` (each empty list: the values
the export trained on) runs, trained or not.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from disco_train.benchmark.methods import Coded, Point
from disco_train.codec import container as C
from disco_train.codec.sender import SenderSettings, send_video
from disco_train.config import ConfigError
from disco_train.config.benchmark import split_list


@dataclass(frozen=True)
class Export:
    folder: str
    name: str
    digest: str
    """sha256 of its disco.json (which holds the sha256 of every file it lists)."""
    trained: tuple
    """The rate points {ds, dt, codec[, qp, crf]} it trained on."""
    steps: int
    guidance: float
    negative_prompt: str
    aux: str


def load_exports(cfg) -> list[Export]:
    """Read and check every export of `export=` (before any video is coded)."""
    from disco_train.decoder.export import MANIFEST, decoder_config, read_manifest, trained_settings

    exports, names = [], set()
    for folder in split_list(cfg.export):
        manifest = read_manifest(folder)
        decoder = decoder_config(folder, cfg.disco.overrides, manifest)
        name = Path(folder).resolve().name
        if name in names:
            raise ConfigError(f"export: two exports named {name!r}; their points would share labels")
        names.add(name)
        if decoder.condition.aux != "none":
            raise ConfigError(f"export={folder}: conditioned on {decoder.condition.aux}; the benchmark sends text + "
                              f"video only (the paper's general version)")
        exports.append(Export(str(folder), name, hashlib.sha256((Path(folder) / MANIFEST).read_bytes()).hexdigest(),
                              tuple(trained_settings(manifest)), cfg.disco.steps or decoder.validation.steps,
                              decoder.validation.guidance if cfg.disco.guidance is None else cfg.disco.guidance,
                              decoder.validation.negative_prompt, decoder.condition.aux))
    return exports


def grid_of(d, e: Export) -> tuple[list[dict], list[dict]]:
    """(the rate points {ds, dt, codec, qp[, crf]} export `e` runs at, the requested combinations it did not
    train on) (module docstring)."""
    from disco_train.codec.trained import matches

    if not d.trained_only:
        values = lambda key: sorted({p[key] for p in e.trained if key in p})  # noqa: E731
        first = e.trained[0]
        return [{"ds": ds, "dt": dt, "codec": d.codec or first["codec"], "qp": qp, "crf": first.get("crf")}
                for ds in (d.ds or values("ds")) for dt in (d.dt or values("dt"))
                for qp in (d.qp or values("qp"))], []
    grid, outside = [], []
    for ds, dt, qp in product(d.ds or [None], d.dt or [None], d.qp or [None]):
        given = {k: v for k, v in (("ds", ds), ("dt", dt), ("codec", d.codec or None), ("qp", qp)) if v is not None}
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
                              f"it in disco.ds={d.ds} dt={d.dt} qp={d.qp} codec={d.codec!r} (disco.trained_only=false "
                              f"runs it anyway)")
        grids.append(grid)
        unmatched = outside if unmatched is None else [g for g in unmatched if g in outside]
    if unmatched:
        trained = "; ".join(f"{e.name}: {describe_settings(list(e.trained))}" for e in exports)
        raise ConfigError(f"disco: no export trained on {describe_settings(unmatched)} ({trained}); narrow "
                          f"disco.ds/dt/qp/codec, or disco.trained_only=false runs it anyway")
    return grids


def disco_points(cfg, exports: list[Export]) -> list[Point]:
    """Every (export, D_s, D_t, QP) point of the grid."""
    d, points = cfg.disco, []
    for e, grid in zip(exports, _grids(d, exports)):
        for p in grid:
            ds, dt, codec, qp = int(p["ds"]), int(p["dt"]), str(p["codec"]), int(p.get("qp", -1))
            if codec in ("x264", "x265") and qp > 51:
                raise ConfigError(f"disco.qp: {qp} is above {codec}'s 51")
            rate = f"qp{qp}" if qp >= 0 else f"crf{p.get('crf')}"
            label = f"ds{ds}_dt{dt}_{rate}" + (f"@{e.name}" if len(exports) > 1 else "")
            crf = (("crf", p.get("crf")),) if qp < 0 else ()  # a crf point (x264/x265 at qp -1) is coded at it
            params = (("export", e.digest), ("ds", ds), ("dt", dt), ("codec", codec), ("qp", qp), *crf,
                      ("steps", e.steps), ("guidance", e.guidance), ("seed", d.seed),
                      ("merge_lora", d.merge_lora), ("overrides", tuple(d.overrides)))
            # quality falls with D_s and D_t, and rises with the QP for DCVC-RT (63 best) but not x26x/vvenc
            order = (-ds * dt * 100 + (qp if codec == "dcvc_rt" else -qp))
            points.append(Point("disco", label, params, order))
    return points


def settings_of(cfg, point: Point, exports: list[Export]) -> dict:
    """The cache-key part of a disco point beyond its params: the weights of the degraded video's codec."""
    from disco_train.benchmark.methods import files_fingerprint
    from disco_train.codec import backends

    if point.settings["codec"] != "dcvc_rt":
        return {}
    weights = cfg.disco.dcvc_rt_dir or cfg.dcvc_rt.weights
    if weights == backends.SYNTHETIC:
        return {"dcvc_rt_dir": weights}
    return {"dcvc_rt_dir": files_fingerprint([Path(weights) / n for n in backends.DCVC_WEIGHTS])}


class Captions:
    """The caption of each clip: the captions file, else `caption_default`, else the captioner (built once)."""

    def __init__(self, d, device: str):
        self.d, self.device, self._captioner, self.table = d, device, None, {}
        if d.captions:
            path = Path(d.captions)
            if not path.is_file():
                raise ConfigError(f"disco.captions: file not found: {path}")
            if path.suffix == ".jsonl":
                rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            else:
                with path.open(newline="") as handle:
                    rows = list(csv.DictReader(handle))
            if rows and (d.caption_key not in rows[0] or d.caption_column not in rows[0]):
                raise ConfigError(f"disco.captions: {path} needs columns {d.caption_key!r} and {d.caption_column!r}")
            for row in rows:
                name = Path(str(row[d.caption_key])).name
                self.table[name] = self.table[Path(name).stem] = str(row[d.caption_column])

    def key(self, name: str):
        """What picks this clip's caption, for the cache key (the text itself unless the captioner writes it)."""
        if name in self.table:
            return self.table[name]
        return self.d.caption_default or {"captioner": str(Path(self.d.captioner).resolve())}

    def missing(self, names: list[str]) -> list[str]:
        """Clips that would need the captioner when there is none."""
        if self.d.caption_default or self.d.captioner:
            return []
        return [n for n in names if n not in self.table]

    def __call__(self, name: str, frames: np.ndarray) -> str:
        if name in self.table:
            return self.table[name]
        if self.d.caption_default:
            return self.d.caption_default
        if self._captioner is None:
            from disco_train.modalities.caption import Captioner

            self._captioner = Captioner(self.d.captioner, device=self.device)
        from disco_train.modalities.caption import caption_clip

        self.table[name] = caption_clip(self._captioner, frames)
        return self.table[name]


def _settings(point: Point, cfg) -> SenderSettings:
    s = point.settings
    crf = {"crf": s["crf"]} if s.get("crf") is not None else {}
    return SenderSettings(ds=s["ds"], dt=s["dt"], codec=s["codec"], qp=s["qp"], **crf,
                          dcvc_rt_dir=cfg.disco.dcvc_rt_dir or cfg.dcvc_rt.weights)


def run_disco(cfg, exports: list[Export], cells: list, frames_of: Callable, captions: Captions,
              device: str) -> Iterator[tuple[object, Point, Coded, str]]:
    """Code and decode `cells` [(clip, point)], yielding (clip, point, Coded, caption) as each one is done.
    Cells are grouped by export (one decoder build each), then by point, in batches of `disco.batch_size`."""
    from disco_train.decoder.decoder import DiscoDecoder

    by_digest = {e.digest: e for e in exports}
    for export in exports:
        mine = [c for c in cells if c[1].settings["export"] == export.digest]
        if not mine:
            continue
        decoder = DiscoDecoder.from_export(export.folder, cfg.disco.overrides, device, merge=cfg.disco.merge_lora)
        labels = list(dict.fromkeys(p.label for _, p in mine))
        for label in labels:
            group = [c for c in mine if c[1].label == label]
            for start in range(0, len(group), cfg.disco.batch_size):
                yield from _batch(cfg, by_digest, decoder, group[start:start + cfg.disco.batch_size], frames_of,
                                  captions)
        del decoder


def _batch(cfg, exports: dict, decoder, batch: list, frames_of: Callable, captions: Captions):
    from disco_train.codec.cli import decode_containers

    sent, texts, encode_s = [], [], []
    for clip, point in batch:
        frames = frames_of(clip)
        texts.append(captions(clip.name, frames))
        start = time.perf_counter()
        sent.append(send_video(frames, clip.fps, texts[-1], _settings(point, cfg)))
        encode_s.append(time.perf_counter() - start)
    export = exports[batch[0][1].settings["export"]]
    weights = cfg.disco.dcvc_rt_dir or cfg.dcvc_rt.weights
    start = time.perf_counter()
    recons = decode_containers(decoder, sent, export.steps, export.guidance, [cfg.disco.seed] * len(sent),
                               export.negative_prompt, weights, None)
    decode_s = (time.perf_counter() - start) / len(sent)
    for (clip, point), container, recon, enc, text in zip(batch, sent, recons, encode_s, texts):
        streams = {f"{s.kind}_bits": s.bits for s in container.streams}
        coded = Coded(8 * len(C.pack(container)), recon, enc, decode_s,
                      {"overhead_bits": 8 * container.overhead_bytes, **streams})
        yield clip, point, coded, text
