"""Export a trained DiSCo LoRA for decoders: `python -m disco_train export ckpt=<.ckpt> out=<dir>`.

The export folder holds
- `pytorch_lora_weights.safetensors`: diffusers format (`transformer.` keys, diffusers' default LoRA file name, so
  `LTXPipeline.load_lora_weights(<dir>)` finds it) with diffusers' `lora_adapter_metadata` (rank, alpha, targets:
  without it diffusers assumes alpha = rank) and `disco.*` metadata;
- `disco_lora_comfyui.safetensors`: ComfyUI format (`diffusion_model.` keys). ComfyUI and diffusers' converter
  read no alpha from this layout (an `.alpha` tensor would break diffusers' LTX converter), so the scale
  alpha/rank is folded into lora_B and the file is exact under the alpha = rank convention;
- `sketch_codec/` (optional): the finetuned DCVC-RT sketch codec, copied;
- `disco.json`: what the decoder side needs to rebuild the module (resolved training config, codec settings of
  the training data, file names and their sha256).

Every key is checked against the base architecture (built on the meta device) before anything is written, and
the folder appears atomically: written to a temporary sibling, then renamed.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from disco_train.config import ConfigError, DiscoLoraConfig

DIFFUSERS_FILE = "pytorch_lora_weights.safetensors"
COMFYUI_FILE = "disco_lora_comfyui.safetensors"
MANIFEST = "disco.json"
SKETCH_CODEC_DIR = "sketch_codec"
FORMAT_VERSION = 1
CODEC_KEYS = ("ds", "dt", "codec", "qp", "crf")
_LORA_KEY = re.compile(r"(?P<module>.+)\.(?P<part>lora_A|lora_B)\.weight")


class ExportError(ValueError):
    """A checkpoint, config or export folder is unusable; the message says what and where."""


# ---- reading a training run -----------------------------------------------------------------------------------
def run_config_path(ckpt: Path) -> Path:
    """runs/<name>/checkpoints/x.ckpt -> runs/<name>/config.yaml (where train.py saves the resolved config)."""
    return ckpt.resolve().parent.parent / "config.yaml"


def load_config(config_yaml: Path, overrides: list[str] = ()) -> DiscoLoraConfig:
    """The resolved training config, re-validated through the recipe machinery (so overrides work too)."""
    from disco_train.recipe import resolve

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
    """Adapter weights (bare peft keys) and bookkeeping from a Lightning checkpoint of DiscoLoRAModule."""
    if not ckpt.is_file():
        raise ExportError(f"ckpt={ckpt}: no such file")
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ExportError(f"ckpt={ckpt}: not a Lightning checkpoint (no 'state_dict')")
    state = {k[len("lora."):]: v for k, v in checkpoint["state_dict"].items() if k.startswith("lora.")}
    if not state:
        raise ExportError(f"ckpt={ckpt}: holds no 'lora.' adapter weights (is it a disco_lora checkpoint?)")
    info = {"checkpoint": str(ckpt), "global_step": checkpoint.get("global_step"), **checkpoint.get("disco", {})}
    return state, info


def data_codec_settings(cfg: DiscoLoraConfig) -> dict:
    """D_s, D_t, codec, qp, crf of the training data, read from the first sample's meta.json of the first shard
    ({} when the shards are not on this machine: then they must be given on the command line)."""
    import tarfile

    from datamodules.shards import expand_shards

    try:
        urls = expand_shards(cfg.data.train_shards)
    except (ConfigError, ValueError, OSError):
        return {}
    for url in urls[:1]:
        with tarfile.open(url) as tar:
            for member in tar:
                if member.name.endswith(".meta.json"):
                    meta = json.loads(tar.extractfile(member).read())
                    return {k: meta[k] for k in CODEC_KEYS if k in meta}
    return {}


# ---- checking keys against the architecture -------------------------------------------------------------------
def architecture(model_name: str) -> torch.nn.Module:
    """The base transformer of `model.name` on the meta device (no memory, no weights)."""
    from diffusers import LTXVideoTransformer3DModel

    from disco_train.models import LTXV_CONFIGS, TINY_TRANSFORMER

    config = TINY_TRANSFORMER if model_name == "tiny" else LTXV_CONFIGS.get(model_name)
    if config is None:
        raise ExportError(f"model.name={model_name!r}: no architecture to check the LoRA against")
    with torch.device("meta"):
        return LTXVideoTransformer3DModel(**config)


def _targeted(name: str, targets: list[str]) -> bool:
    return any(name == t or name.endswith("." + t) for t in targets)  # peft's suffix matching


def check_keys(state: dict[str, torch.Tensor], cfg: DiscoLoraConfig) -> None:
    """Every key must be lora_A/lora_B of a Linear of the base model with shapes (r, in) / (out, r); every
    targeted Linear must have both. Raises ExportError listing the first problems."""
    modules = {n: m for n, m in architecture(cfg.model.name).named_modules() if isinstance(m, torch.nn.Linear)}
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
    missing = sorted(n for n in modules if _targeted(n, cfg.lora.targets) and n not in seen)
    problems += [f"{n}: targeted by lora.targets but has no LoRA weights" for n in missing]
    if problems:
        more = f" (+{len(problems) - 8} more)" if len(problems) > 8 else ""
        raise ExportError(f"LoRA does not fit {cfg.model.name}: " + "; ".join(problems[:8]) + more)


# ---- metadata and files ---------------------------------------------------------------------------------------
def peft_config(cfg: DiscoLoraConfig) -> dict:
    """The LoraConfig the module trained with, as diffusers stores it (`save_lora_adapter`)."""
    from peft import LoraConfig

    config = LoraConfig(r=cfg.lora.rank, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                        target_modules=list(cfg.lora.targets), init_lora_weights=True).to_dict()
    return {k: sorted(v) if isinstance(v, set) else v for k, v in config.items()}


def disco_metadata(cfg: DiscoLoraConfig, codec: dict, layout: str) -> dict[str, str]:
    """`disco.*` safetensors metadata: enough to know what decoder this LoRA belongs to without disco.json."""
    c, f = cfg.condition, cfg.flow
    values = {"format_version": FORMAT_VERSION, "layout": layout, "base_model": cfg.model.name,
              "rank": cfg.lora.rank, "alpha": cfg.lora.alpha, "targets": list(cfg.lora.targets),
              "condition_mode": c.mode, "aux": c.aux, "interleave_ratio": c.ratio, "fill": c.fill,
              "shift_tokens": list(f.shift_tokens), "shift_values": list(f.shift_values),
              "frames": cfg.data.frames, "height": cfg.data.height, "width": cfg.data.width,
              **{k: codec.get(k) for k in CODEC_KEYS}}
    return {f"disco.{k}": v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}


def _write_lora_files(folder: Path, state: dict[str, torch.Tensor], cfg: DiscoLoraConfig, codec: dict) -> None:
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


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _manifest(folder: Path, cfg: DiscoLoraConfig, codec: dict, source: dict) -> dict:
    from omegaconf import OmegaConf

    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {"format": "disco-export", "version": FORMAT_VERSION, "lora_diffusers": DIFFUSERS_FILE,
            "lora_comfyui": COMFYUI_FILE, "sketch_codec": SKETCH_CODEC_DIR if (folder / SKETCH_CODEC_DIR).is_dir()
            else None, "codec": codec, "source": source,
            "config": OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True),
            "files": {p.relative_to(folder).as_posix(): sha256(p) for p in files}}


# ---- export ---------------------------------------------------------------------------------------------------
def export(ckpt: str | Path, out: str | Path, config: str | Path | None = None, sketch_codec: str | Path | None = None,
           codec: dict | None = None, force: bool = False) -> Path:
    """Checkpoint -> export folder (see the module docstring). `codec` overrides the data's ds/dt/codec/qp/crf."""
    ckpt, out = Path(ckpt), Path(out)
    cfg = load_config(Path(config) if config else run_config_path(ckpt))
    state, source = read_adapter(ckpt)
    check_keys(state, cfg)
    settings = {**data_codec_settings(cfg), **{k: v for k, v in (codec or {}).items() if v is not None}}
    missing = [k for k in ("ds", "dt", "codec") if k not in settings]
    if missing:
        raise ExportError(f"{', '.join(missing)}: not found in the training shards' meta.json "
                          f"({cfg.data.train_shards}); give them, e.g. ds=4 dt=4 codec=x265")
    sketch_codec = sketch_codec or getattr(cfg.condition, "sketch_codec", "")
    if sketch_codec and not Path(sketch_codec).is_dir():
        raise ExportError(f"sketch_codec={sketch_codec}: no such folder (the exported finetuned DCVC-RT codec)")
    if out.exists() and not force:
        raise ExportError(f"out={out}: exists; choose a new folder or pass force=true to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        _write_lora_files(tmp, state, cfg, settings)
        if sketch_codec:
            shutil.copytree(sketch_codec, tmp / SKETCH_CODEC_DIR)
        manifest = _manifest(tmp, cfg, settings, source)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _replace(tmp: Path, out: Path) -> None:
    """Rename tmp onto out; an existing out (force) is moved aside first and removed only once tmp is in place."""
    if not out.exists():
        tmp.rename(out)
        return
    old = out.with_name(f".{out.name}.old-{tmp.name.rsplit('-', 1)[-1]}")
    out.rename(old)
    try:
        tmp.rename(out)
    except BaseException:
        old.rename(out)
        raise
    shutil.rmtree(old, ignore_errors=True)


# ---- the decoder side -----------------------------------------------------------------------------------------
def read_manifest(folder: str | Path, verify: bool = True) -> dict:
    """disco.json of an export folder, with every listed file present and (verify) matching its sha256."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise ExportError(f"export={folder}: no {MANIFEST}; export a checkpoint with `python -m disco_train export`")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ExportError(f"{path}: not valid JSON ({err})") from None
    if manifest.get("format") != "disco-export" or manifest.get("version") != FORMAT_VERSION:
        raise ExportError(f"{path}: format {manifest.get('format')!r} v{manifest.get('version')}, expected "
                          f"disco-export v{FORMAT_VERSION}")
    for name, digest in manifest["files"].items():
        file = folder / name
        if not file.is_file():
            raise ExportError(f"export={folder}: {name} is listed in {MANIFEST} but missing")
        if verify and sha256(file) != digest:
            raise ExportError(f"export={folder}: {name} does not match its sha256 in {MANIFEST} (modified or "
                              f"corrupt)")
    return manifest


def decoder_config(folder: str | Path, overrides: list[str] = (), manifest: dict | None = None) -> DiscoLoraConfig:
    """The training config from disco.json with `lora.init_from` at the exported LoRA, plus key=value overrides
    (e.g. model.path=... on a machine whose weights live elsewhere)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    folder = Path(folder)
    manifest = manifest or read_manifest(folder)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(DiscoLoraConfig), manifest["config"],
                                 OmegaConf.from_dotlist(list(overrides)))
        cfg = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        raise ExportError(f"{folder / MANIFEST}: config does not fit this version of disco-train: "
                          f"{str(err).splitlines()[0]}") from None
    cfg.validate()
    cfg.lora.init_from = str(folder / manifest["lora_diffusers"])
    return cfg


def build_decoder(folder: str | Path, overrides: list[str] = (), device: str = "cpu", merge: bool = True):
    """Rebuild the trained DiscoLoRAModule from an export folder (base weights per the config's model.*), with
    the adapter folded into the base weights unless `merge=False` (disco_train/speed.py: merge_lora)."""
    from disco_train import speed
    from disco_train.modules.dit_lora import DiscoLoRAModule

    module = DiscoLoRAModule(decoder_config(folder, overrides))
    if merge:
        speed.merge_lora(module.transformer)
    return module.to(device).eval()


# ---- command line ---------------------------------------------------------------------------------------------
USAGE = ("usage: python -m disco_train export ckpt=<runs/NAME/checkpoints/X.ckpt> out=<dir> [config=<config.yaml>] "
         "[sketch_codec=<dir>] [ds=N dt=N codec=x264|x265|dcvc_rt qp=N crf=N] [force=true]")


def parse_args(argv: list[str], known: set[str]) -> dict[str, str]:
    args = {}
    for token in argv:
        key, sep, value = token.partition("=")
        if not sep or key not in known:
            raise ExportError(f"argument {token!r}: expected one of {', '.join(sorted(known))} as key=value")
        args[key] = value
    return args


def main(argv: list[str]) -> int:
    try:
        args = parse_args(argv, {"ckpt", "out", "config", "sketch_codec", "force", *CODEC_KEYS})
        if "ckpt" not in args or "out" not in args:
            raise ExportError("ckpt= and out= are required")
        codec = {k: (args[k] if k == "codec" else int(args[k])) for k in CODEC_KEYS if k in args}
        out = export(args["ckpt"], args["out"], args.get("config"), args.get("sketch_codec"), codec,
                     force=args.get("force", "false").lower() in ("1", "true", "yes"))
    except (ExportError, ValueError) as err:
        print(f"export: {err}\n{USAGE}", file=sys.stderr)
        return 2
    manifest = json.loads((out / MANIFEST).read_text())
    print(f"exported {out}: " + ", ".join(f"{name} ({(out / name).stat().st_size:,} B)" for name in manifest["files"]))
    return 0
