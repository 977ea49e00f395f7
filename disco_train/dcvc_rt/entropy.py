"""Entropy-model math of DCVC-RT: factorized z prior, Gaussian y scale table, masks, skip rule.

Everything here is deterministic tensor math shared by encoder and decoder. The coder's integer
tables are built in `tables.py` and the arithmetic coders live in `coding.py` / `rans_official.py`;
this module only decides *what* is coded and with which model index, exactly as the official `entropy_models.py` / `common_model.py` /
`cuda_inference.py` (pure-PyTorch branch) do.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

# Gaussian scale table: 128 log-spaced std levels over [0.11, 16] (official GaussianEncoder).
SCALE_MIN = 0.11
SCALE_MAX = 16.0
SCALE_LEVELS = 128
LOG_SCALE_MIN = math.log(SCALE_MIN)
# step = (ln 16 - ln 0.11) / 127 = 0.039225...; index = trunc((ln s - ln 0.11) / step)
LOG_SCALE_STEP = (math.log(SCALE_MAX) - LOG_SCALE_MIN) / (SCALE_LEVELS - 1)
LOG_STEP_RECIP = 1.0 / LOG_SCALE_STEP
# y symbols whose predicted scale is <= this are forced to 0 and not written (README: 0.12).
FORCE_ZERO_THRES = 0.12
# Symbols (y residuals and z) are clamped to int8.
SYMBOL_MIN, SYMBOL_MAX = -128, 127


def scale_table() -> torch.Tensor:
    """The 128 table stds in float64: exp(linspace(ln 0.11, ln 16, 128))."""
    return torch.exp(torch.linspace(LOG_SCALE_MIN, math.log(SCALE_MAX), SCALE_LEVELS, dtype=torch.float64))


class Bitparm(nn.Module):
    """One layer of the factorized CDF MLP, with a parameter row per QP."""

    def __init__(self, qp_num: int, channel: int, final: bool = False):
        super().__init__()
        self.final = final
        self.h = nn.Parameter(torch.empty(qp_num, channel, 1, 1).normal_(0, 0.01))
        self.b = nn.Parameter(torch.empty(qp_num, channel, 1, 1).normal_(0, 0.01))
        self.a = None if final else nn.Parameter(torch.empty(qp_num, channel, 1, 1).normal_(0, 0.01))

    def forward(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        h = torch.index_select(self.h, 0, index)
        b = torch.index_select(self.b, 0, index)
        x = x * F.softplus(h) + b
        if self.final:
            return x
        a = torch.index_select(self.a, 0, index)
        return x + torch.tanh(x) * torch.tanh(a)


class BitEstimator(nn.Module):
    """Factorized per-(qp, channel) CDF for z (Balle et al. 2018 style)."""

    def __init__(self, qp_num: int, channel: int):
        super().__init__()
        self.f1 = Bitparm(qp_num, channel)
        self.f2 = Bitparm(qp_num, channel)
        self.f3 = Bitparm(qp_num, channel)
        self.f4 = Bitparm(qp_num, channel, True)
        self.qp_num = qp_num
        self.channel = channel

    def get_cdf(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        for f in (self.f1, self.f2, self.f3, self.f4):
            x = f(x, index)
        return torch.sigmoid(x)

    def likelihood(self, z_hat: torch.Tensor, qp: int) -> torch.Tensor:
        """P(z_hat) = cdf(z_hat + 0.5) - cdf(z_hat - 0.5) with the bank row of `qp`."""
        index = torch.tensor([qp], dtype=torch.long, device=z_hat.device)
        return self.get_cdf(z_hat + 0.5, index) - self.get_cdf(z_hat - 0.5, index)


def round_and_clamp(x: torch.Tensor) -> torch.Tensor:
    """clamp(round(x), -128, 127): round-half-even, then int8 range (official round_and_to_int8)."""
    return torch.clamp(torch.round(x), float(SYMBOL_MIN), float(SYMBOL_MAX))


def scale_indexes(scales: torch.Tensor) -> torch.Tensor:
    """uint8 table index: trunc((ln clamp(s, 0.11, 16) - ln 0.11) * 127 / (ln 16 - ln 0.11))."""
    s = scales.clamp(SCALE_MIN, SCALE_MAX)
    return ((torch.log(s) - LOG_SCALE_MIN) * LOG_STEP_RECIP).to(torch.uint8)


def quantize_with_mask(y, scales, means, mask, thres=FORCE_ZERO_THRES):
    """Official `process_with_mask` (torch branch): the masked int symbols of one coding step.

    Returns y_q (zero off-mask and where the masked scale <= thres) and the masked scales.
    """
    scales_hat = scales * mask
    y_res = (y - means * mask) * mask
    y_q = torch.round(y_res)
    if thres is not None:
        y_q = y_q * (scales_hat > thres)
    return torch.clamp(y_q, float(SYMBOL_MIN), float(SYMBOL_MAX)), scales_hat


def _one_mask(micro, height, width, dtype, device):
    m = torch.tensor(micro, dtype=dtype, device=device)
    return m.repeat((height + 1) // 2, (width + 1) // 2)[:height, :width][None, None]


def masks_4x(channel, height, width, dtype, device):
    """Four intra masks: each 64-channel group codes one 2x2 position per step, rotated per group."""
    ones = torch.ones((1, channel // 4, height, width), dtype=dtype, device=device)
    m = [_one_mask(p, height, width, dtype, device) for p in
         (((1, 0), (0, 0)), ((0, 1), (0, 0)), ((0, 0), (1, 0)), ((0, 0), (0, 1)))]
    order = ((0, 1, 2, 3), (3, 2, 1, 0), (2, 3, 0, 1), (1, 0, 3, 2))
    return [torch.cat([ones * m[i] for i in o], dim=1) for o in order]


def masks_2x(channel, height, width, dtype, device):
    """Two inter masks: checkerboard on the first channel half, its complement on the second."""
    ones = torch.ones((1, channel // 2, height, width), dtype=dtype, device=device)
    m0 = _one_mask(((1, 0), (0, 1)), height, width, dtype, device)
    m1 = _one_mask(((0, 1), (1, 0)), height, width, dtype, device)
    return [torch.cat((ones * m0, ones * m1), dim=1), torch.cat((ones * m1, ones * m0), dim=1)]


def fold(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Sum the channel groups into one dense map (each position is active in exactly one group)."""
    if groups == 4:
        x0, x1, x2, x3 = x.chunk(4, 1)
        return (x0 + x1) + (x2 + x3)
    x0, x1 = x.chunk(2, 1)
    return x0 + x1


def unfold(x: torch.Tensor, mask: torch.Tensor, groups: int) -> torch.Tensor:
    """Inverse of `fold` for a masked map: repeat over the groups and keep the masked positions."""
    return torch.cat((x,) * groups, dim=1) * mask
