"""The codec, paper §3: what travels and how.

- `container`: the `.disco` file (one header, one table, every modality's bitstream);
- `backends`: the video codec registry (x264, x265, dcvc_rt) every sender and receiver codes through;
  `standard`: x264/x265 through PyAV (the neural codec is the package `disco_train.dcvc_rt`; video files in and
  out are `disco_train.io.video`);
- `sender`: a clip -> its streams (`prepare` and `encode` both call it);
- `receiver`: streams -> condition frames (training-data decoding and `decode` both call it);
- `pipeline`: the receiving system as a library, containers -> condition frames -> generated frames (builds only
  the `DiscoDecoder`; `decode`, `batch` and the benchmark call it); `batch`: decode of many files by part, batched
  by coded size; `cli`: the `encode` and `decode` commands' arguments;
- `dcvc_rt/`: only the deprecated command paths `python -m disco_train.codec.dcvc_rt.cli|export|conformance`.

May import config, modalities and decoder; never lightning, datamodules or train.
"""
