"""Train a DiSCo model: `python train.py recipe=NAME [dotted.key=value ...]`, the same command as
`python -m disco_train train` (the code: disco_train/commands/train.py)."""

import sys

from disco_train.commands.train import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
