"""BD-rate wrapper: agreement with the bjontegaard reference and behaviour on constructed curves."""

import math

import numpy as np
import pytest

from disco_train.metrics.bdrate import BDRateError, bd_rate, curve_overlap

# Example from the bjontegaard package README (libx265 presets); the README gives these values.
RATE_A = [9487.76, 4593.60, 2486.44, 1358.24]
PSNR_A = [40.037, 38.615, 36.845, 34.851]
RATE_T = [9787.80, 4469.00, 2451.52, 1356.24]
PSNR_T = [40.121, 38.651, 36.970, 34.987]


@pytest.mark.parametrize("method,expected", [("akima", -4.4252), ("pchip", -4.4175), ("cubic", -4.4205)])
def test_matches_documented_bjontegaard_example(method, expected):
    assert bd_rate(RATE_A, PSNR_A, RATE_T, PSNR_T, interpolation=method) == pytest.approx(expected, abs=1e-4)


def test_default_is_akima_and_point_order_does_not_matter():
    shuffled = [2, 0, 3, 1]
    value = bd_rate([RATE_A[i] for i in shuffled], [PSNR_A[i] for i in shuffled], RATE_T, PSNR_T)
    assert value == pytest.approx(-4.4252, abs=1e-4)


def test_identical_curves_give_zero():
    assert bd_rate(RATE_A, PSNR_A, RATE_A, PSNR_A) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("method", ["akima", "pchip", "cubic"])
def test_half_rate_gives_minus_50_percent(method):
    half = [r / 2 for r in RATE_A]
    assert bd_rate(RATE_A, PSNR_A, half, PSNR_A, interpolation=method) == pytest.approx(-50.0, abs=1e-9)
    # and the anchor needing double rate is +100 %
    assert bd_rate(half, PSNR_A, RATE_A, PSNR_A, interpolation=method) == pytest.approx(100.0, abs=1e-9)


def test_lower_is_better_metric():
    bpp = np.array([0.002, 0.005, 0.01, 0.02])
    lpips_anchor = np.array([0.45, 0.38, 0.31, 0.25])
    # a codec reaching the same LPIPS at 30 % less rate
    assert bd_rate(bpp, lpips_anchor, 0.7 * bpp, lpips_anchor, lower_is_better=True) == pytest.approx(-30.0)
    # a codec with uniformly better (lower) LPIPS at the same rates must save rate
    better = bd_rate(bpp, lpips_anchor, bpp, lpips_anchor - 0.03, lower_is_better=True, min_overlap=0.7)
    worse = bd_rate(bpp, lpips_anchor, bpp, lpips_anchor + 0.03, lower_is_better=True, min_overlap=0.7)
    assert better < -5 and worse > 5
    # mirroring the quality axis does not change the average log-rate gap: identical to using -LPIPS
    mirrored = bd_rate(bpp, -lpips_anchor, bpp, -(lpips_anchor - 0.03), lower_is_better=False, min_overlap=0.7)
    assert better == pytest.approx(mirrored, rel=1e-12)


def test_wrong_direction_is_rejected_with_clear_message():
    bpp = [0.002, 0.005, 0.01, 0.02]
    lpips = [0.45, 0.38, 0.31, 0.25]
    with pytest.raises(ValueError, match="anchor: quality must strictly increase"):
        bd_rate(bpp, lpips, bpp, lpips)  # LPIPS passed as higher-is-better
    with pytest.raises(ValueError, match="test: quality must strictly decrease"):
        bd_rate(bpp, lpips, bpp, [0.45, 0.30, 0.31, 0.25], lower_is_better=True)
    # opting out of the check still computes a number
    assert math.isfinite(bd_rate(bpp, lpips, bpp, [0.45, 0.30, 0.31, 0.25], lower_is_better=True,
                                 check_monotonic=False))


@pytest.mark.parametrize("kwargs,match", [
    (dict(rate_anchor=[1, 2, 3], quality_anchor=[1, 2]), "anchor: 3 rate values but 2 quality"),
    (dict(rate_anchor=[1], quality_anchor=[1]), "at least 2 RD points"),
    (dict(rate_anchor=[0, 2], quality_anchor=[1, 2]), "rates must be > 0"),
    (dict(rate_anchor=[1, float("nan")], quality_anchor=[1, 2]), "must be finite"),
])
def test_invalid_input(kwargs, match):
    args = dict(rate_anchor=[1, 2], quality_anchor=[1, 2], rate_test=[1, 2], quality_test=[1, 2]) | kwargs
    with pytest.raises(ValueError, match=match):
        bd_rate(**args)


def test_unknown_interpolation():
    with pytest.raises(ValueError, match="interpolation must be one of"):
        bd_rate(RATE_A, PSNR_A, RATE_T, PSNR_T, interpolation="linear")


def test_disjoint_and_low_overlap_curves_are_refused_with_a_status():
    with pytest.raises(BDRateError, match="do not overlap") as err:
        bd_rate([1, 2], [30, 31], [1, 2], [40, 41])
    assert err.value.status == "no_overlap"
    # anchor 30..40, test 36..46: overlap 4 / 16 = 25 % of the joint span
    args = ([1, 2, 4], [30, 35, 40], [1, 2, 4], [36, 41, 46])
    with pytest.raises(BDRateError, match="overlap 25% of their joint span, under min_overlap=0.75") as err:
        bd_rate(*args)
    assert err.value.status == "low_overlap"
    assert curve_overlap(args[1], args[3]) == pytest.approx(0.25)
    assert bd_rate(*args, min_overlap=0.25) < 0 and bd_rate(*args, min_overlap=0) < 0  # asked for: computed
    with pytest.raises(BDRateError) as err:
        bd_rate([1], [30], [1, 2], [30, 31])
    assert (err.value.status, err.value.curve) == ("too_few_points", "anchor")
