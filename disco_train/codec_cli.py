"""`python -m disco_train encode|decode`: the DiSCo codec end to end (paper §3).

    python -m disco_train encode video.mp4 out.disco [ds=4 dt=4 codec=x265|x264|dcvc_rt qp=N crf=N caption=TEXT
                                                   captioner=DIR sketch=SKETCH.mp4 pose=POSES.xz export=DIR ...]
    python -m disco_train decode out.disco recon.mp4 export=DIR [steps=50 guidance=3 seed=0 device=cuda model.path=...]

Any size and length works (paper §4.3: trained at 512×512×57, decoded at 1440×768×233): the sender pads the video
at the bottom/right (edge pixels) to multiples of 32 — the LTX VAE's spatial factor — and the receiver generates
8k+1 frames (the VAE's temporal grid) at that size, then crops back to the sender's frames × height × width.
Only the sender's own frames are coded; the receiver forward-fills and repeats the last frame up to the 8k+1 length.

Auxiliary modalities plug in through one small function pair each (`AUX`): sketch videos are coded like the
degraded video (DCVC-RT with the export's finetuned sketch codec, or x264/x265); pose bitstreams are the bytes of
`disco_train.pose.encode_poses`, rendered by `render_poses(decode_poses(data), height, width)` at the receiver.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from disco_train import container as C
from datamodules.degrade import degrade, restore
from disco_train.modalities import decode_text, encode_text

SPATIAL, TEMPORAL = 32, 8  # LTX-Video VAE compression: sides multiple of 32, frames 8k+1
DEFAULTS = {"ds": 4, "dt": 4, "codec": "x265", "crf": 35, "qp": -1}


class CodecError(ValueError):
    """Bad arguments or inputs to encode/decode; the message names the argument."""


# ---- geometry -------------------------------------------------------------------------------------------------
def coded_geometry(frames: int, height: int, width: int, fps: float) -> C.Geometry:
    """The smallest size the decoder can generate that covers the video: 8k+1 frames, sides multiples of 32."""
    up = lambda n, m: -(-n // m) * m  # noqa: E731
    return C.Geometry(frames, height, width, up(frames - 1, TEMPORAL) + 1, up(height, SPATIAL), up(width, SPATIAL),
                      Fraction(fps).limit_denominator(1001))


def pad_to(frames: np.ndarray, frames_to: int, height: int, width: int) -> np.ndarray:
    """Edge-pad [T,H,W,C] at the end / bottom / right (edges, not zeros: no artificial borders to code)."""
    t, h, w = frames.shape[:3]
    return np.pad(frames, ((0, frames_to - t), (0, height - h), (0, width - w), (0, 0)), mode="edge")


def crop(frames: np.ndarray, g: C.Geometry) -> np.ndarray:
    return np.ascontiguousarray(frames[:g.frames, :g.height, :g.width])


# ---- video-like streams (degraded video, sketch) --------------------------------------------------------------
def _dcvc(weights: str | None):
    from disco_train.codecs.dcvc_rt import load_codec, synthetic_codec

    # 'synthetic' = golden-rule weights (tests, no checkpoints); decode must use what encoded.
    return synthetic_codec() if weights == "synthetic" else load_codec(weights or None)


def encode_frames(frames: np.ndarray, codec: str, fps: float, crf: int, qp: int, weights: str | None) -> bytes:
    if codec == "dcvc_rt":
        from disco_train.codecs.dcvc_rt import encode_video

        return encode_video(frames, qp if qp >= 0 else 32, codec=_dcvc(weights))
    from disco_train.video import encode_bitstream

    return encode_bitstream(frames, fps, codec, crf=crf, qp=qp if qp >= 0 else None)


def decode_frames(data: bytes, codec: str, weights: str | None) -> np.ndarray:
    if codec == "dcvc_rt":
        from disco_train.codecs.dcvc_rt import decode_video

        return decode_video(data, codec=_dcvc(weights))
    from disco_train.video import decode_bitstream

    return decode_bitstream(data, codec)


def code_degraded(frames: np.ndarray, g: C.Geometry, kind: str, ds: int, dt: int, codec: str, crf: int, qp: int,
                  weights: str | None) -> C.Stream:
    """Sender: pad spatially, keep 1 of dt of the video's own frames, downsample by ds, code."""
    if g.coded_height % (2 * ds) or g.coded_width % (2 * ds):
        raise CodecError(f"ds={ds}: {g.coded_height}×{g.coded_width}/ds must be even integers (4:2:0 video)")
    padded = pad_to(frames, len(frames), g.coded_height, g.coded_width)
    small = degrade(padded, ds, dt)
    return C.Stream(kind, codec, encode_frames(small, codec, float(g.fps) / dt, crf, qp, weights), ds, dt)


def restore_degraded(stream: C.Stream, g: C.Geometry, fill: str, weights: str | None) -> np.ndarray:
    """Receiver: decode, upsample to the coded size, forward-fill to the video's length, repeat to 8k+1."""
    small = decode_frames(stream.data, stream.codec, weights)
    expected = (g.frames - 1) // stream.dt + 1
    if len(small) != expected:
        raise CodecError(f"{stream.kind} stream holds {len(small)} frames; {g.frames} frames at dt={stream.dt} "
                         f"need {expected}")
    full = restore(small, g.coded_height, g.coded_width, stream.dt, g.frames, fill)
    return pad_to(full, g.coded_frames, g.coded_height, g.coded_width)


# ---- auxiliary modalities: one encode and one decode function each --------------------------------------------
def _pose_module():
    try:
        import disco_train.pose as pose
    except ImportError as err:
        raise CodecError(f"pose: needs disco_train.pose (encode_poses/decode_poses/render_poses): {err}") from None
    return pose


def encode_sketch(path: str, video: np.ndarray, g: C.Geometry, args: dict) -> C.Stream:
    from disco_train.video import read_video

    sketch, _ = read_video(path)
    if sketch.shape[:3] != video.shape[:3]:
        raise CodecError(f"sketch={path}: {sketch.shape[:3]} frames×height×width, the video has {video.shape[:3]}")
    return code_degraded(sketch, g, "sketch", int(args["sketch_ds"]), int(args["sketch_dt"]), args["sketch_codec"],
                         int(args["sketch_crf"]), int(args["sketch_qp"]), args.get("sketch_weights"))


def decode_sketch(stream: C.Stream, g: C.Geometry, args: dict) -> np.ndarray:
    return restore_degraded(stream, g, "forward", args.get("sketch_weights"))


def encode_pose(path: str, video: np.ndarray, g: C.Geometry, args: dict) -> C.Stream:
    data = Path(path).read_bytes()
    poses = _pose_module().decode_poses(data)  # refuse to send a bitstream the receiver cannot read
    if poses.num_frames != g.frames:
        raise CodecError(f"pose={path}: {poses.num_frames} frames of poses for a {g.frames}-frame video")
    return C.Stream("pose", "lzma", data)


def decode_pose(stream: C.Stream, g: C.Geometry, args: dict) -> np.ndarray:
    pose = _pose_module()
    frames = np.asarray(pose.render_poses(pose.decode_poses(stream.data), g.height, g.width))
    if frames.shape[:3] != (g.frames, g.height, g.width):
        raise CodecError(f"pose stream renders {frames.shape[:3]}, expected {(g.frames, g.height, g.width)}")
    return pad_to(frames, g.coded_frames, g.coded_height, g.coded_width)


@dataclass(frozen=True)
class Aux:
    encode: Callable[[str, np.ndarray, C.Geometry, dict], C.Stream]
    decode: Callable[[C.Stream, C.Geometry, dict], np.ndarray]


AUX = {"sketch": Aux(encode_sketch, decode_sketch), "pose": Aux(encode_pose, decode_pose)}


# ---- arguments ------------------------------------------------------------------------------------------------
ENCODE_KEYS = {"ds", "dt", "codec", "crf", "qp", "caption", "captioner", "device", "sketch", "sketch_codec",
               "sketch_ds", "sketch_dt", "sketch_crf", "sketch_qp", "sketch_weights", "pose", "dcvc_weights",
               "export"}
DECODE_KEYS = {"export", "steps", "guidance", "seed", "negative_prompt", "device", "dcvc_weights", "sketch_weights",
               "crf", "merge_lora"}


def parse(argv: list[str], positional: int, known: set[str], dotted: bool = False):
    paths = [a for a in argv if "=" not in a]
    if len(paths) != positional:
        raise CodecError(f"expected {positional} paths, got {paths}")
    args, overrides = {}, []
    for token in (a for a in argv if "=" in a):
        key, _, value = token.partition("=")
        if dotted and "." in key:
            overrides.append(token)  # decoder config overrides such as model.path=...
        elif key not in known:
            raise CodecError(f"{key}: unknown argument; known: {', '.join(sorted(known))}")
        else:
            args[key] = value
    return paths, args, overrides


def encode_settings(args: dict) -> dict:
    """Defaults < the export's training-data codec settings (export=DIR) < the command line."""
    settings = dict(DEFAULTS)
    if "export" in args:
        from disco_train.export import read_manifest

        manifest = read_manifest(args["export"], verify=False)
        settings.update({k: v for k, v in manifest["codec"].items() if v is not None})
        if manifest.get("sketch_codec"):
            settings["sketch_weights"] = str(Path(args["export"]) / manifest["sketch_codec"])
    settings.update(args)
    for key in ("ds", "dt", "crf", "qp"):
        settings.setdefault(f"sketch_{key}", settings[key])
    settings.setdefault("sketch_codec", settings["codec"])
    if settings["codec"] not in ("x264", "x265", "dcvc_rt"):
        raise CodecError(f"codec={settings['codec']}: choose x264, x265 or dcvc_rt")
    return settings


# ---- encode ---------------------------------------------------------------------------------------------------
def _caption(frames: np.ndarray, settings: dict) -> str:
    if "caption" in settings:
        return settings["caption"]
    if "captioner" not in settings:
        raise CodecError("caption=TEXT or captioner=DIR (a model for disco_train.caption) is required")
    try:
        from disco_train.caption import Captioner
    except ImportError as err:
        raise CodecError(f"captioner={settings['captioner']}: disco_train.caption is not available: {err}") from None
    picks = np.linspace(0, len(frames) - 1, 4).round().astype(int)  # a few frames: the captioner sees images
    return str(Captioner(settings["captioner"], device=settings.get("device", "cpu")).caption(frames[picks])).strip()


def encode(video: str | Path, out: str | Path, args: dict) -> C.Container:
    """Video file -> .disco container (text, degraded video, and sketch / pose when given)."""
    from disco_train.video import read_video

    s = encode_settings(args)
    frames, fps = read_video(video)
    g = coded_geometry(*frames.shape[:3], fps)
    streams = [C.Stream("text", "zlib", encode_text(_caption(frames, s))),
               code_degraded(frames, g, "video", int(s["ds"]), int(s["dt"]), s["codec"], int(s["crf"]), int(s["qp"]),
                             s.get("dcvc_weights"))]
    streams += [aux.encode(s[kind], frames, g, s) for kind, aux in AUX.items() if kind in s]
    result = C.Container(g, streams)
    C.write(out, result)
    return result


def report(c: C.Container) -> str:
    g = c.geometry
    lines = [f"{g.frames} frames {g.width}×{g.height} @ {float(g.fps):.3f} fps (generated as "
             f"{g.coded_frames}×{g.coded_width}×{g.coded_height})"]
    lines += [f"  {s.kind:7s} {s.codec:8s} {s.bits:>12,} bits" for s in c.streams]
    lines.append(f"  total            {sum(c.bits().values()):>12,} bits  {c.bpp():.6f} bpp "
                 f"({c.bpp(with_overhead=True):.6f} with the {c.overhead_bytes}-byte header)")
    return "\n".join(lines)


# ---- decode ---------------------------------------------------------------------------------------------------
def _required(c: C.Container, kind: str, why: str) -> C.Stream:
    stream = c.get(kind)
    if stream is None:
        raise CodecError(f"{why} needs a {kind} stream; the container holds {[s.kind for s in c.streams]}")
    return stream


def decode(path: str | Path, out: str | Path | None, args: dict, overrides: list[str] = ()) -> np.ndarray:
    """.disco container + export folder -> reconstructed frames [T,H,W,3] (written as mp4 when `out`)."""
    import torch

    from disco_train.export import build_decoder, read_manifest

    if "export" not in args:
        raise CodecError("export=DIR (from `python -m disco_train export`) is required")
    c = C.read(path)
    g, manifest = c.geometry, read_manifest(args["export"])
    video = _required(c, "video", "decoding")
    trained = manifest["codec"]
    if (video.ds, video.dt, video.codec) != (trained.get("ds"), trained.get("dt"), trained.get("codec")):
        print(f"decode: warning: video coded with ds={video.ds} dt={video.dt} {video.codec}; the decoder was "
              f"trained on ds={trained.get('ds')} dt={trained.get('dt')} {trained.get('codec')}", file=sys.stderr)
    args = dict(args)
    if manifest.get("sketch_codec"):
        args.setdefault("sketch_weights", str(Path(args["export"]) / manifest["sketch_codec"]))
    device = args.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
    merge = args.get("merge_lora", "true").lower() in ("1", "true", "yes")
    module = build_decoder(args["export"], overrides, device, merge=merge)
    cfg = module.cfg
    text = decode_text(c.get("text").data) if c.get("text") else ""
    as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a))[None].to(device)  # noqa: E731
    batch = {"cond": as_tensor(restore_degraded(video, g, cfg.condition.fill, args.get("dcvc_weights"))),
             "caption": [text], "fps": torch.tensor([float(g.fps)], device=device)}
    if cfg.condition.mode != "video_only":
        aux = _required(c, cfg.condition.aux, f"this decoder ({cfg.condition.mode} with {cfg.condition.aux})")
        batch["aux"] = as_tensor(AUX[aux.kind].decode(aux, g, args))
    kwargs = {"negative_prompt": args["negative_prompt"]} if "negative_prompt" in args else {}
    frames = module.reconstruct(batch, steps=int(args.get("steps", cfg.validation.steps)),
                                guidance=float(args.get("guidance", cfg.validation.guidance)),
                                seed=int(args.get("seed", 0)), **kwargs)[0].cpu().numpy()
    frames = crop(frames, g)
    if out is not None:
        from disco_train.video import write_video

        write_video(out, frames, float(g.fps), crf=int(args.get("crf", 18)))
    return frames


# ---- command line ---------------------------------------------------------------------------------------------
def encode_main(argv: list[str]) -> int:
    try:
        (video, out), args, _ = parse(argv, 2, ENCODE_KEYS)
        result = encode(video, out, args)
    except (ValueError, OSError) as err:  # CodecError, ContainerError, VideoError, BitstreamError, missing files
        print(f"encode: {err}\nusage: python -m disco_train encode VIDEO OUT.disco [key=value ...]", file=sys.stderr)
        return 2
    print(f"wrote {out} ({Path(out).stat().st_size:,} bytes): " + report(result))
    return 0


def decode_main(argv: list[str]) -> int:
    try:
        (path, out), args, overrides = parse(argv, 2, DECODE_KEYS, dotted=True)
        frames = decode(path, out, args, overrides)
    except (ValueError, OSError) as err:
        print(f"decode: {err}\nusage: python -m disco_train decode IN.disco OUT.mp4 export=DIR [key=value ...]",
              file=sys.stderr)
        return 2
    print(f"wrote {out}: {frames.shape[0]} frames {frames.shape[2]}×{frames.shape[1]}")
    return 0
