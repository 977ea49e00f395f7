"""Loading official DCVC-RT checkpoints (`cvpr2025_image.pth.tar`, `cvpr2025_video.pth.tar`).

The official `test_video.py` does: torch.load(weights_only=True); unwrap 'state_dict', then 'net';
strip a 'module.' prefix; load_state_dict(strict=True). We do the same, with errors that say
which file is missing and which keys differ.
"""

import json
from pathlib import Path

import torch

from disco_train.config.codec import DCVC_RT_DIR

from .inter import DMC
from .intra import DMCI

DEFAULT_CKPT_DIR = Path(DCVC_RT_DIR)
CHECKPOINT_FILES = {"intra": "cvpr2025_image.pth.tar", "inter": "cvpr2025_video.pth.tar"}
_MODEL_CLASSES = {"intra": DMCI, "inter": DMC}
_MANIFEST_DIR = Path(__file__).resolve().parent / "manifests"
_DOWNLOAD_HINT = ("Download it from the DCVC-RT release linked in microsoft/DCVC "
                  "(DCVC-family/DCVC-RT/README.md) and place it at")


class CheckpointMismatchError(RuntimeError):
    """The checkpoint's keys or shapes differ from the model's state_dict."""


def manifest(kind: str) -> dict:
    """{key: shape} of the official model (`intra` = DMCI, `inter` = DMC), in registration order."""
    _check_kind(kind)
    with open(_MANIFEST_DIR / f"{kind}.json") as f:
        return json.load(f)["keys"]


def _check_kind(kind: str):
    if kind not in CHECKPOINT_FILES:
        raise ValueError(f"kind must be one of {sorted(CHECKPOINT_FILES)}, got {kind!r}")


def unwrap_state_dict(ckpt) -> dict:
    """Official unwrapping: 'state_dict' then 'net' if present; drop a leading 'module.'."""
    if isinstance(ckpt, dict) and "state_dict" in ckpt:
        ckpt = ckpt["state_dict"]
    if isinstance(ckpt, dict) and "net" in ckpt:
        ckpt = ckpt["net"]
    if not isinstance(ckpt, dict):
        raise CheckpointMismatchError(f"checkpoint holds a {type(ckpt).__name__}, not a state dict")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in ckpt.items()}


def check_state_dict(model: torch.nn.Module, state_dict: dict, source: str = "checkpoint"):
    """Raise CheckpointMismatchError naming missing, unexpected and wrongly shaped keys."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [f"{k}: {tuple(state_dict[k].shape)} != {tuple(expected[k].shape)}"
              for k in expected if k in state_dict and tuple(state_dict[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or shapes:
        def show(items):
            return ", ".join(items[:20]) + (f" ... (+{len(items) - 20} more)" if len(items) > 20 else "")
        lines = [f"{source} does not match {type(model).__name__}:"]
        if missing:
            lines.append(f"  missing keys ({len(missing)}): {show(missing)}")
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): {show(unexpected)}")
        if shapes:
            lines.append(f"  shape mismatches ({len(shapes)}): {show(shapes)}")
        raise CheckpointMismatchError("\n".join(lines))


def checkpoint_path(kind: str, ckpt_dir=None) -> Path:
    _check_kind(kind)
    return Path(ckpt_dir if ckpt_dir is not None else DEFAULT_CKPT_DIR) / CHECKPOINT_FILES[kind]


def load_model(kind: str, path=None, ckpt_dir=None, device="cpu", dtype=torch.float32) -> torch.nn.Module:
    """Build DMCI (`intra`) or DMC (`inter`) and load an official checkpoint strictly, in eval mode.

    `path` wins over `ckpt_dir`; the default is checkpoints/dcvc_rt/<official file name>.
    """
    _check_kind(kind)
    path = Path(path) if path is not None else checkpoint_path(kind, ckpt_dir)
    if not path.is_file():
        raise FileNotFoundError(
            f"DCVC-RT {kind} checkpoint not found: {path}. {_DOWNLOAD_HINT} "
            f"{checkpoint_path(kind)} (or pass ckpt_dir=/ path=).")
    state_dict = unwrap_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    model = _MODEL_CLASSES[kind]()
    check_state_dict(model, state_dict, source=str(path))
    model.load_state_dict(state_dict, strict=True)
    return model.to(device=device, dtype=dtype).eval()


def load_intra(path=None, ckpt_dir=None, device="cpu", dtype=torch.float32) -> DMCI:
    return load_model("intra", path, ckpt_dir, device, dtype)


def load_inter(path=None, ckpt_dir=None, device="cpu", dtype=torch.float32) -> DMC:
    return load_model("inter", path, ckpt_dir, device, dtype)
