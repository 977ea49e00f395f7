"""Speed levers (disco_train/speed.py): per-block checkpointing, the attention kernel in forward and recompute,
regional compilation. Each must leave the step's arithmetic unchanged."""

import pytest
import torch

from disco_train.decoder import speed
from disco_train.config import ATTENTION_KERNELS, ConfigError
from disco_train.config.recipe import resolve


def _module(*overrides):
    from disco_train.train.lora_module import DiscoLoRAModule

    cfg, _, _ = resolve(["recipe=disco_lora_debug", "lora.rank=4", "lora.alpha=4", "seed=3", *overrides])
    module = DiscoLoRAModule(cfg)
    with torch.no_grad():  # lora_B starts at zero: give the adapter a non-zero update so every gradient shows
        for name, p in module.transformer.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(len(name))) * 0.1)
    return module


def _batch():
    g = torch.Generator().manual_seed(0)
    return {"video": torch.randint(0, 255, (1, 17, 64, 64, 3), generator=g, dtype=torch.uint8),
            "cond": torch.randint(0, 255, (1, 17, 64, 64, 3), generator=g, dtype=torch.uint8),
            "caption": ["a red square"], "fps": torch.full((1,), 24.0)}


def _step(module) -> tuple[float, dict[str, torch.Tensor]]:
    loss = module.training_step(_batch(), 0)
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in module.transformer.named_parameters() if p.grad is not None}


def _count_block_calls(module) -> list[int]:
    calls = [0] * len(module.transformer.transformer_blocks)
    for i, block in enumerate(module.transformer.transformer_blocks):
        block.register_forward_pre_hook(lambda *_, i=i: calls.__setitem__(i, calls[i] + 1))
    return calls


def test_attention_names_match_the_config_schema():
    assert tuple(speed.ATTENTION) == ATTENTION_KERNELS


@pytest.mark.parametrize("blocks,expected", [(-1, [0, 1, 2, 3]), (0, []), (2, [0, 1]), (9, [0, 1, 2, 3])])
def test_checkpointed_blocks_are_the_first_n(blocks, expected):
    assert list(speed.checkpointed_blocks(4, blocks)) == expected


@pytest.mark.parametrize("override", ["model.checkpoint_blocks=-2", "model.attention=sdpa"])
def test_bad_lever_values_name_the_key(override):
    with pytest.raises(ConfigError, match=override.split("=")[0].replace(".", r"\.")):
        resolve(["recipe=disco_lora_debug", override])


@pytest.mark.parametrize("ckpt,blocks,calls", [(False, -1, [1, 1]), (True, -1, [2, 2]), (True, 1, [2, 1]),
                                               (True, 0, [1, 1])])
def test_only_the_chosen_blocks_recompute_and_gradients_do_not_change(ckpt, blocks, calls):
    plain_loss, plain_grads = _step(_module())
    module = _module(f"model.gradient_checkpointing={ckpt}", f"model.checkpoint_blocks={blocks}")
    counted = _count_block_calls(module)
    loss, grads = _step(module)
    assert counted == calls  # forward once each, plus one recompute per checkpointed block
    assert module.recomputed_blocks == calls.count(2)
    assert loss == pytest.approx(plain_loss, abs=1e-6)
    assert grads.keys() == plain_grads.keys() and len(grads) > 0
    for name in grads:
        torch.testing.assert_close(grads[name], plain_grads[name], rtol=1e-5, atol=1e-6, msg=name)


def test_recompute_runs_under_the_forward_attention_kernel():
    """The recompute happens in backward, outside denoise's context: it must get the same kernel choice."""
    module = _module("model.gradient_checkpointing=true", "model.attention=flash")
    seen = []  # cudnn is not in the 'flash' preference list: disabled inside the context, enabled outside
    for block in module.transformer.transformer_blocks:
        block.attn1.register_forward_pre_hook(lambda *_: seen.append(torch.backends.cuda.cudnn_sdp_enabled()))
    _step(module)
    assert len(seen) == 4 and not any(seen)  # 2 blocks × (forward + recompute)
    assert torch.backends.cuda.cudnn_sdp_enabled()  # restored after the step


@pytest.mark.parametrize("kernel", ["flash", "math", "cudnn"])
def test_attention_kernels_give_the_same_loss_on_cpu(kernel):
    """On the CPU 'flash' is PyTorch's CPU flash kernel; 'cudnn' is unavailable and falls back (efficient, then
    math): every choice must run and agree."""
    reference, _ = _step(_module("model.attention=math"))
    loss, _ = _step(_module(f"model.attention={kernel}"))
    assert loss == pytest.approx(reference, rel=1e-5)


def test_unknown_kernel_in_code_is_refused():
    with pytest.raises(ValueError, match="model.attention='sdpa'"):
        speed.attention_context("sdpa")


@pytest.mark.slow
def test_compiled_blocks_train_like_eager_ones():
    eager_loss, eager_grads = _step(_module("model.gradient_checkpointing=true"))
    module = _module("model.gradient_checkpointing=true", "model.compile=true")
    assert all(hasattr(b, "_compiled_call_impl") and b._compiled_call_impl is not None
               for b in module.transformer.transformer_blocks)
    loss, grads = _step(module)
    assert loss == pytest.approx(eager_loss, rel=1e-4)
    for name in eager_grads:
        torch.testing.assert_close(grads[name], eager_grads[name], rtol=1e-3, atol=1e-5, msg=name)
