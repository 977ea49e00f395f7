"""LoRA on the frozen LTX-Video transformer through peft, and adapter state dicts in diffusers naming."""

from __future__ import annotations

from pathlib import Path

import torch
from peft import LoraConfig as PeftLoraConfig
from peft import get_peft_model_state_dict, set_peft_model_state_dict
from safetensors import safe_open
from safetensors.torch import load_file

ADAPTER = "default"


def add_lora(transformer: torch.nn.Module, rank: int, alpha: float, dropout: float, targets: list[str]) -> int:
    """Inject a LoRA adapter in place (diffusers' `add_adapter`); returns the number of trainable parameters.

    Adapter weights are kept in float32 even when the base is bf16: Adam updates of ~lr·1 on bf16 weights
    (8 mantissa bits) would round away.
    """
    config = PeftLoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets),
                            init_lora_weights=True)
    transformer.add_adapter(config, adapter_name=ADAPTER)
    trainable = 0
    for name, param in transformer.named_parameters():
        is_lora = "lora_" in name
        param.requires_grad_(is_lora)
        if is_lora:
            param.data = param.data.float()
            trainable += param.numel()
    if trainable == 0:
        raise ValueError(f"lora.targets={list(targets)} matched no module of {type(transformer).__name__}")
    return trainable


def lora_state_dict(transformer: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Adapter weights only, keyed like `transformer_blocks.0.attn1.to_q.lora_A.weight` (no adapter name)."""
    return {k: v.detach().clone() for k, v in get_peft_model_state_dict(transformer, adapter_name=ADAPTER).items()}


def load_lora_state_dict(transformer: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load adapter weights saved by `lora_state_dict`; unexpected or missing adapter keys are errors."""
    shapes = {k: tuple(v.shape) for k, v in get_peft_model_state_dict(transformer, adapter_name=ADAPTER).items()}
    got = set(state)
    if set(shapes) != got:
        missing, extra = sorted(set(shapes) - got)[:5], sorted(got - set(shapes))[:5]
        raise ValueError(f"LoRA weights do not fit this model/config: missing {missing}, unexpected {extra}")
    for key, value in state.items():  # before any use: a wrong rank or a NaN would decode garbage silently
        if tuple(value.shape) != shapes[key]:
            raise ValueError(f"LoRA weights do not fit this model/config: {key} has shape {tuple(value.shape)}, "
                             f"expected {shapes[key]} (a rank other than lora.rank?)")
        if not torch.isfinite(value).all():
            raise ValueError(f"LoRA weights: {key} holds NaN or inf")
    result = set_peft_model_state_dict(transformer, state, adapter_name=ADAPTER)
    unexpected = getattr(result, "unexpected_keys", None) or []
    if unexpected:
        raise ValueError(f"LoRA weights had unexpected keys: {unexpected[:5]}")


def load_torch_file(path: str | Path, key: str, map_location="cpu"):
    """torch.load(weights_only=True) with the reasons in plain words: a file that pickles Python objects is
    refused (never loaded with weights_only=False), a truncated or foreign file is named with the key to fix."""
    import pickle

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{key}={path}: no such file" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[-1][:200] if str(err).strip() else type(err).__name__
        raise ValueError(f"{key}={path}: not a plain-tensor checkpoint: it pickles Python objects, which "
                         f"disco-train never loads (re-save its state dict, or export safetensors): {first}") from None
    except (RuntimeError, EOFError, OSError) as err:
        raise ValueError(f"{key}={path}: not a readable torch checkpoint (truncated or another format): "
                         f"{str(err).splitlines()[0][:200] if str(err) else type(err).__name__}") from None


ADAPTER_PREFIXES = ("transformer.", "diffusion_model.", "lora.")
"""Key prefixes of the adapter formats we read: diffusers export, ComfyUI export, our Lightning checkpoints."""


def load_adapter_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Adapter weights from an exported LoRA (.safetensors, diffusers or ComfyUI keys) or a training checkpoint
    (.ckpt, or a DeepSpeed run's checkpoint folder), as bare peft keys
    (`transformer_blocks.0.attn1.to_q.lora_A.weight`)."""
    path = _adapter_path(path)
    if path.is_dir():
        from disco_train.decoder.sharded import read_sharded_adapter

        return _lora_entries(read_sharded_adapter(path, "lora.init_from"), path)
    if path.suffix == ".safetensors":
        try:
            state = load_file(str(path))
        except Exception as err:  # safetensors raises its own error types for a corrupt header
            raise ValueError(f"lora.init_from={path}: not a readable safetensors file ({err})") from None
        with safe_open(str(path), "pt") as handle:
            folded = (handle.metadata() or {}).get("disco.scale_folded_into_lora_B")
        if folded is not None:  # the ComfyUI export multiplies alpha/rank into lora_B; the peft adapter applies it
            state = {k: v / _folded_scale(folded, path) if "lora_B" in k else v for k, v in state.items()}
    else:
        checkpoint = load_torch_file(path, "lora.init_from")
        if not isinstance(checkpoint, dict):
            raise ValueError(f"lora.init_from={path}: holds a {type(checkpoint).__name__}, not a state dict")
        state = checkpoint.get("state_dict", checkpoint)
    return _lora_entries(state, path)


def _folded_scale(text: str, path) -> float:
    """The alpha/rank folded into lora_B, from the file's metadata: a positive finite number, else an error."""
    import math

    try:
        scale = float(text)
    except ValueError:
        scale = math.nan
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"lora.init_from={path}: metadata disco.scale_folded_into_lora_B={text[:40]!r} is not a "
                         f"positive number")
    return scale


def adapter_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """{bare peft key: shape} of an adapter file, without reading its tensors (safetensors headers; a .ckpt is
    memory-mapped; a DeepSpeed folder's adapter is consolidated): what a preflight checks before weights load."""
    path = _adapter_path(path)
    if path.is_dir():
        return {k: tuple(v.shape) for k, v in load_adapter_file(path).items()}
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), "pt") as handle:
                shapes = {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}
        except Exception as err:
            raise ValueError(f"lora.init_from={path}: not a readable safetensors file ({err})") from None
    else:
        checkpoint = load_torch_file(path, "lora.init_from")
        state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else {}
        shapes = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    return _lora_entries(shapes, path)


def _adapter_path(path: str | Path) -> Path:
    """`path` if it is a file or a DeepSpeed checkpoint folder, else FileNotFoundError saying what to give."""
    from disco_train.decoder.sharded import is_sharded

    path = Path(path)
    if not path.is_file() and not is_sharded(path):
        what = "a folder, but no DeepSpeed checkpoint" if path.is_dir() else "no such file"
        raise FileNotFoundError(f"lora.init_from={path}: {what} (give an exported .safetensors LoRA, a .ckpt or a "
                                f"DeepSpeed checkpoint folder)")
    return path


def targeted(name: str, targets: list[str]) -> bool:
    """peft's suffix matching of `lora.targets` against a module name."""
    return any(name == t or name.endswith("." + t) for t in targets)


def adapter_layout(transformer: torch.nn.Module, rank: int, targets: list[str]) -> dict[str, tuple[int, int]]:
    """{peft key: shape} of the adapter `add_lora` would put on `transformer` (a meta-device model is enough):
    lora_A (rank, in) and lora_B (out, rank) of every targeted Linear."""
    out = {}
    for name, layer in transformer.named_modules():
        if isinstance(layer, torch.nn.Linear) and targeted(name, targets):
            out[f"{name}.lora_A.weight"] = (rank, layer.in_features)
            out[f"{name}.lora_B.weight"] = (layer.out_features, rank)
    return out


def check_adapter_file(path: str | Path, expected: dict[str, tuple[int, ...]], rank: int) -> None:
    """ValueError naming the file, a key and both ranks (or the missing/unexpected keys) when the adapter in
    `path` does not fit the run's adapter `expected` ({key: shape}, e.g. from a meta-device model)."""
    got = adapter_shapes(path)
    theirs = next(((k, s[0]) for k, s in sorted(got.items()) if ".lora_A." in k and s[0] != rank), None)
    if theirs:
        raise ValueError(f"lora.init_from={path}: its adapter has rank {theirs[1]} ({theirs[0]}), this run trains "
                         f"rank {rank} (lora.rank); set lora.rank={theirs[1]} or start from another adapter")
    missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
    if missing or extra:
        raise ValueError(f"lora.init_from={path}: its adapter does not fit this model and lora.targets: "
                         f"{len(missing)} missing (e.g. {missing[:2]}), {len(extra)} unexpected (e.g. {extra[:2]})")
    wrong = next((k for k, shape in got.items() if shape != expected[k]), None)
    if wrong:
        raise ValueError(f"lora.init_from={path}: {wrong} has shape {got[wrong]}, this model needs {expected[wrong]}")


def trainable_parameters(module: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]


def _lora_entries(items: dict, path) -> dict:
    """{bare peft key: value} of the LoRA entries of a state dict (or of its shapes), without a wrapper's prefix
    (ADAPTER_PREFIXES); none is an error naming the file."""
    out = {}
    for key, value in items.items():
        for prefix in ADAPTER_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
                break
        if "lora_" in key:
            out[key] = value
    if not out:
        raise ValueError(f"lora.init_from={path}: holds no LoRA weights (no key contains 'lora_')")
    return out
