"""Video codec backends by name: the one registry every sender and receiver codes video-like streams through.

The degraded video (`codec`) and the sketch video (`sketch_codec`) of `prepare`, `encode`, training-data
decoding and `decode` all go through `encode`/`decode` here, so a shard's `meta.codec` / `meta.sketch_codec` and a
`.disco` stream's codec name a key of `BACKENDS`.

- `x264` / `x265`: PyAV (libx264 / libx265) at a CRF or a constant QP, raw Annex-B streams (no container).
- `dcvc_rt`: the project's DCVC-RT (`disco_train.codec.dcvc_rt`), imported lazily because it needs its weights
  under `checkpoints/dcvc_rt/` (or `weights_dir='synthetic'`: the deterministic test weights); QP 0 (lowest
  quality) to 63, `DCVC_DEFAULT_QP` when none is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from disco_train.config.codec import DCVC_RT_DIR as DCVC_DEFAULT_DIR
from disco_train.config.hub import MissingWeightsError, resolve_weights
from disco_train.codec.standard import container_overhead, decode_bitstream, encode_bitstream
from disco_train.codec.videoio import VideoError

DCVC_DEFAULT_QP = 32  # the highest-quality point of the paper's DCVC-RT grid {0, 8, 16, 24, 32} (§4.2; 0 is lowest)
DCVC_WEIGHTS = ("cvpr2025_image.pth.tar", "cvpr2025_video.pth.tar")
SYNTHETIC = "synthetic"
"""`weights_dir` naming DCVC-RT's deterministic golden-rule weights (tests and benchmarks without checkpoints; the
streams are real, the reconstructions are not meaningful). Encoder and decoder must both use them."""


class CodecUnavailable(FileNotFoundError):
    """A backend whose weights (or binary) are missing from this installation; the message names the file and the
    key that points at it."""


@dataclass(frozen=True)
class CodecBackend:
    name: str
    encode: Callable[..., bytes]
    """(frames uint8 [T,H,W,3], fps, crf | None, qp | None, weights_dir, key) -> bitstream bytes."""
    decode: Callable[..., np.ndarray]
    """(bitstream, weights_dir, expect, key) -> frames uint8 [T,H,W,3]; `expect` = (frames, height, width) or None,
    checked before frames are decoded beyond it."""
    has_container: bool
    """Whether an mp4 container could hold this stream (then its overhead is reported beside the rate)."""


def _pyav(name: str) -> CodecBackend:
    def encode(frames, fps, crf, qp, weights_dir=None, key=None):
        return encode_bitstream(frames, fps, name, crf=crf, qp=qp)

    def decode(data, weights_dir=None, expect=None, key=None):
        return decode_bitstream(data, name, expect)

    return CodecBackend(name, encode, decode, True)


def _dcvc_api(weights_dir: str | None, key: str):
    """The DCVC-RT API and a codec: loaded from `weights_dir`, or the synthetic test weights ('synthetic').
    `key` is the setting that names the folder, for the message when its files are missing."""
    from disco_train.codec.dcvc_rt import api

    if weights_dir == SYNTHETIC:
        return api, api.synthetic_codec()
    return api, api.load_codec(str(check_dcvc_weights(weights_dir, key)))


def check_dcvc_weights(weights_dir: str | None, key: str = "dcvc_rt_dir") -> Path | None:
    """The local folder holding both official checkpoint files (a Hub repo id is fetched); CodecUnavailable names
    the key and the missing files."""
    if weights_dir == SYNTHETIC:
        return None
    try:
        folder = resolve_weights(weights_dir or DCVC_DEFAULT_DIR, key, "DCVC-RT weights folder", list(DCVC_WEIGHTS))
    except MissingWeightsError as err:
        raise CodecUnavailable(str(err)) from None
    missing = [name for name in DCVC_WEIGHTS if not (folder / name).is_file()]
    if missing:
        raise CodecUnavailable(f"{key}={weights_dir or DCVC_DEFAULT_DIR}: DCVC-RT weights {missing} not found; put "
                               f"the official release files there (see checkpoints/README.md)")
    return folder


def _dcvc_encode(frames, fps, crf, qp, weights_dir=None, key="dcvc_rt_dir"):
    api, codec = _dcvc_api(weights_dir, key)
    return api.encode_video(frames, qp=DCVC_DEFAULT_QP if qp is None else qp, codec=codec)


def _dcvc_decode(data, weights_dir=None, expect=None, key="dcvc_rt_dir"):
    api, codec = _dcvc_api(weights_dir, key)
    return api.decode_video(bytes(data), codec=codec, expect=expect)


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
           weights_dir: str | None = None, key: str = "dcvc_rt_dir") -> tuple[bytes, dict]:
    """Code frames; returns (bitstream, info) with info['container_overhead_bytes'] where a container applies.
    `key`: the setting naming `weights_dir`, for messages."""
    backend = get(name)
    data = backend.encode(frames, fps, crf, qp, weights_dir, key)
    info = {"container_overhead_bytes": container_overhead(data, name, fps)} if backend.has_container else {}
    return data, info


def decode(name: str, data: bytes, weights_dir: str | None = None, expect: tuple[int, int, int] | None = None,
           key: str = "dcvc_rt_dir") -> np.ndarray:
    """Decode a stream; with `expect` = (frames, height, width), a stream of other sizes is a DecodeError before it
    costs more than one frame (x264/x265) or any network run (dcvc_rt)."""
    return get(name).decode(bytes(data), weights_dir, expect, key)
