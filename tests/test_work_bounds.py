"""Work bounded before it starts (issue 29, class 2): decode, encode, the loader, prepare and benchmark estimate the
memory of what a file or setting declares and refuse beyond a budget, naming the estimate; the one video reader
streams frames under a size bound and applies a display rotation on every path."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import time
import tracemalloc
import zlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import webdataset as wds

from conftest import ROOT, make_video
from disco_train.__main__ import main
from disco_train.io.video import TooLarge, VideoError, iter_video, read_video
from disco_train.train.export import export
from test_export import CODEC, make_run
from test_receiver_bounds import TEXT, _video, raw_container


def black_video(frames: int, width: int, height: int, format: str = "mp4") -> bytes:
    """A small file of large black frames (x264 at crf 51: a few KB however large the frames)."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=format) as out:
        stream = out.add_stream("libx264", rate=Fraction(24))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "51"}
        frame = av.VideoFrame(width, height, "yuv420p")
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        for i in range(frames):
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buffer.getvalue()


class Bounded:
    """Seconds and traced peak bytes (numpy's buffers included) of the block."""

    def __enter__(self):
        tracemalloc.start()
        self.t = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds, self.peak = time.perf_counter() - self.t, tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


def test_a_tiny_disco_declaring_25_frames_of_8192_squared_is_refused_before_decoding(tmp_path, capsys):
    _, ckpt = make_run(tmp_path)
    out = export(ckpt, tmp_path / "export", codec=CODEC)
    bomb = tmp_path / "bomb.disco"
    bomb.write_bytes(raw_container((25, 8192, 8192, 25, 8192, 8192, 24, 1),
                                   [(*TEXT, zlib.compress(b"x")), _video(32)]))
    assert bomb.stat().st_size < 4096
    with Bounded() as b:
        rc = main(["decode", str(bomb), "", f"export={out}"])
    err = capsys.readouterr().err
    assert rc == 2 and "decoding 25 frames of 8192×8192 needs at least 46.9 GB, more than the 24.0 GB" in err
    # the command's own message ends it (a logging handler an earlier test left on a closed stream may print
    # "--- Logging error ---" above it in this process)
    assert "limits.max_memory_gb" in err and err.strip().splitlines()[-2].startswith("python -m disco_train decode:")
    assert b.seconds < 30 and b.peak < 256 << 20, (b.seconds, b.peak)


@pytest.mark.parametrize("format", ["mp4", "matroska"])  # mp4 declares its frame count, this mkv does not
def test_encode_refuses_a_small_file_of_many_large_frames_within_its_budget(tmp_path, capsys, format):
    video = tmp_path / ("black.mp4" if format == "mp4" else "black.mkv")
    video.write_bytes(black_video(30, 1920, 1088, format))
    assert video.stat().st_size < 200_000
    with Bounded() as b:  # ds=1 dt=1: encode would keep every frame whole (4 copies of 0.2 GB)
        rc = main(["encode", str(video), str(tmp_path / "a.disco"), "caption=x", "send.codec=x264", "send.ds=1",
                   "send.dt=1", "max_memory_gb=0.1"])
    err = capsys.readouterr().err
    said = "30 frames" if format == "mp4" else "at least 3 frames"  # before decoding / when the 3rd arrives
    assert rc == 2 and f"encoding {said} of 1920×1088 (ds=1, dt=1) needs at least" in err
    assert "more than the 0.1 GB budget (max_memory_gb=GB sets it" in err and not (tmp_path / "a.disco").exists()
    assert b.peak < 256 << 20, b.peak


def test_streamed_degradation_makes_the_frames_of_the_whole_clip():
    """What encode keeps as it reads equals `degrade` of the whole padded clip, so its streams do not move."""
    from disco_train.codec.sender import degrade_as_read, pad_to
    from disco_train.modalities.degrade import degrade

    clip = np.random.default_rng(0).integers(0, 256, (11, 70, 50, 3), dtype=np.uint8)
    for ds, dt in ((1, 1), (2, 3), (4, 4)):
        whole = degrade(pad_to(clip, 11, 96, 64), ds, dt)
        assert np.array_equal(np.stack(list(degrade_as_read(iter(clip), ds, dt, 96, 64))), whole), (ds, dt)


@pytest.mark.slow  # about 30 s on a loaded 2-core machine: 150 4K frames decoded
def test_encode_streams_a_decompression_bomb_within_3_gb(tmp_path):
    """150 black 4K frames in ~30 KB (3.7 GB decoded) at the default 24 GB budget: encode reads and degrades one
    frame at a time, so its peak stays near the degraded video's size."""
    bomb = tmp_path / "bomb.mp4"
    bomb.write_bytes(black_video(150, 3840, 2160))
    assert bomb.stat().st_size < 100_000
    out = tmp_path / "bomb.disco"
    # a parent of its own, so the peak is encode's and not that of a child an earlier test ran
    measure = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(done.returncode)")
    done = subprocess.run([sys.executable, "-c", measure, sys.executable, "-m", "disco_train", "encode", str(bomb),
                           str(out), "caption=x", "codec=x264"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    peak = int(done.stdout.split()[-1]) * 1024  # kilobytes on Linux
    assert peak < 3 << 30, f"peak RSS {peak / (1 << 30):.1f} GB"
    if done.returncode == 0:
        from disco_train.codec import container as C

        g = C.read(out).geometry
        assert (g.frames, g.height, g.width) == (150, 2160, 3840)
    else:
        errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
        assert done.returncode == 2 and len(errors) == 1 and "Traceback" not in done.stderr, done.stderr


def test_prepare_skips_a_video_over_its_budget_and_prepares_the_others(tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    make_video(inputs / "small.mp4", 9, 32, 32)
    big = inputs / "big.mp4"
    big.write_bytes(black_video(30, 1920, 1088))  # declares 0.2 GB of frames; the budget holds 0.1 / 4 copies
    before = big.read_bytes()
    out = tmp_path / "out"
    assert main(["prepare", f"input={inputs}", f"output={out}", "frames=9", "height=32", "width=32", "send.ds=2",
                 "send.dt=4", "send.codec=x264", "caption_default=a test video", "max_memory_gb=0.1", "workers=1"]) == 0
    logs = capsys.readouterr().out
    assert f"skipped {big}: " in logs and "declares 30 frames of 1920×1088" in logs
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert [Path(f["video"]).name for f in failures] == ["big.mp4"]
    samples = [s for shard in sorted(out.glob("train-*.tar")) for s in wds.WebDataset(str(shard), shardshuffle=False)]
    assert [s["__key__"] for s in samples] == ["small_c0000"]
    assert big.read_bytes() == before


def test_the_reader_streams_under_its_bounds():
    data = black_video(12, 256, 128)
    with pytest.raises(TooLarge, match="declares 12 frames of 256×128"):
        read_video(data, max_bytes=256 * 128 * 3 * 11)
    assert read_video(data, max_frames=11, max_bytes=256 * 128 * 3 * 11)[0].shape == (11, 128, 256, 3)
    with pytest.raises(VideoError, match="frames of 256×128, expected 64×64"):
        read_video(data, size=(64, 64))


def test_a_shard_member_of_huge_frames_stops_at_its_first_frame():
    from datamodules.decode import decode_sample
    from disco_train.config import DataConfig
    from disco_train.modalities.text import encode_text

    cfg = DataConfig(frames=9, height=64, width=64)
    meta = {"frames": 9, "height": 64, "width": 64, "fps": 24.0, "bpp": 0.1, "ds": 1, "dt": 1, "codec": "x264"}
    sample = {"__key__": "bomb", "meta.json": __import__("json").dumps(meta).encode(),
              "caption.zlib": encode_text("x"), "video.mp4": black_video(40, 1920, 1088),
              "degraded.bin": _video()[-1]}
    with Bounded() as b, pytest.raises(VideoError, match="frames of 1920×1088, expected 64×64"):
        decode_sample(sample, cfg, "forward")
    assert b.peak < 64 << 20, b.peak


def test_yuv_names_and_benchmark_sizes_are_bounded(tmp_path, capsys):
    yuv = tmp_path / "clip_64x64_99999999999fps.yuv"
    yuv.write_bytes(bytes(64 * 64 * 3 // 2))
    with pytest.raises(VideoError, match=r"frame rate 1e\+11 is not in \(0, 1000\]"):
        read_video(yuv)
    refs = tmp_path / "refs"
    refs.mkdir()
    for size, phrase in (("8192x8192", "size: 57 frames of 8192x8192 needs at least 42.8 GB"),
                         ("16384x64", "size: at most 8192 px per side")):
        assert main(["benchmark", "recipe=benchmark_debug", f"refs={refs}", f"out={tmp_path / 'b'}",
                     f"size={size}", "frames=57"]) == 2
        assert phrase in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def rotated(data: bytes) -> bytes:
    """The mp4 with a 90° display rotation in its track header (what a phone records in portrait)."""
    data = bytearray(data)
    at = data.index(b"tkhd") - 4 + 48  # the version 0 header's 3×3 matrix
    data[at:at + 36] = struct.pack(">9i", 0, 1 << 16, 0, -(1 << 16), 0, 0, 0, 0, 1 << 30)
    return bytes(data)


def test_one_rotation_policy_on_every_read_path(tmp_path):
    from disco_train.io.video import read_frames as read_for_metrics

    frames = np.zeros((3, 32, 64, 3), np.uint8)
    frames[:, :8, :8] = 255  # a white corner, top left
    from disco_train.io.video import write_video

    path = tmp_path / "portrait.mp4"
    path.write_bytes(rotated(write_video(None, frames, 24.0, crf=10)))
    shown = read_video(path)[0]
    assert shown.shape == (3, 64, 32, 3)  # turned to portrait, as players show it
    assert shown[0, :8, -8:].mean() > 200 and shown[0, :8, :8].mean() < 50  # the corner went top right
    assert np.array_equal(np.stack(list(iter_video(path)[0])), shown)
    assert np.array_equal(read_for_metrics(path), shown)


def test_encode_refuses_what_its_receiver_refuses_before_decoding(tmp_path, capsys, monkeypatch):
    """A video whose frames are wider than the receiver's side limit (`DecodeLimits.max_side`), or that declares
    more pixels than it takes, is refused from what it declares: no frame decoded, nothing written; scaled within
    the limit by `size=`, it is read."""
    from disco_train.config import DecodeLimits
    from disco_train.config.limits import MAX_SIDE
    from disco_train.io import rawyuv, video

    assert rawyuv.MAX_SIDE == MAX_SIDE == DecodeLimits().max_side  # io may not import config: one value
    wide = tmp_path / "wide.mp4"
    wide.write_bytes(black_video(1, 8224, 16))  # 8224 wide: over the 8192 limit

    def decoded(*args, **kwargs):
        raise AssertionError("a frame was decoded")

    monkeypatch.setattr(video, "iter_video", decoded)
    out = tmp_path / "a.disco"
    for extra in ([], ["sketch=auto"], ["size=8200x16"]):  # streamed, read whole, scaled by size=
        rc = main(["encode", str(wide), str(out), "caption=x", "send.codec=x264", *extra])
        errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
        assert rc == 2 and len(errors) == 1, errors
        assert "8192-pixel side limit" in errors[0] and ("8224" in errors[0] or "8200" in errors[0]), errors
    many = tmp_path / "many_8192x8192_24.yuv"  # sparse: 33 frames of 8192² declared by its length, no disk
    with open(many, "wb") as handle:
        handle.truncate(33 * 8192 * 8192 * 3 // 2)
    assert main(["encode", str(many), str(out), "caption=x", "send.codec=x264"]) == 2
    assert "33 frames of 8192×8192 exceed the limit of 2,147,483,648 pixels" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(AssertionError, match="decoded"):
        main(["encode", str(wide), str(out), "caption=x", "send.codec=x264", "size=8192x16"])
