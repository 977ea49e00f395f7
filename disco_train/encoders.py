"""The frozen encoders as pure functions, shared by training (on the fly) and `prepare precompute=true`.

They are the bodies of `DiscoLoRAModule.encode_video` / `encode_text`, factored out so that precomputed latents
in the shards are bit-for-bit what training would have computed from the same pixels and caption.
"""

from __future__ import annotations

import torch


@torch.no_grad()
def encode_video(vae, frames: torch.Tensor) -> torch.Tensor:
    """uint8 [B,T,H,W,3] -> normalised VAE latents [B,C,F,h,w] (distribution mode: deterministic)."""
    x = frames.permute(0, 4, 1, 2, 3).to(vae.device, vae.dtype) / 127.5 - 1.0
    latents = vae.encode(x).latent_dist.mode()
    mean = vae.latents_mean.view(1, -1, 1, 1, 1).to(latents)
    std = vae.latents_std.view(1, -1, 1, 1, 1).to(latents)
    return (latents - mean) * vae.config.scaling_factor / std


@torch.no_grad()
def encode_text(text_encoder, tokenizer, captions: list[str], max_tokens: int,
                device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Captions -> T5 hidden states [B,L,D] and attention mask [B,L] (padded to max_tokens)."""
    tokens = tokenizer(captions, padding="max_length", max_length=max_tokens, truncation=True,
                       add_special_tokens=True, return_tensors="pt")
    ids, mask = tokens.input_ids.to(device), tokens.attention_mask.to(device)
    hidden = text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state
    return hidden, mask
