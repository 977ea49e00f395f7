"""ShardDataModule: shard splitting over ranks and workers, resampled epochs, determinism, bad data, aux, latents."""

import io
import json
import tarfile

import numpy as np
import pytest
import torch
import webdataset as wds

from conftest import make_video, prepare_config
from disco_train.codec import backends as codecs
from disco_train.modalities.degrade import restore
from datamodules.prepare import run
from datamodules.sampling import shard_stream, share
from datamodules.shards import ShardDataModule
from disco_train.config import ConfigError, DataConfig, ModelConfig

NUM_VIDEOS = 8


def _prepare(root, **kw):
    (root / "in").mkdir(parents=True, exist_ok=True)
    for i in range(NUM_VIDEOS):
        if not (root / "in" / f"v{i}.mp4").exists():
            make_video(root / "in" / f"v{i}.mp4", 9, 32, 32, 24.0, seed=i)
    cfg = dict(input=str(root / "in"), output=str(root / "out"), frames=9, height=32, width=32, ds=2, dt=4,
               codec="x264", crf=30, caption_default="a test video", shard_size=1)
    cfg.update(kw)
    run(prepare_config(**cfg), log=lambda *_: None)
    return root / "out"


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """8 one-clip shards of 9×32×32 (one video each, so a shard's identity is its sample key)."""
    return _prepare(tmp_path_factory.mktemp("dm"))


def _data(shards, **kw) -> DataConfig:
    base = dict(train_shards=f"{shards}/train-*.tar", frames=9, height=32, width=32, batch_size=1, num_workers=0,
                shuffle_buffer=4)
    base.update(kw)
    return DataConfig(**base)


def _keys(loader) -> list[str]:
    return [k for batch in loader for k in batch["key"]]


def test_shard_slots_partition_every_epoch():
    urls = [f"s{i}" for i in range(10)]
    for epoch in (0, 1):
        parts = [[d["url"] for d in shard_stream(urls, 7, epoch, s, 4, False)] for s in range(4)]
        assert sorted(u for p in parts for u in p) == urls  # each shard read once, by exactly one slot
        assert [len(p) for p in parts] == [3, 3, 2, 2]
    first = [d["url"] for d in shard_stream(urls, 7, 0, 0, 1, False)]
    assert first != [d["url"] for d in shard_stream(urls, 7, 1, 0, 1, False)]  # a new order each epoch
    assert [share(10, w, 4) for w in range(4)] == [3, 3, 2, 2]


def test_one_pass_reads_every_sample_once_with_workers(shards):
    module = ShardDataModule(_data(shards, num_workers=2))
    keys = _keys(module.train_dataloader())
    assert sorted(keys) == [f"v{i}_c0000" for i in range(NUM_VIDEOS)]


def test_ranks_read_disjoint_shards(shards):
    module = ShardDataModule(_data(shards))
    per_rank = [_keys(torch.utils.data.DataLoader(module.stream(rank, 2), batch_size=None)) for rank in (0, 1)]
    assert not set(per_rank[0]) & set(per_rank[1])
    assert sorted(per_rank[0] + per_rank[1]) == [f"v{i}_c0000" for i in range(NUM_VIDEOS)]


@pytest.mark.parametrize("workers", [0, 2])
def test_same_seed_same_order(shards, workers):
    def order(seed):
        return _keys(ShardDataModule(_data(shards, num_workers=workers), seed=seed).train_dataloader())

    assert order(3) == order(3)
    assert order(3) != order(4)


def test_resampled_epochs_have_the_set_length_and_differ(shards):
    module = ShardDataModule(_data(shards, num_workers=2, epoch_length=6, batch_size=2), seed=1)
    loader = module.train_dataloader()
    epochs = [_keys(loader) for _ in range(2)]  # persistent workers: the second epoch draws new shards
    assert [len(e) for e in epochs] == [6, 6]
    assert epochs[0] != epochs[1]
    again = _keys(ShardDataModule(_data(shards, num_workers=2, epoch_length=6, batch_size=2),
                                  seed=1).train_dataloader())
    assert again == epochs[0]


def test_too_few_shards_for_one_pass_is_a_config_error(shards):
    module = ShardDataModule(_data(shards, num_workers=5))
    with pytest.raises(ConfigError, match="epoch_length"):
        module.stream(0, 2)


def _rewrite(src, dst, edit):
    """Copy a shard, letting edit(sample) change or drop members."""
    with wds.TarWriter(str(dst)) as sink:
        for sample in wds.WebDataset(str(src), shardshuffle=False):
            sample = {k: v for k, v in sample.items() if k != "__url__" and not k.startswith("__local")}
            sink.write(edit(dict(sample)))


def test_corrupt_tar_and_bad_samples_are_skipped_and_counted(shards, tmp_path, caplog):
    good = sorted(shards.glob("train-*.tar"))
    bad_dir = tmp_path / "mixed"
    bad_dir.mkdir()
    for i, shard in enumerate(good[:4]):
        (bad_dir / f"good-{i}.tar").write_bytes(shard.read_bytes())
    raw = good[4].read_bytes()
    (bad_dir / "corrupt.tar").write_bytes(raw[:700] + b"\x13" * 900)  # a torn, overwritten tar
    _rewrite(good[5], bad_dir / "truncated-mp4.tar", lambda s: {**s, "video.mp4": s["video.mp4"][:300]})
    _rewrite(good[6], bad_dir / "missing-field.tar", lambda s: {k: v for k, v in s.items() if k != "degraded.bin"})
    _rewrite(good[7], bad_dir / "wrong-shape.tar",
             lambda s: {**s, "meta.json": json.dumps({**json.loads(s["meta.json"]), "height": 64}).encode()})
    module = ShardDataModule(_data(bad_dir, train_shards=f"{bad_dir}/*.tar"))
    caplog.set_level("WARNING", logger="datamodules")
    batches = list(module.train_dataloader())
    assert sorted(k for b in batches for k in b["key"]) == [f"v{i}_c0000" for i in range(4)]
    last = batches[-1]
    assert int(last["bad"]) >= 4 and int(last["seen"]) >= 7  # 3 bad samples + the torn tar
    assert any("missing fields" in r.message for r in caplog.records)
    assert any("does not fit" in r.message for r in caplog.records)


def test_pixel_batch_contents(shards):
    batch = next(iter(ShardDataModule(_data(shards, batch_size=2)).train_dataloader()))
    assert batch["video"].shape == batch["cond"].shape == (2, 9, 32, 32, 3) and batch["video"].dtype == torch.uint8
    assert batch["caption"] == ["a test video"] * 2 and batch["fps"].tolist() == [24.0, 24.0]
    assert "target" not in batch and "aux" not in batch


@pytest.fixture
def aux_shards(tmp_path, stage_weights):
    return _prepare(tmp_path, sketch=True, sketch_dt=2, sketch_ds=2, pose=True, shard_size=4,
                    sketch_weights=stage_weights["sketch_weights"], pose_dir=stage_weights["pose_dir"])


@pytest.mark.parametrize("aux", ["sketch", "pose"])
def test_aux_frames_are_aligned_with_the_target(aux_shards, aux):
    loader = ShardDataModule(_data(aux_shards, shuffle_buffer=1), aux=aux).train_dataloader()
    batch = next(iter(loader))
    assert batch["aux"].shape == batch["video"].shape == (1, 9, 32, 32, 3) and batch["aux"].dtype == torch.uint8
    sample = next(iter(wds.WebDataset(sorted(str(p) for p in aux_shards.glob("*.tar"))[0], shardshuffle=False)))
    assert sample["__key__"] == batch["key"][0]
    if aux == "sketch":  # decoded at 5×16×16, upsampled, forward-filled: frame 1 repeats frame 0
        expected = restore(codecs.decode("x264", sample["sketch.bin"]), 32, 32, 2, 9, "forward")
    else:  # two people in every frame (the rtmlib stand-ins): every frame has lit joints
        from disco_train.modalities.pose import decode_poses, render_poses

        expected = render_poses(decode_poses(sample["pose.xz"]), 32, 32)
        assert all(frame.any() for frame in expected)
    assert np.array_equal(batch["aux"][0].numpy(), expected)


def test_missing_aux_field_is_refused_before_training(shards):
    with pytest.raises(ConfigError, match="condition.aux=sketch, but the shards in .* were prepared without "
                                          "sketch=true"):
        ShardDataModule(_data(shards), aux="sketch")


def test_a_reader_with_only_bad_samples_ends_in_one_fatal_batch(shards):
    """Past the preflight (say the shards changed): every sample lacks sketch.bin, all are skipped, none crash the
    loader, and instead of an endless empty epoch the reader yields one batch naming the counted reason."""
    from datamodules.shards import ShardStream, expand_shards

    stream = ShardStream(expand_shards(f"{shards}/train-*.tar"), _data(shards), "forward", "sketch", False, 0, 0, 1)
    (batch,) = list(stream)
    assert "missing field sketch.bin" in batch["fatal"] and batch["bad"] == batch["seen"] > 0


def test_precomputed_latents_skip_video_decoding(tmp_path):
    out = _prepare(tmp_path, precompute=True, shard_size=4,
                   model=ModelConfig(name="tiny", dtype="fp32", max_text_tokens=16))
    batch = next(iter(ShardDataModule(_data(out, batch_size=2)).train_dataloader()))
    assert batch["target"].shape == batch["degraded"].shape == (2, 16, 2, 1, 1)
    assert batch["text"].shape == (2, 16, 32) and batch["text_mask"].shape == (2, 16)
    assert "video" not in batch and "cond" not in batch  # nothing was decoded
    # another fill mode than the one baked in: 'auto' falls back to decoding pixels
    assert "video" in next(iter(ShardDataModule(_data(out, batch_size=2), fill="zero").train_dataloader()))
    never = next(iter(ShardDataModule(_data(out, batch_size=2, latents="never")).train_dataloader()))
    assert "video" in never and "target" not in never


def test_compact_references_from_precomputed_latents_and_from_pixels(tmp_path):
    """condition.reference=compact: prepare precompute=true reference=compact stores the degraded latents at the
    coded size / ds (128 / 2 = 64 px: a 2×2 grid beside the target's 4×4); the pixel path restores the same
    frames unscaled; latents made for the other reference are not used ('auto' decodes pixels)."""
    model = ModelConfig(name="tiny", dtype="fp32", max_text_tokens=16)
    out = _prepare(tmp_path, precompute=True, reference="compact", shard_size=4, height=128, width=128, model=model)
    data = _data(out, height=128, width=128, batch_size=2)
    batch = next(iter(ShardDataModule(data, reference="compact").train_dataloader()))
    assert batch["target"].shape == (2, 16, 2, 4, 4) and batch["degraded"].shape == (2, 16, 2, 2, 2)
    assert batch["ds"] == [2, 2]
    pixels = next(iter(ShardDataModule(_data(out, height=128, width=128, batch_size=2, latents="never"),
                                         reference="compact").train_dataloader()))
    assert pixels["cond"].shape == (2, 9, 64, 64, 3) and pixels["video"].shape == (2, 9, 128, 128, 3)
    assert "video" in next(iter(ShardDataModule(data).train_dataloader()))  # full reference: latents unusable
