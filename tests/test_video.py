import numpy as np
import pytest

from conftest import make_video
from disco_train.codec.standard import container_overhead, decode_bitstream, encode_bitstream
from disco_train.io.video import VideoError, read_video, write_video


@pytest.mark.parametrize("frames,height,width,fps,codec", [
    (9, 64, 64, 24.0, "libx264"), (20, 72, 96, 30.0, "libx264"), (13, 64, 80, 25.0, "libx265"),
    (5, 32, 48, 12.0, "libx264"),  # width 48 makes decord 0.6 fail: the PyAV fallback must take over
])
def test_read_real_videos(tmp_path, frames, height, width, fps, codec):
    path = tmp_path / "v.mp4"
    written = make_video(path, frames, height, width, fps, codec)
    got, got_fps = read_video(path)
    assert got.shape == (frames, height, width, 3) and got.dtype == np.uint8
    assert abs(got_fps - fps) < 0.01
    assert np.abs(got.astype(int) - written).mean() < 6  # CRF 18 on a smooth pattern
    assert read_video(path, max_frames=3)[0].shape[0] == 3
    assert read_video(path.read_bytes())[0].shape == got.shape


def test_unreadable_inputs(tmp_path):
    with pytest.raises(VideoError):
        read_video(tmp_path / "missing.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(VideoError):
        read_video(bad)
    with pytest.raises(VideoError, match="uint8 frames"):
        write_video(None, np.zeros((2, 8, 8), np.uint8), 24)


@pytest.mark.parametrize("codec,size", [("x264", (32, 48)), ("x265", (64, 96))])
def test_bitstream_round_trip_and_rate_control(codec, size):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (6, *size, 3), dtype=np.uint8)
    low = encode_bitstream(frames, 6.0, codec, crf=45)
    high = encode_bitstream(frames, 6.0, codec, crf=15)
    assert len(high) > 3 * len(low)  # the rate control is really applied
    decoded = decode_bitstream(high, codec)
    assert decoded.shape == frames.shape
    assert container_overhead(low, codec, 6.0) > 0
    with pytest.raises(VideoError):
        decode_bitstream(b"\x00\x00\x00\x01" + b"\xff" * 50, codec)
    with pytest.raises(VideoError):
        decode_bitstream(b"", codec)


def test_x265_small_frames_rejected_clearly():
    with pytest.raises(VideoError, match="at least 64 px"):
        encode_bitstream(np.zeros((2, 32, 48, 3), np.uint8), 6.0, "x265")
