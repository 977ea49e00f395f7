"""What every benchmark method speaks: a rate point (`Point`) and what coding one clip there gave (`Coded`).
The baselines (`methods`), the external codecs (`external`) and DiSCo (`disco`) make them; `runner` caches and
scores them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Point:
    """One rate point of one method."""

    method: str
    label: str
    """Short name in tables: 'qp37', 'crf30', 'ds4_dt4_qp16'."""
    params: tuple = ()
    """(key, value) pairs: everything that picks this point (part of the cache key)."""
    order: float = 0.0
    """Sort key within the method (the ladder's direction: higher = more rate)."""

    @property
    def settings(self) -> dict:
        return dict(self.params)


@dataclass
class Coded:
    """What coding one clip at one point gave."""

    bits: int
    """The rate: every bit a decoder needs."""
    recon: np.ndarray
    encode_s: float
    decode_s: float
    extra: dict = field(default_factory=dict)
    """Also reported: container_bits (what an mp4 would add), per-stream bits of a .disco, ..."""
    log: dict = field(default_factory=dict)
    """Kept in the cell, not in the tables: an external command's stderr."""
