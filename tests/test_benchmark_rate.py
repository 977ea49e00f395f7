"""`calibrate` (an export's trained points measured into its rd_table.json) and the benchmark's disco@rate method
(DiSCo at target rates): their settings checked before anything runs, and both end to end on the demo videos with
an export whose disco.json holds the 2 × 2 grid."""

import csv
import json

import pytest

from disco_train.__main__ import main
from disco_train.benchmark import runner
from disco_train.benchmark.disco import Export, rate_points
from disco_train.codec import container as C
from disco_train.codec import rate
from disco_train.config import ConfigError
from disco_train.config.recipe import resolve
from disco_train.decoder import export as E
from disco_train.decoder import rd_table as RD

GRID = {"ds": [2, 4], "dt": [2, 4], "codec": "x264", "qp": -1, "crf": 30}


def _cfg(*overrides):
    cfg, _, _ = resolve(["recipe=benchmark_debug", "methods=x264,disco@rate", "anchor=x264", *overrides])
    return cfg


def test_disco_at_rate_has_a_point_per_target_and_needs_targets_and_one_export():
    export = Export("exports/grid", "grid", "ab" * 8, ({"ds": 2, "dt": 2, "codec": "dcvc_rt", "qp": 8},), 2, 3.0,
                    "", "none")
    points = rate_points(_cfg("rate.targets_kbps=[]", "rate.targets_bpp=[0.05,0.1]"), export, ())
    assert [(p.label, p.order, p.settings["target_bpp"], p.settings["codecs"]) for p in points] == \
        [("0.05bpp", 0.05, 0.05, ("dcvc_rt",)), ("0.1bpp", 0.1, 0.1, ("dcvc_rt",))]
    for overrides, message in ((["rate.targets_kbps=[]"], "rate.targets_kbps: disco@rate needs target rates"),
                               (["rate.targets_bpp=[1]"], "give targets_kbps or targets_bpp"),
                               (["rate.targets_kbps=[1,0]"], r"rate.targets_kbps: rates > 0, got \[1.0, 0.0\]"),
                               (["rate.targets_kbps=[1]", "export=a,b"], "chooses among the trained points of one")):
        with pytest.raises(ConfigError, match=message):
            _cfg(*overrides)


# ---- calibrate's settings ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo videos and an export trained (as its disco.json says) on the 2 × 2 grid."""
    from datamodules.demo import make_demo
    from disco_train.train.export import export
    from test_export import make_run

    root = tmp_path_factory.mktemp("rate")
    videos = make_demo(root / "videos", videos=4, seed=1)
    _, ckpt = make_run(root)
    return videos, export(ckpt, root / "export", codec=GRID)


@pytest.mark.parametrize("keys, message", [
    ([], "metrics.names=lpips: needs {weights}/alexnet-owt-7be5be79.pth (torchvision AlexNet (ImageNet) backbone for "
         "LPIPS-alex; from https://download.pytorch.org/models/alexnet-owt-7be5be79.pth), which is missing; put it "
         "there or set metrics.weights_dir=, or use metrics.names=psnr, which needs no weight files"),
    (["metrics.names=fid"], "metrics.names: one per-video metric"),
    (["metrics.names=psnr", "out={export}"], "out={export}: the export itself; force=true writes into it"),
    (["metrics.names=psnr", "out={videos}"], "out={videos}: exists; choose another folder, or force=true"),
])
def test_calibrate_refuses_before_coding_anything(demo, tmp_path, capsys, keys, message):
    videos, export_dir = demo
    fill = dict(weights=tmp_path, export=export_dir, videos=videos)
    argv = ["calibrate", f"export={export_dir}", f"refs={videos}", f"metrics.weights_dir={tmp_path}",
            f"work={tmp_path}", *(k.format(**fill) for k in keys)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message.format(**fill) in err, err
    assert list(tmp_path.iterdir()) == []


# ---- slow: end to end -------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_calibrate_writes_the_table_that_encode_orders_by(demo, tmp_path, capsys):
    videos, export_dir = demo
    argv = ["calibrate", f"export={export_dir}", f"refs={videos}", "metrics.names=psnr", f"work={tmp_path / 'work'}",
            f"out={tmp_path / 'calibrated'}", "max_videos=2", "disco.steps=1",
            f"disco.captions={videos / 'captions.csv'}"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    manifest = E.read_manifest(tmp_path / "calibrated")  # every file, the table too, matches its sha256
    table = RD.read(tmp_path / "calibrated", manifest, manifest.trained_settings)
    assert (table.metric, table.lower_is_better, len(table.entries)) == ("psnr", False, 4)
    assert [e.point for e in table.entries] == manifest.trained_settings
    assert all(e.bpp > 0 and e.kbps > 0 and 0 < e.value < 100 for e in table.entries)
    assert "encode target_kbps= orders the points worst to best: " in printed
    assert json.loads((tmp_path / "calibrated" / RD.RD_TABLE).read_text())["clips"] == 2
    assert not (export_dir / RD.RD_TABLE).exists()
    # encode orders by the table: with room for every point it sends the table's best, whichever it is
    best = rate.order(manifest.trained_settings, table)[-1]
    out = tmp_path / "a.disco"
    assert main(["encode", str(videos / "shapes_000.mp4"), str(out), "caption=x", f"export={tmp_path / 'calibrated'}",
                 "target_kbps=10000"]) == 0
    video = C.read(out).get("video")
    assert (video.ds, video.dt) == (best["ds"], best["dt"])


@pytest.mark.slow
def test_benchmark_debug_with_disco_at_rate_draws_its_curve_by_target(demo, tmp_path):
    videos, export_dir = demo
    cfg = _cfg(f"refs={videos}", f"export={export_dir}", f"out={tmp_path}", f"disco.captions={videos / 'captions.csv'}")
    assert cfg.rate.targets_kbps == [3.6, 4.3, 6.0]  # the recipe's
    summary = runner.run(cfg, "(test)", log=lambda *_: None)
    assert summary["computed"] == 3 * 3 + 3 * 3
    with open(tmp_path / "results.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["method"] == "disco@rate"]
    assert len(rows) == 9 and all(r["chosen"].startswith("ds") and int(r["candidates_tried"]) >= 2 for r in rows)
    for r in rows:  # every file within its target, and no larger at a lower target
        assert float(r["kbps"]) <= float(r["point"].removesuffix("kbps"))
    for video in {r["video"] for r in rows}:
        bits = [int(r["bits"]) for r in sorted((r for r in rows if r["video"] == video),
                                               key=lambda r: float(r["point"].removesuffix("kbps")))]
        assert bits == sorted(bits), (video, bits)
    curve = [c for c in summary["curves"] if c["method"] == "disco@rate"]
    assert [c["point"] for c in curve] == ["3.6kbps", "4.3kbps", "6kbps"]
    assert [c["kbps"] for c in curve] == sorted(c["kbps"] for c in curve)
    assert set(summary["table"]["psnr"]) == {"x264", "disco@rate"}  # its BD-rate against the anchor, or why not
    assert "disco@rate" in (tmp_path / "bdrate.md").read_text() and (tmp_path / "rd_psnr.png").stat().st_size > 0
    assert runner.run(cfg, "(test)", log=lambda *_: None)["computed"] == 0
