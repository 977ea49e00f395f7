"""Deprecated: `python -m disco_train.codec.dcvc_rt.export` is `python -m disco_train dcvc-rt export` (kept one release)."""

import sys

from disco_train.config.cli import moved
from disco_train.dcvc_rt import export

if __name__ == "__main__":
    moved("disco_train.codec.dcvc_rt.export", "python -m disco_train dcvc-rt export")
    sys.exit(export.main(sys.argv[1:]))
