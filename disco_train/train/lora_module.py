"""DiscoLoRAModule: the training system of the DiSCo generative decoder (paper §3.2).

It wraps a `DiscoDecoder` (the plain nn.Module decoding uses: frozen LTX-Video transformer with a peft LoRA, VAE,
T5) and adds what training needs: the speed levers of the training step, the optimizer over the adapter only,
the non-finite step skip, per-σ logging, data-health checks and adapter-only checkpoints.
"""

from __future__ import annotations

import lightning as L
import torch

from disco_train.config import DiscoLoraConfig
from disco_train.decoder import speed
from disco_train.decoder.decoder import DiscoDecoder
from disco_train.decoder.lora import load_lora_state_dict, lora_state_dict, trainable_parameters
from disco_train.decoder.models import Backbone
from disco_train.train.optim import configure_adamw
from disco_train.train.reliability import NonFiniteGuard, rng_state, set_rng_state

SIGMA_BUCKETS = (0.25, 0.5, 0.75)
"""Upper edges of the σ buckets for per-noise-level loss logging: [0,.25) [.25,.5) [.5,.75) [.75,1)."""


def step_generator(seed: int, rank: int, step: int, device="cpu") -> torch.Generator:
    """The generator of σ and noise of one rank's step (`DiscoLoRAModule.step_generator`)."""
    seed = (seed * 1_000_003 + rank) * 1_000_033 + step
    return torch.Generator(device=device).manual_seed(seed % (2**63))


class DiscoLoRAModule(L.LightningModule):
    def __init__(self, cfg: DiscoLoraConfig, backbone: Backbone | None = None):
        super().__init__()
        self.cfg = cfg
        self.decoder = DiscoDecoder(cfg, backbone)
        m = cfg.model
        self.recomputed_blocks = speed.configure_checkpointing(self.decoder.transformer, m.gradient_checkpointing,
                                                               m.checkpoint_blocks, m.attention)
        if m.compile:
            speed.compile_blocks(self.decoder.transformer)
        self.guard = NonFiniteGuard(cfg.trainer.max_nonfinite_in_a_row)
        # Frozen base weights are not in our checkpoints (on_save_checkpoint); loading must not demand them.
        self.strict_loading = False

    @property
    def transformer(self) -> torch.nn.Module:
        return self.decoder.transformer

    def describe(self) -> str:
        blocks = len(self.transformer.transformer_blocks)
        return (f"{self.cfg.model.name}, {self.decoder.num_trainable:,} trainable LoRA parameters (rank "
                f"{self.cfg.lora.rank}), {self.recomputed_blocks} of {blocks} blocks recompute in backward")

    # ---- the training step ----------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        if "fatal" in batch:  # a reader found nothing usable (datamodules.shards): stop with its counted reasons
            from datamodules.shards import BadDataError

            raise BadDataError(f"no usable training data: {batch['fatal']}")
        inputs = self.decoder.prepare_batch(batch)
        per_sample, sigmas = self.decoder.training_loss(inputs, self.step_generator())
        loss = per_sample.mean()
        b = per_sample.shape[0]
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
        return step_generator(self.cfg.seed, self.global_rank, self.global_step, self.device)

    def _log_sigma_buckets(self, per_sample: torch.Tensor, sigmas: torch.Tensor) -> None:
        """Loss per σ bucket: the mean loss mixes noise levels of very different difficulty."""
        index = torch.bucketize(sigmas, torch.tensor(SIGMA_BUCKETS, device=sigmas.device))
        edges = (0.0,) + SIGMA_BUCKETS + (1.0,)
        for k in index.unique().tolist():
            chosen = index == k
            self.log(f"train/loss_sigma_{edges[k]:.2f}-{edges[k + 1]:.2f}", per_sample[chosen].mean(),
                     batch_size=int(chosen.sum()))

    def reconstruct(self, batch: dict, *args, **kwargs) -> torch.Tensor:
        """The decoder's sampler (validation calls it on the training system)."""
        return self.decoder.reconstruct(batch, *args, **kwargs)

    def _log_data_health(self, batch: dict) -> None:
        if "bad" not in batch:
            return
        bad, seen = float(batch["bad"]), float(batch["seen"])
        fraction = bad / max(seen, 1.0)
        self.log("data/bad_fraction", fraction)
        if seen >= 20 and fraction > self.cfg.data.max_bad_fraction:
            from datamodules.shards import BadDataError

            raise BadDataError(f"{bad:.0f} of {seen:.0f} samples were corrupt or malformed "
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
        checkpoint["disco"] = {"num_trainable": self.decoder.num_trainable, "model": self.cfg.model.name,
                               "skipped_steps": self.guard.total}
        checkpoint["rng"] = rng_state()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "rng" in checkpoint:
            set_rng_state(checkpoint["rng"])
        self.guard.total = checkpoint.get("disco", {}).get("skipped_steps", 0)
        if "state_dict" not in checkpoint:  # DeepSpeed's checkpoint: its engine has loaded the adapter already
            return
        state = {k[len("lora."):]: v for k, v in checkpoint["state_dict"].items() if k.startswith("lora.")}
        load_lora_state_dict(self.transformer, state)
        checkpoint["state_dict"] = {}
