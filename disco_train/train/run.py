"""One training run from a resolved recipe: preflight checks, the datamodule, the run folder (locked, with its
config.yaml), `trainer.fit`, and what a finished run leaves (summary.json, the next commands). The command line is
`disco_train.commands.train` (`python train.py`, `python -m disco_train train`)."""

from __future__ import annotations

import contextlib
import sys

import lightning as L
from omegaconf import OmegaConf

from datamodules.shards import BadDataError
from disco_train.config.recipe import to_yaml
from disco_train.io.files import atomic_write
from disco_train.train.build import (build_datamodule, build_module, build_trainer, preflight, resume_checkpoint,
                                     run_dir)
from disco_train.train.next_steps import next_commands, write_summary
from disco_train.train.reliability import RunLock, is_global_rank_zero


def train(cfg) -> int:
    """Run the training of `cfg` (a resolved recipe of a trainable task); the exit code of the command."""
    preflight(cfg)  # missing weights, GPU-only strategies, an adapter that does not fit: before anything loads
    ckpt_path = resume_checkpoint(cfg)  # may adopt the name of the run it resumes
    datamodule = build_datamodule(cfg)  # missing shards, shards that do not fit the run: before the model
    out = run_dir(cfg)
    with RunLock(out) if is_global_rank_zero() else contextlib.nullcontext():  # one live process per run folder
        atomic_write(out / "config.yaml", to_yaml(OmegaConf.structured(cfg)))
        return fit(cfg, datamodule, ckpt_path, out)


def fit(cfg, datamodule, ckpt_path, out) -> int:
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    module = build_module(cfg)
    print(f"{cfg.task}: {module.describe()}; run in {out}")
    trainer, history = build_trainer(cfg, resumed=ckpt_path is not None)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    except BadDataError as err:  # the shards cannot feed training: the user's data to fix, like a config error
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (FloatingPointError, RuntimeError) as err:  # non-finite streak: say why, keep the checkpoints
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(history.summary(global_step=trainer.global_step))
    if history.losses:  # a run resumed at its last step keeps the summary of the steps it ran
        write_summary(out, trainer.global_step, history.losses)
    print(next_commands(cfg, out))
    return 0
