"""The official DCVC-RT entropy-coded payload, byte for byte: a byte-wise rANS coder over the tables of
`tables.py`, in the layout of the official C++ extension (`MLCodec_extensions_cpp`).

The coder (ryg_rans byte variant):
- state x is 32 bits, kept in [L, 256 L) with L = 2^23; frequencies are 16-bit (sum 2^16);
- encoding symbol (start, freq): while x >= freq << 15 emit x & 255, x >>= 8 (15 = 23 - 16 + 8); then
  x = (x // freq) << 16 + x % freq + start;
- a bypass bin v (2 bits): while x >= 2^29 (= 2^14 << 15) emit a byte; then x = x << 2 | v;
- the payload is the final state (4 bytes, little-endian) followed by the emitted bytes, last first.
  Symbols are encoded last to first, so the decoder reads them first to last; it ends in state L
  having read every byte, which `finish` checks.
- one frame's payload holds z (C order, table row qp * C + channel), then every y step (coded
  positions in C order of the folded map, table = scale index), one state throughout.
- "two coders" (frames of more than 1280 x 720 pixels, the SPS flag ec_part): each array is split at
  half its length, the halves go to two rANS states; the payload is stream 0 followed by stream 1
  reversed, its trailing bytes shared with stream 0's when equal (zero bytes, up to 8, or one equal byte).

This is a Python loop over symbols (about 1 us per symbol), used only for the official format; the
default format codes the same tables with constriction (coding.py).
"""

import bisect

import numpy as np
import torch

from . import tables
from .coding import MAX_BYPASS_DIGITS, MISMATCH, BitstreamError, coded_positions, z_rows
from .entropy import SYMBOL_MAX, SYMBOL_MIN

RANS_L = 1 << 23
ENC_SHIFT = 23 - tables.PRECISION + 8  # 15
BYPASS_LIMIT = (1 << (tables.PRECISION - tables.BYPASS_BITS)) << ENC_SHIFT  # 2^29
MASK = tables.TOTAL - 1


def _ops(symbols: np.ndarray, rows: np.ndarray, t: tables.CdfTables):
    """Decode-order coder operations of one array: (start, freq) per symbol, (bin, 0) per bypass bin."""
    entry, escaped, raw = tables.fold_escapes(symbols, t.offsets[rows], t.lengths[rows])
    start = t.cdf[rows, entry].astype(np.int64)
    freq = t.cdf[rows, entry + 1].astype(np.int64) - start
    if not escaped.any():
        return start, freq
    counts, payloads = tables.escape_bins(raw)
    bins = [np.asarray(c + p, dtype=np.int64) for c, p in zip(counts, payloads)]
    n = np.ones(symbols.size, dtype=np.int64)
    n[escaped] += [b.size for b in bins]
    first = np.cumsum(n) - n  # where each symbol's op goes
    op_start, op_freq = np.zeros(int(n.sum()), np.int64), np.zeros(int(n.sum()), np.int64)
    op_start[first], op_freq[first] = start, freq
    for f, b in zip(first[escaped], bins):
        op_start[f + 1:f + 1 + b.size] = b  # freq 0 marks a bypass bin
    return op_start, op_freq


def encode_ops(ops) -> bytes:
    """rANS-encode decode-order ops (a list of (start, freq) array pairs) into one stream."""
    if not ops:
        return b""
    starts = np.concatenate([o[0] for o in ops])[::-1].tolist()
    freqs = np.concatenate([o[1] for o in ops])[::-1].tolist()
    x, out = RANS_L, bytearray()
    for s, f in zip(starts, freqs):
        if f:
            limit = f << ENC_SHIFT
            while x >= limit:
                out.append(x & 0xFF)
                x >>= 8
            q, r = divmod(x, f)
            x = (q << tables.PRECISION) + r + s
        else:
            while x >= BYPASS_LIMIT:
                out.append(x & 0xFF)
                x >>= 8
            x = (x << tables.BYPASS_BITS) | s
    out.reverse()
    return x.to_bytes(4, "little") + bytes(out)


def merge_two(s0: bytes, s1: bytes) -> bytes:
    """The official two-stream layout: s0, then s1 reversed without the trailing bytes it shares with s0."""
    same = 0
    for i in range(min(len(s0), len(s1), 8)):
        if s0[-1 - i] != 0 or s1[-1 - i] != 0:
            break
        same += 1
    if same == 0 and s0 and s1 and s0[-1] == s1[-1]:
        same = 1
    return s0 + s1[:len(s1) - same][::-1]


class OfficialWriter:
    """Same interface as coding.SymbolWriter; produces the official payload bytes."""

    def __init__(self, y_tables: tables.CdfTables, z_tables: tables.CdfTables, two_coders: bool = False):
        self.y, self.z, self.two = y_tables, z_tables, two_coders
        self.ops = ([], [])
        self.model_crc = 0  # the official format has no such check
        self.ideal_bits = 0.0

    def write_z(self, z_hat: torch.Tensor, qp: int):
        _, C, h, w = z_hat.shape
        z = np.rint(z_hat.reshape(-1).cpu().numpy()).astype(np.int64)
        self.add(z, z_rows(qp, C, h * w), self.z, h * w)

    def write_y(self, y_q_w: torch.Tensor, s_w: torch.Tensor):
        pos, idx = coded_positions(s_w)
        self.add(np.rint(y_q_w.reshape(-1).cpu().numpy()[pos]).astype(np.int64), idx, self.y, None)

    def add(self, symbols, rows, t, per_channel=None):
        """Queue one array of symbols with their table rows (per_channel: the z layout, for the two-coder split)."""
        entry, _, raw = tables.fold_escapes(symbols, t.offsets[rows], t.lengths[rows])
        self.ideal_bits += tables.ideal_bits(t, rows, entry, raw)
        for part, (sym, row) in enumerate(_halves(symbols, rows, per_channel) if self.two else [(symbols, rows)]):
            self.ops[part].append(_ops(sym, row, t))

    def to_bytes(self) -> bytes:
        if not self.two:
            return encode_ops(self.ops[0])
        return merge_two(encode_ops(self.ops[0]), encode_ops(self.ops[1]))


def _halves(symbols, rows, per_channel):
    """The official split: the first len // 2 symbols to coder 0, the rest to coder 1. For z, coder 1's
    table rows restart at start + (len // 2) // per_channel (the channel count of the first half)."""
    n0 = symbols.size // 2
    rows1 = rows[n0:]
    if per_channel is not None and symbols.size:
        rows1 = np.arange(symbols.size - n0) // per_channel + rows[0] + n0 // per_channel
    return [(symbols[:n0], rows[:n0]), (symbols[n0:], rows1)]


class _Decoder:
    """One rANS state reading `data` forwards."""

    def __init__(self, data: bytes):
        if len(data) < 4:
            raise BitstreamError(f"rANS payload of {len(data)} bytes is shorter than its 4-byte state")
        self.data, self.pos, self.x = data, 4, int.from_bytes(data[:4], "little")

    def decode(self, rows: np.ndarray, cdfs: list) -> np.ndarray:
        """Symbols (table entries, escapes resolved to raw) of one array; rows index `cdfs` (trimmed lists)."""
        out = np.empty(rows.size, dtype=np.int64)
        data, pos, x, n = self.data, self.pos, self.x, len(self.data)
        right = bisect.bisect_right
        for i, row in enumerate(rows.tolist()):
            c = cdfs[row]
            cum = x & MASK
            s = right(c, cum) - 1
            start = c[s]
            x = (c[s + 1] - start) * (x >> tables.PRECISION) + cum - start
            while x < RANS_L:
                if pos >= n:
                    raise BitstreamError("rANS payload ended early (truncated or corrupt)")
                x = (x << 8) | data[pos]
                pos += 1
            if s == len(c) - 2:  # the escape entry: bypass bins follow
                self.pos, self.x = pos, x
                s = -1 - self._bypass()
                pos, x = self.pos, self.x
            out[i] = s
        self.pos, self.x = pos, x
        return out

    def _bits(self) -> int:
        v = self.x & tables.BYPASS_MAX
        self.x >>= tables.BYPASS_BITS
        if self.x < RANS_L:
            if self.pos >= len(self.data):
                raise BitstreamError("rANS payload ended early in bypass bins (truncated or corrupt)")
            self.x = (self.x << 8) | self.data[self.pos]
            self.pos += 1
        return v

    def _bypass(self) -> int:
        n = v = self._bits()
        while v == tables.BYPASS_MAX:
            v = self._bits()
            n += v
            if n > MAX_BYPASS_DIGITS:
                raise BitstreamError(f"escape value with more than {MAX_BYPASS_DIGITS} bypass digits: {MISMATCH}")
        raw = 0
        for j in range(n):
            raw |= self._bits() << (tables.BYPASS_BITS * j)
        return raw


_LISTS = {}


class OfficialReader:
    """Same interface as coding.SymbolReader, for official payloads."""

    def __init__(self, payload: bytes, y_tables: tables.CdfTables, z_tables: tables.CdfTables,
                 two_coders: bool = False):
        self.y, self.z, self.two, self.size = y_tables, z_tables, two_coders, len(payload)
        self.dec = [_Decoder(payload)] + ([_Decoder(payload[::-1])] if two_coders else [])

    @staticmethod
    def _cdfs(t):
        """The tables as Python lists (what the loop indexes fastest), built once per CdfTables."""
        if id(t) not in _LISTS:
            _LISTS[id(t)] = (t, [row[:n].tolist() for row, n in zip(t.cdf, t.lengths)])  # t kept: ids stay unique
        return _LISTS[id(t)][1]

    def read_z(self, qp: int, shape, device, dtype) -> torch.Tensor:
        _, C, h, w = shape
        z = self.read(z_rows(qp, C, h * w), self.z, h * w)
        return torch.from_numpy(z).reshape(shape).to(device=device, dtype=dtype)

    def read_y(self, s_w: torch.Tensor) -> torch.Tensor:
        pos, idx = coded_positions(s_w)
        sym = np.zeros(s_w.numel(), dtype=np.int64)
        sym[pos] = self.read(idx, self.y, None)
        return torch.from_numpy(sym).reshape(s_w.shape).to(device=s_w.device, dtype=s_w.dtype)

    def read(self, rows, t, per_channel=None):
        """Decode one array queued by OfficialWriter.add with the same rows."""
        parts = _halves(np.zeros(rows.size), rows, per_channel) if self.two else [(None, rows)]
        out = []
        for dec, (_, r) in zip(self.dec, parts):
            entry = dec.decode(r, self._cdfs(t))
            sym = entry + t.offsets[r]
            esc = entry < 0
            sym[esc] = tables.unfold_escapes(-1 - entry[esc], t.offsets[r][esc], t.lengths[r][esc])
            out.append(sym)
        sym = np.concatenate(out)
        if sym.size and (sym.min() < SYMBOL_MIN or sym.max() > SYMBOL_MAX):
            raise BitstreamError(f"decoded an escaped symbol outside the int8 range: {MISMATCH}")
        return sym

    def finish(self, expected_model_crc: int = 0):
        """A valid payload leaves every state at L and has no unread bytes (two coders may share up to 8)."""
        if any(d.x != RANS_L for d in self.dec):
            raise BitstreamError(f"rANS state does not end where the encoder started: {MISMATCH}")
        used = sum(d.pos for d in self.dec)
        if not self.size <= used <= self.size + (8 if self.two else 0):
            raise BitstreamError(f"rANS payload of {self.size} bytes has {self.size - used} unread bytes "
                                 f"(corrupt or not this frame's)")
