"""Selected streams (`condition.stream=selected`, `disco_train.codec.selection`): what each stream keeps under a
pattern, the receiver putting it back, the bytes saved on the demo, and the training data built the same way."""

import json
from fractions import Fraction

import numpy as np
import pytest
import webdataset as wds

from conftest import prepare_config

from datamodules.demo import outline_sketch
from disco_train.codec import backends, selection
from disco_train.codec import container as C
from disco_train.codec.receiver import StreamError, receive, restore_video
from disco_train.codec.sender import CodecError, send_clip, send_video
from disco_train.config.send import SendSettings
from disco_train.io.errors import DecodeError

LF13 = C.Pattern("selected", "latent_frame", 1, 3)
TOKEN13 = C.Pattern("selected", "token", 1, 3)


def test_latent_frame_plan_of_the_module_docstring():
    """17×64×64 (latent 3×2×2), 1:3 by latent frame: the video owns latent frame 0 = pixel frame 0, which kept
    frame 0 of dt=4 fills (frames 0-3); the sketch (dt=1) owns frames 1-16."""
    carried, needed = selection.plan(LF13, "video", 17, 64, 64, 4)
    assert carried.tolist() == [0] and needed.all()
    carried, needed = selection.plan(LF13, "aux", 17, 64, 64, 1)
    assert carried.tolist() == list(range(1, 17)) and needed.all()
    full, blocks = selection.plan(C.FULL, "video", 17, 64, 64, 4)
    assert full.tolist() == [0, 1, 2, 3, 4] and blocks.shape == (5, 2, 2) and blocks.all()


def test_plan_counts_the_frames_padded_past_the_video():
    """20 frames generate 25 (latent 4 frames): 1:1 by latent frame, the video owns latent 0 and 2 (pixels 0, 9-16),
    the aux latent 1 and 3 (1-8, 17-24, the last 5 padded from frame 19, which kept frame 4 fills)."""
    assert selection.plan(C.Pattern("selected", "latent_frame", 1, 1), "video", 20, 64, 96, 4)[0].tolist() == [0, 2, 3, 4]
    assert selection.plan(C.Pattern("selected", "latent_frame", 1, 1), "aux", 20, 64, 96, 4)[0].tolist() == [0, 1, 2, 4]


def test_token_plan_keeps_every_frame_and_only_its_blocks():
    carried, needed = selection.plan(TOKEN13, "video", 17, 64, 64, 4)
    assert carried.tolist() == [0, 1, 2, 3, 4]
    assert needed.tolist() == [[[True, False], [False, False]]] * 5  # token i mod 4 == 0: row 0, column 0
    carried, needed = selection.plan(TOKEN13, "aux", 17, 64, 64, 1)
    assert len(carried) == 17 and (needed == ~np.array([[True, False], [False, False]])).all()


def test_a_stream_the_decoder_never_reads_is_one_flat_frame():
    carried, needed = selection.plan(C.Pattern("selected", "latent_frame", 3, 1), "aux", 17, 64, 64, 1)
    assert carried.tolist() == [0] and not needed.any()  # 3 latent frames, all the video's at 3:1
    small = np.random.default_rng(0).integers(0, 255, (17, 64, 64, 3), dtype=np.uint8)
    assert (selection.select(small, carried, needed, 1) == selection.FLAT).all()


def test_select_flattens_blocks_at_the_streams_scale_and_expand_refills_dropped_frames():
    small = np.random.default_rng(0).integers(0, 255, (5, 16, 16, 3), dtype=np.uint8)  # 64×64 at ds=4
    needed = np.zeros((2, 2, 2), bool)
    needed[0, 0, 1] = needed[1, 1, 0] = True
    out = selection.select(small, np.array([1, 3]), needed, 4)
    assert out.shape == (2, 16, 16, 3)
    assert np.array_equal(out[0, :8, 8:], small[1, :8, 8:]) and np.array_equal(out[1, 8:, :8], small[3, 8:, :8])
    assert (out[0, 8:] == 128).all() and (out[0, :8, :8] == 128).all() and (out[1, :8] == 128).all()
    back = selection.expand(out, np.array([1, 3]), 5)
    assert [next(i for i in range(2) if np.array_equal(f, out[i])) for f in back] == [0, 0, 0, 1, 1]  # kept 0 <- first carried


def _clip(frames=17, side=64, seed=0):
    from datamodules.demo import shape_video

    video, _ = shape_video(np.random.default_rng(seed), frames, side, side)
    return video


def _settings(pattern: C.Pattern, **kw) -> SendSettings:
    keys = {} if pattern == C.FULL else {"ratio": f"{pattern.a}:{pattern.b}", "interleave_unit": pattern.unit}
    return SendSettings(ds=4, dt=4, codec="x264", crf=30, stream=pattern.stream, **keys, **kw)


def test_selected_video_round_trip_reads_the_pixels_of_its_tokens():
    """20 frames (generated as 25, latent 4 frames) at 1:1 by latent frame: the video owns latent frames 0 and 2
    (pixel frames 0 and 9-16), the sketch 1 and 3 (1-8 and 17-24, the last five padded from frame 19)."""
    frames, lf11 = _clip(frames=20, side=64), C.Pattern("selected", "latent_frame", 1, 1)
    sketch = 255 - frames
    full = receive(send_video(frames, 24.0, "x", _settings(C.FULL), sketch), "forward", "sketch")
    c = send_video(frames, 24.0, "x", _settings(lf11), sketch)
    assert c.pattern == lf11 and len(backends.decode("x264", c.get("video").data)) == 4  # kept 0, 8, 12, 16
    assert len(backends.decode("x264", c.get("sketch").data)) == 11  # frames 1-8, 17-19
    got = receive(C.unpack(C.pack(c)), "forward", "sketch", pattern=lf11)
    assert got["cond"].shape == got["aux"].shape == full["cond"].shape == (25, 64, 64, 3)
    video, aux = [0, *range(9, 17)], [*range(1, 9), *range(17, 25)]
    assert np.abs(got["cond"][video].astype(int) - full["cond"][video]).mean() < 3
    assert np.abs(got["aux"][aux].astype(int) - full["aux"][aux]).mean() < 3
    assert np.array_equal(got["cond"][1:8], np.repeat(got["cond"][:1], 7, 0))  # kept frame 4 from kept frame 0
    assert np.array_equal(got["aux"][0], got["aux"][1])  # frame 0 from the first carried sketch frame
    with pytest.raises(StreamError, match=r"streams are stream=selected interleave_unit=latent_frame ratio=1:1; "
                                          r"this decoder reads stream=full"):
        receive(c, "forward", "sketch")
    with pytest.raises(StreamError, match="this decoder reads stream=selected interleave_unit=token"):
        receive(c, "forward", "sketch", pattern=TOKEN13)
    with pytest.raises(StreamError, match="the file's streams are stream=full"):
        receive(send_video(frames, 24.0, "x", _settings(C.FULL), sketch), "forward", "sketch", pattern=lf11)


def test_token_selected_streams_keep_flat_blocks_flat():
    frames = _clip()
    c = send_video(frames, 24.0, "x", _settings(TOKEN13), 255 - frames)
    got = receive(c, "forward", "sketch", pattern=TOKEN13)
    # the video keeps block (0, 0) of every frame: the rest is mid-grey up to the bilinear seam and the codec
    assert np.abs(got["cond"][:, 40:, 40:].astype(int) - selection.FLAT).max() <= 3
    assert np.abs(got["aux"][:, :24, :24].astype(int) - selection.FLAT).max() <= 3
    assert np.abs(got["cond"][:, :24, :24].astype(int) - frames[:, :24, :24]).mean() < 12


def test_selected_needs_an_auxiliary_stream_and_a_wrong_frame_count_is_refused():
    frames = _clip()
    with pytest.raises(CodecError, match="an auxiliary stream"):
        send_clip(frames, 24.0, "x", _settings(LF13))
    full = send_clip(frames, 24.0, "x", _settings(C.FULL), 255 - frames)[0][1]  # 5 kept frames
    with pytest.raises(DecodeError, match="more than the 1 frames"):
        restore_video(full.data, "x264", 4, 4, 17, 64, 64, "forward", pattern=LF13)  # the plan carries 1


def test_selected_pose_stream_sends_unread_frames_empty():
    from disco_train.modalities.pose import NUM_KEYPOINTS, PoseSequence, decode_poses

    rng = np.random.default_rng(0)
    poses = PoseSequence([rng.uniform(0, 60, (1, NUM_KEYPOINTS, 2)).astype(np.float32) for _ in range(17)],
                         [np.ones((1, NUM_KEYPOINTS), np.float32)] * 17, (64, 64))
    frames = _clip()
    streams, _ = send_clip(frames, 24.0, "x", _settings(C.Pattern("selected", "latent_frame", 1, 1)), poses=poses)
    sent = decode_poses(streams[-1].data)
    # latent frames 0 and 2 (pixels 0, 9-16) are the video's: their people are not sent
    assert sent.poses_per_frame == [0] + [1] * 8 + [0] * 8
    full = send_clip(frames, 24.0, "x", _settings(C.FULL), poses=poses)[0][-1]
    assert len(streams[-1].data) < len(full.data)


DEMO_PATTERNS = [C.Pattern("selected", unit, *ratio) for unit in ("token", "latent_frame")
                 for ratio in ((1, 1), (1, 3), (3, 1))]


def demo_clips(folder, videos: int) -> list:
    """Demo videos cut as the demo_shards fixture cuts them: 64×64×17 clips, two a video."""
    from datamodules.demo import make_demo
    from disco_train.io.video import read_video
    from disco_train.modalities.degrade import resize_center_crop

    clips = []
    for path in sorted(make_demo(folder, videos=videos, seed=1).glob("*.mp4")):
        video, fps = read_video(path)
        clips += [(resize_center_crop(video[i * 17:(i + 1) * 17], 64, 64)[0], fps) for i in range(len(video) // 17)[:2]]
    return clips


def _demo_bytes(clips, pattern) -> dict[str, int]:
    sizes = {"video": 0, "sketch": 0}
    for clip, fps in clips:
        for stream in send_clip(clip, fps, "x", _settings(pattern), outline_sketch(clip))[0][1:]:
            sizes[stream.kind] += len(stream.data)
    return sizes


def test_selected_streams_code_fewer_bytes_on_the_demo(tmp_path):
    """The demo clips (64×64×17, as the demo_shards fixture cuts them) with an outline sketch: for every pattern the
    decoder reads the same tokens, and the selected video + sketch bytes are fewer than the full ones by latent
    frame (measured: 14-70 % fewer); by token the video alone drops its 3 flat blocks in 4 at 1:3. The numbers
    per pattern are in recipes/README.md (`python bench/bench_selected.py`)."""
    clips = demo_clips(tmp_path, 6)
    full = _demo_bytes(clips, C.FULL)
    got = {p: _demo_bytes(clips, p) for p in DEMO_PATTERNS}
    for pattern, sizes in got.items():
        if pattern.unit == "latent_frame":
            assert sum(sizes.values()) < 0.9 * sum(full.values()), (pattern, sizes, full)
    assert got[TOKEN13]["video"] < 0.95 * full["video"], (got[TOKEN13], full)


# ---- training data: prepare codes selected streams, training restores them as the receiver does -----------------
def _prepare_selected(tmp_path, stage_weights, **kw):
    from datamodules.demo import make_demo
    from datamodules.prepare import run
    from disco_train.config import PrepareConfig

    videos = make_demo(tmp_path / "videos", videos=2, seed=1)
    send = SendSettings(codec="x264", crf=30, sketch_weights=stage_weights["sketch_weights"], stream="selected",
                        ratio="1:3", interleave_unit="latent_frame")
    cfg = PrepareConfig(input=str(videos), output=str(tmp_path / "shards"), captions=str(videos / "captions.csv"),
                        frames=17, height=64, width=64, shard_size=4, sketch=True, send=send, **kw)
    assert run(cfg, log=lambda *_: None)["done"] == 2
    return tmp_path / "shards"


@pytest.fixture
def selected_shards(tmp_path, stage_weights):
    return _prepare_selected(tmp_path, stage_weights)


def _data_cfg(shards):
    from disco_train.config import DataConfig

    return DataConfig(train_shards=f"{shards}/train-*.tar", frames=17, height=64, width=64, batch_size=1,
                      num_workers=0, shuffle_buffer=1)


def test_prepared_selected_streams_decode_as_the_receiver_restores_them(selected_shards):
    from datamodules.decode import decode_sample
    from datamodules.schema import SELECTED_META_KEYS

    prepared = json.loads((selected_shards / "prepare_config.json").read_text())
    assert (prepared["send"]["stream"], prepared["send"]["ratio"], prepared["send"]["interleave_unit"]) == \
        ("selected", "1:3", "latent_frame")
    shard = sorted(selected_shards.glob("train-*.tar"))[0]
    sample = next(iter(wds.WebDataset(str(shard), shardshuffle=False)))
    meta = json.loads(sample["meta.json"])
    assert {k: meta[k] for k in SELECTED_META_KEYS} == {"stream": "selected", "interleave_ratio": "1:3",
                                                        "interleave_unit": "latent_frame"}
    assert meta["degraded_frames"] == 1 and meta["sketch_frames"] == 16  # the plan of the module docstring
    got = decode_sample(sample, _data_cfg(selected_shards), "forward", "sketch", pattern=LF13)
    g = C.Geometry(17, 64, 64, 17, 64, 64, Fraction(meta["fps"]).limit_denominator(1001))
    c = C.Container(g, [C.Stream("video", meta["codec"], sample["degraded.bin"], meta["ds"], meta["dt"]),
                        C.Stream("sketch", meta["sketch_codec"], sample["sketch.bin"], meta["sketch_ds"],
                                 meta["sketch_dt"])], LF13)
    received = receive(c, "forward", "sketch", pattern=LF13)
    assert np.array_equal(got["cond"].numpy(), received["cond"]) and np.array_equal(got["aux"].numpy(), received["aux"])
    with pytest.raises(ValueError, match=r"its streams are stream=selected .* this run reads stream=full"):
        decode_sample(sample, _data_cfg(selected_shards), "forward", "sketch", pattern=C.FULL)


def test_a_run_whose_pattern_differs_from_the_shards_is_refused(selected_shards):
    from datamodules.shards import ShardDataModule
    from disco_train.config import ConfigError

    with pytest.raises(ConfigError, match=r"this run reads stream=full .* the shards in .* were prepared with "
                                          r"stream=selected interleave_unit=latent_frame ratio=1:3 "
                                          r"\(prepare_config.json\); prepare again with send.stream=full"):
        ShardDataModule(_data_cfg(selected_shards), aux="sketch")
    with pytest.raises(ConfigError, match="prepare again with send.stream=selected send.ratio=1:3 "
                                          "send.interleave_unit=token"):
        ShardDataModule(_data_cfg(selected_shards), aux="sketch", pattern=TOKEN13)
    batch = next(iter(ShardDataModule(_data_cfg(selected_shards), aux="sketch", pattern=LF13).train_dataloader()))
    assert batch["cond"].shape == batch["aux"].shape == (1, 17, 64, 64, 3)


def test_prepare_refuses_selected_streams_without_an_auxiliary_modality():
    from disco_train.config import ConfigError

    with pytest.raises(ConfigError, match="stream: 'selected' needs sketch=true or pose=true"):
        prepare_config(input="x", output="y", stream="selected").validate()
    with pytest.raises(ConfigError, match="interleave_unit: unknown unit"):
        prepare_config(input="x", output="y", sketch=True, stream="selected", interleave_unit="frames").validate()


def test_precomputed_latents_of_selected_streams_are_the_restored_frames_encoded(tmp_path, stage_weights):
    import torch
    from safetensors.torch import load as load_safetensors

    from datamodules.decode import decode_sample
    from disco_train.config import ModelConfig
    from disco_train.decoder.encoders import encode_video
    from disco_train.decoder.models import load_backbone

    model = ModelConfig(name="tiny", dtype="fp32", max_text_tokens=16)
    shards = _prepare_selected(tmp_path, stage_weights, precompute=True, model=model)
    sample = next(iter(wds.WebDataset(str(sorted(shards.glob("train-*.tar"))[0]), shardshuffle=False)))
    pixels = decode_sample(sample, _data_cfg(shards), "forward", "sketch", pattern=LF13)
    latents, vae = load_safetensors(sample["latents.safetensors"]), load_backbone(model, 0).vae
    for name, frames in (("degraded", pixels["cond"]), ("sketch", pixels["aux"])):
        assert torch.allclose(latents[name], encode_video(vae, frames[None])[0], atol=1e-5), name
    assert decode_sample(sample, _data_cfg(shards), "forward", "sketch", latents=True, pattern=LF13)["degraded"] \
        .shape == latents["degraded"].shape
