"""Train a DiSCo model: `python train.py recipe=NAME [dotted.key=value ...]` (see README.md, recipes/README.md)."""

from __future__ import annotations

import contextlib
import sys

from disco_train.config.cli import Command
from disco_train.config.recipe import TRAINABLE, to_yaml
from disco_train.io.files import atomic_write

COMMAND = Command("python train.py", "Train the task of a recipe (disco_lora: the LoRA decoder; sketch_dcvc: the "
                  "sketch codec). print_config=true prints the resolved recipe.", task=TRAINABLE)


def train(cfg) -> int:
    from omegaconf import OmegaConf

    from disco_train.train.build import build_datamodule, preflight, resume_checkpoint, run_dir
    from disco_train.train.reliability import RunLock, is_global_rank_zero

    preflight(cfg)  # missing weights, GPU-only strategies, an adapter that does not fit: before anything loads
    ckpt_path = resume_checkpoint(cfg)  # may adopt the name of the run it resumes
    datamodule = build_datamodule(cfg)  # missing shards, shards that do not fit the run: before the model
    out = run_dir(cfg)
    with RunLock(out) if is_global_rank_zero() else contextlib.nullcontext():  # one live process per run folder
        atomic_write(out / "config.yaml", to_yaml(OmegaConf.structured(cfg)))
        return fit(cfg, datamodule, ckpt_path, out)


def fit(cfg, datamodule, ckpt_path, out) -> int:
    import lightning as L

    from datamodules.shards import BadDataError
    from disco_train.train.build import build_module, build_trainer

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
    from disco_train.train.next_steps import next_commands, write_summary

    print(history.summary(global_step=trainer.global_step))
    if history.losses:  # a run resumed at its last step keeps the summary of the steps it ran
        write_summary(out, trainer.global_step, history.losses)
    print(next_commands(cfg, out))
    return 0


def main(argv: list[str]) -> int:
    from disco_train.train.reliability import CheckpointWriteError, RunInUseError

    # Missing shards or weights (named with the key to fix), a run folder in use, a full disk while checkpointing.
    return COMMAND.main(argv, train, errors=(FileNotFoundError, RunInUseError, CheckpointWriteError))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
