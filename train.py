"""Train a DiSCo model: `python train.py recipe=NAME [dotted.key=value ...]` (see README.md, recipes/README.md)."""

from __future__ import annotations

import sys

from disco_train.config.cli import Command
from disco_train.config.recipe import to_yaml

COMMAND = Command("python train.py", "Train the task of a recipe (disco_lora: the LoRA decoder; sketch_dcvc: the "
                  "sketch codec). print_config=true prints the resolved recipe.", task="*")


def train(cfg) -> int:
    import lightning as L
    from omegaconf import OmegaConf

    from disco_train.train.build import build_datamodule, build_module, build_trainer, preflight, resume_checkpoint
    from disco_train.train.build import run_dir

    preflight(cfg)  # missing weights, GPU-only strategies: before anything loads
    ckpt_path = resume_checkpoint(cfg)  # may adopt the name of the run it resumes
    datamodule = build_datamodule(cfg)  # missing shards fail here, before the model
    out = run_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(to_yaml(OmegaConf.structured(cfg)))
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    module = build_module(cfg)
    print(f"{cfg.task}: {module.describe()}; run in {out}")
    trainer, history = build_trainer(cfg, resumed=ckpt_path is not None)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    except (FloatingPointError, RuntimeError) as err:  # non-finite streak, too much bad data: say why, keep ckpts
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(history.summary())
    return 0


def main(argv: list[str]) -> int:
    # FileNotFoundError: missing shards or weights, named with the key to fix.
    return COMMAND.main(argv, train, errors=(FileNotFoundError,))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
