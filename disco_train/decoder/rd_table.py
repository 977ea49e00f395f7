"""`rd_table.json` of an export: the measured rate and quality of each trained rate point (written by
`python -m disco_train calibrate`, read by `encode target_kbps=` / `target_bpp=` and the benchmark's disco@rate).

    {"format": "disco-rd-table", "version": 1, "metric": "lpips", "lower_is_better": true,
     "clips": 3, "size": "64x64", "frames": 17,
     "points": [{"point": {"ds": 2, "dt": 2, "codec": "x264", "qp": -1, "crf": 30}, "bpp": 0.05, "kbps": 4.9,
                 "value": 0.31}, ...]}

One entry per trained point of disco.json (`point` equal to it), nothing else; the table is listed with its sha256
in disco.json `files` like every other file of the export. Reading is strict: anything else is an ExportError
naming the file and the key.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

from disco_train.decoder.export import MANIFEST, ExportError, describe_settings, sha256
from disco_train.io.files import atomic_folder

RD_TABLE = "rd_table.json"
FORMAT = "disco-rd-table"
VERSION = 1
INFO_KEYS = {"clips": int, "size": str, "frames": int}
"""Optional keys that describe the calibration (not used by the readers)."""


@dataclass(frozen=True)
class Entry:
    point: dict
    bpp: float
    kbps: float
    value: float


@dataclass(frozen=True)
class RDTable:
    metric: str
    lower_is_better: bool
    entries: tuple

    def quality(self, point: dict) -> float:
        """Higher is better, whatever the metric's direction."""
        value = next(e.value for e in self.entries if e.point == point)
        return -value if self.lower_is_better else value

    def bpp(self, point: dict) -> float:
        return next(e.bpp for e in self.entries if e.point == point)


def table_dict(metric: str, lower_is_better: bool, entries: list[Entry], **info) -> dict:
    """The JSON object of a table (`info`: clips, size, frames)."""
    return {"format": FORMAT, "version": VERSION, "metric": metric, "lower_is_better": lower_is_better, **info,
            "points": [{"point": e.point, "bpp": e.bpp, "kbps": e.kbps, "value": e.value} for e in entries]}


def _number(value, where: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or (positive and value <= 0):
        raise ExportError(f"{where}: expected a finite number{' > 0' if positive else ''}, got {value!r}")
    return float(value)


def _keys(obj, required: set, optional: set, where: str) -> None:
    if not isinstance(obj, dict):
        raise ExportError(f"{where}: expected an object, got {type(obj).__name__}")
    missing, unknown = sorted(required - set(obj)), sorted(set(obj) - required - optional)
    if missing or unknown:
        raise ExportError(f"{where}: " + "; ".join(([f"missing {', '.join(missing)}"] if missing else []) +
                                                    ([f"unknown key(s) {', '.join(unknown)}"] if unknown else [])))


def parse(data: dict, trained: list[dict], where: str) -> RDTable:
    """The table of `data` for an export trained on `trained` (module docstring); ExportError naming `where` and the
    key otherwise."""
    _keys(data, {"format", "version", "metric", "lower_is_better", "points"}, set(INFO_KEYS), where)
    if data["format"] != FORMAT or data["version"] != VERSION:
        raise ExportError(f"{where}: format {data['format']!r} v{data['version']}, expected {FORMAT} v{VERSION}")
    if not isinstance(data["metric"], str) or not data["metric"]:
        raise ExportError(f"{where}: metric: expected a metric name, got {data['metric']!r}")
    if not isinstance(data["lower_is_better"], bool):
        raise ExportError(f"{where}: lower_is_better: expected true or false, got {data['lower_is_better']!r}")
    for key, kind in INFO_KEYS.items():
        if key in data and (not isinstance(data[key], kind) or isinstance(data[key], bool)):
            raise ExportError(f"{where}: {key}: expected {kind.__name__}, got {data[key]!r}")
    if not isinstance(data["points"], list):
        raise ExportError(f"{where}: points: expected a list, got {type(data['points']).__name__}")
    entries = []
    for i, item in enumerate(data["points"]):
        at = f"{where}: points[{i}]"
        _keys(item, {"point", "bpp", "kbps", "value"}, set(), at)
        if item["point"] not in trained:
            raise ExportError(f"{at}.point: {item['point']!r} is not a trained rate point of the export "
                              f"({describe_settings(trained)})")
        if any(e.point == item["point"] for e in entries):
            raise ExportError(f"{at}.point: {describe_settings([item['point']])} is listed twice")
        entries.append(Entry(dict(item["point"]), _number(item["bpp"], f"{at}.bpp", positive=True),
                             _number(item["kbps"], f"{at}.kbps", positive=True), _number(item["value"], f"{at}.value")))
    missing = [p for p in trained if all(e.point != p for e in entries)]
    if missing:
        raise ExportError(f"{where}: points: no entry for {describe_settings(missing)} (calibrate the export again)")
    return RDTable(data["metric"], data["lower_is_better"], tuple(entries))


def read(folder: str | Path, manifest, trained: list[dict]) -> RDTable | None:
    """The export's table, or None when it has none. It must be listed in disco.json `files` and match its sha256."""
    path = Path(folder) / RD_TABLE
    listed = manifest.files.get(RD_TABLE)
    if not path.is_file():
        if listed:
            raise ExportError(f"export={folder}: {RD_TABLE} is listed in {MANIFEST} but missing")
        return None
    if listed is None:
        raise ExportError(f"{path}: not listed in {MANIFEST} files (write it with `python -m disco_train calibrate`)")
    if sha256(path) != listed:
        raise ExportError(f"{path}: does not match its sha256 in {MANIFEST} (modified or corrupt)")
    from disco_train.decoder.manifest import ManifestError, load

    try:  # with the manifest's size and depth bounds
        data = load(path)
    except ManifestError as err:
        raise ExportError(str(err)) from None
    return parse(data, trained, str(path))


def write(export: str | Path, dest: str | Path, data: dict) -> Path:
    """A copy of `export` at `dest` (`dest` = `export`: the export itself) with `data` as its rd_table.json, listed
    with its sha256 in disco.json; built beside `dest` and renamed into place, so a failure changes nothing."""
    from disco_train.decoder.export import read_manifest, trained_settings

    export, dest = Path(export), Path(dest)
    manifest = read_manifest(export)  # a v1 export's manifest is written back as v2
    parse(data, trained_settings(manifest), RD_TABLE)  # never write a table encode would refuse
    with atomic_folder(dest) as tmp:
        shutil.copytree(export, tmp, dirs_exist_ok=True)
        (tmp / RD_TABLE).write_text(json.dumps(data, indent=2) + "\n")
        manifest.with_file(RD_TABLE, sha256(tmp / RD_TABLE)).write(tmp)
    return dest
