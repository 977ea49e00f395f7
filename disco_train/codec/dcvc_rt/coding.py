"""Arithmetic coding of DCVC-RT symbols with `constriction` (range coder, 32-bit words).

What is coded mirrors the official coder: z with a per-(qp, channel) factorized model, y with one
of 128 Gaussian tables chosen by the uint8 scale index, y positions with scale <= 0.12 skipped.
How it is coded is our own (the official rANS C++ extension is not used), so the bytes differ from
official streams:
- y: `QuantizedGaussian(-128, 127, 0, table_std[index])`, symbols grouped per index so each
  group is coded with one concrete model (at most 128 model switches per step).
- z: `Categorical` over -128..127 built from the bit estimator's CDF, evaluated on CPU in float64.
constriction gives every symbol in range a non-zero probability, so no escape coding is needed.
"""

import functools

import numpy as np
import torch
import constriction

from .entropy import FORCE_ZERO_THRES, SCALE_MAX, SCALE_MIN, SYMBOL_MAX, SYMBOL_MIN, scale_indexes, scale_table


# constriction is a compiled extension whose submodules are attributes, not importable paths.
Categorical = constriction.stream.model.Categorical
QuantizedGaussian = constriction.stream.model.QuantizedGaussian
RangeEncoder = constriction.stream.queue.RangeEncoder
RangeDecoder = constriction.stream.queue.RangeDecoder


class BitstreamError(ValueError):
    """A DCVC-RT bitstream is corrupt, truncated or not a DCVC-RT bitstream."""


@functools.lru_cache(maxsize=1)
def _y_models():
    return tuple(QuantizedGaussian(SYMBOL_MIN, SYMBOL_MAX, 0.0, float(s)) for s in scale_table())


def _coded_positions(s_w: torch.Tensor, thres: float):
    """(flat positions that are written, their scale indexes), in C order of the folded map."""
    s = s_w.reshape(-1)
    keep = s.clamp(SCALE_MIN, SCALE_MAX) > thres
    pos = torch.nonzero(keep).reshape(-1).cpu().numpy()
    idx = scale_indexes(s[keep]).cpu().numpy().astype(np.int64)
    return pos, idx


def _groups(idx: np.ndarray):
    """Stable grouping of positions by scale index: yields (table index, slice of the order)."""
    order = np.argsort(idx, kind="stable")
    values, starts, counts = np.unique(idx[order], return_index=True, return_counts=True)
    for v, a, n in zip(values, starts, counts):
        yield int(v), order[a:a + n]


class SymbolWriter:
    """Collects one frame's symbols (z first, then the y steps) into a word stream."""

    def __init__(self, thres: float = FORCE_ZERO_THRES):
        self.thres = thres
        self.encoder = RangeEncoder()

    def write_z(self, z_hat: torch.Tensor, pmf: np.ndarray):
        C = z_hat.shape[1]
        z = z_hat.reshape(C, -1).cpu().numpy().astype(np.int32) - SYMBOL_MIN  # -128..127 -> 0..255
        for c in range(C):
            self.encoder.encode(z[c], Categorical(pmf[c], perfect=False))

    def write_y(self, y_q_w: torch.Tensor, s_w: torch.Tensor):
        pos, idx = _coded_positions(s_w, self.thres)
        sym = y_q_w.reshape(-1).cpu().numpy()[pos].astype(np.int32)
        models = _y_models()
        for v, sel in _groups(idx):
            self.encoder.encode(sym[sel], models[v])

    def to_bytes(self) -> bytes:
        return self.encoder.get_compressed().astype("<u4").tobytes()


class SymbolReader:
    """Reads what SymbolWriter wrote, in the same order."""

    def __init__(self, payload: bytes, thres: float = FORCE_ZERO_THRES):
        if len(payload) % 4:
            raise BitstreamError(f"frame payload of {len(payload)} bytes is not a whole number of 32-bit words")
        self.thres = thres
        self.decoder = RangeDecoder(np.frombuffer(payload, dtype="<u4").astype(np.uint32))

    def read_z(self, pmf: np.ndarray, shape, device, dtype) -> torch.Tensor:
        _, C, h, w = shape
        z = np.empty((C, h * w), dtype=np.int32)
        for c in range(C):
            z[c] = self.decoder.decode(Categorical(pmf[c], perfect=False), h * w)
        return torch.from_numpy(z + SYMBOL_MIN).reshape(shape).to(device=device, dtype=dtype)

    def read_y(self, s_w: torch.Tensor) -> torch.Tensor:
        pos, idx = _coded_positions(s_w, self.thres)
        sym = np.zeros(s_w.numel(), dtype=np.int32)
        models = _y_models()
        for v, sel in _groups(idx):
            sym[pos[sel]] = self.decoder.decode(models[v], len(sel))
        return torch.from_numpy(sym).reshape(s_w.shape).to(device=s_w.device, dtype=s_w.dtype)
