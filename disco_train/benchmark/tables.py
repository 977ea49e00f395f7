"""From cells to tables: per-video rows, pooled RD curves, Pareto fronts and the BD-rate table.

Pooling follows `evaluate`: a point's bpp, kbps, times and per-video metrics are means over its videos (every
sequence weighs the same, as in codec test conditions); FID, FVD and FVMD are computed once over the features of
all its videos. A method's curve for a metric is its points in rate order — except a DiSCo grid over more than one
(export, D_s, D_t), whose curve is its Pareto front for that metric (the points no other point beats with less
rate): a grid is a set of operating points, and a user picks the best one for each rate.

A BD-rate cell is the `metrics.bdrate.bd_rate` (bjontegaard, Akima by default) of the method's curve against the
anchor's, in percent (negative: less rate for the same quality). A cell that cannot be computed says why instead
(too few points, a curve whose quality does not improve with rate, no overlap of the quality ranges); a result
whose quality ranges overlap less than `min_overlap` of their joint span (bjontegaard's overlap measure) is shown
with its overlap.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from disco_train.metrics.results import LOWER_IS_BETTER

RATE_KEYS = ("bits", "bpp", "kbps", "encode_s", "decode_s")


def kbps(bits: float, frames: int, fps: float) -> float:
    """bits spread over frames/fps seconds, in kbit/s."""
    return bits * fps / frames / 1000


def result_row(record: dict, names: list[str]) -> dict:
    """One results.csv row: a video × method × point."""
    pixels = record["frames"] * record["height"] * record["width"]
    row = {"video": record["video"], "method": record["method"], "point": record["point"],
           "frames": record["frames"], "height": record["height"], "width": record["width"], "fps": record["fps"],
           "bits": record["bits"], "bpp": record["bits"] / pixels,
           "kbps": kbps(record["bits"], record["frames"], record["fps"]),
           "encode_s": record["encode_s"], "decode_s": record["decode_s"]}
    row.update({n: record["scores"].get(n) for n in names})
    row.update(record.get("extra", {}))
    return row


def curve_row(method: str, point, rows: list[dict], features: list[dict], names: list[str], per_video: list[str],
              fvd_clip_len: int, fvmd_clip_len: int, fvmd_protocol: str = "package") -> dict:
    """The pooled RD point of one method × point over its videos' rows and features."""
    from disco_train.metrics.suite import pooled_scores

    out = {"method": method, "point": point.label, "videos": len(rows), "order": point.order}
    for key in RATE_KEYS:
        out[key] = float(np.mean([r[key] for r in rows]))
    for name in per_video:
        out[name] = float(np.mean([r[name] for r in rows]))
    notes = []
    for name in (n for n in names if n not in per_video):
        try:
            out.update(pooled_scores([name], features, fvd_clip_len, fvmd_clip_len, fvmd_protocol))
        except ValueError as err:
            out[name] = None
            notes.append(str(err))
    out["notes"] = "; ".join(notes)
    return out


def pareto(points: list[tuple[float, float]], lower_is_better: bool) -> list[int]:
    """Indices of the (rate, quality) points that no point of less or equal rate beats, in rate order."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1] if not lower_is_better
                                                       else points[i][1]))
    front, best = [], None
    for i in order:
        q = points[i][1]
        if best is None or (q < best if lower_is_better else q > best):
            front.append(i)
            best = q
    return front


def method_curve(curves: list[dict], method: str, metric: str, grid: bool) -> list[dict]:
    """The points of `method` that make its curve for `metric` (all of them, or a grid's Pareto front)."""
    mine = [c for c in curves if c["method"] == method and c.get(metric) is not None]
    if grid and mine:
        keep = pareto([(c["bpp"], c[metric]) for c in mine], metric in LOWER_IS_BETTER)
        return [mine[i] for i in keep]
    return sorted(mine, key=lambda c: c["bpp"])


def overlap(a: list[float], b: list[float]) -> float:
    """bjontegaard's overlap of two quality ranges: their intersection over their joint span."""
    low, high = max(min(a), min(b)), min(max(a), max(b))
    span = max(max(a), max(b)) - min(min(a), min(b))
    return max(high - low, 0.0) / span if span > 0 else 0.0


def _reason(err: ValueError, names: dict[str, str]) -> str:
    text = str(err)
    who = names.get(text.split(":", 1)[0], text.split(":", 1)[0])
    if "at least 2 RD points" in text:
        return f"too few points ({who})"
    if "strictly" in text:
        return f"{who} curve not monotonic (quality must improve with rate)"
    if "duplicate quality" in text:
        return f"{who} has repeated quality values"
    if "rates must be > 0" in text:
        return f"{who} has a zero rate"
    return text.split(";")[0][:80]


def bd_cell(anchor: list[dict], test: list[dict], metric: str, interpolation: str, min_overlap: float,
            names: tuple[str, str] = ("anchor", "test")) -> dict:
    """{'value': BD-rate % or None, 'note': why not / low overlap / ''} of one method × metric; `names`: the
    anchor's and the method's, for the note."""
    from disco_train.metrics.bdrate import bd_rate

    if not anchor or not test:
        return {"value": None, "note": f"no {metric} values ({'anchor' if not anchor else 'method'})"}
    ra, qa = [c["bpp"] for c in anchor], [c[metric] for c in anchor]
    rt, qt = [c["bpp"] for c in test], [c[metric] for c in test]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # overlap problems are reported in the cell instead
            value = bd_rate(ra, qa, rt, qt, interpolation=interpolation, lower_is_better=metric in LOWER_IS_BETTER,
                            min_overlap=min_overlap)
    except ValueError as err:
        return {"value": None, "note": _reason(err, {"anchor": names[0], "test": names[1]})}
    share = overlap(qa, qt)
    if not math.isfinite(value):
        return {"value": None, "note": "no overlap of the quality ranges"}
    return {"value": value, "note": f"overlap {share:.0%}" if share < min_overlap else ""}


def cell_text(cell: dict, anchor: bool = False) -> str:
    if anchor:
        return "0.00 (anchor)"
    if cell["value"] is None:
        return f"n/a: {cell['note']}"
    text = f"{cell['value']:+.2f}"
    return f"{text} ({cell['note']})" if cell["note"] else text


def bdrate_table(curves: list[dict], methods: list[str], metrics: list[str], anchor: str, grids: set[str],
                 interpolation: str, min_overlap: float) -> dict[str, dict[str, dict]]:
    """{metric: {method: cell}} of every method against the anchor."""
    table = {}
    for metric in metrics:
        base = method_curve(curves, anchor, metric, anchor in grids)
        table[metric] = {m: ({"value": 0.0, "note": "anchor"} if m == anchor else
                             bd_cell(base, method_curve(curves, m, metric, m in grids), metric, interpolation,
                                     min_overlap, (anchor, m))) for m in methods}
    return table
