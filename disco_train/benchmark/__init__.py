"""The benchmark: test videos -> lossless reference clips -> RD points of x264, x265, vvenc (H.266), DCVC-RT and
DiSCo (and external codecs by command line) -> per-video results, pooled curves, BD-rate tables and RD plots
(`python -m disco_train benchmark`).

Modules: `clips` (the clip protocol), `points` (a method's rate point and what coding a clip there gave), `methods`
(baseline ladders, coded through `codec.backends`), `disco` (the DiSCo grid through the project's sender, receiver
and `DiscoDecoder`, and disco@rate), `cache` (one committed file per cell), `external` (methods ext:<name> by
command templates), `parts` (part=K/N: dealing the cells, done markers, the merge), `runner` (plan, compute,
tabulate), `tables` (pooling, Pareto fronts, BD-rate cells), `report` (the files), `content` (natural-looking
synthetic video for codec checks), `cli` (the command).

It may import config, modalities, codec, decoder and metrics; never lightning, datamodules or disco_train.train
(tests/test_layout.py).
"""
