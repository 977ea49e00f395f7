"""Rate grids in prepare (ds/dt/qp/crf lists, grid=all|sample), what the index records of them, curation by a
quality score, separate DCVC-RT weights for the video and the sketch, and lossless sketch frames for the sketch
codec (read back by sketch_dcvc from the shards)."""

import json

import numpy as np
import pytest
import webdataset as wds

from conftest import make_video, prepare_config
from datamodules import coded, sink
from datamodules.pipeline import draw_point
from datamodules.prepare import main, run
from datamodules.schema import META_KEYS, grid_key, sample_key
from disco_train.codec.standard import decode_bitstream
from disco_train.config import ConfigError

QUIET = dict(log=lambda *_: None)


def _cfg(tmp_path, out="out", **kw):
    base = dict(input=str(tmp_path / "in"), output=str(tmp_path / out), frames=9, height=32, width=32,
                max_clips_per_video=0, ds=[2, 4], dt=[2, 4], codec="x264", crf=30, caption_default="a clip",
                shard_size=4)
    base.update(kw)
    return prepare_config(**base)


def _videos(tmp_path, count=3):
    (tmp_path / "in").mkdir(exist_ok=True)
    for i in range(count):
        make_video(tmp_path / "in" / f"v{i}.mp4", 18 if i == 0 else 9, 32, 32, seed=i)  # v0: 2 clips


def _samples(out):
    return {s["__key__"]: s for shard in sorted(out.glob("train-*.tar"))
            for s in wds.WebDataset(str(shard), shardshuffle=False)}


def _point(meta):
    return meta["ds"], meta["dt"], meta["qp"], meta["crf"]


def test_grid_all_codes_every_clip_at_every_point(tmp_path):
    _videos(tmp_path)
    counts = run(_cfg(tmp_path), **QUIET)
    assert (counts["done"], counts["samples"]) == (3, 4 * 4)  # 4 clips × 2 × 2 points
    samples = _samples(tmp_path / "out")
    for key, s in samples.items():
        meta = json.loads(s["meta.json"])
        assert set(meta) == set(META_KEYS) | {"container_overhead_bytes"}
        ds, dt, qp, crf = _point(meta)
        assert key == grid_key(sample_key(f"v{key[1]}.mp4", meta["clip_index"]), ds, dt, qp, crf)
        assert "." not in key and key.endswith(f"_ds{ds}_dt{dt}_crf30")
        small = decode_bitstream(s["degraded.bin"], "x264")  # the sample's own point, recorded in its meta
        assert small.shape == ((9 - 1) // dt + 1, 32 // ds, 32 // ds, 3)
        assert (meta["degraded_frames"], meta["degraded_height"]) == small.shape[:2]
    by_clip = {}
    for s in samples.values():
        by_clip.setdefault(s["__key__"].split("_ds")[0], []).append(s)
    assert len(by_clip) == 4 and all(len(v) == 4 for v in by_clip.values())
    for group in by_clip.values():  # one clip: the same target and caption for every point
        assert len({bytes(s["video.mp4"]) for s in group}) == 1 and len({bytes(s["caption.zlib"]) for s in group}) == 1
    settings = json.loads((tmp_path / "out" / "prepare_config.json").read_text())
    assert (settings["send"]["ds"], settings["send"]["dt"], settings["grid"]) == ([2, 4], [2, 4], "all")
    rows = sink.read_jsonl(tmp_path / "out" / sink.INDEX)
    assert len(rows) == 3 and all(len(r["coded"]["settings"]) == 4 for r in rows)
    assert rows[0]["coded"]["settings"][0] == {"ds": 2, "dt": 2, "codec": "x264", "qp": -1, "crf": 30}


def test_qp_and_crf_lists_multiply_only_the_points_that_use_them(tmp_path):
    cfg = _cfg(tmp_path, ds=2, dt=4, qp=[-1, 20], crf=[30, 40])
    assert [(p.qp, p.crf) for p in cfg.grid_points()] == [(-1, 30), (-1, 40), (20, 30)]
    (tmp_path / "in").mkdir()
    make_video(tmp_path / "in" / "v0.mp4", 9, 32, 32)
    run(cfg, **QUIET)
    metas = {k: json.loads(s["meta.json"]) for k, s in _samples(tmp_path / "out").items()}
    assert sorted(metas) == ["v0_c0000_ds2_dt4_crf30", "v0_c0000_ds2_dt4_crf40", "v0_c0000_ds2_dt4_qp20"]
    assert metas["v0_c0000_ds2_dt4_qp20"]["qp"] == 20 and metas["v0_c0000_ds2_dt4_crf40"]["crf"] == 40


def test_grid_sample_draws_one_point_per_clip_from_its_key(tmp_path):
    _videos(tmp_path, count=6)
    cfg = _cfg(tmp_path, grid="sample", qp=[10, 20])
    run(cfg, **QUIET)
    grid = cfg.grid_points()
    drawn = {}
    for key, s in _samples(tmp_path / "out").items():
        meta = json.loads(s["meta.json"])
        point = draw_point(key, grid)  # one sample per clip, under its plain key
        assert _point(meta)[:3] == (point.ds, point.dt, point.qp)
        drawn[key] = _point(meta)
    assert len(drawn) == 7 and len(set(drawn.values())) > 1  # the clips spread over the grid
    # the same choice in two parts (and so in workers or a resumed run: a function of the key alone)
    for k in range(2):
        run(_cfg(tmp_path, out="parts", grid="sample", qp=[10, 20], part=f"{k}/2"), **QUIET)
    parted = {key: _point(json.loads(s["meta.json"])) for key, s in _samples(tmp_path / "parts").items()}
    assert parted == drawn
    merged = sink.read_jsonl(tmp_path / "parts" / sink.INDEX)
    summary = coded.of_shards([str(p) for p in (tmp_path / "parts").glob("train-*.tar")])
    assert len(merged) == 6 and {tuple(p.values()) for p in summary["settings"]} == \
        {(ds, dt, "x264", qp, 30) for ds, dt, qp, _ in drawn.values()}


def test_the_index_gives_the_settings_without_reading_the_tars(tmp_path, monkeypatch):
    _videos(tmp_path)
    run(_cfg(tmp_path, qp=[16]), **QUIET)
    urls = [str(p) for p in sorted((tmp_path / "out").glob("train-*.tar"))]
    from_index = coded.of_shards(urls)
    assert [(p["ds"], p["dt"], p["qp"]) for p in from_index["settings"]] == [(2, 2, 16), (2, 4, 16), (4, 2, 16),
                                                                               (4, 4, 16)]
    assert from_index["fps"] == [24.0]
    reads = []
    real = coded.shard_metas
    monkeypatch.setattr(coded, "shard_metas", lambda url: reads.append(url) or real(url))
    assert coded.of_shards(urls) == from_index and reads == []
    index = tmp_path / "out" / sink.INDEX  # an index written before rows carried `coded`: the meta.json is read
    index.write_text("".join(json.dumps({"video": r["video"], "shard": r["shard"]}) + "\n"
                             for r in sink.read_jsonl(index)))
    assert coded.of_shards(urls) == from_index and sorted(reads) == urls


def test_reconciled_rows_carry_the_settings_too(tmp_path):
    _videos(tmp_path)
    run(_cfg(tmp_path), **QUIET)
    index = tmp_path / "out" / sink.INDEX
    rows = sink.read_jsonl(index)
    index.write_text("".join(json.dumps(r) + "\n" for r in rows[:-1]))  # killed before the last append
    sink.reconcile(tmp_path / "out")
    assert sink.read_jsonl(index) == rows


@pytest.mark.parametrize("kw,key", [
    (dict(ds=[2, 2]), "ds: duplicate values"), (dict(qp=[]), "qp: an empty list"),
    (dict(ds=[2, 3]), "send.ds: height 32/ds=3"), (dict(grid="every"), "grid: unknown grid"),
    (dict(codec="dcvc_rt", qp=[-1, 32]), "qp: .*-1 .*DCVC-RT's default"),
    (dict(codec="x265", ds=[1, 2], height=64, width=64), "send.codec: x265 needs .* 64×64/ds=2 gives 32 px"),
    (dict(min_quality=0.4), "quality_column: min_quality=0.4 needs"),
    (dict(quality_column="dover"), "captions: quality_column='dover'"),
    (dict(sketch_frames=True), "sketch_frames: needs sketch=true"),
])
def test_grid_and_curation_keys_are_checked(tmp_path, kw, key):
    with pytest.raises(ConfigError, match=key):
        _cfg(tmp_path, **kw).validate()


def test_lists_on_the_command_line_and_scalars_resume_as_one_point_lists(tmp_path, capsys):
    _videos(tmp_path, count=1)
    argv = [f"input={tmp_path / 'in'}", f"output={tmp_path / 'out'}", "frames=9", "height=32", "width=32",
            "send.codec=x264", "caption_default=x", "send.ds=[2,4]", "send.dt=4", "send.qp=[10,20]"]
    assert main([*argv, "print_config=true"]) == 0
    printed = capsys.readouterr().out
    assert "send:\n  ds:\n  - 2\n  - 4\n  dt: 4" in printed
    assert main(argv) == 0
    assert len(_samples(tmp_path / "out")) == 2 * 2  # one clip (max_clips_per_video=1) × 2 ds × 2 qp
    assert main([a.replace("dt=4", "dt=[4]") for a in argv]) == 0  # the same grid: resumes, nothing to do
    assert "1 already done" in capsys.readouterr().out
    assert main([a.replace("dt=4", "dt=[2]") for a in argv]) == 2
    assert "dt: [4] -> [2]" in capsys.readouterr().err


def test_min_quality_skips_low_and_unscored_videos_and_counts_them(tmp_path):
    _videos(tmp_path, count=5)
    rows = ["video,caption,dover", "v0.mp4,a,0.9", "v1.mp4,b,0.2", "v2.mp4,c,", "v3.mp4,d,high", "v4.mp4,e,0.4"]
    (tmp_path / "meta.csv").write_text("\n".join(rows) + "\n")
    logs = []
    cfg = _cfg(tmp_path, ds=2, dt=4, captions=str(tmp_path / "meta.csv"), min_quality=0.4, quality_column="dover")
    counts = run(cfg, log=logs.append)
    assert (counts["done"], counts["below_min_quality"], counts["no_quality_score"], counts["failed"]) == (2, 1, 2, 0)
    assert {json.loads(s["meta.json"])["source"][-6:] for s in _samples(tmp_path / "out").values()} == \
        {"v0.mp4", "v4.mp4"}
    assert any("1 of 5 videos below it and 2 without a 'dover' score" in line for line in logs)
    assert json.loads((tmp_path / "out" / "done.json").read_text())["below_min_quality"] == 1
    assert not (tmp_path / "out" / sink.FAILURES).exists() or not sink.read_jsonl(tmp_path / "out" / sink.FAILURES)
    for k in range(2):  # parts: the merge checks only the kept inputs
        run(prepare_config(**{**cfg.__dict__, "output": str(tmp_path / "parts"), "part": f"{k}/2"}), **QUIET)
    assert len(sink.read_jsonl(tmp_path / "parts" / sink.INDEX)) == 2
    bad = prepare_config(**{**cfg.__dict__, "output": str(tmp_path / "x"), "quality_column": "dovr"})
    with pytest.raises(ConfigError, match="quality_column: .* needs columns 'video' and 'dovr'"):
        run(bad, **QUIET)


def test_sketch_frames_and_separate_sketch_codec_weights(tmp_path, stage_weights):
    """The sketch is coded by DCVC-RT with its own weights (sketch_dcvc_dir=synthetic) while dcvc_rt_dir points
    nowhere: prepare, training-data decoding and the index all use the sketch's own folder. sketch_frames stores
    the extracted frames losslessly, once per clip, and sketch_dcvc reads them from the shards."""
    from datamodules.decode import decode_sample
    from disco_train.io.video import decode_gray
    from datamodules.sketch_clips import SketchClipDataModule
    from disco_train.io.video import read_video
    from disco_train.config import DataConfig, SketchDataConfig
    from disco_train.modalities.degrade import resize_center_crop
    from disco_train.modalities.extract import SketchExtractor

    _videos(tmp_path, count=1)  # v0: 2 clips
    cfg = _cfg(tmp_path, ds=2, dt=[2, 4], sketch=True, sketch_frames=True, sketch_codec="dcvc_rt", sketch_qp=40,
               sketch_dcvc_dir="synthetic", dcvc_rt_dir=str(tmp_path / "no-weights"),
               sketch_weights=stage_weights["sketch_weights"])
    assert run(cfg, **QUIET)["samples"] == 2 * 2
    samples = _samples(tmp_path / "out")
    with_frames = [k for k, s in samples.items() if "sketch.mkv" in s]
    assert sorted(with_frames) == ["v0_c0000_ds2_dt2_crf30", "v0_c0001_ds2_dt2_crf30"]  # once per clip
    clip = resize_center_crop(read_video(tmp_path / "in" / "v0.mp4")[0][9:18], 32, 32)[0]
    expected = SketchExtractor(stage_weights["sketch_weights"])(clip)[..., 0]
    assert np.array_equal(decode_gray(samples["v0_c0001_ds2_dt2_crf30"]["sketch.mkv"]), expected)  # lossless
    meta = json.loads(samples["v0_c0001_ds2_dt4_crf30"]["meta.json"])
    assert meta["sketch_dcvc_dir"] == "synthetic" and "dcvc_rt_dir" not in meta  # x264 video: no DCVC-RT weights
    data = DataConfig(frames=9, height=32, width=32)
    out = decode_sample(samples["v0_c0001_ds2_dt4_crf30"], data, "forward", aux="sketch")
    assert out["aux"].shape == (9, 32, 32, 3) and out["cond"].shape == (9, 32, 32, 3)
    summary = coded.of_shards([str(p) for p in (tmp_path / "out").glob("train-*.tar")])
    assert summary["sketch"] == [{"sketch_codec": "dcvc_rt", "sketch_crf": 35, "sketch_qp": 40, "sketch_ds": 1,
                                  "sketch_dt": 1}] and summary["sketch_dcvc_dir"] == ["synthetic"]
    sketch_data = SketchDataConfig(train_dir="", train_shards=str(tmp_path / "out" / "train-*.tar"), frames=3,
                                   height=32, width=32, batch_size=2, num_workers=0, epoch_length=4)
    dm = SketchClipDataModule(sketch_data, seed=0)
    assert len(dm.dataset) == 2
    batch = next(iter(dm.train_dataloader()))
    assert batch["frames"].shape == (2, 3, 3, 32, 32) and (batch["frames"][:, :, 1:] == 0.5).all()
    run(_cfg(tmp_path, out="plain", ds=2, dt=4), **QUIET)
    with pytest.raises(ConfigError, match="data.train_shards: no sketch.mkv in the 1 shard"):
        SketchClipDataModule(SketchDataConfig(train_dir="", train_shards=str(tmp_path / "plain" / "train-*.tar")))


def test_precomputed_latents_follow_each_samples_own_point(tmp_path):
    """The degraded latents of a grid sample come from its own ds/dt; the target and text latents are the clip's,
    computed once and shared by its points."""
    import torch
    from safetensors.torch import load as load_safetensors

    from disco_train.config import ModelConfig
    from disco_train.decoder.encoders import encode_video
    from disco_train.decoder.models import load_backbone
    from disco_train.modalities.degrade import restore

    _videos(tmp_path, count=1)
    cfg = _cfg(tmp_path, max_clips_per_video=1, precompute=True,
               model=ModelConfig(name="tiny", dtype="fp32", max_text_tokens=16))
    run(cfg, **QUIET)
    vae = load_backbone(cfg.model, cfg.seed).vae
    samples = _samples(tmp_path / "out")
    latents = {k: load_safetensors(s["latents.safetensors"]) for k, s in samples.items()}
    first = latents["v0_c0000_ds2_dt2_crf30"]
    for key, s in samples.items():
        meta = json.loads(s["meta.json"])
        cond = restore(decode_bitstream(s["degraded.bin"], "x264"), 32, 32, meta["dt"], 9, "forward")
        expected = encode_video(vae, torch.from_numpy(cond)[None])[0]
        assert torch.allclose(latents[key]["degraded"], expected, atol=1e-5), key
        assert torch.equal(latents[key]["target"], first["target"]) and torch.equal(latents[key]["text"], first["text"])
