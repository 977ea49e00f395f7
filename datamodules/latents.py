"""Precomputed VAE latents and T5 embeddings (`prepare precompute=true`), and reading them back.

What is encoded is exactly what training would encode on the fly (`disco_train.decoder.encoders`, same functions):
- `target`: the stored target clip, decoded from `video.mp4` (the pixels training would read), [C,F,h,w];
- `degraded`: the degraded bitstream decoded as the receiver would, bilinearly upsampled and temporally filled
  (`fill`, recorded in meta) to the clip size, [C,F,h,w]; with `reference=compact` (recorded too) not upsampled:
  the grid of the coded size / ds (`condition.reference=compact`);
- `sketch` / `pose`: the decoded sketch video (upsampled, forward-filled) / the rendered pose frames, [C,F,h,w];
- `text` [L,D] and `text_mask` [L]: T5 of the caption, padded to `model.max_text_tokens`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from disco_train.codec.container import Pattern, Stream
from disco_train.codec.receiver import restore_aux, restore_video
from disco_train.config import ConfigError, PrepareConfig
from disco_train.io.video import read_video

LATENT_KEYS = ("target", "degraded", "text", "text_mask")
AUX_KEYS = ("sketch", "pose")
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
MASK_DTYPES = (torch.int64, torch.int32, torch.bool)


@dataclass(frozen=True)
class LatentSpec:
    """What precomputed latents must look like for a model and clip size, checked per sample."""

    channels: int
    """VAE latent channels (the transformer's in_channels)."""
    text_dim: int
    """T5 hidden size (the transformer's caption_channels)."""
    text_tokens: int
    """T5 sequence length (model.max_text_tokens)."""
    grid: tuple[int, int, int]
    """Latent frames × height × width of the clip."""

    @classmethod
    def of(cls, model_cfg, data_cfg) -> "LatentSpec":
        from disco_train.config.geometry import latent_grid
        from disco_train.decoder.models import transformer_config

        arch = transformer_config(model_cfg.name, model_cfg.family)
        # LTX-2.3/2.5 (no caption projection): the connectors give the video stream cross_attention_dim-wide states
        text_dim = arch["caption_channels"] if arch.get("use_prompt_embeddings", True) else arch["cross_attention_dim"]
        return cls(arch["in_channels"], text_dim, model_cfg.max_text_tokens,
                   latent_grid(data_cfg.frames, data_cfg.height, data_cfg.width))

    def check(self, tensors: dict, key) -> None:
        """ValueError naming the sample, the tensor, and both shapes or dtypes, for latents that do not fit."""
        video = (self.channels, *self.grid)
        want = {"target": video, "degraded": video, "aux_latents": video, "text": (self.text_tokens, self.text_dim),
                "text_mask": (self.text_tokens,)}
        for name, tensor in tensors.items():
            dtypes = MASK_DTYPES if name == "text_mask" else FLOAT_DTYPES
            if tensor.dtype not in dtypes:
                raise ValueError(f"sample {key}: latents {name} are {tensor.dtype}, expected one of "
                                 f"{[str(d) for d in dtypes]}")
            if tuple(tensor.shape) != want[name]:
                raise ValueError(f"sample {key}: latents {name} have shape {tuple(tensor.shape)}, this model and "
                                 f"clip size need {want[name]}")


class PrecomputeStage:
    def __init__(self, cfg: PrepareConfig):
        self.cfg, self.vae, self.text_encoder, self.tokenizer = cfg, None, None, None
        self._last: dict = {}  # the previous sample's shared tensors: a clip's grid points share them

    def preflight(self) -> None:
        from disco_train.decoder.models import MissingWeightsError, check_weights_present, load_encoders

        try:
            check_weights_present(self.cfg.model)
        except MissingWeightsError as err:
            raise ConfigError(f"precompute=true: {err}") from None
        self.vae, self.text_encoder, self.tokenizer = load_encoders(self.cfg.model, self.cfg.seed)
        self.vae.to(self.cfg.device)
        self.text_encoder.to(self.cfg.device)

    def _encode(self, frames: np.ndarray) -> torch.Tensor:
        from disco_train.decoder.encoders import encode_video

        return encode_video(self.vae, torch.from_numpy(np.ascontiguousarray(frames))[None])[0]

    def _shared(self, name: str, data, make):
        """A tensor that depends only on `data` (the target, a sketch or pose stream, the caption): computed once
        for the consecutive grid points of a clip, which carry the same bytes."""
        if name not in self._last or self._last[name][0] != data:
            self._last[name] = (data, make())
        return self._last[name][1]

    def aux_frames(self, sample: dict, meta: dict) -> dict[str, np.ndarray]:
        cfg, out = self.cfg, {}
        if "sketch.bin" in sample:
            stream = Stream("sketch", meta["sketch_codec"], sample["sketch.bin"], meta["sketch_ds"], meta["sketch_dt"])
            out["sketch"] = restore_aux(stream, cfg.frames, cfg.height, cfg.width, cfg.send.sketch_dcvc_weights(),
                                        pattern=Pattern.of_settings(cfg.send))
        if "pose.xz" in sample:
            out["pose"] = restore_aux(Stream("pose", "lzma", sample["pose.xz"]), cfg.frames, cfg.height, cfg.width)
        return out

    def apply(self, caption: str, sample: dict, meta: dict) -> None:
        from disco_train.decoder.encoders import encode_text

        cfg = self.cfg
        video = bytes(sample["video.mp4"])
        # each sample's own rate point (a grid gives every sample its own ds/dt/qp)
        cond = restore_video(sample["degraded.bin"], meta["codec"], meta["ds"], meta["dt"], cfg.frames, cfg.height,
                             cfg.width, cfg.fill, cfg.send.dcvc_rt_dir, pattern=Pattern.of_settings(cfg.send),
                             reference=cfg.reference)
        tensors = {"target": self._shared("target", video, lambda: self._encode(read_video(
                       video, max_frames=cfg.frames, size=(cfg.height, cfg.width))[0])),
                   "degraded": self._encode(cond)}
        aux = {name: sample[field] for name, field in (("sketch", "sketch.bin"), ("pose", "pose.xz"))
               if field in sample}
        if aux:
            frames = self._shared("aux", tuple(bytes(v) for v in aux.values()),
                                  lambda: {n: self._encode(f) for n, f in self.aux_frames(sample, meta).items()})
            tensors.update(frames)
        text, mask = self._shared("text", caption.encode(), lambda: [t[0] for t in encode_text(
            self.text_encoder, self.tokenizer, [caption], cfg.model.max_text_tokens, cfg.device)])
        tensors["text"], tensors["text_mask"] = text, mask
        sample["latents.safetensors"] = save_safetensors({k: v.detach().cpu().contiguous()
                                                          for k, v in tensors.items()})
        meta["latents"] = {"fill": cfg.fill, "reference": cfg.reference, "model": cfg.model.name, "dtype": cfg.model.dtype,
                           "max_text_tokens": cfg.model.max_text_tokens,
                           "shapes": {k: list(v.shape) for k, v in tensors.items()}}


def read_latents(sample: dict, meta: dict, fill: str, aux: str, spec: LatentSpec | None = None,
                 reference: str = "full") -> dict[str, torch.Tensor]:
    """latents.safetensors -> {target, degraded, text, text_mask[, aux_latents]}, checked against `spec` (shapes,
    dtypes). ValueError if unusable."""
    info = meta.get("latents") or {}
    for key, want in (("fill", fill), ("reference", reference)):
        if info.get(key, "full" if key == "reference" else None) != want:
            raise ValueError(f"sample {sample.get('__key__')}: latents were made with {key} {info.get(key)!r}, "
                             f"training uses {want!r}; set data.latents=never or re-run prepare with {key}={want}")
    try:
        tensors = load_safetensors(bytes(sample["latents.safetensors"]))
    except Exception as err:  # safetensors raises its own error types on corrupt headers
        raise ValueError(f"sample {sample.get('__key__')}: unreadable latents.safetensors ({err})") from None
    missing = [k for k in LATENT_KEYS + ((aux,) if aux != "none" else ()) if k not in tensors]
    if missing:
        raise ValueError(f"sample {sample.get('__key__')}: latents.safetensors lacks {missing}")
    out = {k: tensors[k] for k in LATENT_KEYS}
    if reference == "compact":
        return compact_latents(out, tensors, meta, aux, spec, sample.get("__key__"))
    if out["target"].shape != out["degraded"].shape:
        raise ValueError(f"sample {sample.get('__key__')}: target latents {tuple(out['target'].shape)} and "
                         f"degraded latents {tuple(out['degraded'].shape)} differ")
    if aux != "none":
        out["aux_latents"] = tensors[aux]
    if spec is not None:
        spec.check(out, sample.get("__key__"))
    return out


def compact_latents(out: dict, tensors: dict, meta: dict, aux: str, spec: LatentSpec | None, key) -> dict:
    """read_latents for `condition.reference=compact`: `degraded` is the grid of the coded size / ds (frames and
    channels the target's), the rest as with full references."""
    from disco_train.config.geometry import SPATIAL, compact_size

    c, f, h, w = out["target"].shape
    ds = int(meta["ds"])
    want = (c, f, *(n // SPATIAL for n in compact_size(h * SPATIAL, w * SPATIAL, ds)))
    if tuple(out["degraded"].shape) != want:
        raise ValueError(f"sample {key}: compact degraded latents {tuple(out['degraded'].shape)}, expected {want} "
                         f"(ds={ds})")
    if aux != "none":
        out["aux_latents"] = tensors[aux]
    if spec is not None:
        spec.check({k: v for k, v in out.items() if k != "degraded"}, key)
    return out
