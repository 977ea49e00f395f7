"""DeepSpeed ZeRO for `trainer.strategy=deepspeed_stage_2|3` (recipes disco_lora_h100x8, disco_lora_zero3_multinode).

Lightning's `DeepSpeedStrategy` with two additions: checkpoints hold the adapter, never the frozen base (as
`DiscoLoRAModule.on_save_checkpoint` does for one-file checkpoints), and a checkpoint folder is marked complete
once every rank has written it (`disco_train.decoder.sharded`), so that resume and export skip a folder a kill cut.
"""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.strategies import DeepSpeedStrategy

from disco_train.decoder.sharded import COMPLETE, write_complete


def deepspeed_options(cfg) -> dict:
    """DeepSpeedStrategy arguments of `trainer.strategy` (deepspeed_stage_2 or deepspeed_stage_3); Lightning turns
    them, the precision, gradient accumulation and clipping into DeepSpeed's config dict."""
    # ZeRO-3 partitions the frozen base too, so a 13B bf16 base (26 GB) is split across ranks.
    return {"stage": int(cfg.trainer.strategy[-1]), "offload_optimizer": False, "partition_activations": False,
            "exclude_frozen_parameters": True,
            # Lightning would read it from the DataLoader's batch sampler, which ours (batch_size=None) has not
            "logging_batch_size_per_gpu": cfg.data.batch_size}


class DiscoDeepSpeedStrategy(DeepSpeedStrategy):
    def save_checkpoint(self, checkpoint: dict, filepath, storage_options=None) -> None:
        if self.is_global_zero:  # saving into an existing folder: it is incomplete until rewritten (DeepSpeed's save
            Path(filepath, COMPLETE).unlink(missing_ok=True)  # begins with a barrier, so no rank writes before this)
        # DeepSpeed's save ends with a barrier of all ranks: past it, every rank's files are written.
        super().save_checkpoint(checkpoint, filepath, storage_options)
        if self.is_global_zero:
            write_complete(filepath, int(checkpoint.get("global_step", -1)), self.world_size)
