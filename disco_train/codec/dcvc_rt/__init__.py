"""Deprecated command paths only: DCVC-RT moved to `disco_train.dcvc_rt` and its commands to
`python -m disco_train dcvc-rt encode|decode|export|conformance`. `python -m disco_train.codec.dcvc_rt.cli` (and
`.export`, `.conformance`) still run, after one line on stderr, for one release; nothing here is importable API."""
