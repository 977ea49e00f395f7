"""The one layer that knows the backbone family (`model.family`): LTX-Video 0.9.x ('ltxv') or LTX-2 ('ltx2').

`DiscoDecoder`, the sampler and the in-context conditioning are family-free: they hand packed tokens, per-token
timesteps (σ·1000, 0 on condition tokens) and RoPE coordinates to `Family.forward`, and ask `Family.coords` for
the coordinates of a latent grid. What differs per family lives here:

- transformer / VAE classes and their configs (tiny ones built in code for tests and `*_debug` recipes);
- the text path: T5 hidden states (ltxv), or Gemma 3's stacked hidden states through `LTX2TextConnectors` (ltx2);
- RoPE coordinates: LTX-Video takes the patch corner in (seconds, pixels, pixels); LTX-2 takes [start, end)
  bounds per axis and uses their midpoint (`LTX2AudioVideoRotaryPosEmbed.prepare_video_coords`, whose VAE
  factors come from the transformer's own config `vae_scale_factors`);
- the call: LTX-2 is an audio+video model. DiSCo is video-only, so the least audio it accepts is passed — one
  zero audio latent token and one zero audio text token — with `isolate_modalities=True`, which switches off the
  audio-to-video and video-to-audio cross-attention of every block (diffusers' LTX2VideoTransformer3DModel), so
  the video output does not depend on the audio stream at all (tests/test_ltx2.py checks it). The audio stream's
  cost is then one token per block (bench/flops.py prints it).
"""

from __future__ import annotations

import torch
from torch import nn

from disco_train.config.geometry import SPATIAL, TEMPORAL


class Family:
    name = ""
    transformer_class = ""
    vae_class = ""
    text_what = ""

    def coords(self, transformer, frames: int, height: int, width: int, fps, batch: int, device=None):
        raise NotImplementedError

    def reference_coords(self, transformer, frames, height, width, fps, batch, ds, device=None):
        """Coordinates of a compact reference's grid (`condition.reference=compact`) on the target's grid."""
        raise NotImplementedError

    def forward(self, transformer, tokens, text, text_mask, timesteps, coords) -> torch.Tensor:
        raise NotImplementedError

    def text_width(self, config: dict) -> int:
        """Width of the text states the transformer of diffusers config `config` takes (what the text path gives)."""
        return config["caption_channels"]

    def check_lora(self, transformer: nn.Module) -> None:
        """Raise when the adapter reaches modules this family must not train."""


class LTXV(Family):
    name = "ltxv"
    transformer_class = "LTXVideoTransformer3DModel"
    vae_class = "AutoencoderKLLTXVideo"
    text_what = "T5 text encoder"

    def coords(self, transformer, frames, height, width, fps, batch, device=None):
        from disco_train.decoder.conditioning import latent_coords

        return latent_coords(frames, height, width, fps, batch, device)

    def reference_coords(self, transformer, frames, height, width, fps, batch, ds, device=None):
        from disco_train.decoder.conditioning import reference_coords

        return reference_coords(frames, height, width, fps, batch, ds, device)

    def forward(self, transformer, tokens, text, text_mask, timesteps, coords):
        return transformer(hidden_states=tokens, encoder_hidden_states=text, timestep=timesteps,
                           encoder_attention_mask=text_mask, video_coords=coords, return_dict=False)[0]


class LTX2(Family):
    name = "ltx2"
    transformer_class = "LTX2VideoTransformer3DModel"
    vae_class = "AutoencoderKLLTX2Video"
    text_what = "Gemma 3 text encoder"

    def coords(self, transformer, frames, height, width, fps, batch, device=None):
        """[B, 3, F·H·W, 2] patch bounds: diffusers' own `prepare_video_coords` at fps 1, then time ÷ each sample's
        fps (the pipeline takes one fps per call; a batch here may mix clips)."""
        coords = transformer.rope.prepare_video_coords(batch, frames, height, width, device, fps=1.0)
        fps = torch.as_tensor(fps, dtype=torch.float32, device=coords.device).reshape(-1, 1, 1).expand(batch, 1, 1)
        coords[:, 0] = coords[:, 0] / fps
        return coords

    def reference_coords(self, transformer, frames, height, width, fps, batch, ds, device=None):
        """LTX-2's own convention (diffusers `LTX2InContextPipeline._encode_reference_conditions`, ltx-trainer's
        `reference_downscale_factor`): the reference grid's [start, end) pixel bounds × D_s in space."""
        coords = self.coords(transformer, frames, height, width, fps, batch, device)
        coords[:, 1:] = coords[:, 1:] * ds
        return coords

    def forward(self, transformer, tokens, text, text_mask, timesteps, coords):
        b, cfg = tokens.shape[0], transformer.config
        audio_text_dim = cfg.caption_channels if cfg.use_prompt_embeddings else cfg.audio_cross_attention_dim
        audio = tokens.new_zeros(b, 1, cfg.audio_in_channels)
        audio_text = tokens.new_zeros(b, 1, audio_text_dim)
        # σ·1000 of the target tokens (the last token is one): LTX-2.3/2.5 modulate the prompt cross-attention by it
        # (the IC-LoRA pipeline passes its scalar t as `sigma`).
        sigma = timesteps[:, -1]
        return transformer(hidden_states=tokens, audio_hidden_states=audio, encoder_hidden_states=text,
                           audio_encoder_hidden_states=audio_text, timestep=timesteps,
                           audio_timestep=torch.zeros_like(sigma), sigma=sigma, audio_sigma=torch.zeros_like(sigma),
                           encoder_attention_mask=text_mask, audio_num_frames=1, video_coords=coords,
                           isolate_modalities=True, return_dict=False)[0]

    def text_width(self, config):
        """The connectors' output: Gemma's width for the transformer's caption projection (19B), else already the
        video stream's cross-attention width (LTX-2.3/2.5: `use_prompt_embeddings=False`)."""
        return config["caption_channels"] if config.get("use_prompt_embeddings", True) else \
            config["cross_attention_dim"]

    def check_lora(self, transformer):
        audio = sorted({n.split(".lora_")[0] for n, _ in transformer.named_parameters()
                        if "lora_" in n and ("audio" in n or "video_to_audio" in n)})
        if audio:
            raise ValueError(f"lora.targets reach the audio stream ({audio[0]}, ...): LTX-2 DiSCo trains the video "
                             f"stream only; use attn1.*/attn2.* names (LTX-2 trainer's video-only list)")


def check_geometry(vae, transformer, family: Family) -> None:
    """The VAE's factors (read from its config) must be the data pipeline's 32×/8× (`config.geometry`), and an LTX-2
    transformer's RoPE must use the same ones: coordinates in pixels are only right when all three agree."""
    spatial = getattr(vae, "spatial_compression_ratio", SPATIAL)
    temporal = getattr(vae, "temporal_compression_ratio", TEMPORAL)
    rope = getattr(getattr(transformer, "rope", None), "scale_factors", (temporal, spatial, spatial))
    if (spatial, temporal) != (SPATIAL, TEMPORAL) or tuple(rope) != (temporal, spatial, spatial):
        raise ValueError(f"{family.name} VAE compresses {spatial}× in space and {temporal}× in time, the "
                         f"transformer's RoPE assumes {tuple(rope)}; the data pipeline codes {SPATIAL}×/{TEMPORAL}× "
                         f"latent cells")


FAMILIES = {"ltxv": LTXV(), "ltx2": LTX2()}


def family_of(model_cfg) -> Family:
    return FAMILIES[getattr(model_cfg, "family", "ltxv")]
