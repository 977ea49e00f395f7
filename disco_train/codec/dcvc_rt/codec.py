"""DCVC-RT encoder/decoder on real bitstreams (models + constriction coder + container).

Frame schedule (official test_video.py): frame 0 (and every `intra_period`-th frame if > 0) is an
I-frame at `qp`; P-frame t uses qp_p + [0,8,0,4,0,4,0,4][t % 8] and resets the reference
feature when reset_interval > 0 and t % reset_interval == 1. The P QP and the reset flag are
written per frame, so the decoder needs no schedule parameters.

Encoder and decoder must compute bit-identical entropy-model parameters, and a float convolution's result
depends on how it is split across threads: a stream encoded with 2 CPU threads failed to decode with 1
(tests/test_dcvc_codec.py). So both run with one intra-op thread and deterministic cuDNN, as the official
`set_torch_env()` does, whatever the caller's settings (a DataLoader worker has 1 thread, the process that
wrote the shards had all cores). Different devices, dtypes or CPU instruction sets can still disagree.
"""

import contextlib
from dataclasses import dataclass, field

import torch

from . import bitstream as bs
from .coding import BitstreamError, SymbolReader, SymbolWriter
from .inter import DMC
from .inter import QP_NUM as INTER_QP_NUM
from .intra import DMCI
from .intra import QP_NUM as INTRA_QP_NUM
from .padding import downsampled_shape, pad_frame
from .prior import DecodeSteps, QuantizeSteps


@contextlib.contextmanager
def deterministic():
    """One intra-op thread and deterministic cuDNN for the duration (restored after)."""
    threads, cudnn = torch.get_num_threads(), (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.set_num_threads(1)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn


@dataclass
class EncodeResult:
    bitstream: bytes
    recon: torch.Tensor  # (T,3,H,W) YCbCr in [0,1], bitwise what the decoder will output
    frame_bytes: list = field(default_factory=list)  # per frame; the stream header counts to frame 0

    @property
    def bpp(self) -> float:
        """Bits per pixel from the actual bytes, headers included: 8 * len / (T * H * W)."""
        T, _, H, W = self.recon.shape
        return 8.0 * len(self.bitstream) / (T * H * W)


def _check_qp(name, qp, limit):
    if not isinstance(qp, int) or isinstance(qp, bool) or not 0 <= qp < limit:
        raise ValueError(f"{name} must be an int in 0..{limit - 1} (0 = lowest quality), got {qp!r}")


class DcvcRtCodec:
    """Holds DMCI (+ optional DMC) in eval mode and codes YCbCr frames to bytes and back."""

    def __init__(self, intra: DMCI, inter: DMC = None):
        self.intra = intra.eval()
        self.inter = inter.eval() if inter is not None else None
        p = next(intra.parameters())
        self.device, self.dtype = p.device, p.dtype
        self._pmf_cache = {}

    def _z_pmf(self, model, qp):
        key = (id(model), qp)
        if key not in self._pmf_cache:
            self._pmf_cache[key] = model.bit_estimator_z.pmf_table(qp)
        return self._pmf_cache[key]

    def _payload(self, model, qp, z_hat, parts):
        w = SymbolWriter()
        w.write_z(z_hat, self._z_pmf(model, qp))
        for y_q_w, s_w in parts:
            w.write_y(y_q_w, s_w)
        return w.to_bytes()

    def _read_z(self, model, qp, reader, H, W):
        shape = (1, model.bit_estimator_z.channel, *downsampled_shape(H, W, 64))
        return reader.read_z(self._z_pmf(model, qp), shape, self.device, self.dtype)

    # ---- encoder -----------------------------------------------------------------------------
    def _encode_i(self, x_pad, qp):
        source = QuantizeSteps(groups=4)
        res = self.intra.compress(x_pad, qp, source)
        return self._payload(self.intra, qp, res["z_hat"], source.parts), res["x_hat"]

    def _encode_p(self, x_pad, qp):
        source = QuantizeSteps(groups=2)
        res = self.inter.compress(x_pad, qp, source, with_recon=True)
        return self._payload(self.inter, qp, res["z_hat"], source.parts), res["x_hat"]

    @torch.no_grad()
    @deterministic()
    def encode_frames(self, frames, qp, qp_p=None, intra_period=-1, reset_interval=32, kind=None):
        """Encode (T,3,H,W) YCbCr frames in [0,1]. Returns EncodeResult."""
        if frames.ndim != 4 or frames.shape[1] != 3 or frames.shape[0] == 0:
            raise ValueError(f"frames must be (T,3,H,W) with T >= 1, got {tuple(frames.shape)}")
        qp_p = qp if qp_p is None else qp_p
        _check_qp("qp", qp, INTRA_QP_NUM)
        _check_qp("qp_p", qp_p, INTRA_QP_NUM)
        T, _, H, W = frames.shape
        kind = kind if kind is not None else (bs.KIND_IMAGE if T == 1 else bs.KIND_VIDEO)
        if T > 1 and self.inter is None and intra_period != 1:
            raise ValueError("video coding with P-frames needs the inter model (DMC); pass inter= or intra_period=1")
        out = [bs.write_header(bs.StreamHeader(kind, H, W, T))]
        recon, frame_bytes, last_qp = [], [], qp
        for t in range(T):
            x_pad = pad_frame(frames[t:t + 1].to(self.device, self.dtype))
            if t == 0 or (intra_period > 0 and t % intra_period == 0):
                payload, x_hat = self._encode_i(x_pad, qp)
                rec, last_qp = bs.FrameRecord(bs.FRAME_I, qp, False, payload), qp
                if self.inter is not None:
                    self.inter.clear_dpb()
                    self.inter.add_ref_frame(None, x_hat)
            else:
                frame_qp = DMC.frame_qp(qp_p, t)
                reset = reset_interval > 0 and t % reset_interval == 1
                if reset:
                    self.inter.prepare_feature_adaptor_i(last_qp)
                payload, x_hat = self._encode_p(x_pad, frame_qp)
                rec, last_qp = bs.FrameRecord(bs.FRAME_P, frame_qp, reset, payload), frame_qp
            out.append(bs.write_frame(rec))
            frame_bytes.append(rec.num_bytes + (bs.HEADER_BYTES if t == 0 else 0))
            recon.append(x_hat[:, :, :H, :W])
        return EncodeResult(b"".join(out), torch.cat(recon), frame_bytes)

    # ---- decoder -----------------------------------------------------------------------------
    def _decode_record(self, rec, H, W):
        reader = SymbolReader(rec.payload)
        if rec.frame_type == bs.FRAME_I:
            if rec.qp >= INTRA_QP_NUM:
                raise BitstreamError(f"I-frame qp {rec.qp} outside 0..{INTRA_QP_NUM - 1}")
            z_hat = self._read_z(self.intra, rec.qp, reader, H, W)
            source = DecodeSteps(4, reader.read_y)
            x_hat = self.intra.decompress(z_hat, source, rec.qp, downsampled_shape(H, W, 16))["x_hat"]
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
        z_hat = self._read_z(self.inter, rec.qp, reader, H, W)
        return self.inter.decompress(z_hat, DecodeSteps(2, reader.read_y), rec.qp)["x_hat"]

    @torch.no_grad()
    @deterministic()
    def decode_frames(self, data: bytes) -> torch.Tensor:
        """Decode a stream to (T,3,H,W) YCbCr in [0,1]. Raises BitstreamError on bad input."""
        header, records = bs.parse_stream(data)
        H, W = header.height, header.width
        frames = []
        for rec in records:
            try:
                x_hat = self._decode_record(rec, H, W)
            except (RuntimeError, OverflowError) as e:  # constriction / shape errors on bad data
                raise BitstreamError(f"failed to decode frame {len(frames)}: {e}") from e
            except AssertionError as e:  # constriction: the symbols do not fit this entropy model
                raise BitstreamError(f"failed to decode frame {len(frames)}: {e} (a corrupt stream, or one "
                                     f"encoded with other weights, device or dtype than this decoder's)") from e
            frames.append(x_hat[:, :, :H, :W])
        return torch.cat(frames)
