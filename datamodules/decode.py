"""One raw shard sample -> training tensors (schema: `datamodules.schema`). Pure: no pipeline state.

Two paths:
- latents: `latents.safetensors` -> target, degraded, text, text_mask (and aux_latents); no video is decoded;
- raw: the target mp4 -> `video` uint8 [T,H,W,3]; the degraded bitstream (at the sample's own ds/dt/codec, with
  the DCVC-RT weights of `data.dcvc_rt_dir`, else those its meta records), upsampled and temporally filled ->
  `cond` uint8 [T,H,W,3]; with an auxiliary modality, `aux` uint8 [T,H,W,3] aligned with the target frames
  (sketch: decoded, upsampled, forward-filled; pose: decoded keypoints rendered as skeleton frames).
Selected streams (meta.json `stream: selected`) are restored by the receiver's functions under the pattern the
sample records, which must be the run's (`condition.stream`, `interleave_unit`, `ratio`) when one is given.
Anything missing, corrupt or of the wrong shape raises ValueError/VideoError naming the sample.
"""

from __future__ import annotations

import json

import numpy as np
import torch

from datamodules.latents import LatentSpec, read_latents
from datamodules.schema import AUX_FIELDS, REQUIRED_FIELDS
from datamodules.tars import SKIPPED
from disco_train.codec.container import FULL, Pattern, Stream
from disco_train.codec.receiver import restore_aux, restore_video
from disco_train.config import DataConfig
from disco_train.io.video import read_video
from disco_train.modalities.text import decode_text


def _meta(sample: dict, cfg: DataConfig, exact_frames: bool) -> dict:
    key = sample.get("__key__")
    if "meta.json" not in sample:
        raise ValueError(f"sample {key}: missing field meta.json")
    try:
        meta = json.loads(sample["meta.json"])
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"sample {key}: unreadable meta.json ({err})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"sample {key}: meta.json holds a {type(meta).__name__}, not an object")
    frames_ok = meta.get("frames") == cfg.frames if exact_frames else int(meta.get("frames", 0)) >= cfg.frames
    if not frames_ok or (meta.get("height"), meta.get("width")) != (cfg.height, cfg.width):
        raise ValueError(f"sample {key}: clip {meta.get('frames')}×{meta.get('height')}×{meta.get('width')} does "
                         f"not fit data {cfg.frames}×{cfg.height}×{cfg.width}")
    return meta


def _fit(frames: np.ndarray, cfg: DataConfig, what: str, key) -> np.ndarray:
    if frames.shape[0] < cfg.frames or frames.shape[1:] != (cfg.height, cfg.width, 3):
        raise ValueError(f"sample {key}: {what} is {tuple(frames.shape)}, expected at least "
                         f"{cfg.frames}×{cfg.height}×{cfg.width}×3")
    return np.ascontiguousarray(frames[:cfg.frames])


def aux_frames(sample: dict, meta: dict, cfg: DataConfig, aux: str, pattern: Pattern = FULL) -> np.ndarray:
    """The auxiliary modality as pixel frames aligned with the target: uint8 [T,H,W,3], restored by the
    receiver's own functions (sketch: decoded, upsampled, forward-filled; pose: keypoints rendered)."""
    key, field = sample.get("__key__"), AUX_FIELDS[aux]
    if field not in sample:
        raise ValueError(f"sample {key}: missing field {field} (training uses aux={aux})")
    stream = (Stream("sketch", meta["sketch_codec"], bytes(sample[field]), int(meta["sketch_ds"]),
                     int(meta["sketch_dt"])) if aux == "sketch" else Stream("pose", "lzma", bytes(sample[field])))
    weights = cfg.sketch_dcvc_dir or meta.get("sketch_dcvc_dir") or None  # the sketch codec's, never the video's
    return _fit(restore_aux(stream, int(meta["frames"]), cfg.height, cfg.width, weights, pattern=pattern), cfg, aux,
                key)


def sample_pattern(meta: dict, key, want: Pattern | None) -> Pattern:
    """The stream pattern a sample was coded with (meta.json; none recorded: full), checked against `want`."""
    try:
        got = Pattern.of_settings(meta)
    except ValueError as err:
        raise ValueError(f"sample {key}: meta.json has a bad interleave_ratio ({err})") from None
    if want is not None and got != want:
        raise ValueError(f"sample {key}: its streams are {got} (meta.json), this run reads {want} "
                         f"(condition.stream, condition.interleave_unit, condition.ratio)")
    return got


def decode_sample(sample: dict, cfg: DataConfig, fill: str, aux: str = "none", latents: bool = False,
                  spec: LatentSpec | None = None, pattern: Pattern | None = None, reference: str = "full") -> dict:
    """Raw tar members -> {key, caption, fps, bpp[, ds]} plus the latent or the pixel tensors (module docstring).
    `pattern`: the run's stream pattern, which the sample's must be (None: whatever the sample says);
    `reference`: `condition.reference` (compact: `cond` stays at the coded size / ds, `codec.receiver`)."""
    key = sample.get("__key__")
    if SKIPPED in sample:
        raise ValueError(f"sample {key}: {sample[SKIPPED]}")
    meta = _meta(sample, cfg, exact_frames=latents)
    coded = sample_pattern(meta, key, pattern)
    if "caption.zlib" not in sample:
        raise ValueError(f"sample {key}: missing field caption.zlib")
    out = {"key": key, "caption": decode_text(bytes(sample["caption.zlib"])), "fps": float(meta["fps"]),
           "bpp": float(meta["bpp"])}
    if reference == "compact":  # the scale of the reference's RoPE positions (`decoder.conditioning`)
        if "ds" not in meta:
            raise ValueError(f"sample {key}: meta.json has no ds, which a compact reference needs")
        out["ds"] = int(meta["ds"])
    if latents:
        if "latents.safetensors" not in sample:
            raise ValueError(f"sample {key}: missing field latents.safetensors (data.latents uses them)")
        out.update(read_latents(sample, meta, fill, aux, spec, reference))
        return out
    missing = [f for f in REQUIRED_FIELDS if f not in sample]
    if missing:
        raise ValueError(f"sample {key}: missing fields {missing}")
    # checked against meta.json while it is read: a small member of huge frames stops at its first frame
    video, _ = read_video(bytes(sample["video.mp4"]), max_frames=cfg.frames, size=(cfg.height, cfg.width))
    cond = restore_video(bytes(sample["degraded.bin"]), meta["codec"], int(meta["ds"]), int(meta["dt"]),
                         int(meta["frames"]), cfg.height, cfg.width, fill, cfg.dcvc_rt_dir or meta.get("dcvc_rt_dir"),
                         pattern=coded, reference=reference)
    out["video"] = torch.from_numpy(_fit(video, cfg, "target video", key))
    out["cond"] = torch.from_numpy(_fit(cond, cfg, "restored degraded video", key) if reference == "full"
                                   else np.ascontiguousarray(cond[:cfg.frames]))
    if aux != "none":
        out["aux"] = torch.from_numpy(aux_frames(sample, meta, cfg, aux, coded))
    return out


def has_latents(sample: dict, fill: str, reference: str = "full") -> bool:
    """Whether a sample's precomputed latents are usable for training with `fill` and `reference` (unreadable
    meta: no)."""
    if "latents.safetensors" not in sample or "meta.json" not in sample:
        return False
    try:
        meta = json.loads(sample["meta.json"])
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return (isinstance(meta, dict) and isinstance(meta.get("latents"), dict) and meta["latents"].get("fill") == fill
            and meta["latents"].get("reference", "full") == reference)
