"""What the samples of shard folders were coded with: rate points, frame rates, sketch settings, pose, weights.

A finished video's index row carries `coded` = `summarize` of its samples' meta.json (`datamodules.sink`), so
`export` learns the set of (D_s, D_t, codec, QP, CRF) a decoder trained on from the indices of the folders in
`data.train_shards` (`of_shards`), without reading the tars' bodies. A shard that no row with `coded` names (a
folder prepared before rows carried it, or one without an index) is read for its meta.json members only.

A summary: {"settings": [{ds, dt, codec, qp, crf}, ...] (sorted, distinct), "fps": [...], and when present
"sketch": [{sketch_codec, sketch_crf, sketch_qp, sketch_ds, sketch_dt}, ...], "pose_max_people": n,
"dcvc_rt_dir": [...], "sketch_dcvc_dir": [...]}.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Iterable

from datamodules.jsonl import read_jsonl
from datamodules.schema import WEIGHT_META_KEYS

SETTING_KEYS = ("ds", "dt", "codec", "qp", "crf")
SKETCH_SETTING_KEYS = ("sketch_codec", "sketch_crf", "sketch_qp", "sketch_ds", "sketch_dt")


def _order(value) -> tuple:
    return (value is None, type(value).__name__, 0 if value is None else value)


def sort_settings(rows: Iterable[dict], keys: tuple[str, ...] = SETTING_KEYS) -> list[dict]:
    """Distinct dicts of `keys`, sorted by the codec first, then the keys in order (None last)."""
    unique = [dict(zip(keys, t)) for t in dict.fromkeys(tuple(row.get(k) for k in keys) for row in rows)]
    first = [k for k in keys if k.endswith("codec")]
    order = first + [k for k in keys if k not in first]
    return sorted(unique, key=lambda row: [_order(row[k]) for k in order])


def summarize(metas: Iterable[dict]) -> dict:
    """The summary of some samples' meta dicts (module docstring)."""
    metas = list(metas)
    out = {"settings": sort_settings({k: m.get(k) for k in SETTING_KEYS} for m in metas),
           "fps": sorted({float(m["fps"]) for m in metas if "fps" in m})}
    sketch = [{k: m.get(k) for k in SKETCH_SETTING_KEYS} for m in metas if "sketch_codec" in m]
    if sketch:
        out["sketch"] = sort_settings(sketch, SKETCH_SETTING_KEYS)
    people = [int(m["pose_max_people"]) for m in metas if "pose_max_people" in m]
    if people:
        out["pose_max_people"] = max(people)
    for key in WEIGHT_META_KEYS:
        found = sorted({str(m[key]) for m in metas if key in m})
        if found:
            out[key] = found
    return out


def merge(summaries: Iterable[dict]) -> dict:
    """The summary of the union of the samples behind `summaries`."""
    summaries = list(summaries)
    out = {"settings": sort_settings(s for x in summaries for s in x.get("settings", [])),
           "fps": sorted({f for x in summaries for f in x.get("fps", [])})}
    sketch = [s for x in summaries for s in x.get("sketch", [])]
    if sketch:
        out["sketch"] = sort_settings(sketch, SKETCH_SETTING_KEYS)
    people = [x["pose_max_people"] for x in summaries if "pose_max_people" in x]
    if people:
        out["pose_max_people"] = max(people)
    for key in WEIGHT_META_KEYS:
        found = sorted({v for x in summaries for v in x.get(key, [])})
        if found:
            out[key] = found
    return out


def shard_metas(url: str | Path) -> list[dict]:
    """The meta.json of every sample of one shard; only those members are read (the others are skipped by
    seeking past them)."""
    metas = []
    try:
        with tarfile.open(str(url)) as tar:
            for member in tar:
                if member.isfile() and member.name.endswith(".meta.json"):
                    metas.append(json.loads(tar.extractfile(member).read()))
    except (tarfile.TarError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{url}: unreadable shard ({type(err).__name__}: {err})") from None
    return metas


def _index_rows(folder: Path) -> list[dict]:
    # index.jsonl (single run, or merged) and index-pKKK.jsonl (parts, merged or not): their union
    return [row for path in sorted(folder.glob("index*.jsonl")) for row in read_jsonl(path)]


def of_shards(urls: list[str]) -> dict:
    """The summary of every sample in these shards: from their folders' index rows, and from the meta.json of
    the shards that no row with `coded` covers."""
    by_folder: dict[Path, list[str]] = {}
    for url in urls:
        by_folder.setdefault(Path(url).parent, []).append(url)
    parts = []
    for folder, shards in by_folder.items():
        covered: dict[str, list[dict]] = {}
        for row in _index_rows(folder):
            if isinstance(row.get("coded"), dict) and "shard" in row:
                covered.setdefault(row["shard"], []).append(row["coded"])
        for url in shards:
            name = Path(url).name
            parts += covered[name] if name in covered else [summarize(shard_metas(url))]
    return merge(parts)
