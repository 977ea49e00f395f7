"""Pose modality of DiSCo (§3.1): 134-point OpenPose-layout keypoints, their lossless codec and renderer.

Keypoint layout (DWPose / ControlNet "openpose_full", 134 points per person):

====== ======== =====================================================================
index  count    part
====== ======== =====================================================================
0-17   18       body, OpenPose-18 order: 0 nose, 1 neck, 2 R-shoulder, 3 R-elbow, 4 R-wrist,
                5 L-shoulder, 6 L-elbow, 7 L-wrist, 8 R-hip, 9 R-knee, 10 R-ankle, 11 L-hip,
                12 L-knee, 13 L-ankle, 14 R-eye, 15 L-eye, 16 R-ear, 17 L-ear
18-23  6        feet (COCO-WholeBody order)
24-91  68       face
92-112 21       left hand
113-133 21      right hand
====== ======== =====================================================================

Coordinates are in pixels of the frame the poses were estimated on (x right, y down).

Bitstream layout, version 1 (all integers little-endian)::

    offset  size  field
    0       4     magic b"DSPK"  (DiSCo pose keypoints)
    4       1     format version (1)
    5       4     uint32  length of the decompressed body in bytes
    9       4     uint32  CRC-32 (zlib.crc32) of the decompressed body
    13      ...   body compressed as a raw LZMA2 stream (lzma.FORMAT_RAW, preset 6, dict 8 MiB, lc=0 lp=1 pb=1)

    body:
    uint16  frame height H (>= 1)
    uint16  frame width W (>= 1)
    uint32  number of frames T
    uint16  poses per frame, T values; N = their sum
    uint16  x residuals, N*134 values (frame-major, then pose, then keypoint), q = round(x / W * 65535)
    uint16  y residuals, N*134 values, q = round(y / H * 65535)
    uint8   score residuals, N*134 values, q = round(clip(score, 0, 1) * 255)

    Residuals: for pose slot p of frame t with p < P_{t-1} the stored value is (q[t,p] - q[t-1,p]) modulo
    2^16 (2^8 for scores); otherwise it is q itself. DWPose keeps a single person in slot 0 across frames, so
    smooth motion becomes small numbers (measured: 27 % fewer bytes on a 57-frame clip with 0.5 px jitter);
    when slots do not match people the modular residual is still exactly invertible, only less compact.

A raw LZMA2 stream is used instead of the .xz container because the container alone costs 32 bytes
(measured), which matters at ultra-low bitrates; integrity is covered by our own length + CRC-32 instead.
x, y and scores are stored as separate planes so LZMA sees runs of similar values; lp=1/pb=1 tell LZMA the
data is 16-bit aligned (measured: about 7 % smaller).
Coordinates are clipped to the frame: points outside it cannot be rendered anyway (the paper's argument
for lossless uint16 quantisation is that keypoints fall within the resolution range).
"""

from __future__ import annotations

import colorsys
import lzma
import math
import struct
import zlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from skimage import draw

from disco_train.io.errors import DecodeError

NUM_KEYPOINTS = 134
BODY = slice(0, 18)
FEET = slice(18, 24)
FACE = slice(24, 92)
LEFT_HAND = slice(92, 113)
RIGHT_HAND = slice(113, 134)

MAGIC = b"DSPK"
FORMAT_VERSION = 1
_HEADER = struct.Struct("<4sBII")
_BODY_HEAD = struct.Struct("<HHI")
_QMAX = 65535
_SCORE_QMAX = 255
# Fixed in the format: a raw LZMA2 stream carries no filter properties, so the decoder must know them.
_LZMA_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 6, "dict_size": 1 << 23, "lc": 0, "lp": 1, "pb": 1}]
# Refuse absurd declared sizes before allocating (a corrupt header must not trigger a huge allocation).
_MAX_BODY_BYTES = 1 << 30

# ControlNet / DWPose renderer constants (controlnet_aux/dwpose/util.py).
_LIMBS = [(2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11), (2, 12), (12, 13),
          (13, 14), (2, 1), (1, 15), (15, 17), (1, 16), (16, 18)]  # 1-indexed; ControlNet draws these 17
_COLORS = [(255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
           (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255),
           (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85)]
_HAND_EDGES = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10), (10, 11),
               (11, 12), (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18), (18, 19), (19, 20)]
_HAND_COLORS = [tuple(int(np.rint(c * 255)) for c in colorsys.hsv_to_rgb(i / len(_HAND_EDGES), 1.0, 1.0))
                for i in range(len(_HAND_EDGES))]
_STICK_WIDTH = 4


@dataclass
class PoseSequence:
    """Per-frame whole-body poses of a clip.

    keypoints[t]: float32 [P_t, 134, 2] pixel (x, y); scores[t]: float32 [P_t, 134];
    frame_size: (height, width) of the frames the coordinates refer to.
    """

    keypoints: list[np.ndarray]
    scores: list[np.ndarray]
    frame_size: tuple[int, int]

    def __post_init__(self) -> None:
        h, w = (int(v) for v in self.frame_size)
        if h < 1 or w < 1 or h > _QMAX or w > _QMAX:
            raise ValueError(f"frame_size must be (height, width) in 1..{_QMAX}, got {self.frame_size}")
        self.frame_size = (h, w)
        if len(self.keypoints) != len(self.scores):
            raise ValueError(f"{len(self.keypoints)} keypoint frames but {len(self.scores)} score frames")
        kps, scs = [], []
        for t, (k, s) in enumerate(zip(self.keypoints, self.scores)):
            k, s = np.asarray(k, dtype=np.float32), np.asarray(s, dtype=np.float32)
            if k.size == 0 and s.size == 0:  # accept [] for "no person in this frame"
                k, s = k.reshape(0, NUM_KEYPOINTS, 2), s.reshape(0, NUM_KEYPOINTS)
            if k.ndim != 3 or k.shape[1:] != (NUM_KEYPOINTS, 2):
                raise ValueError(f"frame {t}: keypoints must be [P, {NUM_KEYPOINTS}, 2], got {k.shape}")
            if s.shape != k.shape[:2]:
                raise ValueError(f"frame {t}: scores must be [P, {NUM_KEYPOINTS}] = {k.shape[:2]}, got {s.shape}")
            if k.shape[0] > _QMAX:
                raise ValueError(f"frame {t}: {k.shape[0]} poses exceed the format limit of {_QMAX}")
            kps.append(k)
            scs.append(s)
        self.keypoints, self.scores = kps, scs

    @property
    def num_frames(self) -> int:
        return len(self.keypoints)

    @property
    def poses_per_frame(self) -> list[int]:
        return [k.shape[0] for k in self.keypoints]

    def __len__(self) -> int:
        return self.num_frames


def _quantise(poses: PoseSequence) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Map coordinates to uint16 over [0, frame size] and scores to uint8 over [0, 1]."""
    h, w = poses.frame_size
    n = sum(poses.poses_per_frame)
    if n == 0:
        empty16 = np.zeros((0, NUM_KEYPOINTS), np.uint16)
        return empty16, empty16.copy(), np.zeros((0, NUM_KEYPOINTS), np.uint8)
    kp = np.concatenate(poses.keypoints).astype(np.float64)
    sc = np.concatenate(poses.scores).astype(np.float64)
    # Non-finite values mean "not detected": store them as a zero-score point at the origin.
    bad = ~np.isfinite(kp).all(-1) | ~np.isfinite(sc)
    kp[bad] = 0.0
    sc[bad] = 0.0
    qx = np.rint(np.clip(kp[..., 0] / w, 0.0, 1.0) * _QMAX).astype(np.uint16)
    qy = np.rint(np.clip(kp[..., 1] / h, 0.0, 1.0) * _QMAX).astype(np.uint16)
    qs = np.rint(np.clip(sc, 0.0, 1.0) * _SCORE_QMAX).astype(np.uint8)
    return qx, qy, qs


def _previous_rows(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (into the concatenated [N, 134] arrays) of each pose and of its predecessor slot.

    Returns (rows, prev) listing only poses that have a predecessor: same slot p in frame t-1.
    """
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    rows, prev = [], []
    for t in range(1, len(counts)):
        m = int(min(counts[t], counts[t - 1]))
        rows.append(np.arange(starts[t], starts[t] + m))
        prev.append(np.arange(starts[t - 1], starts[t - 1] + m))
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(rows), np.concatenate(prev)


def _to_residuals(q: np.ndarray, counts: np.ndarray) -> np.ndarray:
    rows, prev = _previous_rows(counts)
    res = q.copy()
    res[rows] = q[rows] - q[prev]  # unsigned arithmetic wraps: exactly invertible modulo 2^bits
    return res


def _from_residuals(res: np.ndarray, counts: np.ndarray) -> np.ndarray:
    q = res.copy()
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    for t in range(1, len(counts)):  # sequential: each frame needs the previous one reconstructed
        m = int(min(counts[t], counts[t - 1]))
        q[starts[t]:starts[t] + m] += q[starts[t - 1]:starts[t - 1] + m]
    return q


def encode_poses(poses: PoseSequence | Sequence[np.ndarray], frame_size: tuple[int, int] | None = None,
                 scores: Sequence[np.ndarray] | None = None) -> bytes:
    """Serialise a pose sequence into the versioned LZMA bitstream described in the module docstring.

    ``poses`` is a PoseSequence, or per-frame keypoint arrays [P_t, 134, 2] together with ``scores``
    ([P_t, 134] per frame) and ``frame_size`` = (height, width).
    """
    if not isinstance(poses, PoseSequence):
        if frame_size is None or scores is None:
            raise ValueError("encode_poses needs frame_size=(height, width) and scores when given raw arrays")
        poses = PoseSequence(list(poses), list(scores), frame_size)
    elif frame_size is not None and tuple(frame_size) != poses.frame_size:
        raise ValueError(f"frame_size {tuple(frame_size)} contradicts the PoseSequence's {poses.frame_size}")
    qx, qy, qs = _quantise(poses)
    h, w = poses.frame_size
    counts = np.asarray(poses.poses_per_frame, dtype="<u2")
    planes = [_to_residuals(q, counts) for q in (qx, qy, qs)]
    body = b"".join([_BODY_HEAD.pack(h, w, poses.num_frames), counts.tobytes(),
                     planes[0].astype("<u2").tobytes(), planes[1].astype("<u2").tobytes(), planes[2].tobytes()])
    payload = lzma.compress(body, format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS)
    return _HEADER.pack(MAGIC, FORMAT_VERSION, len(body), zlib.crc32(body)) + payload


def _decompress_body(data: bytes, frames: int | None, max_people: int | None) -> bytes:
    if len(data) < _HEADER.size:
        raise DecodeError(f"pose bitstream truncated: {len(data)} bytes, the header alone is {_HEADER.size}")
    magic, version, body_len, crc = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise DecodeError(f"not a pose bitstream: magic {magic!r}, expected {MAGIC!r}")
    if version != FORMAT_VERSION:
        raise DecodeError(f"unsupported pose bitstream version {version} (this build reads {FORMAT_VERSION})")
    limit = _MAX_BODY_BYTES if frames is None else _body_bytes(frames, frames * (max_people or _QMAX))
    if body_len > limit:
        raise DecodeError(f"corrupt pose bitstream: declared body of {body_len:,} bytes exceeds the {limit:,} "
                          f"that {frames} frames of at most {max_people} people can need")
    dec = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS)
    try:
        body = dec.decompress(data[_HEADER.size:], max_length=body_len + 1)
    except lzma.LZMAError as exc:
        raise DecodeError(f"corrupt pose bitstream: LZMA payload does not decode ({exc})") from exc
    if not dec.eof:
        raise DecodeError("corrupt or truncated pose bitstream: LZMA stream did not reach its end marker")
    if dec.unused_data:
        raise DecodeError(f"corrupt pose bitstream: {len(dec.unused_data)} trailing bytes after the LZMA stream")
    if len(body) != body_len or zlib.crc32(body) != crc:
        raise DecodeError("corrupt pose bitstream: decompressed body fails its length/CRC-32 check")
    return body


def _body_bytes(frames: int, people: int) -> int:
    """Body size of `frames` frames holding `people` poses in all: fixed head, a uint16 count per frame, then
    2 + 2 + 1 bytes per keypoint."""
    return _BODY_HEAD.size + 2 * frames + 5 * NUM_KEYPOINTS * people


def decode_poses(data: bytes, frames: int | None = None, max_people: int | None = None) -> PoseSequence:
    """Inverse of :func:`encode_poses`; raises DecodeError on any malformed, truncated or corrupt input. A receiver
    passes the `frames` its video has and the most people a frame may hold: both are checked against the header
    before anything is inflated beyond what they allow."""
    body = _decompress_body(bytes(data), frames, max_people)
    if len(body) < _BODY_HEAD.size:
        raise DecodeError("corrupt pose bitstream: body shorter than its fixed header")
    h, w, t = _BODY_HEAD.unpack_from(body)
    if h < 1 or w < 1:
        raise DecodeError(f"corrupt pose bitstream: frame size {h}x{w}")
    if frames is not None and t != frames:
        raise DecodeError(f"pose bitstream holds {t} frames; the video has {frames}")
    off = _BODY_HEAD.size
    if len(body) < off + 2 * t:
        raise DecodeError(f"corrupt pose bitstream: body too short for {t} per-frame pose counts")
    counts = np.frombuffer(body, dtype="<u2", count=t, offset=off).astype(np.int64)
    if max_people is not None and t and counts.max() > max_people:
        raise DecodeError(f"pose bitstream: a frame holds {counts.max()} poses, more than the limit of {max_people}")
    off += 2 * t
    m = int(counts.sum()) * NUM_KEYPOINTS
    if len(body) != off + 5 * m:  # 2 + 2 bytes of coordinates and 1 byte of score per keypoint
        raise DecodeError(f"corrupt pose bitstream: body is {len(body)} bytes, the header implies {off + 5 * m}")
    planes = [np.frombuffer(body, dtype=src, count=m, offset=off + o).astype(dst).reshape(-1, NUM_KEYPOINTS)
              for src, dst, o in (("<u2", np.uint16, 0), ("<u2", np.uint16, 2 * m), ("u1", np.uint8, 4 * m))]
    qx, qy, qs = (_from_residuals(p, counts) for p in planes)
    xy = np.stack([qx.astype(np.float64) * (w / _QMAX), qy.astype(np.float64) * (h / _QMAX)], -1)
    kp = xy.astype(np.float32).reshape(-1, NUM_KEYPOINTS, 2)
    sc = (qs.astype(np.float32) / _SCORE_QMAX).reshape(-1, NUM_KEYPOINTS)
    splits = np.cumsum(counts)[:-1]
    return PoseSequence(list(np.split(kp, splits)) if t else [], list(np.split(sc, splits)) if t else [],
                        (h, w))


def _disk(canvas: np.ndarray, x: int, y: int, radius: int, color: tuple[int, int, int]) -> None:
    rr, cc = draw.disk((y, x), radius + 0.5, shape=canvas.shape[:2])  # +0.5 ~ cv2.circle's filled extent
    canvas[rr, cc] = color


def _bbox_grid(canvas: np.ndarray, xs, ys, pad: float):
    """Pixel-centre grids of the canvas window around the given points, or None if fully outside."""
    h, w = canvas.shape[:2]
    x0, x1 = max(int(math.floor(min(xs) - pad)), 0), min(int(math.ceil(max(xs) + pad)), w - 1)
    y0, y1 = max(int(math.floor(min(ys) - pad)), 0), min(int(math.ceil(max(ys) + pad)), h - 1)
    if x0 > x1 or y0 > y1:
        return None
    gy, gx = np.mgrid[y0:y1 + 1, x0:x1 + 1]
    return (slice(y0, y1 + 1), slice(x0, x1 + 1)), gx.astype(np.float64), gy.astype(np.float64)


def _thick_line(canvas: np.ndarray, p0, p1, color, half_width: float = 1.0) -> None:
    """Segment of ~2 px width (cv2.line thickness=2 in the ControlNet renderer): distance test to the segment."""
    (x0, y0), (x1, y1) = (float(v) for v in p0), (float(v) for v in p1)
    grid = _bbox_grid(canvas, (x0, x1), (y0, y1), half_width + 1)
    if grid is None:
        return
    win, gx, gy = grid
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((gx - x0) * dx + (gy - y0) * dy) / max(dx * dx + dy * dy, 1e-12), 0.0, 1.0)
    inside = (gx - x0 - t * dx) ** 2 + (gy - y0 - t * dy) ** 2 <= half_width ** 2
    canvas[win][inside] = color


def _limb(canvas: np.ndarray, a: np.ndarray, b: np.ndarray, color) -> None:
    """Filled ellipse between two body joints, as cv2.ellipse2Poly + fillConvexPoly in ControlNet.

    Same integer centre, integer half-length, integer-degree angle and half-width 4 as that code; the fill is
    an analytic inside test over the bounding box (polygon filling of the 361-vertex outline is ~20x slower).
    """
    cx, cy = (int(v) for v in (a + b) / 2.0)
    half_len = max(int(math.hypot(*(a - b)) / 2), 0.5)  # a zero axis would fill nothing; cv2 draws a stub
    angle = math.radians(int(math.degrees(math.atan2(a[1] - b[1], a[0] - b[0]))))
    grid = _bbox_grid(canvas, (cx,), (cy,), max(half_len, _STICK_WIDTH) + 1)
    if grid is None:
        return
    win, gx, gy = grid
    u = (gx - cx) * math.cos(angle) + (gy - cy) * math.sin(angle)
    v = -(gx - cx) * math.sin(angle) + (gy - cy) * math.cos(angle)
    inside = (u / (half_len + 0.5)) ** 2 + (v / (_STICK_WIDTH + 0.5)) ** 2 <= 1.0  # +0.5: rasterised edge
    canvas[win][inside] = color


def _render_frame(kps: np.ndarray, scs: np.ndarray, sx: float, sy: float, height: int, width: int,
                  thr: float) -> np.ndarray:
    canvas = np.zeros((height, width, 3), np.uint8)
    pix = np.stack([kps[..., 0] * sx, kps[..., 1] * sy], -1)  # frame pixels -> output pixels
    for i, (a, b) in enumerate(_LIMBS):  # limbs outer, persons inner: ControlNet's overdraw order
        for p in range(len(kps)):
            if scs[p, a - 1] > thr and scs[p, b - 1] > thr:
                _limb(canvas, pix[p, a - 1], pix[p, b - 1], _COLORS[i])
    canvas = (canvas * 0.6).astype(np.uint8)  # limbs are dimmed so joints stand out
    for j in range(18):
        for p in range(len(kps)):
            if scs[p, j] > thr:
                _disk(canvas, int(pix[p, j, 0]), int(pix[p, j, 1]), 4, _COLORS[j])
    ipix = pix.astype(np.int64)
    # ControlNet treats integer pixel 0 as "missing" for hands/face (missing points are stored as -1 or 0).
    vis = (scs >= thr) & (ipix[..., 0] > 0) & (ipix[..., 1] > 0)
    for p in range(len(kps)):
        for part in (LEFT_HAND, RIGHT_HAND):
            hp, hv = ipix[p, part], vis[p, part]
            for e, (a, b) in enumerate(_HAND_EDGES):
                if hv[a] and hv[b]:
                    _thick_line(canvas, tuple(hp[a]), tuple(hp[b]), _HAND_COLORS[e])
            for k in np.flatnonzero(hv):
                _disk(canvas, hp[k, 0], hp[k, 1], 4, (0, 0, 255))
        fp, fv = ipix[p, FACE], vis[p, FACE]
        for k in np.flatnonzero(fv):
            _disk(canvas, fp[k, 0], fp[k, 1], 3, (255, 255, 255))
    return canvas


def render_poses(poses: PoseSequence, height: int, width: int, score_threshold: float = 0.3) -> np.ndarray:
    """Draw ControlNet-style skeleton frames: uint8 [T, height, width, 3] RGB on black.

    Body limbs are dimmed coloured ellipses with coloured joints, hands are HSV-coloured edges with blue
    points and the face is white dots, as in the DWPose/ControlNet annotator (feet are not drawn there
    either). Coordinates are rescaled from ``poses.frame_size`` to (height, width). A body joint is drawn
    when its score > threshold, a hand/face point when >= threshold, matching that code.
    """
    if height < 1 or width < 1:
        raise ValueError(f"render size must be positive, got {height}x{width}")
    fh, fw = poses.frame_size
    sx, sy = width / fw, height / fh
    out = np.zeros((poses.num_frames, height, width, 3), np.uint8)
    for t, (k, s) in enumerate(zip(poses.keypoints, poses.scores)):
        if len(k):
            out[t] = _render_frame(k, s, sx, sy, height, width, score_threshold)
    return out
