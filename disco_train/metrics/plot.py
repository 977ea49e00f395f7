"""Rate-distortion plots: bpp on a log x axis, a metric on y, one line per method; one PNG per metric and a panel
figure of several metrics (as papers show them).

Readable by construction: x ticks are a few round bpp values written as plain decimals (0.002, 0.005, 0.01; for a
curve within a fraction of a decade, values like 0.0092 0.0094), minor ticks carry no labels, and the y axis
never uses an offset ("1e-5 + 10.19" is written 10.19...). The legend sits under the axes, one entry per method
with its setting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from disco_train.io.files import atomic_open

from .results import LOWER_IS_BETTER, read_rd_points

MAX_TICKS = 6


@dataclass
class Series:
    """One method's line: its legend label, rates and values (in rate order), and optional dots drawn under the
    line (every point of a grid whose line is its Pareto front)."""

    label: str
    rate: Sequence[float]
    value: Sequence[float]
    dots: tuple[Sequence[float], Sequence[float]] = field(default_factory=lambda: ((), ()))


def _round_distinct(values: list[float]) -> list[float]:
    """The values rounded to the fewest significant digits (>= 2) that keep them distinct."""
    for digits in range(2, 8):
        rounded = sorted({float(f"{v:.{digits}g}") for v in values})
        if len(rounded) == len(values):
            return rounded
    return sorted(set(values))


def log_ticks(low: float, high: float, max_ticks: int = MAX_TICKS) -> list[float]:
    """Round tick values inside [low, high] for a log axis: decades, else 1-3, 1-2-5, 1-2-3-5-7 or 1..9 per decade,
    whichever first gives three; a range narrower than that gets four evenly (log-)spaced rounded values."""
    if low <= 0 or high <= 0:
        raise ValueError(f"a log axis needs positive values, got {low}..{high}")
    if high / low < 1 + 1e-9:
        return [low]
    decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    ticks: list[float] = []
    for mantissas in ((1,), (1, 3), (1, 2, 5), (1, 2, 3, 5, 7), range(1, 10)):
        ticks = [float(f"{m}e{e}") for e in decades for m in mantissas if low <= float(f"{m}e{e}") <= high]
        if len(ticks) >= 3:
            break
    else:
        ticks = _round_distinct(list(np.geomspace(low, high, 4)))
    step = math.ceil(len(ticks) / max_ticks)
    return ticks[::step]


def tick_text(value: float) -> str:
    """A plain decimal: 0.0004, 0.01, 2 (never 4×10⁻⁴)."""
    return np.format_float_positional(value, trim="-")


def style_axes(ax, metric: str, rates: Sequence[float]) -> None:
    """Log bpp x axis with `log_ticks` over `rates`, no minor labels, no y offset, the metric and its direction."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullFormatter, ScalarFormatter

    ax.set_xscale("log")
    ticks = log_ticks(min(rates), max(rates))
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: tick_text(v)))
    ax.xaxis.set_minor_formatter(NullFormatter())
    pad = (max(rates) / min(rates)) ** 0.05 if max(rates) > min(rates) else 1.1
    ax.set_xlim(min(rates) / pad, max(rates) * pad)
    y = ScalarFormatter(useOffset=False)
    y.set_scientific(False)
    ax.yaxis.set_major_formatter(y)
    ax.yaxis.set_major_locator(MaxNLocator(nbins=5))
    ax.set_xlabel("bpp")
    ax.set_ylabel(f"{metric.upper()} {'↓' if metric in LOWER_IS_BETTER else '↑'}")
    ax.grid(True, which="both", alpha=0.3)


def draw(ax, metric: str, series: list[Series], colors: dict[str, str]) -> None:
    """Every series on one axes in its color (the same in every panel), styled by `style_axes`."""
    rates = []
    for s in series:
        ax.plot(s.rate, s.value, marker="o", markersize=4, color=colors[s.label])
        if len(s.dots[0]):
            ax.scatter(s.dots[0], s.dots[1], s=10, alpha=0.35, color=colors[s.label])
        rates += [*s.rate, *s.dots[0]]
    style_axes(ax, metric, rates or [1.0])


def _save(fig, out: Path) -> Path:
    with atomic_open(out) as handle:
        fig.savefig(handle, format="png", dpi=150, bbox_inches="tight")
    return out


def _legend(fig, colors: dict[str, str], columns: int) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, marker="o", markersize=4) for c in colors.values()]
    fig.legend(handles, list(colors), loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(len(colors), columns),
               frameon=False, fontsize="small")


def rd_figure(panels: dict[str, list[Series]], out: str | Path, title: str | None = None) -> Path:
    """One PNG: a panel per metric (up to 3 a row), one legend under them; written atomically."""
    import matplotlib

    matplotlib.use("Agg", force=False)  # headless; keeps a backend the caller already chose
    import matplotlib.pyplot as plt

    if not panels:
        raise ValueError("an RD figure needs at least one metric")
    cols = min(len(panels), 3)
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.8 * rows), squeeze=False, layout="constrained")
    labels = list(dict.fromkeys(s.label for series in panels.values() for s in series))
    colors = {label: f"C{i % 10}" for i, label in enumerate(labels)}
    try:
        flat = list(axes.flat)
        for ax, (metric, series) in zip(flat, panels.items()):
            draw(ax, metric, series, colors)
        for ax in flat[len(panels):]:
            ax.set_visible(False)
        _legend(fig, colors, 2 * cols)
        if title:
            fig.suptitle(title)
        return _save(fig, Path(out))
    finally:
        plt.close(fig)


def plot_rd(
    csv_paths: Sequence[str | Path],
    metric: str,
    out_png: str | Path,
    *,
    labels: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """The RD curve of each csv (label: file stem unless ``labels`` is given) for `metric`, or a panel each for
    several comma-separated metrics, as one PNG."""
    paths = [Path(p) for p in csv_paths]
    if not paths:
        raise ValueError("plot_rd needs at least one csv path")
    if labels is not None and len(labels) != len(paths):
        raise ValueError(f"got {len(labels)} labels for {len(paths)} csv files")
    names = list(labels) if labels is not None else [p.stem for p in paths]
    metrics = [m.strip() for m in metric.split(",") if m.strip()]
    # read every file first so a bad one fails before drawing
    panels = {m: [Series(n, *read_rd_points(p, m)) for n, p in zip(names, paths)] for m in metrics}
    return rd_figure(panels, out_png, title)
