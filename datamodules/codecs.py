"""Codec backends by name: the one seam between the shard format and the codecs that make its bitstreams.

Both the degraded video (`codec`) and the sketch video (`sketch_codec`) are coded through this registry, and the
DataModule decodes through it, so a shard's `meta.codec` / `meta.sketch_codec` names a key of `BACKENDS`.

- `x264` / `x265`: PyAV (libx264 / libx265) at a CRF or a constant QP, raw Annex-B streams (no container).
- `dcvc_rt`: the project's DCVC-RT (`disco_train.codecs.dcvc_rt.api`), imported lazily because it needs its
  weights under `checkpoints/dcvc_rt/`; QP 0 (lowest quality) to 63.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from disco_train.video import VideoError, container_overhead, decode_bitstream, encode_bitstream

DCVC_DEFAULT_QP = 32  # the paper's lowest-quality DCVC-RT setting of {0, 8, 16, 24, 32} (§4.2)
DCVC_WEIGHTS = ("cvpr2025_image.pth.tar", "cvpr2025_video.pth.tar")


class CodecUnavailable(RuntimeError):
    """A backend whose module or weights are missing from this installation."""


@dataclass(frozen=True)
class CodecBackend:
    name: str
    encode: Callable[..., bytes]
    """(frames uint8 [T,H,W,3], fps, crf | None, qp | None, weights_dir) -> bitstream bytes."""
    decode: Callable[..., np.ndarray]
    """(bitstream, weights_dir) -> frames uint8 [T,H,W,3]."""
    has_container: bool
    """Whether an mp4 container could hold this stream (then its overhead is reported beside the rate)."""


def _pyav(name: str) -> CodecBackend:
    def encode(frames, fps, crf, qp, weights_dir=None):
        return encode_bitstream(frames, fps, name, crf=crf, qp=qp)

    def decode(data, weights_dir=None):
        return decode_bitstream(data, name)

    return CodecBackend(name, encode, decode, True)


def _dcvc_api(weights_dir: str | None):
    """The real DCVC-RT API and a codec loaded from `weights_dir` (the seam the lead points at the codec)."""
    try:
        from disco_train.codecs.dcvc_rt import api
    except ImportError as err:
        raise CodecUnavailable(f"codec dcvc_rt: disco_train.codecs.dcvc_rt is not installed in this checkout "
                               f"({err}); use codec=x264 or codec=x265") from None
    check_dcvc_weights(weights_dir)
    return api, api.load_codec(weights_dir)


def check_dcvc_weights(weights_dir: str | None, key: str = "dcvc_rt_dir") -> None:
    folder = Path(weights_dir or "checkpoints/dcvc_rt")
    missing = [name for name in DCVC_WEIGHTS if not (folder / name).is_file()]
    if missing:
        raise CodecUnavailable(f"{key}={folder}: DCVC-RT weights {missing} not found; put the official release "
                               f"files there (see checkpoints/README.md)")


def _dcvc_encode(frames, fps, crf, qp, weights_dir=None):
    api, codec = _dcvc_api(weights_dir)
    return api.encode_video(frames, qp=DCVC_DEFAULT_QP if qp is None else qp, codec=codec)


def _dcvc_decode(data, weights_dir=None):
    api, codec = _dcvc_api(weights_dir)
    return api.decode_video(bytes(data), codec=codec)


BACKENDS: dict[str, CodecBackend] = {
    "x264": _pyav("x264"),
    "x265": _pyav("x265"),
    "dcvc_rt": CodecBackend("dcvc_rt", _dcvc_encode, _dcvc_decode, False),
}


def get(name: str) -> CodecBackend:
    if name not in BACKENDS:
        raise VideoError(f"unknown codec backend {name!r}; choose one of {sorted(BACKENDS)}")
    return BACKENDS[name]


def encode(name: str, frames: np.ndarray, fps: float, crf: int | None = None, qp: int | None = None,
           weights_dir: str | None = None) -> tuple[bytes, dict]:
    """Code frames; returns (bitstream, info) with info['container_overhead_bytes'] where a container applies."""
    backend = get(name)
    data = backend.encode(frames, fps, crf, qp, weights_dir)
    info = {"container_overhead_bytes": container_overhead(data, name, fps)} if backend.has_container else {}
    return data, info


def decode(name: str, data: bytes, weights_dir: str | None = None) -> np.ndarray:
    return get(name).decode(bytes(data), weights_dir)
