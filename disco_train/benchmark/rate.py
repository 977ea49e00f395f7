"""The `disco@rate` method: DiSCo coded with rate control at each of `rate.targets_kbps` (or `rate.targets_bpp`),
so its RD curve is by target rate, as the standard codecs' is by QP.

Per clip and target, `codec.rate` picks the best trained point of the export (ordered by its rd_table.json when
it has one) whose whole `.disco` file fits the target at the clip's size and duration; the cell records the point
chosen (`chosen`) and the candidates encoded (`candidates_tried`) beside the bits. Decoding is the disco
method's (`benchmark.disco`: the same decoder build, batches, seeds and steps). A target no trained point meets
for some clip stops the run, naming the clip and the smallest achievable rate (the cells done stay cached).
"""

from __future__ import annotations

import numpy as np

from disco_train.benchmark.disco import Export, point_label, sender_settings
from disco_train.benchmark.methods import Point
from disco_train.codec import container as C
from disco_train.config.benchmark import RATE_METHOD


def rate_points(cfg, export: Export, overrides: tuple) -> list[Point]:
    """One point per target rate, labelled '20kbps' / '0.05bpp'."""
    unit, values = ("kbps", cfg.rate.targets_kbps) if cfg.rate.targets_kbps else ("bpp", cfg.rate.targets_bpp)
    codecs = tuple(sorted({p["codec"] for p in export.trained}))
    d = cfg.disco
    return [Point(RATE_METHOD, f"{v:g}{unit}", (("export", export.digest), (f"target_{unit}", float(v)),
                                                 ("codecs", codecs), ("steps", export.steps),
                                                 ("guidance", export.guidance), ("seed", d.seed),
                                                 ("merge_lora", d.merge_lora), ("overrides", tuple(overrides))),
                  float(v)) for v in values]


def send_at_target(export: Export, point: Point, clip: str, frames: np.ndarray, fps: float, caption: str, cfg
                   ) -> tuple[C.Container, dict]:
    """(the container of the best trained point that fits the point's target, what the cell records of it)."""
    from disco_train.codec import rate
    from disco_train.codec.sender import geometry_for, send_video

    s = point.settings
    target = rate.Target(s.get("target_kbps"), s.get("target_bpp"))
    send = lambda p: send_video(frames, fps, caption, sender_settings(p, cfg))  # noqa: E731
    try:
        container, found = rate.send_best(rate.ordered_points(export.folder), send, target,
                                          geometry_for(*frames.shape[:3], fps))
    except rate.RateError as err:
        raise rate.RateError(f"{clip}: {RATE_METHOD} {err}; raise rate.targets_*") from None
    return container, {"chosen": point_label(found.point), "candidates_tried": found.tried}
