"""Deterministic synthetic weights (the "golden rule" the conformance fixtures were made with) and a sha256
fingerprint.

Used by the conformance runner and by tests as "random weights at a sane scale": the value of a
key depends only on its name and shape, so any module construction order gives the same model.
"""

import hashlib
import math
import zlib

import torch

GAIN = 0.85
RES_GAIN = 0.10  # last 1x1 conv of both residual branches of a DepthConvBlock
BIAS_STD = 0.01
BANK_NOISE = 0.05
BIT_ESTIMATOR_STD = 0.5
_UP_BANKS = ("q_scale_enc", "q_encoder")    # 0.5 at QP 0 ramping to 2.0 at the last QP
_DOWN_BANKS = ("q_scale_dec", "q_decoder")  # 2.0 ramping down to 0.5
_FLAT_BANKS = ("q_feature", "q_recon")


def golden_tensor(key: str, shape, dtype=torch.float64) -> torch.Tensor:
    """The value of one state-dict entry under the golden rule."""
    shape = tuple(int(s) for s in shape)
    g = torch.Generator().manual_seed(zlib.crc32(key.encode("utf-8")))
    r = torch.randn(shape, generator=g, dtype=torch.float64)
    if key in _UP_BANKS + _DOWN_BANKS + _FLAT_BANKS:
        q = shape[0]
        t = torch.arange(q, dtype=torch.float64) / (q - 1)
        if key in _FLAT_BANKS:
            base = torch.ones(q, dtype=torch.float64)
        else:
            sign = 1.0 if key in _UP_BANKS else -1.0
            base = torch.exp(sign * math.log(2.0) * (2.0 * t - 1.0))
        value = base.view(q, 1, 1, 1) * (1.0 + BANK_NOISE * r)
    elif key.startswith("bit_estimator_z."):
        value = BIT_ESTIMATOR_STD * r
    elif key.endswith(".weight"):
        fan_in = shape[1] * shape[2] * shape[3]
        gain = RES_GAIN if key.endswith((".dc.3.weight", ".ffn.2.weight")) else GAIN
        value = r * (gain / math.sqrt(fan_in))
    elif key.endswith(".bias"):
        value = BIAS_STD * r
    else:
        raise ValueError(f"golden init rule has no case for key {key!r}")
    return value.to(dtype)


def golden_state_dict(model: torch.nn.Module, dtype=torch.float64) -> dict:
    """Golden values for every key of `model.state_dict()` (names and shapes from the model)."""
    return {k: golden_tensor(k, v.shape, dtype) for k, v in model.state_dict().items()}


def fingerprint(state_dict: dict) -> str:
    """sha256 of the little-endian float64 C-order bytes of all tensors, keys in sorted() order."""
    h = hashlib.sha256()
    for k in sorted(state_dict):
        h.update(state_dict[k].detach().to("cpu", torch.float64).contiguous().numpy().astype("<f8").tobytes())
    return h.hexdigest()
