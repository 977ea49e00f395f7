"""From cells to tables: per-video rows, pooled RD curves, Pareto fronts and the BD-rate table.

Pooling follows `evaluate`: a point's bpp, kbps, times and per-video metrics are means over its videos (every
sequence weighs the same, as in codec test conditions); FID, FVD and FVMD are computed once over the features of
all its videos. A method's curve for a metric is its points in rate order — except a DiSCo grid over more than one
(export, D_s, D_t), whose curve is its Pareto front for that metric (the points no other point beats with less
rate): a grid is a set of operating points, and a user picks the best one for each rate.

A BD-rate cell is the `metrics.bdrate.bd_rate` (bjontegaard, Akima by default) of the method's curve against the
anchor's, in percent (negative: less rate for the same quality). A cell that cannot be computed has no number
and a status saying why (too few points, a curve whose quality does not improve with rate, no overlap of the
quality ranges, or an overlap under `min_overlap` of their joint span: bjontegaard's measure, whose BD-rate would
extrapolate from a corner of the curves).
"""

from __future__ import annotations

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
              settings) -> dict:
    """The pooled RD point of one method × point over its videos' rows and features (`settings`: the
    benchmark's MetricSettings)."""
    from disco_train.metrics.suite import pooled_scores

    out = {"method": method, "point": point.label, "videos": len(rows), "order": point.order}
    for key in RATE_KEYS:
        out[key] = float(np.mean([r[key] for r in rows]))
    for name in per_video:
        out[name] = float(np.mean([r[name] for r in rows]))
    notes = []
    for name in (n for n in names if n not in per_video):
        try:
            out.update(pooled_scores([name], features, settings))
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


STATUS_TEXT = {"too_few_points": "too few points", "not_monotonic": "curve not monotonic (quality must improve "
               "with rate)", "repeated_quality": "repeated quality values", "zero_rate": "a zero rate",
               "invalid": "invalid RD points", "no_overlap": "no overlap of the quality ranges",
               "low_overlap": "quality ranges overlap under min_overlap", "no_values": "no values"}
"""What a cell's status says in a person's table; `ok` and `anchor` cells hold numbers."""


def bd_cell(anchor: list[dict], test: list[dict], metric: str, interpolation: str, min_overlap: float,
            names: tuple[str, str] = ("anchor", "test")) -> dict:
    """One method × metric: {'status', 'value' (BD-rate % only when status is ok, else None), 'overlap' (of the
    quality ranges, None without points), 'detail' (why not, naming the method)}; `names`: the anchor's and the
    method's."""
    from disco_train.metrics.bdrate import BDRateError, bd_rate, curve_overlap

    if not anchor or not test:
        who = names[0] if not anchor else names[1]
        return {"status": "no_values", "value": None, "overlap": None, "detail": f"no {metric} values ({who})"}
    ra, qa = [c["bpp"] for c in anchor], [c[metric] for c in anchor]
    rt, qt = [c["bpp"] for c in test], [c[metric] for c in test]
    share = curve_overlap(qa, qt)
    try:
        value = bd_rate(ra, qa, rt, qt, interpolation=interpolation, lower_is_better=metric in LOWER_IS_BETTER,
                        min_overlap=min_overlap)
    except BDRateError as err:
        who = {"anchor": names[0], "test": names[1]}.get(err.curve, "")
        detail = f"{who}: {STATUS_TEXT[err.status]}" if who else STATUS_TEXT[err.status]
        if err.status == "low_overlap":
            detail = f"quality ranges overlap {share:.0%} < min_overlap {min_overlap:.0%}"
        return {"status": err.status, "value": None, "overlap": share, "detail": detail}
    return {"status": "ok", "value": value, "overlap": share, "detail": ""}


ANCHOR_CELL = {"status": "anchor", "value": 0.0, "overlap": 1.0, "detail": ""}


def cell_text(cell: dict) -> str:
    """A cell for a person: the BD-rate, or "—" and why not."""
    if cell["status"] == "anchor":
        return "0 (anchor)"
    return f"{cell['value']:+.2f}" if cell["status"] == "ok" else f"— ({cell['detail']})"


def bdrate_table(curves: list[dict], methods: list[str], metrics: list[str], anchor: str, grids: set[str],
                 interpolation: str, min_overlap: float) -> dict[str, dict[str, dict]]:
    """{metric: {method: cell}} of every method against the anchor."""
    table = {}
    for metric in metrics:
        base = method_curve(curves, anchor, metric, anchor in grids)
        table[metric] = {m: (dict(ANCHOR_CELL) if m == anchor else
                             bd_cell(base, method_curve(curves, m, metric, m in grids), metric, interpolation,
                                     min_overlap, (anchor, m))) for m in methods}
    return table
