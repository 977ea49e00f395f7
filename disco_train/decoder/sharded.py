"""DeepSpeed's sharded checkpoints (a folder per checkpoint, `last.ckpt/`, `step000500.ckpt/`): when one is
complete, and the adapter in it, consolidated by DeepSpeed's own `get_fp32_state_dict_from_zero_checkpoint`.

DeepSpeed writes a checkpoint from every rank at once, and its own `latest` tag file is written by rank 0 without
waiting for the others, so `latest` does not prove the other ranks' files are whole. Training therefore adds
`COMPLETE` (`write_complete`) after DeepSpeed's closing barrier, i.e. once every rank has written every file; it
lists each file with its size. A folder without it, or with a listed file missing or of another size, was cut by a
kill (or damaged later) and is never resumed from or exported.

DeepSpeed's files are pickles that only DeepSpeed's loader reads (it unpickles: read only your own runs' folders).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from disco_train.io.files import atomic_write

COMPLETE = "disco_complete.json"
"""Written last into a DeepSpeed checkpoint folder by rank 0, after every rank finished (see module docstring)."""


def is_sharded(path: str | Path) -> bool:
    """Whether `path` is a DeepSpeed checkpoint folder (whole or not): it holds `latest`, COMPLETE or a tag folder
    of rank files."""
    path = Path(path)
    return path.is_dir() and ((path / "latest").is_file() or (path / COMPLETE).is_file()
                              or any(path.glob("*/*_model_states.pt")))


def write_complete(folder: str | Path, global_step: int, world_size: int) -> None:
    """Mark `folder` complete: every file under it with its size, written atomically (fsync, rename)."""
    folder = Path(folder)
    files = {p.relative_to(folder).as_posix(): p.stat().st_size for p in sorted(folder.rglob("*"))
             if p.is_file() and p.name != COMPLETE and not p.name.endswith(".tmp")}
    atomic_write(folder / COMPLETE, json.dumps({"global_step": global_step, "world_size": world_size,
                                                "files": files}, indent=1) + "\n")


def incomplete(folder: str | Path) -> str | None:
    """Why `folder` is not a complete DeepSpeed checkpoint, or None when it is."""
    folder = Path(folder)
    try:
        record = json.loads((folder / COMPLETE).read_text())
        files = record["files"]
    except FileNotFoundError:
        return f"it has no {COMPLETE}: a save cut by a kill, or not written by disco-train's training"
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"its {COMPLETE} is unreadable ({err})"
    for name, size in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size} bytes, {size} were written"
    if not any(name.endswith("_optim_states.pt") for name in files):
        return "it holds no optimizer state files"
    return None


def saved_step(folder: str | Path) -> int | None:
    """The global step COMPLETE records (None when unreadable)."""
    try:
        return int(json.loads((Path(folder) / COMPLETE).read_text())["global_step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_complete(folder: str | Path, key: str) -> None:
    """ValueError naming `key`=folder and what is wrong, unless it is a complete DeepSpeed checkpoint."""
    why = incomplete(folder)
    if why:
        raise ValueError(f"{key}={folder}: not a complete DeepSpeed checkpoint: {why}")


def read_sharded_adapter(folder: str | Path, key: str) -> dict[str, torch.Tensor]:
    """The LoRA weights of a complete DeepSpeed checkpoint of DiscoLoRAModule, in fp32, as bare peft keys
    (`transformer_blocks.0.attn1.to_q.lora_A.weight`). DeepSpeed consolidates the ranks' partitions."""
    check_complete(folder, key)
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    state = get_fp32_state_dict_from_zero_checkpoint(str(folder), exclude_frozen_parameters=True)
    return module_to_peft_keys(state)


def module_to_peft_keys(state: dict[str, torch.Tensor], adapter: str = "default") -> dict[str, torch.Tensor]:
    """`decoder.transformer.<name>.lora_A.<adapter>.weight` (the training module's parameter names) ->
    `<name>.lora_A.weight` (peft's `get_peft_model_state_dict` naming); other entries are dropped."""
    prefix, out = "decoder.transformer.", {}
    for name, value in state.items():
        if name.startswith(prefix) and "lora_" in name:
            out[name[len(prefix):].replace(f".{adapter}.", ".")] = value
    return out
