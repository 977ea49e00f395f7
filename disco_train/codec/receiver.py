"""The receiver (paper §3.2): bitstreams back to condition frames, then the generative decoder. Training-data
decoding (`datamodules.decode`) and `decode` (a `.disco` file) restore streams through the same functions here.

- degraded video: decoded by its codec, checked to hold the 1-of-D_t frames of the clip, bilinearly upsampled and
  temporally filled (`fill`: forward, zero or none);
- sketch: the same, always forward-filled (the fill ablation of paper Table 4 is about the video);
- pose: keypoints decoded and rendered as skeleton frames;
- text: the caption, paired at sampling time with the negative prompt.

Selected streams (a version 2 container, `codec.selection`) hold only the kept frames their tokens are made from:
the receiver puts them back at their kept positions (a dropped one repeats the last carried frame) before the
usual upsampling and filling, and refuses a decoder whose condition pattern is not the file's.
"""

from __future__ import annotations

import numpy as np

from disco_train.codec import backends, selection
from disco_train.codec.container import FULL, Container, Geometry, Pattern, Stream
from disco_train.codec.sender import pad_to
from disco_train.io.errors import DecodeError
from disco_train.config.geometry import compact_size
from disco_train.config.limits import DecodeLimits
from disco_train.modalities.degrade import restore
from disco_train.modalities.text import decode_text


def restore_video(data: bytes, codec: str, ds: int, dt: int, frames: int, height: int, width: int, fill: str,
                  weights: str | None = None, kind: str = "video", pattern: Pattern = FULL,
                  reference: str = "full") -> np.ndarray:
    """A video-like stream -> uint8 [frames,height,width,3]: decode (checked to hold the 1-of-dt frames of the
    clip at height/ds × width/ds, or the ones `pattern` selects of them, before more is decoded), put the
    selected frames back in place, upsample, fill. `reference='compact'`: no upsampling; the frames stay at
    height/ds × width/ds, edge-padded to `compact_size` (`condition.reference`)."""
    carried, _ = selection.plan(pattern, selection.owner(kind), frames, height, width, dt)
    kept = (frames - 1) // dt + 1
    expect = (len(carried), height // ds, width // ds)
    try:
        small = backends.decode(codec, data, weights, expect=expect,
                                key="sketch_dcvc_dir" if kind == "sketch" else "dcvc_rt_dir")
    except DecodeError as err:
        raise type(err)(f"{kind} stream: {err}") from None
    if reference == "compact":
        filled = restore(selection.expand(small, carried, kept), height // ds, width // ds, dt, frames, fill)
        return pad_to(filled, frames, *compact_size(height, width, ds))
    return restore(selection.expand(small, carried, kept), height, width, dt, frames, fill)


class StreamError(DecodeError):
    """A container lacks a stream the decoder needs, or a stream does not fit the container's video."""


def restore_pose(data: bytes, frames: int, height: int, width: int, max_people: int = DecodeLimits.max_people
                 ) -> np.ndarray:
    """A pose stream -> rendered skeleton frames uint8 [frames,height,width,3] (the pose's own frame size is
    scaled to height×width); its frame count and people per frame are checked before it is inflated."""
    from disco_train.modalities.pose import decode_poses, render_poses

    rendered = np.asarray(render_poses(decode_poses(bytes(data), frames, max_people), height, width))
    if rendered.shape[:3] != (frames, height, width):
        raise StreamError(f"pose stream renders {rendered.shape[:3]}, expected {(frames, height, width)}")
    return rendered


def restore_aux(stream: Stream, frames: int, height: int, width: int, weights: str | None = None,
                max_people: int = DecodeLimits.max_people, pattern: Pattern = FULL) -> np.ndarray:
    """The auxiliary modality as pixel frames aligned with the target (a selected pose stream needs nothing more:
    its unread frames arrive empty)."""
    if stream.kind == "sketch":
        return restore_video(stream.data, stream.codec, stream.ds, stream.dt, frames, height, width, "forward",
                             weights, kind="sketch", pattern=pattern)
    if stream.kind == "pose":
        return restore_pose(stream.data, frames, height, width, max_people)
    raise StreamError(f"no auxiliary modality {stream.kind!r}; sketch or pose")


def required(c: Container, kind: str, why: str) -> Stream:
    stream = c.get(kind)
    if stream is None:
        raise StreamError(f"{why} needs a {kind} stream; the container holds {[s.kind for s in c.streams]}")
    return stream


def receive(c: Container, fill: str, aux: str = "none", video_weights: str | None = None,
            sketch_weights: str | None = None, limits: DecodeLimits = DecodeLimits(), pattern: Pattern = FULL,
            reference: str = "full") -> dict:
    """A container -> {caption, cond, ds[, aux]}: frames at the coded size (the sender's frames, then the last one
    repeated up to the 8k+1 frames the decoder generates; `reference='compact'`: at the coded size / D_s).
    `pattern`: the decoder's (`Pattern.of_condition`), which must be the file's: selected streams lack what
    another pattern's tokens would read."""
    g = c.geometry
    if c.pattern != pattern:
        raise StreamError(f"the file's streams are {c.pattern}; this decoder reads {pattern} (condition.stream, "
                          f"condition.interleave_unit, condition.ratio): encode for this decoder's pattern")
    video = required(c, "video", "decoding")
    coded = lambda x, h=g.coded_height, w=g.coded_width: pad_to(x, g.coded_frames, h, w)  # noqa: E731
    cond = restore_video(video.data, video.codec, video.ds, video.dt, g.frames, g.coded_height, g.coded_width, fill,
                         video_weights, pattern=c.pattern, reference=reference)
    out = {"caption": decode_text(c.get("text").data, limits.max_text_bytes) if c.get("text") else "",
           "cond": coded(cond, *cond.shape[1:3]), "ds": video.ds}
    if aux != "none":
        stream = required(c, aux, f"this decoder (conditioned on {aux})")
        # The sketch was coded at the padded size; poses are in the sender's pixel coordinates, so they are drawn
        # at its size and padded like the video.
        h, w = (g.coded_height, g.coded_width) if stream.kind == "sketch" else (g.height, g.width)
        out["aux"] = coded(restore_aux(stream, g.frames, h, w, sketch_weights, limits.max_people, c.pattern))
    return out


def crop(frames: np.ndarray, g: Geometry) -> np.ndarray:
    """The generated coded-size clip back to the sender's frames × height × width."""
    return np.ascontiguousarray(frames[:g.frames, :g.height, :g.width])
