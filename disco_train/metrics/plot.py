"""Rate-distortion curve plots: one line per result csv, bpp (log scale) on x, the metric on y."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .results import LOWER_IS_BETTER, read_rd_points


def plot_rd(
    csv_paths: Sequence[str | Path],
    metric: str,
    out_png: str | Path,
    *,
    labels: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """Plot the RD curve of each csv (label: file stem unless ``labels`` is given) and save a PNG."""
    import matplotlib

    # Agg renders without a display, so this works on headless training/eval machines. force=False keeps a
    # backend the caller already chose (e.g. inline in a notebook).
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    paths = [Path(p) for p in csv_paths]
    if not paths:
        raise ValueError("plot_rd needs at least one csv path")
    if labels is not None and len(labels) != len(paths):
        raise ValueError(f"got {len(labels)} labels for {len(paths)} csv files")
    names = list(labels) if labels is not None else [p.stem for p in paths]
    curves = [read_rd_points(p, metric) for p in paths]  # read all first so a bad file fails before drawing

    fig, ax = plt.subplots(figsize=(5, 4))
    try:
        for name, (rate, value) in zip(names, curves):
            ax.plot(rate, value, marker="o", label=name)
        ax.set_xscale("log")
        ax.set_xlabel("bpp")
        arrow = "↓" if metric in LOWER_IS_BETTER else "↑"
        ax.set_ylabel(f"{metric.upper()} {arrow}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        if title:
            ax.set_title(title)
        out = Path(out_png)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, format="png", dpi=150, bbox_inches="tight")
    finally:
        plt.close(fig)
    return out
