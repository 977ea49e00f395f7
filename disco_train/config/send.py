"""The sender's settings (paper §3.1), one section `send.*`: how the degraded video, the sketch video and the pose
stream of a clip are made and coded, and which of their tokens are sent. `prepare` codes training shards with it and
the sender (`codec.sender`) codes with it, so training data and transmitted files are coded alike.

The selection pattern speaks the decoder's vocabulary (`condition.stream`, `condition.ratio`,
`condition.interleave_unit`): a shard set coded with send.stream=selected trains a decoder with the same three.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Optional, Union

from disco_train.config.base import check, parse_ratio
from disco_train.config.codec import DCVC_RT_DIR
from disco_train.config.decoder import check_pattern

CODECS = ("x264", "x265", "dcvc_rt")
"""The codecs prepare codes a video-like stream with; encode also takes vvenc (ENCODE_CODECS, `codec.backends`)."""
ENCODE_CODECS = (*CODECS, "vvenc")
RATE_KEYS = ("ds", "dt", "qp", "crf")
"""The keys that take a list in prepare (the rate grid): every combination is a grid point."""


RENAMED_SEND_KEYS = {**{k: f"send.{k}" for k in (
    "ds", "dt", "codec", "crf", "qp", "dcvc_rt_dir", "sketch_codec", "sketch_crf", "sketch_qp", "sketch_ds", "sketch_dt",
    "sketch_dcvc_dir", "sketch_weights", "pose_dir", "stream", "interleave_unit")}, "interleave_ratio": "send.ratio"}
"""prepare's and encode's keys of before the send section: each names its new key."""
KEPT = ("dcvc_rt_dir", "sketch_dcvc_dir", "sketch_weights", "pose_dir")
"""Keys that are never None: weights folders ('' = the export's where that applies)."""


def as_list(value) -> list[int]:
    """A rate key's value as a list: 4 -> [4], [1, 2] -> [1, 2]."""
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)]


@dataclass
class SendSettings:
    """How each stream of a clip is coded (module docstring). ds, dt, qp and crf take a list in prepare (a rate
    grid, `grid`); the sender codes one point of it. In encode and the benchmark a key left at None is the
    export's (its training data's settings, its decoder's condition.*), else prepare's default here."""

    ds: Optional[Union[int, list[int]]] = 4
    """Spatial downsampling factor D_s of the degraded video (paper: 1, 2, 4); prepare: a list is a rate grid."""
    dt: Optional[Union[int, list[int]]] = 4
    """Temporal downsampling factor D_t: keep 1 of every D_t frames (paper: 2, 4, 8); prepare: a list is a grid."""
    codec: Optional[str] = "x265"
    """Degraded-video codec backend: 'x264', 'x265' or 'dcvc_rt'."""
    crf: Optional[Union[int, list[int]]] = 35
    """CRF for x264/x265 (ignored when qp >= 0); prepare: a list is a grid over the points with qp = -1."""
    qp: Optional[Union[int, list[int]]] = -1
    """Constant QP (x264/x265: 0-51; dcvc_rt: 0-63, paper: 0, 8, 16, 24, 32); -1 = use crf (x264/x265) or
    DCVC-RT's default 32; prepare: a list is a rate grid."""
    dcvc_rt_dir: str = DCVC_RT_DIR
    """DCVC-RT weights of the degraded video (codec=dcvc_rt; 'synthetic': the test weights), recorded in meta.json."""
    sketch_codec: Optional[str] = "x264"
    """Sketch codec backend: 'x264', 'x265' or 'dcvc_rt' (the paper fine-tunes DCVC-RT on sketches)."""
    sketch_crf: Optional[int] = 35
    """CRF of the sketch video for x264/x265 (ignored when sketch_qp >= 0)."""
    sketch_qp: Optional[int] = -1
    """Constant QP of the sketch video (x264/x265: 0-51; dcvc_rt: 0-63); -1 = use sketch_crf."""
    sketch_ds: Optional[int] = 1
    """Spatial downsampling of the sketch video before coding (the paper does not give one; 1 = none)."""
    sketch_dt: Optional[int] = 1
    """Temporal downsampling of the sketch video: keep 1 of every sketch_dt frames (1 = all)."""
    sketch_dcvc_dir: str = ""
    """DCVC-RT weights of the sketch video (sketch_codec=dcvc_rt: the finetuned sketch codec); '' = dcvc_rt_dir.
    Recorded in meta.json."""
    sketch_weights: str = "checkpoints/informative_drawings/netG_A_latest.pth"
    """InformativeDrawings generator weights that draw the sketch (loaded strictly: 4,290,945 parameters in 24
    tensors); 'synthetic' = random weights built in code (demo, smoke runs)."""
    pose_dir: str = "checkpoints/dwpose"
    """Folder with the DWPose ONNX files dw-ll_ucoco_384.onnx and yolox_l.onnx that estimate the poses;
    'synthetic' = poses of each frame's foreground without a network (demo, smoke runs)."""
    stream: Optional[str] = "full"
    """'full' codes every stream whole; 'selected' codes only what the decoder's interleaved tokens read
    (`codec.selection`): train such shards with condition.stream=selected and the same ratio and interleave_unit."""
    ratio: Optional[str] = "1:3"
    """With stream=selected: the decoder's condition.ratio (video:aux tokens)."""
    interleave_unit: Optional[str] = "token"
    """With stream=selected: the decoder's condition.interleave_unit ('token' or 'latent_frame')."""

    @classmethod
    def unset(cls) -> "SendSettings":
        """Every coding key None (the export's, else the default), as encode and the benchmark start."""
        return cls(**{f.name: None for f in fields(cls) if f.name not in KEPT}, dcvc_rt_dir="")

    def validate(self, key: str = "send", complete: bool = True, codecs: tuple[str, ...] = CODECS) -> None:
        """`complete`: every key must be set (prepare); else None keys are the export's (encode, benchmark)."""
        unset = [f.name for f in fields(self) if getattr(self, f.name) is None]
        check(not (complete and unset), f"{key}.{unset[0] if unset else ''}", "is required here (null only means "
              "'the export's' in encode and the benchmark)")
        for name in ("codec", "sketch_codec"):
            value = getattr(self, name)
            check(value in (None, *codecs), f"{key}.{name}", f"unknown codec {value!r}; choose one of {codecs}")
        for name in ("sketch_ds", "sketch_dt"):
            check(getattr(self, name) is None or getattr(self, name) >= 1, f"{key}.{name}", "must be >= 1")
        if None not in (self.stream, self.interleave_unit, self.ratio):
            check_pattern(self.stream, self.interleave_unit, parse_ratio(self.ratio, f"{key}.ratio"), key,
                          "interleave_unit", "ratio")
        for name in (n for n in RATE_KEYS if getattr(self, n) is not None):
            value = getattr(self, name)
            values = as_list(value)
            check(bool(values), f"{key}.{name}", "an empty list; give one value or several")
            check(len(set(values)) == len(values), f"{key}.{name}", f"duplicate values in {value}")
            check(name not in ("ds", "dt") or min(values) >= 1, f"{key}.{name}", f"must be >= 1, got {value}")
        qps = as_list(self.qp) if self.qp is not None else []
        # dcvc_rt codes qp = -1 at its default QP, which may also be listed: the same point twice
        check(self.codec != "dcvc_rt" or len(qps) <= 1 or -1 not in qps, f"{key}.qp",
              f"{self.qp}: -1 (DCVC-RT's default QP) in a list; name the QPs")

    def sketch_dcvc_weights(self) -> str:
        """The DCVC-RT weights the sketch is coded with."""
        return self.sketch_dcvc_dir or self.dcvc_rt_dir
