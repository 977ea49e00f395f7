"""Typed configuration schema. Defaults are the paper's setup (DiSCo §4.2); recipes hold only their differences.

Each field has an attribute docstring. `validate(prefix)` checks values that would otherwise fail late and raises
`ConfigError` naming the full dotted key; `disco_train.recipe` calls it before any weights are loaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, is_dataclass


ATTENTION_KERNELS = ("default", "flash", "efficient", "cudnn", "math")
"""`model.attention` names (disco_train/speed.py maps them to SDPA backends; config stays torch-free)."""

NEGATIVE_PROMPT = "worst quality, inconsistent motion, blurry, jittery, distorted"
"""Paper §3.2: the decoded caption is paired with predefined negative prompts such as 'blurry' or 'distorted'."""


class ConfigError(ValueError):
    """A recipe, override or value is invalid. The message names the full dotted key."""


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {message}")


def check_clip_size(cfg, prefix: str) -> None:
    """frames 8k+1 (the LTX VAE keeps frame 0, then 8:1 in time) and height/width multiples of 32 (32× spatial)."""
    dot = f"{prefix}." if prefix else ""
    _check(cfg.frames >= 1 and (cfg.frames - 1) % 8 == 0, f"{dot}frames",
           f"must be 8k+1 (e.g. 9, 17, 57), got {cfg.frames}")
    for key in ("height", "width"):
        value = getattr(cfg, key)
        _check(value >= 32 and value % 32 == 0, f"{dot}{key}", f"must be a multiple of 32, got {value}")


def parse_ratio(text: str, key: str = "ratio") -> tuple[int, int]:
    """'1:3' -> (1, 3). Both parts must be positive integers."""
    if str(text).isdigit():
        raise ConfigError(f"{key}: got {text!r}; an unquoted a:b in YAML is read as a base-60 number "
                          f"(1:3 -> 63): write it quoted, e.g. ratio: \"1:3\"")
    match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", str(text))
    _check(match is not None, key, f"expected 'a:b' with positive integers, got {text!r}")
    a, b = int(match.group(1)), int(match.group(2))
    _check(a > 0 and b > 0, key, f"both parts must be positive, got {text!r}")
    return a, b


@dataclass
class ModelConfig:
    name: str = "ltxv_13b"
    """Backbone: 'ltxv_13b' (0.9.7/0.9.8 dev), 'ltxv_2b' (0.9.x distilled) or 'tiny' (random, built in code)."""
    path: str = "checkpoints/ltx-video-13b"
    """Local LTX-Video weights: a diffusers folder (transformer/, vae/) or one single-file .safetensors."""
    text_encoder_path: str = "checkpoints/t5-v1_1-xxl"
    """Local T5 folder (text_encoder/ + tokenizer/ or a plain transformers folder)."""
    dtype: str = "bf16"
    """Storage dtype of the frozen base models: 'bf16', 'fp16' or 'fp32'."""
    gradient_checkpointing: bool = True
    """Recompute transformer blocks in backward: trades ~30% step time for activation memory."""
    checkpoint_blocks: int = -1
    """With gradient_checkpointing: how many blocks recompute, the first N (-1: all). The others keep their
    activations (13B, 4096 tokens: ≈ 1.2 GB more each); `python bench/bench_memory.py` plans N for a budget."""
    attention: str = "default"
    """Attention kernel PyTorch tries first: default, flash, efficient, cudnn or math (disco_train/speed.py)."""
    compile: bool = False
    """torch.compile each transformer block (regional compilation; the first steps are slower)."""
    max_text_tokens: int = 128
    """T5 sequence length (LTX-Video pipelines use 128)."""

    def validate(self, prefix: str) -> None:
        _check(self.name in ("ltxv_13b", "ltxv_2b", "tiny"), f"{prefix}.name",
               f"unknown model {self.name!r}; choose ltxv_13b, ltxv_2b or tiny")
        _check(self.dtype in ("bf16", "fp16", "fp32"), f"{prefix}.dtype", f"unknown dtype {self.dtype!r}")
        _check(self.max_text_tokens > 0, f"{prefix}.max_text_tokens", "must be positive")
        _check(self.checkpoint_blocks >= -1, f"{prefix}.checkpoint_blocks", "use -1 (all blocks) or a count >= 0")
        _check(self.attention in ATTENTION_KERNELS, f"{prefix}.attention",
               f"unknown kernel {self.attention!r}; choose {', '.join(ATTENTION_KERNELS)}")


@dataclass
class LoraConfig:
    rank: int = 256
    """LoRA rank (paper: 256)."""
    alpha: float = 256.0
    """LoRA alpha; the update is scaled by alpha / rank."""
    dropout: float = 0.0
    """Dropout on the LoRA branch input."""
    targets: list[str] = field(default_factory=lambda: ["to_q", "to_k", "to_v", "to_out.0"])
    """Module-name suffixes (peft matching): these four hit attn1 (self) and attn2 (cross) of every block."""
    init_from: str = ""
    """Start from trained adapter weights (exported LoRA .safetensors or a training checkpoint): new domains."""

    def validate(self, prefix: str) -> None:
        _check(self.rank > 0, f"{prefix}.rank", "must be positive")
        _check(self.alpha > 0, f"{prefix}.alpha", "must be positive")
        _check(0.0 <= self.dropout < 1.0, f"{prefix}.dropout", "must be in [0, 1)")
        _check(len(self.targets) > 0, f"{prefix}.targets", "needs at least one module name")


@dataclass
class FlowConfig:
    sampler: str = "shifted_logit_normal"
    """σ sampler for training: 'shifted_logit_normal' (LTX trainers) or 'uniform'."""
    logit_std: float = 1.0
    """Std of the normal before the sigmoid."""
    shift_tokens: tuple[int, int] = (1024, 4096)
    """Target-token counts at which the logit mean equals shift_values (linear in between and beyond)."""
    shift_values: tuple[float, float] = (0.95, 2.05)
    """Logit means at shift_tokens: longer sequences are trained at higher noise."""

    def validate(self, prefix: str) -> None:
        _check(self.sampler in ("shifted_logit_normal", "uniform"), f"{prefix}.sampler",
               f"unknown sampler {self.sampler!r}")
        _check(self.logit_std > 0, f"{prefix}.logit_std", "must be positive")
        _check(self.shift_tokens[1] > self.shift_tokens[0], f"{prefix}.shift_tokens", "must be increasing")


@dataclass
class ConditionConfig:
    mode: str = "video_only"
    """'video_only' (text + degraded video), 'interleave' (paper Fig. 4) or 'concat' (both token sets)."""
    aux: str = "none"
    """Auxiliary modality for interleave/concat: 'none', 'sketch' or 'pose'."""
    ratio: str = "1:3"
    """Interleave ratio video:aux tokens (paper: one video token then three auxiliary tokens)."""
    fill: str = "forward"
    """Temporal filling of dropped frames: 'forward' (repeat last kept frame), 'zero' or 'none' (D_t = 1)."""

    def validate(self, prefix: str) -> None:
        _check(self.mode in ("video_only", "interleave", "concat"), f"{prefix}.mode", f"unknown mode {self.mode!r}")
        _check(self.aux in ("none", "sketch", "pose"), f"{prefix}.aux", f"unknown modality {self.aux!r}")
        _check((self.mode == "video_only") == (self.aux == "none"), f"{prefix}.aux",
               f"mode {self.mode!r} needs aux {'none' if self.mode == 'video_only' else 'sketch or pose'}")
        parse_ratio(self.ratio, f"{prefix}.ratio")
        _check(self.fill in ("forward", "zero", "none"), f"{prefix}.fill", f"unknown fill {self.fill!r}")


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
    latents: str = "auto"
    """Precomputed latents in the shards: 'auto' (use them if the first sample has them), 'always' (a sample
    without them is skipped as malformed) or 'never' (decode the videos and encode on the fly)."""

    def validate(self, prefix: str) -> None:
        check_clip_size(self, prefix)
        _check(self.batch_size > 0, f"{prefix}.batch_size", "must be positive")
        _check(self.num_workers >= 0, f"{prefix}.num_workers", "must be >= 0")
        _check(self.epoch_length >= 0, f"{prefix}.epoch_length", "must be >= 0")
        _check(0.0 <= self.max_bad_fraction <= 1.0, f"{prefix}.max_bad_fraction", "must be in [0, 1]")
        _check(bool(self.train_shards), f"{prefix}.train_shards", "is empty")
        _check(self.latents in ("auto", "always", "never"), f"{prefix}.latents",
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
        _check(self.name == "adamw", f"{prefix}.name", f"unknown optimizer {self.name!r}")
        _check(self.lr > 0, f"{prefix}.lr", "must be positive")
        _check(self.weight_decay >= 0, f"{prefix}.weight_decay", "must be >= 0")
        _check(all(0.0 <= b < 1.0 for b in self.betas), f"{prefix}.betas", "must be in [0, 1)")
        _check(self.schedule in ("cosine", "linear", "constant"), f"{prefix}.schedule",
               f"unknown schedule {self.schedule!r}")
        _check(self.warmup_steps >= 0, f"{prefix}.warmup_steps", "must be >= 0")
        _check(0.0 <= self.min_lr_ratio <= 1.0, f"{prefix}.min_lr_ratio", "must be in [0, 1]")
        _check(self.grad_clip >= 0, f"{prefix}.grad_clip", "must be >= 0")


@dataclass
class TrainerConfig:
    max_steps: int = 8000
    """Optimizer steps (paper: 8,000)."""
    accelerator: str = "auto"
    """'auto', 'cpu' or 'gpu'."""
    devices: str = "auto"
    """Devices per node: 'auto' or a count such as '8'."""
    num_nodes: int = 1
    """Nodes (multi-node runs go through torchrun or SLURM; see README)."""
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
        _check(self.max_steps > 0, f"{prefix}.max_steps", "must be positive")
        _check(self.accelerator in ("auto", "cpu", "gpu", "cuda"), f"{prefix}.accelerator",
               f"unknown accelerator {self.accelerator!r}")
        _check(self.strategy in ("auto", "ddp", "deepspeed_stage_2", "deepspeed_stage_3"), f"{prefix}.strategy",
               f"unknown strategy {self.strategy!r}")
        _check(self.devices == "auto" or str(self.devices).isdigit(), f"{prefix}.devices",
               f"must be 'auto' or a count, got {self.devices!r}")
        _check(self.accumulate_grad_batches > 0, f"{prefix}.accumulate_grad_batches", "must be positive")


@dataclass
class ValidationConfig:
    every_n_steps: int = 500
    """Sample held-out clips (data.val_shards) every N optimizer steps; 0 = never."""
    num_samples: int = 2
    """Held-out clips sampled at each validation."""
    steps: int = 50
    """Euler steps (paper: 50)."""
    guidance: float = 3.0
    """Classifier-free guidance scale against the negative prompt (1 = off)."""
    negative_prompt: str = NEGATIVE_PROMPT
    """Negative prompt paired with every decoded caption (paper §3.2)."""
    seed: int = 0
    """Noise seed of validation samples: the same clips get the same noise at every validation."""

    def validate(self, prefix: str) -> None:
        _check(self.every_n_steps >= 0, f"{prefix}.every_n_steps", "must be >= 0")
        _check(self.num_samples > 0, f"{prefix}.num_samples", "must be positive")
        _check(self.steps > 0, f"{prefix}.steps", "must be positive")
        _check(self.guidance >= 1.0, f"{prefix}.guidance", "must be >= 1 (1 disables guidance)")


@dataclass
class CheckpointConfig:
    every_n_steps: int = 500
    """Checkpoint interval in optimizer steps."""
    keep_last: int = 3
    """Rotate: keep only the newest N step checkpoints (plus last.ckpt)."""

    def validate(self, prefix: str) -> None:
        _check(self.every_n_steps > 0, f"{prefix}.every_n_steps", "must be positive")
        _check(self.keep_last > 0, f"{prefix}.keep_last", "must be positive")


@dataclass
class LoggerConfig:
    kind: str = "csv"
    """'csv' (runs/<name>/metrics.csv), 'wandb' or 'none'."""
    project: str = "disco-train"
    """W&B project."""

    def validate(self, prefix: str) -> None:
        _check(self.kind in ("csv", "wandb", "none"), f"{prefix}.kind", f"unknown logger {self.kind!r}")


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
        _check(self.task == expected, "task", f"expected {expected!r}, got {self.task!r}")
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
