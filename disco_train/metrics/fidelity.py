"""Pixel-fidelity metrics (PSNR, SSIM) on uint8 RGB videos, via scikit-image.

Both are computed per frame on the full RGB frame and then averaged over the frames of a video, which is
how per-sequence numbers are usually reported: a video's PSNR is the mean of its frames' dB values, not the PSNR
of the MSE pooled over the video (torchmetrics' default reduction over a batch; higher when frames differ in
quality). Note that video-coding papers sometimes report Y-only PSNR; these are RGB numbers.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

# A frame identical to its reference has infinite PSNR, which would make the video average infinite too.
# Capping at 100 dB (MSE ~ 6.5e-6 on 8-bit data, i.e. far below one code value) keeps averages finite while
# leaving every realistic value untouched.
PSNR_CAP_DB = 100.0


def check_video_pair(ref: np.ndarray, rec: np.ndarray) -> None:
    """Raise ValueError unless both are uint8 RGB videos of identical shape (T, H, W, 3)."""
    for name, v in (("reference", ref), ("reconstruction", rec)):
        if not isinstance(v, np.ndarray) or v.dtype != np.uint8:
            raise ValueError(f"{name} video must be a uint8 numpy array, got {type(v).__name__} "
                             f"{getattr(v, 'dtype', '')}")
        if v.ndim != 4 or v.shape[-1] != 3:
            raise ValueError(f"{name} video must have shape (T, H, W, 3), got {v.shape}")
        if v.shape[0] == 0:
            raise ValueError(f"{name} video has no frames")
    if ref.shape != rec.shape:
        raise ValueError(f"reference and reconstruction shapes differ: {ref.shape} vs {rec.shape}")


def psnr_frames(ref: np.ndarray, rec: np.ndarray) -> np.ndarray:
    """Per-frame RGB PSNR in dB (peak 255), capped at PSNR_CAP_DB; shape (T,)."""
    check_video_pair(ref, rec)
    out = np.empty(ref.shape[0], dtype=np.float64)
    for t in range(ref.shape[0]):
        if np.array_equal(ref[t], rec[t]):
            out[t] = PSNR_CAP_DB
        else:
            out[t] = min(PSNR_CAP_DB, peak_signal_noise_ratio(ref[t], rec[t], data_range=255))
    return out


def ssim_frames(ref: np.ndarray, rec: np.ndarray) -> np.ndarray:
    """Per-frame RGB SSIM (mean over channels); shape (T,).

    Uses the settings of Wang et al. 2004 (11x11 Gaussian window, sigma 1.5, population covariance), which is
    also what torchmetrics and pytorch_msssim implement, instead of scikit-image's 7x7 uniform default. A
    channel's SSIM is the mean of its map without the 5-pixel border (where the window leaves the frame), as in
    pytorch_msssim; torchmetrics (1.9) averages the whole map, border windows reflect-padded (the maps agree
    inside; 3e-5 higher on noisy 48x64 frames, less on larger ones).
    """
    check_video_pair(ref, rec)
    if min(ref.shape[1:3]) < 11:
        raise ValueError(f"SSIM needs frames of at least 11x11 pixels (Gaussian window), got {ref.shape[1:3]}")
    return np.array([
        structural_similarity(ref[t], rec[t], data_range=255, channel_axis=-1,
                              gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
        for t in range(ref.shape[0])
    ], dtype=np.float64)


def psnr_video(ref: np.ndarray, rec: np.ndarray) -> float:
    """Mean over frames of the per-frame RGB PSNR (dB)."""
    return float(psnr_frames(ref, rec).mean())


def ssim_video(ref: np.ndarray, rec: np.ndarray) -> float:
    """Mean over frames of the per-frame RGB SSIM."""
    return float(ssim_frames(ref, rec).mean())
