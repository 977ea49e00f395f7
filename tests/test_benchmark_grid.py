"""The benchmark's disco method runs each export at exactly the rate points it trained on (narrowed by disco.send.ds /
dt / qp / codec); a requested point no export trained on is refused unless disco.trained_only=false."""

import pytest

from disco_train.benchmark.disco import Export, disco_points
from disco_train.config import ConfigError
from disco_train.config.recipe import resolve


def _export(name, points):
    return Export(f"exports/{name}", name, name * 8, tuple(points), 2, 3.0, "blurry", "none")


def _point(ds, dt, qp, codec="dcvc_rt", crf=35):
    return {"ds": ds, "dt": dt, "codec": codec, "qp": qp, "crf": crf}


GRID = _export("grid", [_point(ds, dt, qp) for ds in (2, 4) for dt in (2, 4) for qp in (0, 16)])


def _labels(*overrides, exports=(GRID,)):
    cfg, _, _ = resolve(["recipe=benchmark_debug", "disco.trained_only=true", *overrides])
    return [p.label for p in disco_points(cfg, list(exports))]


def test_the_exported_set_is_the_default_grid():
    labels = _labels("disco.send.qp=null")
    assert labels == [f"ds{ds}_dt{dt}_qp{qp}" for ds in (2, 4) for dt in (2, 4) for qp in (0, 16)]
    assert _labels("disco.send.qp=[16]", "disco.send.ds=[4]") == ["ds4_dt2_qp16", "ds4_dt4_qp16"]


def test_a_point_outside_the_set_is_refused_unless_trained_only_is_off():
    with pytest.raises(ConfigError, match=r"no export trained on ds=8 qp=16 .*grid: ds=2 dt=2 dcvc_rt qp=0"):
        _labels("disco.send.qp=[16]", "disco.send.ds=[2,8]")
    with pytest.raises(ConfigError, match="export grid was trained on .*none of it in"):
        _labels("disco.send.qp=[16]", "disco.send.ds=[8]")
    assert _labels("disco.send.qp=[8]", "disco.send.ds=[8]", "disco.send.dt=[2]",
                   "disco.trained_only=false") == ["ds8_dt2_qp8"]
    off = _labels("disco.send.qp=null", "disco.trained_only=false")  # every combination of the trained values
    assert len(off) == 8


def test_several_exports_share_one_grid():
    """One export per (D_s, D_t), as the paper's grid may be trained: each runs at its own points of the grid."""
    a = _export("a", [_point(2, 2, qp) for qp in (0, 16)])
    b = _export("b", [_point(4, 4, qp) for qp in (0, 16)])
    with pytest.raises(ConfigError, match="no export trained on ds=2 dt=4 qp=0"):
        _labels("disco.send.qp=[0,16]", "disco.send.ds=[2,4]", "disco.send.dt=[2,4]", exports=(a, b))
    labels = _labels("disco.send.qp=[16]", exports=(a, b))
    assert labels == ["ds2_dt2_qp16@a", "ds4_dt4_qp16@b"]


def test_crf_points_are_coded_at_their_crf():
    crf = _export("crf", [_point(4, 4, -1, codec="x264", crf=30)])
    cfg, _, _ = resolve(["recipe=benchmark_debug", "disco.trained_only=true", "disco.send.qp=null"])
    (point,) = disco_points(cfg, [crf])
    assert point.label == "ds4_dt4_crf30" and point.settings["crf"] == 30 and point.settings["qp"] == -1
    from disco_train.benchmark.disco import sender_settings

    s = sender_settings(point.settings, cfg)
    assert (s.codec, s.qp, s.crf) == ("x264", -1, 30)
