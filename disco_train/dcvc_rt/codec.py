"""DCVC-RT encoder/decoder on real bitstreams (models + entropy coder + container).

Frame schedule (official test_video.py): frame 0 (and every `intra_period`-th frame if > 0) is an
I-frame at `qp`; P-frame t uses qp_p + [0,8,0,4,0,4,0,4][t % 8] and resets the reference
feature when reset_interval > 0 and t % reset_interval == 1. The P QP and the reset flag are
written per frame, so the decoder needs no schedule parameters.

Two stream formats (`stream_format`):
- "disco" (default): our container (bitstream.py: magic, version, CRCs, thread count) around
  constriction payloads that code the official tables (coding.py);
- "official": the official test_video.py byte format (SPS/NAL container, official_stream.py; byte-wise
  rANS payloads, rans_official.py), so streams go both ways between this codec and the official one.
`decode_frames` tells them apart by the first bytes.

Threads: encoder and decoder must compute bit-identical entropy-model parameters, and a float
convolution's result depends on how its reduction is split across threads (1 vs 2 threads already
differ by 4.8e-7 after the first 1x1 convolution, which can flip a table index). So the encoder runs with
a fixed count (`threads`, default 1), the disco header records it, and the decoder runs with the recorded
count whatever the caller's setting (a DataLoader worker has 1 thread, the process that wrote the shards
had all cores). Official streams carry no count: the official encoder runs 1 thread (`set_torch_env`), so
they are written and read with 1. cuDNN runs deterministic. Different devices, dtypes or CPU instruction
sets can still disagree; in a disco stream a per-frame check of the encoder's table choices turns that into
a BitstreamError instead of a wrong picture.
"""

import contextlib
import functools

import torch

from . import bitstream as bs
from . import official_stream as ofs
from .coding import MISMATCH, BitstreamError, CodingTables, SymbolReader, SymbolWriter
from .inter import DMC
from .inter import QP_NUM as INTER_QP_NUM
from .intra import DMCI
from .intra import QP_NUM as INTRA_QP_NUM
from .padding import downsampled_shape, pad_frame
from .prior import DecodeSteps, QuantizeSteps
from .rans_official import OfficialReader, OfficialWriter
from .tables import factorized_tables, gaussian_tables

DISCO, OFFICIAL = "disco", "official"


@contextlib.contextmanager
def deterministic(threads: int = 1):
    """`threads` intra-op threads and deterministic cuDNN for the duration (restored after)."""
    saved, cudnn = torch.get_num_threads(), (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.set_num_threads(threads)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.set_num_threads(saved)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn


class EncodeResult:
    """bitstream, per-frame sizes (the stream header counts to frame 0) and, when the encoder was asked
    `with_recon`, `recon`: (T,3,H,W) YCbCr in [0,1], bitwise what the decoder will output.

    The encoder itself never builds P-frame pixels (its next reference is the decoder feature, as in the
    official encoder): `recon` runs the reconstruction network on the kept features on first access."""

    def __init__(self, bitstream: bytes, frame_bytes: list, size, parts=None, build=None,
                 payload_bytes=(), ideal_bits=()):
        self.bitstream, self.frame_bytes, self.size = bitstream, frame_bytes, tuple(size)  # size: (T, H, W)
        # per frame: entropy-coded bytes, and the -log2 p of its symbols under the coder's tables
        self.payload_bytes, self.ideal_bits = list(payload_bytes), list(ideal_bits)
        self._parts, self._build, self._recon = parts, build, None

    @property
    def recon(self) -> torch.Tensor:
        if self._recon is None:
            if self._parts is None:
                raise ValueError("this stream was encoded with with_recon=False: no reconstruction was kept")
            self._recon = self._build(self._parts)
            self._parts = self._build = None
        return self._recon

    @property
    def bpp(self) -> float:
        """Bits per pixel from the actual bytes, headers included: 8 * len / (T * H * W)."""
        T, H, W = self.size
        return 8.0 * len(self.bitstream) / (T * H * W)


def _check_qp(name, qp, limit):
    if not isinstance(qp, int) or isinstance(qp, bool) or not 0 <= qp < limit:
        raise ValueError(f"{name} must be an int in 0..{limit - 1} (0 = lowest quality), got {qp!r}")


def _check_threads(threads):
    if not isinstance(threads, int) or isinstance(threads, bool) or not 0 < threads <= bs.MAX_THREADS:
        raise ValueError(f"threads must be an int in 1..{bs.MAX_THREADS}, got {threads!r}")


class DcvcRtCodec:
    """Holds DMCI (+ optional DMC) in eval mode and codes YCbCr frames to bytes and back."""

    def __init__(self, intra: DMCI, inter: DMC = None, threads: int = 1):
        _check_threads(threads)
        self.intra = intra.eval()
        self.inter = inter.eval() if inter is not None else None
        self.threads = threads
        p = next(intra.parameters())
        self.device, self.dtype = p.device, p.dtype
        self._z_tables = {}

    def tables(self, model):
        """(y, z) CodingTables of `model`, built once (the z tables take ~0.15 s per model)."""
        if id(model) not in self._z_tables:
            self._z_tables[id(model)] = CodingTables(factorized_tables(model.bit_estimator_z))
        return _y_tables(), self._z_tables[id(model)]

    def _payload(self, model, qp, z_hat, parts, fmt, two_coders):
        y_t, z_t = self.tables(model)
        w = SymbolWriter(y_t, z_t) if fmt == DISCO else OfficialWriter(y_t.t, z_t.t, two_coders=two_coders)
        w.write_z(z_hat, qp)
        for y_q_w, s_w in parts:
            w.write_y(y_q_w, s_w)
        return w.to_bytes(), w.model_crc, w.ideal_bits

    # ---- encoder -----------------------------------------------------------------------------
    def _encode_i(self, x_pad, qp, fmt, two):
        source = QuantizeSteps(groups=4)
        res = self.intra.compress(x_pad, qp, source)
        return self._payload(self.intra, qp, res["z_hat"], source.parts, fmt, two), res["x_hat"]

    def _encode_p(self, x_pad, qp, fmt, two):
        source = QuantizeSteps(groups=2)
        res = self.inter.compress(x_pad, qp, source, with_recon=False)
        return self._payload(self.inter, qp, res["z_hat"], source.parts, fmt, two), res["feature"]

    def _check_encode_args(self, frames, qp, qp_p, intra_period, threads, stream_format):
        if frames.ndim != 4 or frames.shape[1] != 3 or frames.shape[0] == 0:
            raise ValueError(f"frames must be (T,3,H,W) with T >= 1, got {tuple(frames.shape)}")
        _check_qp("qp", qp, INTRA_QP_NUM)
        _check_qp("qp_p", qp_p, INTRA_QP_NUM)
        _check_threads(threads)
        if stream_format not in (DISCO, OFFICIAL):
            raise ValueError(f"stream_format must be {DISCO!r} or {OFFICIAL!r}, got {stream_format!r}")
        if stream_format == OFFICIAL and threads != 1:
            raise ValueError("official streams carry no thread count and are decoded with 1 thread: use threads=1")
        if frames.shape[0] > 1 and self.inter is None and intra_period != 1:
            raise ValueError("video coding with P-frames needs the inter model (DMC); pass inter= or intra_period=1")

    @torch.no_grad()
    def encode_frames(self, frames, qp, qp_p=None, intra_period=-1, reset_interval=32, kind=None,
                      with_recon=True, threads=None, stream_format=DISCO) -> EncodeResult:
        """Encode (T,3,H,W) YCbCr frames in [0,1] with `threads` CPU threads (default: the codec's).

        with_recon=False keeps no reconstruction (EncodeResult.recon then raises)."""
        qp_p = qp if qp_p is None else qp_p
        threads = self.threads if threads is None else threads
        self._check_encode_args(frames, qp, qp_p, intra_period, threads, stream_format)
        T, _, H, W = frames.shape
        kind = kind if kind is not None else (bs.KIND_IMAGE if T == 1 else bs.KIND_VIDEO)
        with deterministic(threads):
            records, parts, ideal_bits = self._encode_records(frames, qp, qp_p, intra_period, reset_interval,
                                                  stream_format, with_recon)
        if stream_format == DISCO:
            header = bs.write_header(bs.StreamHeader(kind, H, W, T, threads))
            chunks = [header] + [bs.write_frame(r) for r in records]
            frame_bytes = [r.num_bytes + (len(header) if t == 0 else 0) for t, r in enumerate(records)]
        else:
            chunks = ofs.write_stream(H, W, records)  # one chunk per frame, its SPS included
            frame_bytes = [len(c) for c in chunks]
        build = (lambda p: self._build_recon(p, threads, H, W)) if with_recon else None
        return EncodeResult(b"".join(chunks), frame_bytes, (T, H, W), parts if with_recon else None, build,
                            [len(r.payload) for r in records], ideal_bits)

    def _encode_records(self, frames, qp, qp_p, intra_period, reset_interval, fmt, with_recon):
        T, _, H, W = frames.shape
        two = ofs.uses_two_coders(H, W)
        records, parts, ideal_bits, last_qp = [], [], [], qp
        for t in range(T):
            x_pad = pad_frame(frames[t:t + 1].to(self.device, self.dtype))
            if t == 0 or (intra_period > 0 and t % intra_period == 0):
                (payload, crc, ideal), x_hat = self._encode_i(x_pad, qp, fmt, two)
                rec, last_qp, part = bs.FrameRecord(bs.FRAME_I, qp, False, payload, crc), qp, x_hat
                if self.inter is not None:
                    self.inter.clear_dpb()
                    self.inter.add_ref_frame(None, x_hat)
            else:
                frame_qp = DMC.frame_qp(qp_p, t)
                reset = reset_interval > 0 and t % reset_interval == 1
                if reset:
                    self.inter.prepare_feature_adaptor_i(last_qp)
                (payload, crc, ideal), feature = self._encode_p(x_pad, frame_qp, fmt, two)
                rec = bs.FrameRecord(bs.FRAME_P, frame_qp, reset, payload, crc)
                last_qp, part = frame_qp, (feature, frame_qp)
            records.append(rec)
            ideal_bits.append(ideal)
            if with_recon:
                parts.append(part)
        return records, parts, ideal_bits

    @torch.no_grad()
    def _build_recon(self, parts, threads, H, W):
        """I parts are pixels; P parts (feature, qp) go through the decoder's own reconstruction network."""
        out = []
        with deterministic(threads):
            for part in parts:
                if isinstance(part, tuple):
                    feature, qp = part
                    part = self.inter.recon_generation_net(feature, self.inter.q_recon[qp:qp + 1])
                out.append(part[:, :, :H, :W])
        return torch.cat(out)

    # ---- decoder -----------------------------------------------------------------------------
    def _reader(self, model, rec, fmt, two):
        y_t, z_t = self.tables(model)
        if fmt == DISCO:
            return SymbolReader(rec.payload, y_t, z_t)
        return OfficialReader(rec.payload, y_t.t, z_t.t, two_coders=two)

    def _decode_record(self, rec, H, W, fmt, two):
        if rec.frame_type == bs.FRAME_I:
            if rec.qp >= INTRA_QP_NUM:
                raise BitstreamError(f"I-frame qp {rec.qp} outside 0..{INTRA_QP_NUM - 1}")
            reader = self._reader(self.intra, rec, fmt, two)
            z_hat = reader.read_z(rec.qp, self._z_shape(self.intra, H, W), self.device, self.dtype)
            x_hat = self.intra.decompress(z_hat, DecodeSteps(4, reader.read_y), rec.qp,
                                          downsampled_shape(H, W, 16))["x_hat"]
            reader.finish(rec.model_crc)
            if self.inter is not None:
                self.inter.clear_dpb()
                self.inter.add_ref_frame(None, x_hat)
            return x_hat
        if self.inter is None:
            raise ValueError("this stream has P-frames; the codec needs the inter model (DMC) to decode it")
        if rec.qp >= INTER_QP_NUM:
            raise BitstreamError(f"P-frame qp {rec.qp} outside 0..{INTER_QP_NUM - 1}")
        if rec.reset:
            self.inter.reset_ref_feature()
        reader = self._reader(self.inter, rec, fmt, two)
        z_hat = reader.read_z(rec.qp, self._z_shape(self.inter, H, W), self.device, self.dtype)
        x_hat = self.inter.decompress(z_hat, DecodeSteps(2, reader.read_y), rec.qp)["x_hat"]
        reader.finish(rec.model_crc)
        return x_hat

    @staticmethod
    def _z_shape(model, H, W):
        return (1, model.bit_estimator_z.channel, *downsampled_shape(H, W, 64))

    @torch.no_grad()
    def decode_frames(self, data: bytes, expect: tuple[int, int, int] | None = None) -> torch.Tensor:
        """Decode a disco or official stream to (T,3,H,W) YCbCr in [0,1]. Raises BitstreamError on bad input.
        `expect` = (frames, height, width) a receiver knows from its container: a stream declaring anything else
        is rejected after parsing its headers, before any network runs."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"expected bytes, got {type(data).__name__}")
        data = bytes(data)
        if ofs.looks_official(data):
            (H, W, two), records = ofs.parse_stream(data)
            threads, fmt = 1, OFFICIAL
        else:
            header, records = bs.parse_stream(data)
            H, W, threads, fmt, two = header.height, header.width, header.threads, DISCO, False
        if expect is not None and (len(records), H, W) != tuple(expect):
            raise BitstreamError(f"stream holds {len(records)} frames of {H}×{W}; the container declares "
                                 f"{expect[0]} of {expect[1]}×{expect[2]}")
        empty = next((i for i, rec in enumerate(records) if not rec.payload), None)
        if empty is not None:
            raise BitstreamError(f"frame {empty} has an empty payload (a coded frame holds at least its z symbols)")
        frames = []
        with deterministic(threads):
            for rec in records:
                frames.append(self._decode_one(rec, H, W, fmt, two, len(frames))[:, :, :H, :W])
        return torch.cat(frames)

    def _decode_one(self, rec, H, W, fmt, two, index):
        try:
            return self._decode_record(rec, H, W, fmt, two)
        except BitstreamError as e:
            raise BitstreamError(f"frame {index}: {e}") from e
        except (RuntimeError, OverflowError, IndexError, AssertionError) as e:  # coder / shape errors on bad data
            raise BitstreamError(f"failed to decode frame {index}: {e} ({MISMATCH})") from e


@functools.lru_cache(maxsize=1)
def _y_tables() -> CodingTables:
    return CodingTables(gaussian_tables())
