"""The export's trained set (from the index of every shard folder a run trained on), its sketch / pose / weights
records, older exports, and `encode` choosing a trained rate point (a point outside the set refused unless
force=true), with sketch=auto and pose=auto from prepare's stage code."""

import json

import pytest

from conftest import make_video, prepare_config, send_keys
from datamodules.prepare import run
from disco_train.__main__ import main
from disco_train.codec import cli
from disco_train.codec import container as C
from disco_train.decoder import export as E
from disco_train.decoder.manifest import FORMAT_VERSION, Weights
from disco_train.train.export import export
from test_export import make_run

QUIET = dict(log=lambda *_: None)
GRID = {"ds": [2, 4], "dt": [2, 4], "codec": "x264", "qp": -1, "crf": 30}


def _prepare(root, name, **kw):
    (root / "in").mkdir(exist_ok=True)
    if not (root / "in" / "v.mp4").exists():
        make_video(root / "in" / "v.mp4", 9, 32, 32)
    base = dict(input=str(root / "in"), output=str(root / name), frames=9, height=32, width=32, codec="x264",
                crf=30, caption_default="a clip")
    run(prepare_config(**{**base, **kw}), **QUIET)
    return root / name


def encode(video, out, **keys):
    a, _ = cli.ENCODE.parse([str(video), str(out), *send_keys(keys)])
    return cli.encode(a)


@pytest.fixture(scope="module")
def odd_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "odd.mp4"
    make_video(path, frames=20, height=50, width=70)
    return path


@pytest.fixture(scope="module")
def grid_export(tmp_path_factory):
    """An export trained (as far as disco.json says) on the 2 × 2 grid, its shards not on this machine."""
    root = tmp_path_factory.mktemp("grid")
    _, ckpt = make_run(root)
    return export(ckpt, root / "export", codec=GRID)


def test_export_reads_the_trained_set_from_every_shard_folder(tmp_path):
    a = _prepare(tmp_path, "a", ds=[2, 4], dt=4)
    b = _prepare(tmp_path, "b", ds=2, dt=2, qp=16)
    _, ckpt = make_run(tmp_path, f"data.train_shards={a}/train-*.tar,{b}/train-*.tar")
    manifest = E.read_manifest(export(ckpt, tmp_path / "export"))
    assert manifest.version == FORMAT_VERSION == 2
    assert manifest.trained_settings == [{"ds": 2, "dt": 2, "codec": "x264", "qp": 16, "crf": 30},
                                            {"ds": 2, "dt": 4, "codec": "x264", "qp": -1, "crf": 30},
                                            {"ds": 4, "dt": 4, "codec": "x264", "qp": -1, "crf": 30}]
    assert manifest.codec == manifest.trained_settings[0] and manifest.fps == [24.0]
    assert (manifest.sketch, manifest.pose, manifest.weights) == ([], None, Weights())
    from safetensors import safe_open

    with safe_open(str(tmp_path / "export" / E.DIFFUSERS_FILE), "pt") as f:
        assert json.loads(f.metadata()["disco.trained_settings"]) == manifest.trained_settings
    # a key given at export time replaces it in every point found (qp=8: the three points become two)
    again = E.read_manifest(export(ckpt, tmp_path / "e2", codec={"qp": 8, "ds": None}))
    assert [(p["ds"], p["dt"], p["qp"]) for p in again.trained_settings] == [(2, 2, 8), (2, 4, 8), (4, 4, 8)]


def test_export_without_shards_takes_every_combination_given(grid_export, tmp_path, capsys):
    points = E.read_manifest(grid_export).trained_settings
    assert [(p["ds"], p["dt"]) for p in points] == [(2, 2), (2, 4), (4, 2), (4, 4)]
    assert all(p["codec"] == "x264" and p["qp"] == -1 and p["crf"] == 30 for p in points)
    _, ckpt = make_run(tmp_path)
    argv = ["export", f"ckpt={ckpt}", f"out={tmp_path / 'e'}", "ds=[1,2]", "dt=2", "codec=dcvc_rt", "qp=[0,8]"]
    assert main(argv) == 0
    assert "trained on 4 rate point(s): ds=1 dt=2 dcvc_rt qp=0; ds=1 dt=2 dcvc_rt qp=8" in capsys.readouterr().out


def test_older_exports_are_still_read_and_newer_ones_refused(grid_export, tmp_path):
    import shutil

    old = tmp_path / "v1"
    shutil.copytree(grid_export, old)
    manifest = json.loads((old / E.MANIFEST).read_text())
    for key in ("trained_settings", "fps", "sketch", "pose", "weights"):
        manifest.pop(key)
    manifest.update(version=1, codec={"ds": 4, "dt": 4, "codec": "x264", "qp": -1, "crf": 30})
    (old / E.MANIFEST).write_text(json.dumps(manifest))
    read = E.read_manifest(old)
    assert read.trained_settings == [{"ds": 4, "dt": 4, "codec": "x264", "qp": -1, "crf": 30}]
    manifest["version"] = 9
    (old / E.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(E.ExportError, match="v9, expected disco-export v1 or v2"):
        E.read_manifest(old)


def test_encode_picks_a_trained_point_and_refuses_others(grid_export, odd_video, tmp_path, capsys):
    out = tmp_path / "a.disco"
    video = encode(odd_video, out, caption="x", export=grid_export).get("video")
    assert (video.ds, video.dt, video.codec) == (2, 2, "x264")  # nothing named: the first point, with a note
    assert "4 trained rate points match; coding at the first, ds=2 dt=2 x264" in capsys.readouterr().err
    video = encode(odd_video, out, caption="x", export=grid_export, ds=4, dt=4).get("video")
    assert (video.ds, video.dt) == (4, 4) and capsys.readouterr().err == ""  # exactly one point: no note
    video = encode(odd_video, out, caption="x", export=grid_export, ds=4).get("video")
    assert (video.ds, video.dt) == (4, 2) and "2 trained rate points match" in capsys.readouterr().err
    for bad in ("ds=8", "qp=20", "crf=40", "codec=x265"):
        assert main(["encode", str(odd_video), str(out), "caption=x", f"export={grid_export}", f"send.{bad}"]) == 2
        err = capsys.readouterr().err
        assert f"{bad} is not a rate point the decoder was trained on (ds=2 dt=2 x264 qp=-1 crf=30; " in err, err
    assert main(["encode", str(odd_video), str(out), "caption=x", f"export={grid_export}", "send.ds=8",
                 "force=true"]) == 0
    assert "coding it anyway (force=true)" in capsys.readouterr().err
    assert C.read(out).get("video").ds == 8


def test_export_records_sketch_pose_and_weights_and_encode_uses_them(tmp_path, odd_video, stage_weights, capsys):
    shards = _prepare(tmp_path, "s", ds=2, dt=4, codec="dcvc_rt", qp=[16, 24], dcvc_rt_dir="synthetic", sketch=True,
                      sketch_ds=2, sketch_dt=2, pose=True, **{k: stage_weights[k] for k in ("sketch_weights",
                                                                                           "pose_dir")})
    _, ckpt = make_run(tmp_path, f"data.train_shards={shards}/train-*.tar", "condition.mode=interleave",
                       "condition.aux=sketch")
    manifest = E.read_manifest(export(ckpt, tmp_path / "export"))
    assert [p["qp"] for p in manifest.trained_settings] == [16, 24]
    assert manifest.sketch == [{"sketch_codec": "x264", "sketch_crf": 35, "sketch_qp": -1, "sketch_ds": 2,
                                   "sketch_dt": 2}]
    assert manifest.pose.max_people >= 0 and manifest.weights == Weights(dcvc_rt_dir=["synthetic"])
    out = tmp_path / "a.disco"
    # no dcvc_rt_dir: the folder the training data was coded with (the synthetic test weights) is the default
    c = encode(odd_video, out, caption="x", export=tmp_path / "export", qp=24, sketch="auto", pose="auto",
               sketch_weights=stage_weights["sketch_weights"], pose_dir=stage_weights["pose_dir"])
    sketch, video = c.get("sketch"), c.get("video")
    assert (sketch.codec, sketch.ds, sketch.dt) == ("x264", 2, 2)  # the training data's sketch settings
    assert (video.codec, video.ds, video.dt) == ("dcvc_rt", 2, 4) and c.get("pose") is not None
    frames = cli.decode(cli.DECODE.parse([str(out), "", f"export={tmp_path / 'export'}", "steps=1"])[0])
    assert frames.shape == (20, 50, 70, 3) and "warning" not in capsys.readouterr().err
    for key, value in (("sketch_weights", tmp_path / "none.pth"), ("pose_dir", tmp_path / "none")):
        what = "sketch" if key == "sketch_weights" else "pose"
        argv = ["encode", str(odd_video), str(out), "caption=x", "send.codec=x264", f"{what}=auto",
                f"send.{key}={value}"]
        assert main(argv) == 2 and f"{key}=" in capsys.readouterr().err
