"""evaluate / bdrate / plot command functions on real small mp4 files written with PyAV."""

import csv

import numpy as np
import pytest

from disco_train.io.video import read_frames, write_video
from disco_train.metrics.evaluate import bdrate_main, main, plot_main
from disco_train.metrics.fidelity import psnr_video


def _frames(seed, t=5, h=32, w=32):
    # smooth content so x264 at moderate CRF gives a clearly finite, non-trivial PSNR
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(t, h // 8, w // 8, 3)).astype(np.uint8)
    return np.repeat(np.repeat(base, 8, axis=1), 8, axis=2)


@pytest.fixture()
def dirs(tmp_path):
    refs, recons = tmp_path / "refs", tmp_path / "recons"
    refs.mkdir()
    recons.mkdir()
    for i, stem in enumerate(["a", "b"]):
        frames = _frames(i)
        write_video(refs / f"{stem}.mp4", frames, crf=0)
        write_video(recons / f"{stem}.mp4", frames, crf=35)
    return refs, recons


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_evaluate_psnr_ssim(dirs, tmp_path, capsys):
    refs, recons = dirs
    out = tmp_path / "res.csv"
    assert main([f"refs={refs}", f"recons={recons}", "metrics.names=psnr,ssim", f"out={out}", "bpp=0.01"]) == 0
    rows = _rows(out)
    assert [r["video"] for r in rows] == ["a", "b", "overall"]
    assert list(rows[0]) == ["video", "frames", "height", "width", "fps", "bpp", "kbps", "psnr", "ssim"]
    a = rows[0]
    assert (a["frames"], a["height"], a["width"], a["bpp"]) == ("5", "32", "32", "0.01")
    assert float(a["fps"]) == 25 and float(a["kbps"]) == pytest.approx(0.01 * 32 * 32 * 25 / 1000)  # at the ref's fps
    # the csv value is the PyAV-decoded per-frame PSNR averaged over frames
    expected = psnr_video(read_frames(refs / "a.mp4"), read_frames(recons / "a.mp4"))
    assert float(a["psnr"]) == pytest.approx(expected, rel=1e-6)
    assert 15 < float(a["psnr"]) < 60 and 0 < float(a["ssim"]) < 1
    overall = rows[-1]
    assert overall["frames"] == "10"
    assert float(overall["psnr"]) == pytest.approx((float(rows[0]["psnr"]) + float(rows[1]["psnr"])) / 2, rel=1e-6)
    assert "evaluated 2 video(s)" in capsys.readouterr().out


def test_append_and_bdrate_and_plot(dirs, tmp_path, capsys):
    refs, recons = dirs
    anchor, test = tmp_path / "anchor.csv", tmp_path / "test.csv"
    # Two fake RD "runs" per codec from the same recon folder, differing only in the declared rate: the test
    # codec claims half the rate for the same quality, so its BD-rate must be -50 %.
    base = [f"refs={refs}", f"recons={recons}", "metrics.names=psnr"]
    assert main(base + [f"out={anchor}", "bpp=0.02"]) == 0
    assert main(base + [f"out={test}", "bpp=0.01"]) == 0
    # second RD point: identity reconstruction (refs vs refs) -> capped PSNR, higher rate
    ident = base[:1] + [f"recons={refs}", "metrics.names=psnr"]
    assert main(ident + [f"out={anchor}", "bpp=0.2", "append=true"]) == 0
    assert main(ident + [f"out={test}", "bpp=0.1", "append=true"]) == 0
    assert len(_rows(anchor)) == 6
    capsys.readouterr()
    assert bdrate_main([str(anchor), str(test), "metric=psnr"]) == 0
    printed = capsys.readouterr().out
    assert "BD-rate psnr (akima)" in printed and "-50.0000 %" in printed
    png = tmp_path / "rd.png"
    assert plot_main([str(anchor), str(test), "metric=psnr", f"out={png}"]) == 0
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_bitstream_rate(dirs, tmp_path):
    refs, recons = dirs
    bits = tmp_path / "bits"
    bits.mkdir()
    (bits / "a.disco").write_bytes(b"\0" * 128)
    (bits / "a.log").write_bytes(b"\0" * 1000)  # not the clip's rate: a log beside it ...
    (bits / "a.v2.disco").write_bytes(b"\0" * 1000)  # ... or another version
    (bits / "b").mkdir()  # a method with separate stream files: all of the folder counts
    (bits / "b" / "s.bin").write_bytes(b"\0" * 40)
    (bits / "b" / "text.zlib").write_bytes(b"\0" * 24)
    out = tmp_path / "r.csv"
    assert main([f"refs={refs}", f"recons={recons}", "metrics.names=psnr", f"out={out}", f"bitstreams={bits}"]) == 0
    rows = _rows(out)
    pixels = 5 * 32 * 32
    assert float(rows[0]["bpp"]) == pytest.approx(128 * 8 / pixels)
    assert float(rows[1]["bpp"]) == pytest.approx(64 * 8 / pixels)
    assert float(rows[2]["bpp"]) == pytest.approx((128 + 64) * 8 / pixels / 2)


def _err(capsys, argv, fn=main):
    assert fn(argv) == 2
    return capsys.readouterr().err


def test_clear_errors(dirs, tmp_path, capsys):
    refs, recons = dirs
    ok = [f"refs={refs}", f"recons={recons}", f"out={tmp_path / 'o.csv'}", "metrics.names=psnr"]
    assert "colour: unknown key (from command line); valid keys: refs, recons, out" in _err(capsys, ok + ["colour=1"])
    assert "out: is required (give out=...)" in _err(capsys, ok[:2])
    assert "expected no bare arguments, got ['psnr']" in _err(capsys, ok + ["psnr"])
    assert "metrics.names: unknown metric(s) ['vmaf']" in _err(capsys, ok[:3] + ["metrics.names=psnr,vmaf"])
    assert "metrics.batch_size: Value 'many' of type 'str' could not be converted to Integer" in _err(
        capsys, ok + ["metrics.batch_size=many"])
    # the flat keys of before the metrics section name their new key, once
    assert "batch_size: unknown key (from command line): it is now 'metrics.batch_size'" in _err(
        capsys, ok + ["batch_size=3"])
    assert ("metrics: now a section (from command line); this value is 'metrics.names' (e.g. "
            "metrics.names=psnr,lpips)") in _err(capsys, ok[:3] + ["metrics=psnr,lpips"])
    assert "either bpp= or bitstreams=" in _err(capsys, ok + ["bpp=1", f"bitstreams={tmp_path}"])
    assert "recons folder not found" in _err(capsys, [f"refs={refs}", f"recons={tmp_path / 'nope'}"] + ok[2:])

    write_video(recons / "c.mp4", _frames(3))
    err = _err(capsys, ok)
    assert "reconstructions without a reference" in err and ": c" in err
    (recons / "c.mp4").unlink()
    (recons / "b.mp4").unlink()
    err = _err(capsys, ok)
    assert "no reconstruction in" in err and "for: b" in err

    write_video(recons / "b.mp4", _frames(1, t=4))
    assert "frame counts differ" in _err(capsys, ok) and "has 5" in _err(capsys, ok)
    write_video(recons / "b.mp4", _frames(1, h=48))
    assert "resolutions differ" in _err(capsys, ok)
    (recons / "b.mp4").write_bytes(b"not a video")
    assert "unreadable video" in _err(capsys, ok)


def test_bdrate_errors(tmp_path, capsys):
    a = tmp_path / "a.csv"
    a.write_text("bpp,lpips\n0.01,0.3\n0.02,0.2\n")
    assert "test: is required (give test=...)" in _err(capsys, [str(a)], bdrate_main)
    assert "missing.csv" in _err(capsys, [str(a), str(tmp_path / "missing.csv")], bdrate_main)
    assert "no column 'dists'" in _err(capsys, [str(a), str(a), "metric=dists"], bdrate_main)
    assert "interpolation must be one of" in _err(capsys, [str(a), str(a), "interpolation=x"], bdrate_main)
    assert bdrate_main([str(a), str(a)]) == 0  # lpips, lower-is-better: identical curves
    assert "0.0000 %" in capsys.readouterr().out


def test_evaluate_perceptual_metrics_with_random_weights(dirs, tmp_path):
    from random_metric_weights import write_random_weights

    refs, recons = dirs
    wdir = write_random_weights(tmp_path / "w", keys=("alexnet", "lpips_alex", "vgg16", "dists"))
    out = tmp_path / "p.csv"
    assert main([f"refs={refs}", f"recons={recons}", f"out={out}", "metrics.names=lpips,dists",
                 f"metrics.weights_dir={wdir}", "metrics.batch_size=3"]) == 0
    rows = _rows(out)
    assert list(rows[0])[-2:] == ["lpips", "dists"]
    for r in rows:
        assert float(r["lpips"]) > 0 and 0 < float(r["dists"]) < 1
    # identity: refs vs refs gives 0 (alex only: VGG on CPU is the slow part of this test)
    assert main([f"refs={refs}", f"recons={refs}", f"out={out}", "metrics.names=lpips",
                 f"metrics.weights_dir={wdir}"]) == 0
    assert all(abs(float(r["lpips"])) < 1e-6 for r in _rows(out))


def test_evaluate_reports_missing_weights(dirs, tmp_path, capsys):
    refs, recons = dirs
    err = _err(capsys, [f"refs={refs}", f"recons={recons}", f"out={tmp_path / 'o.csv'}", "metrics.names=psnr,fid",
                        f"metrics.weights_dir={tmp_path / 'none'}"])
    assert "pt_inception-2015-12-05-6726825d.pth" in err and "save it as" in err


@pytest.mark.slow
def test_evaluate_all_metrics(tmp_path):
    from random_metric_weights import write_random_weights

    refs, recons = tmp_path / "refs", tmp_path / "recons"
    refs.mkdir()
    recons.mkdir()
    for i in range(2):  # 2 videos x 16 frames -> 2 FVD clips, 32 FID frames per side
        frames = _frames(i, t=16)
        write_video(refs / f"v{i}.mp4", frames, crf=0)
        write_video(recons / f"v{i}.mp4", frames, crf=40)
    wdir = write_random_weights(tmp_path / "w")
    out = tmp_path / "all.csv"
    assert main([f"refs={refs}", f"recons={recons}", f"out={out}", f"metrics.weights_dir={wdir}", "bpp=0.05",
                 "metrics.names=psnr,ssim,lpips,dists,fid,fvd"]) == 0  # the default is psnr,ssim: no weight files
    rows = _rows(out)
    assert list(rows[0]) == ["video", "frames", "height", "width", "fps", "bpp", "kbps", "psnr", "ssim", "lpips",
                             "dists", "fid", "fvd"]
    assert rows[0]["fid"] == "" and rows[0]["fvd"] == ""  # distribution metrics only exist for the set
    overall = rows[-1]
    assert float(overall["fid"]) > 0 and float(overall["fvd"]) >= 0
    assert np.isfinite([float(overall[k]) for k in ("psnr", "ssim", "lpips", "dists", "fid", "fvd")]).all()
