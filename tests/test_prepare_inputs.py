"""What prepare takes in and refuses: unique keys for videos sharing a stem, captions matched by relative path,
exit code 2 with a reason (no video, every video failed, x265 below 64 px, a broken prepare_config.json, bad new
keys), .yuv files reported, the QP DCVC-RT used recorded."""

import json
import tarfile
import time

import pytest
import webdataset as wds

from conftest import make_video, prepare_config, send_keys
from disco_train.modalities.captions import CaptionTable
from datamodules.inputs import Video, check_unique, list_videos, with_captions
from datamodules.pipeline import used_qp
from datamodules.prepare import main, run
from datamodules.schema import sample_key
from disco_train.codec.backends import DCVC_DEFAULT_QP
from disco_train.config import ConfigError
from disco_train.config.prepare import X265_MIN_SIDE
from disco_train.modalities.text import decode_text

SAME_STEMS = ["a/video.mp4", "b/video.mp4", "clip.mkv", "clip.mov", "clip.webm", "clip.mp4"]


def _cfg(tmp_path, **kw):
    base = dict(input=str(tmp_path / "in"), output=str(tmp_path / "out"), frames=9, height=32, width=32,
                max_clips_per_video=0, ds=2, dt=4, codec="x264", crf=30, caption_default="a test video",
                shard_size=4)
    base.update(kw)
    return prepare_config(**base)


def _argv(tmp_path, *extra):
    return [f"input={tmp_path / 'in'}", f"output={tmp_path / 'out'}", "frames=9", "height=32", "width=32", "send.ds=2",
            "send.codec=x264", "caption_default=a clip", *extra]


def _videos(tmp_path, names, frames=18):
    for i, name in enumerate(names):
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        make_video(tmp_path / "in" / name, frames, 32, 32, seed=i)


def test_videos_sharing_a_stem_keep_every_sample(tmp_path):
    _videos(tmp_path, SAME_STEMS)  # 2 clips each: 12 samples
    assert run(_cfg(tmp_path), log=lambda *_: None)["samples"] == 12
    members, keys = [], []
    for shard in sorted((tmp_path / "out").glob("train-*.tar")):
        with tarfile.open(shard) as tar:
            members += tar.getnames()
        keys += [s["__key__"] for s in wds.WebDataset(str(shard), shardshuffle=False)]
    assert len(members) == len(set(members)) and len(keys) == len(set(keys)) == 12  # all 12 readable
    assert {sample_key(n, 0) for n in SAME_STEMS} <= set(keys)


def test_sample_keys():
    assert sample_key("v07.mp4", 3) == "v07_c0003"  # a plain name at the root keeps its stem
    hashed = [sample_key(n, 0) for n in ["a/video.mp4", "a-video.mp4", "a.video.mp4", "clip.mkv", "clip.mov"]]
    assert len(set(hashed)) == 5 and all(k.count(".") == 0 for k in hashed)
    assert hashed[0].startswith("a-video-") and hashed[3].startswith("clip-") and hashed[0].endswith("_c0000")
    assert sample_key("a/video.mp4", 0) == sample_key("a/video.mp4", 0)  # a function of the name alone


def test_listing_names_and_duplicates(tmp_path):
    _videos(tmp_path, ["a/x.mp4", "y.mp4"], frames=9)
    (tmp_path / "in" / "raw.yuv").write_bytes(bytes(100))
    listing = list_videos(str(tmp_path / "in"))
    assert [v.name for v in listing.videos] == ["a/x.mp4", "y.mp4"] and listing.ignored == {".yuv": 1}
    assert [v.name for v in list_videos(str(tmp_path / "in" / "**" / "*.mp4")).videos] == ["a/x.mp4", "y.mp4"]
    # a list: names relative to the list's folder, paths outside it keep their path
    (tmp_path / "list.csv").write_text(f"video\n{tmp_path / 'in' / 'a' / 'x.mp4'}\n/elsewhere/z.mp4\n")
    assert [v.name for v in list_videos(str(tmp_path / "list.csv")).videos] == ["in/a/x.mp4", "elsewhere/z.mp4"]
    with pytest.raises(ConfigError, match="have the same name a.mp4"):
        check_unique([Video(tmp_path / "p", "a.mp4"), Video(tmp_path / "q", "a.mp4")])
    (tmp_path / "twice.csv").write_text(f"video\n{tmp_path / 'in' / 'y.mp4'}\n{tmp_path / 'in' / 'y.mp4'}\n")
    with pytest.raises(ConfigError, match="list each video once"):
        run(_cfg(tmp_path, input=str(tmp_path / "twice.csv")), log=lambda *_: None)


def test_captions_by_relative_path_and_unambiguous_stem(tmp_path):
    _videos(tmp_path, ["a/video.mp4", "b/video.mp4", "clip.mkv", "clip.mov", "solo/only.mp4"], frames=9)
    (tmp_path / "caps.csv").write_text('video,caption\na/video.mp4,cap a\nb/video.mp4,cap b\nclip.mkv,cap mkv\n'
                                       'clip,cap stem\nonly.mp4,cap only\n')
    cfg = _cfg(tmp_path, captions=str(tmp_path / "caps.csv"), caption_default="")
    counts = run(cfg, log=lambda *_: None)
    got = {}
    for shard in (tmp_path / "out").glob("train-*.tar"):
        for s in wds.WebDataset(str(shard), shardshuffle=False):
            got[json.loads(s["meta.json"])["source"].split("/in/")[1]] = decode_text(s["caption.zlib"])
    # by path; by bare file name where unique ('only.mp4'); 'clip' is the stem of two inputs: no caption
    assert got == {"a/video.mp4": "cap a", "b/video.mp4": "cap b", "clip.mkv": "cap mkv",
                   "solo/only.mp4": "cap only"}
    assert (counts["done"], counts["failed"]) == (4, 1)
    (row,) = [json.loads(line) for line in (tmp_path / "out" / "failures.jsonl").read_text().splitlines()]
    assert row["video"].endswith("clip.mov") and "'clip' is ambiguous (several input videos" in row["reason"]


def test_caption_table_ambiguity():
    table = CaptionTable({"x/a.mp4": "one", "y/a.mp4": "two", "b.mp4": "bee"})
    assert table.lookup("x/a.mp4") == ("one", "")
    caption, why = table.lookup("z/a.mp4")
    assert caption is None and "several rows of captions" in why
    assert table.lookup("deep/b.mp4") == ("bee", "")
    assert table.lookup("deep/b.mp4", {("name", "b.mp4")})[0] is None  # two inputs named b.mp4: by path only
    videos = with_captions([Video(None, "p/b.mp4"), Video(None, "q/b.mp4")], table)
    assert [v.caption for v in videos] == [None, None] and "several input videos" in videos[0].no_caption


def test_caption_ambiguity_names_the_rows_and_row_order_never_decides():
    table = CaptionTable([("x/a.mp4", "one"), ("y/a.mp4", "two"), ("c.mp4", "cee"), ("c.mp4", "see"),
                          ("d.mp4", "dee"), ("d.mp4", "dee")], "caps.csv")
    assert table.lookup("z/a.mp4")[1].startswith("its file name 'a.mp4' is ambiguous (several rows of caps.csv "
                                                 "have it: row 1 'x/a.mp4', row 2 'y/a.mp4')")
    caption, why = table.lookup("c.mp4")  # one key, two captions: neither wins
    assert caption is None and "row 3 'c.mp4', row 4 'c.mp4'" in why
    assert table.lookup("d.mp4") == ("dee", "")  # the same caption twice is no ambiguity


def test_no_video_and_every_video_failed_exit_2(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "raw.yuv").write_bytes(bytes(100))
    start = time.time()
    assert main(_argv(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "no video found" in err and "1 .yuv file ignored" in err and time.time() - start < 10
    (tmp_path / "in" / "empty.mp4").write_bytes(b"")
    make_video(tmp_path / "in" / "short.mp4", 5, 32, 32)
    assert main(_argv(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "every video this run tried failed (2; first:" in err and "failures.jsonl" in err
    assert len((tmp_path / "out" / "failures.jsonl").read_text().splitlines()) == 2  # recorded, not lost
    make_video(tmp_path / "in" / "good.mp4", 9, 32, 32)
    assert main(_argv(tmp_path)) == 0  # the failures stay skipped; the new video is prepared
    assert "1 done (1 clips), 0 failed, 2 already done" in capsys.readouterr().out


def test_named_yuv_and_y4m_are_read_and_other_yuv_reported(tmp_path):
    import av
    import numpy as np

    (tmp_path / "in").mkdir()
    with av.open(str(tmp_path / "in" / "clip.y4m"), "w", format="yuv4mpegpipe") as container:
        stream = container.add_stream("rawvideo", rate=24)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(9):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.full((32, 32, 3), 20 * i, np.uint8),
                                                                   format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    (tmp_path / "in" / "raw.yuv").write_bytes(bytes(32 * 32 * 3 // 2 * 9))  # no size in the name: reported
    (tmp_path / "in" / "Seq_32x32_24fps_420_8bit.yuv").write_bytes(bytes(range(256)) * (32 * 32 * 3 // 2 * 9 // 256))
    logs = []
    assert run(_cfg(tmp_path), log=logs.append)["done"] == 2  # the .y4m and the test-sequence-named .yuv
    assert any("1 .yuv file ignored (raw YUV has no header: its name must give" in line for line in logs)


@pytest.mark.parametrize("overrides,key", [
    (dict(codec="x265", height=128, width=128, ds=4), "codec"),  # 32 px degraded
    (dict(sketch=True, sketch_codec="x265", height=64, width=96, sketch_ds=2), "sketch_codec"),
])
def test_x265_below_64_px_is_a_config_error(tmp_path, overrides, key, capsys):
    with pytest.raises(ConfigError, match=f"{key}: x265 needs frames of at least 64 px"):
        _cfg(tmp_path, **overrides).validate()
    _cfg(tmp_path, codec="x265", height=256, width=256, ds=4).validate()  # 64 px: fine
    assert main(_argv(tmp_path, *send_keys(overrides))) == 2
    assert f"{key}: x265 needs frames" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before anything was touched
    from disco_train.io.video import X265_MIN_SIDE as CODEC_MIN

    assert X265_MIN_SIDE == CODEC_MIN


@pytest.mark.parametrize("text", ["", "not json {", "[1, 2]"])
def test_broken_prepare_config_is_a_clear_error(tmp_path, text, capsys):
    _videos(tmp_path, ["v.mp4"], frames=9)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "prepare_config.json").write_text(text)
    assert main(_argv(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "prepare_config.json" in err and ("is empty" in err or "not JSON" in err or "JSON object" in err)
    assert "Traceback" not in err


@pytest.mark.parametrize("arg,key", [("workers=-1", "workers"), ("part=3/3", "part"), ("part=x", "part"),
                                     ("device=gpu", "device"), ("merge=maybe", "merge")])
def test_new_keys_are_validated(tmp_path, arg, key, capsys):
    assert main(_argv(tmp_path, arg)) == 2
    assert key in capsys.readouterr().err


def test_gpu_stages_with_workers_are_refused():
    with pytest.raises(ConfigError, match="workers=2 would load captioner on device=cuda:0 once per worker"):
        prepare_config(input="x", output="y", captioner="llava", device="cuda:0", workers=2).validate()
    prepare_config(input="x", output="y", precompute=True, device="cuda:0", workers=2).validate()  # main process
    prepare_config(input="x", output="y", sketch=True, device="cpu", workers=2).validate()


def test_help_and_print_config_know_the_new_keys(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for key in ("  workers=1", "  part=''", "  merge=False"):
        assert key in out
    assert "SLURM_ARRAY_TASK_ID" in out and "combined index.jsonl" in out
    assert main(["recipe=prepare_demo", "workers=4", "part=1/8", "print_config=true"]) == 0
    out = capsys.readouterr().out
    assert "workers: 4" in out and "part: 1/8" in out


def test_dcvc_rt_records_the_qp_it_used():
    assert used_qp("dcvc_rt", -1) == DCVC_DEFAULT_QP == 32
    assert used_qp("dcvc_rt", 16) == 16 and used_qp("x265", -1) == -1
