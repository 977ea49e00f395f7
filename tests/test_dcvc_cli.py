"""DCVC-RT CLI: encode/decode through files (.npy exact, .mp4 via PyAV) and clean errors."""

import numpy as np

from disco_train.dcvc_rt import cli
from disco_train.dcvc_rt.api import decode_video, synthetic_codec
from disco_train.io.video import read_frames, write_with_vcodec


def test_cli_npy_round_trip_matches_api(tmp_path, capsys):
    rng = np.random.default_rng(0)
    frames = (rng.random((2, 32, 48, 3)) * 255).astype(np.uint8)
    np.save(tmp_path / "in.npy", frames)
    assert cli.main(["encode", str(tmp_path / "in.npy"), str(tmp_path / "s.bin"), "qp=20",
                     "reset_interval=2", "weights=synthetic"]) == 0
    assert "bpp" in capsys.readouterr().out
    assert cli.main(["decode", str(tmp_path / "s.bin"), str(tmp_path / "out.npy"), "weights=synthetic"]) == 0
    data = (tmp_path / "s.bin").read_bytes()
    expected = decode_video(data, codec=synthetic_codec())
    assert np.array_equal(np.load(tmp_path / "out.npy"), expected)


def test_cli_official_format_and_threads(tmp_path):
    frames = (np.random.default_rng(1).random((2, 32, 32, 3)) * 255).astype(np.uint8)
    np.save(tmp_path / "in.npy", frames)
    args = ["encode", str(tmp_path / "in.npy"), str(tmp_path / "o.bin"), "qp=20", "weights=synthetic"]
    assert cli.main(args + ["format=official"]) == 0
    official = (tmp_path / "o.bin").read_bytes()
    assert official[0] == 0x00  # an SPS NAL unit, not our "DCRT" magic
    assert cli.main(args + ["threads=2"]) == 0
    disco = (tmp_path / "o.bin").read_bytes()
    assert disco[:4] == b"DCRT" and disco[14] == 2  # the thread count byte of the header
    codec = synthetic_codec()
    assert decode_video(official, codec=codec).shape == decode_video(disco, codec=codec).shape == frames.shape


def test_video_io_lossless_mp4(tmp_path):
    rng = np.random.default_rng(1)
    frames = (rng.random((2, 16, 32, 3)) * 255).astype(np.uint8)
    write_with_vcodec(tmp_path / "a.mp4", frames)
    assert np.array_equal(read_frames(tmp_path / "a.mp4"), frames)  # libx264rgb crf 0 is lossless
    assert read_frames(tmp_path / "a.mp4", max_frames=1).shape == (1, 16, 32, 3)


def test_cli_errors(tmp_path, capsys):
    np.save(tmp_path / "in.npy", np.zeros((1, 16, 16, 3), np.uint8))
    assert cli.main(["encode", str(tmp_path / "in.npy"), str(tmp_path / "o.bin"), "qp=3",
                     f"ckpt_dir={tmp_path}"]) == 2
    assert "cvpr2025_image.pth.tar" in capsys.readouterr().err
    (tmp_path / "junk.bin").write_bytes(b"not a stream at all")
    assert cli.main(["decode", str(tmp_path / "junk.bin"), str(tmp_path / "o.npy"), "weights=synthetic"]) == 2
    assert "magic" in capsys.readouterr().err
    assert cli.main(["encode", "a", "b", "qq=1"]) == 2
    assert "qq: unknown key (from command line); did you mean 'qp'?" in capsys.readouterr().err
    assert cli.main(["encode", str(tmp_path / "in.npy"), "b", "weights=synthetic"]) == 2
    assert "qp: is required (give qp=...)" in capsys.readouterr().err
