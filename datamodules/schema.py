"""The shard format: one WebDataset sample per clip. Written by `datamodules.prepare`, read by `datamodules.shards`.

A shard folder holds `train-NNNNNN.tar` (complete shards only), `index.jsonl` ({video, shard, coded} per
finished video; `coded` = `datamodules.coded.summarize` of its samples' meta.json: their rate points
{ds, dt, codec, qp, crf}, fps, sketch settings, pose_max_people and codec weights, so the set a decoder trained on
is known without reading the tars), `failures.jsonl` ({video, reason, time[, retry]} per skipped video),
`prepare_config.json` (the settings), `done.json` (the last finished run's summary) and `prepare.lock` (held
while a run writes). A folder prepared in N parts (`part=K/N`) holds `train-pKKK-NNNNNN.tar`, `index-pKKK.jsonl`,
`failures-pKKK.jsonl`, `done-pKKK.json` and `prepare-pKKK.lock` per part and, once merged, the combined
`index.jsonl` and `failures.jsonl` of all parts (`datamodules.parts`); `train-*.tar` matches the shards of either
layout.

Fields of a sample (tar members `<key>.<field>`):

| field                 | content                                                                                  |
|-----------------------|------------------------------------------------------------------------------------------|
| `__key__`             | `<name>_c<clip index>` from the source's path relative to the input root (`sample_key`); |
|                       | with `grid=all` over several rate points, `_<point>` follows (`grid_key`)                |
| `video.mp4`           | the target clip, frames × height × width, H.264 at `target_crf` (near-lossless target)   |
| `caption.zlib`        | the caption, UTF-8, zlib level 9: the exact text bitstream                               |
| `degraded.bin`        | the degraded-video bitstream: raw Annex-B H.264/HEVC (`codec` x264/x265) or DCVC-RT bytes |
| `sketch.bin`          | optional (`sketch=true`): the sketch-video bitstream, coded by `sketch_codec`            |
| `sketch.mkv`          | optional (`sketch_frames=true`): the extracted sketch frames, lossless FFV1 gray (frames × |
|                       | height × width): sketch-codec training data; with grid=all only the clip's first point's |
| `pose.xz`             | optional (`pose=true`): `disco_train.modalities.pose.encode_poses` bytes (134 keypoints, uint16, LZMA) |
| `latents.safetensors` | optional (`precompute=true`): VAE `target`, `degraded` (and `sketch` / `pose`) [C,F,h,w]; |
|                       | T5 `text` [L,D] and `text_mask` [L] (see `datamodules.latents`)                           |
| `meta.json`           | every parameter and the bits of each modality (below)                                    |

`meta.json` keys:
- always: source, clip_index, start_frame, fps (source rate; clips are cut at it), frames, height, width,
  source_height, source_width, resized_up (a side was enlarged: the source was smaller than the clip), ds, dt,
  codec, crf, qp (the constant QP used; -1 = x264/x265 at crf; ds, dt, qp and crf are the sample's own grid
  point), target_crf, caption_source ('file', 'captioner' or 'default'), degraded_frames, degraded_height,
  degraded_width, container_overhead_bytes (x264/x265 only: what an mp4 would add; not counted in the rate),
  bits {text, video[, sketch][, pose]}, bpp, format_version;
- with `sketch.bin`: sketch_codec, sketch_crf, sketch_qp (as qp), sketch_ds, sketch_dt, sketch_frames,
  sketch_height, sketch_width, sketch_container_overhead_bytes (x264/x265);
- with `pose.xz`: pose_max_people;
- codec=dcvc_rt: dcvc_rt_dir; sketch_codec=dcvc_rt: sketch_dcvc_dir (the weights folders used, as given);
- with `stream=selected`: stream, interleave_ratio, interleave_unit (each stream then holds only what those
  interleaved tokens read, `disco_train.codec.selection`; degraded_frames / sketch_frames count the frames coded;
  without these keys the streams are full);
- with `latents.safetensors`: latents {fill, model, dtype, max_text_tokens, shapes}.

`bits[m]` = 8 × the byte length of modality m's bitstream, and bpp = sum(bits) / (frames × height × width), so
the rate can be recomputed from the shard alone.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import PurePosixPath

FORMAT_VERSION = 4
"""2: optional sketch/pose/latents fields, caption_source, target_crf. 3: keys from the path relative to the input
root (unique per video), qp / sketch_qp record the DCVC-RT QP used instead of -1. 4: rate grids (a key suffix per
point, each sample's own ds/dt/qp/crf), dcvc_rt_dir / sketch_dcvc_dir, sketch.mkv, `coded` in index rows, selected
streams (the stream / interleave_* keys)."""
REQUIRED_FIELDS = ("video.mp4", "caption.zlib", "degraded.bin", "meta.json")
AUX_FIELDS = {"sketch": "sketch.bin", "pose": "pose.xz"}
STREAM_FIELDS = {"text": "caption.zlib", "video": "degraded.bin", **AUX_FIELDS}
"""The sender's stream kinds (as in a .disco container) -> the tar member holding each."""
META_KEYS = ("source", "clip_index", "start_frame", "fps", "frames", "height", "width", "source_height",
             "source_width", "resized_up", "ds", "dt", "codec", "crf", "qp", "target_crf", "caption_source",
             "degraded_frames", "degraded_height", "degraded_width", "bits", "bpp", "format_version")
"""Keys of every meta.json (plus container_overhead_bytes for x264/x265 and the optional groups below)."""
SKETCH_META_KEYS = ("sketch_codec", "sketch_crf", "sketch_qp", "sketch_ds", "sketch_dt", "sketch_frames",
                    "sketch_height", "sketch_width")
POSE_META_KEYS = ("pose_max_people",)
WEIGHT_META_KEYS = ("dcvc_rt_dir", "sketch_dcvc_dir")
"""Recorded when the degraded video (dcvc_rt_dir) or the sketch (sketch_dcvc_dir) is coded by DCVC-RT."""
SKETCH_FRAMES_FIELD = "sketch.mkv"
SELECTED_META_KEYS = ("stream", "interleave_ratio", "interleave_unit")
LATENT_META_KEYS = ("latents",)
_KEY_BAD = re.compile(r"[^A-Za-z0-9_-]+")
_PLAIN = re.compile(r"[A-Za-z0-9_-]+\.mp4")


def sample_key(name: str, clip_index: int) -> str:
    """Dot-free, tar-safe key of clip `clip_index` of the video at relative path `name` (posix).

    A plain `<letters, digits, - _>.mp4` at the input root keeps its stem: 'v07.mp4' -> 'v07_c0000'. Any other
    name is sanitised and gets 8 hex digits of the SHA-1 of the whole name, so names that sanitise alike stay
    apart: 'a/video.mp4' -> 'a-video-<hash>_c0000', 'clip.mkv' and 'clip.mov' -> 'clip-<hash>_c0000' with two
    different hashes. `datamodules.inputs.check_unique` refuses a listing in which two keys still collide."""
    if _PLAIN.fullmatch(name):
        return f"{name[:-4]}_c{clip_index:04d}"
    stem = _KEY_BAD.sub("-", str(PurePosixPath(name).with_suffix(""))).strip("-") or "video"
    return f"{stem}-{hashlib.sha1(name.encode()).hexdigest()[:8]}_c{clip_index:04d}"


def grid_key(key: str, ds: int, dt: int, qp: int, crf: int) -> str:
    """The key of one grid point's sample of clip `key` (grid=all over several points): `<key>_ds<D_s>_dt<D_t>_`
    then `qp<QP>` (the QP used), or `crf<CRF>` for x264/x265 at qp = -1: 'v07_c0000_ds2_dt4_qp16'. Digits,
    letters and '_' only, so the key stays dot-free and tar-safe."""
    return f"{key}_ds{ds}_dt{dt}_" + (f"qp{qp}" if qp >= 0 else f"crf{crf}")


def bpp(bits: dict[str, int], frames: int, height: int, width: int) -> float:
    """Bits per pixel of all transmitted modalities: 57×512×512 clip at 0.005 bpp = 74,711 bits."""
    return sum(bits.values()) / float(frames * height * width)
