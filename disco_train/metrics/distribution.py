"""Distribution metrics: FID (InceptionV3 pool3 features of frames) and FVD (I3D logits of clips).

Both are the Fréchet distance between Gaussians fitted to reference and reconstruction features,
||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 sqrtm(S_r S_g)), computed as in pytorch-fid (float64, scipy sqrtm,
unbiased covariance, a 1e-6 ridge only if the product is singular enough to give a non-finite root).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from scipy import linalg

from .inception import FIDInceptionV3
from .weights import WEIGHT_FILES, load_strict, load_weights


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need a (N >= 2, D) feature matrix, got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance_from_stats(mu1, sigma1, mu2, sigma2, eps: float = 1e-6, sqrt_ridge: float = 0.0) -> float:
    """``sqrt_ridge``: added to both covariances inside the matrix square root only (the traces stay unridged), as
    fvmd 1.0.0 does; 0 = pytorch-fid's computation."""
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"feature dimensions differ: {mu1.shape} vs {mu2.shape}")
    diff = mu1 - mu2
    ridge = np.eye(sigma1.shape[0]) * sqrt_ridge
    covmean = linalg.sqrtm((sigma1 + ridge).dot(sigma2 + ridge))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        # tiny imaginary parts are numerical noise of sqrtm on a nearly singular product
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"sqrtm has a large imaginary component {np.max(np.abs(covmean.imag)):.3g}")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between two (N, D) feature sets (N may differ between the two)."""
    return frechet_distance_from_stats(*gaussian_stats(features_a), *gaussian_stats(features_b))


def load_fid_inception(weights_dir: str | Path) -> FIDInceptionV3:
    model = FIDInceptionV3()
    load_strict(model, load_weights("inception", weights_dir),
                str(Path(weights_dir) / WEIGHT_FILES["inception"].relpath))
    return model


class FIDFeatures:
    """uint8 frames (T, H, W, 3) -> (T, 2048) float64 InceptionV3 pool3 features."""

    def __init__(self, model: torch.nn.Module, device: str = "cpu", batch_size: int = 8) -> None:
        self.model, self.device, self.batch_size = model.to(device), torch.device(device), batch_size

    @classmethod
    def from_weights(cls, weights_dir: str | Path, device: str = "cpu", batch_size: int = 8) -> "FIDFeatures":
        return cls(load_fid_inception(weights_dir), device, batch_size)

    @torch.inference_mode()
    def __call__(self, frames: np.ndarray) -> np.ndarray:
        out = []
        for i in range(0, frames.shape[0], self.batch_size):
            x = torch.from_numpy(np.ascontiguousarray(frames[i:i + self.batch_size])).to(self.device)
            out.append(self.model(x.permute(0, 3, 1, 2).float() / 255.0).double().cpu())
        return torch.cat(out).numpy()


class FVDFeatures:
    """uint8 clips (B, T, H, W, 3) -> (B, 400) I3D logits (see i3d.py for the preprocessing)."""

    def __init__(self, model: torch.nn.Module, device: str = "cpu") -> None:
        self.model, self.device = model.to(device), torch.device(device)

    @classmethod
    def from_weights(cls, weights_dir: str | Path, device: str = "cpu") -> "FVDFeatures":
        from .i3d import load_i3d

        return cls(load_i3d(weights_dir), device)

    @torch.inference_mode()
    def __call__(self, clips: np.ndarray) -> np.ndarray:
        from .i3d import preprocess_clips

        x = preprocess_clips(torch.from_numpy(np.ascontiguousarray(clips)).to(self.device))
        return self.model(x).double().cpu().numpy()
