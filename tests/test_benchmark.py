"""`python -m disco_train benchmark`: the clip protocol on every input kind, every method on tiny inputs, honest
rates, the cache (changed settings, kill and resume), the BD-rate table against bjontegaard, benchmark_debug on
the demo videos, and the codecs' ranking on natural-looking content."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

from conftest import ROOT
from disco_train.__main__ import main
from disco_train.benchmark import runner
from disco_train.benchmark import tables as T
from disco_train.benchmark.content import natural_video, write_natural_set
from disco_train.codec import backends
from disco_train.config.recipe import resolve
from disco_train.io import rawyuv
from disco_train.io.video import read_video, write_lossless

VVENC = ROOT.parent / "shared" / "tools" / "vvenc" / "vvencapp"
needs_vvenc = pytest.mark.skipif(not VVENC.is_file() and not os.environ.get("VVENC_APP"), reason="no vvencapp")


@pytest.fixture(autouse=True)
def _vvenc(monkeypatch):
    if VVENC.is_file() and not os.environ.get("VVENC_APP"):
        monkeypatch.setenv("VVENC_APP", str(VVENC))


@pytest.fixture(scope="module")
def refs(tmp_path_factory):
    """Three sources of different kinds, sizes, rates and lengths: FFV1 .mkv, 10-bit .yuv named like UVG, .y4m."""
    import av

    folder = tmp_path_factory.mktemp("refs")
    write_lossless(folder / "pan.mkv", natural_video(12, 72, 96, seed=1), 25.0)
    ten = [(av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p").to_ndarray().astype(np.uint16)
            * 4) for f in natural_video(10, 80, 80, seed=2)]
    rawyuv.write_yuv(folder / "Leaves_80x80_30fps_420_10bit_YUV.yuv", ten)
    with open(folder / "zoom.y4m", "wb") as f:
        f.write(b"YUV4MPEG2 W96 H64 F24:1 C420jpeg\n")
        for frame in natural_video(9, 64, 96, seed=3):
            f.write(b"FRAME\n" + av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(
                format="yuv420p").to_ndarray().tobytes())
    return folder


def config(*overrides):
    cfg, _, _ = resolve(["recipe=benchmark_debug", *overrides])
    return cfg


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def run(out, *overrides, log=lambda *_: None):
    cfg = config(f"out={out}", *overrides)
    return runner.run(cfg, "(test)", log=log)


def test_standard_codecs_on_every_input_kind(refs, tmp_path):
    summary = run(tmp_path, f"refs={refs}", "methods=x264,x265", "anchor=x265", "frames=9", "x264.values=[45,35]",
                  "x265.values=[45,35]", "max_videos=0")
    assert summary["computed"] == 3 * 4 and summary["cached"] == 0
    names = {"results.csv", "curves.csv", "bdrate.csv", "bdrate.md", "rd_psnr.png", "rd_ssim.png", "rd_all.png",
             "report.md"}
    assert names <= {p.name for p in summary["files"]}
    table = rows(tmp_path / "results.csv")
    assert {r["video"] for r in table} == {"pan", "Leaves_80x80_30fps_420_10bit_YUV", "zoom"}
    first = next(r for r in table if r["video"] == "zoom" and r["method"] == "x264" and r["point"] == "qp45")
    clip, fps = read_video(tmp_path / "refs" / "zoom.mkv")  # the lossless reference clip: 96×64 cut to 64×64
    assert clip.shape == (9, 64, 64, 3) and fps == 24.0
    data, _ = backends.encode("x264", clip, 24.0, qp=45)
    assert int(first["bits"]) == 8 * len(data)  # the stored stream, no SEI: nothing else is counted
    assert float(first["bpp"]) == pytest.approx(8 * len(data) / (9 * 64 * 64), rel=1e-5)
    assert float(first["kbps"]) == pytest.approx(8 * len(data) * 24 / 9 / 1000, rel=1e-5)
    assert int(first["container_bits"]) > 0 and float(first["psnr"]) > 15
    assert "x264 - core" in (tmp_path / "report.md").read_text()
    table = parse_bdrate_csv(tmp_path / "bdrate.csv")
    assert [(r["metric"], r["method"], r["anchor"]) for r in table] == [
        (m, x, "x265") for m in ("psnr", "ssim") for x in ("x264", "x265")]


def test_changed_settings_change_only_their_cells(refs, tmp_path):
    def keys(*overrides):
        cfg = config(f"out={tmp_path}", f"refs={refs}", "methods=x264,x265", "anchor=x264", "frames=9", *overrides)
        names = cfg.metrics.name_list
        return {(c.clip.name, c.point.method, c.point.label): c.key for c in
                runner.make_plan(cfg, names, "cpu", lambda *_: None).cells}

    base = keys()
    assert len(base) == 3 * 6 and len(set(base.values())) == len(base)
    preset = keys("x265.preset=fast")
    assert {k for k in base if base[k] != preset[k]} == {k for k in base if k[1] == "x265"}
    assert keys("anchor=x265", "interpolation=pchip", "device=cpu", "disco.batch_size=3") == base
    assert set(keys("metrics.names=psnr").values()).isdisjoint(base.values())  # the debug recipe scores psnr,ssim
    grown = keys("x264.values=[45,37,29,21]")
    assert {k: v for k, v in grown.items() if k in base} == base  # new points, old ones kept
    assert set(keys("size=48x48").values()).isdisjoint(base.values())
    # a weight file changes the cells of the metrics that load it, and no others
    weights = tmp_path / "w"
    (weights / "lpips" / "v0.1").mkdir(parents=True)
    for name in ("alexnet-owt-7be5be79.pth", "lpips/v0.1/alex.pth", "pt_inception-2015-12-05-6726825d.pth"):
        (weights / name).write_bytes(b"0")
    lpips = keys("metrics.names=psnr,lpips", f"metrics.weights_dir={weights}")
    (weights / "pt_inception-2015-12-05-6726825d.pth").write_bytes(b"00")
    assert keys("metrics.names=psnr,lpips", f"metrics.weights_dir={weights}") == lpips
    (weights / "lpips" / "v0.1" / "alex.pth").write_bytes(b"00")
    assert set(keys("metrics.names=psnr,lpips", f"metrics.weights_dir={weights}").values()).isdisjoint(lpips.values())


def test_the_output_folder_is_not_a_source(tmp_path):
    (tmp_path / "out" / "refs").mkdir(parents=True)
    for path in ("a.yuv", "b/c.mkv", "out/refs/a.mkv", "notes.txt"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(b"")
    found = runner.R.find_videos(str(tmp_path), exclude=tmp_path / "out")
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a.yuv", "b/c.mkv"]
    with pytest.raises(ValueError, match="several videos named"):
        runner.R.find_videos(str(tmp_path))  # a.yuv and out/refs/a.mkv share the stem


def test_bad_settings_exit_2_with_the_key(capsys):
    for argv, message in ((["methods=x264,x266"], "methods: unknown ['x266']"),
                          (["anchor=vvenc", "methods=x264"], "anchor: 'vvenc' is not one of the methods x264"),
                          (["size=64"], "size: expected WIDTHxHEIGHT"),
                          (["x264.values=[60]"], "x264.values: one or more qp values in 0-51"),
                          (["methods=x264,disco", "anchor=x264", "export=''"], "export: the disco method needs"),
                          (["dcvc_rt.stream_format=mp4"], "dcvc_rt.stream_format: 'official' or 'disco'"),
                          (["metrics.fvmd.protocol=paper"], "metrics.fvmd.protocol: protocol must be one of package, "
                                                            "definition"),
                          (["fvmd_protocol=package"], "fvmd_protocol: unknown key (from command line): it is now "
                                                      "'metrics.fvmd.protocol'"),
                          (["metrics=psnr"], "metrics: now a section (from command line); this value is "
                                             "'metrics.names' (e.g. metrics.names=psnr)"),
                          (["refs=/nonexistent/videos", "methods=x264", "anchor=x264"], "refs=/nonexistent")):
        assert main(["benchmark", "recipe=benchmark_debug", *argv]) == 2
        assert message in capsys.readouterr().err, argv


def _curve(rates, quality):
    return [{"method": "m", "bpp": r, "q": q} for r, q in zip(rates, quality)]


def test_bdrate_table_matches_bjontegaard_and_reports_problems():
    import bjontegaard

    anchor = [0.01, 0.02, 0.04, 0.08]
    anchor_q = [30.0, 33.0, 35.5, 37.5]
    test_r, test_q = [0.008, 0.016, 0.03, 0.07], [30.5, 33.2, 35.7, 38.0]
    curves = ([{"method": "a", "point": f"p{i}", "bpp": r, "psnr": q} for i, (r, q) in enumerate(zip(anchor, anchor_q))]
              + [{"method": "b", "point": f"p{i}", "bpp": r, "psnr": q} for i, (r, q) in enumerate(zip(test_r, test_q))]
              + [{"method": "flat", "point": "p0", "bpp": 0.01, "psnr": 31.0},
                 {"method": "flat", "point": "p1", "bpp": 0.02, "psnr": 30.0}]
              + [{"method": "far", "point": f"p{i}", "bpp": r, "psnr": q} for i, (r, q) in
                 enumerate(zip([0.1, 0.2], [50.0, 52.0]))]
              + [{"method": "one", "point": "p0", "bpp": 0.02, "psnr": 33.0}])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = bjontegaard.bd_rate(anchor, anchor_q, test_r, test_q, method="akima",
                                       require_matching_points=False)
    table = T.bdrate_table(curves, ["a", "b", "flat", "far", "one"], ["psnr"], "a", set(), "akima", 0.75)["psnr"]
    assert table["b"]["value"] == pytest.approx(expected, rel=1e-9) and expected < 0 and table["b"]["status"] == "ok"
    assert table["a"] == {"status": "anchor", "value": 0.0, "overlap": 1.0, "detail": ""}
    assert table["flat"]["value"] is None and table["flat"]["status"] == "not_monotonic"
    assert "flat: curve not monotonic" in table["flat"]["detail"]
    assert T.cell_text(table["far"]) == "— (no overlap of the quality ranges)" and table["far"]["overlap"] == 0
    assert T.cell_text(table["one"]) == "— (one: too few points)" and table["one"]["status"] == "too_few_points"
    partial = [{"method": "c", "point": f"p{i}", "bpp": r, "psnr": q} for i, (r, q) in
               enumerate(zip([0.03, 0.06, 0.12], [35.0, 37.0, 39.0]))]
    cell = T.bdrate_table(curves + partial, ["a", "c"], ["psnr"], "a", set(), "akima", 0.75)["psnr"]["c"]
    # (37.5 - 35) / (39 - 30) = 28 %: not a number at min_overlap 0.75, a number at 0.25
    assert cell == {"status": "low_overlap", "value": None, "overlap": pytest.approx(2.5 / 9),
                    "detail": "quality ranges overlap 28% < min_overlap 75%"}
    cell = T.bdrate_table(curves + partial, ["a", "c"], ["psnr"], "a", set(), "akima", 0.25)["psnr"]["c"]
    assert cell["status"] == "ok" and cell["value"] < 0
    lpips = [{"method": "a", "point": "p", "bpp": r, "lpips": q} for r, q in zip(anchor, [0.5, 0.4, 0.3, 0.25])]
    lpips += [{"method": "b", "point": "p", "bpp": r, "lpips": q} for r, q in zip(test_r, [0.45, 0.38, 0.3, 0.2])]
    cell = T.bdrate_table(lpips, ["a", "b"], ["lpips"], "a", set(), "akima", 0.6)["lpips"]["b"]  # overlap 2/3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mirrored = bjontegaard.bd_rate(anchor, [-0.5, -0.4, -0.3, -0.25], test_r, [-0.45, -0.38, -0.3, -0.2],
                                       method="akima")
    assert cell["value"] == pytest.approx(mirrored)  # lower-is-better metrics: the same integral, mirrored


NUMERIC = ("bd_rate_percent", "overlap", "min_overlap")


def parse_bdrate_csv(path):
    """bdrate.csv as a program reads it: csv, then float() on every non-empty numeric cell."""
    table = rows(path)
    for row in table:
        for column in NUMERIC:
            row[column] = float(row[column]) if row[column] else None
        assert (row["bd_rate_percent"] is not None) == (row["status"] in ("ok", "anchor")), row
    return table


def test_bdrate_files_hold_numbers_only_where_they_are_meaningful(tmp_path):
    from types import SimpleNamespace

    from disco_train.benchmark.report import BDRATE_COLUMNS, bdrate_markdown, bdrate_rows, csv_text

    anchor = [{"method": "a", "point": f"p{i}", "bpp": r, "psnr": q} for i, (r, q) in
              enumerate(zip([0.01, 0.02, 0.04, 0.08], [30.0, 33.0, 35.5, 37.5]))]
    good = [dict(c, method="b", bpp=c["bpp"] * 0.8) for c in anchor]
    corner = [{"method": "c", "point": f"p{i}", "bpp": r, "psnr": q} for i, (r, q) in
              enumerate(zip([0.03, 0.06, 0.12], [35.0, 37.0, 39.0]))]  # overlap 28 %
    lone = [{"method": "d", "point": "p0", "bpp": 0.02, "psnr": 33.0}]
    cfg = SimpleNamespace(anchor="a", min_overlap=0.75, interpolation="akima")
    table = T.bdrate_table(anchor + good + corner + lone, list("abcd"), ["psnr"], "a", set(), "akima", 0.75)
    (tmp_path / "bdrate.csv").write_text(csv_text(bdrate_rows(table, list("abcd"), cfg), BDRATE_COLUMNS))
    parsed = parse_bdrate_csv(tmp_path / "bdrate.csv")
    assert list(parsed[0]) == BDRATE_COLUMNS
    assert [(r["method"], r["status"]) for r in parsed] == [("a", "anchor"), ("b", "ok"), ("c", "low_overlap"),
                                                           ("d", "too_few_points")]
    assert parsed[1]["bd_rate_percent"] == pytest.approx(-20.0, abs=1e-3) and parsed[1]["overlap"] == 1.0
    assert parsed[2]["overlap"] == pytest.approx(2.5 / 9, abs=1e-5) and parsed[2]["min_overlap"] == 0.75
    md = bdrate_markdown(table, list("abcd"), cfg)
    assert "| psnr | 0 (anchor) | -20.00 | — [1] | — [2] |" in md and "min_overlap = 75%" in md
    assert "1. quality ranges overlap 28% < min_overlap 75%" in md and "2. d: too few points" in md


def test_a_grid_is_scored_by_its_pareto_front():
    points = [(0.01, 30.0), (0.02, 29.0), (0.02, 31.0), (0.04, 33.0), (0.05, 32.0)]
    assert T.pareto(points, lower_is_better=False) == [0, 2, 3]
    assert T.pareto([(r, -q) for r, q in points], lower_is_better=True) == [0, 2, 3]
    curves = [{"method": "g", "point": f"p{i}", "bpp": r, "psnr": q} for i, (r, q) in enumerate(points)]
    assert [c["point"] for c in T.method_curve(curves, "g", "psnr", grid=True)] == ["p0", "p2", "p3"]
    assert len(T.method_curve(curves, "g", "psnr", grid=False)) == 5


# ---- slow: end to end ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def debug_inputs(tmp_path_factory):
    """The demo videos (`make demo`) and a tiny trained export, as the benchmark_debug recipe expects them."""
    from datamodules.demo import make_demo
    from disco_train.train.export import export
    from test_export import CODEC, make_run

    root = tmp_path_factory.mktemp("debug")
    videos = make_demo(root / "videos", videos=4, seed=1)
    _, ckpt = make_run(root)
    return videos, export(ckpt, root / "export", codec=CODEC)


@pytest.mark.slow
@needs_vvenc
def test_benchmark_debug_on_the_demo_videos(debug_inputs, tmp_path, capsys):
    videos, export_dir = debug_inputs
    argv = ["benchmark", "recipe=benchmark_debug", f"refs={videos}", f"export={export_dir}", f"out={tmp_path}",
            f"disco.captions={videos / 'captions.csv'}"]
    start = time.perf_counter()
    assert main(argv) == 0
    elapsed = time.perf_counter() - start
    printed = capsys.readouterr().out
    assert "42 cells computed" in printed and elapsed < 120, elapsed
    for name in ("results.csv", "curves.csv", "bdrate.csv", "bdrate.md", "rd_psnr.png", "rd_ssim.png", "report.md"):
        assert (tmp_path / name).stat().st_size > 0, name
    results = rows(tmp_path / "results.csv")
    assert len(results) == 3 * (3 + 3 + 3 + 2 + 3)
    assert {r["method"] for r in results} == {"x264", "x265", "vvenc", "dcvc_rt", "disco"}
    disco = [r for r in results if r["method"] == "disco"]
    assert all(int(r["overhead_bits"]) == 8 * (32 + 12 * 2 + 4) for r in disco)  # header + 2 table entries + crc
    assert all(int(r["bits"]) == int(r["overhead_bits"]) + int(r["text_bits"]) + int(r["video_bits"]) for r in disco)
    table = rows(tmp_path / "bdrate.csv")
    methods = ["x264", "x265", "vvenc", "dcvc_rt", "disco"]
    assert [(r["metric"], r["method"]) for r in table] == [(m, x) for m in ("psnr", "ssim") for x in methods]
    assert table[2]["status"] == "anchor" and float(table[2]["bd_rate_percent"]) == 0
    assert len(rows(tmp_path / "curves.csv")) == 14
    assert main(argv) == 0 and "0 cells computed, 42 from the cache" in capsys.readouterr().out


def _committed(folder):
    return {p: p.stat().st_mtime_ns for p in folder.glob("cache/*/*.json")}


@pytest.mark.slow
def test_a_killed_run_continues_where_it_stopped(tmp_path):
    refs = tmp_path / "refs"
    write_natural_set(refs, videos=2, frames=17, height=96, width=96)
    keys = [f"refs={refs}", "methods=x264,x265", "anchor=x264", "x264.values=[47,43,39,35,31,27]",
            "x265.values=[47,43,39,35,31,27]", "x264.preset=slow", "x265.preset=slow", "metrics.names=psnr,ssim"]
    code = ("import sys; from disco_train.__main__ import main; sys.exit(main(sys.argv[1:]))")
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", code, "benchmark", "recipe=benchmark_debug", f"out={out}", *keys],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while len(_committed(out)) < 4 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    before = _committed(out)
    assert 4 <= len(before) < 24, len(before)
    summary = run(out, *keys)
    assert (summary["cached"], summary["computed"]) == (len(before), 24 - len(before))
    after = _committed(out)
    assert all(after[p] == t for p, t in before.items())  # the finished cells were not computed again
    fresh = run(tmp_path / "fresh", *keys)
    assert fresh["computed"] == 24
    strip = lambda r: {k: r[k] for k in ("video", "method", "point", "bits", "psnr", "ssim")}  # noqa: E731
    assert [strip(r) for r in rows(out / "results.csv")] == [strip(r) for r in rows(tmp_path / "fresh" /
                                                                                   "results.csv")]


@pytest.mark.slow
@needs_vvenc
def test_newer_codecs_win_on_natural_content(tmp_path):
    """x265 needs less rate than x264, and vvenc less than x265, for the same PSNR on textured content under a
    moving camera (the measured figures at a larger size are in BENCHMARKS.md)."""
    refs = tmp_path / "refs"
    write_natural_set(refs, videos=2, frames=17, height=128, width=128)
    ladder = "[47,43,39,35,31]"
    keys = [f"refs={refs}", "methods=x264,x265,vvenc", "size=128x128", "frames=17", "metrics.names=psnr",
            f"x264.values={ladder}", f"x265.values={ladder}", f"vvenc.qp={ladder}", "vvenc.preset=medium"]
    x265 = run(tmp_path / "out", *keys, "anchor=x264")["table"]["psnr"]["x265"]
    vvenc = run(tmp_path / "out", *keys, "anchor=x265")["table"]["psnr"]["vvenc"]
    assert x265["value"] < -5 and vvenc["value"] < -5, (x265, vvenc)


@pytest.mark.slow
def test_set_metrics_pool_every_video_like_evaluate(refs, tmp_path):
    """FID over the benchmark's cached per-video features equals FID of MetricSuite over the same pairs."""
    from disco_train.metrics.suite import MetricSuite
    from random_metric_weights import write_random_weights

    weights = write_random_weights(tmp_path / "w", keys=("inception",))
    keys = [f"refs={refs}", "methods=x264", "anchor=x264", "x264.values=[40]", "frames=3", "size=48x48",
            "max_videos=2"]
    summary = run(tmp_path / "out", *keys, "metrics.names=psnr,fid", f"metrics.weights_dir={weights}")
    curves = {r["point"]: r for r in rows(tmp_path / "out" / "curves.csv")}
    plan = runner.make_plan(config(f"out={tmp_path / 'out'}", *keys), ["psnr"], "cpu", print)
    suite = MetricSuite(["psnr", "fid"], weights_dir=weights)
    frames = runner.R.ClipFrames()
    for clip in plan.clips:
        data, _ = backends.encode("x264", frames(clip), clip.fps, qp=40)
        suite.evaluate_frames(frames(clip), backends.decode("x264", data))
    assert summary["computed"] == 2 and len(plan.clips) == 2
    assert float(curves["qp40"]["fid"]) == pytest.approx(suite.distribution_scores()["fid"], rel=1e-4)
