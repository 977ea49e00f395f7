"""Arithmetic coding of DCVC-RT symbols with `constriction` (range coder, 32-bit words).

What is coded, and with which probabilities, is the official coder's: z with one table per
(qp, channel) of the factorized prior, y with one of 128 Gaussian tables chosen by the uint8 scale
index, y positions with scale <= 0.12 skipped; every table is the official 16-bit quantized CDF
(`tables.py`) and an out-of-range symbol is the escape entry followed by the official bypass bins,
2 bits each. So the information is the official stream's to the bit; only the arithmetic coder
differs (constriction's range coder instead of the official byte-wise rANS), which adds a few bytes
per frame (its final words, and 32-bit word alignment). `rans_official.py` writes the official bytes.

The model family is constriction's `Categorical` with one probability row per symbol (the table's
frequencies / 2^16), so a whole step is one call into the coder. constriction re-quantizes each row
to its 24-bit precision: a 16-bit frequency f becomes ~256 f, a rate change of < 1e-4 bit/symbol.
"""

import zlib

import numpy as np
import torch
import constriction

from disco_train.io.errors import DecodeError

from . import tables
from .entropy import FORCE_ZERO_THRES, SCALE_MAX, SCALE_MIN, SYMBOL_MAX, SYMBOL_MIN, scale_indexes

# constriction is a compiled extension whose submodules are attributes, not importable paths.
RangeEncoder = constriction.stream.queue.RangeEncoder
RangeDecoder = constriction.stream.queue.RangeDecoder
_FAMILY = constriction.stream.model.Categorical(perfect=False)  # probabilities given per symbol
_BYPASS = constriction.stream.model.Uniform(1 << tables.BYPASS_BITS)
# An int8 symbol is at most 255 + 8 outside a table, so raw < 2 * 263 + 1 = 527 < 4^5: 5 digits.
# A decoder that reads more than this is reading a corrupt stream.
MAX_BYPASS_DIGITS = 5


MISMATCH = ("the stream was encoded with other weights, device, dtype or thread count than this decoder "
            "runs, or it is corrupt")


class BitstreamError(DecodeError):
    """A DCVC-RT bitstream is corrupt, truncated or not a DCVC-RT bitstream."""


def coded_positions(s_w: torch.Tensor, thres: float = FORCE_ZERO_THRES):
    """(flat positions that are written, their table indexes), in C order of the folded map."""
    s = s_w.reshape(-1)
    keep = s.clamp(SCALE_MIN, SCALE_MAX) > thres
    pos = torch.nonzero(keep).reshape(-1).cpu().numpy()
    idx = scale_indexes(s[keep]).cpu().numpy().astype(np.int64)
    return pos, idx


def model_crc(crc: int, size: int, pos: np.ndarray, idx: np.ndarray) -> int:
    """Fold one step's entropy-model choice (table index per position, 255 where skipped) into a crc32.

    The decoder recomputes it from its own networks: a mismatch means its entropy models differ from
    the encoder's (other weights, device, dtype or thread count) even where the symbols still parse."""
    choice = np.full(size, 255, dtype=np.uint8)
    choice[pos] = idx
    return zlib.crc32(choice.tobytes(), crc)


def z_rows(qp: int, channels: int, per_channel: int) -> np.ndarray:
    """Table row of every z symbol (C order): qp * channels + channel."""
    return qp * channels + np.arange(channels * per_channel, dtype=np.int64) // per_channel


def bypass_digits(raw: np.ndarray) -> np.ndarray:
    """Number of 2-bit digits of each raw value (0 for raw = 0)."""
    n = np.zeros(raw.shape, dtype=np.int64)
    for j in range(MAX_BYPASS_DIGITS + 1):
        n += (raw >> (tables.BYPASS_BITS * j)) > 0
    return n


class CodingTables:
    """A CdfTables plus the per-row float probabilities handed to constriction."""

    def __init__(self, t: tables.CdfTables):
        self.t = t
        self.probs = (t.freqs / tables.TOTAL).astype(np.float32)
        self.escape = t.lengths - 2


class SymbolWriter:
    """Collects one frame's symbols (z first, then the y steps) into a word stream."""

    def __init__(self, y_tables: CodingTables, z_tables: CodingTables, thres: float = FORCE_ZERO_THRES):
        self.y, self.z, self.thres = y_tables, z_tables, thres
        self.encoder = RangeEncoder()
        self.model_crc = 0
        self.ideal_bits = 0.0  # what an ideal coder would need for the same tables (tables.ideal_bits)

    def write_z(self, z_hat: torch.Tensor, qp: int):
        _, C, h, w = z_hat.shape
        self._write(z_hat.reshape(-1).cpu().numpy(), z_rows(qp, C, h * w), self.z)

    def write_y(self, y_q_w: torch.Tensor, s_w: torch.Tensor):
        pos, idx = coded_positions(s_w, self.thres)
        self.model_crc = model_crc(self.model_crc, s_w.numel(), pos, idx)
        self._write(y_q_w.reshape(-1).cpu().numpy()[pos], idx, self.y)

    def _write(self, symbols, rows, ct: CodingTables):
        if not np.isfinite(symbols).all():  # NaN would cast to INT64_MIN and be "coded" as a huge escape
            raise ValueError("DCVC-RT produced non-finite latents: the codec weights are broken (NaN/inf in "
                             "the checkpoint or from its arithmetic); nothing was written")
        entry, escaped, raw = tables.fold_escapes(np.rint(symbols).astype(np.int64), ct.t.offsets[rows],
                                                  ct.t.lengths[rows])
        self.encoder.encode(entry.astype(np.int32), _FAMILY, ct.probs[rows])
        self.ideal_bits += tables.ideal_bits(ct.t, rows, entry, raw)
        if raw.size:
            self._write_bypass(raw)

    def _write_bypass(self, raw):
        """Count bins in rounds (round r: one bin per value still counting), then all digits."""
        n = bypass_digits(raw)
        full = n // tables.BYPASS_MAX
        for r in range(int(full.max()) + 1):
            active = full >= r
            bins = np.where(full[active] > r, tables.BYPASS_MAX, n[active] % tables.BYPASS_MAX)
            self.encoder.encode(bins.astype(np.int32), _BYPASS)
        j = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)  # digit number within its value
        digits = (np.repeat(raw, n) >> (tables.BYPASS_BITS * j)) & tables.BYPASS_MAX
        if digits.size:
            self.encoder.encode(digits.astype(np.int32), _BYPASS)

    def to_bytes(self) -> bytes:
        return self.encoder.get_compressed().astype("<u4").tobytes()


class SymbolReader:
    """Reads what SymbolWriter wrote, in the same order; raises BitstreamError on impossible data."""

    def __init__(self, payload: bytes, y_tables: CodingTables, z_tables: CodingTables,
                 thres: float = FORCE_ZERO_THRES):
        if len(payload) % 4:
            raise BitstreamError(f"frame payload of {len(payload)} bytes is not a whole number of 32-bit words")
        self.y, self.z, self.thres = y_tables, z_tables, thres
        self.decoder = RangeDecoder(np.frombuffer(payload, dtype="<u4").astype(np.uint32))
        self.model_crc = 0

    def read_z(self, qp: int, shape, device, dtype) -> torch.Tensor:
        _, C, h, w = shape
        z = self._read(z_rows(qp, C, h * w), self.z)
        return torch.from_numpy(z).reshape(shape).to(device=device, dtype=dtype)

    def read_y(self, s_w: torch.Tensor) -> torch.Tensor:
        pos, idx = coded_positions(s_w, self.thres)
        self.model_crc = model_crc(self.model_crc, s_w.numel(), pos, idx)
        sym = np.zeros(s_w.numel(), dtype=np.int64)
        sym[pos] = self._read(idx, self.y)
        return torch.from_numpy(sym).reshape(s_w.shape).to(device=s_w.device, dtype=s_w.dtype)

    def _read(self, rows, ct: CodingTables) -> np.ndarray:
        if rows.size == 0:
            return np.zeros(0, dtype=np.int64)
        entry = self.decoder.decode(_FAMILY, ct.probs[rows]).astype(np.int64)
        escape = ct.escape[rows]
        if np.any(entry > escape):
            raise BitstreamError(f"decoded a symbol outside its table: {MISMATCH}")
        sym = entry + ct.t.offsets[rows]
        esc = entry == escape
        if esc.any():
            raw = self._read_bypass(int(esc.sum()))
            sym[esc] = tables.unfold_escapes(raw, ct.t.offsets[rows][esc], ct.t.lengths[rows][esc])
        if sym.min() < SYMBOL_MIN or sym.max() > SYMBOL_MAX:
            raise BitstreamError(f"decoded an escaped symbol outside the int8 range: {MISMATCH}")
        return sym

    def _read_bypass(self, count: int) -> np.ndarray:
        n = np.zeros(count, dtype=np.int64)
        active = np.arange(count)
        while active.size:
            bins = self.decoder.decode(_BYPASS, active.size).astype(np.int64)
            n[active] += bins
            if n.max() > MAX_BYPASS_DIGITS:
                raise BitstreamError(f"escape value with more than {MAX_BYPASS_DIGITS} bypass digits: {MISMATCH}")
            active = active[bins == tables.BYPASS_MAX]
        total = int(n.sum())
        digits = self.decoder.decode(_BYPASS, total).astype(np.int64) if total else np.zeros(0, np.int64)
        j = np.arange(total) - np.repeat(np.cumsum(n) - n, n)
        owner = np.repeat(np.arange(count), n)
        raw = np.zeros(count, dtype=np.int64)
        np.add.at(raw, owner, digits << (tables.BYPASS_BITS * j))
        return raw

    def finish(self, expected_model_crc: int):
        """The decoder's entropy models must be the encoder's, and every word must have been used."""
        if self.model_crc != expected_model_crc:
            raise BitstreamError(f"entropy-model check {self.model_crc:08x} != {expected_model_crc:08x} written "
                                 f"by the encoder: {MISMATCH}")
        if not self.decoder.maybe_exhausted():
            raise BitstreamError("frame payload has data left after its last symbol (corrupt payload)")
