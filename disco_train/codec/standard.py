"""The standard codecs x264 and x265 through PyAV, as raw Annex-B elementary streams.

A degraded-video bitstream is the elementary stream alone: its length is the rate, with no container bytes
(`container_overhead` says what an mp4 would add, reported apart), and without the encoder's self-description:
x265 runs with `info=0` (no version/options SEI) and what either encoder still writes as user-data SEI is
stripped (`annexb.strip_encoder_info`), so every stored byte is one a decoder reads. Measured at 64×96, 9 frames:
x264 wrote a 672-byte SEI NAL unit (675 bytes with its start code), x265 a 2,313-byte one.

`preset` is the encoder's speed/efficiency preset (x264 and x265: `medium` by default, their own default).
"""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np

from disco_train.codec.annexb import strip_encoder_info
from disco_train.io.video import X265_MIN_SIDE, VideoError, check_frames, mux_mp4, yuv420p

CODECS = {"x264": ("libx264", "h264"), "x265": ("libx265", "hevc")}
DECODERS = {"x264": "h264", "x265": "hevc", "vvenc": "vvc"}
"""Backend name -> PyAV decoder of its Annex-B streams (vvenc's encoder is an external binary, `codec.vvenc`)."""
"""Backend name -> (PyAV encoder, PyAV decoder; also the NAL syntax)."""
DEFAULT_PRESET = "medium"


def encode_bitstream(frames: np.ndarray, fps: float, codec: str = "x265", crf: int | None = 35,
                     qp: int | None = None, preset: str = DEFAULT_PRESET, encoder_info: bool = False) -> bytes:
    """Encode to a raw Annex-B elementary stream (no container) at a CRF or a constant QP. `encoder_info=True`
    keeps the encoder's version/options SEI (to read the encoder's version, or to test the stripping); stored
    streams never carry it."""
    if codec not in CODECS:
        raise VideoError(f"unknown codec {codec!r}; choose one of {sorted(CODECS)}")
    check_frames(frames)
    encoder, _ = CODECS[codec]
    ctx = av.CodecContext.create(encoder, "w")
    ctx.width, ctx.height, ctx.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
    rate = Fraction(fps).limit_denominator(1001)
    ctx.framerate, ctx.time_base = rate, 1 / rate
    if codec == "x265":
        if min(frames.shape[1:3]) < X265_MIN_SIDE:
            raise VideoError(f"x265 needs frames of at least {X265_MIN_SIDE} px per side (got "
                             f"{frames.shape[1]}×{frames.shape[2]}); use codec x264 for smaller degraded videos")
        # libx265 takes its rate control through x265-params; its top-level 'crf' is ignored with some builds.
        # info=0: no SEI with x265's version and option string (2.3 kB per stream).
        rc = f"qp={qp}" if qp is not None else f"crf={crf}"
        # With one 64-px CTU column (width <= 64) libx265 4.2 codes the same frames differently from run to run
        # (measured at 64×64, 17 frames: 10 distinct stream sizes in 20 encodes, single-threaded too); 32-px CTUs
        # give the same stream every time.
        ctu = ":ctu=32" if frames.shape[2] <= 64 else ""
        options = {"preset": preset, "x265-params": f"{rc}{ctu}:info={int(encoder_info)}:log-level=error"}
    else:
        options = {"preset": preset, **({"qp": str(qp)} if qp is not None else {"crf": str(crf)})}
    ctx.options = options
    out = bytearray()
    for i, frame in enumerate(frames):
        vf = yuv420p(frame)
        vf.pts = i
        for packet in ctx.encode(vf):
            out += bytes(packet)
    for packet in ctx.encode(None):
        out += bytes(packet)
    return bytes(out) if encoder_info else strip_encoder_info(bytes(out), CODECS[codec][1])


def encoder_version(codec: str) -> str:
    """The encoder's own description of itself (the SEI text it would write), e.g. 'x264 - core 165 - ...'."""
    from disco_train.codec.annexb import user_data

    frames = np.zeros((1, 64, 64, 3), np.uint8)
    texts = user_data(encode_bitstream(frames, 25.0, codec, crf=30, encoder_info=True), CODECS[codec][1])
    text = texts[0][16:].split(b"\x00")[0].decode("ascii", "replace") if texts else "unknown"  # after the UUID
    return text.split(" - H.26")[0].split(":")[0].strip()


def decode_bitstream(data: bytes, codec: str, expect: tuple[int, int, int] | None = None) -> np.ndarray:
    """Raw Annex-B stream -> frames [T,H,W,3] uint8. Corrupt or empty streams raise VideoError.

    `expect` = (frames, height, width) the receiver knows from the container: every decoded frame is checked
    against it before it is converted, and decoding stops at the first frame too many or of another size, so a
    small stream of huge or countless skip frames costs one frame's memory, not gigabytes."""
    if codec not in DECODERS:
        raise VideoError(f"unknown codec {codec!r}; choose one of {sorted(DECODERS)}")
    ctx = av.CodecContext.create(DECODERS[codec], "r")
    frames: list[np.ndarray] = []

    def take(decoded) -> None:
        for f in decoded:
            if expect is not None:
                n, h, w = expect
                if (f.height, f.width) != (h, w):
                    raise VideoError(f"{codec} stream frame {len(frames)} is {f.height}×{f.width}; the container "
                                     f"declares {h}×{w}")
                if len(frames) >= n:
                    raise VideoError(f"{codec} stream holds more than the {n} frames the container declares")
            frames.append(f.to_ndarray(format="rgb24"))

    try:
        for packet in ctx.parse(bytes(data)) + ctx.parse(b""):
            take(ctx.decode(packet))
        take(ctx.decode(None))
    except av.FFmpegError as err:
        raise VideoError(f"corrupt {codec} bitstream ({len(data)} bytes): {err}") from None
    if not frames:
        raise VideoError(f"{codec} bitstream ({len(data)} bytes) holds no decodable frame")
    if expect is not None and len(frames) != expect[0]:
        raise VideoError(f"{codec} stream holds {len(frames)} frames; the container declares {expect[0]}")
    return np.stack(frames)


def container_overhead(bitstream: bytes, codec: str, fps: float) -> int:
    """Bytes an mp4 container would add around this elementary stream (reported, not counted as rate)."""
    _, decoder = CODECS[codec]
    parser = av.CodecContext.create(decoder, "r")
    packets = parser.parse(bitstream) + parser.parse(b"")
    # x265: the muxer opens an encoder for headers; keep it quiet
    options = {"x265-params": "log-level=none"} if codec == "x265" else None
    mp4 = mux_mp4(packets, decoder, fps, parser.width or 16, parser.height or 16, options)
    return max(0, len(mp4) - len(bitstream))
