"""Fuzzing the receiver's decoders: truncated and mutated bitstreams give a documented exception, never a hang
(a per-example deadline) or a crash. Documented types: text -> ValueError, x264/x265 -> VideoError, DCVC-RT ->
BitstreamError, pose -> ValueError (tests/test_pose.py), .disco container -> ContainerError (tests/test_container.py).
A mutated H.264/HEVC stream may also decode into different frames: FFmpeg conceals errors, and that is fine, as
long as what comes back is frames of the coded size."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from disco_train.io.video import VideoError
from disco_train.modalities.text import decode_text, encode_text
from disco_train.codec.standard import decode_bitstream, encode_bitstream

FUZZ = settings(max_examples=60, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _mutate(data: bytes, edits: list[tuple[int, int]], cut: int) -> bytes:
    buf = bytearray(data)
    for pos, value in edits:
        buf[pos % len(buf)] = value
    return bytes(buf[: max(0, cut)])


@FUZZ
@given(st.text(max_size=200), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=4),
       st.integers(0, 400))
def test_text_decoder(text, edits, cut):
    data = encode_text(text)
    mutated = _mutate(data, edits, cut)
    try:
        assert isinstance(decode_text(mutated), str)
    except ValueError:
        pass


@pytest.fixture(scope="module", params=["x264", "x265"])
def video_stream(request):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (4, 64, 64, 3), dtype=np.uint8)
    return request.param, encode_bitstream(frames, 6.0, request.param, crf=35)


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6),
       cut_fraction=st.floats(0.0, 1.0))
def test_video_bitstream_decoder(video_stream, edits, cut_fraction):
    codec, data = video_stream
    mutated = _mutate(data, edits, int(len(data) * cut_fraction))
    try:
        frames = decode_bitstream(mutated, codec)
    except VideoError:
        return
    assert frames.ndim == 4 and frames.shape[-1] == 3 and frames.dtype == np.uint8


@FUZZ
@given(st.binary(max_size=300))
def test_video_bitstream_decoder_on_noise(noise):
    for codec in ("x264", "x265"):
        try:
            decode_bitstream(noise, codec)
        except VideoError:
            pass


@pytest.fixture(scope="module")
def dcvc():
    from disco_train.dcvc_rt.api import encode_video, synthetic_codec

    codec = synthetic_codec()
    rng = np.random.default_rng(1)
    return codec, encode_video(rng.integers(0, 255, (2, 16, 16, 3), dtype=np.uint8), qp=30, codec=codec)


@settings(max_examples=25, deadline=20000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=5),
       cut_fraction=st.floats(0.0, 1.0))
def test_dcvc_rt_bitstream_decoder(dcvc, edits, cut_fraction):
    from disco_train.dcvc_rt.api import decode_video
    from disco_train.dcvc_rt.coding import BitstreamError

    codec, data = dcvc
    mutated = _mutate(data, edits, int(len(data) * cut_fraction) if cut_fraction < 1.0 else len(data))
    if mutated == data:
        return
    with pytest.raises(BitstreamError):
        decode_video(mutated, codec=codec)
