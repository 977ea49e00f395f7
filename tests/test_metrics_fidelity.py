"""PSNR/SSIM on uint8 RGB videos: per-frame values, averaging and input validation."""

import numpy as np
import pytest

from disco_train.metrics.fidelity import PSNR_CAP_DB, psnr_frames, psnr_video, ssim_frames, ssim_video


def _video(seed, t=3, h=24, w=20):
    return np.random.default_rng(seed).integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)


def test_psnr_known_value_and_per_frame_average():
    ref = np.full((2, 16, 16, 3), 100, np.uint8)
    rec = ref.copy()
    rec[0] += 1  # MSE 1  -> 20*log10(255) = 48.1308 dB
    rec[1] += 4  # MSE 16  -> 48.1308 - 10*log10(16) = 36.0896 dB
    frames = psnr_frames(ref, rec)
    assert frames == pytest.approx([48.1308, 36.0896], abs=1e-4)
    assert psnr_video(ref, rec) == pytest.approx((48.1308 + 36.0896) / 2, abs=1e-4)


def test_identical_frames_are_capped_not_infinite():
    v = _video(0)
    assert psnr_video(v, v) == PSNR_CAP_DB
    assert ssim_video(v, v) == pytest.approx(1.0)


def test_ssim_degrades_with_noise():
    ref = _video(1, h=32, w=32)
    noise = np.random.default_rng(2).integers(-20, 21, size=ref.shape)
    rec = np.clip(ref.astype(int) + noise, 0, 255).astype(np.uint8)
    s = ssim_frames(ref, rec)
    assert s.shape == (3,) and np.all(s < 0.99) and np.all(s > 0)


@pytest.mark.parametrize("rec,match", [
    (np.zeros((3, 24, 20, 3), np.float32), "uint8"),
    (np.zeros((3, 24, 20), np.uint8), r"\(T, H, W, 3\)"),
    (np.zeros((4, 24, 20, 3), np.uint8), "shapes differ"),
])
def test_invalid_pairs(rec, match):
    with pytest.raises(ValueError, match=match):
        psnr_video(_video(0), rec)


def test_ssim_rejects_frames_smaller_than_window():
    v = _video(0, h=8, w=8)
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim_video(v, v)
