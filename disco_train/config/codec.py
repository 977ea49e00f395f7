"""Config schema of the `sketch_dcvc` task: finetuning DCVC-RT on sketch videos (DiSCo §3.1 "Sketch", §4.2).

Two stages as in the paper, as separate recipes chained by path: stage 1 trains the I-frame network (DMCI) with
the P-frame network (DMC) frozen; stage 2 starts from stage 1's export (`model.init_from`) and trains DMC with
DMCI frozen, first non-cascaded, then cascaded multi-frame unrolls. Training facts follow DCVC-UF (the public
training recipe of the DCVC family): λ·D + bpp with λ log-interpolated over QP 0..63 (image 10 -> 2048, video 1 -> 768),
a random QP per sample, D = 0.8·YUV + 0.2·RGB, AdamW, gradient-norm clipping, non-finite steps skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from disco_train.config.base import check
from disco_train.config.training import CheckpointConfig, LoggerConfig, OptimConfig, RunConfig, TrainerConfig

DCVC_RT_DIR = "checkpoints/dcvc_rt"
"""Where the official DCVC-RT checkpoints (cvpr2025_image.pth.tar, cvpr2025_video.pth.tar) go."""

__all__ = ["CodecModelConfig", "CodecOptimConfig", "SketchCodecConfig", "SketchDataConfig", "StageConfig"]


@dataclass
class CodecModelConfig:
    name: str = "official"
    """'official': the DCVC-RT layout of cvpr2025_{image,video}.pth.tar. 'tiny': the same layout (the DCVC-RT
    classes have fixed widths, and only this layout exports to the official format) for CPU debug runs: it
    requires init=random, so no weights are read; the run is small through data.height/width/frames."""
    init: str = "official"
    """Initial weights when init_from is empty: 'official' (checkpoints in ckpt_dir) or 'random' (seeded)."""
    ckpt_dir: str = DCVC_RT_DIR
    """Folder with the official cvpr2025_image.pth.tar and cvpr2025_video.pth.tar (init=official)."""
    init_from: str = ""
    """Export folder of a previous stage (holds both cvpr2025_*.pth.tar); wins over `init`. Stage 2 uses it."""

    def validate(self, prefix: str) -> None:
        check(self.name in ("official", "tiny"), f"{prefix}.name", f"unknown model {self.name!r}; official or tiny")
        check(self.init in ("official", "random"), f"{prefix}.init", f"unknown init {self.init!r}; official or random")
        check(not (self.name == "tiny" and self.init == "official" and not self.init_from), f"{prefix}.init",
               "model.name=tiny is the CPU debug model: use init=random (or init_from=<export dir>)")


@dataclass
class StageConfig:
    train: str = "intra"
    """Which network trains: 'intra' (DMCI; DMC frozen; paper stage 1) or 'inter' (DMC; DMCI frozen; stage 2)."""
    qp_min: int = 0
    """Lowest base QP drawn per sample (0 = lowest quality)."""
    qp_max: int = 63
    """Highest base QP drawn per sample (63 = highest quality). λ depends on the base QP only, not on
    the per-frame QP offset of the hierarchical P-frame schedule."""
    noncascaded_steps: int = 0
    """inter: the first N optimizer steps are non-cascaded (reference detached between P-frames)."""
    noncascaded_frames: int = 2
    """inter: frames per clip while non-cascaded. 2 = one P-frame on the ground-truth frame 0 (DCVC-UF stage0);
    more frames start from the frozen I-frame reconstruction."""
    cascaded_frames: int = 0
    """inter: frames unrolled per clip after the non-cascaded steps, one backward through all of them
    (0 = data.frames)."""

    def validate(self, prefix: str) -> None:
        check(self.train in ("intra", "inter"), f"{prefix}.train", f"unknown network {self.train!r}; intra or inter")
        check(0 <= self.qp_min <= 63, f"{prefix}.qp_min", f"must be in 0..63, got {self.qp_min}")
        check(self.qp_min <= self.qp_max <= 63, f"{prefix}.qp_max",
               f"must be in qp_min..63 = {self.qp_min}..63, got {self.qp_max}")
        check(self.noncascaded_steps >= 0, f"{prefix}.noncascaded_steps", "must be >= 0")
        check(self.noncascaded_frames >= 2, f"{prefix}.noncascaded_frames", "must be >= 2 (reference + P-frame)")
        check(self.cascaded_frames == 0 or self.cascaded_frames >= 2, f"{prefix}.cascaded_frames",
               "must be 0 (= data.frames) or >= 2")


@dataclass
class SketchDataConfig:
    train_dir: str = "data/sketch/clips"
    """Sketch videos: a folder (searched recursively) or glob of .mkv/.mp4/.avi/.mov/.webm files. Frames are read
    as grayscale and coded as Y with neutral chroma (Cb = Cr = 0.5). Store them losslessly (FFV1 gray .mkv, as
    `python -m disco_train sketch-clips` writes) or near-losslessly (x264 qp 0). '' = none (train_shards only)."""
    train_shards: str = ""
    """WebDataset shards of `python -m disco_train prepare sketch=true sketch_frames=true` (a glob, brace pattern
    or comma list of .tar): the `sketch.mkv` member of their samples (the extracted sketch frames, lossless) are
    clips too, read member by member with bounded reads; '' = none. With train_dir set as well, both are used."""
    frames: int = 2
    """Consecutive frames per sample (stage 1 codes each as an I-frame; stage 2 unrolls up to this many)."""
    height: int = 256
    """Random-crop height, a multiple of 16 (DCVC-UF trains at 256², then 512²)."""
    width: int = 256
    """Random-crop width, a multiple of 16."""
    hflip: bool = True
    """Random horizontal flip of a whole clip."""
    batch_size: int = 8
    """Clips per device per step."""
    num_workers: int = 4
    """DataLoader worker processes."""
    epoch_length: int = 0
    """Samples per epoch, drawn with replacement (0 = each clip once per epoch, shuffled)."""
    synthetic_clips: int = 0
    """Debug: if > 0 and train_dir holds no clips, first write this many synthetic sketch clips there."""

    def validate(self, prefix: str) -> None:
        check(bool(self.train_dir) or bool(self.train_shards), f"{prefix}.train_dir",
              f"and {prefix}.train_shards are both empty: give a folder of sketch videos or prepared shards")
        check(self.frames >= 1, f"{prefix}.frames", "must be >= 1")
        for key in ("height", "width"):
            value = getattr(self, key)
            check(value >= 32 and value % 16 == 0, f"{prefix}.{key}", f"must be a multiple of 16, >= 32, got {value}")
        check(self.batch_size > 0, f"{prefix}.batch_size", "must be positive")
        check(self.num_workers >= 0, f"{prefix}.num_workers", "must be >= 0")
        check(self.epoch_length >= 0, f"{prefix}.epoch_length", "must be >= 0")
        check(self.synthetic_clips >= 0, f"{prefix}.synthetic_clips", "must be >= 0")


@dataclass
class CodecOptimConfig(OptimConfig):
    """AdamW as for the decoder, with finetuning defaults for a pretrained codec."""

    lr: float = 1e-5
    """Peak AdamW learning rate. Small: this finetunes pretrained codecs (DCVC-UF trains from scratch at 1e-4..2e-4;
    finetuning DCVC-HEM at 1e-5 has been reported to still lower the RD loss, so watch the RD curve)."""
    weight_decay: float = 0.0
    """AdamW decoupled weight decay. 0: decay would pull the pretrained QP banks (q_scale_*, ~0.5..2) toward 0."""
    min_lr_ratio: float = 0.1
    """Final LR as a fraction of the peak."""
    grad_clip: float = 0.1
    """Clip the global gradient norm (DCVC-UF: 0.1 image, 0.2 video; 0 = off). Non-finite norms skip the step."""


def _default_trainer() -> TrainerConfig:
    # fp32: the rate path takes logs of likelihoods down to 1e-9; bf16 keeps 8 mantissa bits (DCVC-UF trains
    # without AMP too).
    return TrainerConfig(max_steps=20000, precision="32-true")


@dataclass
class SketchCodecConfig(RunConfig):
    """Top-level config of the `sketch_dcvc` task: DCVC-RT finetuned on sketch videos. Stage recipes fix `name`
    so that the next stage finds the previous export."""

    task: str = "sketch_dcvc"
    """Which task (and schema) this recipe configures."""
    model: CodecModelConfig = field(default_factory=CodecModelConfig)
    stage: StageConfig = field(default_factory=StageConfig)
    data: SketchDataConfig = field(default_factory=SketchDataConfig)
    optim: CodecOptimConfig = field(default_factory=CodecOptimConfig)
    trainer: TrainerConfig = field(default_factory=_default_trainer)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)

    def unroll_frames(self, step: int) -> tuple[int, bool]:
        """inter: (frames per clip, cascaded?) at optimizer step `step`."""
        if step < self.stage.noncascaded_steps:
            return self.stage.noncascaded_frames, False
        return self.stage.cascaded_frames or self.data.frames, True

    def validate(self, prefix: str = "") -> None:
        super().validate(prefix)
        check(self.trainer.precision in ("32-true", "32"), f"{prefix}trainer.precision",
               f"the rate path needs fp32 (likelihoods down to 1e-9), got {self.trainer.precision!r}")
        check(not self.trainer.strategy.startswith("deepspeed"), f"{prefix}trainer.strategy",
               "DeepSpeed bypasses the non-finite-step skip; use 'auto' or 'ddp'")
        if self.stage.train == "inter":
            need = max(self.stage.noncascaded_frames if self.stage.noncascaded_steps else 0,
                       self.stage.cascaded_frames or 2)
            check(self.data.frames >= need, f"{prefix}data.frames",
                   f"stage.train=inter unrolls up to {need} frames, data.frames is {self.data.frames}")
