"""External tools, caches, tables and captions files as untrusted (issue 29, class 5): a tool's output is stored
only once it decodes, a hung tool's children die with it; cache cells are checked as records; CSV cells never
start a formula; a sweep's size is bounded; hostile captions files end in one line naming the cause."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from disco_train.codec import vvenc
from disco_train.config import ConfigError
from disco_train.io.video import VideoError

FRAMES = np.zeros((2, 16, 16, 3), np.uint8)


def fake_vvenc(tmp_path, monkeypatch, body: str):
    app = tmp_path / "vvencapp"
    app.write_text("#!/bin/sh\n" + body + "\n")
    app.chmod(0o755)
    monkeypatch.setenv("VVENC_APP", str(app))


@pytest.mark.parametrize("body, phrase", [
    ('while [ "$1" != "-o" ]; do shift; done; : > "$2"', "wrote an empty stream"),
    ('while [ "$1" != "-o" ]; do shift; done; printf "\\000\\000\\000\\001" > "$2"; '
     'head -c 5000 /dev/urandom >> "$2"', "does not decode to 2 frames|wrote an empty stream"),
    ("exit 0", "failed \\(exit 0\\)"),
])
def test_a_tool_writing_garbage_or_nothing_stores_nothing(tmp_path, monkeypatch, body, phrase):
    fake_vvenc(tmp_path, monkeypatch, body)
    with pytest.raises(VideoError, match=phrase):
        vvenc.encode(FRAMES, 24.0, 32)


def test_a_hung_tool_is_killed_with_its_children(tmp_path, monkeypatch):
    pids = tmp_path / "pids"
    fake_vvenc(tmp_path, monkeypatch, f"sleep 300 & echo $! > {pids}; wait")
    t = time.perf_counter()
    with pytest.raises(VideoError, match="did not finish 2 frames of 16x16 in 1 s"):
        vvenc.encode(FRAMES, 24.0, 32, timeout=1)
    assert time.perf_counter() - t < 20
    child = int(pids.read_text())
    for _ in range(50):  # the kernel reaps the killed grandchild (re-parented to init) shortly
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the tool's child {child} outlived the timeout")


def test_cache_cells_are_records_of_their_own_key(tmp_path):
    from disco_train.benchmark.cache import Cache

    cache = Cache(tmp_path)
    a, b = "a" * 64, "b" * 64
    cache.put(a, {"video": "v", "bits": 1})
    cache.put(b, {"video": "w", "bits": 2})
    assert cache.get(a)[0]["bits"] == 1
    path_a, path_b = cache._paths(a)[0], cache._paths(b)[0]
    path_b.write_text(path_a.read_text())  # a cell copied over another
    assert cache.get(b) is None and cache.get(a) is not None  # recomputed, not a duplicate row
    for junk in ("[]", "null", '"x"', "{}", '{"key": "' + a + '", "features": 3}'):
        path_a.write_text(junk)
        assert cache.get(a) is None


def test_csv_cells_never_start_a_formula(tmp_path):
    from disco_train.benchmark.report import csv_text
    from disco_train.metrics.evaluate import _write_rows

    rows = [{"video": '=HYPERLINK("http://x","y")', "caption": "+1 dog", "who": "@me", "bd": -12.5, "s": "-3"}]
    text = csv_text(rows, list(rows[0]))
    assert "'=HYPERLINK" in text and "'+1 dog" in text and "'@me" in text and ",-12.5," in text and ",-3" in text
    _write_rows(tmp_path / "r.csv", list(rows[0]), rows, append=False)
    assert "'=HYPERLINK" in (tmp_path / "r.csv").read_text()


def test_a_million_point_sweep_is_refused_at_once():
    from disco_train.commands.sweep import grid

    values = [str(v) for v in range(1000)]
    t = time.perf_counter()
    with pytest.raises(ConfigError, match="1000 × 1000 values make more than 256 runs"):
        grid({"optim.lr": values, "seed": values})
    assert time.perf_counter() - t < 1


@pytest.mark.parametrize("name, content, phrase", [
    ("c.jsonl", b"\x00\xff\xfe binary \x80\x81", "not UTF-8 text"),
    ("c.jsonl", b'["a.mp4", "a dog"]\n', "c.jsonl:1: a JSON list; each line is an object"),
    ("c.jsonl", b'{"video": "a.mp4", "caption": "x"}\n{"caption": "y"}\n', "row 2 lacks 'video'"),
    ("c.jsonl", b'{"video": "a.mp4", "caption": \n', "c.jsonl:1: not JSON"),
    ("c.csv", b"video,caption\n" + b"a.mp4," + b"x" * (2 << 20) + b"\n", "c.csv:2: a line longer than 1,048,576"),
    ("c.csv", b"video,caption\na.mp4,x\n,y\n", "row 2 lacks 'video'"),
])
def test_hostile_captions_files_end_in_one_line(tmp_path, name, content, phrase):
    from disco_train.modalities.captions import load

    (tmp_path / name).write_bytes(content)
    with pytest.raises(ConfigError, match=phrase):
        load(str(tmp_path / name), "video", "caption")


def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path):
    from disco_train.modalities.captions import load

    (tmp_path / "c.csv").write_bytes("\ufeffvideo,caption\na.mp4,a dog\n".encode())
    assert load(str(tmp_path / "c.csv"), "video", "caption").lookup("a.mp4")[0] == "a dog"
    (tmp_path / "c.jsonl").write_bytes("\ufeff".encode() + json.dumps({"video": "a.mp4", "caption": "x"}).encode())
    assert load(str(tmp_path / "c.jsonl"), "video", "caption").lookup("a.mp4")[0] == "x"
