"""Schema of the `disco_lora` training task: data, optimisation, trainer, checkpoints, logging, and the run.

Defaults are the paper's setup (DiSCo §4.2); recipes hold only their differences. Each field has an attribute
docstring. `validate(prefix)` checks values that would otherwise fail late and raises `ConfigError` naming the full
dotted key; the recipe resolver calls it before any weights are loaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, is_dataclass

from disco_train.config.base import check, check_clip_size
from disco_train.config.decoder import (ConditionConfig, FlowConfig, LoraConfig, ModelConfig,
                                        ValidationConfig)


@dataclass
class DataConfig:
    train_shards: str = "data/openvid/shards/train-*.tar"
    """Training shards: a glob, brace pattern or comma-separated list of .tar paths."""
    val_shards: str = ""
    """Held-out shards for validation sampling ('' = no validation)."""
    frames: int = 57
    """Frames per clip; 8k+1 because the LTX VAE keeps frame 0 then compresses 8:1 in time."""
    height: int = 512
    """Clip height in pixels, a multiple of 32 (VAE spatial compression)."""
    width: int = 512
    """Clip width in pixels, a multiple of 32."""
    batch_size: int = 1
    """Clips per device per step."""
    num_workers: int = 4
    """DataLoader worker processes per device."""
    epoch_length: int = 0
    """Samples per epoch per rank with resampled shards (0 = one pass over the shards, no resampling)."""
    shuffle_buffer: int = 64
    """WebDataset sample shuffle buffer."""
    max_bad_fraction: float = 0.05
    """Fail the run once more than this fraction of samples is corrupt or malformed."""
    max_bad_in_a_row: int = 256
    """Fail the run when a reader sees this many bad samples in a row (a reader that finds nothing usable, e.g.
    shards of another clip size, would otherwise loop forever without a step)."""
    max_member_bytes: int = 256 << 20
    """Largest tar member read; larger or sparse members are skipped unread and their sample counted as bad."""
    latents: str = "auto"
    """Precomputed latents in the shards: 'auto' (use them if the first sample has them), 'always' (a sample
    without them is skipped as malformed) or 'never' (decode the videos and encode on the fly)."""
    dcvc_rt_dir: str = ""
    """DCVC-RT weights decoding the degraded video of dcvc_rt samples ('' = the folder each sample's meta.json
    records, else checkpoints/dcvc_rt; 'synthetic' = the test weights)."""
    sketch_dcvc_dir: str = ""
    """DCVC-RT weights decoding dcvc_rt sketch streams, the finetuned sketch codec ('' = the folder each sample's
    meta.json records for its sketch, else checkpoints/dcvc_rt)."""

    def validate(self, prefix: str) -> None:
        check_clip_size(self, prefix)
        check(self.batch_size > 0, f"{prefix}.batch_size", "must be positive")
        check(self.num_workers >= 0, f"{prefix}.num_workers", "must be >= 0")
        check(self.epoch_length >= 0, f"{prefix}.epoch_length", "must be >= 0")
        check(0.0 <= self.max_bad_fraction <= 1.0, f"{prefix}.max_bad_fraction", "must be in [0, 1]")
        check(self.max_bad_in_a_row > 0, f"{prefix}.max_bad_in_a_row", "must be positive")
        check(self.max_member_bytes > 0, f"{prefix}.max_member_bytes", "must be positive")
        check(bool(self.train_shards), f"{prefix}.train_shards", "is empty")
        check(self.latents in ("auto", "always", "never"), f"{prefix}.latents",
               f"must be 'auto', 'always' or 'never', got {self.latents!r}")


@dataclass
class OptimConfig:
    name: str = "adamw"
    """Optimizer: 'adamw'."""
    lr: float = 2e-4
    """Peak learning rate (paper: 0.0002)."""
    weight_decay: float = 0.01
    """AdamW decoupled weight decay."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW betas."""
    schedule: str = "cosine"
    """LR schedule after warm-up: 'cosine' (paper), 'linear' or 'constant'."""
    warmup_steps: int = 0
    """Linear warm-up steps."""
    min_lr_ratio: float = 0.0
    """Final LR as a fraction of the peak."""
    grad_clip: float = 1.0
    """Clip the global gradient norm (0 = off)."""

    def validate(self, prefix: str) -> None:
        check(self.name == "adamw", f"{prefix}.name", f"unknown optimizer {self.name!r}")
        check(self.lr > 0, f"{prefix}.lr", "must be positive")
        check(self.weight_decay >= 0, f"{prefix}.weight_decay", "must be >= 0")
        check(all(0.0 <= b < 1.0 for b in self.betas), f"{prefix}.betas", "must be in [0, 1)")
        check(self.schedule in ("cosine", "linear", "constant"), f"{prefix}.schedule",
               f"unknown schedule {self.schedule!r}")
        check(self.warmup_steps >= 0, f"{prefix}.warmup_steps", "must be >= 0")
        check(0.0 <= self.min_lr_ratio <= 1.0, f"{prefix}.min_lr_ratio", "must be in [0, 1]")
        check(self.grad_clip >= 0, f"{prefix}.grad_clip", "must be >= 0")


@dataclass
class TrainerConfig:
    max_steps: int = 8000
    """Optimizer steps (paper: 8,000)."""
    accelerator: str = "auto"
    """'auto', 'cpu' or 'gpu'."""
    devices: str = "auto"
    """Devices per node: 'auto' or a count such as '8'."""
    num_nodes: int = 1
    """Nodes (multi-node runs go through torchrun or SLURM; see docs/training.md)."""
    strategy: str = "auto"
    """'auto', 'ddp', 'deepspeed_stage_2' or 'deepspeed_stage_3'."""
    precision: str = "bf16-mixed"
    """Lightning precision: 'bf16-mixed' on GPUs, '32-true' for CPU debugging."""
    accumulate_grad_batches: int = 1
    """Micro-batches per optimizer step."""
    log_every_n_steps: int = 10
    """Logging interval."""
    max_nonfinite_in_a_row: int = 8
    """Steps with a non-finite loss or gradient are skipped; this many in a row stop the run."""

    def validate(self, prefix: str) -> None:
        check(self.max_steps > 0, f"{prefix}.max_steps", "must be positive")
        check(self.accelerator in ("auto", "cpu", "gpu", "cuda"), f"{prefix}.accelerator",
               f"unknown accelerator {self.accelerator!r}")
        check(self.strategy in ("auto", "ddp", "deepspeed_stage_2", "deepspeed_stage_3"), f"{prefix}.strategy",
               f"unknown strategy {self.strategy!r}")
        check(self.devices == "auto" or str(self.devices).isdigit(), f"{prefix}.devices",
               f"must be 'auto' or a count, got {self.devices!r}")
        check(self.accumulate_grad_batches > 0, f"{prefix}.accumulate_grad_batches", "must be positive")


@dataclass
class CheckpointConfig:
    every_n_steps: int = 500
    """Checkpoint interval in optimizer steps."""
    keep_last: int = 3
    """Rotate: keep only the newest N step checkpoints (plus last.ckpt)."""

    def validate(self, prefix: str) -> None:
        check(self.every_n_steps > 0, f"{prefix}.every_n_steps", "must be positive")
        check(self.keep_last > 0, f"{prefix}.keep_last", "must be positive")


@dataclass
class LoggerConfig:
    kind: str = "csv"
    """'csv' (runs/<name>/metrics.csv), 'wandb' or 'none'."""
    project: str = "disco-train"
    """W&B project."""

    def validate(self, prefix: str) -> None:
        check(self.kind in ("csv", "wandb", "none"), f"{prefix}.kind", f"unknown logger {self.kind!r}")


RUN_NAME = re.compile(r"[^/\\\0\n]{1,200}")
"""One folder name: no separator, NUL or newline (`.` and `..` are refused apart)."""


@dataclass
class RunConfig:
    """What every training task's config starts with: where the run goes and how it starts."""

    task: str = ""
    """Which task (and schema) this recipe configures."""
    name: str = ""
    """Run name; '' means '<recipe>-<timestamp>'."""
    output_dir: str = "runs"
    """Runs are written to <output_dir>/<name>/ (config.yaml, checkpoints/, logs/)."""
    seed: int = 0
    """Global seed: random init of tiny models, per-step random draws (σ, noise, QP), data order."""
    print_config: bool = False
    """Print the resolved YAML and exit."""
    resume: str = ""
    """'' (fresh run), 'auto' (continue this run name, or the newest run of this recipe, from its last complete
    checkpoint: step, optimizer, LR schedule, RNG and data position) or a .ckpt path."""

    def validate(self, prefix: str = "") -> None:
        expected = type(self).__dataclass_fields__["task"].default
        check(self.task == expected, "task", f"expected {expected!r}, got {self.task!r}")
        # the run folder is <output_dir>/<name>: a name is one plain folder name, never a path out of output_dir
        check(not self.name or (RUN_NAME.fullmatch(self.name) is not None and self.name not in (".", "..")),
              "name", f"one folder name inside output_dir (no /, \\ or ..), got {self.name!r}")
        for f in fields(self):
            value = getattr(self, f.name)
            if is_dataclass(value):
                value.validate(f"{prefix}{f.name}")


@dataclass
class DiscoLoraConfig(RunConfig):
    """Top-level config of the `disco_lora` task: the LTX-Video in-context LoRA decoder."""

    task: str = "disco_lora"
    """Which task (and schema) this recipe configures."""
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    condition: ConditionConfig = field(default_factory=ConditionConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
