"""LoRA on the frozen LTX-Video transformer through peft, and adapter state dicts in diffusers naming."""

from __future__ import annotations

import torch
from peft import LoraConfig as PeftLoraConfig
from peft import get_peft_model_state_dict, set_peft_model_state_dict

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


def trainable_parameters(module: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]
