"""Deprecated: `python -m disco_train.codec.dcvc_rt.conformance` is `python -m disco_train dcvc-rt conformance` (kept one release)."""

import sys

from disco_train.config.cli import moved
from disco_train.dcvc_rt import conformance

if __name__ == "__main__":
    moved("disco_train.codec.dcvc_rt.conformance", "python -m disco_train dcvc-rt conformance")
    sys.exit(conformance.main(sys.argv[1:]))
