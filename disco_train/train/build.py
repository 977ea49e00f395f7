"""Turn a validated config into Lightning objects. Components are chosen by short names, never import paths."""

from __future__ import annotations

import re
import warnings
from datetime import datetime
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from disco_train.config import ConfigError, DiscoLoraConfig
from disco_train.decoder.models import check_weights_present
from disco_train.train.callbacks import LossHistory, StepProgressBar
from disco_train.train.reliability import AtomicCheckpointIO


def run_dir(cfg) -> Path:
    return Path(cfg.output_dir) / cfg.name


def preflight(cfg) -> None:
    """Checks that need the file system or hardware, done before any weights load."""
    if cfg.task == "disco_lora":
        check_weights_present(cfg.model)
        if cfg.lora.init_from:
            check_init_from(cfg)
    check_devices(cfg)


def check_devices(cfg) -> None:
    import torch

    if uses_deepspeed(cfg) and not torch.cuda.is_available():
        raise ConfigError(f"trainer.strategy={cfg.trainer.strategy}: DeepSpeed needs CUDA GPUs and none is visible")
    if cfg.trainer.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError("trainer.accelerator=gpu: no CUDA GPU is visible")


GENERATED_NAME = re.compile(r"(?P<recipe>.+)-\d{8}-\d{6}")
"""A run name the recipe resolver made: `<recipe>-<YYYYmmdd>-<HHMMSS>`."""


def check_init_from(cfg) -> None:
    """lora.init_from must fit the run's adapter (keys, rank, shapes), checked on the meta-device architecture
    before any weights load."""
    from disco_train.decoder.lora import adapter_layout, check_adapter_file
    from disco_train.decoder.models import meta_transformer

    expected = adapter_layout(meta_transformer(cfg.model.name, cfg.model.family), cfg.lora.rank, cfg.lora.targets)
    try:
        check_adapter_file(cfg.lora.init_from, expected, cfg.lora.rank)
    except (ValueError, FileNotFoundError) as err:
        raise ConfigError(str(err)) from None


def resume_checkpoint(cfg) -> Path | None:
    """Resolve `resume`; for 'auto' with a generated name, adopt the newest run of the same recipe. Sets cfg.name."""
    from disco_train.train.reliability import find_resume_checkpoint, latest_run

    if not cfg.resume:
        return None
    if cfg.resume != "auto":
        return check_resume_kind(cfg, Path(cfg.resume))
    run = run_dir(cfg)
    generated = GENERATED_NAME.fullmatch(cfg.name)
    if not find_resume_checkpoint(run) and generated:
        run = latest_run(Path(cfg.output_dir), generated["recipe"]) or run  # name was generated: adopt the newest
        cfg.name = run.name
    found = find_resume_checkpoint(run)
    print(f"resume=auto: continuing from {found}" if found else f"resume=auto: no checkpoint in {run}, starting fresh")
    return found and check_resume_kind(cfg, found)


def check_resume_kind(cfg, path: Path) -> Path:
    """A DeepSpeed run resumes from a complete DeepSpeed checkpoint folder, any other run from a .ckpt file."""
    from disco_train.decoder.sharded import incomplete, is_sharded

    sharded, deepspeed = is_sharded(path), uses_deepspeed(cfg)
    if not sharded and not path.is_file():
        raise ConfigError(f"resume={path}: no such checkpoint file or DeepSpeed checkpoint folder")
    if sharded and incomplete(path):
        raise ConfigError(f"resume={path}: not a complete DeepSpeed checkpoint: {incomplete(path)}")
    if sharded != deepspeed:
        kind = "a DeepSpeed checkpoint folder" if sharded else "a one-file checkpoint"
        raise ConfigError(f"resume={path}: {kind} cannot resume trainer.strategy={cfg.trainer.strategy} (optimizer "
                          f"states are laid out per strategy); start from its adapter with lora.init_from={path}")
    return path


def _strategy(cfg):
    if uses_deepspeed(cfg):
        from disco_train.train.zero import DiscoDeepSpeedStrategy, deepspeed_options

        return DiscoDeepSpeedStrategy(**deepspeed_options(cfg))
    return cfg.trainer.strategy


def _logger(cfg, out: Path, resumed: bool = False):
    kind = cfg.logger.kind
    if kind == "none":
        return False
    if kind == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        return WandbLogger(project=cfg.logger.project, name=cfg.name, save_dir=str(out))
    # A resumed run logs beside the first one: Lightning's CSV writer would otherwise replace metrics.csv.
    version = f"logs-resumed-{datetime.now():%Y%m%d-%H%M%S}" if resumed else "logs"
    return CSVLogger(save_dir=str(out), name="", version=version)


def build_trainer(cfg, resumed: bool = False) -> tuple[L.Trainer, LossHistory]:
    # The frozen base is in eval mode on purpose (no dropout in the teacher path); Lightning warns about it.
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    warnings.filterwarnings("ignore", message=r"`training_step` returned `None`")  # our non-finite skip
    # Lightning 2.6's own call of a torch 2.13 deprecated check, nothing a user can act on.
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    if resumed:  # resuming writes into the run's checkpoint folder on purpose
        warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
    quiet_lightning_tips()
    out = run_dir(cfg)
    history = LossHistory()
    checkpoints = ModelCheckpoint(dirpath=out / "checkpoints", filename="step{step:06d}", auto_insert_metric_name=False,
                                  every_n_train_steps=cfg.checkpoint.every_n_steps, save_top_k=cfg.checkpoint.keep_last,
                                  monitor="step", mode="max", enable_version_counter=False,  # resume finds last.ckpt
                                  # DeepSpeed would rewrite the last.ckpt/ folder in place, where a kill mixes two
                                  # saves: it links to the newest step folder instead
                                  save_last="link" if uses_deepspeed(cfg) else True)
    callbacks = [checkpoints, history, StepProgressBar(refresh_rate=1)]
    plugins = [] if uses_deepspeed(cfg) else [AtomicCheckpointIO()]
    if getattr(cfg, "validation", None) and cfg.validation.every_n_steps and cfg.data.val_shards:
        from disco_train.train.validation import SampleValidation

        callbacks.append(SampleValidation(cfg, out))
    logger = _logger(cfg, out, resumed)
    if logger:
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    tc = cfg.trainer
    trainer = L.Trainer(
        max_steps=tc.max_steps, accelerator=tc.accelerator,
        devices=tc.devices if tc.devices == "auto" else int(tc.devices),
        num_nodes=tc.num_nodes, strategy=_strategy(cfg), precision=tc.precision,
        accumulate_grad_batches=tc.accumulate_grad_batches, gradient_clip_val=cfg.optim.grad_clip or None,
        log_every_n_steps=tc.log_every_n_steps, logger=logger, callbacks=callbacks, default_root_dir=str(out),
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0, plugins=plugins,
    )
    return trainer, history


def quiet_lightning_tips() -> None:
    """Drop Lightning's advertisement for its cloud logger (an info line at every start), and only that line."""
    import logging

    log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _NoTips) for f in log.filters):
        log.addFilter(_NoTips())


class _NoTips:
    def filter(self, record) -> bool:
        return not str(record.msg).startswith("💡 Tip:")


def uses_deepspeed(cfg) -> bool:
    # DeepSpeed writes its own sharded checkpoint folders through its engine.
    return cfg.trainer.strategy.startswith("deepspeed")


def _lora_datamodule(cfg: DiscoLoraConfig):
    from datamodules.latents import LatentSpec
    from datamodules.shards import ShardDataModule
    from disco_train.codec.container import Pattern

    return ShardDataModule(cfg.data, fill=cfg.condition.fill, reference=cfg.condition.reference, seed=cfg.seed,
                           aux=cfg.condition.aux,
                           spec=LatentSpec.of(cfg.model, cfg.data), pattern=Pattern.of_condition(cfg.condition))


def _lora_module(cfg: DiscoLoraConfig):
    from disco_train.train.lora_module import DiscoLoRAModule

    return DiscoLoRAModule(cfg)


def _codec_module(cfg):
    from disco_train.train.codec_module import build_module

    return build_module(cfg)


def _codec_datamodule(cfg):
    from disco_train.train.codec_module import build_datamodule

    return build_datamodule(cfg)


# task -> (module factory, datamodule factory). Each factory takes the task's typed config and imports its
# module only when called.
TASK_BUILDERS = {"disco_lora": (_lora_module, _lora_datamodule), "sketch_dcvc": (_codec_module, _codec_datamodule)}


def _builders(cfg):
    if cfg.task not in TASK_BUILDERS:
        raise ConfigError(f"task: {cfg.task!r} cannot be trained; trainable tasks: {', '.join(TASK_BUILDERS)}")
    return TASK_BUILDERS[cfg.task]


def build_datamodule(cfg):
    return _builders(cfg)[1](cfg)


def build_module(cfg):
    return _builders(cfg)[0](cfg)
