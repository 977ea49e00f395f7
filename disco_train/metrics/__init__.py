"""Evaluation for DiSCo codecs: fidelity (PSNR, SSIM), perceptual (LPIPS, DISTS), distribution (FID, FVD) and
temporal-consistency (FloLPIPS, FVMD) metrics, BD-rate, the ``evaluate``/``bdrate`` commands and RD-curve plots.

Heavy modules (torch backbones, matplotlib) are imported lazily by the functions that need them. May import
config and codec; never lightning, the decoder, datamodules or train.
"""

from disco_train.config.metrics import ALL_METRICS

from .bdrate import DEFAULT_INTERPOLATION, bd_rate
from .evaluate import bdrate_main, main, plot_main
from .fidelity import psnr_frames, psnr_video, ssim_frames, ssim_video
from .plot import plot_rd
from .results import LOWER_IS_BETTER, read_rd_points
from .suite import MetricSuite

__all__ = [
    "ALL_METRICS",
    "DEFAULT_INTERPOLATION",
    "MetricSuite",
    "bdrate_main",
    "main",
    "plot_main",
    "LOWER_IS_BETTER",
    "bd_rate",
    "plot_rd",
    "psnr_frames",
    "psnr_video",
    "read_rd_points",
    "ssim_frames",
    "ssim_video",
]
