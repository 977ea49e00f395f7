"""Streaming the prepared shards for training (schema: `datamodules.schema`).

Shards are split explicitly across ranks (all nodes) and then across DataLoader workers (`datamodules.sampling`),
so every reader reads different shards. With `epoch_length > 0` shards are resampled (with replacement, seeded
per rank and worker) and an epoch is a fixed number of samples per rank: long runs never wait on an epoch
boundary, and every rank yields the same number of batches (which DDP needs). The order of samples is a function
of the seed, the epoch, the rank and the worker only: the same seed gives the same batches, with or without
workers. Corrupt tars and malformed samples are skipped and counted; the counts travel with each batch (`bad`,
`seen`, per worker) so the training module can log them and stop past `max_bad_fraction`, and the first few and
then every power of two are logged with their reason.
"""

from __future__ import annotations

import glob
import logging
from itertools import islice
from pathlib import Path

import braceexpand
import lightning as L
import torch
import webdataset as wds

from datamodules.decode import decode_sample, has_latents
from datamodules.sampling import rank_and_world, seeded, shard_stream, share, shuffled, worker_and_count
from disco_train.config import ConfigError, DataConfig

log = logging.getLogger("datamodules")


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
    """Per-worker tally of skipped samples and corrupt tars; a WebDataset handler that logs and continues."""

    def __init__(self):
        self.bad, self.seen, self.last_error = 0, 0, ""

    def __call__(self, exn: Exception) -> bool:
        self.bad += 1
        self.last_error = f"{type(exn).__name__}: {exn}"[:300]
        if self.bad <= 3 or self.bad & (self.bad - 1) == 0:  # the first three, then 4, 8, 16, ...
            log.warning("skipped bad sample #%d (of %d seen in this worker): %s", self.bad, self.seen,
                        self.last_error)
        return True  # keep going


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


class ShardStream(torch.utils.data.IterableDataset):
    """Batches for one rank; each DataLoader worker reads its own slot of shards (module docstring)."""

    def __init__(self, urls: list[str], cfg: DataConfig, fill: str, aux: str, latents: bool, seed: int,
                 rank: int, world: int):
        super().__init__()
        self.urls, self.cfg, self.fill, self.aux, self.latents = urls, cfg, fill, aux, latents
        self.seed, self.rank, self.world = seed, rank, world
        self.epoch = 0  # per process: advances each time this copy starts iterating
        self.skip_batches = 0  # batches of the first epoch already consumed before a resume

    def resume(self, epoch: int, batches_done: int) -> None:
        """Continue the sample stream of a killed run: same epoch, minus the batches its steps consumed."""
        self.epoch, self.skip_batches = epoch, batches_done

    def samples(self, counter: BadSampleCounter, epoch: int, worker: int, workers: int, skip: int = 0):
        """Decoded samples of this reader, shuffled; bad tars and samples counted and skipped. The first `skip`
        raw samples are dropped undecoded (resume: exact unless a corrupt sample lay in the skipped range)."""
        slot, slots = self.rank * workers + worker, self.world * workers
        shards = shard_stream(self.urls, self.seed, epoch, slot, slots, resampled=self.cfg.epoch_length > 0)
        raw = wds.tarfile_to_samples(handler=counter)(shards)
        order = shuffled(raw, self.cfg.shuffle_buffer, seeded("shuffle", self.seed, epoch, slot))
        for sample in islice(order, skip, None):
            counter.seen += 1
            try:
                yield decode_sample(sample, self.cfg, self.fill, self.aux, self.latents)
            except Exception as err:  # one bad sample must not stop training: count, log, skip
                counter(err)

    def __iter__(self):
        physical, workers = worker_and_count()
        epoch, self.epoch = self.epoch, self.epoch + 1
        done, self.skip_batches = self.skip_batches, 0
        # The DataLoader takes batch i from worker i mod W and starts every new iterator at worker 0. After a
        # resume the next batch is number `done`, owed by worker done mod W, so for this epoch physical worker w
        # plays logical worker (w + done) mod W, which already made share(done) of the consumed batches.
        worker = (physical + done) % workers
        skipped = share(done, worker, workers)
        counter, size = BadSampleCounter(), self.cfg.batch_size
        samples = self.samples(counter, epoch, worker, workers, skip=skipped * size)
        batches = (collate(group) for group in iter(lambda: list(islice(samples, size)), [])
                   if len(group) == size)  # drop a last partial batch: fixed shapes for every step
        if self.cfg.epoch_length > 0:
            per_epoch = share(max(1, self.cfg.epoch_length // size), worker, workers)
            batches = islice(batches, max(0, per_epoch - skipped))
        for batch in batches:
            batch["bad"], batch["seen"] = torch.tensor(counter.bad), torch.tensor(counter.seen)
            yield batch


def first_sample(urls: list[str], tries: int = 8) -> dict:
    """The first readable sample of the first readable shard among the first `tries` (corrupt ones skipped)."""
    errors = []
    for url in urls[:tries]:
        try:
            # the bare tar reader, not wds.WebDataset: that one refuses to run under torch.distributed
            for sample in wds.tarfile_to_samples()([{"url": url}]):
                return sample
        except Exception as err:  # a corrupt shard here is counted later by the stream; look at the next one
            errors.append(f"{url}: {type(err).__name__}: {err}"[:200])
    raise ConfigError(f"data.train_shards: no readable sample in the first {min(tries, len(urls))} shards "
                      f"({'; '.join(errors) or 'they are empty'})")


class ShardDataModule(L.LightningDataModule):
    """WebDataset shards -> batches. Pixel path: video, cond (and aux) uint8 [B,T,H,W,3]; latent path: target,
    degraded [B,C,F,h,w], text [B,L,D], text_mask [B,L] (and aux_latents); always caption, fps, bpp, bad, seen."""

    def __init__(self, cfg: DataConfig, fill: str = "forward", seed: int = 0, aux: str = "none"):
        super().__init__()
        self.cfg, self.fill, self.seed, self.aux = cfg, fill, seed, aux
        self.urls = expand_shards(cfg.train_shards)
        self.use_latents = self._latent_mode()

    def _latent_mode(self) -> bool:
        if self.cfg.latents != "auto":
            return self.cfg.latents == "always"
        sample = first_sample(self.urls)
        usable = has_latents(sample, self.fill)
        if "latents.safetensors" in sample and not usable:
            log.warning("shards hold latents made with another fill mode than %r; encoding on the fly", self.fill)
        return usable

    def stream(self, rank: int = 0, world: int = 1) -> ShardStream:
        readers = world * max(1, self.cfg.num_workers)
        if self.cfg.epoch_length == 0 and len(self.urls) < readers:
            raise ConfigError(f"data.train_shards: {len(self.urls)} shards cannot feed {world} ranks × "
                              f"{max(1, self.cfg.num_workers)} workers = {readers} readers in one-pass mode; "
                              f"prepare smaller shards (shard_size) or set data.epoch_length > 0 (resampling)")
        return ShardStream(self.urls, self.cfg, self.fill, self.aux, self.use_latents, self.seed, rank, world)

    def train_dataloader(self):
        trainer = getattr(self, "trainer", None)
        rank, world = rank_and_world(trainer)
        workers = self.cfg.num_workers
        stream = self.stream(rank, world)
        if trainer is not None and trainer.global_step > 0:
            # Resumed: Lightning restored the epoch and how many batches of it were consumed (`ready` counts the
            # batch whose step wrote the checkpoint). Continue the stream there instead of replaying it.
            done = trainer.fit_loop.epoch_loop.batch_progress.current.ready
            stream.resume(trainer.current_epoch, done)
            log.info("resuming the data stream at epoch %d after %d batches", trainer.current_epoch, done)
        return torch.utils.data.DataLoader(stream, batch_size=None, num_workers=workers,
                                           persistent_workers=workers > 0)
