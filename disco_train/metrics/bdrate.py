"""Bjøntegaard-delta rate (BD-rate) on top of the ``bjontegaard`` package (FAU-LMS, BSD-3).

BD-rate is the average horizontal gap between two RD curves, measured in log-rate and averaged over the
quality interval where both curves are defined:

    BD-rate = (10 ** mean_{q in overlap}[log10 R_test(q) - log10 R_anchor(q)] - 1) * 100 %

Negative values mean the test codec needs less rate than the anchor for the same quality.

Lower-is-better metrics (LPIPS, DISTS, FID, FVD) need no sign trick: the average of a function over an
interval [a, b] does not change when the quality axis is mirrored (q -> -q), so integrating log-rate over
the LPIPS interval gives exactly the same number as integrating it over the -LPIPS interval. All that is
required is that the interpolation abscissa (quality) is strictly increasing, which we guarantee by sorting
the points by quality before calling the library. ``lower_is_better`` is therefore only used to check that
each curve is monotone in the physically expected direction (more rate => better quality); a curve that is
not would make "rate as a function of quality" ambiguous and the BD-rate meaningless.

A BD-rate over a small part of the two quality ranges extrapolates a whole comparison from a corner of it, so a
result whose ranges overlap less than ``min_overlap`` (bjontegaard's measure: their intersection over their joint
span; default 0.75) is refused like any other that cannot be computed: every refusal is a ``BDRateError`` whose
``status`` names the reason (too_few_points, not_monotonic, repeated_quality, zero_rate, invalid, no_overlap,
low_overlap) for tables that record it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

# Akima is the default because Herglotz et al. ("Beyond Bjontegaard", ICIP 2022; "The Bjøntegaard Bible",
# arXiv 2304.12852) found it the most accurate and stable of the three interpolators on measured RD data,
# and the bjontegaard package README recommends it. Use interpolation="pchip" to reproduce the
# JCT-VC/JVET CTC Excel sheets (identical to >= 10 decimals per the package README), "cubic" for VCEG-M33.
DEFAULT_INTERPOLATION = "akima"
INTERPOLATIONS = ("akima", "pchip", "cubic")


class BDRateError(ValueError):
    """Why a BD-rate is not computed: ``status`` (a word for tables) and ``curve`` ('anchor', 'test' or '')."""

    def __init__(self, message: str, status: str, curve: str = "") -> None:
        super().__init__(message)
        self.status, self.curve = status, curve


def curve_overlap(quality_a: Sequence[float], quality_b: Sequence[float]) -> float:
    """bjontegaard's overlap of two quality ranges: their intersection over their joint span (0 when disjoint)."""
    a, b = np.asarray(quality_a, dtype=np.float64), np.asarray(quality_b, dtype=np.float64)
    low, high = max(a.min(), b.min()), min(a.max(), b.max())
    span = max(a.max(), b.max()) - min(a.min(), b.min())
    return float(max(high - low, 0.0) / span) if span > 0 else 0.0


def _as_curve(name: str, rate: Sequence[float], quality: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Validate one RD curve and return it as float arrays sorted by rate."""
    r = np.asarray(rate, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64)
    if r.ndim != 1 or q.ndim != 1:
        raise BDRateError(f"{name}: rate and quality must be 1-D sequences, got shapes {r.shape} and {q.shape}",
                          "invalid", name)
    if r.shape != q.shape:
        raise BDRateError(f"{name}: {r.size} rate values but {q.size} quality values", "invalid", name)
    if r.size < 2:
        raise BDRateError(f"{name}: BD-rate needs at least 2 RD points, got {r.size}", "too_few_points", name)
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(q))):
        raise BDRateError(f"{name}: rate and quality must be finite, got rate={r.tolist()} quality={q.tolist()}",
                          "invalid", name)
    if np.any(r <= 0):
        raise BDRateError(f"{name}: rates must be > 0 (they are log10-scaled), got {r.tolist()}", "zero_rate", name)
    order = np.argsort(r, kind="stable")
    return r[order], q[order]


def _check_monotone(name: str, r: np.ndarray, q: np.ndarray, lower_is_better: bool) -> None:
    """Raise unless quality strictly improves with rate (points already sorted by rate)."""
    dq = np.diff(q)
    ok = np.all(dq < 0) if lower_is_better else np.all(dq > 0)
    if not ok or np.any(np.diff(r) == 0):
        direction = "decrease" if lower_is_better else "increase"
        raise BDRateError(
            f"{name}: quality must strictly {direction} as rate increases "
            f"(lower_is_better={lower_is_better}); got rate={r.tolist()} quality={q.tolist()}. "
            "Drop the non-monotone point(s), or pass check_monotonic=false (bdrate command) / check_monotonic=False "
            "(bd_rate) if you accept the result.", "not_monotonic", name)


def bd_rate(
    rate_anchor: Sequence[float],
    quality_anchor: Sequence[float],
    rate_test: Sequence[float],
    quality_test: Sequence[float],
    *,
    interpolation: str = DEFAULT_INTERPOLATION,
    lower_is_better: bool = False,
    check_monotonic: bool = True,
    min_overlap: float = 0.75,
) -> float:
    """BD-rate in percent of the test curve against the anchor curve.

    Points may be given in any order and the two curves may have different numbers of points.
    Raises ``BDRateError`` when it cannot be computed, including quality ranges that do not overlap or overlap
    less than ``min_overlap`` of their joint span (0 accepts any overlap).
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    import bjontegaard  # imported lazily: it pulls in matplotlib.pyplot at import time

    curves = []
    for name, r, q in (("anchor", rate_anchor, quality_anchor), ("test", rate_test, quality_test)):
        r, q = _as_curve(name, r, q)
        if check_monotonic:
            _check_monotone(name, r, q, lower_is_better)
        if np.unique(q).size != q.size:
            raise BDRateError(f"{name}: duplicate quality values {q.tolist()}; interpolation needs distinct ones",
                              "repeated_quality", name)
        order = np.argsort(q)  # the library integrates log-rate over quality, which must be increasing
        curves.append((r[order], q[order]))
    (ra, qa), (rt, qt) = curves
    share = curve_overlap(qa, qt)
    if share == 0:
        raise BDRateError(f"the quality ranges do not overlap (anchor {qa.min():g}..{qa.max():g}, "
                          f"test {qt.min():g}..{qt.max():g})", "no_overlap")
    if share < min_overlap:
        raise BDRateError(f"the quality ranges overlap {share:.0%} of their joint span, under min_overlap="
                          f"{min_overlap:g}; pass a lower min_overlap to compute it anyway", "low_overlap")
    value = bjontegaard.bd_rate(
        ra, qa, rt, qt, method=interpolation, require_matching_points=False, min_overlap=min_overlap
    )
    return float(value)
