"""Reading RD points from result csv files (shared by the bdrate command and the RD plot).

A result csv has a ``bpp`` column and one column per metric. Files written by ``evaluate`` also have a
``video`` column with one row per video plus an ``overall`` row per run; appending several runs (one per
rate point, ``append=true``) to one csv gives a codec's RD curve. In such files only the ``overall`` rows
are RD points. Files without a ``video`` column (e.g. hand-made tables of published numbers) use every row.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

OVERALL = "overall"
RATE_COLUMN = "bpp"

# Metrics where a smaller value is better; BD-rate uses this to check curve monotonicity.
LOWER_IS_BETTER = frozenset({"lpips", "lpips_vgg", "dists", "fid", "fvd", "flolpips", "fvmd"})


def read_rd_points(csv_path: str | Path, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (bpp, metric) arrays sorted by bpp from a result csv; raises with the file name on any problem."""
    path = Path(csv_path)
    if not path.is_file():
        raise FileNotFoundError(f"result csv not found: {path}")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        for col in (RATE_COLUMN, metric):
            if col not in columns:
                raise ValueError(f"{path}: no column {col!r}; columns are {columns}")
        rows = list(reader)
    if "video" in columns:
        rows = [r for r in rows if r["video"] == OVERALL]
    rates, values = [], []
    for i, row in enumerate(rows):
        try:
            rate, value = float(row[RATE_COLUMN]), float(row[metric])
        except (TypeError, ValueError):
            raise ValueError(f"{path}: RD row {i} has non-numeric {RATE_COLUMN}/{metric}: {row}") from None
        if not (math.isfinite(rate) and math.isfinite(value)):
            raise ValueError(f"{path}: RD row {i} has a missing or non-finite {RATE_COLUMN}/{metric}: {row}")
        rates.append(rate)
        values.append(value)
    if not rates:
        raise ValueError(f"{path}: no RD points (rows{' with video=' + OVERALL if 'video' in columns else ''})")
    order = np.argsort(rates, kind="stable")
    return np.asarray(rates)[order], np.asarray(values)[order]
