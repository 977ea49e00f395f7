"""The sender (paper §3.1): a clip becomes its modalities' bitstreams. `prepare` (training shards) and `encode`
(a `.disco` file) both call `send_clip`, so training data and transmitted files are coded the same way.

How each stream is coded is a `config.send.SendSettings` (one rate point of it: single ds, dt, qp, crf).
Per clip: the caption as zlib text; the degraded video (keep 1 of D_t frames, bilinear /D_s, a codec from
`codec.backends`); optionally the sketch video (degraded by its own sketch_ds / sketch_dt and coded by its own
codec and weights) and the pose bitstream (uint16 keypoints, LZMA).

Any size and length works for `encode` (paper §4.3: trained at 512×512×57, decoded at 1440×768×233): the video is
edge-padded at the bottom/right to multiples of 32 (the LTX VAE's spatial factor) and only its own frames are
coded; the receiver generates 8k+1 frames at the padded size and crops back (`codec.receiver`).

With `stream=selected` each video-like stream codes only the frames and 32×32 blocks its interleaved tokens are
made from (`codec.selection`), and the container records the pattern for the receiver.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from itertools import islice
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from disco_train.codec import backends, selection
from disco_train.codec.container import FULL, Container, Geometry, Pattern, Stream
from disco_train.config.geometry import coded_size
from disco_train.config.send import SendSettings
from disco_train.modalities.degrade import degrade
from disco_train.modalities.text import encode_text


class CodecError(ValueError):
    """Bad settings or inputs to the sender or receiver; the message names the setting."""


def _qp(qp: int) -> int | None:
    return qp if qp >= 0 else None


def code_video(frames: np.ndarray, fps: float, kind: str, ds: int, dt: int, codec: str, crf: int, qp: int,
               weights: str | None, key: str = "dcvc_rt_dir", pattern: Pattern = FULL) -> tuple[Stream, dict]:
    """Degrade (keep 1 of dt frames, downsample by ds), keep what `pattern` selects for this kind's tokens, and
    code; returns the stream and what to record of it."""
    t, h, w = frames.shape[:3]
    if h % (2 * ds) or w % (2 * ds):
        raise CodecError(f"{kind}: ds={ds}: {h}×{w}/ds must be even integers (4:2:0 video)")
    small = frames.at(ds, dt, kind) if isinstance(frames, Degraded) else degrade(frames, ds, dt)
    if pattern != FULL:
        carried, needed = selection.plan(pattern, selection.owner(kind), t, h, w, dt)
        small = selection.select(small, carried, needed, ds)
    data, info = backends.encode(codec, small, fps / dt, crf=crf, qp=_qp(qp), weights_dir=weights, key=key)
    info = {"frames": int(small.shape[0]), "height": int(small.shape[1]), "width": int(small.shape[2]), **info}
    return Stream(kind, codec, data, ds, dt), info


@dataclass(frozen=True)
class Degraded:
    """A video-like stream degraded as it was read, its source never held whole (`codec.source`): the kept,
    downsampled frames, with the [T, H, W, 3] shape of the padded source and the [T, H, W] of the source."""

    frames: np.ndarray
    shape: tuple[int, int, int, int]
    source: tuple[int, int, int]
    ds: int
    dt: int

    def at(self, ds: int, dt: int, kind: str) -> np.ndarray:
        if (ds, dt) != (self.ds, self.dt):
            raise CodecError(f"{kind}: read degraded by ds={self.ds}, dt={self.dt}; coding asks for ds={ds}, dt={dt}")
        return self.frames


def degrade_as_read(frames: Iterable[np.ndarray], ds: int, dt: int, height: int, width: int) -> Iterator[np.ndarray]:
    """`degrade(pad_to(clip))` one source frame [H,W,3] at a time, to the same frames: 1 of every dt kept (0, dt,
    2·dt, ... as `kept_frame_indices`), padded to height×width and downsampled by ds; a frame not kept is only read."""
    for frame in islice(frames, 0, None, dt):
        yield degrade(pad_to(frame[None], 1, height, width), ds, 1)[0]


def code_pose(poses, pattern: Pattern = FULL, size: tuple[int, int, int] | None = None) -> Stream:
    """A PoseSequence (or pose bytes already coded) -> the pose stream (lossless uint16 + LZMA). Selected: the
    frames no auxiliary token reads are sent empty (`selection.select_poses`; `size`: the coded T×H×W)."""
    from disco_train.modalities.pose import decode_poses, encode_poses

    if pattern == FULL:
        return Stream("pose", "lzma", bytes(poses) if isinstance(poses, (bytes, bytearray)) else encode_poses(poses))
    poses = decode_poses(bytes(poses)) if isinstance(poses, (bytes, bytearray)) else poses
    return Stream("pose", "lzma", encode_poses(selection.select_poses(poses, pattern, *size)))


def send_clip(frames: np.ndarray, fps: float, caption: str, s: SendSettings, sketch: np.ndarray | None = None,
              poses=None) -> tuple[list[Stream], dict[str, dict]]:
    """One clip uint8 [T,H,W,3] (sides even multiples of ds) -> its streams and per-stream coding info
    (`{kind: {frames, height, width[, container_overhead_bytes]}}` for the video-like streams)."""
    pattern = Pattern.of_settings(s)
    if pattern != FULL and sketch is None and poses is None:
        raise CodecError("stream=selected: the video keeps only its interleaved tokens, so an auxiliary stream "
                         "(sketch or pose) must carry the others")
    video, video_info = code_video(frames, fps, "video", s.ds, s.dt, s.codec, s.crf, s.qp, s.dcvc_rt_dir,
                                   pattern=pattern)
    streams, info = [Stream("text", "zlib", encode_text(caption)), video], {"video": video_info}
    if sketch is not None:
        if sketch.shape[:3] != frames.shape[:3]:
            raise CodecError(f"sketch: {sketch.shape[:3]} frames×height×width, the video has {frames.shape[:3]}")
        stream, info["sketch"] = code_video(sketch, fps, "sketch", s.sketch_ds, s.sketch_dt, s.sketch_codec,
                                            s.sketch_crf, s.sketch_qp, s.sketch_dcvc_weights(),
                                            "sketch_dcvc_dir" if s.sketch_dcvc_dir else "dcvc_rt_dir", pattern)
        streams.append(stream)
    if poses is not None:
        streams.append(code_pose(poses, pattern, frames.shape[:3]))
    return streams, info


# ---- a whole video into a .disco file ---------------------------------------------------------------------------
def geometry_for(frames: int, height: int, width: int, fps: float) -> Geometry:
    """The video's size and the size the decoder generates (8k+1 frames, sides multiples of 32)."""
    return Geometry(frames, height, width, *coded_size(frames, height, width), Fraction(fps).limit_denominator(1001))


def pad_to(frames: np.ndarray, frames_to: int, height: int, width: int) -> np.ndarray:
    """Edge-pad [T,H,W,C] at the end / bottom / right (edges, not zeros: no artificial borders to code)."""
    t, h, w = frames.shape[:3]
    return np.pad(frames, ((0, frames_to - t), (0, height - h), (0, width - w), (0, 0)), mode="edge")


def send_video(frames: np.ndarray, fps: float, caption: str, s: SendSettings, sketch: np.ndarray | None = None,
               poses=None) -> Container:
    """A whole video of any size -> the container: padded to the coded size, only its own frames coded. `frames`
    and `sketch` may come `Degraded` as they were read (then already padded)."""
    g = geometry_for(*(frames.source if isinstance(frames, Degraded) else frames.shape[:3]), fps)
    if poses is not None and not isinstance(poses, (bytes, bytearray)) and poses.num_frames != g.frames:
        raise CodecError(f"pose: {poses.num_frames} frames of poses for a {g.frames}-frame video")
    pad = lambda x: x if isinstance(x, Degraded) else pad_to(x, len(x), g.coded_height, g.coded_width)  # noqa: E731
    streams, _ = send_clip(pad(frames), float(g.fps), caption, s, None if sketch is None else pad(sketch), poses)
    return Container(g, streams, Pattern.of_settings(s))


def read_pose_file(path: str | Path, frames: int) -> bytes:
    """A pose bitstream from disk, checked to decode to `frames` frames (never send what the receiver cannot read)."""
    from disco_train.modalities.pose import decode_poses

    data = Path(path).read_bytes()
    poses = decode_poses(data)
    if poses.num_frames != frames:
        raise CodecError(f"pose={path}: {poses.num_frames} frames of poses for a {frames}-frame video")
    return data
