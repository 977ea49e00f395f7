"""Shards are not trusted either: bombs and malformed samples are skipped and counted (never read whole, never
crashing the run), a run on shards that cannot feed it stops at once with both sides named, and a reader that finds
nothing usable stops the run instead of looping."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import time
import zlib
from pathlib import Path

import pytest
import torch
import webdataset as wds
from safetensors.torch import save as save_safetensors

import train
from conftest import debug_overrides
from datamodules.latents import LatentSpec
from datamodules.shards import ShardDataModule, ShardStream, expand_shards
from datamodules.tars import members
from disco_train.config import ConfigError, DataConfig, ModelConfig


def _samples(shards: Path) -> list[dict]:
    return [s for t in sorted(shards.glob("train-*.tar")) for s in wds.WebDataset(str(t), shardshuffle=False)]


def _write(path: Path, samples: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wds.TarWriter(str(path)) as sink:
        for s in samples:
            sink.write({k: v for k, v in s.items() if not k.startswith("__") or k == "__key__"})
    return path


def _data(shards, **kw) -> DataConfig:
    base = dict(train_shards=str(shards), frames=17, height=64, width=64, num_workers=0, shuffle_buffer=1,
                latents="never")
    base.update(kw)
    return DataConfig(**base)


def _stream(urls, cfg, **kw) -> list[dict]:
    return list(ShardStream(list(urls), cfg, "forward", "none", kw.pop("latents", False), 0, 0, 1, **kw))


def test_oversized_member_is_skipped_unread(demo_shards, tmp_path):
    good = _samples(demo_shards)[:3]
    shard = _write(tmp_path / "s" / "train-000000.tar", good)
    cap = min(len(s["video.mp4"]) for s in good) - 1  # below every sample's target clip
    files = list(members(str(shard), cap))
    assert any("oversized tar member" in f.get("skipped", "") for f in files)
    batches = _stream([str(shard)], _data(shard, max_member_bytes=cap))
    assert [b for b in batches if "fatal" in b] and "oversized tar member" in batches[-1]["fatal"]


def test_sparse_member_of_6_gib_is_skipped_in_milliseconds(demo_shards, tmp_path):
    if shutil.which("tar") is None:
        pytest.skip("GNU tar is needed to write a sparse member")
    good = _samples(demo_shards)[:2]
    folder = tmp_path / "members"
    folder.mkdir()
    names = []
    for s in good:
        for field, value in s.items():
            if not field.startswith("__"):
                (folder / f"{s['__key__']}.{field}").write_bytes(value)
                names.append(f"{s['__key__']}.{field}")
    bomb = folder / f"{good[0]['__key__']}.video.mp4"
    bomb.unlink()
    subprocess.run(["truncate", "-s", "6G", str(bomb)], check=True)
    shard = tmp_path / "train-000000.tar"
    subprocess.run(["tar", "--sparse", "-cf", str(shard), "-C", str(folder), *names], check=True)
    assert shard.stat().st_size < 1 << 20 and any(m.issparse() for m in tarfile.open(shard))
    t = time.perf_counter()
    batches = _stream([str(shard)], _data(shard))
    assert time.perf_counter() - t < 10
    assert len([b for b in batches if "fatal" not in b]) == 1 and batches[0]["bad"] == 1  # one skipped, one used


def test_caption_bomb_is_a_counted_bad_sample(demo_shards, tmp_path):
    good = _samples(demo_shards)[:2]
    z, chunk = zlib.compressobj(1), bytes(1 << 24)
    good[0]["caption.zlib"] = b"".join([z.compress(chunk) for _ in range(64)] + [z.flush()])  # inflates to 1 GiB
    shard = _write(tmp_path / "train-000000.tar", good)
    batches = _stream([str(shard)], _data(shard))
    assert [b["bad"].item() for b in batches] == [1]


def _latent_shard(tmp_path, make) -> tuple[Path, LatentSpec]:
    """Four samples of precomputed latents for tiny models at 17×64×64 (grid 3×2×2); `make(i)` may spoil one."""
    spec = LatentSpec.of(ModelConfig(name="tiny", max_text_tokens=8), _data(tmp_path))
    samples = []
    for i in range(4):
        tensors = {"target": torch.randn(spec.channels, *spec.grid), "degraded": torch.randn(spec.channels, *spec.grid),
                   "text": torch.randn(8, spec.text_dim), "text_mask": torch.ones(8, dtype=torch.int64)}
        tensors = make(i, tensors)
        meta = {"frames": 17, "height": 64, "width": 64, "fps": 24.0, "bpp": 0.01, "latents": {"fill": "forward"}}
        samples.append({"__key__": f"v{i}_c0000", "latents.safetensors": save_safetensors(tensors),
                        "caption.zlib": zlib.compress(b"x"), "meta.json": json.dumps(meta).encode()})
    return _write(tmp_path / "lat" / "train-000000.tar", samples), spec


@pytest.mark.parametrize("spoil,message", [
    (lambda t: {**t, "target": torch.randn(16, 3, 2, 3), "degraded": torch.randn(16, 3, 2, 3)},
     r"latents target have shape \(16, 3, 2, 3\), this model and clip size need \(16, 3, 2, 2\)"),
    (lambda t: {**t, "degraded": t["degraded"].double()}, "latents degraded are torch.float64"),
    (lambda t: {**t, "text_mask": torch.ones(8, dtype=torch.int8)}, "latents text_mask are torch.int8"),
])
def test_latents_of_the_wrong_shape_or_dtype_are_skipped(tmp_path, spoil, message):
    shard, spec = _latent_shard(tmp_path, lambda i, t: spoil(t) if i == 2 else t)
    cfg = _data(shard, latents="always")
    batches = _stream([str(shard)], cfg, latents=True, spec=spec)
    assert len(batches) == 3 and batches[-1]["bad"] == 1  # the other three train
    with pytest.raises(ValueError, match=message):
        from datamodules.decode import decode_sample

        decode_sample(_samples(shard.parent)[2], cfg, "forward", latents=True, spec=spec)


def test_first_sample_with_broken_meta_is_a_clear_preflight_error(demo_shards, tmp_path):
    good = _samples(demo_shards)[:2]
    good[0]["meta.json"] = b"[]"
    shard = _write(tmp_path / "train-000000.tar", good)
    with pytest.raises(ConfigError, match="the first sample .* does not fit this run: .*meta.json holds a list"):
        ShardDataModule(_data(shard))


def test_training_on_shards_of_another_clip_size_stops_before_the_model(demo_shards, tmp_path, capsys):
    argv = debug_overrides(demo_shards, tmp_path) + ["data.frames=9", "data.height=32", "data.width=32"]
    assert train.main(argv) == 2
    err = capsys.readouterr().err
    assert "data: frames×height×width = 9×32×32, but the shards in" in err and "prepared at 17×64×64" in err
    assert not (tmp_path / "test").exists()  # nothing was written, no model was built


def test_a_reader_that_finds_nothing_usable_stops_the_run(demo_shards, tmp_path, capsys):
    """Resampled epochs (epoch_length > 0) with only the first sample good: the reader gives up after
    max_bad_in_a_row bad samples, and the run ends with exit 2 and the counted reason instead of spinning."""
    samples = _samples(demo_shards)
    for s in samples[1:]:
        s["degraded.bin"] = b"\x00\x00\x00\x01garbage"
    shards = tmp_path / "bad"
    _write(shards / "train-000000.tar", samples)
    shutil.copy(demo_shards / "prepare_config.json", shards / "prepare_config.json")
    argv = debug_overrides(shards, tmp_path, steps=50) + ["data.max_bad_in_a_row=4", "data.shuffle_buffer=1"]
    t = time.perf_counter()
    assert train.main(argv) == 2
    assert time.perf_counter() - t < 120
    err = capsys.readouterr().err
    assert "no usable training data" in err and "4 bad samples in a row" in err and "Traceback" not in err


def test_shard_globs_still_expand(demo_shards):
    assert len(expand_shards(f"{demo_shards}/train-*.tar")) == len(list(demo_shards.glob("train-*.tar")))
