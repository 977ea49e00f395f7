"""`python -m disco_train encode|decode`: the DiSCo codec end to end (paper §3).

    python -m disco_train encode video.mp4 out.disco caption="a red car" [export=DIR send.ds=4 send.qp=N ...]
    python -m disco_train encode video.mp4 out.disco caption="a red car" export=DIR target_kbps=40   (`codec.rate`)
    python -m disco_train decode out.disco recon.mkv export=DIR [steps=50 guidance=3 seed=0 device=cuda model.path=...]

`encode` takes its coding settings from the command line, else from the export (the decoder's training data:
a rate point of its trained set, `codec.trained.choose_point`; a point outside the set is refused unless
force=true), else from `prepare`'s defaults, and prints each stream's bits and the total with the container's
header (the file: what a receiver needs) in bits, bpp and kbps at the video's frame rate. `decode` (`codec.pipeline`:
containers -> condition frames -> generated frames) builds only the `DiscoDecoder` (never the training system, never
Lightning) from the export folder, and writes the reconstruction losslessly
(`io.video.write_output`: a folder -> PNG frames, .mkv -> FFV1, .mp4 -> H.264 RGB at qp 0), so a metric
scores the decoder and not a second codec; `crf=N` with an .mp4 writes a lossy 4:2:0 viewing copy instead.
"""

from __future__ import annotations

import sys
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import ClassVar, Optional

import numpy as np

from disco_train.codec import container as C
from disco_train.codec.container import Pattern
from disco_train.codec.sender import CodecError, geometry_for, read_pose_file, send_video
from disco_train.config import ConfigError, DecodeLimits, DiscoLoraConfig
from disco_train.config.base import check
from disco_train.config.send import ENCODE_CODECS, RATE_KEYS, RENAMED_SEND_KEYS, SendSettings
from disco_train.codec.guards import check_decode, check_encode, check_encode_output, check_source, read_source
from disco_train.codec.pipeline import decode
from disco_train.codec.source import send_streamed, streams
from disco_train.config.cli import REQUIRED, Command


@dataclass
class EncodeConfig:
    video: str = REQUIRED
    """The video to send (any size and length)."""
    out: str = REQUIRED
    """The .disco file to write."""
    caption: Optional[str] = None
    """The caption; without it the captioner writes one."""
    captioner: str = ""
    """A local LLaVA-family folder that captions the video when no caption is given."""
    device: str = "cpu"
    """Torch device of the captioner."""
    export: str = ""
    """Export folder of the decoder: its training data's coding settings become the defaults."""
    send: SendSettings = field(default_factory=SendSettings.unset)
    """How each stream is coded (`send.ds=2 send.qp=16 send.sketch_codec=x264 ...`, as prepare's send section; one
    value each). A key left at null is the export's: a rate point of its training data (`codec.trained`; with an
    export trained on several, send.ds/dt/qp pick one, nothing given: the first, with a note), its sketch settings
    and DCVC-RT weights, its decoder's condition.stream/ratio/interleave_unit; without an export, prepare's
    defaults. send.dcvc_rt_dir/sketch_dcvc_dir '' = the folders the export's training data used (sketch: the
    export's own sketch_codec/), else checkpoints/dcvc_rt ('synthetic': the test weights)."""
    target_kbps: Optional[float] = None
    """Rate control: send the best trained rate point of the export whose whole file fits this many kbit/s at the
    video's frame rate (exclusive with send.ds/dt/codec/qp/crf; `codec.rate`)."""
    target_bpp: Optional[float] = None
    """Rate control by bits per pixel of the video instead (exclusive with target_kbps)."""
    size: str = ""
    """Scale the video to WxH first, as prepare makes training clips (cover, centre crop); 'export' = the size the
    export's decoder trained at (e.g. a clip too small for the codec after D_s); '' = as it is."""
    force: bool = False
    """Code at send.ds/dt/codec/qp/crf outside the export's trained rate points (otherwise refused: the decoder never
    saw such streams)."""
    sketch: str = ""
    """A sketch video of the same frames × height × width to send as the sketch stream, or 'auto': extract it from
    the video with prepare's sketch stage (InformativeDrawings, `send.sketch_weights`)."""
    pose: str = ""
    """A pose bitstream (`encode_poses` bytes, .xz) of the video to send as the pose stream, or 'auto': estimate
    the poses with prepare's pose stage (DWPose, `send.pose_dir`)."""
    max_memory_gb: float = 0.0
    """Memory encode may hold (0 = 24 GB): the degraded video and one frame's work when it streams the video, about
    4 copies of the whole video as RGB frames when sketch=auto, pose=auto, the captioner or a rate target needs every
    frame. A video declaring more is refused before it is decoded, one holding more when it is reached."""
    overwrite: bool = False
    """Replace an existing `out` that is not a .disco file (an earlier .disco is replaced anyway; an input never:
    `out` equal to the video, sketch or pose is refused)."""

    RENAMED: ClassVar[dict[str, str]] = RENAMED_SEND_KEYS

    def validate(self) -> None:
        self.send.validate("send", complete=False, codecs=ENCODE_CODECS)
        for key in RATE_KEYS:
            check(not isinstance(getattr(self.send, key), list), f"send.{key}",
                  "encode codes one rate point: give one value (a list is prepare's rate grid)")
        check_encode(self)


def settings(a: EncodeConfig, note=lambda text: print(text, file=sys.stderr), point: dict | None = None
             ) -> SendSettings:
    """prepare's defaults < the export's training data (a trained rate point, or `point`, its sketch settings and
    weights) < the command line. A rate point outside the export's trained set is a ConfigError unless `force`."""
    s, given = SendSettings(), a.send
    manifest = None
    if a.export:
        from disco_train.codec import trained
        from disco_train.decoder.export import read_manifest, trained_settings

        manifest = read_manifest(a.export, verify=False)
        if point is None:
            point, message = trained.choose_point(trained_settings(manifest),
                                                  {k: getattr(given, k) for k in ("ds", "dt", "codec", "qp", "crf")},
                                                  a.force)
            if message:
                note(message)
        s = replace(s, **{k: v for k, v in {**point, **trained.sketch_defaults(manifest)}.items() if hasattr(s, k)})
    s = replace(s, **{f.name: getattr(given, f.name) for f in fields(given)
                      if getattr(given, f.name) is not None and f.name not in ("dcvc_rt_dir", "sketch_dcvc_dir")})
    if manifest is not None:
        s.dcvc_rt_dir = trained.video_weights(manifest, given.dcvc_rt_dir) or s.dcvc_rt_dir
        s.sketch_dcvc_dir = trained.sketch_weights(a.export, manifest, given.sketch_dcvc_dir, "")
    else:
        s.dcvc_rt_dir, s.sketch_dcvc_dir = given.dcvc_rt_dir or s.dcvc_rt_dir, given.sketch_dcvc_dir
    return s


def export_pattern(s: SendSettings, a: EncodeConfig) -> SendSettings:
    """The stream pattern of the export's decoder (its condition.*, the same names) where the command line gives
    none: the receiver refuses a file whose pattern is not its decoder's."""
    if a.export:
        from disco_train.decoder.export import read_manifest

        condition = read_manifest(a.export, verify=False).config.get("condition", {})
        for key in ("stream", "ratio", "interleave_unit"):
            if getattr(a.send, key) is None and key in condition:
                setattr(s, key, condition[key])
    Pattern.of_settings(s)  # a bad ratio fails here, before the video is read
    return s


def _caption(frames: np.ndarray, a: EncodeConfig) -> str:
    if a.caption is not None:
        return a.caption
    if not a.captioner:
        raise CodecError("caption=TEXT or captioner=DIR (a LLaVA-family model folder) is required")
    from disco_train.modalities.caption import Captioner, caption_clip

    return caption_clip(Captioner(a.captioner, device=a.device), frames)


def encode(a: EncodeConfig) -> C.Container:
    """Video file -> .disco container (text, degraded video, and sketch / pose when given); with a rate target,
    at the best trained point that fits it (`codec.rate`)."""
    check_encode_output(a)
    check_source(a)
    points = rate_points(a)
    s = export_pattern(settings(a), a) if points is None else None
    # the video is read and degraded one frame at a time unless a stage needs its frames whole (`codec.source`)
    result = send_streamed(a, s) if streams(a, points) else send_whole(a, s, points)
    C.write(a.out, result)
    return result


def send_whole(a: EncodeConfig, s: SendSettings | None, points: list[dict] | None) -> C.Container:
    """The container of a video read whole: for sketch=auto, pose=auto, the captioner and rate targets."""
    frames, fps = read_source(a.video, a)
    if a.size:  # to a size the decoder trained at, or any WxH: as prepare makes training clips
        from disco_train.codec.trained import scale_to

        frames = scale_to(frames, a.size, a.export)
    if a.sketch == "auto":
        from disco_train.modalities.extract import SketchExtractor

        sketch = SketchExtractor(a.send.sketch_weights, a.device, stage="sketch=auto")(frames)
    else:
        sketch = read_source(a.sketch, a, frames.shape[1:3])[0] if a.sketch else None
    if a.pose == "auto":
        from disco_train.modalities.extract import PoseExtractor

        poses = PoseExtractor(a.send.pose_dir, a.device, stage="pose=auto")(frames)
    else:
        poses = read_pose_file(a.pose, len(frames)) if a.pose else None
    caption = _caption(frames, a)
    if points is None:
        result = send_video(frames, fps, caption, s, sketch, poses)
    else:
        from disco_train.codec.rate import Target, send_best

        def send(point: dict) -> C.Container:
            return send_video(frames, fps, caption, export_pattern(settings(a, point=point), a), sketch, poses)

        result, found = send_best(points, send, Target.of(a.target_kbps, a.target_bpp),
                                  geometry_for(*frames.shape[:3], fps))
        print(f"encode: {found.line}")
    return result


def rate_points(a: EncodeConfig) -> list[dict] | None:
    """With target_kbps / target_bpp: the export's trained points, worst to best expected quality (`codec.rate`);
    else None."""
    from disco_train.codec import rate

    if rate.Target.of(a.target_kbps, a.target_bpp) is None:
        return None
    given = [f"send.{k}" for k in ("ds", "dt", "codec", "qp", "crf") if getattr(a.send, k) is not None] + \
        ["force"] * a.force
    if given:
        raise ConfigError(f"{', '.join(given)}: a rate target chooses the trained point itself; give target_kbps / "
                          f"target_bpp or {'/'.join(given)}, not both")
    if not a.export:
        raise ConfigError("export: a rate target chooses among the export's trained rate points; give export=DIR")
    return rate.ordered_points(a.export)


# ---- decode ---------------------------------------------------------------------------------------------------
DECODER_SECTIONS = tuple(f"{f.name}." for f in fields(DiscoLoraConfig) if f.default_factory is not MISSING)
"""Prefixes of decoder-config overrides on the decode command line (model., lora., condition., ...)."""


@dataclass
class DecodeConfig:
    input: str = REQUIRED
    """The .disco file, or several (a folder, a glob or a,b,c) decoded into the folder `out` (`codec.batch`)."""
    out: str = ""
    """Where to write the reconstruction: a folder (PNG frames), .mkv (FFV1) or .mp4 (H.264 RGB qp 0), all
    lossless; '' = do not write. With several inputs: the output folder (finished outputs are skipped)."""
    export: str = REQUIRED
    """Export folder of the decoder (`python -m disco_train export`)."""
    steps: Optional[int] = None
    """Euler steps (default: the export's validation.steps, the paper's 50; a distilled schedule's own 8)."""
    guidance: Optional[float] = None
    """Classifier-free guidance scale (default: the export's validation.guidance); 1 = no negative branch (half
    the transformer calls)."""
    schedule: Optional[str] = None
    """σ schedule: 'shifted' (the training shift) or a distilled LTX list: ltxv097_distilled, ltxv098_distilled,
    ltx2_distilled (8 fixed steps; for a distilled base, model.path=...). Default: the export's validation.schedule."""
    seed: int = 0
    """Noise seed."""
    negative_prompt: Optional[str] = None
    """Negative prompt (default: the export's)."""
    device: str = ""
    """Torch device ('' = cuda when available, else cpu)."""
    dcvc_rt_dir: str = ""
    """DCVC-RT weights of the video stream ('' = the folder the export's training data used, else
    checkpoints/dcvc_rt; 'synthetic' = test weights)."""
    sketch_dcvc_dir: str = ""
    """DCVC-RT weights of the sketch stream ('' = the export's sketch_codec/, else the sketch codec folder its
    training data used, else the video's)."""
    crf: Optional[int] = None
    """A lossy viewing copy instead: x264 4:2:0 at this CRF (out must be an .mp4); none = lossless."""
    merge_lora: bool = True
    """Fold the adapter into the base weights (faster); false keeps it as a separate branch."""
    cache: str = "none"
    """diffusers step cache on the transformer: none, first_block:<threshold> (e.g. 0.05) or
    mag:<threshold>:<ratios.json> / mag:calibrate (`decoder.fast`); changes the output."""
    dtype: str = ""
    """'' (model.dtype) or fp8: weights stored in float8_e4m3fn, cast per layer to compute (diffusers'
    layerwise casting; norms kept); changes the output."""
    compile: bool = False
    """torch.compile the transformer blocks (diffusers' compile_repeated_blocks; the first steps are slower)."""
    vae_tiling: int = 0
    """Tile the VAE decode when a side of the coded clip exceeds this many pixels (0 = never)."""
    overwrite: bool = False
    """Replace an existing `out` file, or write frames into a folder that decode did not fill (never over an
    input)."""
    limits: DecodeLimits = field(default_factory=DecodeLimits)
    """What the .disco file may declare (sizes, caption, people per frame), checked before anything is built."""
    overrides: list[str] = field(default_factory=list)
    """Decoder-config overrides given as section.key=value (e.g. model.path=..., model.dtype=fp32)."""
    batch_size: int = 1
    """With several inputs: clips of one coded size sampled together."""
    part: str = ""
    """With several inputs: decode only part K/N of them ('K/N'; '' = from torchrun's RANK/WORLD_SIZE or SLURM's
    array and srun variables, else all)."""

    def validate(self) -> None:
        check_decode(self)


# ---- command line ---------------------------------------------------------------------------------------------
ENCODE = Command("python -m disco_train encode", "A video -> one .disco file (text, degraded video, and sketch / "
                 "pose when given); prints each modality's bits and the bpp.", EncodeConfig, ("video", "out"))
DECODE = Command("python -m disco_train decode", "A .disco file -> the reconstructed video, with the exported "
                 "decoder (DiscoDecoder only; no training system).", DecodeConfig, ("input", "out"),
                 passthrough=DECODER_SECTIONS)
ERRORS = (ValueError, OSError)  # CodecError, ContainerError, VideoError, BitstreamError, ExportError, missing files


def encode_main(argv: list[str]) -> int:
    def run(a: EncodeConfig) -> None:
        from disco_train.codec.report import report

        result = encode(a)
        print(f"wrote {a.out} ({Path(a.out).stat().st_size:,} bytes): " + report(result))

    return ENCODE.main(argv, run, ERRORS)


def decode_main(argv: list[str]) -> int:
    def run(a: DecodeConfig) -> None:
        from disco_train.codec.batch import decode_many, is_batch
        from disco_train.io.video import output_kind

        if is_batch(a.input):
            decode_many(a)
            return
        frames = decode(a)
        written = f"{a.out} ({output_kind(a.out, a.crf)})" if a.out else "(nothing)"
        print(f"wrote {written}: {frames.shape[0]} frames {frames.shape[2]}×{frames.shape[1]}")

    return DECODE.main(argv, run, ERRORS)
