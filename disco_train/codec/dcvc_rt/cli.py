"""Deprecated: `python -m disco_train.codec.dcvc_rt.cli` is `python -m disco_train dcvc-rt encode|decode` (kept one release)."""

import sys

from disco_train.config.cli import moved
from disco_train.dcvc_rt import cli

if __name__ == "__main__":
    moved("disco_train.codec.dcvc_rt.cli", "python -m disco_train dcvc-rt encode|decode")
    sys.exit(cli.main(sys.argv[1:]))
