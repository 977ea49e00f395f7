"""Raw YUV 4:2:0 (8- and 10-bit, the test sets' naming patterns or explicit keys) and y4m through the one reader;
lossless writing reads back exactly."""

import av
import numpy as np
import pytest

from disco_train.benchmark.content import natural_video
from disco_train.io import rawyuv
from disco_train.io.video import VideoError, iter_video, output_kind, read_video, write_output


def planes_of(frames: np.ndarray) -> list[np.ndarray]:
    """RGB frames -> 8-bit planar 4:2:0 arrays [1.5·H, W] (BT.601 limited range, what the reader assumes below
    1280×720)."""
    return [av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p").to_ndarray() for f in frames]


@pytest.fixture(scope="module")
def clip():
    return natural_video(5, 48, 64, seed=4)


@pytest.mark.parametrize("name,expected", [
    ("Name_1920x1080_50fps_420_10bit.yuv", {"width": 1920, "height": 1080, "fps": 50.0, "bit_depth": 10}),
    ("BasketballDrive_1920x1080_50.yuv", {"width": 1920, "height": 1080, "fps": 50.0}),
    ("Name_1920x1080_60.yuv", {"width": 1920, "height": 1080, "fps": 60.0}),
    ("Beauty_1920x1080_120fps_420_8bit_YUV.yuv", {"width": 1920, "height": 1080, "fps": 120.0, "bit_depth": 8}),
    ("videoSRC01_1920x1080_30.yuv", {"width": 1920, "height": 1080, "fps": 30.0}),
    ("Seq_1280x720p59.94_10b.yuv", {"width": 1280, "height": 720, "fps": 59.94, "bit_depth": 10}),
    ("Kimono1_1920x1080_24.yuv", {"width": 1920, "height": 1080, "fps": 24.0}),
    ("clip_64x48.yuv", {"width": 64, "height": 48}),
])
def test_test_sequence_names(name, expected):
    assert rawyuv.format_from_name(name) == expected


def test_other_chroma_formats_and_missing_format_are_clear_errors(tmp_path):
    with pytest.raises(VideoError, match="chroma format 422; this reader takes 4:2:0 only"):
        rawyuv.format_from_name("A_1920x1080_50_422_10bit.yuv")
    path = tmp_path / "noname.yuv"
    path.write_bytes(bytes(96))
    with pytest.raises(VideoError, match=r"give yuv_size=WxH yuv_fps=N"):
        read_video(path)
    with pytest.raises(VideoError, match=r"not a whole number of 8x6 8-bit 4:2:0 frames \(72 bytes each\)"):
        read_video(tmp_path / "noname.yuv", yuv={"width": 8, "height": 6, "fps": 25})
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        rawyuv.parse_size("1920-1080")


def test_8_and_10_bit_files_read_the_same_frames(clip, tmp_path):
    eight = planes_of(clip)
    rawyuv.write_yuv(tmp_path / "a_64x48_25.yuv", eight)
    # 10-bit samples 4·v + r with r in {0, 1} round to v (r = 2 and 3 would round up to v + 1)
    rng = np.random.default_rng(0)
    low = [p.astype(np.uint16) * 4 + rng.integers(0, 2, p.shape).astype(np.uint16) for p in eight]
    rawyuv.write_yuv(tmp_path / "a_64x48_25fps_420_10bit.yuv", low)
    a, fps_a = read_video(tmp_path / "a_64x48_25.yuv")
    b, fps_b = read_video(tmp_path / "a_64x48_25fps_420_10bit.yuv")
    assert a.shape == (5, 48, 64, 3) and fps_a == fps_b == 25.0
    assert np.array_equal(a, b)
    assert np.abs(a.astype(int) - clip).mean() < 6  # the 4:2:0 round trip of textured content
    # explicit keys win over the name: the same bytes read as 10-bit 48×48 frames is a size mismatch
    with pytest.raises(VideoError, match="not a whole number of 48x48 10-bit"):
        read_video(tmp_path / "a_64x48_25.yuv", yuv={"width": 48, "height": 48, "fps": 25, "bit_depth": 10})
    (tmp_path / "plain.yuv").write_bytes((tmp_path / "a_64x48_25.yuv").read_bytes())
    c, fps_c = read_video(tmp_path / "plain.yuv", yuv=rawyuv.YuvFormat(64, 48, 50.0))
    assert np.array_equal(a, c) and fps_c == 50.0


def test_the_10_to_8_bit_rule_rounds_and_clips():
    samples = np.array([0, 1, 2, 5, 6, 1021, 1022, 1023], np.uint16)
    expected = np.minimum((samples + 2) >> 2, 255)
    assert expected.tolist() == [0, 0, 1, 1, 2, 255, 255, 255]
    for s, want in zip(samples, expected):  # a 2×2 frame of luma s (grey chroma) reads as the 8-bit frame of want
        frame = rawyuv.to_rgb(np.array([s] * 4 + [512, 512], np.uint16), 2, 2, 10)
        eight = rawyuv.to_rgb(np.array([want] * 4 + [128, 128], np.uint8), 2, 2, 8)
        assert np.array_equal(frame, eight)


def test_y4m_8_and_10_bit_and_streaming(clip, tmp_path):
    eight = planes_of(clip)
    for name, header, data in (("a.y4m", b"C420jpeg", eight), ("b.y4m", b"C420p10 XYSCSS=420P10",
                                                              [p.astype(np.uint16) * 4 for p in eight])):
        with open(tmp_path / name, "wb") as f:
            f.write(b"YUV4MPEG2 W64 H48 F30000:1001 Ip A1:1 " + header + b"\n")
            for frame in data:
                f.write(b"FRAME\n" + frame.astype(np.uint8 if frame.dtype == np.uint8 else "<u2").tobytes())
    a, fps = read_video(tmp_path / "a.y4m")
    b, _ = read_video(tmp_path / "b.y4m")
    assert a.shape == (5, 48, 64, 3) and fps == pytest.approx(29.97, abs=0.01) and np.array_equal(a, b)
    frames, _ = iter_video(tmp_path / "b.y4m", max_frames=2)
    assert len(list(frames)) == 2
    (tmp_path / "c.y4m").write_bytes(b"YUV4MPEG2 W64 H48 F25:1 C444\n")
    with pytest.raises(VideoError, match="C444"):
        read_video(tmp_path / "c.y4m")


@pytest.mark.parametrize("target,kind", [("out.mkv", "lossless FFV1"), ("frames", "lossless PNG frames"),
                                         ("out.mp4", "lossless H.264 RGB at qp 0")])
def test_lossless_outputs_read_back_exactly(clip, tmp_path, target, kind):
    odd = np.ascontiguousarray(clip[:, :47, :63])  # odd sides too: RGB output has no 4:2:0 constraint
    for frames in (clip, odd):
        path = tmp_path / f"{frames.shape[1]}" / target
        path.parent.mkdir()
        assert write_output(path, frames, 24.0) == kind
        if path.is_dir():
            from PIL import Image

            back = np.stack([np.asarray(Image.open(p)) for p in sorted(path.glob("*.png"))])
        else:
            back, fps = read_video(path)
            assert fps == pytest.approx(24.0)
        assert np.array_equal(back, frames)


def test_lossy_viewing_copy_only_as_mp4(clip, tmp_path):
    assert write_output(tmp_path / "v.mp4", clip, 24.0, crf=30) == "lossy H.264 4:2:0 at crf 30"
    assert not np.array_equal(read_video(tmp_path / "v.mp4")[0], clip)
    with pytest.raises(VideoError, match="a lossy viewing copy is an .mp4"):
        output_kind(tmp_path / "v.mkv", crf=30)
    with pytest.raises(VideoError, match="write a folder"):
        output_kind(tmp_path / "v.avi")


def test_evaluate_reads_raw_yuv_references(clip, tmp_path):
    """`evaluate` reads .yuv through the same reader and rule: 10-bit 4·v and 4·v + 1 are the same 8-bit frames."""
    from disco_train.metrics.evaluate import EvaluateConfig, run_evaluate

    for folder, extra in (("refs", 0), ("recons", 1)):
        (tmp_path / folder).mkdir()
        rawyuv.write_yuv(tmp_path / folder / "v_64x48_25fps_10bit.yuv",
                         [p.astype(np.uint16) * 4 + extra for p in planes_of(clip)])
    rows = run_evaluate(EvaluateConfig(refs=str(tmp_path / "refs"), recons=str(tmp_path / "recons"),
                                       out=str(tmp_path / "e.csv"), ext="yuv"))  # psnr,ssim by default
    assert rows[0]["frames"] == 5 and rows[0]["psnr"] > 99 and rows[0]["ssim"] == pytest.approx(1.0)
