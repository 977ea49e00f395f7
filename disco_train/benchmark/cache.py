"""The cell cache: one result per (video, method, rate point), keyed by exactly what determines it.

A cell's key is the sha256 of a JSON object holding the reference clip's digest, the method and its point
(QP/CRF, D_s, D_t, ...), the method's settings that change its output (preset, encoder version, weights, the
export's manifest, steps, guidance, seed, caption), and the metrics with their settings and weight files. Nothing
else goes in: the anchor, the plots, the device, batch sizes and the output folder do not change a cell, so
changing them recomputes nothing, while changing x265's preset recomputes exactly the x265 cells.

Files: `cache/<key[:2]>/<key>.json` (bits, times, per-video scores, the key's parts for inspection) and, when set
metrics are asked for, `<key>.npz` (the video's FID/FVD/FVMD features, so any set of videos can be pooled later).
A record holds its own key: one whose key is not its file's (copied over another cell) or that is not a record is
recomputed, never tabulated. Both are written atomically (`io.files.atomic_write`: a temporary name with the
writer's pid, as parts on several nodes share the folder, then a rename); the JSON goes last, so a killed run
leaves either a whole cell or none, and a rerun continues where it stopped.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from disco_train.io.files import atomic_open, atomic_write

CACHE_VERSION = 1
"""Bumped when what a cell holds changes meaning; old cells are then not found."""


def cell_key(parts: dict) -> str:
    text = json.dumps({"cache_version": CACHE_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class Cache:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _paths(self, key: str) -> tuple[Path, Path]:
        folder = self.root / key[:2]
        return folder / f"{key}.json", folder / f"{key}.npz"

    def get(self, key: str) -> tuple[dict, dict[str, np.ndarray]] | None:
        """(record, features) of a finished cell, or None (missing, half-written or unreadable: compute it)."""
        record_path, feature_path = self._paths(key)
        try:
            record = json.loads(record_path.read_text())
        except (OSError, ValueError, RecursionError):
            return None
        # a record of this very cell: a cell copied over another ([] or another cell's record) is recomputed
        if not isinstance(record, dict) or record.get("key") != key or not isinstance(record.get("features"), list):
            return None
        features = {}
        if record["features"]:
            try:
                with np.load(feature_path) as data:
                    features = {k: data[k] for k in data.files}
            except (OSError, ValueError):
                return None
            if sorted(features) != sorted(record["features"]):
                return None
        return record, features

    def put(self, key: str, record: dict, features: dict[str, np.ndarray] | None = None) -> None:
        record_path, feature_path = self._paths(key)
        features = features or {}
        if features:
            with atomic_open(feature_path) as handle:
                np.savez(handle, **features)
        record = {**record, "key": key, "features": sorted(features)}
        atomic_write(record_path, json.dumps(record, indent=1, sort_keys=True, default=str))

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("*/*.json")) if self.root.is_dir() else 0
