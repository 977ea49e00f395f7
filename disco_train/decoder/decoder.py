"""DiscoDecoder: the DiSCo generative decoder as a plain `nn.Module` (paper §3.2), used by decoding without
Lightning and wrapped by the training system (`disco_train.train.lora_module.DiscoLoRAModule`).

It holds the frozen transformer carrying the peft LoRA, the frozen VAE and text encoder; `family` (LTX-Video or
LTX-2, `model.family`) is the one place that knows how the backbone is called and where its tokens sit. `training_loss` is the
rectified-flow objective on the target tokens; `reconstruct` samples a clip from the transmitted modalities. The
math comes from `flow` and `conditioning`, the models from `models`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from disco_train.config import DiscoLoraConfig, NEGATIVE_PROMPT, parse_ratio
from disco_train.config.geometry import latent_grid
from disco_train.decoder import conditioning as C
from disco_train.decoder import encoders, fast, flow, speed
from disco_train.decoder.family import family_of
from disco_train.decoder.lora import add_lora, load_adapter_file, load_lora_state_dict
from disco_train.decoder.models import Backbone, load_backbone
from disco_train.decoder.sampling import sample_tokens


class DiscoDecoder(nn.Module):
    def __init__(self, cfg: DiscoLoraConfig, backbone: Backbone | None = None):
        super().__init__()
        self.cfg = cfg
        backbone = backbone or load_backbone(cfg.model, cfg.seed)
        self.transformer, self.vae = backbone.transformer, backbone.vae
        self.text_encoder, self.tokenizer = backbone.text_encoder, backbone.tokenizer
        self.family = family_of(cfg.model)
        self.num_trainable = add_lora(self.transformer, cfg.lora.rank, cfg.lora.alpha, cfg.lora.dropout,
                                      cfg.lora.targets)
        self.family.check_lora(self.transformer)
        if cfg.lora.init_from:
            load_lora_state_dict(self.transformer, load_adapter_file(cfg.lora.init_from))
        self.ratio = parse_ratio(cfg.condition.ratio)

    @classmethod
    def from_export(cls, folder: str | Path, overrides: list[str] = (), device: str = "cpu",
                    merge: bool = True, cfg: DiscoLoraConfig | None = None) -> "DiscoDecoder":
        """The trained decoder from an export folder (base weights per its config's model.*, which `overrides`
        may change), with the adapter folded into the base weights unless `merge=False`. `cfg`: the folder's
        `decoder_config` when the caller already read it (it checks every file's sha256)."""
        from disco_train.decoder.export import decoder_config

        decoder = cls(cfg or decoder_config(folder, overrides))
        if merge:
            speed.merge_lora(decoder.transformer)
        return decoder.to(device).eval()

    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

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
        return {"target": target, "cond": cond, "aux": aux, "text": text, "text_mask": mask, "fps": batch["fps"],
                "ds": batch.get("ds")}

    def condition(self, inputs: dict) -> tuple[torch.Tensor, int]:
        """Condition tokens of the configured mode and how many target-grid copies they span."""
        aux = None if inputs["aux"] is None else C.pack(inputs["aux"])
        c, (height, width) = self.cfg.condition, inputs["cond"].shape[-2:]
        return C.condition_tokens(C.pack(inputs["cond"]), aux, c.mode, self.ratio, c.interleave_unit, height * width)

    def condition_coords(self, inputs: dict) -> torch.Tensor | None:
        """RoPE coordinates of a compact reference's tokens (`Family.reference_coords`); None: the condition tokens
        take the target's (`condition.reference=full`)."""
        if self.cfg.condition.reference == "full":
            return None
        b, _, f, h, w = inputs["cond"].shape
        return self.family.reference_coords(self.transformer, f, h, w, inputs["fps"], b, one_ds(inputs["ds"]),
                                            inputs["cond"].device)

    # ---- the model call shared by training and sampling ----------------------------------------------------
    def denoise(self, noisy: torch.Tensor, cond: torch.Tensor, copies: int, coords: torch.Tensor,
                sigmas: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor,
                cond_coords: torch.Tensor | None = None) -> torch.Tensor:
        """Velocity prediction at the target tokens for [cond ‖ noisy]."""
        tokens, all_coords, timesteps = C.assemble(noisy, cond, copies, coords, sigmas, cond_coords)
        dtype = self.transformer.dtype
        with speed.attention_context(self.cfg.model.attention), fast.cache_context(self.transformer):
            pred = self.family.forward(self.transformer, tokens.to(dtype), text.to(dtype), text_mask, timesteps,
                                       all_coords)
        return C.target_slice(pred, noisy.shape[1])

    def training_loss(self, inputs: dict, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Rectified flow on the target tokens: σ from the shifted logit-normal, x_t = (1−σ)·x0 + σ·ε, MSE of the
        predicted velocity against ε − x0. Returns (per-sample loss [B], σ [B])."""
        target = inputs["target"]
        b, _, f, h, w = target.shape
        x0 = C.pack(target).float()
        cond, copies = self.condition(inputs)
        fc, device = self.cfg.flow, target.device
        sigmas = flow.sample_sigmas(b, x0.shape[1], fc.sampler, fc.logit_std, fc.shift_tokens, fc.shift_values,
                                    generator=generator, device=device)
        noise = torch.randn(x0.shape, generator=generator, device=device, dtype=x0.dtype)
        coords = self.family.coords(self.transformer, f, h, w, inputs["fps"], b, device)
        pred = self.denoise(flow.interpolate(x0, noise, sigmas), cond, copies, coords, sigmas, inputs["text"],
                            inputs["text_mask"], self.condition_coords(inputs))
        return flow.flow_loss(pred, flow.velocity_target(x0, noise)), sigmas

    # ---- sampling (validation, decoding) --------------------------------------------------------------------
    def target_grid(self, batch: dict, inputs: dict) -> tuple[int, int, int]:
        """The latent grid to generate: the condition's (full references), else the target pixel size the batch
        carries (`size`: frames, height, width; validation's `video`)."""
        if self.cfg.condition.reference == "full":
            return tuple(inputs["cond"].shape[2:])
        if "size" in batch:
            return latent_grid(*(int(n) for n in batch["size"]))
        if "video" in batch:
            return latent_grid(*batch["video"].shape[1:4])
        raise ValueError("condition.reference=compact: the batch must say the target size ('size': frames, "
                         "height, width), which a compact reference does not show")

    @torch.no_grad()
    def reconstruct(self, batch: dict, steps: int | None = 50, guidance: float = 3.0, seed: int | list[int] = 0,
                    negative_prompt: str = NEGATIVE_PROMPT, schedule: str = "shifted") -> torch.Tensor:
        """Decoder side of DiSCo for a batch: condition tokens + caption -> sampled clip, uint8 [B,T,H,W,3].
        `seed`: one for the batch's noise, or one per sample (each sample's noise then does not depend on what
        else is in the batch). `schedule`: `flow.SCHEDULES` (a distilled list fixes `steps`: None)."""
        inputs = self.prepare_batch(batch, need_target=False)
        b, c, f, h, w = inputs["cond"].shape[:2] + self.target_grid(batch, inputs)
        cond, copies = self.condition(inputs)
        coords = self.family.coords(self.transformer, f, h, w, inputs["fps"], b, self.device)
        negative = self.encode_text([negative_prompt]) if guidance != 1.0 else None
        fast.reset(self.transformer)
        generator = ([torch.Generator(device=self.device).manual_seed(s) for s in seed] if isinstance(seed, list)
                     else torch.Generator(device=self.device).manual_seed(seed))
        # Training runs under bf16 autocast; without it peft would run the adapter in fp32 here (slower, and not
        # the arithmetic the adapter was trained with).
        dtype = self.transformer.dtype
        with torch.autocast(self.device.type, dtype=dtype, enabled=dtype != torch.float32):
            tokens = sample_tokens(self.denoise, cond, copies, coords, inputs["text"], inputs["text_mask"], negative,
                                   f * h * w, c, steps, guidance, self.cfg.flow.shift_tokens,
                                   self.cfg.flow.shift_values, generator, schedule, self.condition_coords(inputs))
        return encoders.decode_latents(self.vae, C.unpack(tokens, f, h, w))


def one_ds(ds) -> int:
    """The batch's D_s (a compact reference's scale): an int, or one per sample, all equal (one batch is one
    token layout)."""
    values = {int(d) for d in (ds.tolist() if isinstance(ds, torch.Tensor) else ds if isinstance(ds, (list, tuple))
                               else [ds])} if ds is not None else set()
    if len(values) != 1:
        raise ValueError(f"condition.reference=compact needs one D_s per batch (the 'ds' of each sample), got "
                         f"{sorted(values) or 'none'}")
    return values.pop()
