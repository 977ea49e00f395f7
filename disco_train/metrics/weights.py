"""Locations of the metric network weights and safe loading.

All files live in one folder, ``checkpoints/metrics/`` by default (``metrics.weights_dir=`` on the evaluate
command). They are the standard upstream files, unchanged; nothing is downloaded at run time.

| key          | file (relative to weights_dir)              | from |
|--------------|---------------------------------------------|------|
| vgg16        | vgg16-397923af.pth                          | torchvision VGG16 ImageNet weights |
| alexnet      | alexnet-owt-7be5be79.pth                    | torchvision AlexNet ImageNet weights |
| lpips_alex   | lpips/v0.1/alex.pth                         | lpips package, lpips/weights/v0.1/alex.pth |
| lpips_vgg    | lpips/v0.1/vgg.pth                          | lpips package, lpips/weights/v0.1/vgg.pth |
| dists        | dists/weights.pt                            | DISTS_pytorch/weights.pt (alpha, beta) |
| inception    | pt_inception-2015-12-05-6726825d.pth        | pytorch-fid FID Inception (TF 2015-12-05 port) |
| i3d          | i3d_pretrained_400.pt                       | VideoGPT/TATS I3D Kinetics-400 (TF-hub port) |
| pwcnet       | pwcnet/network-default.pytorch              | sniklaus/pytorch-pwc PWC-Net "default" (FloLPIPS' flow) |
| pips2        | pips2/pips2_weights.pth                     | FVMD's PIPs++ release (``model_state_dict`` inside) |

Files are read with ``torch.load(..., weights_only=True)`` only: these are plain state dicts, and
weights_only refuses pickled code, so a tampered download cannot execute anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch

from disco_train.io.hub import repo_ref, resolve_weights


@dataclass(frozen=True)
class WeightFile:
    relpath: str
    description: str
    source: str
    size: str = ""  # expected size, named in the missing-file message
    state_key: str | None = None  # training checkpoints keep the weights under this key; a bare state dict also loads


WEIGHT_FILES: dict[str, WeightFile] = {
    "vgg16": WeightFile("vgg16-397923af.pth", "torchvision VGG16 (ImageNet) backbone for LPIPS-vgg and DISTS",
                        "https://download.pytorch.org/models/vgg16-397923af.pth"),
    "alexnet": WeightFile("alexnet-owt-7be5be79.pth", "torchvision AlexNet (ImageNet) backbone for LPIPS-alex",
                          "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"),
    "lpips_alex": WeightFile("lpips/v0.1/alex.pth", "LPIPS v0.1 linear heads (alex)",
                             "pip package lpips==0.1.4: lpips/weights/v0.1/alex.pth "
                             "(github.com/richzhang/PerceptualSimilarity)"),
    "lpips_vgg": WeightFile("lpips/v0.1/vgg.pth", "LPIPS v0.1 linear heads (vgg)",
                            "pip package lpips==0.1.4: lpips/weights/v0.1/vgg.pth "
                            "(github.com/richzhang/PerceptualSimilarity)"),
    "dists": WeightFile("dists/weights.pt", "DISTS alpha/beta weights",
                        "github.com/dingkeyan93/DISTS: DISTS_pytorch/weights.pt (also in the dists-pytorch wheel)"),
    "inception": WeightFile("pt_inception-2015-12-05-6726825d.pth", "FID InceptionV3 (pytorch-fid)",
                            "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                            "pt_inception-2015-12-05-6726825d.pth"),
    "i3d": WeightFile("i3d_pretrained_400.pt", "I3D Kinetics-400 for FVD (VideoGPT/TATS port of the TF-hub model)",
                      "VideoGPT's Google Drive file id 1mQK8KD8G6UWRa5t87SRMm5PVXtlpneJT, or convert "
                      "tfhub.dev/deepmind/i3d-kinetics-400/1 with TATS tats/fvd/convert_tf_pretrained.py"),
    # 9,374,274 float32 parameters x 4 bytes = 37.5 MB of tensors
    "pwcnet": WeightFile("pwcnet/network-default.pytorch", "PWC-Net optical flow for FloLPIPS",
                         "http://content.sniklaus.com/github/pytorch-pwc/network-default.pytorch "
                         "(sniklaus/pytorch-pwc, the official pwc_net.caffemodel converted; FloLPIPS loads this file)",
                         size="about 37.5 MB"),
    # 17,565,410 float32 parameters x 4 bytes = 70.3 MB of tensors; an optimizer state saved beside them adds more
    "pips2": WeightFile("pips2/pips2_weights.pth", "PIPs++ point tracker for FVMD",
                        "https://github.com/ljh0v0/FVMD-frechet-video-motion-distance/releases/download/pips2_weights/"
                        "pips2_weights.pth (the checkpoint FVMD downloads)",
                        size="at least 70.3 MB", state_key="model_state_dict"),
}


def weight_path(key: str, weights_dir: str | Path) -> Path:
    """The file's local path; with a Hub repo id as weights_dir (the files under the same relative paths in the
    repo), the file is fetched into the Hugging Face cache first."""
    if key not in WEIGHT_FILES:
        raise KeyError(f"unknown weight file key {key!r}; known: {sorted(WEIGHT_FILES)}")
    ref = repo_ref(str(weights_dir))
    if ref is not None and ref.filename is None:
        spec = WEIGHT_FILES[key]
        return resolve_weights(f"{weights_dir}/{spec.relpath}", "weights_dir", spec.description)
    return Path(weights_dir) / WEIGHT_FILES[key].relpath


def load_weights(key: str, weights_dir: str | Path) -> dict[str, torch.Tensor]:
    """Load one of WEIGHT_FILES as a flat {name: tensor} dict, with a clear message if it is absent."""
    path = weight_path(key, weights_dir)
    spec = WEIGHT_FILES[key]
    if not path.is_file():
        size = f" ({spec.size})" if spec.size else ""
        raise FileNotFoundError(
            f"missing weights for {spec.description}: {path} does not exist. "
            f"Get it{size} from {spec.source} and save it as {path} (or point metrics.weights_dir= at the folder holding "
            f"{spec.relpath})."
        )
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if spec.state_key is not None and isinstance(obj, Mapping) and spec.state_key in obj:
        obj = obj[spec.state_key]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path} is not a state dict of tensors (got {type(obj).__name__})")
    return {k: v.detach() for k, v in obj.items()}


def load_strict(module: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` with a message naming the file and the offending keys/shapes."""
    state = dict(state)
    # BatchNorm's num_batches_tracked counter only matters for training with momentum=None; files converted
    # from TF (FID Inception, I3D) may lack it, so take the module's own value instead of failing.
    for key, value in module.state_dict().items():
        if key.endswith("num_batches_tracked"):
            state.setdefault(key, value)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{source} does not match {type(module).__name__}: {exc}") from None
