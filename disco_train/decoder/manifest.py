"""disco.json as untrusted input: an export folder may come from anyone, so its manifest is read with a byte and a
nesting bound, every field the decoder side uses is type- and range-checked (errors name the key), and every file
it names must be a plain file inside the folder, listed under `files` with its sha256 (no absolute paths, no `..`,
no symlinks). Keys this version does not use are kept, unread."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

MAX_MANIFEST_BYTES = 16 << 20
"""A manifest is a config and a few lists (kilobytes); 16 MiB bounds the read."""
MAX_DEPTH = 32
"""Deepest nesting of lists and objects a manifest may have (a resolved config is about 4 deep)."""
MAX_FILES = 10_000
CODECS = ("x264", "x265", "vvenc", "dcvc_rt")
RANGES = {"ds": (1, 64), "dt": (1, 64), "qp": (-1, 63), "crf": (0, 63), "sketch_ds": (1, 64), "sketch_dt": (1, 64),
          "sketch_qp": (-1, 63), "sketch_crf": (0, 63), "max_people": (1, 256)}
"""Integer fields of trained points, sketch settings and pose, and their allowed ranges."""
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ManifestError(ValueError):
    """disco.json is malformed, out of range, or names a file it must not; the message names the key."""


def load(path: Path) -> Any:
    """The JSON of `path`, refusing more than MAX_MANIFEST_BYTES (before reading) or MAX_DEPTH levels."""
    size = path.stat().st_size
    if size > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{path}: {size:,} bytes, more than the {MAX_MANIFEST_BYTES:,} a manifest may have")
    with open(path, "rb") as handle:
        text = handle.read(MAX_MANIFEST_BYTES + 1)
    try:
        value = json.loads(text)
    except RecursionError:  # json's parser recurses per level: 200k-deep nesting ends here
        raise ManifestError(f"{path}: nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as err:
        raise ManifestError(f"{path}: not valid JSON ({str(err)[:200]})") from None
    level, todo = 0, [value]
    while todo:  # breadth first, one level at a time
        level += 1
        if level > MAX_DEPTH:
            raise ManifestError(f"{path}: nested more than {MAX_DEPTH} levels deep")
        todo = [c for v in todo for c in (v.values() if isinstance(v, dict) else v if isinstance(v, list) else ())]
    return value


def _want(value: Any, kind: type | tuple, key: str) -> Any:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, (int, float))):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise ManifestError(f"{key}: expected {names}, got {json.dumps(value)[:80]}")
    return value


def check_point(point: Any, key: str) -> dict:
    """A trained rate point (or sketch settings): codec names known, integers in range."""
    _want(point, dict, key)
    for name, value in point.items():
        if name in RANGES and value is not None:
            low, high = RANGES[name]
            if not low <= _want(value, int, f"{key}.{name}") <= high:
                raise ManifestError(f"{key}.{name}: {value} is not in {low}..{high}")
        elif name in ("codec", "sketch_codec") and value not in CODECS:
            raise ManifestError(f"{key}.{name}: {json.dumps(value)[:80]} is not one of {', '.join(CODECS)}")
    return point


def check_name(folder: Path, name: Any, key: str) -> Path:
    """A relative path inside `folder`, with no `..` and no symlink on the way."""
    _want(name, str, key)
    parts = Path(name).parts
    if not name or Path(name).is_absolute() or ".." in parts or "\\" in name or "\0" in name:
        raise ManifestError(f"{key}: {name!r} is not a relative path inside the export folder")
    path = folder
    for part in parts:
        path = path / part
        if path.is_symlink():
            raise ManifestError(f"{key}: {name!r} is a symbolic link; an export holds plain files only")
    return path


def check(manifest: Any, folder: Path) -> dict:
    """The manifest's fields checked (module docstring); returns it. Raises ManifestError naming the key."""
    m = _want(manifest, dict, "disco.json")
    files = _want(m.get("files"), dict, "files")
    if len(files) > MAX_FILES:
        raise ManifestError(f"files: {len(files):,} entries, more than {MAX_FILES:,}")
    for name, digest in files.items():
        path = check_name(folder, name, f"files[{name!r}]")
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise ManifestError(f"files[{name!r}]: {json.dumps(digest)[:80]} is not a sha256 hex digest")
        if not path.is_file():
            raise ManifestError(f"files[{name!r}]: listed but missing (or not a plain file)")
    for key in ("lora_diffusers", "lora_comfyui"):
        if key in m or key == "lora_diffusers":
            check_name(folder, m.get(key), key)
            if m[key] not in files:
                raise ManifestError(f"{key}: {m[key]!r} is not listed under files (its sha256 is not known)")
    if m.get("sketch_codec") is not None:
        path = check_name(folder, m["sketch_codec"], "sketch_codec")
        unlisted = [p for p in path.rglob("*") if p.is_symlink() or
                    (p.is_file() and p.relative_to(folder).as_posix() not in files)]
        if unlisted or not path.is_dir():
            raise ManifestError(f"sketch_codec: {m['sketch_codec']!r} is not a folder of listed plain files"
                                + (f" ({unlisted[0].relative_to(folder)})" if unlisted else ""))
    _want(m.get("config"), dict, "config")
    return m


def check_v2(m: dict) -> dict:
    """The version 2 fields (read_manifest fills them for version 1 first)."""
    points = _want(m.get("trained_settings"), list, "trained_settings")
    if not points:
        raise ManifestError("trained_settings: empty; an export records the rate points its decoder trained on")
    for i, point in enumerate(points):
        check_point(point, f"trained_settings[{i}]")
    check_point(_want(m.get("codec", points[0]), dict, "codec"), "codec")
    for i, fps in enumerate(_want(m.get("fps", []), list, "fps")):
        if not 0 < _want(fps, (int, float), f"fps[{i}]") <= 1000:
            raise ManifestError(f"fps[{i}]: {fps} is not in (0, 1000]")
    for i, sketch in enumerate(_want(m.get("sketch", []), list, "sketch")):
        check_point(sketch, f"sketch[{i}]")
    if m.get("pose") is not None:
        check_point(m["pose"], "pose")
    for key, folders in _want(m.get("weights", {}), dict, "weights").items():
        for i, value in enumerate(_want(folders, list, f"weights.{key}")):
            _want(value, str, f"weights.{key}[{i}]")
    return m
