"""Surviving kills and bad numbers: atomic checkpoints, resume discovery, RNG state, non-finite step accounting."""

from __future__ import annotations

import errno
import os
import random
import re
import zipfile
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from disco_train.io.files import LockHeld, atomic_open, hold_lock, release_lock


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (a full disk, a read-only folder); the partial file was removed."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Written through `io.files.atomic_open` (a .tmp beside it, fsync, rename): a reader sees the old checkpoint or
    the new one, never half of one. A write that fails (ENOSPC: the disk is full) removes its .tmp and says so; the
    older checkpoints stay."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        path = Path(path)
        try:
            with atomic_open(path) as handle:
                torch.save(checkpoint, handle)
        except (OSError, RuntimeError) as err:  # torch.save reports a full disk as RuntimeError("... write ...")
            full = getattr(err, "errno", None) == errno.ENOSPC or "No space left" in str(err)
            why = "the disk is full (ENOSPC)" if full else f"{type(err).__name__}: {err}"
            raise CheckpointWriteError(f"could not write checkpoint {path}: {why}; the partial file was removed "
                                       f"and the previous checkpoints in {path.parent} are intact") from None

    def load_checkpoint(self, path, map_location=None, weights_only=None):
        from disco_train.decoder.lora import load_torch_file

        return load_torch_file(path, "resume", map_location or "cpu")


class RunLock:
    """An exclusive lock on a run folder for the lifetime of its training process (`io.files.hold_lock`: the
    kernel drops it when the process dies, forked DataLoader workers do not keep it). A second live process on the
    same folder would die on the first one's checkpoint .tmp files and overwrite its config.yaml; it is refused."""

    def __init__(self, run_dir: Path):
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / ".lock"
        try:
            self.handle = hold_lock(self.path)
        except LockHeld as held:
            raise RunInUseError(f"{run_dir} is in use by a live training process ({held.holder}); choose another "
                                f"name= or wait for it to finish (resume=auto continues it afterwards)") from None

    def release(self) -> None:
        release_lock(self.handle)

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class RunInUseError(RuntimeError):
    """The run folder is locked by a live training process."""


def is_global_rank_zero() -> bool:
    """Whether this process is the first of its run (torchrun and SLURM set RANK / SLURM_PROCID; Lightning's own
    launcher starts the others with LOCAL_RANK > 0 on NODE_RANK >= 0)."""
    for key in ("RANK", "SLURM_PROCID"):
        if key in os.environ:
            return int(os.environ[key]) == 0
    return int(os.environ.get("LOCAL_RANK", 0)) == 0 and int(os.environ.get("NODE_RANK", 0)) == 0


def readable_checkpoint(path: Path) -> bool:
    """A torch checkpoint is a zip whose central directory sits at the end: a truncated file has none."""
    try:
        with zipfile.ZipFile(path) as archive:
            return bool(archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _step_of(path: Path) -> int:
    match = re.search(r"step(\d+)", path.name)
    return int(match.group(1)) if match else -1


def _saved_at(path: Path) -> int:
    """When a checkpoint was completed: a file's mtime, a DeepSpeed folder's completion mark's (0: none)."""
    from disco_train.decoder.sharded import COMPLETE

    mark = path / COMPLETE if path.is_dir() else path
    return mark.stat().st_mtime_ns if mark.is_file() else 0


def complete_checkpoint(path: Path) -> bool:
    """A whole one-file checkpoint, or a DeepSpeed checkpoint folder every rank finished writing."""
    from disco_train.decoder.sharded import incomplete

    return incomplete(path) is None if path.is_dir() else readable_checkpoint(path)


def find_resume_checkpoint(run_dir: Path) -> Path | None:
    """Newest complete checkpoint of a run (last.ckpt or step*.ckpt, files or DeepSpeed folders); .tmp files and
    DeepSpeed folders a kill cut (`disco_train.decoder.sharded`) never count.

    Newest by completion time (each file appears whole by rename, a folder is marked complete last), then by step:
    Lightning writes last.ckpt before the step file of the same step, so a kill between the two leaves the step
    file as the newest. (A DeepSpeed run's last.ckpt is a link to its newest step folder.)
    """
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return None
    candidates = [p for p in folder.glob("*.ckpt") if p.name == "last.ckpt" or p.name.startswith("step")]
    candidates.sort(key=lambda p: (_saved_at(p), _step_of(p)), reverse=True)
    return next((p for p in candidates if complete_checkpoint(p)), None)


def latest_run(output_dir: Path, recipe: str) -> Path | None:
    """The most recently modified run folder of this recipe that has a resumable checkpoint."""
    runs = [p for p in Path(output_dir).glob(f"{recipe}-*") if find_resume_checkpoint(p)]
    return max(runs, key=lambda p: p.stat().st_mtime) if runs else None


def rng_state() -> dict:
    """Python, numpy and torch RNG states, storable under weights_only loading (tensors and plain types)."""
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": repr(random.getstate()),
             "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                       "has_gauss": int(np_state[3]), "gauss": float(np_state[4])}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    import ast

    torch.set_rng_state(state["torch"])
    random.setstate(ast.literal_eval(state["python"]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class NonFiniteGuard:
    """Counts skipped steps; raises once `limit` happen in a row (the last good checkpoint stays on disk)."""

    def __init__(self, limit: int):
        self.limit, self.total, self.in_a_row = limit, 0, 0

    def record(self, finite: bool, step: int) -> None:
        if finite:
            self.in_a_row = 0
            return
        self.total += 1
        self.in_a_row += 1
        if self.in_a_row >= self.limit:
            raise FloatingPointError(
                f"{self.in_a_row} steps in a row had a non-finite loss or gradient (last at step {step}); "
                f"training stopped. The last good checkpoint is kept; try a lower optim.lr or check the data.")
