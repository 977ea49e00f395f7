"""The shard format: one WebDataset sample per clip. Written by `datamodules.prepare`, read by `datamodules.shards`.

A shard folder holds `train-NNNNNN.tar` (complete shards only), `index.jsonl` ({video, shard} per finished
video), `failures.jsonl` ({video, reason, time} per skipped video) and `prepare_config.json` (the settings).

Fields of a sample (tar members `<key>.<field>`):

| field                 | content                                                                                  |
|-----------------------|------------------------------------------------------------------------------------------|
| `__key__`             | `<source stem>_c<clip index>`: letters, digits, '-' and '_' only (WebDataset splits on dots) |
| `video.mp4`           | the target clip, frames × height × width, H.264 at `target_crf` (near-lossless target)   |
| `caption.zlib`        | the caption, UTF-8, zlib level 9: the exact text bitstream                               |
| `degraded.bin`        | the degraded-video bitstream: raw Annex-B H.264/HEVC (`codec` x264/x265) or DCVC-RT bytes |
| `sketch.bin`          | optional (`sketch=true`): the sketch-video bitstream, coded by `sketch_codec`            |
| `pose.xz`             | optional (`pose=true`): `disco_train.modalities.pose.encode_poses` bytes (134 keypoints, uint16, LZMA) |
| `latents.safetensors` | optional (`precompute=true`): VAE `target`, `degraded` (and `sketch` / `pose`) [C,F,h,w]; |
|                       | T5 `text` [L,D] and `text_mask` [L] (see `datamodules.latents`)                           |
| `meta.json`           | every parameter and the bits of each modality (below)                                    |

`meta.json` keys:
- always: source, clip_index, start_frame, fps (source rate; clips are cut at it), frames, height, width,
  source_height, source_width, resized_up (a side was enlarged: the source was smaller than the clip), ds, dt,
  codec, crf, qp (-1 = crf used), target_crf, caption_source ('file', 'captioner' or 'default'),
  degraded_frames, degraded_height, degraded_width, container_overhead_bytes (x264/x265 only: what an mp4 would
  add; not counted in the rate), bits {text, video[, sketch][, pose]}, bpp, format_version;
- with `sketch.bin`: sketch_codec, sketch_crf, sketch_qp, sketch_ds, sketch_dt, sketch_frames, sketch_height,
  sketch_width, sketch_container_overhead_bytes (x264/x265);
- with `pose.xz`: pose_max_people;
- with `latents.safetensors`: latents {fill, model, dtype, max_text_tokens, shapes}.

`bits[m]` = 8 × the byte length of modality m's bitstream, and bpp = sum(bits) / (frames × height × width), so
the rate can be recomputed from the shard alone.
"""

from __future__ import annotations

import re

FORMAT_VERSION = 2  # 2: optional sketch/pose/latents fields, caption_source, target_crf
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
LATENT_META_KEYS = ("latents",)
_KEY_OK = re.compile(r"[^A-Za-z0-9_-]+")


def sample_key(source_stem: str, clip_index: int) -> str:
    """Dot-free, tar-safe key. 'clip.v2 (1)' clip 3 -> 'clip-v2-1_c0003'."""
    stem = _KEY_OK.sub("-", source_stem).strip("-") or "video"
    return f"{stem}_c{clip_index:04d}"


def bpp(bits: dict[str, int], frames: int, height: int, width: int) -> float:
    """Bits per pixel of all transmitted modalities: 57×512×512 clip at 0.005 bpp = 74,711 bits."""
    return sum(bits.values()) / float(frames * height * width)
