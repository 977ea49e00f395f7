"""`python train.py recipe=NAME [dotted.key=value ...]` (= `python -m disco_train train`): train the task of a
recipe; the run itself is `disco_train.train.run`."""

from __future__ import annotations

from disco_train.config.cli import Command
from disco_train.config.recipe import TRAINABLE

COMMAND = Command("python train.py", "Train the task of a recipe (disco_lora: the LoRA decoder; sketch_dcvc: the "
                  "sketch codec). print_config=true prints the resolved recipe.", task=TRAINABLE)


def main(argv: list[str]) -> int:
    from disco_train.train.reliability import CheckpointWriteError, RunInUseError
    from disco_train.train.run import train

    # Missing shards or weights (named with the key to fix), a run folder in use, a full disk while checkpointing.
    return COMMAND.main(argv, train, errors=(FileNotFoundError, RunInUseError, CheckpointWriteError))

