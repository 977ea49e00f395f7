"""A prepare run killed at any point and re-run gives every clip exactly once and never a partial shard."""

import json
import signal
import subprocess
import sys
import time

import pytest
import webdataset as wds

from conftest import ROOT, make_video, prepare_config, send_keys
from datamodules import sink
from datamodules.prepare import main, run

VIDEOS = 10


def _inputs(tmp_path):
    (tmp_path / "in").mkdir()
    for i in range(VIDEOS):
        make_video(tmp_path / "in" / f"v{i:02d}.mp4", 9, 32, 32, seed=i)
    return dict(input=str(tmp_path / "in"), output=str(tmp_path / "out"), frames=9, height=32, width=32, ds=2,
                dt=4, codec="x264", crf=30, caption_default="a clip", shard_size=2)


def _keys(out):
    return [s["__key__"] for shard in sorted(out.glob("train-*.tar"))
            for s in wds.WebDataset(str(shard), shardshuffle=False)]


def _check_complete(out):
    keys = _keys(out)
    assert sorted(keys) == [f"v{i:02d}_c0000" for i in range(VIDEOS)]  # none missing, none twice
    assert not list(out.glob("*.tmp"))
    index = sink.read_jsonl(out / sink.INDEX)
    assert sorted(r["video"].split("/")[-1] for r in index) == [f"v{i:02d}.mp4" for i in range(VIDEOS)]


def test_sigkill_mid_run_then_rerun(tmp_path):
    cfg = _inputs(tmp_path)
    out = tmp_path / "out"
    # Each video is slowed down by a sleep so the kill lands mid-run, after some shards are finished.
    script = ("import sys, time; import datamodules.prepare as p; orig = p.Pipeline.samples\n"
              "p.Pipeline.samples = lambda self, v: (time.sleep(0.15), orig(self, v))[1]\n"
              "sys.exit(p.main(sys.argv[1:]))\n")
    argv = send_keys(cfg)
    proc = subprocess.Popen([sys.executable, "-c", script, *argv], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not list(out.glob("train-000001.tar")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "prepare finished before it could be killed"
    done_before = len(_keys(out))
    assert 0 < done_before < VIDEOS
    counts = run(prepare_config(**cfg), log=lambda *_: None)
    assert counts["skipped"] == done_before and counts["done"] == VIDEOS - done_before
    _check_complete(out)


def test_kill_between_rename_and_index_is_repaired(tmp_path, monkeypatch):
    """The narrowest window: the shard is renamed into place but its videos are not yet in index.jsonl."""
    cfg = _inputs(tmp_path)
    out = tmp_path / "out"
    real = sink.append_jsonl

    def die_on_second_index_write(path, rows, calls=[]):
        if path.name == sink.INDEX:
            calls.append(1)
            if len(calls) == 2:
                raise KeyboardInterrupt  # as if killed right after os.replace
        real(path, rows)

    monkeypatch.setattr(sink, "append_jsonl", die_on_second_index_write)
    with pytest.raises(KeyboardInterrupt):
        run(prepare_config(**cfg), log=lambda *_: None)
    monkeypatch.setattr(sink, "append_jsonl", real)
    assert len(_keys(out)) == 4 and len(sink.read_jsonl(out / sink.INDEX)) == 2
    with open(out / sink.FAILURES, "a") as torn:  # a complete row whose newline the kill cut off
        torn.write('{"video": "elsewhere.mp4", "reason": "r"}')
    with open(out / sink.INDEX, "a") as torn:  # and a line torn by the kill
        torn.write('{"video": "v0')
    (tmp_path / "in" / "zz_empty.mp4").write_bytes(b"")  # its failure row is appended after the cut-off one
    counts = run(prepare_config(**cfg), log=lambda *_: None)
    assert (counts["skipped"], counts["done"], counts["failed"]) == (4, VIDEOS - 4, 1)
    _check_complete(out)
    for name in (sink.INDEX, sink.FAILURES):
        assert all(json.loads(line) for line in (out / name).read_text().splitlines())


SLOW_RUN = ("import sys, time; import datamodules.prepare as p; orig = p.Pipeline.samples\n"
            "p.Pipeline.samples = lambda self, v: (time.sleep(0.3), orig(self, v))[1]\n"
            "sys.exit(p.main(sys.argv[1:]))\n")


def test_a_second_run_is_refused_at_once_and_a_killed_run_holds_no_lock(tmp_path, capsys):
    cfg = _inputs(tmp_path)
    out = tmp_path / "out"
    argv = send_keys(cfg)
    first = subprocess.Popen([sys.executable, "-c", SLOW_RUN, *argv], cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not (out / "train-000000.tar").exists() and time.time() < deadline and first.poll() is None:
        time.sleep(0.02)
    start = time.time()
    assert main(argv) == 2  # the second run, while the first is writing
    err = capsys.readouterr().err
    assert time.time() - start < 10 and "is being written by another prepare run (pid" in err
    assert f"pid {first.pid} " in err and "prepare.lock" in err
    first.send_signal(signal.SIGKILL)  # the kernel drops its lock with it
    first.wait()
    assert first.returncode == -signal.SIGKILL, "prepare finished before it could be killed"
    counts = run(prepare_config(**cfg), log=lambda *_: None)
    assert counts["skipped"] > 0 and counts["skipped"] + counts["done"] == VIDEOS
    _check_complete(out)


def test_a_torn_last_index_row_gives_no_duplicate(tmp_path):
    cfg = {**_inputs(tmp_path), "shard_size": 4}  # 4 videos per shard: one index write holds 4 rows
    out = tmp_path / "out"
    run(prepare_config(**cfg), log=lambda *_: None)
    text = (out / sink.INDEX).read_text()
    last_shard = json.loads(text.splitlines()[-1])["shard"]
    (out / sink.INDEX).write_text(text[:text.rstrip("\n").rfind("\n") + 12])  # the last row cut mid-way
    rows = sink.read_jsonl(out / sink.INDEX)
    assert len(rows) == VIDEOS - 1 and any(r["shard"] == last_shard for r in rows)  # its shard is still named
    counts = run(prepare_config(**cfg), log=lambda *_: None)
    assert (counts["done"], counts["skipped"]) == (0, VIDEOS)  # the cut video is recorded again, not redone
    _check_complete(out)
    assert len(sink.read_jsonl(out / sink.INDEX)) == VIDEOS


def test_state_files_are_replaced_atomically(tmp_path, monkeypatch):
    import os

    path = tmp_path / "state.json"
    sink.atomic_write(path, "old")
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))  # killed before
    with pytest.raises(KeyboardInterrupt):
        sink.atomic_write(path, "new")
    monkeypatch.setattr(os, "replace", real)
    assert path.read_text() == "old"  # the old file whole, never a partial one
    cfg = _inputs(tmp_path)
    run(prepare_config(**cfg), log=lambda *_: None)
    out = tmp_path / "out"
    (out / "index.jsonl.123.tmp").write_text("partial")  # a rewrite killed before its rename
    run(prepare_config(**cfg), log=lambda *_: None)
    assert not list(out.glob("*.tmp")) and json.loads((out / "prepare_config.json").read_text())["parts"] == 1
