"""The benchmark in parts (`part=K/N`, merge=true), external methods (`ext:<name>`) and `decode` of many files:
cells dealt in balanced DiSCo batches, parts that merge to exactly a one-process run's results (also after one is
SIGKILLed and re-run), a merge that names the missing part, an external codec driven by two commands in every
table and plot, and a folder of .disco files decoded once by two processes."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import ROOT
from disco_train.__main__ import main
from disco_train.benchmark import external, parts, runner
from disco_train.benchmark.content import write_natural_set
from disco_train.config.recipe import resolve
from disco_train.io.video import VideoError

PY = sys.executable
SCRIPT = ROOT / "tests" / "ext_x264.py"
EXT = [f"ext.py264.encode={PY} {SCRIPT} encode {{input}} {{bitstream}} {{width}} {{height}} {{qp}}",
       f"ext.py264.decode={PY} {SCRIPT} decode {{bitstream}} {{output}}"]
CHILD = "import sys; from disco_train.__main__ import main; sys.exit(main(sys.argv[1:]))"


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _cell(method, label, key):
    return SimpleNamespace(point=SimpleNamespace(method=method, label=label), key=key)


def test_cells_are_dealt_in_whole_disco_batches_balanced_over_the_parts():
    cells = [_cell("disco", f"p{p}", f"d{p}{v}") for p in range(3) for v in range(5)]
    cells += [_cell("x264", f"qp{q}", f"x{q}{v}") for q in range(3) for v in range(5)]
    owner = parts.owners(cells, {"disco"}, batch_size=2, count=3)
    assert owner == parts.owners(list(cells), {"disco"}, 2, 3)  # every part deals alike
    disco = [sum(1 for c in cells[:15] if owner[c.key] == k) for k in range(3)]
    assert disco == [5, 5, 5]  # 9 batches (2, 2, 1 per point), 3 per part
    for p in range(3):  # a batch stays whole: clips 0-1 and 2-3 of each point share a part
        assert owner[f"d{p}0"] == owner[f"d{p}1"] and owner[f"d{p}2"] == owner[f"d{p}3"]
    assert sorted(sum(1 for c in cells[15:] if owner[c.key] == k) for k in range(3)) == [5, 5, 5]
    assert set(parts.owners(cells, {"disco"}, 2, 1).values()) == {0}


def test_the_part_comes_from_the_scheduler(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_STEP_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert parts.share_of("") == parts.Share(2, 4, "RANK/WORLD_SIZE 2/4")
    assert parts.share_of("1/3") == parts.Share(1, 3, "part=")  # part= wins
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert runner.resolve_device("cuda") == "cuda:1" and runner.resolve_device("cpu") == "cpu"


@pytest.fixture(scope="module")
def natural(tmp_path_factory):
    folder = tmp_path_factory.mktemp("natural")
    write_natural_set(folder, videos=2, frames=5, height=128, width=128)
    return folder


def _keys(refs, out, *more):
    return ["recipe=benchmark_debug", f"refs={refs}", f"out={out}", "size=128x128", "frames=5", "metrics.names=psnr",
            *more]


def test_merge_with_a_part_missing_exits_2_naming_it(natural, tmp_path, capsys):
    keys = _keys(natural, tmp_path, "methods=x264", "anchor=x264", "x264.values=[45,30]")
    assert main(["benchmark", *keys, "part=0/2"]) == 0
    assert "the tables wait for the other parts" in capsys.readouterr().out
    assert main(["benchmark", *keys, "merge=true"]) == 2
    err = capsys.readouterr().err
    assert "part 1/2 has not finished" in err and "part=1/2" in err and not (tmp_path / "results.csv").exists()
    assert main(["benchmark", *keys, "part=1/2"]) == 0  # the last part writes the tables
    assert "wrote results.csv" in capsys.readouterr().out and len(_rows(tmp_path / "results.csv")) == 4
    lost = next(iter((tmp_path / "cache").glob("*/*.json")))
    video, point = (json.loads(lost.read_text())[k] for k in ("video", "point"))
    lost.unlink()
    assert main(["benchmark", *keys, "merge=true"]) == 2
    err = capsys.readouterr().err
    assert re.search(rf"part [01]/2 lacks 1 cell\(s\) \({video} x264 {point}\)\. Run part=[01]/2", err), err
    assert main(["benchmark", *keys, "merge=true", "part=0/1"]) == 2  # one process's cache, checked the same way
    assert f"part 0/1 lacks 1 cell(s) ({video} x264 {point})" in capsys.readouterr().err


def test_an_external_method_is_in_every_table_and_plot(natural, tmp_path, monkeypatch):
    """x264 by a Python script through two shell commands: the same frames as the built-in x264 (equal PSNR);
    its rate is the stream file, which keeps the 637-byte encoder SEI the built-in one strips."""
    from disco_train.metrics import plot

    drawn = {}  # png name -> the legend labels of its curves
    figure = plot.rd_figure
    monkeypatch.setattr(plot, "rd_figure", lambda panels, png, *a, **k: drawn.update(
        {Path(png).name: [s.label for series in panels.values() for s in series]}) or figure(panels, png, *a, **k))
    cfg, _, _ = resolve(_keys(natural, tmp_path, "methods=x264,ext:py264", "anchor=x264", "max_videos=1",
                              "x264.values=[42,36,30,24]", "ext.py264.qp=[42,36,30,24]", *EXT))
    summary = runner.run(cfg, "(test)", log=lambda *_: None)
    results = _rows(tmp_path / "results.csv")
    ext = {r["point"]: r for r in results if r["method"] == "ext:py264"}
    ref = {r["point"]: r for r in results if r["method"] == "x264"}
    assert sorted(ext) == sorted(ref) and all(ext[p]["psnr"] == ref[p]["psnr"] for p in ref)
    assert all(0 < int(ext[p]["bits"]) - int(ref[p]["bits"]) < 8 * 1000 for p in ref)
    assert "| ext:py264 |" in (tmp_path / "bdrate.md").read_text().splitlines()[2]
    assert summary["table"]["psnr"]["ext:py264"]["value"] > 0  # the SEI costs it rate, nothing else
    for png in ("rd_psnr.png", "rd_all.png"):
        assert any(label.startswith("ext:py264") for label in drawn[png]), drawn
        assert (tmp_path / png).stat().st_size > 0
    assert "ext:py264: encode `" in (tmp_path / "report.md").read_text()
    record = next(p for p in (tmp_path / "cache").glob("*/*.json") if "ext:py264" in p.read_text())
    assert "encoding" in record.read_text()  # the command's stderr is kept in the cell


def test_external_commands_are_timed_out_checked_and_named(tmp_path):
    frames = np.zeros((3, 16, 16, 3), np.uint8)

    def cfg(**kw):
        ext = SimpleNamespace(encode=f"{PY} {SCRIPT} encode {{input}} {{bitstream}} 16 16 {{qp}}",
                              decode=f"{PY} {SCRIPT} decode {{bitstream}} {{output}}", qp=[30],
                              qp_raises_quality=False, timeout=60.0, version="")
        ext.__dict__.update(kw)
        return SimpleNamespace(ext={"t": ext})

    point = external.ladder(cfg(), "ext:t")[0]
    coded = external.code(cfg(), point, frames, 25.0)
    assert coded.recon.shape == frames.shape and coded.bits > 0 and "qp 30" in coded.log["encode_stderr"]
    start = time.perf_counter()
    with pytest.raises(VideoError, match="did not finish in 1 s"):  # the shell and its child are killed
        external.code(cfg(encode=f"{PY} {SCRIPT} encode {{input}} {{bitstream}} 16 16 1 --sleep=30", timeout=1.0),
                      point, frames, 25.0)
    assert time.perf_counter() - start < 20
    with pytest.raises(external.ExternalError, match="= 2 frames of 16x16 YUV 4:2:0; the clip has 3"):
        external.code(cfg(decode=f"{PY} {SCRIPT} decode {{bitstream}} {{output}} --drop=1"), point, frames, 25.0)
    with pytest.raises(external.ExternalError, match=r"failed \(exit 3\).*stderr: broken"):
        external.code(cfg(encode="echo broken >&2; exit 3"), point, frames, 25.0)
    with pytest.raises(external.ExternalError, match="wrote no bitstream"):
        external.code(cfg(encode="true"), point, frames, 25.0)


@pytest.mark.parametrize("overrides, message", [
    (["methods=x264,ext:nope"], "ext:nope needs ext.nope.encode"),
    (["methods=ext:a", "anchor=ext:a", "ext.a.encode=x {input}", "ext.a.decode=y {bitstream} {output}"],
     "ext.a.encode: needs {bitstream}"),
    (["ext.a.encode=x {input} {bitstream} {speed}"], "unknown placeholder(s) ['speed']"),
    (["part=2/2"], "part: '2/2' needs 0 <= K < N"),
])
def test_bad_external_and_part_settings_exit_2_naming_the_key(overrides, message, capsys):
    assert main(["benchmark", "recipe=benchmark_debug", "refs=x", "methods=x264", "anchor=x264", *overrides]) == 2
    assert message in capsys.readouterr().err


def test_decode_lists_a_folder_a_glob_or_a_list(tmp_path, capsys):
    from disco_train.codec.batch import is_batch, list_inputs
    from disco_train.codec.sender import CodecError

    for name in ("b.disco", "a.disco", "sub/c.disco", "note.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in list_inputs(str(tmp_path))] == ["a.disco", "b.disco", "c.disco"]
    assert [p.name for p in list_inputs(f"{tmp_path}/*.disco")] == ["a.disco", "b.disco"]
    assert len(list_inputs(f"{tmp_path}/a.disco,{tmp_path}/b.disco")) == 2
    assert not is_batch(str(tmp_path / "a.disco")) and is_batch(str(tmp_path))
    (tmp_path / "sub" / "a.disco").write_bytes(b"x")
    with pytest.raises(CodecError, match=r"several files named \['a'\]"):
        list_inputs(str(tmp_path))
    with pytest.raises(CodecError, match="no such file"):
        list_inputs(f"{tmp_path}/a.disco,{tmp_path}/zz.disco")
    for bad, message in (("part=2/2", "part: '2/2' needs 0 <= K < N"), ("batch_size=0", "batch_size: must be >= 1")):
        assert main(["decode", str(tmp_path), str(tmp_path / "out"), "export=none", bad]) == 2
        assert message in capsys.readouterr().err


# ---- slow: several processes --------------------------------------------------------------------------------
from test_benchmark import VVENC, debug_inputs, needs_vvenc  # noqa: E402,F401  (the demo videos and a tiny export)


def _env():
    env = dict(os.environ)
    if VVENC.is_file() and not env.get("VVENC_APP"):
        env["VVENC_APP"] = str(VVENC)
    return env


def _spawn(*argv):
    return subprocess.Popen([PY, "-c", CHILD, *argv], cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _committed(out):
    return set((out / "cache").glob("*/*.json"))


@pytest.mark.slow
@needs_vvenc
def test_three_parts_give_the_results_of_one_process(debug_inputs, tmp_path, monkeypatch, capsys):
    videos, export_dir = debug_inputs
    monkeypatch.setenv("VVENC_APP", os.environ.get("VVENC_APP") or str(VVENC))
    keys = ["benchmark", "recipe=benchmark_debug", f"refs={videos}", f"export={export_dir}", "max_videos=2",
            f"disco.captions={videos / 'captions.csv'}", "methods=x264,vvenc,disco", "x264.values=[45,29]",
            "vvenc.qp=[51,35]"]
    out = tmp_path / "parts"
    cfg, _, _ = resolve([*keys[1:], f"out={tmp_path / 'plan'}", "part=1/3"])  # the same cell keys as in out
    killed = _spawn(*keys, f"out={out}", "part=1/3")  # SIGKILLed after its first cell
    others = [_spawn(*keys, f"out={out}", f"part={k}/3") for k in (0, 2)]
    plan = runner.make_plan(cfg, cfg.metrics.name_list, "cpu", lambda *_: None)
    owner = parts.owners(plan.cells, {v.method for v in plan.variants}, cfg.disco.batch_size, 3)
    mine = {out / "cache" / key[:2] / f"{key}.json" for key, k in owner.items() if k == 1}
    deadline = time.time() + 180
    while not mine & _committed(out) and killed.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    killed.kill()
    killed.wait(timeout=30)
    before = mine & _committed(out)
    assert main([*keys, f"out={tmp_path / 'one'}"]) == 0  # the one-process run, meanwhile
    logs = [p.communicate(timeout=300)[0] for p in others]
    assert [p.returncode for p in others] == [0, 0], logs
    assert not (out / "results.csv").exists()
    capsys.readouterr()
    assert main([*keys, f"out={out}", "merge=true"]) == 2
    assert "part 1/3 has not finished" in capsys.readouterr().err
    cfg, _, _ = resolve([*keys[1:], f"out={out}", "part=1/3"])
    summary = runner.run(cfg, "(test)", log=lambda *_: None)  # resumes only its cells, then writes the tables
    assert 1 <= len(before) == summary["cached"] and summary["computed"] + summary["cached"] == 5
    assert len(_committed(out)) == 14 and summary["files"]
    strip = lambda r: {k: r[k] for k in ("video", "method", "point", "bits", "bpp", "psnr", "ssim")}  # noqa: E731
    assert [strip(r) for r in _rows(out / "results.csv")] == [strip(r) for r in _rows(tmp_path / "one" /
                                                                                      "results.csv")]
    assert (out / "bdrate.md").read_text() == (tmp_path / "one" / "bdrate.md").read_text()


@pytest.mark.slow
def test_two_processes_decode_a_folder_once(debug_inputs, tmp_path, capsys):
    from disco_train.codec import container as C
    from disco_train.codec.sender import send_video
    from disco_train.config.send import SendSettings
    from disco_train.io.video import read_video

    videos, export_dir = debug_inputs
    streams = tmp_path / "streams"
    streams.mkdir()
    sources = sorted(videos.glob("*.mp4"))
    for i in range(6):
        frames, fps = read_video(sources[i % len(sources)], 17)
        C.write(streams / f"clip{i}.disco", send_video(frames[:, :64, :64], fps, f"clip {i}",
                                                       SendSettings(ds=4, dt=4, codec="x264", crf=30)))
    argv = ["decode", str(streams), str(tmp_path / "out"), f"export={export_dir}", "steps=2", "batch_size=3",
            "device=cpu"]
    procs = [_spawn(*argv, f"part={k}/2") for k in range(2)]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    wrote = [line.split(" -> ")[1] for log in logs for line in log.splitlines() if " -> " in line]
    assert sorted(Path(w).name for w in wrote) == [f"clip{i}.mkv" for i in range(6)]  # each once
    assert all("3 decoded" in log for log in logs)
    for i in range(6):
        frames, _ = read_video(tmp_path / "out" / f"clip{i}.mkv")
        assert frames.shape == (17, 64, 64, 3)
    assert main([*argv, "part=0/2"]) == 0 and "0 decoded, 3 already there" in capsys.readouterr().out
