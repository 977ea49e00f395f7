"""Stand-ins for the sketch and pose networks, for the demo and the CPU smoke recipes: `sketch_weights=synthetic`
and `pose_dir=synthetic` (as `model.name=tiny` and `dcvc_rt_dir=synthetic` are for the decoder and DCVC-RT):
every stage, stream and decoder path runs for real, with no download; the content means nothing.

- sketch: the InformativeDrawings generator (`modalities.sketch.SketchGenerator`), tiny (width 8, one residual
  block: 1/64 of the upstream work per pixel) with random weights (seed 0).
- pose: one person per frame whose 134 keypoints lie spread over the box of the frame's foreground (the pixels
  whose colour differs from the frame's most common one: the demo's moving shape); nobody in a flat frame.
"""

from __future__ import annotations

import numpy as np
import torch

from disco_train.modalities.pose import NUM_KEYPOINTS, PoseSequence

SYNTHETIC = "synthetic"
FOREGROUND = 40
"""Least summed |RGB difference| from the background colour that counts as foreground (H.264 ringing is less)."""


def random_sketch_generator(device: str | torch.device = "cpu"):
    """A tiny InformativeDrawings generator with seeded random weights, in eval mode."""
    from disco_train.modalities.sketch import SketchGenerator

    with torch.random.fork_rng(devices=[]):  # the caller's RNG stream is left as it was
        torch.manual_seed(0)
        generator = SketchGenerator(n_residual_blocks=1, width=8)
    return generator.to(device).eval()


class SyntheticPose:
    """A pose estimator's interface (clip -> PoseSequence) without a network."""

    def __call__(self, clip: np.ndarray) -> PoseSequence:
        keypoints, scores = [], []
        t = np.linspace(0.0, 1.0, NUM_KEYPOINTS, dtype=np.float32)
        for frame in np.asarray(clip):
            colours, counts = np.unique(frame.reshape(-1, 3), axis=0, return_counts=True)
            distance = np.abs(frame.astype(np.int16) - colours[counts.argmax()].astype(np.int16)).sum(-1)
            ys, xs = np.nonzero(distance > FOREGROUND)
            if len(xs) == 0:
                keypoints.append(np.zeros((0, NUM_KEYPOINTS, 2), np.float32))
                scores.append(np.zeros((0, NUM_KEYPOINTS), np.float32))
                continue
            x1, x2, y1, y2 = xs.min(), xs.max(), ys.min(), ys.max()
            points = np.stack([x1 + t * (x2 - x1), y1 + (t * 7 % 1) * (y2 - y1)], -1)  # 7 sweeps down the box
            keypoints.append(points[None].astype(np.float32))
            scores.append(np.full((1, NUM_KEYPOINTS), 0.9, np.float32))
        return PoseSequence(keypoints, scores, frame_size=tuple(clip.shape[1:3]))
