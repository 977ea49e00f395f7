"""Multi-step (auto-regressive over masks) latent coding shared by encoder and decoder.

`prior_4x` (intra, 4 steps) and `prior_2x` (inter, 2 steps) follow the official
`compress_prior_4x` / `compress_prior_2x`. The only thing that differs between encoder and
decoder is where the integer symbols of a step come from, so that is abstracted into a
*step source*: `QuantizeSteps` computes them from the latent (encoder) and `DecodeSteps` reads
them from the entropy decoder. Because the dequantisation that follows is the same code on both
sides, the encoder's y_hat equals the decoder's y_hat bit for bit.
"""

import torch

from .entropy import FORCE_ZERO_THRES, fold, masks_2x, masks_4x, quantize_with_mask, unfold


class QuantizeSteps:
    """Encoder-side step source: symbols = masked clamp(round(y - mean)) with the skip rule.

    `parts` collects (folded symbols, folded scales) per step: exactly what is written.
    """

    def __init__(self, groups: int, thres: float = FORCE_ZERO_THRES):
        self.groups = groups
        self.thres = thres
        self.y = None
        self.parts = []

    def set_latent(self, y_scaled: torch.Tensor):
        self.y = y_scaled

    def __call__(self, k, scales, means, mask):
        y_q, s_hat = quantize_with_mask(self.y, scales, means, mask, self.thres)
        self.parts.append((fold(y_q, self.groups), fold(s_hat, self.groups)))
        return y_q


class DecodeSteps:
    """Decoder-side step source: folded scales -> `read_y(scales)` -> symbols spread back over the mask."""

    def __init__(self, groups: int, read_y):
        self.groups = groups
        self.read_y = read_y  # callable(folded scales (1,C/g,h,w)) -> folded symbols, same shape

    def __call__(self, k, scales, means, mask):
        y_q_w = self.read_y(fold(scales * mask, self.groups))
        return unfold(y_q_w, mask, self.groups)


def _record(trace, **tensors):
    if trace is not None:
        trace.update(tensors)


def split_intra_params(params):
    """params (514 ch) -> q_enc, q_dec (1-ch maps in [0.5, 2]), scales, means (256 ch each)."""
    q_enc, q_dec = (torch.sigmoid(params[:, :2]) * 1.5 + 0.5).chunk(2, 1)
    scales, means = params[:, 2:].chunk(2, 1)
    return q_enc, q_dec, scales, means


def prior_4x(params, reduction, adaptors, spatial_prior, source, y=None, trace=None):
    """Intra 4-step coding. `y` (encoder only) is the unscaled latent; returns y_hat.

    y_hat_so_far stays in the q_enc-scaled domain; only the final sum is multiplied by q_dec.
    """
    q_enc, q_dec, scales, means = split_intra_params(params)
    _record(trace, q_enc=q_enc, q_dec=q_dec)
    common = reduction(params)
    _, C, H, W = scales.shape
    masks = masks_4x(C, H, W, params.dtype, params.device)
    if y is not None:
        source.set_latent(y * q_enc)
    y_hat = None
    for k in range(4):
        if k > 0:
            ctx = torch.cat((y_hat, common), dim=1)
            scales, means = spatial_prior(adaptors[k - 1](ctx)).chunk(2, 1)
        _record(trace, **{f"scales_{k}": scales, f"means_{k}": means})
        y_q = source(k, scales, means, masks[k])
        step = (y_q + means) * masks[k]
        y_hat = step if y_hat is None else y_hat + step
    return y_hat * q_dec


def prior_2x(params, spatial_prior, source, y=None, trace=None):
    """Inter 2-step coding with a learned per-element quantisation step (>= 0.5)."""
    quant_step, scales, means = params.chunk(3, 1)
    quant_step = torch.clamp_min(quant_step, 0.5)
    _record(trace, quant_step=quant_step)
    _, C, H, W = scales.shape
    masks = masks_2x(C, H, W, params.dtype, params.device)
    if y is not None:
        source.set_latent(y * torch.reciprocal(quant_step))
    _record(trace, scales_0=scales, means_0=means)
    y_q = source(0, scales, means, masks[0])
    y_hat_0 = (y_q + means) * masks[0]
    scales, means = spatial_prior(torch.cat((y_hat_0, params), dim=1)).chunk(2, 1)
    _record(trace, scales_1=scales, means_1=means)
    y_q = source(1, scales, means, masks[1])
    y_hat_1 = (y_q + means) * masks[1]
    return (y_hat_0 + y_hat_1) * quant_step
