"""Training-time rate-distortion math for DCVC-RT, as pure functions.

DCVC-RT released no training code; these follow the official successor DCVC-UF (`train_*.py`,
`loss_func`, `get_prob_train`, `probs_to_bits`, `get_training_lambdas`, `mse_weighted_average`):
- reconstruction path: straight-through rounding (forward = round, gradient = identity);
- rate path: additive uniform noise U(-0.5, 0.5) on the residual y - mean and on z;
- bits = -log2(max(p, 1e-6)), bounded below by 0; bpp = (sum bits_y + sum bits_z) / (H * W);
- loss = mean over the batch of lambda * D + bpp, lambda log-interpolated over QP 0..63
  (image 10 -> 2048, video 1 -> 768), depending on the base QP only (not on the
  per-frame QP offset);
- D = 0.8 * D_YUV + 0.2 * D_RGB, D_YUV = 3 * exp((10 ln mse_Y + ln mse_U + ln mse_V) / 12)
  (a weighted geometric mean, scaled so that equal per-plane MSEs m give 3 m), D_RGB = MSE after
  an unclamped BT.709 YCbCr -> RGB conversion.
"""

import math

import torch

from .color import ycbcr_to_rgb
from .entropy import SCALE_MIN

LAMBDA_RANGE = {"image": (10.0, 2048.0), "video": (1.0, 768.0)}
QP_MAX = 63
PROB_FLOOR = 1e-6
LIKELIHOOD_FLOOR = 1e-9
# DCVC-UF per-P-frame distortion weights by fa_idx (index_map [0,1,0,2,0,2,0,2] over poc % 8).
P_FRAME_WEIGHTS = (0.52, 1.33, 0.83)
_INDEX_MAP = (0, 1, 0, 2, 0, 2, 0, 2)


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """round(x) in the forward pass, identity gradient in the backward pass."""
    return x + (torch.round(x) - x).detach()


def add_uniform_noise(x: torch.Tensor, generator: torch.Generator = None) -> torch.Tensor:
    """x + U(-0.5, 0.5): the differentiable proxy of rounding used for the rate."""
    noise = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device) - 0.5
    return x + noise


def gaussian_likelihood(v: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Mass of N(0, s) on [v - 0.5, v + 0.5], s lower-bounded at 0.11 (the coder's table minimum).

    Written with upper tails Q(t) = erfc(t / sqrt 2) / 2 on |v|: P = Q((|v|-0.5)/s) - Q((|v|+0.5)/s),
    which does not cancel catastrophically far in the tail (v = 20, s = 1 still gives ~1e-86).
    """
    s = torch.clamp(scales, min=SCALE_MIN) * math.sqrt(2.0)
    a = torch.abs(v)
    p = 0.5 * (torch.erfc((a - 0.5) / s) - torch.erfc((a + 0.5) / s))
    return torch.clamp(p, min=LIKELIHOOD_FLOOR)


def likelihood_to_bits(p: torch.Tensor) -> torch.Tensor:
    """-log2(max(p, 1e-6)), bounded below by 0 (1e-6 caps one symbol at ~19.93 bits)."""
    return torch.clamp(-torch.log2(torch.clamp(p, min=PROB_FLOOR)), min=0.0)


def y_bits(y: torch.Tensor, scales: torch.Tensor, means: torch.Tensor, generator=None) -> torch.Tensor:
    """Per-element bits of a latent under a mean-scale Gaussian, with noisy residuals."""
    return likelihood_to_bits(gaussian_likelihood(add_uniform_noise(y - means, generator), scales))


def z_bits(bit_estimator, z: torch.Tensor, qp: int, generator=None) -> torch.Tensor:
    """Per-element bits of the hyper-latent under the factorized prior row `qp`, noisy z."""
    return likelihood_to_bits(bit_estimator.likelihood(add_uniform_noise(z, generator), qp))


def quantize_residual_ste(y: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """Reconstruction-path latent: round(y - mean) + mean with a straight-through gradient."""
    return ste_round(y - means) + means


def bpp(bits_y: torch.Tensor, bits_z: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Per-sample bits per pixel: (sum bits_y + sum bits_z) / (H * W), shape (B,)."""
    b = bits_y.shape[0]
    return (bits_y.reshape(b, -1).sum(1) + bits_z.reshape(b, -1).sum(1)) / (height * width)


def lambda_for_qp(qp, kind: str = "image") -> torch.Tensor:
    """exp(ln l0 + qp / 63 * (ln l1 - ln l0)): image 10 -> 2048, video 1 -> 768 over QP 0..63."""
    if kind not in LAMBDA_RANGE:
        raise ValueError(f"kind must be one of {sorted(LAMBDA_RANGE)}, got {kind!r}")
    l0, l1 = LAMBDA_RANGE[kind]
    qp = torch.as_tensor(qp, dtype=torch.float64)
    if bool(((qp < 0) | (qp > QP_MAX)).any()):
        raise ValueError(f"lambda is defined for base QP 0..{QP_MAX}, got {qp.tolist()}")
    return torch.exp(math.log(l0) + qp / QP_MAX * (math.log(l1) - math.log(l0)))


def p_frame_weight(poc: int) -> float:
    """Hierarchical distortion weight of P-frame `poc` (DCVC-UF: 0.52 / 1.33 / 0.83 by fa_idx)."""
    return P_FRAME_WEIGHTS[_INDEX_MAP[poc % 8]]


def distortion(x_hat: torch.Tensor, x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Per-sample D = 0.8 * D_YUV + 0.2 * D_RGB for NCHW YCbCr tensors, shape (B,).

    `eps` keeps ln(mse) finite for a perfect plane (DCVC-UF has no guard; it never sees mse 0).
    """
    mse = ((x_hat - x) ** 2).mean(dim=(2, 3)).clamp_min(eps)  # (B, 3): Y, U, V
    log_mse = torch.log(mse)
    d_yuv = 3.0 * torch.exp((10.0 * log_mse[:, 0] + log_mse[:, 1] + log_mse[:, 2]) / 12.0)
    d_rgb = ((ycbcr_to_rgb(x_hat, clamp=False) - ycbcr_to_rgb(x, clamp=False)) ** 2).mean(dim=(1, 2, 3))
    return 0.8 * d_yuv + 0.2 * d_rgb


def rd_loss(lmbda: torch.Tensor, dist: torch.Tensor, rate_bpp: torch.Tensor,
            weight: torch.Tensor = None) -> torch.Tensor:
    """mean(lambda * w * D + bpp) over the batch (w = 1 unless given, e.g. p_frame_weight)."""
    lmbda = torch.as_tensor(lmbda, dtype=dist.dtype, device=dist.device)
    w = 1.0 if weight is None else torch.as_tensor(weight, dtype=dist.dtype, device=dist.device)
    return (lmbda * w * dist + rate_bpp).mean()
