import torch

from disco_train.decoder.lora import add_lora, load_lora_state_dict, lora_state_dict
from disco_train.decoder.models import tiny_transformer

TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


def test_only_adapter_parameters_train_and_count_is_exact():
    model = tiny_transformer()
    model.requires_grad_(False)
    n = add_lora(model, rank=4, alpha=4, dropout=0.0, targets=TARGETS)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)
    # 2 blocks × 2 attentions × 4 linears of 32×32, each LoRA has A (4×32) + B (32×4) = 256 params
    assert n == 2 * 2 * 4 * 256
    assert all(p.dtype == torch.float32 for name, p in model.named_parameters() if "lora_" in name)


def test_state_dict_round_trip_reproduces_outputs():
    torch.manual_seed(0)
    a, b = tiny_transformer(seed=0), tiny_transformer(seed=0)
    for m in (a, b):
        m.requires_grad_(False)
        add_lora(m, 4, 4, 0.0, TARGETS)
    for name, p in a.named_parameters():
        if "lora_B" in name:
            p.data.normal_()
    load_lora_state_dict(b, lora_state_dict(a))
    x, text = torch.randn(1, 12, 16), torch.randn(1, 5, 32)
    kwargs = dict(encoder_hidden_states=text, timestep=torch.tensor([500]), encoder_attention_mask=torch.ones(1, 5),
                  num_frames=3, height=2, width=2, rope_interpolation_scale=(1.0, 1.0, 1.0), return_dict=False)
    assert torch.allclose(a(x, **kwargs)[0], b(x, **kwargs)[0])
    assert all(k.startswith("transformer_blocks.") and "lora_" in k for k in lora_state_dict(a))


def test_mismatched_adapter_is_rejected():
    model = tiny_transformer()
    add_lora(model, 4, 4, 0.0, TARGETS)
    state = lora_state_dict(model)
    state.pop(next(iter(state)))
    try:
        load_lora_state_dict(model, state)
    except ValueError as err:
        assert "missing" in str(err)
    else:
        raise AssertionError("a missing adapter key must be rejected")
