"""Sketch modality of DiSCo (§3.1): InformativeDrawings line drawings (Chan, Durand, Isola, CVPR 2022).

The generator is re-implemented in plain torch (torchvision cannot be imported next to the CPU torch, and the
upstream `model.py` imports it at module level). Its submodule layout mirrors upstream `model.Generator` so the
official `netG_A_latest.pth` (a bare state dict: 24 conv weight/bias tensors, 4,290,945 parameters; the instance
norms are affine-free and keep no running stats) loads strictly, unchanged.

Conventions, from upstream `test.py` / `dataset.py`:

* input: RGB in [0, 1] (`ToTensor()`), no mean/std normalisation;
* output: one channel through a sigmoid, **dark lines (~0) on a white background (~1)**, which is what upstream
  saves. We keep that polarity (ControlNet's lineart annotator inverts it; DiSCo's sketch codec is trained on
  whatever `prepare` writes, so the choice only has to be consistent, and it is fixed here);
* upstream resizes the shorter side to 256 (bicubic) before inference. `extract_sketches(..., size=256)` does the
  same and resizes the drawing back to the clip size; the default `size=None` runs at the clip's own resolution,
  which keeps strokes aligned with the pixels the decoder is conditioned on.

Padding: the released InformativeDrawings code and its copies (ControlNet's lineart annotator, controlnet-aux)
pad with `ReflectionPad2d`; one snapshot of upstream `model.py` uses `ReplicationPad2d`. Padding layers hold no
weights, so both load the same file; `padding="replicate"` selects the other variant.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from disco_train.io.hub import repo_ref, resolve_weights

DEFAULT_PATH = "checkpoints/informative_drawings/netG_A_latest.pth"
NUM_PARAMETERS = 4_290_945
NUM_TENSORS = 24
N_RESIDUAL_BLOCKS = 3  # upstream test.py/train.py default `--n_blocks 3` (the class default of 9 is unused)
MULTIPLE = 4  # two stride-2 downsamplings: H and W must be multiples of 4 to come back at the same size

_PADS = {"reflect": nn.ReflectionPad2d, "replicate": nn.ReplicationPad2d}


class ResidualBlock(nn.Module):
    def __init__(self, features: int, pad: type[nn.Module]):
        super().__init__()
        self.conv_block = nn.Sequential(
            pad(1), nn.Conv2d(features, features, 3), nn.InstanceNorm2d(features), nn.ReLU(inplace=True),
            pad(1), nn.Conv2d(features, features, 3), nn.InstanceNorm2d(features),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class SketchGenerator(nn.Module):
    """Upstream `Generator(input_nc=3, output_nc=1, n_residual_blocks=3, sigmoid=True)`: [B,3,H,W] in [0,1] ->
    [B,1,H,W] in [0,1]. Attribute names (`model0`..`model4`, Sequential indices) are the state-dict keys."""

    def __init__(self, input_nc: int = 3, output_nc: int = 1, n_residual_blocks: int = N_RESIDUAL_BLOCKS,
                 padding: str = "reflect", width: int = 64):
        """`width`: channels of the first layer (upstream 64; the stages have width, 2·width, 4·width). Only the
        upstream width loads the official weights; a smaller one is the demo's random stand-in."""
        super().__init__()
        if padding not in _PADS:
            raise ValueError(f"padding must be one of {sorted(_PADS)}, got {padding!r}")
        pad, (c1, c2, c4) = _PADS[padding], (width, 2 * width, 4 * width)
        self.model0 = nn.Sequential(pad(3), nn.Conv2d(input_nc, c1, 7), nn.InstanceNorm2d(c1), nn.ReLU(inplace=True))
        down = []
        for cin, cout in ((c1, c2), (c2, c4)):
            down += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.InstanceNorm2d(cout), nn.ReLU(inplace=True)]
        self.model1 = nn.Sequential(*down)
        self.model2 = nn.Sequential(*[ResidualBlock(c4, pad) for _ in range(n_residual_blocks)])
        up = []
        for cin, cout in ((c4, c2), (c2, c1)):
            up += [nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1), nn.InstanceNorm2d(cout),
                   nn.ReLU(inplace=True)]
        self.model3 = nn.Sequential(*up)
        self.model4 = nn.Sequential(pad(3), nn.Conv2d(c1, output_nc, 7), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model4(self.model3(self.model2(self.model1(self.model0(x)))))


def _check_keys(model: nn.Module, state: dict, path: Path) -> None:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    missing, unexpected = sorted(expected.keys() - got.keys()), sorted(got.keys() - expected.keys())
    wrong = sorted(f"{k}: {got[k]} (expected {expected[k]})" for k in expected.keys() & got.keys()
                   if got[k] != expected[k])
    if missing or unexpected or wrong:
        raise ValueError(f"{path} is not an InformativeDrawings netG_A generator state dict "
                         f"(n_blocks={N_RESIDUAL_BLOCKS}): missing keys {missing}, unexpected keys {unexpected}, "
                         f"wrong shapes {wrong}")


def load_sketch_generator(path: str | Path = DEFAULT_PATH, device: str | torch.device = "cpu",
                          padding: str = "reflect") -> SketchGenerator:
    """The generator with the weights at `path` (a bare state dict, as upstream saves it; a Hub file id
    `org/repo/netG_A_latest.pth` is fetched), in eval mode."""
    if repo_ref(str(path)):
        path = resolve_weights(path, "sketch_weights", "InformativeDrawings generator")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"InformativeDrawings weights not found at {path}; put the official generator "
                                f"netG_A_latest.pth (from the style folder of the upstream model.zip) at {DEFAULT_PATH}"
                                f" or point sketch_weights at it (see checkpoints/README.md)")
    # weights_only: a .pth is a pickle; never execute code from a weights file.
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # EOFError, UnpicklingError, zip errors: all mean "not a usable weights file"
        raise ValueError(f"{path} could not be read as a torch state dict ({type(err).__name__}: {err}); "
                         f"expected the official InformativeDrawings netG_A_latest.pth") from err
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # tolerate a wrapped dict; the keys are still checked strictly below
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict (got {type(state).__name__})")
    model = SketchGenerator(padding=padding)
    _check_keys(model, state, path)
    model.load_state_dict(state, strict=True)
    return model.to(device).eval().requires_grad_(False)


def _to_input(frames: np.ndarray, device: torch.device, size: int | None) -> tuple[torch.Tensor, int, int]:
    """[B,3,H',W'] in [0,1] padded to multiples of 4, and (H', W') before padding."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).to(device).permute(0, 3, 1, 2).float() / 255.0
    if size is not None:
        h, w = x.shape[-2:]
        scale = size / min(h, w)
        x = F.interpolate(x, size=(max(1, round(h * scale)), max(1, round(w * scale))), mode="bicubic",
                          antialias=True, align_corners=False).clamp_(0.0, 1.0)
    # Pad to a multiple of 4 (replicate: no artificial border lines) and crop back after the generator.
    h, w = x.shape[-2:]
    ph, pw = -h % MULTIPLE, -w % MULTIPLE
    return (F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x), h, w


@torch.no_grad()
def extract_sketches(generator: nn.Module, clip: np.ndarray, batch_size: int = 8,
                     size: int | None = None) -> np.ndarray:
    """uint8 RGB clip [T,H,W,3] -> uint8 line drawings [T,H,W] (dark lines on white), `batch_size` frames a pass.

    `size`: run the generator with the shorter side resized to `size` (upstream uses 256), then resize back."""
    clip = np.asarray(clip)
    if clip.ndim != 4 or clip.shape[-1] != 3 or clip.dtype != np.uint8:
        raise ValueError(f"expected a uint8 clip [T,H,W,3], got {clip.dtype} {clip.shape}")
    t, h, w = clip.shape[:3]
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    param = next(generator.parameters())
    out = np.empty((t, h, w), np.uint8)
    for start in range(0, t, batch_size):
        x, rh, rw = _to_input(clip[start:start + batch_size], param.device, size)
        y = generator(x.to(param.dtype)).float()[..., :rh, :rw]
        if (rh, rw) != (h, w):
            y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        out[start:start + batch_size] = (y[:, 0].clamp(0.0, 1.0) * 255.0).round().byte().cpu().numpy()
    return out
