"""A debug decoder trained on a 2 × 2 rate grid exports both D_s and both D_t and decodes a clip at each of the
four points; a point outside the trained set is refused unless force=true (and then decode warns). Rate control
on it: `encode target_kbps=` at three targets, an impossible one, and `calibrate` in place."""

import pytest

from conftest import make_video, prepare_config
from datamodules.prepare import run
from disco_train.__main__ import main
from disco_train.codec import container as C
from disco_train.decoder import export as E


@pytest.mark.slow
def test_a_debug_decoder_trained_on_a_2x2_grid_exports_and_decodes_every_point(tmp_path, capsys):
    import train

    (tmp_path / "in").mkdir()
    for i in range(3):
        make_video(tmp_path / "in" / f"v{i}.mp4", 17, 64, 64, seed=i)
    shards = tmp_path / "shards"
    counts = run(prepare_config(input=str(tmp_path / "in"), output=str(shards), frames=17, height=64, width=64,
                               ds=[2, 4], dt=[2, 4], codec="x264", crf=30, caption_default="a moving gradient",
                               shard_size=4), log=lambda *_: None)
    assert (counts["done"], counts["samples"]) == (3, 12)
    assert train.main(["recipe=disco_lora_grid_debug", f"data.train_shards={shards}/train-*.tar",
                       f"output_dir={tmp_path}", "trainer.max_steps=4", "data.num_workers=0", "logger.kind=none",
                       "name=grid"]) == 0
    out = tmp_path / "export"
    assert main(["export", f"ckpt={tmp_path / 'grid' / 'checkpoints' / 'last.ckpt'}", f"out={out}"]) == 0
    trained = E.read_manifest(out).trained_settings
    assert [(p["ds"], p["dt"], p["codec"], p["qp"], p["crf"]) for p in trained] == \
        [(2, 2, "x264", -1, 30), (2, 4, "x264", -1, 30), (4, 2, "x264", -1, 30), (4, 4, "x264", -1, 30)]
    video = tmp_path / "clip.mp4"
    make_video(video, 17, 64, 64, seed=7)
    capsys.readouterr()
    figures = []
    for p in trained:
        disco, recon = tmp_path / f"ds{p['ds']}_dt{p['dt']}.disco", tmp_path / f"ds{p['ds']}_dt{p['dt']}.mkv"
        assert main(["encode", str(video), str(disco), "caption=a moving gradient", f"export={out}",
                     f"send.ds={p['ds']}", f"send.dt={p['dt']}"]) == 0
        stream = C.read(disco).get("video")
        assert (stream.ds, stream.dt, stream.codec) == (p["ds"], p["dt"], "x264")
        assert main(["decode", str(disco), str(recon), f"export={out}", "steps=2", "guidance=1"]) == 0
        printed = capsys.readouterr()
        assert "warning" not in printed.err and "64×64" in printed.out
        figures.append(f"ds={p['ds']} dt={p['dt']}: {8 * disco.stat().st_size} bits")
    with capsys.disabled():  # the figures, for the log of a -s run
        print("\n2x2 grid, one 64×64×17 clip per point: " + "; ".join(figures))
    outside = tmp_path / "outside.disco"
    assert main(["encode", str(video), str(outside), "caption=x", f"export={out}", "send.ds=1", "send.dt=2"]) == 2
    assert "ds, dt: ds=1 dt=2 is not a rate point the decoder was trained on" in capsys.readouterr().err
    assert main(["encode", str(video), str(outside), "caption=x", f"export={out}", "send.ds=1", "send.dt=2",
                 "force=true"]) == 0
    assert main(["decode", str(outside), "", f"export={out}", "steps=1"]) == 0
    assert "decode: warning: video coded with ds=1 dt=2 x264" in capsys.readouterr().err
    _rate_control(tmp_path, video, out, {(p["ds"], p["dt"]) for p in trained}, capsys)


def _rate_control(tmp_path, video, out, points, capsys):
    """encode target_kbps= on the trained grid: three targets fit and grow, an impossible one names the floor;
    calibrate writes the table, and encode orders by it."""
    from disco_train.codec import rate
    from disco_train.decoder import rd_table

    seconds = 17 / 24.0
    sizes = sorted(8 * (tmp_path / f"ds{ds}_dt{dt}.disco").stat().st_size for ds, dt in points)
    got = []
    for bits in (1.02 * sizes[0], 1.02 * sizes[2], 1.5 * sizes[3]):
        disco = tmp_path / f"target{len(got)}.disco"
        assert main(["encode", str(video), str(disco), "caption=a moving gradient", f"export={out}",
                     f"target_kbps={bits / seconds / 1000}"]) == 0
        got.append(8 * disco.stat().st_size)
        assert got[-1] <= bits and "candidates tried" in capsys.readouterr().out
    assert got == sorted(got) and got[0] < got[2], (sizes, got)
    assert main(["encode", str(video), str(tmp_path / "no.disco"), "caption=x", f"export={out}",
                 f"target_kbps={sizes[0] / 2 / seconds / 1000}"]) == 2
    assert "no trained rate point fits" in capsys.readouterr().err and not (tmp_path / "no.disco").exists()
    assert main(["calibrate", f"export={out}", f"refs={tmp_path / 'in'}", "metrics.names=psnr", "max_videos=1",
                 "disco.steps=1", "disco.caption_default=a moving gradient", f"work={tmp_path / 'calibrate'}",
                 "force=true"]) == 0
    manifest = E.read_manifest(out)
    table = rd_table.read(out, manifest, manifest.trained_settings)
    best = rate.order(manifest.trained_settings, table)[-1]
    assert main(["encode", str(video), str(tmp_path / "best.disco"), "caption=x", f"export={out}",
                 "target_kbps=100000"]) == 0
    stream = C.read(tmp_path / "best.disco").get("video")
    assert (stream.ds, stream.dt) == (best["ds"], best["dt"]) and "ds=" in capsys.readouterr().out
