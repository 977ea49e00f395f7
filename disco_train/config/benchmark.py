"""Schema of the `benchmark` task: test videos -> RD points of every method -> curves and BD-rate tables
(`python -m disco_train benchmark recipe=NAME`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import ClassVar, Optional

from disco_train.config.base import check
from disco_train.config.codec import DCVC_RT_DIR
from disco_train.config.external import ExternalConfig
from disco_train.config.limits import ENCODE_COPIES, MAX_SIDE, budget_bytes, check_budget
from disco_train.config.metrics import RENAMED_METRIC_KEYS, MetricSettings
from disco_train.config.prepare import parse_part
from disco_train.config.send import KEPT, SendSettings, as_list
from disco_train.config.restore import RestoreMethodConfig

RATE_METHOD = "disco@rate"
"""DiSCo with rate control: one point per target rate (`RateMethodConfig`)."""
RESTORE_METHOD = "restore"
"""A standard codec + an IC-LoRA restoration decoder (`RestoreMethodConfig`)."""
METHODS = ("x264", "x265", "vvenc", "dcvc_rt", "disco", RATE_METHOD, RESTORE_METHOD)
"""Every method the benchmark knows, in the order tables list them."""
STANDARD_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                    "placebo")
VVENC_PRESETS = ("faster", "fast", "medium", "slow", "slower")
DISCO_CODECS = ("", "x264", "x265", "vvenc", "dcvc_rt")
SENT_KEYS = ("ds", "dt", "qp", "codec", "dcvc_rt_dir")
"""The keys of disco.send the benchmark's DiSCo method takes (it sends text and the degraded video)."""


def split_list(text: str) -> list[str]:
    """'a, b,,c' -> ['a', 'b', 'c']."""
    return [t.strip() for t in str(text).split(",") if t.strip()]


@dataclass
class LadderConfig:
    """A standard codec's rate ladder (x264, x265)."""

    rc: str = "qp"
    """Rate control of the ladder: 'qp' (constant QP, the codec-comparison convention) or 'crf'."""
    values: list[int] = field(default_factory=lambda: [51, 48, 45, 42, 39, 36])
    """The QPs or CRFs (0-51), one RD point each."""
    preset: str = "medium"
    """The encoder's speed preset (x264's and x265's own default: medium)."""

    def validate(self, key: str) -> None:
        check(self.rc in ("qp", "crf"), f"{key}.rc", f"'qp' or 'crf', got {self.rc!r}")
        check(bool(self.values) and all(0 <= v <= 51 for v in self.values), f"{key}.values",
              f"one or more {self.rc} values in 0-51, got {self.values}")
        check(len(set(self.values)) == len(self.values), f"{key}.values", f"duplicate values in {self.values}")
        check(self.preset in STANDARD_PRESETS, f"{key}.preset", f"one of {STANDARD_PRESETS}, got {self.preset!r}")


@dataclass
class VvencConfig:
    """H.266 by vvenc (vvencapp)."""

    qp: list[int] = field(default_factory=lambda: [63, 57, 51, 45, 39, 33])
    """Constant QPs (0-63), one RD point each."""
    preset: str = "medium"
    """vvenc's preset (its default: medium)."""
    qpa: bool = True
    """vvenc's perceptual QP adaptation (XPSNR model; on by default in vvenc)."""
    intra_period: int = 256
    """Frames between intra pictures: 256, the multiple of vvenc's GOP of 32 nearest x264's and x265's default
    keyint of 250, so every codec codes one intra picture per clip of up to 250 frames (vvenc's own default, one
    refresh per second, costs it 35 points of BD-rate against x265 on 57-frame 25 fps clips); 0 = vvenc's own."""
    app: str = ""
    """The vvencapp binary ('' = $VVENC_APP, then vvencapp on PATH)."""

    def validate(self, key: str) -> None:
        check(bool(self.qp) and all(0 <= v <= 63 for v in self.qp), f"{key}.qp", f"QPs in 0-63, got {self.qp}")
        check(len(set(self.qp)) == len(self.qp), f"{key}.qp", f"duplicate values in {self.qp}")
        check(self.preset in VVENC_PRESETS, f"{key}.preset", f"one of {VVENC_PRESETS}, got {self.preset!r}")
        check(self.intra_period >= 0, f"{key}.intra_period", "must be >= 0 (0: vvenc's refresh every second)")


@dataclass
class DcvcConfig:
    """DCVC-RT, the neural baseline."""

    qp: list[int] = field(default_factory=lambda: [0, 8, 16, 24, 32])
    """QPs (0 = lowest quality, 63 = highest; paper §4.2: 0, 8, 16, 24, 32)."""
    weights: str = DCVC_RT_DIR
    """Folder of the official cvpr2025_{image,video}.pth.tar ('synthetic': the test weights, meaningless output)."""
    stream_format: str = "official"
    """'official': microsoft/DCVC's byte format (no checksums; the rate the official codec reports); 'disco': the
    project's CRC-checked format (19 + 14 bytes per frame of headers, reported as container_bits). The synthetic
    weights need 'disco': on some content they give non-finite latents that the official entropy coder does not
    stop on."""

    def validate(self, key: str) -> None:
        check(bool(self.qp) and all(0 <= v <= 63 for v in self.qp), f"{key}.qp", f"QPs in 0-63, got {self.qp}")
        check(self.stream_format in ("official", "disco"), f"{key}.stream_format",
              f"'official' or 'disco', got {self.stream_format!r}")
        check(len(set(self.qp)) == len(self.qp), f"{key}.qp", f"duplicate values in {self.qp}")


VARIANT_NAME = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass
class DiscoVariant:
    """One DiSCo configuration of an ablation (paper Table 4: fill none at D_t=1 / zero / forward at D_t=2, one
    export each; Table 5: text "NA" against LLaVA or Gemini captions, one export), its own method `disco:<name>`
    in results, curves, plots and BD-rate tables; `anchor=disco:<name>` measures the others against it."""

    name: str = ""
    """Method name after 'disco:' (letters, digits, _ . -)."""
    export: str = ""
    """Its export folder(s), comma-separated ('' = the benchmark's `export`)."""
    text: str = ""
    """The text sent for every clip, e.g. NA (paper Table 5's "no text"; its zlib bytes are counted like any
    caption's); '' = the captions (this variant's `captions`, else disco.captions / caption_default / captioner)."""
    captions: str = ""
    """csv or jsonl of this variant's captions, e.g. Gemini's, with a caption for every clip (no fallback to
    another source); same columns as disco.captions ('' = disco.captions and its fallbacks)."""
    overrides: list[str] = field(default_factory=list)
    """Decoder-config overrides of this variant, after disco.overrides (e.g. condition.fill=zero)."""
    steps: Optional[int] = None
    """Decode settings of this variant (None / '': disco.*'s): a `disco:fast` of the same export, e.g.
    {name: fast, steps: 8, guidance: 1, cache: first_block:0.05}, puts quality against decode_s."""
    guidance: Optional[float] = None
    schedule: str = ""
    cache: str = ""
    dtype: str = ""


@dataclass
class DiscoMethodConfig:
    """DiSCo: every export of `export=` over a grid of D_s × D_t × the degraded video's codec QP."""

    send: SendSettings = field(default_factory=SendSettings.unset)
    """The degraded video's grid, as prepare's and encode's send section: send.ds, send.dt, send.qp (a value or a
    list; null = each export's trained values; paper: D_s 1, 2, 4, D_t 2, 4, 8, DCVC-RT QP 0, 8, 16, 24, 32;
    x264/x265 QPs 0-51, vvenc 0-63), send.codec (null = each export's training codec), send.dcvc_rt_dir ('' =
    dcvc_rt.weights). The benchmark sends text and this video: the sketch, pose and stream keys stay null."""
    trained_only: bool = True
    """Run an export only at the rate points it trained on (disco.json trained_settings; send.ds/dt/qp/codec narrow
    them, and a combination it did not train on is refused); false runs every combination of them."""
    steps: Optional[int] = None
    """Euler steps (default: the export's validation.steps, the paper's 50)."""
    guidance: Optional[float] = None
    """Classifier-free guidance scale (default: the export's validation.guidance)."""
    schedule: Optional[str] = None
    """σ schedule: shifted or a distilled LTX list (default: the export's validation.schedule)."""
    cache: str = "none"
    """diffusers step cache of the transformer, as `decode cache=`: none, first_block:<threshold>, mag:..."""
    dtype: str = ""
    """'' (model.dtype) or fp8 (layerwise casting), as `decode dtype=`."""
    seed: int = 0
    """Noise seed of every clip (per clip, so a clip's result does not depend on its batch)."""
    batch_size: int = 1
    """Clips decoded together (same size and length)."""
    merge_lora: bool = True
    """Fold the adapter into the base weights (faster decoding)."""
    overrides: list[str] = field(default_factory=list)
    """Decoder-config overrides as section.key=value (e.g. model.path=..., model.dtype=fp32)."""
    captions: str = ""
    """csv or jsonl of captions by video file name or stem ('' = caption_default, else the captioner)."""
    caption_key: str = "video"
    """Column of the video name in `captions`."""
    caption_column: str = "caption"
    """Column of the caption text in `captions`."""
    caption_default: str = ""
    """Caption of videos the captions file lacks."""
    captioner: str = ""
    """A local LLaVA-family folder that captions the rest."""
    variants: list[DiscoVariant] = field(default_factory=list)
    """Ablation variants ([] = one method `disco` of every export): `disco` in `methods` then stands for the
    methods disco:<name> of these, each with its own export, text and overrides (DiscoVariant)."""

    RENAMED: ClassVar[dict[str, str]] = {k: f"send.{k}" for k in SENT_KEYS}

    def validate(self, key: str) -> None:
        s = self.send
        s.validate(f"{key}.send", complete=False, codecs=DISCO_CODECS[1:])
        check(s.qp is None or all(0 <= v <= 63 for v in as_list(s.qp)), f"{key}.send.qp", f"QPs in 0-63, got {s.qp}")
        unused = [f.name for f in fields(s) if f.name not in (*SENT_KEYS, *KEPT) and getattr(s, f.name) is not None]
        check(not unused, f"{key}.send.{unused[0] if unused else ''}", "the benchmark sends text and the degraded "
              "video at each export's trained settings: only send.ds, dt, qp, codec and dcvc_rt_dir apply")
        check(self.steps is None or self.steps >= 1, f"{key}.steps", "must be >= 1")
        check(self.batch_size >= 1, f"{key}.batch_size", "must be >= 1")
        names = [v.name for v in self.variants]
        for i, v in enumerate(self.variants):
            check(VARIANT_NAME.fullmatch(v.name) is not None, f"{key}.variants[{i}].name",
                  f"letters, digits, _ . - (the method disco:<name>), got {v.name!r}")
        check(len(set(names)) == len(names), f"{key}.variants", f"duplicate names in {names}")

    def methods(self) -> list[str]:
        """The method names `disco` stands for: itself, or disco:<name> of each variant."""
        return [f"disco:{v.name}" for v in self.variants] or ["disco"]


@dataclass
class RateMethodConfig:
    """disco@rate: DiSCo coded with rate control (`encode target_kbps=`, `codec.rate`) at each target: per clip, the
    best trained point of the export whose whole .disco file fits the target; its curve is by target rate."""

    targets_kbps: list[float] = field(default_factory=list)
    """Target rates in kbit/s at each clip's frame rate, one RD point each."""
    targets_bpp: list[float] = field(default_factory=list)
    """Target rates in bits per pixel instead (exclusive with targets_kbps)."""

    def validate(self, key: str) -> None:
        check(not (self.targets_kbps and self.targets_bpp), key, "give targets_kbps or targets_bpp, not both")
        for name in ("targets_kbps", "targets_bpp"):
            values = getattr(self, name)
            check(all(v > 0 for v in values), f"{key}.{name}", f"rates > 0, got {values}")
            check(len(set(values)) == len(values), f"{key}.{name}", f"duplicate values in {values}")


@dataclass
class BenchmarkConfig:
    """Reference videos -> lossless reference clips -> every method's RD points -> results, curves, BD-rates."""

    task: str = "benchmark"
    """Schema selector."""
    refs: str = ""
    """Reference videos: a folder (.yuv, .y4m, .mp4, .mkv, ...) or a glob."""
    out: str = "runs/benchmark"
    """Output folder: results.csv, curves.csv, bdrate.csv/.md, rd_<metric>.png, report.md, refs/, cache/."""
    methods: str = "x264,x265,vvenc,dcvc_rt,disco"
    """Comma-separated methods: x264, x265, vvenc, dcvc_rt, disco, disco@rate (DiSCo at `rate`'s targets),
    restore (a codec + an IC-LoRA restoration decoder, `restore`), and ext:<name> for each external codec of `ext`."""
    anchor: str = "vvenc"
    """The method BD-rates are measured against (paper Tables 1-3: H.266)."""
    skip_unavailable: bool = False
    """A method whose encoder is not installed (vvenc) is reported as skipped, with how to build it, instead of
    stopping the run; a skipped anchor is replaced by x265. Only the CPU smoke recipes (`*_debug`) set it: a
    paper table never silently lacks its anchor."""
    size: str = "512x512"
    """Reference clip size WxH: centre crop to this aspect, then resize (paper: 512x512; zero-shot 1440x768)."""
    frames: int = 57
    """Reference clip length: the first N frames (paper: 57; zero-shot 233)."""
    max_videos: int = 0
    """Use only the first N videos in name order (0 = all)."""
    metrics: MetricSettings = field(default_factory=lambda: MetricSettings(names="psnr,ssim,lpips,dists,fid,fvd"))
    """The metrics, as `evaluate` takes them (`metrics.names=`; also lpips_vgg, flolpips, fvmd), their weight
    files, batch and FVD/FVMD sampling; computed on `device` unless metrics.device says otherwise."""
    export: str = ""
    """DiSCo export folder(s), comma-separated (needed by the disco method)."""
    yuv_size: str = ""
    """WxH of .yuv files whose names do not say it."""
    yuv_fps: float = 0.0
    """Frame rate of .yuv files whose names do not say it."""
    yuv_bit_depth: int = 0
    """Bit depth (8 or 10) of .yuv files whose names do not say it (names without one: 8)."""
    device: str = ""
    """Torch device of the decoder, DCVC-RT and metrics ('' = cuda when available, else cpu)."""
    interpolation: str = "akima"
    """BD-rate curve interpolation of bjontegaard: akima or pchip."""
    min_overlap: float = 0.75
    """BD-rate: a cell whose quality ranges overlap less than this fraction of their joint span has no number
    (status low_overlap)."""
    x264: LadderConfig = field(default_factory=LadderConfig)
    """H.264 by x264."""
    x265: LadderConfig = field(default_factory=LadderConfig)
    """H.265 by x265."""
    vvenc: VvencConfig = field(default_factory=VvencConfig)
    """H.266 by vvenc."""
    dcvc_rt: DcvcConfig = field(default_factory=DcvcConfig)
    """DCVC-RT."""
    disco: DiscoMethodConfig = field(default_factory=DiscoMethodConfig)
    """DiSCo's grid and decoding."""
    rate: RateMethodConfig = field(default_factory=RateMethodConfig)
    """disco@rate's target rates (its decoding: disco.*)."""
    restore: RestoreMethodConfig = field(default_factory=RestoreMethodConfig)
    """The restore method's codec ladder and IC-LoRA decoder."""
    max_memory_gb: float = 0.0
    """Memory a reference clip's work may take (about 4 RGB copies of it; 0 = 24 GB): a larger size × frames is
    refused before any video is read."""
    ext: dict[str, ExternalConfig] = field(default_factory=dict)
    """External codecs by name: ext.<name>.encode / .decode command templates and a QP ladder (ExternalConfig);
    method ext:<name> in `methods`."""
    part: str = ""
    """Compute only part K/N of the cells ('K/N'; '' = from torchrun's RANK/WORLD_SIZE or SLURM's array and srun
    variables, else all). Parts share `out`; the last one to finish writes the tables."""
    merge: bool = False
    """Only check that every part's cells are in out/cache and write the tables (exit 2 naming what is
    missing)."""
    print_config: bool = False
    """Print the resolved YAML and exit."""

    RENAMED: ClassVar[dict[str, str]] = {**RENAMED_METRIC_KEYS, "metric_batch_size": "metrics.batch_size"}

    @property
    def method_list(self) -> list[str]:
        """The methods of every table, with `disco` expanded into its variants' disco:<name> methods."""
        return [n for m in split_list(self.methods) for n in (self.disco.methods() if m == "disco" else [m])]

    @property
    def clip_size(self) -> tuple[int, int]:
        """(width, height) of the reference clips."""
        match = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", self.size)
        return int(match.group(1)), int(match.group(2))

    def validate(self) -> None:
        check(bool(self.refs), "refs", "is required (a folder of test videos or a glob)")
        given = split_list(self.methods)
        unknown = [m for m in given if m not in METHODS and not m.startswith("ext:")]
        check(bool(given) and not unknown, "methods",
              f"unknown {unknown}; choose from {', '.join(METHODS)} or ext:<name> (an external codec of ext)")
        for m in (m[4:] for m in given if m.startswith("ext:")):
            check(VARIANT_NAME.fullmatch(m) is not None and m in self.ext, "methods",
                  f"ext:{m} needs ext.{m}.encode=... and ext.{m}.decode=... (defined: {sorted(self.ext) or 'none'})")
        check(len(set(given)) == len(given), "methods", f"duplicates in {given}")
        match = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", self.size)
        check(match is not None, "size", f"expected WIDTHxHEIGHT (e.g. 512x512), got {self.size!r}")
        width, height = self.clip_size
        check(width >= 16 and height >= 16 and width % 2 == 0 and height % 2 == 0, "size",
              f"even sides of at least 16 px (4:2:0 video), got {self.size}")
        check(self.frames >= 2, "frames", f"at least 2 frames per clip, got {self.frames}")
        check(max(width, height) <= MAX_SIDE, "size", f"at most {MAX_SIDE} px per side, got {self.size}")
        check(self.max_memory_gb >= 0, "max_memory_gb", "must be >= 0 (0: 24 GB)")
        check_budget(ENCODE_COPIES * 3 * self.frames * width * height, budget_bytes(self.max_memory_gb),
                     f"size: {self.frames} frames of {width}x{height}", "max_memory_gb")
        check(self.max_videos >= 0, "max_videos", "must be >= 0")
        check(not self.yuv_size or re.fullmatch(r"\d+x\d+", self.yuv_size) is not None, "yuv_size",
              f"expected WIDTHxHEIGHT, got {self.yuv_size!r}")
        check(self.yuv_fps >= 0, "yuv_fps", "must be >= 0 (0: from the file name)")
        check(self.yuv_bit_depth in (0, 8, 10), "yuv_bit_depth",
              f"8 or 10 (0: from the name), got {self.yuv_bit_depth}")
        check(self.interpolation in ("akima", "pchip"), "interpolation", f"akima or pchip, got {self.interpolation!r}")
        check(0 < self.min_overlap <= 1, "min_overlap", "must be in (0, 1]")
        self.metrics.validate()
        check(self.device == "" or self.device == "cpu" or self.device.startswith("cuda"), "device",
              f"'', cpu or cuda[:N], got {self.device!r}")
        check("disco" not in given or bool(split_list(self.export)) or
              (bool(self.disco.variants) and all(split_list(v.export) for v in self.disco.variants)), "export",
              "the disco method needs export=DIR[,DIR...] (python -m disco_train export), or an export in each "
              "of disco.variants")
        check(RATE_METHOD not in given or len(split_list(self.export)) == 1, "export",
              f"{RATE_METHOD} chooses among the trained points of one export: give one export=DIR")
        check(RATE_METHOD not in given or bool(self.rate.targets_kbps or self.rate.targets_bpp), "rate.targets_kbps",
              f"{RATE_METHOD} needs target rates: rate.targets_kbps=[...] or rate.targets_bpp=[...]")
        check(RESTORE_METHOD not in given or bool(self.restore.lora), "restore.lora",
              "the restore method needs restore.lora=DIR (an export) or FILE (an IC-LoRA .safetensors)")
        for key in ("x264", "x265", "vvenc", "dcvc_rt", "disco", "rate", "restore"):
            getattr(self, key).validate(key)
        for name, ext in self.ext.items():
            ext.validate(f"ext.{name}")
        if self.part:
            parse_part(self.part)
        methods = self.method_list
        check(self.anchor in methods, "anchor", f"{self.anchor!r} is not one of the methods {', '.join(methods)}")
