"""Optional prepare stages (captioner, sketch, pose, DCVC-RT codec, precomputed latents): wiring, bits, errors."""

import json

import numpy as np
import pytest
import torch
import webdataset as wds
from safetensors.torch import load as load_safetensors

from conftest import make_video, prepare_config
from datamodules.prepare import main, run
from datamodules.schema import META_KEYS, POSE_META_KEYS, SKETCH_META_KEYS, bpp
from disco_train.codec import backends as codecs
from disco_train.config import ConfigError, ModelConfig
from disco_train.io.video import read_video
from disco_train.modalities.degrade import degrade, resize_center_crop, restore
from disco_train.modalities.text import decode_text


def _cfg(tmp_path, **kw):
    base = dict(input=str(tmp_path / "in"), output=str(tmp_path / "out"), frames=9, height=32, width=32, ds=2,
                dt=4, codec="x264", crf=30, caption_default="a test video", shard_size=4)
    base.update(kw)
    return prepare_config(**base)


def _samples(out):
    return [s for shard in sorted(out.glob("train-*.tar")) for s in wds.WebDataset(str(shard), shardshuffle=False)]


@pytest.fixture
def videos(tmp_path):
    (tmp_path / "in").mkdir()
    make_video(tmp_path / "in" / "a.mp4", 9, 40, 48, 24.0)
    make_video(tmp_path / "in" / "b.mp4", 12, 32, 32, 30.0, seed=2)
    return tmp_path / "in"


def test_sketch_pose_and_captioner_stages(tmp_path, videos, stage_weights):
    cfg = _cfg(tmp_path, caption_default="", sketch=True, sketch_ds=2, sketch_dt=2, pose=True, **stage_weights)
    assert run(cfg, log=lambda *_: None)["done"] == 2
    for s in _samples(tmp_path / "out"):
        meta = json.loads(s["meta.json"])
        assert set(meta) == {*META_KEYS, *SKETCH_META_KEYS, *POSE_META_KEYS, "container_overhead_bytes",
                             "sketch_container_overhead_bytes"}
        assert meta["caption_source"] == "captioner" and decode_text(s["caption.zlib"]).startswith("video video")
        # sketch: 9 frames, keep 1 of 2 -> 5, 32/2 = 16 px; coded by x264 and decodable through the registry
        sketch = codecs.decode(meta["sketch_codec"], s["sketch.bin"])
        assert sketch.shape == (5, 16, 16, 3) == (meta["sketch_frames"], meta["sketch_height"],
                                                   meta["sketch_width"], 3)
        from disco_train.modalities.pose import decode_poses

        poses = decode_poses(s["pose.xz"])
        assert poses.num_frames == 9 and tuple(poses.frame_size) == (32, 32)
        assert meta["bits"] == {"text": len(s["caption.zlib"]) * 8, "video": len(s["degraded.bin"]) * 8,
                                "sketch": len(s["sketch.bin"]) * 8, "pose": len(s["pose.xz"]) * 8}
        assert meta["bpp"] == pytest.approx(bpp(meta["bits"], 9, 32, 32))


def test_dcvc_rt_goes_through_the_registry(tmp_path, videos):
    from disco_train.dcvc_rt import api

    cfg = _cfg(tmp_path, codec="dcvc_rt", qp=16, dcvc_rt_dir="synthetic")
    run(cfg, log=lambda *_: None)
    sample = next(s for s in _samples(tmp_path / "out") if json.loads(s["meta.json"])["source"].endswith("b.mp4"))
    meta = json.loads(sample["meta.json"])
    assert "container_overhead_bytes" not in meta  # a neural bitstream has no container to report
    assert meta["qp"] == 16  # the QP used (qp=-1 records DCVC_DEFAULT_QP: tests/test_prepare_inputs.py)
    frames = codecs.decode("dcvc_rt", sample["degraded.bin"], cfg.send.dcvc_rt_dir)
    assert frames.shape == (3, 16, 16, 3)
    # the qp reached the codec: the stream is the one the API writes at qp 16 for these degraded frames
    clip = resize_center_crop(read_video(tmp_path / "in" / "b.mp4")[0][:9], 32, 32)[0]
    assert sample["degraded.bin"] == api.encode_video(degrade(clip, 2, 4), 16, codec=api.synthetic_codec())


@pytest.mark.parametrize("override,key", [
    (dict(sketch=True), "sketch_weights"), (dict(pose=True), "pose_dir"), (dict(captioner="nowhere"), "captioner"),
    (dict(codec="dcvc_rt"), "dcvc_rt_dir"), (dict(precompute=True, model=True), "model.path"),
])
def test_missing_weights_fail_before_any_video(tmp_path, videos, override, key):
    if "model" in override:
        override["model"] = ModelConfig(name="ltxv_2b", path=str(tmp_path / "no-ltx"))
    cfg = _cfg(tmp_path, sketch_weights=str(tmp_path / "none.pth"), pose_dir=str(tmp_path / "none"),
               dcvc_rt_dir=str(tmp_path / "none"), **override)
    with pytest.raises(ConfigError, match=key):
        run(cfg, log=lambda *_: None)
    assert not list((tmp_path / "out").glob("train-*")) and not (tmp_path / "out" / "failures.jsonl").exists()


def test_missing_stage_module_is_a_clear_error(tmp_path, videos, monkeypatch, stage_files):
    import sys

    monkeypatch.setitem(sys.modules, "disco_train.modalities.sketch", None)  # None in sys.modules makes import fail
    cfg = _cfg(tmp_path, sketch=True, sketch_weights=stage_files["sketch_weights"])
    with pytest.raises(ConfigError, match="sketch: needs disco_train.modalities.sketch"):
        run(cfg, log=lambda *_: None)


def test_cli_reports_stage_errors_without_traceback(tmp_path, videos, capsys):
    argv = [f"input={videos}", f"output={tmp_path / 'out'}", "pose=true", f"send.pose_dir={tmp_path / 'none'}",
            "frames=9", "height=32", "width=32", "send.codec=x264"]
    assert main(argv) == 2
    assert "pose_dir=" in capsys.readouterr().err


@pytest.mark.parametrize("family,name,text_dim", [("ltxv", "tiny", 32), ("ltx2", "tiny", 16), ("ltx2", "tiny25", 16)])
def test_precompute_latents_match_on_the_fly_encoding(tmp_path, videos, family, name, text_dim):
    from disco_train.decoder.encoders import encode_text, encode_video
    from disco_train.decoder.models import load_backbone
    from disco_train.codec.standard import decode_bitstream
    from disco_train.io.video import read_video

    cfg = _cfg(tmp_path, precompute=True, model=ModelConfig(family=family, name=name, dtype="fp32",
                                                                 max_text_tokens=16))
    run(cfg, log=lambda *_: None)
    backbone = load_backbone(cfg.model, cfg.seed)
    for s in _samples(tmp_path / "out"):
        latents = load_safetensors(s["latents.safetensors"])
        meta = json.loads(s["meta.json"])
        assert meta["latents"]["fill"] == "forward" and set(meta["latents"]["shapes"]) == set(latents)
        # tiny VAE: 32x spatial, 8x temporal (+1 frame): 9×32×32 -> 2×1×1 latents of 16 channels
        assert latents["target"].shape == latents["degraded"].shape == (16, 2, 1, 1)
        assert latents["text"].shape == (16, text_dim) and latents["text_mask"].shape == (16,)
        video = torch.from_numpy(read_video(s["video.mp4"])[0])[None]
        cond = restore(decode_bitstream(s["degraded.bin"], "x264"), 32, 32, 4, 9, "forward")
        assert torch.allclose(latents["target"], encode_video(backbone.vae, video)[0], atol=1e-5)
        assert torch.allclose(latents["degraded"], encode_video(backbone.vae, torch.from_numpy(cond)[None])[0],
                              atol=1e-5)
        text, mask = encode_text(backbone.text_encoder, backbone.tokenizer, ["a test video"], 16)
        assert torch.allclose(latents["text"], text[0], atol=1e-5) and torch.equal(latents["text_mask"], mask[0])


def test_resume_with_other_settings_is_refused(tmp_path, videos):
    run(_cfg(tmp_path), log=lambda *_: None)
    with pytest.raises(ConfigError, match=r"ds: 2 -> 4"):
        run(_cfg(tmp_path, ds=4), log=lambda *_: None)
    assert run(_cfg(tmp_path, shard_size=2), log=lambda *_: None)["skipped"] == 2  # harmless keys may change


def test_sketch_frames_normalised():
    from datamodules.stages import as_rgb_uint8

    gray = np.linspace(0, 1, 2 * 4 * 4).reshape(2, 4, 4)
    out = as_rgb_uint8(gray)
    assert out.shape == (2, 4, 4, 3) and out.dtype == np.uint8 and out[-1, -1, -1, 0] == 255
    with pytest.raises(ValueError, match="expected frames"):
        as_rgb_uint8(np.zeros((2, 4, 4, 2)))
    assert degrade(out, 2, 2).shape == (1, 2, 2, 3)


def test_stage_crash_is_retried_and_systematic_crashes_stop(tmp_path, monkeypatch, stage_files):
    from datamodules.prepare import Pipeline

    (tmp_path / "in").mkdir()
    for i in range(7):
        make_video(tmp_path / "in" / f"v{i}.mp4", 9, 32, 32, seed=i)
    cfg = _cfg(tmp_path, sketch=True, sketch_weights=stage_files["sketch_weights"], shard_size=1)
    real, broken = Pipeline.clip_samples, {"v1"}

    def flaky(self, video, *args):  # a stage crash that has nothing to do with the input video
        if broken & {"all", video.path.stem}:
            raise RuntimeError("CUDA out of memory")
        return real(self, video, *args)

    monkeypatch.setattr(Pipeline, "clip_samples", flaky)
    logs = []
    counts = run(cfg, log=logs.append)
    assert (counts["done"], counts["failed"]) == (6, 1)
    assert [line for line in logs if line.startswith("skipped")] == [
        f"skipped {tmp_path / 'in' / 'v1.mp4'}: RuntimeError: CUDA out of memory (will be retried by the next run)"]
    broken.clear()
    assert run(cfg, log=lambda *_: None)["done"] == 1  # the crashed video is tried again, and now succeeds
    for i in range(7, 13):
        make_video(tmp_path / "in" / f"v{i}.mp4", 9, 32, 32, seed=i)
    broken.add("all")
    with pytest.raises(RuntimeError, match="5 videos in a row"):
        run(cfg, log=lambda *_: None)
    assert len(list((tmp_path / "out").glob("train-*.tar"))) == 7  # nothing finished was lost
