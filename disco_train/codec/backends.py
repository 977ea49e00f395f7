"""Video codec backends by name: the one registry every sender and receiver codes video-like streams through.

The degraded video (`codec`) and the sketch video (`sketch_codec`) of `prepare`, `encode`, training-data
decoding and `decode` all go through `encode`/`decode` here, so a shard's `meta.codec` / `meta.sketch_codec` and a
`.disco` stream's codec name a key of `BACKENDS`.

- `x264` / `x265`: PyAV (libx264 / libx265) at a CRF or a constant QP, raw Annex-B streams (no container, no
  encoder-info SEI); option `preset` (default medium).
- `vvenc`: H.266 by the external vvencapp (`codec.vvenc`) at a constant QP 0-63 (`VVENC_DEFAULT_QP` when none is
  given; it has no CRF), decoded by PyAV; options `preset`, `app` (the binary; else $VVENC_APP, else PATH), `qpa`,
  `intra_period`.
- `dcvc_rt`: the project's DCVC-RT (`disco_train.dcvc_rt`), imported lazily because it needs its weights
  under `checkpoints/dcvc_rt/` (or `weights_dir='synthetic'`: the deterministic test weights); QP 0 (lowest
  quality) to 63, `DCVC_DEFAULT_QP` when none is given; options `device` (the torch device it runs on; encode and
  decode on the same kind of device) and `stream_format`: 'disco' (default: 19 header bytes + 14 per frame with
  CRCs) or 'official' (microsoft/DCVC's SPS/NAL bytes, no checksums; what the benchmark counts for the DCVC-RT
  baseline).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from disco_train.codec.standard import DEFAULT_PRESET, container_overhead, decode_bitstream, encode_bitstream
from disco_train.config.codec import DCVC_RT_DIR as DCVC_DEFAULT_DIR
from disco_train.io.hub import MissingWeightsError, resolve_weights
from disco_train.io.video import VideoError

VVENC_DEFAULT_QP = 37  # the highest of the four QPs {22, 27, 32, 37} of the JVET common test conditions
DCVC_DEFAULT_QP = 32  # the highest-quality point of the paper's DCVC-RT grid {0, 8, 16, 24, 32} (§4.2; 0 is lowest)
DCVC_WEIGHTS = ("cvpr2025_image.pth.tar", "cvpr2025_video.pth.tar")
SYNTHETIC = "synthetic"
"""`weights_dir` naming DCVC-RT's deterministic golden-rule weights (tests and benchmarks without checkpoints; the
streams are real, the reconstructions are not meaningful). Encoder and decoder must both use them."""


def used_qp(codec: str, qp: int | None) -> int:
    """The QP a stream is coded at, as shards and exports record it: -1 (crf) for x264/x265, DCVC-RT's default
    for dcvc_rt and vvenc's for vvenc when none is set."""
    qp = -1 if qp is None else qp
    if qp < 0 and codec in ("dcvc_rt", "vvenc"):
        return DCVC_DEFAULT_QP if codec == "dcvc_rt" else VVENC_DEFAULT_QP
    return qp


class CodecUnavailable(FileNotFoundError):
    """A backend whose weights (or binary) are missing from this installation; the message names the file and the
    key that points at it."""


@dataclass(frozen=True)
class CodecBackend:
    name: str
    encode: Callable[..., bytes]
    """(frames uint8 [T,H,W,3], fps, crf | None, qp | None, weights_dir, key, **options) -> bitstream bytes."""
    decode: Callable[..., np.ndarray]
    """(bitstream, weights_dir, expect, key, **options) -> frames uint8 [T,H,W,3]; `expect` = (frames, height,
    width) or None, checked before frames are decoded beyond it."""
    has_container: bool
    """Whether an mp4 container could hold this stream (then its overhead is reported beside the rate)."""


def _pyav(name: str) -> CodecBackend:
    def encode(frames, fps, crf, qp, weights_dir=None, key=None, preset=DEFAULT_PRESET):
        return encode_bitstream(frames, fps, name, crf=crf, qp=qp, preset=preset)

    def decode(data, weights_dir=None, expect=None, key=None):
        return decode_bitstream(data, name, expect)

    return CodecBackend(name, encode, decode, True)


def _dcvc_api(weights_dir: str | None, key: str, device: str = "cpu"):
    """The DCVC-RT API and a codec: loaded from `weights_dir`, or the synthetic test weights ('synthetic').
    `key` is the setting that names the folder, for the message when its files are missing."""
    from disco_train.dcvc_rt import api

    if weights_dir == SYNTHETIC:
        return api, api.synthetic_codec(device=device)
    return api, api.load_codec(str(check_dcvc_weights(weights_dir, key)), device=device)


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


def _vvenc_encode(frames, fps, crf, qp, weights_dir=None, key=None, preset=None, app="", qpa=True, intra_period=0):
    from disco_train.codec import vvenc

    try:
        return vvenc.encode(frames, fps, VVENC_DEFAULT_QP if qp is None else qp, preset or vvenc.DEFAULT_PRESET,
                            app, qpa, intra_period)
    except vvenc.VvencUnavailable as err:
        raise CodecUnavailable(str(err)) from None


def _vvenc_decode(data, weights_dir=None, expect=None, key=None):
    return decode_bitstream(data, "vvenc", expect)


def _dcvc_encode(frames, fps, crf, qp, weights_dir=None, key="dcvc_rt_dir", device="cpu", stream_format="disco"):
    api, codec = _dcvc_api(weights_dir, key, device)
    # The official byte format carries no thread count: its encoder runs one thread, as the official one does.
    threads = 1 if stream_format == "official" else None
    return api.encode_video(frames, qp=DCVC_DEFAULT_QP if qp is None else qp, codec=codec, threads=threads,
                            stream_format=stream_format)


def _dcvc_decode(data, weights_dir=None, expect=None, key="dcvc_rt_dir", device="cpu"):
    api, codec = _dcvc_api(weights_dir, key, device)
    return api.decode_video(bytes(data), codec=codec, expect=expect)


BACKENDS: dict[str, CodecBackend] = {
    "x264": _pyav("x264"),
    "x265": _pyav("x265"),
    "dcvc_rt": CodecBackend("dcvc_rt", _dcvc_encode, _dcvc_decode, False),
    "vvenc": CodecBackend("vvenc", _vvenc_encode, _vvenc_decode, False),
}


def get(name: str) -> CodecBackend:
    if name not in BACKENDS:
        raise VideoError(f"unknown codec backend {name!r}; choose one of {sorted(BACKENDS)}")
    return BACKENDS[name]


def encode(name: str, frames: np.ndarray, fps: float, crf: int | None = None, qp: int | None = None,
           weights_dir: str | None = None, key: str = "dcvc_rt_dir", **options) -> tuple[bytes, dict]:
    """Code frames; returns (bitstream, info) with info['container_overhead_bytes'] where a container applies.
    `key`: the setting naming `weights_dir`, for messages; `options`: the backend's own settings (x264/x265:
    preset; vvenc: preset, app, qpa, intra_period; dcvc_rt: device, stream_format)."""
    backend = get(name)
    data = backend.encode(frames, fps, crf, qp, weights_dir, key, **options)
    info = {"container_overhead_bytes": container_overhead(data, name, fps)} if backend.has_container else {}
    return data, info


def decode(name: str, data: bytes, weights_dir: str | None = None, expect: tuple[int, int, int] | None = None,
           key: str = "dcvc_rt_dir", **options) -> np.ndarray:
    """Bitstream -> frames uint8 [T,H,W,3]. With `expect` = (frames, height, width), a stream of other sizes is a
    DecodeError before it costs more than one frame (x264/x265/vvenc) or any network run (dcvc_rt); `options`:
    dcvc_rt's device."""
    return get(name).decode(bytes(data), weights_dir, expect, key, **options)
