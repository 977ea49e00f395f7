"""The decoder's training step with no framework, shared by bench_train.py (timing) and bench_memory.py (memory):
the same tokens, loss, precision, attention kernel, clipping and AdamW as `DiscoLoRAModule`, fed a
precomputed-latent batch of the recipe's exact shapes."""

from __future__ import annotations

import contextlib

import torch

from disco_train.decoder import conditioning as C
from disco_train.decoder import flow, speed
from disco_train.decoder.family import family_of
from disco_train.train.optim import configure_adamw


def make_batch(cfg, model_cfg: dict, grid, device: str, dtype: torch.dtype) -> dict:
    """A precomputed-latent batch as `ShardDataModule` yields it (latents and text states in the model dtype)."""
    g = torch.Generator().manual_seed(0)
    b, L = cfg.data.batch_size, cfg.model.max_text_tokens
    lat = (b, model_cfg["in_channels"], *grid)
    mask = torch.ones(b, L, dtype=torch.int64)
    mask[:, L // 2:] = 0  # captions are padded: half the T5 positions masked, as for a ~60-word caption
    batch = {"target": torch.randn(lat, generator=g), "degraded": torch.randn(lat, generator=g),
             "text": torch.randn(b, L, family_of(cfg.model).text_width(model_cfg), generator=g), "text_mask": mask}
    batch = {k: v.to(dtype) if v.is_floating_point() else v for k, v in batch.items()}
    batch["fps"] = torch.full((b,), 25.0)
    return {k: v.to(device) for k, v in batch.items()}


def autocast(cfg, device: str):
    if cfg.trainer.precision.startswith("bf16"):
        return torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)
    return contextlib.nullcontext()


class BareStep:
    """Forward/backward/AdamW on `transformer` (LoRA already in place); tokens assembled once, reused. The call
    is the family's (`decoder.family`: LTX-Video, or LTX-2 video-only with one zero audio token)."""

    def __init__(self, transformer, batch: dict, cfg, device: str):
        self.tr, self.batch, self.cfg, self.device = transformer, batch, cfg, device
        self.family = family_of(cfg.model)
        x0 = C.pack(batch["target"]).float()
        noise = torch.randn_like(x0)
        b, self.n_tok = x0.shape[:2]
        sigmas = torch.full((b,), 0.5, device=device)
        coords = self.family.coords(transformer, *batch["target"].shape[2:], batch["fps"], b, device)
        self.tokens, self.coords, self.timesteps = C.assemble(
            flow.interpolate(x0, noise, sigmas), C.pack(batch["degraded"]), 1, coords, sigmas)
        self.goal = flow.velocity_target(x0, noise)
        self.params = [p for p in transformer.parameters() if p.requires_grad]
        self.opt = configure_adamw(self.params, cfg.optim, cfg.trainer.max_steps)["optimizer"]

    def forward_backward(self) -> None:
        tr, batch = self.tr, self.batch
        with autocast(self.cfg, self.device), speed.attention_context(self.cfg.model.attention):
            pred = self.family.forward(tr, self.tokens.to(tr.dtype), batch["text"].to(tr.dtype), batch["text_mask"],
                                       self.timesteps, self.coords)
            loss = (pred[:, -self.n_tok:].float() - self.goal).pow(2).mean()
        loss.backward()

    def optimizer_step(self) -> None:
        if self.cfg.optim.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.cfg.optim.grad_clip)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)

    def __call__(self) -> None:
        self.forward_backward()
        self.optimizer_step()
