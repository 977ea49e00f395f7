"""The export folder, decoder side: its format, reading it back, and checking an adapter against the
architecture. Written by `disco_train.train.export` (`python -m disco_train export`).

The export folder holds
- `pytorch_lora_weights.safetensors`: diffusers format (`transformer.` keys, diffusers' default LoRA file name, so
  `LTXPipeline.load_lora_weights(<dir>)` finds it) with diffusers' `lora_adapter_metadata` (rank, alpha, targets:
  without it diffusers assumes alpha = rank) and `disco.*` metadata;
- `disco_lora_comfyui.safetensors`: ComfyUI format (`diffusion_model.` keys). ComfyUI and diffusers' converter
  read no alpha from this layout (an `.alpha` tensor would break diffusers' LTX converter), so the scale
  alpha/rank is folded into lora_B and the file is exact under the alpha = rank convention;
- `sketch_codec/` (optional): the finetuned DCVC-RT sketch codec, copied;
- `rd_table.json` (optional): each trained rate point's measured bpp and quality (`decoder.rd_table`, written by
  `python -m disco_train calibrate`), which `encode target_kbps=` orders the points by;
- `disco.json`: what the decoder side needs to rebuild the decoder (resolved training config, codec settings of
  the training data, file names and their sha256): `decoder.manifest.ExportManifest`, parsed strictly.

disco.json v2 (v1 exports are still read: the v2 fields are filled from v1's single point):
- `trained_settings`: the sorted list of the rate points {ds, dt, codec, qp, crf} the decoder trained on (from
  the shard index, or `export ds= dt= ...`); `codec`: its first point (v1's one point; `encode`'s default when
  nothing on the command line names a point);
- `fps`: the training clips' frame rates; `sketch`: the sketch settings of the training data
  [{sketch_codec, sketch_crf, sketch_qp, sketch_ds, sketch_dt}] ([] without sketch); `pose`: {max_people} or null;
- `weights`: {dcvc_rt_dir: [...], sketch_dcvc_dir: [...]}, the DCVC-RT folders the training data was coded with
  (as prepare recorded them), the receivers' defaults for DCVC-RT streams (`sketch_codec/` wins for sketches).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import torch

from disco_train.config import ConfigError, DiscoLoraConfig
from disco_train.decoder.lora import targeted
from disco_train.decoder.manifest import MANIFEST, ExportManifest, ManifestError, load

DIFFUSERS_FILE = "pytorch_lora_weights.safetensors"
COMFYUI_FILE = "disco_lora_comfyui.safetensors"
SKETCH_CODEC_DIR = "sketch_codec"
_LORA_KEY = re.compile(r"(?P<module>.+)\.(?P<part>lora_A|lora_B)\.weight")


class ExportError(ValueError):
    """A checkpoint, config or export folder is unusable; the message says what and where."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---- checking keys against the architecture -------------------------------------------------------------------
def architecture(model_name: str, family: str = "ltxv") -> torch.nn.Module:
    """The base transformer of `model.name` (of `model.family`) on the meta device (no memory, no weights)."""
    from disco_train.decoder.models import meta_transformer

    try:
        return meta_transformer(model_name, family)
    except KeyError:
        raise ExportError(f"model.name={model_name!r}: no architecture to check the LoRA against") from None


def check_keys(state: dict[str, torch.Tensor], cfg: DiscoLoraConfig) -> None:
    """Every key must be lora_A/lora_B of a Linear of the base model with shapes (r, in) / (out, r); every
    targeted Linear must have both. Raises ExportError listing the first problems."""
    base = architecture(cfg.model.name, cfg.model.family)
    modules = {n: m for n, m in base.named_modules() if isinstance(m, torch.nn.Linear)}
    rank, problems, seen = cfg.lora.rank, [], {}
    for key, tensor in state.items():
        match = _LORA_KEY.fullmatch(key)
        if match is None:
            problems.append(f"{key}: not a lora_A/lora_B weight")
            continue
        name, part = match["module"], match["part"]
        layer = modules.get(name)
        if layer is None:
            problems.append(f"{key}: {cfg.model.name} has no Linear layer {name!r}")
            continue
        expected = (rank, layer.in_features) if part == "lora_A" else (layer.out_features, rank)
        if tuple(tensor.shape) != expected:
            problems.append(f"{key}: shape {tuple(tensor.shape)}, expected {expected} (rank {rank})")
        elif not tensor.is_meta and not torch.isfinite(tensor).all():
            problems.append(f"{key}: holds NaN or inf")
        seen.setdefault(name, set()).add(part)
    problems += [f"{n}: has only {sorted(p)[0]}" for n, p in seen.items() if len(p) != 2]
    missing = sorted(n for n in modules if targeted(n, cfg.lora.targets) and n not in seen)
    problems += [f"{n}: targeted by lora.targets but has no LoRA weights" for n in missing]
    if problems:
        more = f" (+{len(problems) - 8} more)" if len(problems) > 8 else ""
        raise ExportError(f"LoRA does not fit {cfg.model.name}: " + "; ".join(problems[:8]) + more)


# ---- the decoder side -----------------------------------------------------------------------------------------
def read_manifest(folder: str | Path, verify: bool = True) -> ExportManifest:
    """disco.json of an export folder, parsed as untrusted input (`decoder.manifest`: version, keys, types, ranges,
    every named file a listed plain file inside the folder), with (verify) every file matching its sha256."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise ExportError(f"export={folder}: no {MANIFEST}; export a checkpoint with `python -m disco_train export`")
    try:
        manifest = ExportManifest.parse(load(path), folder)
    except ManifestError as err:
        raise ExportError(f"{path}: {err}") from None
    for name, digest in manifest.files.items():
        if verify and sha256(folder / name) != digest:
            raise ExportError(f"export={folder}: {name} does not match its sha256 in {MANIFEST} (modified or "
                              f"corrupt)")
    return manifest


def trained_settings(manifest: ExportManifest) -> list[dict]:
    """The rate points {ds, dt, codec[, qp, crf]} the exported decoder trained on."""
    return [dict(point) for point in manifest.trained_settings]


def describe_settings(points: list[dict]) -> str:
    """'ds=2 dt=4 x264 qp=-1 crf=30; ...' for messages."""
    return "; ".join(" ".join(f"{k}={v}" if k != "codec" else str(v) for k, v in p.items()) for p in points)


def decoder_config(folder: str | Path, overrides: list[str] = (), manifest: ExportManifest | None = None
                   ) -> DiscoLoraConfig:
    """The training config from disco.json with `lora.init_from` at the exported LoRA, plus key=value overrides
    (e.g. model.path=... on a machine whose weights live elsewhere)."""
    from disco_train.config.recipe import command_line, merge

    folder = Path(folder)
    manifest = manifest or read_manifest(folder)
    try:  # the recipe resolver's strict merge: unknown keys and bad values name the key
        cfg, _ = merge(DiscoLoraConfig, [(manifest.config, f"{folder / MANIFEST}"),
                                         (command_line(list(overrides), DiscoLoraConfig), "command line")])
    except ConfigError as err:
        raise ExportError(f"{folder / MANIFEST}: the decoder config does not fit this version of disco-train "
                          f"or the overrides: {err}") from None
    cfg.lora.init_from = str(folder / manifest.lora_diffusers)
    return cfg
