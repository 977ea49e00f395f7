"""DiscoLoRAModule: the DiSCo generative decoder as a Lightning system (paper §3.2).

It owns the frozen LTX-Video transformer carrying a peft LoRA, the frozen VAE and T5, the optimizer over the
adapter only, and logging. The math comes from `flow` and `conditioning`; the models from `models`.
"""

from __future__ import annotations

import lightning as L
import torch

from disco_train import conditioning as C
from disco_train import encoders, flow, speed
from disco_train.config import DiscoLoraConfig, parse_ratio
from disco_train.lora import add_lora, load_adapter_file, load_lora_state_dict, lora_state_dict, trainable_parameters
from disco_train.models import Backbone, load_backbone
from disco_train.optim import configure_adamw
from disco_train.reliability import NonFiniteGuard, rng_state, set_rng_state
from disco_train.sampling import NEGATIVE_PROMPT, sample_tokens

SIGMA_BUCKETS = (0.25, 0.5, 0.75)
"""Upper edges of the σ buckets for per-noise-level loss logging: [0,.25) [.25,.5) [.5,.75) [.75,1)."""


class DiscoLoRAModule(L.LightningModule):
    def __init__(self, cfg: DiscoLoraConfig, backbone: Backbone | None = None):
        super().__init__()
        self.cfg = cfg
        backbone = backbone or load_backbone(cfg.model, cfg.seed)
        self.transformer, self.vae = backbone.transformer, backbone.vae
        self.text_encoder, self.tokenizer = backbone.text_encoder, backbone.tokenizer
        self.num_trainable = add_lora(self.transformer, cfg.lora.rank, cfg.lora.alpha, cfg.lora.dropout,
                                      cfg.lora.targets)
        if cfg.lora.init_from:
            load_lora_state_dict(self.transformer, load_adapter_file(cfg.lora.init_from))
        m = cfg.model
        self.recomputed_blocks = speed.configure_checkpointing(self.transformer, m.gradient_checkpointing,
                                                               m.checkpoint_blocks, m.attention)
        if m.compile:
            speed.compile_blocks(self.transformer)
        self.ratio = parse_ratio(cfg.condition.ratio)
        self.guard = NonFiniteGuard(cfg.trainer.max_nonfinite_in_a_row)
        # Frozen base weights are not in our checkpoints (on_save_checkpoint); loading must not demand them.
        self.strict_loading = False

    def describe(self) -> str:
        blocks = len(self.transformer.transformer_blocks)
        return (f"{self.cfg.model.name}, {self.num_trainable:,} trainable LoRA parameters (rank {self.cfg.lora.rank}), "
                f"{self.recomputed_blocks} of {blocks} blocks recompute in backward")

    # ---- encoders (frozen, no grad) -------------------------------------------------------------------------
    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 [B,T,H,W,3] -> normalised VAE latents [B,C,F,h,w] (shared with `prepare precompute=true`)."""
        return encoders.encode_video(self.vae, frames)

    def encode_text(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Captions -> T5 hidden states [B,L,D] and attention mask [B,L] (padded to max_text_tokens)."""
        return encoders.encode_text(self.text_encoder, self.tokenizer, captions, self.cfg.model.max_text_tokens,
                                    self.device)

    def prepare_batch(self, batch: dict, need_target: bool = True) -> dict:
        """Latents, condition latents, text embeddings: precomputed in the shard if present, else encoded here.
        Sampling needs no target (`need_target=False`): the decoder side has only the transmitted modalities."""
        target = None
        if need_target:
            target = batch["target"] if "target" in batch else self.encode_video(batch["video"])
        cond = batch["degraded"] if "degraded" in batch else self.encode_video(batch["cond"])
        aux = None
        if self.cfg.condition.mode != "video_only":
            aux = batch["aux_latents"] if "aux_latents" in batch else self.encode_video(batch["aux"])
        if "text" in batch:
            text, mask = batch["text"], batch["text_mask"]
        else:
            text, mask = self.encode_text(batch["caption"])
        return {"target": target, "cond": cond, "aux": aux, "text": text, "text_mask": mask, "fps": batch["fps"]}

    # ---- the training step ----------------------------------------------------------------------------------
    def denoise(self, noisy: torch.Tensor, cond: torch.Tensor, copies: int, coords: torch.Tensor,
                sigmas: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        """Velocity prediction at the target tokens for [cond ‖ noisy] (shared by training and sampling)."""
        tokens, all_coords, timesteps = C.assemble(noisy, cond, copies, coords, sigmas)
        dtype = self.transformer.dtype
        with speed.attention_context(self.cfg.model.attention):
            pred = self.transformer(hidden_states=tokens.to(dtype), encoder_hidden_states=text.to(dtype),
                                    timestep=timesteps, encoder_attention_mask=text_mask,
                                    video_coords=all_coords, return_dict=False)[0]
        return C.target_slice(pred, noisy.shape[1])

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        inputs = self.prepare_batch(batch)
        target = inputs["target"]
        b, _, f, h, w = target.shape
        x0 = C.pack(target).float()
        cond, copies = C.condition_tokens(C.pack(inputs["cond"]),
                                          None if inputs["aux"] is None else C.pack(inputs["aux"]),
                                          self.cfg.condition.mode, self.ratio)
        fc, g = self.cfg.flow, self.step_generator()
        sigmas = flow.sample_sigmas(b, x0.shape[1], fc.sampler, fc.logit_std, fc.shift_tokens, fc.shift_values,
                                    generator=g, device=self.device)
        noise = torch.randn(x0.shape, generator=g, device=self.device, dtype=x0.dtype)
        coords = C.latent_coords(f, h, w, inputs["fps"], b, self.device)
        pred = self.denoise(flow.interpolate(x0, noise, sigmas), cond, copies, coords, sigmas, inputs["text"],
                            inputs["text_mask"])
        per_sample = flow.flow_loss(pred, flow.velocity_target(x0, noise))
        loss = per_sample.mean()
        if not torch.isfinite(loss):
            self._skip("loss")
            return None  # Lightning skips backward and the optimizer step
        self.log("train/loss", loss, prog_bar=True, batch_size=b)
        self.log("train/sigma", sigmas.mean(), batch_size=b)
        self._log_sigma_buckets(per_sample.detach(), sigmas)
        self._log_data_health(batch)
        return loss

    def step_generator(self) -> torch.Generator:
        """σ and noise of a step are a function of (seed, rank, step) alone, so a resumed run draws exactly what
        the uninterrupted one would (the global RNG is also touched by DataLoader iterator creation)."""
        seed = (self.cfg.seed * 1_000_003 + self.global_rank) * 1_000_033 + self.global_step
        return torch.Generator(device=self.device).manual_seed(seed % (2**63))

    def _log_sigma_buckets(self, per_sample: torch.Tensor, sigmas: torch.Tensor) -> None:
        """Loss per σ bucket: the mean loss mixes noise levels of very different difficulty."""
        index = torch.bucketize(sigmas, torch.tensor(SIGMA_BUCKETS, device=sigmas.device))
        edges = (0.0,) + SIGMA_BUCKETS + (1.0,)
        for k in index.unique().tolist():
            chosen = index == k
            self.log(f"train/loss_sigma_{edges[k]:.2f}-{edges[k + 1]:.2f}", per_sample[chosen].mean(),
                     batch_size=int(chosen.sum()))

    # ---- sampling (validation, decoding) --------------------------------------------------------------------
    @torch.no_grad()
    def reconstruct(self, batch: dict, steps: int = 50, guidance: float = 3.0, seed: int = 0,
                    negative_prompt: str = NEGATIVE_PROMPT) -> torch.Tensor:
        """Decoder side of DiSCo for a batch: condition tokens + caption -> sampled clip, uint8 [B,T,H,W,3]."""
        inputs = self.prepare_batch(batch, need_target=False)
        target_shape = inputs["cond"].shape  # the target grid equals the condition grid
        b, c, f, h, w = target_shape
        cond, copies = C.condition_tokens(C.pack(inputs["cond"]),
                                          None if inputs["aux"] is None else C.pack(inputs["aux"]),
                                          self.cfg.condition.mode, self.ratio)
        coords = C.latent_coords(f, h, w, inputs["fps"], b, self.device)
        negative = self.encode_text([negative_prompt]) if guidance != 1.0 else None
        generator = torch.Generator(device=self.device).manual_seed(seed)
        # Training runs under bf16 autocast; without it peft would run the adapter in fp32 here (slower, and not
        # the arithmetic the adapter was trained with).
        dtype = self.transformer.dtype
        with torch.autocast(self.device.type, dtype=dtype, enabled=dtype != torch.float32):
            tokens = sample_tokens(self.denoise, cond, copies, coords, inputs["text"], inputs["text_mask"], negative,
                                   f * h * w, c, steps, guidance, self.cfg.flow.shift_tokens,
                                   self.cfg.flow.shift_values, generator)
        return encoders.decode_latents(self.vae, C.unpack(tokens, f, h, w))

    def _log_data_health(self, batch: dict) -> None:
        if "bad" not in batch:
            return
        bad, seen = float(batch["bad"]), float(batch["seen"])
        fraction = bad / max(seen, 1.0)
        self.log("data/bad_fraction", fraction)
        if seen >= 20 and fraction > self.cfg.data.max_bad_fraction:
            raise RuntimeError(f"{bad:.0f} of {seen:.0f} samples were corrupt or malformed "
                               f"(> data.max_bad_fraction={self.cfg.data.max_bad_fraction}); check the shards")

    # ---- optimisation ---------------------------------------------------------------------------------------
    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None) -> None:
        """Run forward/backward, then step only if every adapter gradient is finite (else drop them)."""
        loss = optimizer_closure()
        if loss is None:  # training_step skipped this batch (non-finite loss)
            return
        grads = [p.grad for p in trainable_parameters(self.transformer) if p.grad is not None]
        # One foreach norm over all 768 adapter gradients of 13B, not 768 norm kernels and a stack.
        if grads and not torch.isfinite(torch.nn.utils.get_total_norm(grads)):
            optimizer.zero_grad(set_to_none=True)
            self._skip("gradient")
            return
        self.guard.record(True, self.global_step)
        optimizer.step(closure=lambda: loss)

    def _skip(self, what: str) -> None:
        self.guard.record(False, self.global_step)  # raises after max_nonfinite_in_a_row
        self.log("train/skipped_steps", float(self.guard.total))
        print(f"step {self.global_step}: non-finite {what}, step skipped ({self.guard.in_a_row} in a row)")

    def configure_optimizers(self):
        return configure_adamw(trainable_parameters(self.transformer), self.cfg.optim, self.cfg.trainer.max_steps)

    # ---- checkpoints hold the adapter, never the frozen base ------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["state_dict"] = {f"lora.{k}": v for k, v in lora_state_dict(self.transformer).items()}
        checkpoint["disco"] = {"num_trainable": self.num_trainable, "model": self.cfg.model.name,
                               "skipped_steps": self.guard.total}
        checkpoint["rng"] = rng_state()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "rng" in checkpoint:
            set_rng_state(checkpoint["rng"])
        self.guard.total = checkpoint.get("disco", {}).get("skipped_steps", 0)
        state = {k[len("lora."):]: v for k, v in checkpoint["state_dict"].items() if k.startswith("lora.")}
        load_lora_state_dict(self.transformer, state)
        checkpoint["state_dict"] = {}
