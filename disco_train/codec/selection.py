"""Selected streams (`condition.stream=selected`, paper §3.2: "only the frames corresponding to the selected tokens
will actually be streamed"): each stream carries only the pixels its interleaved tokens are made from.

Under a pattern (ratio a:b, unit; `container.Pattern`) the decoder reads the video's latent token (f, r, c) where
`modalities.interleave.latent_ownership` says so and the auxiliary modality's elsewhere. A token (f, r, c) is made
from pixel block rows 32r..32r+31, columns 32c..32c+31 of the pixel frames of latent frame f (frame 0 for f = 0,
frames 8f-7 .. 8f after it: `config.geometry`). A stream codes its kept frames (1 of dt, bilinear /ds), and the
receiver fills pixel frame t from kept frame t // dt (frames past the video's end from its last frame, up to the
8k+1 frames the decoder generates). So kept frame k is *needed* at block (r, c) when some pixel frame it fills
belongs to a latent frame whose token (r, c) this stream owns, and the sender (`plan`, `select`):
- drops kept frames needed nowhere (with unit=latent_frame: every frame of the other modality's latent frames);
- flattens, in the frames it keeps, the blocks needed nowhere ((32/ds)² pixels of the stream at /ds) to mid-grey,
  on which x264/x265 spend almost nothing (recipes/README.md measures mid-grey against each block's mean);
- codes at least one frame: a stream whose tokens the decoder never reads (3:1 by latent frame on a 3-latent-frame
  clip leaves the auxiliary modality none) is its kept frame 0, all flat.
The receiver (`expand`) puts every carried frame back at its kept position and fills a dropped one from the last
carried frame before it (the first carried one when none is before): it fills only pixels whose tokens the
decoder takes from the other modality. Flat blocks stay flat. Training data is restored by the same function.

Example: 17 frames at 64×64 (latent grid 3×2×2), dt=4 keeps frames 0, 4, 8, 12, 16. At 1:3 by latent frame the
video owns latent frame 0 (pixel frame 0) only: kept frame 0 fills frames 0-3, so the video stream is that one
frame; the sketch (dt=1) owns latent frames 1-2, pixel frames 1-16, and drops frame 0.
"""

from __future__ import annotations

import numpy as np

from disco_train.codec.container import FULL, Pattern
from disco_train.config.geometry import SPATIAL, TEMPORAL, coded_size, latent_grid
from disco_train.modalities.interleave import latent_ownership

FLAT = 128
"""The value of flattened blocks (mid-grey, in every channel)."""


def owner(kind: str) -> str:
    """Whose tokens a stream kind describes: the degraded video's, or the auxiliary modality's."""
    return "video" if kind == "video" else "aux"


def plan(pattern: Pattern, side: str, frames: int, height: int, width: int, dt: int
         ) -> tuple[np.ndarray, np.ndarray]:
    """(carried, needed) of a stream of `side` ('video' or 'aux') for a video of frames × height × width (sides
    multiples of 32) kept 1 of dt: `carried` the indices of the kept frames it codes, `needed` bool
    [len(carried), H/32, W/32] the blocks of each it codes (the others flat). Full: every kept frame, all blocks.
    Vectorised: at most (8k+1)·H·W/1024 booleans, what the DecodeLimits allow a container to declare."""
    kept = (frames - 1) // dt + 1
    grid = latent_grid(coded_size(frames, height, width)[0], height, width)
    if pattern == FULL:
        return np.arange(kept), np.ones((kept, *grid[1:]), bool)
    own = latent_ownership(grid, (pattern.a, pattern.b), pattern.unit)
    mine = own if side == "video" else ~own
    t = np.arange(grid[0] * TEMPORAL - TEMPORAL + 1)  # the 8k+1 pixel frames the decoder generates
    latent = (t + TEMPORAL - 1) // TEMPORAL  # 0 -> 0, 1..8 -> 1, 9..16 -> 2, ...
    source = np.minimum(t, frames - 1) // dt  # kept frame each pixel frame is filled from: non-decreasing
    starts = np.searchsorted(source, np.arange(kept))
    needed = np.logical_or.reduceat(mine[latent], starts, axis=0)  # [kept, H, W]: OR over the frames each fills
    carried = np.flatnonzero(needed.any(axis=(1, 2)))
    if len(carried) == 0:
        return np.zeros(1, int), np.zeros((1, *grid[1:]), bool)
    return carried, needed[carried]


def select(small: np.ndarray, carried: np.ndarray, needed: np.ndarray, ds: int) -> np.ndarray:
    """The kept frames [K, h, w, 3] (at /ds) -> the carried ones with their unneeded blocks flat."""
    out = np.array(small[carried])
    if needed.all():
        return out
    rows = needed[:, (np.arange(out.shape[1]) * ds) // SPATIAL]  # stream pixel y lies in block (y·ds) // 32
    pixels = rows[:, :, (np.arange(out.shape[2]) * ds) // SPATIAL]
    out[~pixels] = FLAT
    return out


def expand(carried_frames: np.ndarray, carried: np.ndarray, kept: int) -> np.ndarray:
    """Decoded carried frames -> all `kept` kept frames: each dropped one is the last carried frame before it (the
    first carried frame before the first). Identity for full streams."""
    if len(carried) == kept:
        return carried_frames
    last = np.searchsorted(carried, np.arange(kept), side="right") - 1
    return carried_frames[np.maximum(last, 0)]


def select_poses(poses, pattern: Pattern, frames: int, height: int, width: int):
    """A PoseSequence without the people of the frames `plan` drops at dt=1 (no auxiliary token is made from
    them: with unit=latent_frame, the video's latent frames), which LZMA then codes as empty frames. Inside a kept
    frame nothing is dropped (a skeleton's limbs cross blocks), so with unit=token poses go whole."""
    if pattern == FULL:
        return poses
    from disco_train.modalities.pose import PoseSequence

    carried, _ = plan(pattern, "aux", frames, height, width, 1)
    keep = np.zeros(frames, bool)
    keep[carried] = True
    empty = lambda a: a[:0]  # noqa: E731
    return PoseSequence([k if keep[t] else empty(k) for t, k in enumerate(poses.keypoints)],
                        [s if keep[t] else empty(s) for t, s in enumerate(poses.scores)], poses.frame_size)
