import json
import tarfile

import numpy as np
import pytest
import webdataset as wds

from conftest import make_video, prepare_config
from datamodules.prepare import run
from datamodules.schema import META_KEYS, REQUIRED_FIELDS, bpp, sample_key
from disco_train.config import ConfigError
from disco_train.io.video import read_video
from disco_train.modalities.text import decode_text
from disco_train.codec.standard import decode_bitstream


def _cfg(tmp_path, **kw):
    base = dict(input=str(tmp_path / "in"), output=str(tmp_path / "out"), frames=9, height=32, width=32,
                max_clips_per_video=0, ds=2, dt=4, codec="x264", crf=30, caption_default="a test video",
                shard_size=3)
    base.update(kw)
    return prepare_config(**base)


def _counts(counts):
    return {k: counts[k] for k in ("done", "failed", "skipped", "samples")}


def _samples(out):
    return [s for shard in sorted(out.glob("train-*.tar")) for s in wds.WebDataset(str(shard), shardshuffle=False)]


def test_prepare_fields_and_bits(tmp_path):
    (tmp_path / "in").mkdir()
    make_video(tmp_path / "in" / "a.v1.mp4", 20, 48, 64, 24.0)       # 2 clips of 9, landscape, dotted name
    make_video(tmp_path / "in" / "b.mp4", 9, 64, 80, 30.0, "libx265")  # 1 clip
    counts = run(_cfg(tmp_path), log=lambda *_: None)
    assert _counts(counts) == {"done": 2, "failed": 0, "skipped": 0, "samples": 3}
    assert counts["frames"] == 27 and counts["frames_per_s"] > 0
    samples = _samples(tmp_path / "out")
    dotted = sample_key("a.v1.mp4", 0)[:-6]  # a dotted name is sanitised and hashed
    assert sorted(s["__key__"] for s in samples) == [f"{dotted}_c0000", f"{dotted}_c0001", "b_c0000"]
    for s in samples:
        assert set(REQUIRED_FIELDS) <= set(s)
        meta = json.loads(s["meta.json"])
        assert set(meta) == set(META_KEYS) | {"container_overhead_bytes"}  # the documented schema, no more
        assert meta["container_overhead_bytes"] > 0 and meta["caption_source"] == "default"
        frames, _ = read_video(s["video.mp4"])
        assert frames.shape == (9, 32, 32, 3)
        degraded = decode_bitstream(s["degraded.bin"], "x264")
        assert degraded.shape == (3, 16, 16, 3) == (meta["degraded_frames"], meta["degraded_height"],
                                                     meta["degraded_width"], 3)
        assert decode_text(s["caption.zlib"]) == "a test video"
        assert meta["bits"] == {"text": len(s["caption.zlib"]) * 8, "video": len(s["degraded.bin"]) * 8}
        assert meta["bpp"] == pytest.approx(bpp(meta["bits"], 9, 32, 32))
        assert (meta["ds"], meta["dt"], meta["codec"]) == (2, 4, "x264")
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_prepare_skips_bad_videos_and_resumes(tmp_path):
    (tmp_path / "in").mkdir()
    make_video(tmp_path / "in" / "good.mp4", 9, 32, 32)
    make_video(tmp_path / "in" / "short.mp4", 5, 32, 32)
    truncated = tmp_path / "in" / "truncated.mp4"
    make_video(truncated, 30, 32, 32)
    truncated.write_bytes(truncated.read_bytes()[:600])
    (tmp_path / "in" / "empty.mp4").write_bytes(b"")
    logs = []
    counts = run(_cfg(tmp_path), log=logs.append)
    assert counts["done"] == 1 and counts["failed"] == 3
    failures = [json.loads(l) for l in (tmp_path / "out" / "failures.jsonl").read_text().splitlines()]
    assert {f["video"].split("/")[-1] for f in failures} == {"short.mp4", "truncated.mp4", "empty.mp4"}
    assert any("shorter than one clip" in f["reason"] for f in failures)
    skipped = [line for line in logs if line.startswith("skipped ")]
    assert len(skipped) == 3 and all("\n" not in line for line in logs)
    assert "1 done (1 clips), 3 failed" in logs[-1]  # the summary line
    # re-run: nothing is redone or duplicated; a new video is added in a new shard
    make_video(tmp_path / "in" / "new.mp4", 9, 32, 32, seed=3)
    again = run(_cfg(tmp_path), log=lambda *_: None)
    assert _counts(again) == {"done": 1, "failed": 0, "skipped": 4, "samples": 1}
    keys = [s["__key__"] for s in _samples(tmp_path / "out")]
    assert sorted(keys) == ["good_c0000", "new_c0000"]


def test_prepare_captions_file_and_missing_caption(tmp_path):
    (tmp_path / "in").mkdir()
    make_video(tmp_path / "in" / "x.mp4", 9, 32, 32)
    make_video(tmp_path / "in" / "y.mp4", 9, 32, 32)
    (tmp_path / "caps.csv").write_text('video,caption\nx.mp4,"a cat, sleeping"\n')
    counts = run(_cfg(tmp_path, captions=str(tmp_path / "caps.csv"), caption_default=""), log=lambda *_: None)
    assert counts["done"] == 1 and counts["failed"] == 1
    (sample,) = _samples(tmp_path / "out")
    assert decode_text(sample["caption.zlib"]) == "a cat, sleeping"


def test_small_videos_are_scaled_up_and_flagged(tmp_path):
    (tmp_path / "in").mkdir()
    make_video(tmp_path / "in" / "tiny.mp4", 9, 16, 24)
    run(_cfg(tmp_path), log=lambda *_: None)
    (sample,) = _samples(tmp_path / "out")
    meta = json.loads(sample["meta.json"])
    assert meta["resized_up"] is True and (meta["source_height"], meta["source_width"]) == (16, 24)


def test_prepare_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="frames"):
        prepare_config(input="x", output="y", frames=10).validate()
    with pytest.raises(ConfigError, match="input"):
        run(_cfg(tmp_path, input=str(tmp_path / "nothing-*.mp4")))
