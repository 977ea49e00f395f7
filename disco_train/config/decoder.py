"""Schema of the generative decoder: backbone, LoRA, flow (σ) schedule, conditioning, sampling.

These sections are what an export carries to the receiver (`disco_train.decoder`), so they live apart from the
training-only sections (`disco_train.config.training`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from disco_train.config.base import check, parse_ratio

MAX_STEPS = 1000
"""Most Euler steps of sampling (the paper uses 50; flow samplers gain nothing past a few hundred)."""
MAX_TEXT_TOKENS = 1024
"""Most T5 tokens of a caption (LTX-Video trains with 128; T5's position buckets reach 512)."""

ATTENTION_KERNELS = ("default", "flash", "efficient", "cudnn", "math")
"""`model.attention` names (disco_train/decoder/speed.py maps them to SDPA backends; config stays torch-free)."""

NEGATIVE_PROMPT = "worst quality, inconsistent motion, blurry, jittery, distorted"
"""Paper §3.2: the decoded caption is paired with predefined negative prompts such as 'blurry' or 'distorted'."""

SHIFT_TOKENS = (1024, 4096)
"""Target-token counts at which the σ logit mean equals SHIFT_VALUES (LTX-Video's trainers)."""
SHIFT_VALUES = (0.95, 2.05)
"""Logit means at SHIFT_TOKENS: longer sequences are trained (and sampled) at higher noise."""

REFERENCES = ("full", "compact")
"""`condition.reference`: the degraded video upsampled to the target size before the VAE (the paper), or VAE-encoded
at its own coded size with RoPE positions scaled onto the target grid (LTX-2's IC-LoRA `reference_downscale_factor`)."""

DISTILLED_SIGMAS = {
    # LTX-Video 0.9.7 distilled, Lightricks/LTX-Video configs/ltxv-13b-0.9.7-distilled.yaml: first_pass timesteps
    # [1.0000, 0.9937, 0.9875, 0.9812, 0.9750, 0.9094, 0.7250], second_pass [0.9094, 0.7250, 0.4219]; one
    # resolution here (no upscaler pass), so the first pass continues with the second's last σ, then 0.
    "ltxv097_distilled": (1.0, 0.9937, 0.9875, 0.9812, 0.975, 0.9094, 0.725, 0.4219, 0.0),
    # LTX-Video 0.9.8 distilled (configs/ltxv-13b-0.9.8-distilled.yaml): the same timesteps as 0.9.7's.
    "ltxv098_distilled": (1.0, 0.9937, 0.9875, 0.9812, 0.975, 0.9094, 0.725, 0.4219, 0.0),
    # LTX-2 distilled: DISTILLED_SIGMA_VALUES of Lightricks/LTX-2 ltx-pipelines utils/constants.py (copied by
    # diffusers 0.42 into pipelines/ltx2/utils.py), then 0.
    "ltx2_distilled": (1.0, 0.99375, 0.9875, 0.98125, 0.975, 0.909375, 0.725, 0.421875, 0.0),
}
"""The fixed σ lists the distilled LTX checkpoints were distilled for: 8 Euler steps, no guidance."""
SCHEDULES = ("shifted", *DISTILLED_SIGMAS)
"""Decode `schedule=`: 'shifted' (`sampling_sigmas`: the training shift, any step count) or a distilled list."""

FILL_MODES = ("forward", "zero", "none")
"""Temporal filling of the degraded video's dropped frames (paper Fig. 3, Table 4)."""

INTERLEAVE_UNITS = ("token", "latent_frame")
"""What alternates a:b in token interleaving: single tokens over the frame-major token order, or whole latent
frames (`disco_train.modalities.interleave`)."""
STREAMS = ("full", "selected")
"""What the sender codes of each stream: all of it, or only what the interleaved tokens read (`codec.selection`)."""
MAX_RATIO_PART = 65535
"""Largest a or b of a selected stream's ratio: a `.disco` header carries each as a u16 (`codec.container`)."""


MODEL_NAMES = {"ltxv": ("ltxv_13b", "ltxv_2b", "tiny"),
               "ltx2": ("ltx2_19b", "ltx23_22b", "ltx25_22b", "tiny", "tiny25")}
"""`model.name` per `model.family` ('tiny', 'tiny25': random, built in code from the family's diffusers classes;
tiny25 with the 22B's architecture flags)."""
TINY_MODELS = ("tiny", "tiny25")


@dataclass
class ModelConfig:
    family: str = "ltxv"
    """Backbone family: 'ltxv' (LTX-Video 0.9.x, T5) or 'ltx2' (LTX-2 / 2.3 / 2.5, Gemma 3 + text connectors,
    run video-only; `disco_train/decoder/family.py`)."""
    name: str = "ltxv_13b"
    """Backbone: ltxv: 'ltxv_13b' (0.9.7/0.9.8 dev), 'ltxv_2b' (0.9.x distilled); ltx2: 'ltx2_19b' (LTX-2 dev),
    'ltx23_22b' (LTX-2.3 22B), 'ltx25_22b' (LTX-2.5 22B: no video FFN bias), 'tiny25'; either: 'tiny' (random,
    built in code)."""
    path: str = "checkpoints/ltx-video-13b"
    """Local weights (or a Hub repo id): a diffusers folder (transformer/, vae/; LTX-2 also connectors/) or, for
    ltxv, one single-file .safetensors."""
    text_encoder_path: str = "checkpoints/t5-v1_1-xxl"
    """Text encoder folder (text_encoder/ + tokenizer/ or a plain transformers folder): T5 v1.1 XXL for ltxv,
    Gemma 3 12B for ltx2 (the LTX-2 diffusers repo itself has both)."""
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
        check(self.family in MODEL_NAMES, f"{prefix}.family",
              f"unknown family {self.family!r}; choose {' or '.join(MODEL_NAMES)}")
        names = MODEL_NAMES[self.family]
        check(self.name in names, f"{prefix}.name",
              f"unknown {self.family} model {self.name!r}; choose {', '.join(names)}")
        check(self.dtype in ("bf16", "fp16", "fp32"), f"{prefix}.dtype", f"unknown dtype {self.dtype!r}")
        check(0 < self.max_text_tokens <= MAX_TEXT_TOKENS, f"{prefix}.max_text_tokens",
              f"must be in 1..{MAX_TEXT_TOKENS}, got {self.max_text_tokens}")
        check(self.checkpoint_blocks >= -1, f"{prefix}.checkpoint_blocks", "use -1 (all blocks) or a count >= 0")
        check(self.attention in ATTENTION_KERNELS, f"{prefix}.attention",
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
        check(self.rank > 0, f"{prefix}.rank", "must be positive")
        check(self.alpha > 0, f"{prefix}.alpha", "must be positive")
        check(0.0 <= self.dropout < 1.0, f"{prefix}.dropout", "must be in [0, 1)")
        check(len(self.targets) > 0, f"{prefix}.targets", "needs at least one module name")


@dataclass
class FlowConfig:
    sampler: str = "shifted_logit_normal"
    """σ sampler for training: 'shifted_logit_normal' (LTX trainers) or 'uniform'."""
    logit_std: float = 1.0
    """Std of the normal before the sigmoid."""
    shift_tokens: tuple[int, int] = SHIFT_TOKENS
    """Target-token counts at which the logit mean equals shift_values (linear in between and beyond)."""
    shift_values: tuple[float, float] = SHIFT_VALUES
    """Logit means at shift_tokens: longer sequences are trained at higher noise."""

    def validate(self, prefix: str) -> None:
        check(self.sampler in ("shifted_logit_normal", "uniform"), f"{prefix}.sampler",
               f"unknown sampler {self.sampler!r}")
        check(self.logit_std > 0, f"{prefix}.logit_std", "must be positive")
        check(self.shift_tokens[1] > self.shift_tokens[0], f"{prefix}.shift_tokens", "must be increasing")


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
    interleave_unit: str = "token"
    """What alternates a:b: 'token' (token i of the frame-major order is the video's when i mod (a+b) < a, so
    both modalities share every latent frame) or 'latent_frame' (latent frame f is wholly the video's when
    f mod (a+b) < a, else wholly the auxiliary modality's: each frame is described by one modality)."""
    stream: str = "full"
    """'full': every stream is coded whole; 'selected' (interleave only): each stream holds only what its tokens
    read (the other modality's frames dropped, or its 32×32 blocks flat); the shards must be prepared alike."""
    reference: str = "full"
    """'full' (the paper): the degraded video is upsampled to the target size, one condition token per target
    token. 'compact': it is VAE-encoded at its coded size (/D_s, padded to multiples of 32) and its tokens' RoPE
    positions are scaled by D_s onto the target grid: at D_s = 4 a 512×512×57 clip has 128 condition tokens instead
    of 2048 (video_only only; `decoder.conditioning.reference_coords`)."""

    def validate(self, prefix: str) -> None:
        check(self.mode in ("video_only", "interleave", "concat"), f"{prefix}.mode", f"unknown mode {self.mode!r}")
        check(self.aux in ("none", "sketch", "pose"), f"{prefix}.aux", f"unknown modality {self.aux!r}")
        check((self.mode == "video_only") == (self.aux == "none"), f"{prefix}.aux",
               f"mode {self.mode!r} needs aux {'none' if self.mode == 'video_only' else 'sketch or pose'}")
        a, b = parse_ratio(self.ratio, f"{prefix}.ratio")
        check(self.fill in FILL_MODES, f"{prefix}.fill", f"unknown fill {self.fill!r}")
        check_pattern(self.stream, self.interleave_unit, (a, b), prefix, "interleave_unit", "ratio")
        check(self.stream == "full" or self.mode == "interleave", f"{prefix}.stream",
              f"'selected' needs condition.mode=interleave (mode {self.mode!r} reads every token of each stream)")
        check(self.reference in REFERENCES, f"{prefix}.reference",
              f"unknown reference {self.reference!r}; choose {' or '.join(REFERENCES)}")
        check(self.reference == "full" or self.mode == "video_only", f"{prefix}.reference",
              f"'compact' needs condition.mode=video_only: {self.mode} pairs each video token with an auxiliary "
              f"token of the full-size target grid, which a compact reference does not have")


def check_pattern(stream: str, unit: str, ratio: tuple[int, int], prefix: str, unit_key: str, ratio_key: str) -> None:
    """The stream and interleave keys shared by condition.* and prepare (`prefix` '' for prepare's)."""
    dot = f"{prefix}." if prefix else ""
    check(unit in INTERLEAVE_UNITS, f"{dot}{unit_key}",
          f"unknown unit {unit!r}; choose {' or '.join(INTERLEAVE_UNITS)}")
    check(stream in STREAMS, f"{dot}stream", f"unknown stream {stream!r}; choose {' or '.join(STREAMS)}")
    check(stream == "full" or max(ratio) <= MAX_RATIO_PART, f"{dot}{ratio_key}",
          f"selected streams carry a and b in the .disco header as u16: at most {MAX_RATIO_PART}, got "
          f"{ratio[0]}:{ratio[1]}")


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
    schedule: str = "shifted"
    """σ schedule: 'shifted' (the training shift, `steps` steps) or a distilled LTX list (DISTILLED_SIGMAS: 8 steps,
    for a distilled base (`model.path`) with guidance 1)."""

    def validate(self, prefix: str) -> None:
        check(self.every_n_steps >= 0, f"{prefix}.every_n_steps", "must be >= 0")
        check(self.num_samples > 0, f"{prefix}.num_samples", "must be positive")
        check(0 < self.steps <= MAX_STEPS, f"{prefix}.steps", f"must be in 1..{MAX_STEPS}, got {self.steps}")
        check(1.0 <= self.guidance <= 100, f"{prefix}.guidance", "must be in 1..100 (1 disables guidance)")
        check_schedule(self.schedule, self.steps, f"{prefix}.schedule", f"{prefix}.steps")

    def sampling(self, schedule: str | None, steps: int | None) -> tuple[str, int | None]:
        """(schedule, steps) of a decode: the given ones, else these (the export's); a distilled schedule keeps
        its own step count (steps None; ConfigError if `steps` contradicts it)."""
        schedule = schedule or self.schedule
        if steps is None and schedule == "shifted":
            steps = self.steps
        check_schedule(schedule, steps, "schedule", "steps")
        return schedule, None if schedule != "shifted" else steps


def check_schedule(schedule: str, steps: int | None, key: str, steps_key: str) -> None:
    """A known schedule; a distilled list fixes the step count (`steps` None or its length)."""
    check(schedule in SCHEDULES, key, f"unknown schedule {schedule!r}; choose {', '.join(SCHEDULES)}")
    fixed = len(DISTILLED_SIGMAS[schedule]) - 1 if schedule in DISTILLED_SIGMAS else None
    check(fixed is None or steps in (None, fixed), steps_key,
          f"schedule={schedule} is a fixed list of {fixed} steps; set {steps_key}={fixed}")
