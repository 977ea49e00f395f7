"""The shard format: one WebDataset sample per clip. Written by `datamodules.prepare`, read by `datamodules.shards`.

Fields of a sample (tar members `<key>.<field>`):

| field           | content                                                                                     |
|-----------------|---------------------------------------------------------------------------------------------|
| `__key__`       | `<source stem>_c<clip index>`: letters, digits, '-' and '_' only (WebDataset splits on dots) |
| `video.mp4`     | the target clip, frames × height × width, H.264 at `target_crf` (near-lossless training target) |
| `caption.zlib`  | the caption, UTF-8, zlib: the exact text bitstream                                          |
| `degraded.bin`  | the degraded-video bitstream: raw Annex-B H.264/HEVC (`codec` x264/x265) or DCVC-RT bytes     |
| `sketch.bin`    | optional: the sketch bitstream (codec in meta.sketch_codec)                                  |
| `pose.xz`       | optional: the pose bitstream (`disco_train.pose.encode_poses`)                               |
| `latents.safetensors` | optional: precomputed VAE latents `target` [C,F,H,W], `degraded` [C,F,H,W] and T5 `text` [L,D], `text_mask` [L] |
| `meta.json`     | every parameter and the bits of each modality (see `clip_meta`)                              |

`meta.json` keys: source, clip_index, start_frame, fps, frames, height, width, source_height, source_width,
resized_up, ds, dt, codec, crf, qp, degraded_height, degraded_width, degraded_frames, bits {text, video, sketch,
pose}, container_overhead_bytes, bpp, format_version. bpp = sum(bits) / (frames × height × width) can be
recomputed from the shard alone.
"""

from __future__ import annotations

import re

FORMAT_VERSION = 1
REQUIRED_FIELDS = ("video.mp4", "caption.zlib", "degraded.bin", "meta.json")
AUX_FIELDS = {"sketch": "sketch.bin", "pose": "pose.xz"}
_KEY_OK = re.compile(r"[^A-Za-z0-9_-]+")


def sample_key(source_stem: str, clip_index: int) -> str:
    """Dot-free, tar-safe key. 'clip.v2 (1)' clip 3 -> 'clip-v2-1_c0003'."""
    stem = _KEY_OK.sub("-", source_stem).strip("-") or "video"
    return f"{stem}_c{clip_index:04d}"


def bpp(bits: dict[str, int], frames: int, height: int, width: int) -> float:
    """Bits per pixel of all transmitted modalities: 57×512×512 clip at 0.005 bpp = 74,711 bits."""
    return sum(bits.values()) / float(frames * height * width)
