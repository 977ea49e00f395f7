"""The entropy coder's quantized CDF tables, built exactly as the official `update()` builds them.

Both coders (`coding.py`, our 32-bit-word ANS container, and `rans_official.py`, the official byte
format) code with the same integer tables, so their rates are the same to within a few flush bytes:

- precision 16 bits: every table's frequencies sum to 2^16 = 65536;
- a table covers a small symbol range and ends in one escape entry; a symbol outside the range is
  coded as the escape followed by bypass bits (see `escape_bins`);
- y: 128 Gaussian tables, one per scale level. Table v covers -c..c where c is the smallest i in 2..8
  with Phi(i / s_v) > 0.9999 (8 if none), and its escape entry has the mass 2 Phi(-(c + 0.5) / s_v);
- z: one table per (qp, channel) of the factorized prior, covering -lo..hi where lo (hi) is the
  smallest i in 2..8 with cdf(-i) < 1e-4 (cdf(i) > 0.9999); the escape mass is
  cdf(-lo - 0.5) + 1 - cdf(hi) (the official evaluates the upper tail at hi, not hi + 0.5).

The float work is done in float32 on the CPU with the same torch operations, in the same tensor
shapes, as the official code, so the integer tables come out bit-identical to its tables (element-wise
kernels may round the tail of a tensor differently from its body, hence the same shapes).
"""

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .entropy import SCALE_LEVELS, SCALE_MAX, SCALE_MIN

PRECISION = 16
TOTAL = 1 << PRECISION  # 65536
TAIL_LO, TAIL_HI = 1e-4, 0.9999  # range search thresholds of the official update()
MAX_HALF_RANGE = 8
BYPASS_BITS = 2              # escape payload is sent in 2-bit bins...
BYPASS_MAX = (1 << BYPASS_BITS) - 1  # ...and a bin of 3 means "more count bins follow"


@dataclass(frozen=True)
class CdfTables:
    """cdf: (n, max_len + 2) int32, row i valid up to lengths[i]; offsets[i]: the symbol of entry 0.

    Entry j < lengths[i] - 2 codes symbol offsets[i] + j; entry lengths[i] - 2 is the escape."""
    cdf: np.ndarray
    lengths: np.ndarray
    offsets: np.ndarray

    @property
    def freqs(self) -> np.ndarray:
        """(n, max_len + 1) int64 frequencies; zero past each row's escape entry."""
        f = np.diff(self.cdf.astype(np.int64), axis=1)
        return np.where(np.arange(f.shape[1])[None] < (self.lengths - 1)[:, None], f, 0)


def quantize_pmf(pmf: np.ndarray) -> np.ndarray:
    """One float32 pmf (range + escape) -> its int CDF of len(pmf) + 1 entries summing to 2^16.

    Same integer steps as the official `pmf_to_quantized_cdf`: r_j = round-half-away(p_j * 2^16),
    f_j = floor(2^16 r_j / sum r), cumulative sum, last entry forced to 2^16; then every zero
    frequency steals one count from the smallest frequency > 1 (shifting the CDF in between)."""
    scaled = pmf.astype(np.float32).astype(np.float64) * TOTAL  # exact: p is float32, 2^16 a power of 2
    r = np.maximum(np.floor(scaled + 0.5), 0).astype(np.int64)
    f = (TOTAL * r) // int(r.sum())
    cdf = np.concatenate(([0], np.cumsum(f)))
    cdf[-1] = TOTAL
    if np.all(np.diff(cdf) > 0):
        return cdf
    cdf = [int(v) for v in cdf]
    for i in range(len(cdf) - 1):
        if cdf[i] != cdf[i + 1]:
            continue
        freqs = [cdf[j + 1] - cdf[j] for j in range(len(cdf) - 1)]
        steal = min((fr, j) for j, fr in enumerate(freqs) if fr > 1)[1]  # first of the smallest
        if steal < i:
            for j in range(steal + 1, i + 1):
                cdf[j] -= 1
        else:
            for j in range(i + 1, steal + 1):
                cdf[j] += 1
    return np.asarray(cdf, dtype=np.int64)


def _pack(pmf: torch.Tensor, tail: torch.Tensor, lengths: torch.Tensor, offsets: torch.Tensor) -> CdfTables:
    """Rows of (pmf[:length], tail) -> CdfTables (the official `pmf_to_cdf`)."""
    n, max_len = pmf.shape
    cdf = np.zeros((n, max_len + 2), dtype=np.int32)
    pmf_np, tail_np, len_np = pmf.numpy(), tail.reshape(-1).numpy(), lengths.reshape(-1).numpy()
    for i in range(n):
        row = quantize_pmf(np.append(pmf_np[i, :len_np[i]], tail_np[i]))
        cdf[i, :row.size] = row
    return CdfTables(cdf, (len_np + 2).astype(np.int64), offsets.reshape(-1).numpy().astype(np.int64))


@functools.lru_cache(maxsize=1)
def gaussian_tables() -> CdfTables:
    """The 128 y tables (data independent)."""
    table = torch.exp(torch.linspace(math.log(SCALE_MIN), math.log(SCALE_MAX), SCALE_LEVELS))  # float32
    center = torch.zeros_like(table) + MAX_HALF_RANGE
    normal = torch.distributions.normal.Normal(0., torch.zeros_like(center) + table)
    for i in range(MAX_HALF_RANGE, 1, -1):
        probs = normal.cdf(torch.zeros_like(center) + i)
        center = torch.where(probs > TAIL_HI, torch.zeros_like(center) + i, center)
    center = center.int()
    length = 2 * center + 1
    samples = (torch.arange(int(length.max())) - center[:, None]).float()
    normal = torch.distributions.normal.Normal(0., torch.zeros_like(samples) + table[:, None])
    lower = normal.cdf(samples - 0.5)
    pmf = normal.cdf(samples + 0.5) - lower
    return _pack(pmf, 2 * lower[:, :1], length, -center)


def _factorized_cdf(params, x):
    """The bit estimator's sigmoid(f4(f3(f2(f1(x))))) with all QP rows at once (x: (qp, ch, 1, L))."""
    for name in ("f1", "f2", "f3", "f4"):
        x = x * F.softplus(params[f"{name}.h"]) + params[f"{name}.b"]
        if name != "f4":
            x = x + torch.tanh(x) * torch.tanh(params[f"{name}.a"])
    return torch.sigmoid(x)


@torch.no_grad()
def factorized_tables(bit_estimator) -> CdfTables:
    """The z tables of a BitEstimator, row qp * channels + c; float32 CPU whatever the model's dtype."""
    params = {n: p.detach().to("cpu", torch.float32).clone() for n, p in bit_estimator.named_parameters()}
    broken = [n for n, p in params.items() if not torch.isfinite(p).all()]
    if broken:
        raise ValueError(f"DCVC-RT weights are broken: the z prior's {broken[0]} holds NaN/inf")
    medians = torch.zeros((bit_estimator.qp_num, bit_estimator.channel, 1, 1))
    minima, maxima = medians + MAX_HALF_RANGE, medians + MAX_HALF_RANGE
    for i in range(MAX_HALF_RANGE, 1, -1):
        probs = _factorized_cdf(params, torch.zeros_like(medians) - i)
        minima = torch.where(probs < torch.zeros_like(medians) + TAIL_LO, torch.zeros_like(medians) + i, minima)
    for i in range(MAX_HALF_RANGE, 1, -1):
        probs = _factorized_cdf(params, torch.zeros_like(medians) + i)
        maxima = torch.where(probs > torch.zeros_like(medians) + TAIL_HI, torch.zeros_like(medians) + i, maxima)
    minima, maxima = minima.int(), maxima.int()
    length = maxima + minima + 1
    samples = torch.arange(int(length.max()))[None, None, None, :] + (medians - minima)
    lower = _factorized_cdf(params, samples - 0.5)
    pmf = (_factorized_cdf(params, samples + 0.5) - lower)[:, :, 0, :]
    upper = _factorized_cdf(params, maxima.to(torch.float32))
    tail = lower[:, :, 0, :1] + (1.0 - upper[:, :, 0, -1:])
    return _pack(pmf.reshape(-1, pmf.shape[-1]), tail.reshape(-1, 1), length, -minima)


def escape_bins(raw: np.ndarray):
    """Bypass bins of escaped values, in decoding order, as (count bins per value, payload bins per value).

    raw >= 0 is the folded out-of-range distance (below the range: 2 d - 1; above: 2 d, d >= 0).
    n = number of 2-bit digits of raw (0 for raw = 0); n is sent as floor(n / 3) bins of 3 and one
    bin of n mod 3, then the n digits of raw, least significant first. Each bin costs exactly 2 bits."""
    out_count, out_payload = [], []
    for v in raw.tolist():
        n = 0
        while v >> (BYPASS_BITS * n):
            n += 1
        out_count.append([BYPASS_MAX] * (n // BYPASS_MAX) + [n % BYPASS_MAX])
        out_payload.append([(v >> (BYPASS_BITS * j)) & BYPASS_MAX for j in range(n)])
    return out_count, out_payload


def ideal_bits(t: CdfTables, rows: np.ndarray, entry: np.ndarray, raw: np.ndarray) -> float:
    """-log2 p of the coded entries under the 16-bit tables, plus 2 bits per bypass bin of the escapes:
    the size an ideal arithmetic coder would reach with these tables."""
    freq = t.cdf[rows, entry + 1].astype(np.int64) - t.cdf[rows, entry]
    n = np.zeros(raw.shape, dtype=np.int64)
    for j in range(16):
        n += (raw >> (BYPASS_BITS * j)) > 0
    bins = n // BYPASS_MAX + 1 + n  # count bins, then the digits
    return float(-np.log2(freq / TOTAL).sum()) + BYPASS_BITS * float(bins.sum())


def fold_escapes(symbols: np.ndarray, offsets: np.ndarray, lengths: np.ndarray):
    """(table entry per symbol, escaped mask, raw escape values of the escaped ones)."""
    max_value = lengths - 2
    value = symbols.astype(np.int64) - offsets
    below, above = value < 0, value >= max_value
    raw = np.where(below, -2 * value - 1, 2 * (value - max_value))
    esc = below | above
    return np.where(esc, max_value, value), esc, raw[esc]


def unfold_escapes(raw: np.ndarray, offsets: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Inverse of fold_escapes for escaped symbols: raw (odd: below the range) -> symbol."""
    value = np.where(raw & 1, -(raw >> 1) - 1, (raw >> 1) + (lengths - 2))
    return value + offsets
