"""VGG16 and AlexNet feature extractors in plain torch.nn with torchvision's state-dict layout.

torchvision cannot be imported next to the CPU torch wheel (its PyPI build is CUDA-linked), so the
``features`` stacks are rebuilt here layer by layer with the same indices; the standard torchvision files
(vgg16-397923af.pth, alexnet-owt-7be5be79.pth) then load into them key for key. Only ``features.*`` is
used; the ``classifier.*`` tensors in those files are dropped.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .weights import WEIGHT_FILES, load_strict, load_weights

# torchvision cfg "D": numbers are conv output channels, "M" a 2x2 max-pool.
_VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


class VGG16Features(nn.Module):
    """torchvision ``vgg16().features``: conv indices 0,2,5,7,10,12,14,17,19,21,24,26,28; pools 4,9,16,23,30."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for v in _VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                # ReLU not in-place: intermediate activations are returned as features and must stay intact.
                layers += [nn.Conv2d(c_in, v, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
                c_in = v
        self.features = nn.Sequential(*layers)


class AlexNetFeatures(nn.Module):
    """torchvision ``alexnet().features``: convs at 0,3,6,8,10 (64/192/384/256/256 channels)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )


def run_taps(features: nn.Sequential, x: torch.Tensor, taps: tuple[int, ...],
             replace: dict[int, nn.Module] | None = None) -> list[torch.Tensor]:
    """Run ``features`` up to max(taps) and return the outputs of the layers whose index is in ``taps``.

    ``replace`` swaps individual layers (DISTS uses L2 pooling instead of the max-pools) without changing the
    module tree, so the torchvision keys stay valid.
    """
    outs = []
    for i, layer in enumerate(features):
        x = (replace or {}).get(i, layer)(x)
        if i in taps:
            outs.append(x)
            if i == taps[-1]:
                break
    return outs


def load_features(module: VGG16Features | AlexNetFeatures, key: str, weights_dir: str | Path) -> None:
    """Load the ``features.*`` part of a torchvision classification checkpoint into ``module``."""
    state = load_weights(key, weights_dir)
    feats = {k: v for k, v in state.items() if k.startswith("features.")}
    load_strict(module, feats, str(Path(weights_dir) / WEIGHT_FILES[key].relpath))


def build_backbone(name: str, weights_dir: str | Path | None) -> VGG16Features | AlexNetFeatures:
    """'vgg16' or 'alexnet', frozen and in eval mode; weights_dir=None keeps the random init (tests)."""
    module = {"vgg16": VGG16Features, "alexnet": AlexNetFeatures}[name]()
    if weights_dir is not None:
        load_features(module, name, weights_dir)
    return module.eval().requires_grad_(False)
