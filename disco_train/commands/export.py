"""`python -m disco_train export ckpt=<.ckpt> out=<dir>`: a training checkpoint -> an export folder (the library:
`disco_train.train.export`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from disco_train.config.cli import REQUIRED, Command
from disco_train.decoder.export import ExportError, describe_settings, read_manifest
from disco_train.decoder.manifest import CODEC_KEYS
from disco_train.train.export import export


@dataclass
class ExportConfig:
    ckpt: str = REQUIRED
    """Training checkpoint (runs/NAME/checkpoints/X.ckpt: a file, or a DeepSpeed run's checkpoint folder)."""
    out: str = REQUIRED
    """Export folder to create."""
    config: str = ""
    """The run's resolved config ('' = config.yaml of the checkpoint's run folder)."""
    sketch_codec: str = ""
    """Folder of the finetuned DCVC-RT sketch codec to ship with the LoRA (a sketch_dcvc run's export)."""
    ds: Optional[Union[int, list[int]]] = None
    """D_s of the training data, or a list (only needed when the training shards are not on this machine: then the
    trained set is every combination of the values given; with shards, it replaces D_s in each point found)."""
    dt: Optional[Union[int, list[int]]] = None
    """D_t of the training data, or a list (idem)."""
    codec: Optional[str] = None
    """Degraded-video codec of the training data (idem)."""
    qp: Optional[Union[int, list[int]]] = None
    """QP of the training data (the QP used: DCVC-RT records 32 for -1), or a list (idem)."""
    crf: Optional[Union[int, list[int]]] = None
    """CRF of the training data, or a list (idem)."""
    force: bool = False
    """Replace an existing export folder."""


COMMAND = Command("python -m disco_train export", "A training checkpoint -> LoRA (diffusers + ComfyUI safetensors) "
                  "+ disco.json, checked against the base architecture.", ExportConfig)


def main(argv: list[str]) -> int:
    def run(a: ExportConfig) -> int:
        codec = {k: getattr(a, k) for k in CODEC_KEYS}
        out = export(a.ckpt, a.out, a.config or None, a.sketch_codec or None, codec, force=a.force)
        manifest = read_manifest(out, verify=False)
        print(f"exported {out}: " + ", ".join(f"{name} ({(out / name).stat().st_size:,} B)"
                                                for name in manifest.files))
        trained = manifest.trained_settings
        print(f"trained on {len(trained)} rate point(s): {describe_settings(trained)}")
        return 0

    return COMMAND.main(argv, run, errors=(ExportError, ValueError, OSError))
