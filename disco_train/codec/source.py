"""What `encode` reads of its source video, within the memory budget (`max_memory_gb`; issue 29: work bounded before
it starts).

A video is read one frame at a time and kept only as the sender codes it: 1 of D_t frames, padded to the coded
grid and downsampled by D_s as it arrives (`sender.degrade_as_read`: the frames `degrade` makes of the whole clip).
A small file of many large frames (a decompression bomb: 150 black 4K frames in 30 KB) then costs the degraded
video and one frame's work, never the decoded video. That estimate is checked against the budget from what the
file declares before any frame is decoded, and again as frames arrive (a file may declare no count, or hold more
than it declares). Stages that need every source frame (sketch=auto, pose=auto, the captioner, a rate target's
several settings) read the video whole instead (`guards.read_source`).
"""

from __future__ import annotations

from itertools import chain
from typing import Callable, Iterator

import numpy as np

from disco_train.codec.container import Container
from disco_train.codec.sender import CodecError, Degraded, degrade_as_read, read_pose_file, send_video
from disco_train.config.geometry import coded_size
from disco_train.config.limits import ENCODE_COPIES, budget_bytes, check_budget, stream_bytes
from disco_train.config.send import SendSettings


def streams(a, points) -> bool:
    """Whether encode streams its source: no stage needs the source frames whole."""
    return points is None and a.caption is not None and a.sketch != "auto" and a.pose != "auto"


def send_streamed(a, s: SendSettings) -> Container:
    """`encode` of a video read as a stream: the video (scaled first with `size=`) and a sketch file degraded as
    they are read, the pose file checked against the frame count."""
    budget = budget_bytes(a.max_memory_gb)
    scale = None
    if a.size:
        from disco_train.codec.trained import clip_size

        width, height = clip_size(a.size, a.export)
        scale = (height, width)
    video, fps = read_degraded(a.video, s.ds, s.dt, budget, scale=scale)
    sketch = None
    if a.sketch:
        left = budget - video.frames.nbytes * ENCODE_COPIES
        sketch = read_degraded(a.sketch, s.sketch_ds, s.sketch_dt, left, size=video.source[1:])[0]
    poses = read_pose_file(a.pose, video.source[0]) if a.pose else None
    return send_video(video, fps, a.caption, s, sketch, poses)


def read_degraded(path: str, ds: int, dt: int, budget: int, size: tuple[int, int] | None = None,
                  scale: tuple[int, int] | None = None) -> tuple[Degraded, float]:
    """The video at `path` degraded by (ds, dt) as it is read, refused (ConfigError naming the estimate) beyond
    `budget` bytes. `size`: the (height, width) its frames must have; `scale`: the (height, width) each frame is
    covered and centre-cropped to first (`encode size=`)."""
    from disco_train.io.video import iter_video, probe

    info = probe(path)
    height, width = scale or (info.height, info.width)
    _, coded_h, coded_w = coded_size(1, height, width)

    def check(frames: int, said: str) -> None:
        need = stream_bytes(frames, coded_h, coded_w, ds, dt, max(coded_h * coded_w, info.width * info.height))
        check_budget(need, budget, f"{path}: encoding {said} frames of {info.width}×{info.height} (ds={ds}, dt={dt})",
                     "max_memory_gb")

    check(max(info.frames, 1), str(info.frames) if info.frames else "its first")
    frames, fps = iter_video(path, size=size)
    frames = _checked(_scaled(frames, scale) if scale else frames, info.frames, check)
    first = next(frames, None)
    if first is None:
        raise CodecError(f"{path}: no frames")
    _, coded_h, coded_w = coded_size(1, *first.shape[:2])  # a display rotation turns the stored size
    read = 0

    def counted() -> Iterator[np.ndarray]:
        nonlocal read
        for read, frame in enumerate(chain([first], frames), 1):
            yield frame

    kept = np.stack(list(degrade_as_read(counted(), ds, dt, coded_h, coded_w)))
    return Degraded(kept, (read, coded_h, coded_w, 3), (read, *first.shape[:2]), ds, dt), fps


def _scaled(frames: Iterator[np.ndarray], size: tuple[int, int]) -> Iterator[np.ndarray]:
    from disco_train.modalities.degrade import resize_center_crop

    for frame in frames:
        yield resize_center_crop(frame[None], *size)[0][0]


def _checked(frames: Iterator[np.ndarray], declared: int, check: Callable[[int, str], None]) -> Iterator[np.ndarray]:
    """The frames, the estimate checked again at each frame beyond what the file declared."""
    for n, frame in enumerate(frames, 1):
        if n > declared:
            check(n, f"at least {n}")
        yield frame
