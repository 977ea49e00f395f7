"""Differentiable training forward passes of DMCI (I-frame) and DMC (P-frame), with per-sample QPs.

They reuse the inference sub-networks and the multi-step priors (`prior_4x`, `prior_2x`) unchanged; only the
*step source* differs (`TrainSteps`, the training twin of `prior.QuantizeSteps`), following DCVC-UF (rd.py):
- reconstruction path: symbols = clamp(STE-round(y - mean), -128, 127), zeroed where the coder skips them
  (predicted scale <= 0.12), exactly the symbols the encoder writes, so the training reconstruction is the
  decoder's reconstruction;
- rate path: bits of the residual plus U(-0.5, 0.5) noise (`noise=True`), or of the actual symbols
  (`noise=False`: the bits the range coder will spend, up to its table quantisation and word padding);
  skipped positions cost 0 bits, as in the real stream. z is STE-rounded for the prior, noisy for its rate.
- QPs are LongTensors (B,): banks are indexed per sample, so one batch mixes QPs (a random QP per sample).
"""

import torch
import torch.nn.functional as F

from . import rd
from .entropy import FORCE_ZERO_THRES, SYMBOL_MAX, SYMBOL_MIN
from .inter import DMC, INDEX_MAP, QP_SHIFT
from .intra import DMCI
from .padding import pad_for_y, pad_frame
from .prior import prior_2x


def _round_symbols(x: torch.Tensor) -> torch.Tensor:
    """STE round then clamp to the int8 symbol range (clamp passes no gradient outside it)."""
    return torch.clamp(rd.ste_round(x), float(SYMBOL_MIN), float(SYMBOL_MAX))


def ste_clamp01(x: torch.Tensor) -> torch.Tensor:
    """clamp(x, 0, 1) forward (what the decoder outputs), identity gradient: a plain clamp would stop all
    gradient at pixels outside [0, 1], which stalls a randomly initialised decoder whose output starts there."""
    return x + (x.clamp(0.0, 1.0) - x).detach()


def _per_sample_sum(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1).sum(1)


class TrainSteps:
    """Step source for prior_4x / prior_2x in training; accumulates per-sample y bits in `bits` (B,)."""

    def __init__(self, noise: bool = True, thres: float = FORCE_ZERO_THRES, generator=None):
        self.noise, self.thres, self.generator = noise, thres, generator
        self.y = None
        self.bits = None

    def set_latent(self, y_scaled: torch.Tensor):
        self.y = y_scaled

    def __call__(self, k, scales, means, mask):
        # The coder writes a position when it is in this step's mask and its scale exceeds the threshold
        # (coding._coded_positions: clamp(s, 0.11, 16) > 0.12 is s > 0.12, since 0.12 > 0.11).
        keep = mask * (scales * mask > self.thres).to(mask.dtype)
        residual = self.y - means
        y_q = _round_symbols(residual) * keep
        rate_input = rd.add_uniform_noise(residual, self.generator) if self.noise else y_q
        bits = rd.likelihood_to_bits(rd.gaussian_likelihood(rate_input, scales)) * keep
        step_bits = _per_sample_sum(bits)
        self.bits = step_bits if self.bits is None else self.bits + step_bits
        return y_q


def z_bits(bit_estimator, z: torch.Tensor, qp: torch.Tensor, noise: bool, generator=None):
    """Per-sample bits of the hyper-latent under the factorized prior rows `qp` (B,)."""
    z_rate = rd.add_uniform_noise(z, generator) if noise else torch.clamp(torch.round(z), SYMBOL_MIN, SYMBOL_MAX)
    p = bit_estimator.get_cdf(z_rate + 0.5, qp) - bit_estimator.get_cdf(z_rate - 0.5, qp)
    return _per_sample_sum(rd.likelihood_to_bits(p))


def _check_qp(qp: torch.Tensor, batch: int, limit: int, what: str):
    if qp.dtype != torch.long or qp.shape != (batch,):
        raise ValueError(f"{what} qp must be a LongTensor of shape ({batch},), got {qp.dtype} {tuple(qp.shape)}")
    if bool(((qp < 0) | (qp >= limit)).any()):
        raise ValueError(f"{what} qp must be in 0..{limit - 1}, got {qp.tolist()}")


def intra_forward(model: DMCI, x: torch.Tensor, qp: torch.Tensor, noise: bool = True, generator=None) -> dict:
    """Code a batch of YCbCr frames (B,3,H,W) in [0,1] with DMCI. Returns x_hat (B,3,H,W; the decoder's
    [0,1]-clamped output, with a straight-through gradient), bits_y and bits_z (B,)."""
    _check_qp(qp, x.shape[0], model.q_scale_enc.shape[0], "intra")
    height, width = x.shape[-2:]
    y = model.enc(pad_frame(x), model.q_scale_enc[qp])
    z = model.hyper_enc(pad_for_y(y))
    bits_z = z_bits(model.bit_estimator_z, z, qp, noise, generator)
    params = model.prior_params(_round_symbols(z), y.shape[-2:])
    source = TrainSteps(noise, generator=generator)
    y_hat = model.code_latent(params, source, y=y)
    x_hat = model.dec(y_hat, model.q_scale_dec[qp])[..., :height, :width]
    return {"x_hat": ste_clamp01(x_hat), "bits_y": source.bits, "bits_z": bits_z}


def frame_qp(qp_base: torch.Tensor, poc: int) -> torch.Tensor:
    """P-frame QP rows: base + [0,8,0,4,0,4,0,4][poc % 8] (DMC.frame_qp, per sample)."""
    return qp_base + QP_SHIFT[INDEX_MAP[poc % 8]]


def _recon(net, feature: torch.Tensor, quant: torch.Tensor) -> torch.Tensor:
    """ReconGeneration.forward with the final clamp made straight-through (same forward values)."""
    out = net.head(net.conv(feature) * quant)
    return ste_clamp01(F.pixel_shuffle(out, 8))


def inter_forward(model: DMC, x: torch.Tensor, qp: torch.Tensor, noise: bool = True, generator=None) -> dict:
    """Code one P-frame batch (B,3,H,W) against the model's reference buffer, per-sample frame QPs `qp` (B,).

    Stores (feature, x_hat) as the next reference, like DMC.compress; the caller detaches them for
    non-cascaded training. Returns x_hat, feature, bits_y, bits_z.
    """
    _check_qp(qp, x.shape[0], model.q_encoder.shape[0], "inter")
    height, width = x.shape[-2:]
    ctx, ctx_t = model.feature_extractor(model.apply_feature_adaptor(), model.q_feature[qp])
    y = model.encoder(pad_frame(x), ctx, model.q_encoder[qp])
    z = model.hyper_encoder(pad_for_y(y))
    bits_z = z_bits(model.bit_estimator_z, z, qp, noise, generator)
    params = model.res_prior_param_decoder(_round_symbols(z), ctx_t)
    source = TrainSteps(noise, generator=generator)
    y_hat = prior_2x(params, model.y_spatial_prior, source, y=y)
    feature = model.decoder(y_hat, ctx, model.q_decoder[qp])
    x_hat = _recon(model.recon_generation_net, feature, model.q_recon[qp])
    model.add_ref_frame(feature, x_hat)
    return {"x_hat": x_hat[..., :height, :width], "feature": feature, "bits_y": source.bits, "bits_z": bits_z}


def bpp(out: dict, height: int, width: int) -> torch.Tensor:
    """Per-sample bits per pixel of one coded frame: (bits_y + bits_z) / (H * W)."""
    return (out["bits_y"] + out["bits_z"]) / float(height * width)
