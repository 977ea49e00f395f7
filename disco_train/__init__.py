"""disco-train: training and evaluating DiSCo semantic video codecs (arXiv 2512.00408).

The packages follow the method, each importing only those above it:

    io          files, locks, atomic writes, hub, video files, errors (nothing else of disco_train; no torch)
    config      schemas, recipes, the command-line grammar        (io; no torch)
    dcvc_rt     the DCVC-RT neural video codec                     (io, config)
    modalities  text, degraded video, sketch, pose, caption        (config)
    decoder     DiscoDecoder: LTX-Video + in-context LoRA           (config, modalities)
    codec       .disco container, codec backends, sender, receiver (config, modalities, decoder, dcvc_rt)
    metrics     fidelity, perceptual, distribution, temporal       (config, codec)
    benchmark   reference clips, baselines, DiSCo grid, BD-rates    (config, modalities, codec, decoder, metrics)
    train       Lightning systems, build, callbacks, a run, export (anything; the only Lightning user here)
    commands    the dispatcher `python -m disco_train COMMAND` and the commands of no one package (train, export,
                sweep, weights)                                     (anything; imported only by the entry points)

`datamodules` (beside this package) uses config, modalities, codec and decoder, never train or commands.
tests/test_layout.py enforces all of this by parsing every import.
"""
