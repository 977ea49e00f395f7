"""DCVC-RT (CVPR 2025) neural video codec: official-checkpoint-compatible PyTorch models
(intra `DMCI`, inter `DMC`), real bitstreams with constriction, conformance runner, RD math.

High-level use:

    from disco_train.dcvc_rt import load_codec, encode_video, decode_video
    codec = load_codec("checkpoints/dcvc_rt")
    data = encode_video(frames_uint8, qp=32, codec=codec)   # (T,H,W,3) RGB -> bytes
    frames = decode_video(data, codec=codec)                # bytes -> (T,H,W,3) RGB
"""

from .api import (decode_image, decode_video, encode_image, encode_video, encode_video_result, load_codec,
                  synthetic_codec)
from .codec import DcvcRtCodec, EncodeResult
from .coding import BitstreamError
from .inter import DMC
from .intra import DMCI
from .loading import CheckpointMismatchError, load_inter, load_intra, load_model

__all__ = [
    "BitstreamError", "CheckpointMismatchError", "DMC", "DMCI", "DcvcRtCodec", "EncodeResult",
    "decode_image", "decode_video", "encode_image", "encode_video", "encode_video_result",
    "load_codec", "load_inter", "load_intra", "load_model", "synthetic_codec",
]
