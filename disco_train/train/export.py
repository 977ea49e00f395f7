"""Export a trained DiSCo LoRA for decoders (the command: `python -m disco_train export ckpt=<.ckpt> out=<dir>`,
disco_train/commands/export.py).

Reads a training checkpoint and its run's config.yaml; every key is checked against the base architecture (built
on the meta device) before anything is written, and the folder appears atomically: written to a temporary
sibling, then renamed. The folder's format is `disco_train.decoder.export`.
"""

from __future__ import annotations

import json
import shutil
from itertools import product
from pathlib import Path

import torch

from disco_train.config import ConfigError, DiscoLoraConfig
from disco_train.decoder.conditioning import ROPE_CONVENTION
from disco_train.decoder.lora import load_torch_file
from disco_train.decoder.export import (COMFYUI_FILE, DIFFUSERS_FILE, MANIFEST, SKETCH_CODEC_DIR, ExportError,
                                        check_keys, sha256)
from disco_train.decoder.manifest import (CODEC_KEYS, FORMAT_VERSION, ExportManifest, ManifestError, Pose, Source,
                                          Weights, check_point)
from disco_train.io.files import atomic_folder


# ---- reading a training run -----------------------------------------------------------------------------------
def run_config_path(ckpt: Path) -> Path:
    """runs/<name>/checkpoints/x.ckpt -> runs/<name>/config.yaml (where train.py saves the resolved config)."""
    return ckpt.resolve().parent.parent / "config.yaml"


def load_config(config_yaml: Path, overrides: list[str] = ()) -> DiscoLoraConfig:
    """The resolved training config, re-validated through the recipe machinery (so overrides work too)."""
    from disco_train.config.recipe import resolve

    if not config_yaml.is_file():
        raise ExportError(f"config={config_yaml}: no training config (train.py writes runs/<name>/config.yaml)")
    try:
        cfg, _, _ = resolve([f"recipe={config_yaml}", *overrides])
    except ConfigError as err:
        raise ExportError(f"{config_yaml}: {err}") from None
    if not isinstance(cfg, DiscoLoraConfig):
        raise ExportError(f"{config_yaml}: a {cfg.task!r} config, not a disco_lora training config")
    return cfg


def read_adapter(ckpt: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Adapter weights (bare peft keys) and bookkeeping from a Lightning checkpoint of DiscoLoRAModule: a file, or
    a DeepSpeed checkpoint folder (its ranks' partitions consolidated by DeepSpeed, `decoder.sharded`)."""
    from disco_train.decoder.sharded import is_sharded, read_sharded_adapter, saved_step

    if is_sharded(ckpt):
        try:
            state = read_sharded_adapter(ckpt, "ckpt")
        except ValueError as err:
            raise ExportError(str(err)) from None
        if not state:
            raise ExportError(f"ckpt={ckpt}: holds no LoRA weights (is it a disco_lora checkpoint?)")
        return state, {"checkpoint": run_relative(ckpt), "global_step": saved_step(ckpt), "sharded": True}
    if not ckpt.is_file():
        raise ExportError(f"ckpt={ckpt}: no such file" + (" (a folder, but no DeepSpeed checkpoint)"
                                                         if ckpt.is_dir() else ""))
    try:
        checkpoint = load_torch_file(ckpt, "ckpt")
    except ValueError as err:
        raise ExportError(str(err)) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ExportError(f"ckpt={ckpt}: not a Lightning checkpoint (no 'state_dict')")
    state = {k[len("lora."):]: v for k, v in checkpoint["state_dict"].items() if k.startswith("lora.")}
    if not state:
        raise ExportError(f"ckpt={ckpt}: holds no 'lora.' adapter weights (is it a disco_lora checkpoint?)")
    info = {"checkpoint": run_relative(ckpt), "global_step": checkpoint.get("global_step"),
            **checkpoint.get("disco", {})}
    return state, info


def run_relative(ckpt: Path) -> str:
    """RUN/checkpoints/NAME of a checkpoint: an export travels, the training machine's folders stay there."""
    return "/".join(Path(ckpt).resolve().parts[-3:])


def data_summary(cfg: DiscoLoraConfig) -> dict:
    """What the training data was coded with (`datamodules.coded`: rate points, fps, sketch, pose, weights), from
    the index of every shard folder in data.train_shards ({} when the shards are not on this machine: then the
    rate points must be given on the command line)."""
    from datamodules.coded import of_shards
    from datamodules.shards import expand_shards

    try:
        urls = expand_shards(cfg.data.train_shards)
    except (ConfigError, ValueError, OSError):
        return {}
    try:
        return of_shards(urls)
    except (TypeError, AttributeError, KeyError) as err:  # index rows or meta.json of the wrong shape
        raise ExportError(f"data.train_shards={cfg.data.train_shards}: a malformed index row or meta.json "
                          f"({type(err).__name__}: {err})") from None


def trained_points(found: list[dict], given: dict) -> list[dict]:
    """The trained rate points: those found in the shards, with the keys given on the command line replaced (a
    list gives every value: `ds=[2,4]` doubles each point). Without shards, the product of the given values."""
    from datamodules.coded import sort_settings

    given = {k: v if isinstance(v, (list, tuple)) else [v] for k, v in given.items() if v is not None}
    points = [{**p, **dict(zip(given, combo))} for p in (found or [{}]) for combo in product(*given.values())]
    return [{k: v for k, v in p.items() if v is not None} for p in sort_settings(points)]


# ---- metadata and files ---------------------------------------------------------------------------------------
def peft_config(cfg: DiscoLoraConfig) -> dict:
    """The LoraConfig the module trained with, as diffusers stores it (`save_lora_adapter`)."""
    from peft import LoraConfig

    config = LoraConfig(r=cfg.lora.rank, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                        target_modules=list(cfg.lora.targets), init_lora_weights=True).to_dict()
    return {k: sorted(v) if isinstance(v, set) else v for k, v in config.items()}


def disco_metadata(cfg: DiscoLoraConfig, trained: list[dict], layout: str) -> dict[str, str]:
    """`disco.*` safetensors metadata: enough to know what decoder this LoRA belongs to without disco.json (the
    first trained point under ds/dt/codec/qp/crf, all of them under trained_settings)."""
    c, f, codec = cfg.condition, cfg.flow, trained[0]
    values = {"format_version": FORMAT_VERSION, "layout": layout, "base_model": cfg.model.name,
              "rank": cfg.lora.rank, "alpha": cfg.lora.alpha, "targets": list(cfg.lora.targets),
              "condition_mode": c.mode, "aux": c.aux, "interleave_ratio": c.ratio, "fill": c.fill,
              "interleave_unit": c.interleave_unit, "stream": c.stream,
              "shift_tokens": list(f.shift_tokens), "shift_values": list(f.shift_values),
              "frames": cfg.data.frames, "height": cfg.data.height, "width": cfg.data.width,
              "rope": ROPE_CONVENTION, **{k: codec.get(k) for k in CODEC_KEYS}, "trained_settings": trained}
    return {f"disco.{k}": v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}


def _write_lora_files(folder: Path, state: dict[str, torch.Tensor], cfg: DiscoLoraConfig, codec: list[dict]
                      ) -> None:
    from diffusers.loaders.lora_base import LORA_ADAPTER_METADATA_KEY
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in state.items()}
    adapter_meta = {f"transformer.{k}": v for k, v in peft_config(cfg).items()}
    save_file({f"transformer.{k}": v for k, v in tensors.items()}, str(folder / DIFFUSERS_FILE),
              metadata={"format": "pt", LORA_ADAPTER_METADATA_KEY: json.dumps(adapter_meta, sort_keys=True),
                        **disco_metadata(cfg, codec, "diffusers")})
    scale = cfg.lora.alpha / cfg.lora.rank
    comfy = {f"diffusion_model.{k}": (v * scale if ".lora_B." in k else v).contiguous() for k, v in tensors.items()}
    save_file(comfy, str(folder / COMFYUI_FILE),
              metadata={"format": "pt", "disco.scale_folded_into_lora_B": json.dumps(scale),
                        **disco_metadata(cfg, codec, "comfyui")})


def _manifest(folder: Path, cfg: DiscoLoraConfig, trained: list[dict], data: dict, source: dict) -> ExportManifest:
    from omegaconf import OmegaConf

    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return ExportManifest(
        lora_diffusers=DIFFUSERS_FILE, lora_comfyui=COMFYUI_FILE,
        sketch_codec=SKETCH_CODEC_DIR if (folder / SKETCH_CODEC_DIR).is_dir() else None,
        codec=trained[0], trained_settings=trained, fps=data.get("fps", []), sketch=data.get("sketch", []),
        pose=Pose(data["pose_max_people"]) if "pose_max_people" in data else None,
        weights=Weights(**{k: data[k] for k in ("dcvc_rt_dir", "sketch_dcvc_dir") if k in data}),
        source=Source(**{k: source.get(k) for k in SOURCE_KEYS if k in source}), rope=ROPE_CONVENTION,
        config=OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True),
        files={p.relative_to(folder).as_posix(): sha256(p) for p in files})


SOURCE_KEYS = ("checkpoint", "global_step", "sharded", "num_trainable", "model", "skipped_steps")
"""What of a checkpoint's bookkeeping the export records (`decoder.manifest.Source`)."""


# ---- export ---------------------------------------------------------------------------------------------------
def export(ckpt: str | Path, out: str | Path, config: str | Path | None = None, sketch_codec: str | Path | None = None,
           codec: dict | None = None, force: bool = False) -> Path:
    """Checkpoint -> export folder (see the module docstring). `codec` overrides keys of the data's rate points
    (ds/dt/codec/qp/crf; a list gives several values, `trained_points`)."""
    ckpt, out = Path(ckpt), Path(out)
    cfg = load_config(Path(config) if config else run_config_path(ckpt))
    state, source = read_adapter(ckpt)
    check_keys(state, cfg)
    data = data_summary(cfg)
    settings = trained_points(data.get("settings", []), {k: v for k, v in (codec or {}).items() if k in CODEC_KEYS})
    try:  # what the decoder side would refuse to read is not written
        for i, point in enumerate(settings):
            check_point(point, f"trained point {i} (from the shards' index or the command line)")
    except ManifestError as err:
        raise ExportError(str(err)) from None
    missing = [k for k in ("ds", "dt", "codec") if any(k not in p for p in settings)]
    if missing:
        raise ExportError(f"{', '.join(missing)}: not found in the training shards' index or meta.json "
                          f"({cfg.data.train_shards}); give them, e.g. ds=4 dt=4 codec=x265 (or ds=[2,4] ...)")
    if sketch_codec and not Path(sketch_codec).is_dir():
        raise ExportError(f"sketch_codec={sketch_codec}: no such folder (the exported finetuned DCVC-RT codec)")
    check_out(out, [("ckpt", ckpt), ("config", config), ("sketch_codec", sketch_codec)], force)
    with atomic_folder(out) as tmp:
        _write_lora_files(tmp, state, cfg, settings)
        if sketch_codec:
            shutil.copytree(sketch_codec, tmp / SKETCH_CODEC_DIR)
        try:  # parsed back as the decoder side will read it before it is written
            _manifest(tmp, cfg, settings, data, source).write(tmp)
        except ManifestError as err:
            raise ExportError(f"{out / MANIFEST}: {err}") from None
    return out


def check_out(out: Path, inputs: list, force: bool) -> None:
    """`out` is replaced as a whole: refused when it is or holds an input, exists without `force`, or exists and is
    not an export (force replaces an earlier export, never another folder)."""
    from disco_train.config.outputs import check_folder_output

    check_folder_output(out, inputs, True, "export")
    if out.exists() and not force:
        raise ExportError(f"out={out}: exists; choose a new folder or pass force=true to replace it")
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise ExportError(f"out={out}: exists and is not an export (no {MANIFEST}); force=true replaces only an "
                          f"earlier export")
