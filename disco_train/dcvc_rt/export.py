"""Export finetuned DCVC-RT weights in the official checkpoint format and as safetensors.

    python -m disco_train dcvc-rt export ckpt=runs/<name>/checkpoints/last.ckpt out=<dir>

writes, into <dir>, under the official file names so that `load_codec(<dir>)` and `load_intra/load_inter(
ckpt_dir=<dir>)` use them directly (and a later training stage can start from them, `model.init_from=<dir>`):
- cvpr2025_image.pth.tar / cvpr2025_video.pth.tar: {'state_dict': {key: fp32 tensor}}, official key layout,
  which the official test_video.py and `loading.load_model` load strictly;
- cvpr2025_image.safetensors / cvpr2025_video.safetensors: the same tensors;
- export.json: where they came from.
A Lightning checkpoint of the `sketch_dcvc` task holds both networks under the prefixes 'intra.' and 'inter.'.
"""

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from disco_train.config.cli import REQUIRED, Command, moved

from .inter import DMC
from .intra import DMCI
from .loading import CHECKPOINT_FILES, check_state_dict, load_model

PREFIXES = {"intra": "intra.", "inter": "inter."}
SAFETENSORS_FILES = {kind: name.replace(".pth.tar", ".safetensors") for kind, name in CHECKPOINT_FILES.items()}
_MODEL_CLASSES = {"intra": DMCI, "inter": DMC}


def split_lightning_state_dict(state_dict: dict) -> dict:
    """{'intra.x': t, 'inter.y': u, ...} -> {'intra': {'x': t}, 'inter': {'y': u}}; other keys are ignored."""
    out = {kind: {k[len(p):]: v for k, v in state_dict.items() if k.startswith(p)} for kind, p in PREFIXES.items()}
    empty = [kind for kind, sd in out.items() if not sd]
    if empty:
        raise KeyError(f"no '{PREFIXES[empty[0]]}*' keys in the checkpoint; is it a sketch_dcvc checkpoint?")
    return out


def read_lightning_checkpoint(path) -> tuple[dict, dict]:
    """A sketch_dcvc Lightning .ckpt -> ({'intra': sd, 'inter': sd}, info). Loaded with weights_only=True."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Lightning checkpoint not found: {path}")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if "state_dict" not in ckpt:
        raise KeyError(f"{path} has no 'state_dict'; not a Lightning checkpoint")
    info = {"source": str(path), "global_step": ckpt.get("global_step"), "epoch": ckpt.get("epoch")}
    return split_lightning_state_dict(ckpt["state_dict"]), info


def _clean(state_dict: dict) -> dict:
    return {k: v.detach().to("cpu", torch.float32).contiguous().clone() for k, v in state_dict.items()}


def export_state_dicts(state_dicts: dict, out_dir, info: dict = None) -> Path:
    """Write {'intra': sd, 'inter': sd} in the official format and as safetensors; checks keys and shapes first."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for kind, sd in state_dicts.items():
        sd = _clean(sd)
        with torch.device("meta"):  # shapes only: no 66M-parameter init
            reference = _MODEL_CLASSES[kind]()
        check_state_dict(reference, sd, source=f"exported {kind} weights")
        torch.save({"state_dict": sd}, out / CHECKPOINT_FILES[kind])
        save_file(sd, str(out / SAFETENSORS_FILES[kind]), metadata={"format": "pt", "model": kind})
    (out / "export.json").write_text(json.dumps({"files": {**CHECKPOINT_FILES, **{
        f"{k}_safetensors": v for k, v in SAFETENSORS_FILES.items()}}, **(info or {})}, indent=2) + "\n")
    return out


def export_models(intra: DMCI, inter: DMC, out_dir, info: dict = None) -> Path:
    return export_state_dicts({"intra": intra.state_dict(), "inter": inter.state_dict()}, out_dir, info)


def export_checkpoint(ckpt_path, out_dir) -> Path:
    """Lightning checkpoint -> export folder."""
    state_dicts, info = read_lightning_checkpoint(ckpt_path)
    return export_state_dicts(state_dicts, out_dir, info)


def load_safetensors_model(kind: str, path, device="cpu", dtype=torch.float32) -> torch.nn.Module:
    """Build DMCI/DMC and load exported safetensors strictly (clear key/shape errors), in eval mode."""
    if kind not in _MODEL_CLASSES:
        raise ValueError(f"kind must be one of {sorted(_MODEL_CLASSES)}, got {kind!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"DCVC-RT {kind} safetensors not found: {path}")
    sd = load_file(str(path))
    model = _MODEL_CLASSES[kind]()
    check_state_dict(model, sd, source=str(path))
    model.load_state_dict(sd, strict=True)
    return model.to(device=device, dtype=dtype).eval()


def load_exported(out_dir, device="cpu", dtype=torch.float32) -> tuple[DMCI, DMC]:
    """Both networks from an export folder, through the official strict loader."""
    return (load_model("intra", ckpt_dir=out_dir, device=device, dtype=dtype),
            load_model("inter", ckpt_dir=out_dir, device=device, dtype=dtype))


@dataclass
class ExportArgs:
    ckpt: str = REQUIRED
    """Lightning checkpoint of a sketch_dcvc run (both networks, prefixes 'intra.' and 'inter.')."""
    out: str = REQUIRED
    """Folder to write the official-format and safetensors files into."""


COMMAND = Command("python -m disco_train dcvc-rt export", "A sketch_dcvc checkpoint -> the official "
                  "cvpr2025_{image,video}.pth.tar (+ .safetensors).", ExportArgs)


def main(argv: list[str]) -> int:
    def run(a: ExportArgs) -> None:
        out = export_checkpoint(a.ckpt, a.out)
        print(f"exported {', '.join(CHECKPOINT_FILES.values())} (+ .safetensors) to {out}")

    return COMMAND.main(argv, run, (FileNotFoundError, KeyError, RuntimeError))


if __name__ == "__main__":
    moved("disco_train.dcvc_rt.export", COMMAND.prog)
    sys.exit(main(sys.argv[1:]))
