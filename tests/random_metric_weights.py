"""Random-valued weight files with the standard names and layouts, for smoke tests without downloads.

The tensors come from freshly constructed modules, so loading them proves only that the pipeline runs;
scores computed with them are meaningless. Never point a real evaluation at such a folder.
"""

from __future__ import annotations

from pathlib import Path

import torch

from disco_train.metrics.weights import WEIGHT_FILES

ALL_KEYS = ("vgg16", "alexnet", "lpips_alex", "lpips_vgg", "dists", "inception", "i3d", "pwcnet", "pips2")


def _module_state(key: str) -> dict[str, torch.Tensor]:
    if key in ("vgg16", "alexnet"):
        from disco_train.metrics.backbones import build_backbone

        return build_backbone(key, None).state_dict()
    if key.startswith("lpips_"):
        from disco_train.metrics.perceptual import LPIPS

        return {k: v.abs() for k, v in LPIPS(key[6:]).state_dict().items() if k.startswith("lin")}
    if key == "dists":
        from disco_train.metrics.perceptual import DISTS

        return {k: v for k, v in DISTS().state_dict().items() if k in ("alpha", "beta")}
    if key == "inception":
        from disco_train.metrics.inception import FIDInceptionV3

        return FIDInceptionV3().state_dict()
    if key == "i3d":
        from disco_train.metrics.i3d import InceptionI3d

        return InceptionI3d(400).state_dict()
    if key == "pwcnet":
        from disco_train.metrics.pwcnet import PWCNet

        return PWCNet().state_dict()
    if key == "pips2":
        from disco_train.metrics.pips2 import PIPs

        return PIPs().state_dict()
    raise KeyError(f"unknown weight key {key!r}; known: {ALL_KEYS}")


def _random_like(name: str, v: torch.Tensor, g: torch.Generator, positive: bool) -> torch.Tensor:
    if not v.is_floating_point():
        return v  # num_batches_tracked
    if name.endswith(("running_var", "bn.weight")):
        return torch.ones(v.shape)  # identity BN keeps activation scale through deep stacks
    if name.endswith(("running_mean", "bn.bias")) or (name.endswith("bias") and v.ndim == 1):
        return torch.zeros(v.shape)
    if positive:
        return torch.rand(v.shape, generator=g) + 0.01  # LPIPS heads / DISTS alpha, beta are non-negative
    fan_in = v[0].numel() if v.ndim > 1 else 1
    # He init: activations neither vanish nor explode through ~50 ReLU layers, so features are informative
    return torch.randn(v.shape, generator=g) * (2.0 / fan_in) ** 0.5


def write_random_weights(weights_dir: str | Path, keys=ALL_KEYS, seed: int = 0) -> Path:
    """Write random weights for ``keys`` under ``weights_dir`` using the WEIGHT_FILES names."""
    g = torch.Generator().manual_seed(seed)
    root = Path(weights_dir)
    for key in keys:
        state = {name: _random_like(name, v, g, positive=key in ("lpips_alex", "lpips_vgg", "dists"))
                 for name, v in _module_state(key).items()}
        spec = WEIGHT_FILES[key]
        if spec.state_key is not None:  # laid out like the published training checkpoint
            state = {spec.state_key: state, "optimizer_state_dict": {"state": {}, "param_groups": []}}
        path = root / spec.relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, path)
    return root
