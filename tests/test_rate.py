"""Rate control: the order of trained points (by bits, or by an export's rd_table.json), the bisection, the strict
table reader, and `encode target_kbps=` / `target_bpp=` on an export whose disco.json holds the 2 × 2 grid."""

import json
import re

import pytest

from conftest import make_video
from disco_train.__main__ import main
from disco_train.codec import container as C
from disco_train.codec import rate
from disco_train.config import ConfigError
from disco_train.decoder import export as E
from disco_train.decoder import rd_table as RD
from disco_train.train.export import export
from test_export import make_run


def _p(ds, dt, codec="x264", qp=-1, crf=30):
    return {"ds": ds, "dt": dt, "codec": codec, "qp": qp, "crf": crf}


GRID = [_p(2, 2), _p(2, 4), _p(4, 2), _p(4, 4)]


def _table(values, bpps, lower_is_better=True, points=GRID):
    entries = [RD.Entry(p, b, b * 100, v) for p, v, b in zip(points, values, bpps)]
    return RD.parse(RD.table_dict("lpips", lower_is_better, entries, clips=2), points, "t.json")


# ---- pure logic -------------------------------------------------------------------------------------------------
def test_without_a_table_more_transmitted_bits_rank_higher_and_ties_go_to_the_smaller_ds_then_dt():
    assert [(p["ds"], p["dt"]) for p in rate.order(GRID)] == [(4, 4), (4, 2), (2, 4), (2, 2)]
    # 1/(ds²·dt) equal: the smaller D_s ranks higher
    assert [(p["ds"], p["dt"]) for p in rate.order([_p(1, 4), _p(2, 1)])] == [(2, 1), (1, 4)]
    # the QP in each codec's direction: DCVC-RT's 63 is its best, x264's 0
    assert [p["qp"] for p in rate.order([_p(2, 2, "dcvc_rt", 32), _p(2, 2, "dcvc_rt", 8)])] == [8, 32]
    assert [p["qp"] for p in rate.order([_p(2, 2, qp=20), _p(2, 2, qp=40)])] == [40, 20]


def test_a_table_orders_by_measured_quality_and_drops_dominated_points():
    inverted = _table([0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4])  # lpips: (2, 2) worst, (4, 4) best
    assert [(p["ds"], p["dt"]) for p in rate.order(GRID, inverted)] == [(2, 2), (2, 4), (4, 2), (4, 4)]
    psnr = _table([30, 25, 28, 20], [0.4, 0.1, 0.2, 0.05], lower_is_better=False)  # (2, 4) below (4, 2)
    assert [(p["ds"], p["dt"]) for p in rate.order(GRID, psnr)] == [(4, 4), (2, 4), (4, 2), (2, 2)]
    dominated = _table([30, 31, 28, 20], [0.4, 0.3, 0.2, 0.05], lower_is_better=False)  # (2, 4): better and cheaper
    assert [(p["ds"], p["dt"]) for p in rate.order(GRID, dominated)] == [(4, 4), (4, 2), (2, 4)]


def test_bisection_tries_few_candidates_and_falls_back_to_every_one_when_none_fits():
    bits = [100, 200, 300, 400, 500, 600, 700, 800]
    best, sizes = rate.search(len(bits), bits.__getitem__, 650)
    assert best == 5 and len(sizes) == 3
    best, sizes = rate.search(len(bits), bits.__getitem__, 10_000)
    assert best == 7 and len(sizes) == 4  # log2(8) + 1
    best, sizes = rate.search(len(bits), bits.__getitem__, 50)
    assert best is None and len(sizes) == 8
    bumpy = [300, 100, 400, 500]  # content made the "cheapest" point dearer: the scan still finds index 1
    assert rate.search(len(bumpy), bumpy.__getitem__, 150)[0] == 1
    target = rate.Target(kbps=8)
    with pytest.raises(rate.RateError, match=r"target_kbps=8: no trained rate point fits \(2,000 bits for this "
                                             r"clip\); the smallest achievable is 24 kbps \(ds=4 dt=4 x264"):
        rate.choose(rate.order(GRID), lambda i: 6000 * (i + 1), target, 6, 32, 32, 24.0)


def test_targets_are_one_positive_number():
    assert rate.Target.of(None, None) is None
    assert rate.Target.of(10.0, None).budget(24, 32, 32, 24.0) == 10_000
    assert rate.Target.of(None, 0.5).budget(2, 4, 4, 24.0) == 16
    with pytest.raises(ConfigError, match="give one rate target, not both"):
        rate.Target.of(1.0, 1.0)
    with pytest.raises(ConfigError, match="target_bpp: a rate target must be > 0, got 0"):
        rate.Target.of(None, 0.0)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(extra=1), "t.json: unknown key\\(s\\) extra"),
    (lambda d: d.pop("metric"), "t.json: missing metric"),
    (lambda d: d.update(version=2), "t.json: format 'disco-rd-table' v2, expected disco-rd-table v1"),
    (lambda d: d.update(lower_is_better="yes"), "t.json: lower_is_better: expected true or false"),
    (lambda d: d["points"][1].update(bpp=-1), r"t.json: points\[1\].bpp: expected a finite number > 0, got -1"),
    (lambda d: d["points"][0].update(value="x"), r"t.json: points\[0\].value: expected a finite number"),
    (lambda d: d["points"][2]["point"].update(ds=8), r"t.json: points\[2\].point: .* is not a trained rate point"),
    (lambda d: d["points"].pop(), "t.json: points: no entry for ds=4 dt=4 x264"),
    (lambda d: d["points"].append(d["points"][0]), r"points\[4\].point: ds=2 dt=2 x264 qp=-1 crf=30 is listed twice"),
])
def test_a_bad_table_is_refused_naming_the_key(change, message):
    data = RD.table_dict("lpips", True, [RD.Entry(p, 0.1, 1.0, 0.5) for p in GRID])
    data = json.loads(json.dumps(data))
    change(data)
    with pytest.raises(E.ExportError, match=message):
        RD.parse(data, GRID, "t.json")


# ---- encode -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """An export whose disco.json holds the 2 × 2 grid (x264 crf 30), and a 24-frame 64×64 video."""
    root = tmp_path_factory.mktemp("rate")
    _, ckpt = make_run(root)
    video = root / "clip.mp4"
    make_video(video, 24, 64, 64, seed=3)
    return export(ckpt, root / "export", codec={"ds": [2, 4], "dt": [2, 4], "codec": "x264", "qp": -1, "crf": 30}), \
        video


def _encode(video, out, *keys):
    return main(["encode", str(video), str(out), "caption=a moving gradient", *keys])


def _sizes(grid, tmp_path, capsys):
    """{(ds, dt): bits of the whole file} of the clip at each trained point."""
    export_dir, video = grid
    sizes = {}
    for p in GRID:
        assert _encode(video, tmp_path / "p.disco", f"export={export_dir}", f"send.ds={p['ds']}",
                       f"send.dt={p['dt']}") == 0
        sizes[(p["ds"], p["dt"])] = 8 * (tmp_path / "p.disco").stat().st_size
    capsys.readouterr()
    return sizes


def test_encode_at_three_targets_fits_each_and_grows_with_it(grid, tmp_path, capsys):
    export_dir, video = grid
    sizes = _sizes(grid, tmp_path, capsys)  # on a 64×64 clip the header weighs: (2, 4) costs less than (4, 2)
    seconds, pixels = 24 / 24.0, 24 * 64 * 64
    targets = [1.02 * sizes[(4, 4)], 1.02 * sizes[(4, 2)], 1.5 * sizes[(2, 2)]]
    got = []
    for bits_allowed in targets:
        kbps = bits_allowed / seconds / 1000
        out = tmp_path / f"{kbps:.3f}.disco"
        assert _encode(video, out, f"export={export_dir}", f"target_kbps={kbps}") == 0
        printed = capsys.readouterr().out
        bits = 8 * out.stat().st_size
        assert bits <= kbps * 1000 * seconds and f"{bits:,} bits" in printed and "candidates tried" in printed
        stream = C.read(out).get("video")
        got.append((bits, stream.ds, stream.dt))
    assert got == sorted(got) and [g[1:] for g in got] == [(4, 4), (2, 4), (2, 2)], (sizes, got)
    assert _encode(video, tmp_path / "x.disco", f"export={export_dir}", f"target_bpp={sizes[(4, 4)] / pixels / 2}") == 2
    err = capsys.readouterr().err
    found = re.search(r"the smallest achievable is ([\d.e-]+) bpp \(ds=4 dt=4 x264 qp=-1 crf=30: ([\d,]+) bits\)", err)
    floor = int(found[2].replace(",", ""))
    assert float(found[1]) == pytest.approx(floor / pixels, rel=1e-5) and abs(floor - sizes[(4, 4)]) < 100, err
    assert not (tmp_path / "x.disco").exists()


@pytest.mark.parametrize("keys, message", [
    (["target_kbps=10", "send.ds=2"], "ds: a rate target chooses the trained point itself"),
    (["target_kbps=10", "send.qp=0", "force=true"], "qp, force: a rate target chooses the trained point itself"),
    (["target_kbps=10", "target_bpp=0.1"], "target_kbps, target_bpp: give one rate target, not both"),
    (["target_kbps=-1"], "target_kbps: a rate target must be > 0"),
])
def test_a_target_with_a_point_or_two_targets_is_refused(grid, tmp_path, capsys, keys, message):
    assert _encode(grid[1], tmp_path / "x.disco", f"export={grid[0]}", *keys) == 2
    assert message in capsys.readouterr().err
    assert _encode(grid[1], tmp_path / "x.disco", "target_kbps=10") == 2
    assert "export: a rate target chooses among the export's trained rate points" in capsys.readouterr().err


def test_encode_orders_by_the_table_written_into_a_copy_of_the_export(grid, tmp_path, capsys):
    export_dir, video = grid
    # a table that inverts the order by bits: (4, 4) measured best (and dearest), (2, 2) worst
    entries = [RD.Entry(p, b, b * 100, v) for p, v, b in zip(GRID, [0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4])]
    calibrated = RD.write(export_dir, tmp_path / "calibrated", RD.table_dict("lpips", True, entries, clips=2))
    assert E.read_manifest(calibrated).files[RD.RD_TABLE] == E.sha256(calibrated / RD.RD_TABLE)
    assert not (export_dir / RD.RD_TABLE).exists() and E.read_manifest(export_dir)  # the original is untouched
    for folder, chosen in ((export_dir, (2, 2)), (calibrated, (4, 4))):
        assert _encode(video, tmp_path / "a.disco", f"export={folder}", "target_kbps=1000") == 0
        assert (C.read(tmp_path / "a.disco").get("video").ds, C.read(tmp_path / "a.disco").get("video").dt) == chosen
        assert f"ds={chosen[0]} dt={chosen[1]} x264" in capsys.readouterr().out
    table = json.loads((calibrated / RD.RD_TABLE).read_text())
    table["points"][0]["value"] = 0.0
    (calibrated / RD.RD_TABLE).write_text(json.dumps(table))
    assert _encode(video, tmp_path / "a.disco", f"export={calibrated}", "target_kbps=1000") == 2
    assert f"{calibrated / RD.RD_TABLE}: does not match its sha256 in disco.json" in capsys.readouterr().err
    with pytest.raises(E.ExportError, match="points: no entry for ds=4 dt=4"):  # nothing is written
        RD.write(export_dir, export_dir, RD.table_dict("lpips", True, entries[:3]))
    assert not (export_dir / RD.RD_TABLE).exists()
    with pytest.raises(E.ExportError, match="rd_table.json does not match its sha256"):  # a tampered export
        RD.write(calibrated, calibrated, RD.table_dict("psnr", False, entries))
    RD.write(export_dir, calibrated, RD.table_dict("lpips", True, entries))  # an existing copy is replaced
    RD.write(calibrated, calibrated, RD.table_dict("psnr", False, entries))  # in place
    assert json.loads((calibrated / RD.RD_TABLE).read_text())["metric"] == "psnr" and E.read_manifest(calibrated)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.disco", "calibrated"]  # no temporary folder left
