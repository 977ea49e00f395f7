"""Streaming the prepared shards for training (schema: `datamodules.schema`).

Shards are split explicitly across nodes/ranks and then across DataLoader workers, so every rank reads different
shards. With `epoch_length > 0` shards are resampled (with replacement, seeded per rank and worker) and an epoch is
a fixed number of samples: long runs never wait on an epoch boundary. Corrupt samples are skipped and counted; the
count travels with each batch so the training module can log it and stop past `max_bad_fraction`.
"""

from __future__ import annotations

import glob
import io
import json
from pathlib import Path

import braceexpand
import lightning as L
import numpy as np
import torch
import webdataset as wds
from safetensors.torch import load as load_safetensors

from datamodules.degrade import restore
from datamodules.schema import REQUIRED_FIELDS
from disco_train.config import ConfigError, DataConfig
from disco_train.modalities import decode_text
from disco_train.video import decode_bitstream, read_video


def expand_shards(spec: str, key: str = "data.train_shards") -> list[str]:
    """Comma list of globs / brace patterns -> existing shard paths. Missing paths fail here, at start."""
    urls: list[str] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        for pattern in braceexpand.braceexpand(part):
            matches = sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else [pattern]
            missing = [m for m in matches if not Path(m).is_file()]
            if not matches or missing:
                raise ConfigError(f"{key}: no shard at {missing[0] if missing else pattern!r}; run "
                                  f"`python -m datamodules.prepare` first or fix the path")
            urls.extend(matches)
    if not urls:
        raise ConfigError(f"{key}: {spec!r} names no shard")
    return urls


class BadSampleCounter:
    """Per-worker tally of skipped samples; a WebDataset handler that logs and continues."""

    def __init__(self):
        self.bad, self.seen, self.last_error = 0, 0, ""

    def __call__(self, exn: Exception) -> bool:
        self.bad += 1
        self.last_error = f"{type(exn).__name__}: {exn}"[:300]
        return True  # keep going


def decode_sample(sample: dict, cfg: DataConfig, fill: str) -> dict:
    """Raw tar members -> tensors. Raises ValueError on missing fields or wrong shapes."""
    missing = [f for f in REQUIRED_FIELDS if f not in sample]
    if missing:
        raise ValueError(f"sample {sample.get('__key__')}: missing fields {missing}")
    meta = json.loads(sample["meta.json"])
    frames, _ = read_video(bytes(sample["video.mp4"]))
    if frames.shape[0] < cfg.frames or frames.shape[1:3] != (cfg.height, cfg.width):
        raise ValueError(f"sample {sample['__key__']}: clip {tuple(frames.shape[:3])} does not fit data "
                         f"{cfg.frames}×{cfg.height}×{cfg.width}")
    degraded = decode_bitstream(bytes(sample["degraded.bin"]), meta["codec"]) if meta["codec"] != "dcvc_rt" \
        else _decode_dcvc(bytes(sample["degraded.bin"]))
    cond = restore(degraded, cfg.height, cfg.width, int(meta["dt"]), cfg.frames, fill)
    out = {"key": sample["__key__"], "video": torch.from_numpy(frames[:cfg.frames]),
           "cond": torch.from_numpy(np.ascontiguousarray(cond)), "caption": decode_text(bytes(sample["caption.zlib"])),
           "fps": float(meta["fps"]), "bpp": float(meta["bpp"])}
    if "latents.safetensors" in sample:
        out.update(load_safetensors(bytes(sample["latents.safetensors"])))
    return out


def _decode_dcvc(data: bytes) -> np.ndarray:
    from disco_train.codecs.dcvc_rt.backend import decode_frames

    return decode_frames(data)


def collate(samples: list[dict]) -> dict:
    batch = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if isinstance(values[0], torch.Tensor):
            batch[key] = torch.stack(values)
        elif isinstance(values[0], float):
            batch[key] = torch.tensor(values)
        else:
            batch[key] = values
    return batch


class ShardDataModule(L.LightningDataModule):
    """WebDataset shards -> batches of {video, cond uint8 [B,T,H,W,3], caption, fps, bpp, bad, seen}."""

    def __init__(self, cfg: DataConfig, fill: str = "forward", seed: int = 0):
        super().__init__()
        self.cfg, self.fill, self.seed = cfg, fill, seed
        self.urls = expand_shards(cfg.train_shards)

    def _pipeline(self, urls: list[str], resampled: bool) -> wds.DataPipeline:
        counter = BadSampleCounter()
        cfg = self.cfg

        def decode(sample):
            counter.seen += 1
            try:
                return decode_sample(sample, cfg, self.fill)
            except Exception as err:  # one bad sample must not stop training: count, log, skip
                counter(err)
                return None

        def tally(batch):
            batch["bad"], batch["seen"] = torch.tensor(counter.bad), torch.tensor(counter.seen)
            return batch

        source = (wds.ResampledShards(urls, seed=self.seed) if resampled
                  else wds.SimpleShardList(urls))
        stages = [source]
        if not resampled:
            stages += [wds.split_by_node, wds.split_by_worker]
        stages += [wds.tarfile_to_samples(handler=counter), wds.shuffle(cfg.shuffle_buffer, seed=self.seed),
                   wds.map(decode), wds.select(lambda s: s is not None),
                   wds.batched(cfg.batch_size, collation_fn=collate, partial=False), wds.map(tally)]
        pipeline = wds.DataPipeline(*stages)
        if resampled:
            pipeline = pipeline.with_epoch(max(1, cfg.epoch_length // cfg.batch_size))
        return pipeline

    def train_dataloader(self):
        pipeline = self._pipeline(self.urls, resampled=self.cfg.epoch_length > 0)
        return wds.WebLoader(pipeline, batch_size=None, num_workers=self.cfg.num_workers,
                             persistent_workers=self.cfg.num_workers > 0)
