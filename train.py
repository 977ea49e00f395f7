"""Train a DiSCo model: `python train.py recipe=NAME [dotted.key=value ...]` (see README.md, recipes/README.md)."""

from __future__ import annotations

import sys

import lightning as L

from disco_train.build import build_datamodule, build_module, build_trainer, preflight, resume_checkpoint, run_dir
from disco_train.config import ConfigError
from disco_train.recipe import resolve, to_yaml


def main(argv: list[str]) -> int:
    try:
        cfg, resolved, recipe = resolve(argv)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if cfg.print_config:
        print(to_yaml(resolved), end="")
        return 0
    try:
        preflight(cfg)  # missing weights, GPU-only strategies: before anything loads
        ckpt_path = resume_checkpoint(cfg, recipe)
        resolved.name = cfg.name
        datamodule = build_datamodule(cfg)  # missing shards fail here, before the model
    except (ConfigError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = run_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(to_yaml(resolved))
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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
