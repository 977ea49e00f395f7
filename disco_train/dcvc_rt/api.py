"""High-level uint8-RGB API, e.g. for the preprocessing tool's codec backend.

    codec = load_codec("checkpoints/dcvc_rt")          # official weights, CPU float32
    data = encode_video(frames_uint8, qp=32, codec=codec)  # frames (T,H,W,3) RGB
    frames = decode_video(data, codec=codec)            # (T,H,W,3) uint8 RGB

QP 0 is the lowest quality and 63 the highest. Decode with the same weights, device and dtype
that encoded: the entropy models are computed by the networks, so a different numeric path can
pick different model tables, which the decoder reports as a BitstreamError (as with any neural codec).

Threads: the encoder runs `threads` CPU threads (default 1; 2 are ~1.6-2x faster), and a stream decodes
only with the thread count that encoded it, because the convolutions' float reductions are split per
thread. The default format records the count in its header and the decoder switches to it, whatever
the caller's torch setting; official-format streams (`stream_format="official"`, byte-compatible with
microsoft/DCVC's test_video.py) are always coded with 1 thread, as the official code is.
"""

import functools

import numpy as np
import torch

from .codec import DcvcRtCodec, EncodeResult
from .color import uint8_frames_to_ycbcr, ycbcr_to_uint8_frames
from .init_rule import golden_state_dict
from .inter import DMC
from .intra import DMCI
from .loading import load_inter, load_intra


@functools.lru_cache(maxsize=4)
def load_codec(ckpt_dir=None, device="cpu", dtype=torch.float32, video=True) -> DcvcRtCodec:
    """Codec with the official checkpoints from `ckpt_dir` (default checkpoints/dcvc_rt). Cached."""
    intra = load_intra(ckpt_dir=ckpt_dir, device=device, dtype=dtype)
    inter = load_inter(ckpt_dir=ckpt_dir, device=device, dtype=dtype) if video else None
    return DcvcRtCodec(intra, inter)


def synthetic_codec(device="cpu", dtype=torch.float32) -> DcvcRtCodec:
    """Codec with the deterministic golden-rule weights: for tests and benchmarks without
    checkpoints (it codes real bitstreams, but the reconstructions are not meaningful).
    Cached (~1.5 s to build) by (device, dtype), however they are passed; the codec resets its reference buffer
    at every I-frame."""
    return _synthetic_codec(str(torch.device(device)), dtype)


@functools.lru_cache(maxsize=2)
def _synthetic_codec(device: str, dtype: torch.dtype) -> DcvcRtCodec:
    models = []
    for cls in (DMCI, DMC):
        with torch.device("meta"):  # skip the default init of ~66M parameters
            m = cls()
        m.load_state_dict(golden_state_dict(m, torch.float64), strict=True, assign=True)
        models.append(m.to(device=device, dtype=dtype))
    return DcvcRtCodec(*models)


def _codec(codec, ckpt_dir):
    return codec if codec is not None else load_codec(ckpt_dir)


def encode_video_result(frames_uint8, qp, qp_p=None, intra_period=-1, reset_interval=32,
                        codec=None, ckpt_dir=None, threads=None, stream_format="disco",
                        with_recon=True) -> EncodeResult:
    """Like encode_video, but returns bytes, per-frame sizes and (built on first access of `.recon`)
    the float YCbCr reconstruction."""
    c = _codec(codec, ckpt_dir)
    frames = uint8_frames_to_ycbcr(frames_uint8, dtype=c.dtype, device=c.device)
    return c.encode_frames(frames, qp, qp_p=qp_p, intra_period=intra_period, reset_interval=reset_interval,
                           threads=threads, stream_format=stream_format, with_recon=with_recon)


def encode_video(frames_uint8, qp, qp_p=None, intra_period=-1, reset_interval=32,
                 codec=None, ckpt_dir=None, threads=None, stream_format="disco") -> bytes:
    """(T,H,W,3) uint8 RGB -> DCVC-RT bitstream. qp (I) and qp_p (P base, default qp) in 0..63.

    stream_format "disco" (default: CRC-checked container) or "official" (microsoft/DCVC's bytes)."""
    return encode_video_result(frames_uint8, qp, qp_p, intra_period, reset_interval, codec, ckpt_dir,
                               threads, stream_format, with_recon=False).bitstream


def decode_video(data: bytes, codec=None, ckpt_dir=None, expect=None) -> np.ndarray:
    """DCVC-RT bitstream -> (T,H,W,3) uint8 RGB. Raises coding.BitstreamError on bad input, and on a stream whose
    (frames, height, width) differ from `expect` before decoding anything."""
    return ycbcr_to_uint8_frames(_codec(codec, ckpt_dir).decode_frames(data, expect))


def encode_image(image_uint8, qp, codec=None, ckpt_dir=None, threads=None, stream_format="disco") -> bytes:
    """(H,W,3) uint8 RGB -> single-I-frame bitstream."""
    arr = np.asarray(image_uint8)
    if arr.ndim != 3:
        raise ValueError(f"image must have shape (H,W,3), got {arr.shape}")
    return encode_video(arr[None], qp, codec=codec, ckpt_dir=ckpt_dir, threads=threads, stream_format=stream_format)


def decode_image(data: bytes, codec=None, ckpt_dir=None) -> np.ndarray:
    """Single-frame bitstream -> (H,W,3) uint8 RGB."""
    frames = decode_video(data, codec=codec, ckpt_dir=ckpt_dir)
    if frames.shape[0] != 1:
        raise ValueError(f"expected an image stream, got {frames.shape[0]} frames; use decode_video")
    return frames[0]
