"""disco.json, the export's manifest, as a typed dataclass (`ExportManifest`) read as untrusted input.

An export folder may come from anyone, so its manifest is read with a byte and a nesting bound and parsed strictly:
an unknown key (with the closest known one), a wrong type or an out-of-range number is a ManifestError naming the
key as a dotted path, and every file it names must be a plain file inside the folder, listed under `files` with its
sha256 (no absolute paths, no `..`, no symlinks). The writer (`train.export`) builds the same dataclass and writes
it through `ExportManifest.write`, which parses its own output back first, so writer and reader cannot drift.

Versions: v2 is written; v1 (one rate point under `codec`, nothing of sketch, pose or weights) is mapped to v2 once,
on reading; any other version, or none, is refused naming it. The training config (`config`) stays plain data here:
its schema is `DiscoLoraConfig`, applied strictly with the command line's overrides by `decoder.export.decoder_config`.
"""

from __future__ import annotations

import difflib
import json
import re
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Optional

MANIFEST = "disco.json"
FORMAT = "disco-export"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
MAX_MANIFEST_BYTES = 16 << 20
"""A manifest is a config and a few lists (kilobytes); 16 MiB bounds the read."""
MAX_DEPTH = 32
"""Deepest nesting of lists and objects a manifest may have (a resolved config is about 4 deep)."""
MAX_FILES = 10_000
CODECS = ("x264", "x265", "vvenc", "dcvc_rt")
CODEC_KEYS = ("ds", "dt", "codec", "qp", "crf")
"""The keys of a trained rate point (`trained_settings`, `codec`)."""
SKETCH_KEYS = ("sketch_codec", "sketch_crf", "sketch_qp", "sketch_ds", "sketch_dt")
"""The keys of the training data's sketch settings (`sketch`)."""
RANGES = {"ds": (1, 64), "dt": (1, 64), "qp": (-1, 63), "crf": (0, 63), "sketch_ds": (1, 64), "sketch_dt": (1, 64),
          "sketch_qp": (-1, 63), "sketch_crf": (0, 63), "max_people": (1, 256)}
"""Integer fields of trained points, sketch settings and pose, and their allowed ranges."""
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ManifestError(ValueError):
    """disco.json is malformed, out of range, or names a file it must not; the message names the key."""


@dataclass(frozen=True)
class Source:
    """Where the adapter came from: the checkpoint relative to its run (never a path of the training machine)."""
    checkpoint: str
    global_step: Optional[int] = None
    sharded: bool = False
    num_trainable: Optional[int] = None
    model: Optional[str] = None
    skipped_steps: Optional[int] = None


@dataclass(frozen=True)
class Pose:
    """The pose stream of the training data."""
    max_people: int


@dataclass(frozen=True)
class Weights:
    """The DCVC-RT folders the training data was coded with (as prepare recorded them): the receivers' defaults."""
    dcvc_rt_dir: list[str] = field(default_factory=list)
    sketch_dcvc_dir: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class ExportManifest:
    """disco.json v2 (`decoder.export` describes the folder)."""
    format: str = FORMAT
    version: int = FORMAT_VERSION
    lora_diffusers: str
    """The diffusers-format LoRA file (listed under `files`)."""
    lora_comfyui: Optional[str] = None
    sketch_codec: Optional[str] = None
    """The finetuned DCVC-RT sketch codec's folder, every file of it listed under `files`."""
    codec: dict[str, Any]
    """The first trained rate point: `encode`'s default, and v1's only point."""
    trained_settings: list[dict[str, Any]]
    """The rate points {ds, dt, codec[, qp, crf]} the decoder trained on, sorted."""
    fps: list[float] = field(default_factory=list)
    sketch: list[dict[str, Any]] = field(default_factory=list)
    """The sketch settings of the training data ([] without sketch)."""
    pose: Optional[Pose] = None
    weights: Weights = field(default_factory=Weights)
    source: Optional[Source] = None
    rope: Optional[dict[str, str]] = None
    """The RoPE convention the adapter trained with (`decoder.conditioning.ROPE_CONVENTION`)."""
    config: dict[str, Any]
    """The resolved training config as plain data (schema `DiscoLoraConfig`, applied by `decoder_config`)."""
    files: dict[str, str]
    """Every file of the folder (relative POSIX path) -> its sha256."""

    @classmethod
    def parse(cls, raw: Any, folder: Path) -> "ExportManifest":
        """The manifest of the export `folder` from its JSON (`load`): version, keys, types, ranges and named files
        checked; v1 mapped to v2. Raises ManifestError naming the key."""
        return _parse(cls, _current(_want(raw, dict, "disco.json")), "").check(folder)

    def to_json(self) -> dict:
        """The manifest as JSON data, keys in field order (what `write` writes)."""
        return asdict(self)

    def write(self, folder: Path) -> None:
        """Write `folder`/disco.json, after parsing the text back as a reader would (ManifestError if refused)."""
        text = json.dumps(self.to_json(), indent=2) + "\n"
        ExportManifest.parse(json.loads(text), folder)
        (folder / MANIFEST).write_text(text)

    def with_file(self, name: str, digest: str) -> "ExportManifest":
        """The manifest with `name` (a file written into the folder afterwards) listed under `files`."""
        return replace(self, files={**self.files, name: digest})

    def check(self, folder: Path) -> "ExportManifest":
        """Ranges, codec names and named files (module docstring); returns the manifest."""
        if len(self.files) > MAX_FILES:
            raise ManifestError(f"files: {len(self.files):,} entries, more than {MAX_FILES:,}")
        for name, digest in self.files.items():
            path = check_name(folder, name, f"files[{name!r}]")
            if not _SHA256.fullmatch(digest):
                raise ManifestError(f"files[{name!r}]: {json.dumps(digest)[:80]} is not a sha256 hex digest")
            if not path.is_file():
                raise ManifestError(f"files[{name!r}]: listed but missing (or not a plain file)")
        for key in ("lora_diffusers", "lora_comfyui"):
            name = getattr(self, key)
            if name is not None:
                check_name(folder, name, key)
                if name not in self.files:
                    raise ManifestError(f"{key}: {name!r} is not listed under files (its sha256 is not known)")
        if self.sketch_codec is not None:
            _check_folder(folder, self.sketch_codec, self.files)
        self._check_numbers()
        return self

    def _check_numbers(self) -> None:
        if not self.trained_settings:
            raise ManifestError("trained_settings: empty; an export records the rate points its decoder trained on")
        for i, point in enumerate(self.trained_settings):
            check_point(point, f"trained_settings[{i}]")
        check_point(self.codec, "codec")
        for i, fps in enumerate(self.fps):
            if not 0 < fps <= 1000:
                raise ManifestError(f"fps[{i}]: {fps} is not in (0, 1000]")
        for i, sketch in enumerate(self.sketch):
            check_point(sketch, f"sketch[{i}]", SKETCH_KEYS)
        if self.pose is not None:
            check_point(asdict(self.pose), "pose", ("max_people",))


def _current(m: dict) -> dict:
    """A readable manifest's JSON as v2: format and version checked (errors name the version), v1 filled in."""
    if m.get("format") != FORMAT or m.get("version") not in READABLE_VERSIONS:
        if "version" not in m and m.get("format") == FORMAT:
            raise ManifestError(f"version: missing; expected {FORMAT} v{' or v'.join(map(str, READABLE_VERSIONS))}")
        raise ManifestError(f"format {m.get('format')!r} v{json.dumps(m.get('version'))[:40]}, expected {FORMAT} "
                            f"v{' or v'.join(map(str, READABLE_VERSIONS))} (a newer disco-train wrote it?)")
    if m["version"] == 2:
        points = m.get("trained_settings")
        first = points[0] if isinstance(points, list) and points else None
        return m if "codec" in m or first is None else {**m, "codec": first}
    codec = check_point(m.get("codec"), "codec")  # v1: one rate point, nothing of sketch, pose or weights
    v2 = {"trained_settings": [{k: v for k, v in codec.items() if v is not None}], "fps": [], "sketch": [],
          "pose": None, "weights": {}}
    clash = sorted(set(v2) & set(m))
    if clash:
        raise ManifestError(f"{clash[0]}: unknown key in a v1 manifest (v2 introduced it)")
    return {**m, **v2, "version": FORMAT_VERSION}


# ---- typed parsing ---------------------------------------------------------------------------------------------
def _want(value: Any, kind: type | tuple, key: str) -> Any:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, (int, float))):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise ManifestError(f"{key}: expected {names}, got {json.dumps(value)[:80]}")
    return value


def _parse(cls: type, raw: Any, key: str) -> Any:
    """Dataclass `cls` from a JSON object: every key known, every field of its type (a missing required field is
    null), each error naming the dotted key."""
    _want(raw, dict, key or "disco.json")
    known = [f.name for f in fields(cls)]
    for name in raw:
        if name not in known:
            close = difflib.get_close_matches(str(name), known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(known)})"
            raise ManifestError(f"{_at(key, name)}: unknown key{hint}")
    hints = typing.get_type_hints(cls)
    values = {}
    for f in fields(cls):
        if f.name in raw or (f.default is MISSING and f.default_factory is MISSING):
            values[f.name] = _value(hints[f.name], raw.get(f.name), _at(key, f.name))
    return cls(**values)


def _at(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _value(hint: Any, value: Any, key: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:  # Optional[X]
        return None if value is None else _value(args[0], value, key)
    if is_dataclass(hint):
        return _parse(hint, value, key)
    if origin is list:
        return [_value(args[0], v, f"{key}[{i}]") for i, v in enumerate(_want(value, list, key))]
    if origin is dict:
        return {k: _value(args[1], v, f"{key}[{k!r}]") for k, v in _want(value, dict, key).items()}
    if hint is Any:
        return value
    return _want(value, (int, float) if hint is float else hint, key)


# ---- bounds ----------------------------------------------------------------------------------------------------
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


def check_point(point: Any, key: str, keys: tuple = CODEC_KEYS) -> dict:
    """A trained rate point (or sketch settings, `keys`): keys known, codec names known, integers in range."""
    _want(point, dict, key)
    for name, value in point.items():
        if name not in keys:
            raise ManifestError(f"{key}.{name}: unknown key (known: {', '.join(keys)})")
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




def _check_folder(folder: Path, name: str, files: dict) -> None:
    """`sketch_codec`: a folder inside the export whose every file is a listed plain file."""
    path = check_name(folder, name, "sketch_codec")
    unlisted = [p for p in path.rglob("*") if p.is_symlink() or
                (p.is_file() and p.relative_to(folder).as_posix() not in files)]
    if unlisted or not path.is_dir():
        raise ManifestError(f"sketch_codec: {name!r} is not a folder of listed plain files"
                            + (f" ({unlisted[0].relative_to(folder)})" if unlisted else ""))
