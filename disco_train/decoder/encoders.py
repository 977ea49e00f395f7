"""The frozen encoders as pure functions, shared by training (on the fly) and `prepare precompute=true`.

They are the bodies of `DiscoLoRAModule.encode_video` / `encode_text`, factored out so that precomputed latents
in the shards are bit-for-bit what training would have computed from the same pixels and caption.
"""

from __future__ import annotations

import torch


def _latent_stats(vae, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std/scaling_factor of the VAE latents, shaped to broadcast over [B,C,F,h,w]."""
    mean = vae.latents_mean.view(1, -1, 1, 1, 1).to(like)
    scale = vae.latents_std.view(1, -1, 1, 1, 1).to(like) / vae.config.scaling_factor
    return mean, scale


@torch.no_grad()
def encode_video(vae, frames: torch.Tensor) -> torch.Tensor:
    """uint8 [B,T,H,W,3] -> normalised VAE latents [B,C,F,h,w] (distribution mode: deterministic)."""
    x = frames.permute(0, 4, 1, 2, 3).to(vae.device, vae.dtype) / 127.5 - 1.0
    latents = vae.encode(x).latent_dist.mode()
    mean, scale = _latent_stats(vae, latents)
    return (latents - mean) / scale


@torch.no_grad()
def decode_latents(vae, latents: torch.Tensor, decode_timestep: float = 0.05) -> torch.Tensor:
    """Normalised latents [B,C,F,h,w] -> uint8 frames [B,T,H,W,3]: the inverse of `encode_video`."""
    mean, scale = _latent_stats(vae, latents)
    z = (latents * scale + mean).to(vae.dtype)
    temb = None
    if getattr(vae.config, "timestep_conditioning", False):
        # LTX 0.9.1+ VAEs denoise while decoding; the pipelines decode at t = 0.05 (decode_timestep).
        temb = torch.full((z.shape[0],), decode_timestep, device=z.device, dtype=z.dtype)
    video = vae.decode(z, temb=temb, return_dict=False)[0]
    return ((video.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 4, 1)


@torch.no_grad()
def encode_text(text_encoder, tokenizer, captions: list[str], max_tokens: int,
                device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Captions -> text states [B,L,D] and attention mask [B,L] (padded to max_tokens): T5's last hidden state, or
    for LTX-2 what Gemma 3 and the connectors give the video stream (`ltx2.GemmaText`, its own mask)."""
    tokens = tokenizer(captions, padding="max_length", max_length=max_tokens, truncation=True,
                       add_special_tokens=True, return_tensors="pt")
    ids, mask = tokens.input_ids.to(device), tokens.attention_mask.to(device)
    out = text_encoder(input_ids=ids, attention_mask=mask)
    if isinstance(out, tuple):
        return out
    return out.last_hidden_state, mask
