"""FloLPIPS and FVMD inside ``evaluate`` / ``MetricSuite`` / ``bdrate`` on CPU with random weights (tiny clips)."""

import csv

import numpy as np
import pytest

from disco_train.io.video import write_video
from disco_train.metrics.evaluate import bdrate_main, main
from disco_train.metrics.results import LOWER_IS_BETTER
from disco_train.metrics.suite import MetricSuite
from random_metric_weights import write_random_weights

# the tiny sampling a CPU benchmark can afford: 4-frame windows every 4 frames, a 5x5 grid, 128 px, 1 iteration
FVMD_TINY = ["metrics.fvmd.clip_len=4", "metrics.fvmd.window_stride=4", "metrics.fvmd.points=25", "metrics.fvmd.size=128", "metrics.fvmd.iters=1"]


def _frames(t, seed, size=64):
    """A texture moving 2 px right per frame (smooth enough for x264 to keep it close)."""
    base = np.random.default_rng(seed).integers(0, 256, size=(size // 8, size // 8 + t, 3)).astype(np.uint8)
    big = np.repeat(np.repeat(base, 8, axis=0), 8, axis=1)
    return np.stack([big[:, 2 * i:2 * i + size] for i in range(t)])


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("temporal")
    refs, recons = root / "refs", root / "recons"
    refs.mkdir()
    recons.mkdir()
    for stem, t, seed in (("a", 6, 0), ("b", 5, 1)):
        frames = _frames(t, seed)
        write_video(refs / f"{stem}.mp4", frames, crf=0)
        frames[t // 2] = frames[t // 2 - 1]  # the reconstruction stalls for a frame
        write_video(recons / f"{stem}.mp4", frames, crf=35)
    wdir = write_random_weights(root / "w", keys=("alexnet", "lpips_alex", "pwcnet", "pips2"))
    return refs, recons, wdir


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_evaluate_psnr_flolpips_fvmd(setup, tmp_path):
    refs, recons, wdir = setup
    out = tmp_path / "t.csv"
    assert main([f"refs={refs}", f"recons={recons}", f"out={out}", "metrics.names=psnr,flolpips,fvmd",
                 f"metrics.weights_dir={wdir}", "bpp=0.01"] + FVMD_TINY) == 0
    rows = _rows(out)
    assert list(rows[0]) == ["video", "frames", "height", "width", "fps", "bpp", "kbps", "psnr", "flolpips", "fvmd"]
    assert [r["video"] for r in rows] == ["a", "b", "overall"]
    a, b, overall = rows
    assert float(a["flolpips"]) > 0 and float(b["flolpips"]) > 0  # per video ...
    assert float(overall["flolpips"]) == pytest.approx((float(a["flolpips"]) + float(b["flolpips"])) / 2, rel=1e-6)
    assert a["fvmd"] == b["fvmd"] == ""  # ... FVMD only for the set: windows (6-4)//4+1 + (5-4)//4+1 = 2
    assert np.isfinite(float(overall["fvmd"])) and float(overall["fvmd"]) >= 0
    # the reference against itself scores 0 (FVMD's 0 for identical sets: test_metrics_fvmd.py)
    assert main([f"refs={refs}", f"recons={refs}", f"out={out}", "metrics.names=flolpips", f"metrics.weights_dir={wdir}"]) == 0
    assert all(float(r["flolpips"]) == 0 for r in _rows(out))


def test_suite_contract_for_benchmarks(setup, capsys):
    refs, recons, wdir = setup
    from disco_train.metrics.fvmd import FVMDSettings

    suite = MetricSuite(["flolpips", "fvmd"], weights_dir=wdir,
                        fvmd=FVMDSettings(clip_len=8, window_stride=8, points=25, size=128, iters=1))
    assert suite.frame_metric_names == ["flolpips"]  # per video; fvmd comes from distribution_scores
    assert {"flolpips", "fvmd"} <= LOWER_IS_BETTER
    res = suite.evaluate_pair(refs / "b.mp4", recons / "b.mp4")  # 5 frames < 8: no FVMD window
    assert set(res.scores) == {"flolpips"} and res.scores["flolpips"] > 0
    with pytest.raises(ValueError, match="FVMD needs at least 2 windows of 8 frames"):
        suite.distribution_scores()
    # errors reach the command line as one line naming the file and what to do
    assert main([f"refs={refs}", f"recons={recons}", f"out={refs.parent / 'x.csv'}", "metrics.names=fvmd",
                 f"metrics.weights_dir={wdir}", "metrics.fvmd.points=30"]) == 2
    assert "metrics.fvmd.points: must be a square number" in capsys.readouterr().err
    assert main([f"refs={refs}", f"recons={recons}", f"out={refs.parent / 'x.csv'}", "metrics.names=fvmd",
                 f"metrics.weights_dir={wdir}", "metrics.fvmd.protocol=paper"]) == 2
    assert "protocol must be one of package, definition" in capsys.readouterr().err
    assert main([f"refs={refs}", f"recons={recons}", f"out={refs.parent / 'x.csv'}", "metrics.names=psnr,flolpips",
                 f"metrics.weights_dir={refs}"]) == 2
    assert "alexnet-owt-7be5be79.pth" in capsys.readouterr().err


def test_missing_temporal_weights_named_before_decoding(setup, tmp_path, capsys):
    refs = setup[0]
    broken = tmp_path / "broken"  # undecodable reconstructions: the weights must be checked first
    broken.mkdir()
    for stem in ("a", "b"):
        (broken / f"{stem}.mp4").write_bytes(b"not a video")
    partial = write_random_weights(tmp_path / "w", keys=("alexnet", "lpips_alex"))
    for metric, name, size in (("flolpips", "pwcnet/network-default.pytorch", "37.5 MB"),
                               ("fvmd", "pips2/pips2_weights.pth", "70.3 MB")):
        assert main([f"refs={refs}", f"recons={broken}", f"out={tmp_path / 'o.csv'}", f"metrics.names={metric}",
                     f"metrics.weights_dir={partial}"]) == 2
        err = capsys.readouterr().err
        assert str(partial / name) in err and size in err and "save it as" in err


def test_bdrate_treats_temporal_metrics_as_lower_is_better(tmp_path, capsys):
    # the test codec reaches the anchor's FloLPIPS/FVMD at half the rate: BD-rate -50 %; a higher-is-better
    # reading of these decreasing curves would be rejected as non-monotone
    anchor, test = tmp_path / "a.csv", tmp_path / "b.csv"
    anchor.write_text("bpp,flolpips,fvmd\n0.01,0.30,900\n0.02,0.20,500\n0.04,0.10,200\n")
    test.write_text("bpp,flolpips,fvmd\n0.005,0.30,900\n0.01,0.20,500\n0.02,0.10,200\n")
    for metric in ("flolpips", "fvmd"):
        assert bdrate_main([str(anchor), str(test), f"metric={metric}"]) == 0
        assert "-50.0000 %" in capsys.readouterr().out
