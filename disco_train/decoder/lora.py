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
    expected = set(get_peft_model_state_dict(transformer, adapter_name=ADAPTER))
    got = set(state)
    if expected != got:
        missing, extra = sorted(expected - got)[:5], sorted(got - expected)[:5]
        raise ValueError(f"LoRA weights do not fit this model/config: missing {missing}, unexpected {extra}")
    result = set_peft_model_state_dict(transformer, state, adapter_name=ADAPTER)
    unexpected = getattr(result, "unexpected_keys", None) or []
    if unexpected:
        raise ValueError(f"LoRA weights had unexpected keys: {unexpected[:5]}")


ADAPTER_PREFIXES = ("transformer.", "diffusion_model.", "lora.")
"""Key prefixes of the adapter formats we read: diffusers export, ComfyUI export, our Lightning checkpoints."""


def load_adapter_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Adapter weights from an exported LoRA (.safetensors, diffusers or ComfyUI keys) or a training checkpoint
    (.ckpt), as bare peft keys (`transformer_blocks.0.attn1.to_q.lora_A.weight`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"lora.init_from={path}: no such file (an exported .safetensors LoRA or a .ckpt)")
    if path.suffix == ".safetensors":
        state = load_file(str(path))
        with safe_open(str(path), "pt") as handle:
            folded = (handle.metadata() or {}).get("disco.scale_folded_into_lora_B")
        if folded:  # the ComfyUI export multiplies alpha/rank into lora_B; the peft adapter applies it again
            state = {k: v / float(folded) if "lora_B" in k else v for k, v in state.items()}
    else:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        state = checkpoint.get("state_dict", checkpoint)
    out = {}
    for key, value in state.items():
        for prefix in ADAPTER_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
                break
        if "lora_" in key:
            out[key] = value
    if not out:
        raise ValueError(f"lora.init_from={path}: holds no LoRA weights (no key contains 'lora_')")
    return out


def trainable_parameters(module: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]
