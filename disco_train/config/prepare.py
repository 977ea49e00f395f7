"""Schema of the `prepare` task: videos -> WebDataset shards (`python -m disco_train prepare`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import product
from typing import ClassVar

from disco_train.config.base import ConfigError, check, check_clip_size
from disco_train.config.decoder import FILL_MODES, REFERENCES, ModelConfig
from disco_train.config.send import RENAMED_SEND_KEYS, SendSettings, as_list


X265_MIN_SIDE = 64
"""libx265 as shipped in PyAV's wheels corrupts the heap on smaller frames (`disco_train.io.video` has the
same bound and refuses such frames); here it is checked on the config, before any video."""


GRID_MODES = ("all", "sample")


@dataclass(frozen=True)
class GridPoint:
    """One rate point of the grid: how the degraded video of a sample is made and coded (qp as configured: -1 =
    crf for x264/x265, DCVC-RT's default for dcvc_rt)."""

    ds: int
    dt: int
    qp: int
    crf: int


def flat_settings(recorded: dict) -> dict:
    """A shard folder's prepare_config.json with its send section's keys at the top level (folders prepared before
    the section are flat already and name the ratio interleave_ratio): what a resumed run and a training run
    compare with their own settings."""
    flat = {k: v for k, v in recorded.items() if k != "send"}
    flat.update(recorded.get("send") or {})
    if "interleave_ratio" in flat:
        flat["ratio"] = flat.pop("interleave_ratio")
    return flat


def parse_part(text: str, key: str = "part") -> tuple[int, int]:
    """'1/3' -> (1, 3): part 1 of 3, 0 <= K < N."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    check(match is not None, key, f"expected 'K/N' with 0 <= K < N (e.g. part=0/8), got {text!r}")
    k, n = int(match.group(1)), int(match.group(2))
    if not 0 <= k < n:
        raise ConfigError(f"{key}: {text!r} needs 0 <= K < N (parts are numbered 0 to N-1)")
    return k, n


@dataclass
class PrepareConfig:
    """Preprocessing: videos -> WebDataset shards of DiSCo modalities (`python -m disco_train prepare`)."""

    task: str = "prepare"
    """Schema selector."""
    input: str = ""
    """A folder (searched recursively for videos), a glob, or a csv/jsonl listing video paths."""
    output: str = ""
    """Shard folder; holds train-NNNNNN.tar (train-pKKK-NNNNNN.tar per part), index.jsonl (done videos) and
    failures.jsonl. One run per folder (per part) at a time: a second is refused while the first holds its lock."""
    frames: int = 57
    """Frames per clip (8k+1), cut at the source frame rate."""
    height: int = 512
    """Clip height (multiple of 32)."""
    width: int = 512
    """Clip width (multiple of 32)."""
    max_clips_per_video: int = 1
    """Non-overlapping clips taken from the start of each video (0 = as many as fit)."""
    max_memory_gb: float = 0.0
    """Memory one worker may hold for a video's frames (0 = 24 GB / workers): a video declaring more is skipped
    with its reason before it is decoded."""
    send: SendSettings = field(default_factory=SendSettings)
    """How each sample's streams are coded (`send.ds=2`, `send.codec=x264`, `send.qp=[16,32]`, ...): lists in
    send.ds/dt/qp/crf make a rate grid (`grid`)."""
    grid: str = "all"
    """With lists in send.ds/dt/qp/crf: 'all' codes every clip at every combination (one sample per point, the key
    suffixed by the point, `datamodules.schema.sample_key`), 'sample' at one combination drawn per clip from the
    sha256 of its key (the same in any worker, part or resumed run). Each sample's meta.json records its own."""
    target_crf: int = 12
    """CRF of the stored H.264 training target (12: visually lossless at a fraction of raw size)."""
    captions: str = ""
    """csv or jsonl with captions (OpenVid-1M ships a csv); '' = caption_default for every video."""
    caption_key: str = "video"
    """Column holding the video file name in the captions file."""
    caption_column: str = "caption"
    """Column holding the caption text."""
    caption_default: str = ""
    """Caption used when a video has none in the captions file ('' = such videos are failures)."""
    captioner: str = ""
    """Local LLaVA-family folder (transformers save_pretrained) that captions clips the captions file lacks."""
    sketch: bool = False
    """Add the sketch modality: InformativeDrawings line drawings of every frame (send.sketch_weights), coded by
    send.sketch_codec."""
    pose: bool = False
    """Add the pose modality: DWPose keypoints (send.pose_dir; 134-point OpenPose layout), uint16-quantised, LZMA."""
    sketch_frames: bool = False
    """Also store the extracted sketch frames losslessly (`sketch.mkv`, FFV1 gray): training data for the sketch
    codec (`sketch_dcvc` with data.train_shards). Needs sketch=true."""
    min_quality: float = 0.0
    """Curation: skip videos whose `quality_column` score in the captions csv/jsonl is below this (paper §4.1:
    DOVER < 0.4 filtered out); 0 = keep all. Skipped videos are counted in the log and summary, not failures; a
    video without a score (no row, empty or not a number) is skipped too and counted apart."""
    quality_column: str = ""
    """Column of the captions file holding the quality score used by min_quality (e.g. a DOVER score)."""
    precompute: bool = False
    """Also store VAE latents (target, degraded, sketch/pose) and T5 embeddings: needs the model weights."""
    fill: str = "forward"
    """Temporal filling baked into precomputed condition latents; training re-encodes if condition.fill differs."""
    reference: str = "full"
    """Precomputed degraded latents 'full' (upsampled to the clip size) or 'compact' (at the coded size / ds), as
    condition.reference reads them; training re-encodes if it differs."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """VAE + T5 used by precompute (same keys as the training recipe's model section; 'tiny' for tests)."""
    device: str = "cpu"
    """Device of the neural stages (captioner, sketch, pose, precompute): 'cpu', 'cuda:K', or 'cuda' = the
    process's local GPU (LOCAL_RANK under torchrun, SLURM_LOCALID under srun; GPU 0 when one is visible)."""
    workers: int = 1
    """Processes for the per-video work (decode, resize, x264/x265, LZMA, DCVC-RT and stages on the CPU); 0 = one
    per CPU core. The main process writes every shard; the samples are the ones workers=1 makes, byte for byte
    where the codecs are deterministic (PyAV's x264/x265 are not below about 128 px); their order over the shards
    differs. With device=cuda only precompute may run beside workers (in the main process); captioner, sketch and
    pose on a GPU need workers=1 (one process per GPU: part or torchrun)."""
    part: str = ""
    """This process's share of the inputs, 'K/N' (0 <= K < N): the videos whose name hashes to K, written as
    train-pKKK-*.tar with their own index, lock and failures, so parts run at once into one output. '' = from
    SLURM_ARRAY_TASK_ID/COUNT times RANK/WORLD_SIZE (torchrun) or SLURM_PROCID/NTASKS, else the whole input."""
    merge: bool = False
    """Prepare nothing: check that every part finished and that no input is missing or doubled, then write the
    combined index.jsonl and failures.jsonl (the last part to finish does this itself). Exit 2 naming what is not."""
    shard_size: int = 64
    """Samples per shard."""
    seed: int = 0
    """Seed of the neural stages (tiny models) and recorded in prepare_config.json."""
    print_config: bool = False
    """Print the resolved YAML and exit."""

    RENAMED: ClassVar[dict[str, str]] = RENAMED_SEND_KEYS

    def validate(self, prefix: str = "") -> None:
        check(bool(self.input), "input", "is required (a folder, glob, or csv/jsonl of video paths)")
        check(bool(self.output), "output", "is required (the shard folder)")
        check_clip_size(self, "")
        check(self.grid in GRID_MODES, "grid", f"unknown grid {self.grid!r}; choose one of {GRID_MODES}")
        self.send.validate("send")
        self._check_sizes()
        check(self.fill in FILL_MODES, "fill", f"unknown fill {self.fill!r}")
        check(self.reference in REFERENCES, "reference", f"unknown reference {self.reference!r}; full or compact")
        check(self.fill != "none" or as_list(self.send.dt) == [1], "fill",
              "'none' needs send.dt=1 (no dropped frames to fill)")
        check(not self.sketch_frames or self.sketch, "sketch_frames", "needs sketch=true (the frames it stores)")
        check(self.min_quality >= 0, "min_quality", "must be >= 0 (0 = keep every video)")
        check(self.min_quality == 0 or bool(self.quality_column), "quality_column",
              f"min_quality={self.min_quality} needs the score column of the captions file (e.g. quality_column=dover)")
        check(not self.quality_column or bool(self.captions), "captions",
              f"quality_column={self.quality_column!r} is a column of the captions file; set captions=")
        check(self.send.stream == "full" or self.sketch or self.pose, "send.stream",
              "'selected' needs sketch=true or pose=true: the auxiliary stream carries the tokens the video drops")
        check(re.fullmatch(r"cpu|cuda(:\d+)?", self.device) is not None, "device",
              f"unknown device {self.device!r}; 'cpu', 'cuda' or 'cuda:K'")
        check(self.shard_size > 0, "shard_size", "must be positive")
        check(self.max_clips_per_video >= 0, "max_clips_per_video", "must be >= 0")
        check(self.max_memory_gb >= 0, "max_memory_gb", "must be >= 0 (0: 24 GB shared by the workers)")
        check(self.workers >= 0, "workers", "must be >= 0 (0 = one per CPU core)")
        if self.part:
            parse_part(self.part)
        self._check_x265()
        gpu_stages = [k for k in ("captioner", "sketch", "pose") if getattr(self, k)]
        check(self.workers == 1 or self.device == "cpu" or not gpu_stages, "workers",
              f"workers={self.workers} would load {', '.join(gpu_stages)} on device={self.device} once per worker; "
              f"GPU stages run one process per GPU: use workers=1 with one process per GPU (part=K/N, torchrun "
              f"or a SLURM array), or device=cpu")
        self.model.validate("model")

    def grid_points(self) -> list[GridPoint]:
        """Every rate point, in the order of the lists (ds, then dt, qp, crf). The crf list only multiplies the
        points that use it (x264/x265 at qp = -1); the others record the first crf, as a single crf is recorded."""
        s, crfs = self.send, as_list(self.send.crf)
        return [GridPoint(ds, dt, qp, crf) for ds, dt, qp in product(as_list(s.ds), as_list(s.dt), as_list(s.qp))
                for crf in (crfs if qp < 0 and s.codec in ("x264", "x265") else crfs[:1])]

    def _check_sizes(self) -> None:
        """Every D_s (and the sketch's) divides the clip into even sides (4:2:0 video)."""
        for ds, key in [*((ds, "send.ds") for ds in as_list(self.send.ds)), (self.send.sketch_ds, "send.sketch_ds")]:
            for side in ("height", "width"):
                value = getattr(self, side)
                check(value % ds == 0 and (value // ds) % 2 == 0, key,
                      f"{side} {value}/{key.split('.')[1]}={ds} must be an even integer (4:2:0 video)")

    def _check_x265(self) -> None:
        """x265 below X265_MIN_SIDE px would fail every video one by one: refuse the config instead."""
        coded = [("codec", self.send.codec, max(as_list(self.send.ds)), "ds")]
        if self.sketch:
            coded.append(("sketch_codec", self.send.sketch_codec, self.send.sketch_ds, "sketch_ds"))
        for key, codec, ds, ds_key in coded:
            side = min(self.height, self.width) // ds
            check(codec != "x265" or side >= X265_MIN_SIDE, f"send.{key}",
                  f"x265 needs frames of at least {X265_MIN_SIDE} px per side; {self.height}×{self.width}/"
                  f"{ds_key}={ds} gives {side} px: use a smaller send.{ds_key}, a larger clip, or x264")
