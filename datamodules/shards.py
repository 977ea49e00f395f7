"""Streaming the prepared shards for training (schema: `datamodules.schema`).

Shards are split explicitly across ranks (all nodes) and then across DataLoader workers (`datamodules.sampling`),
so every reader reads different shards. With `epoch_length > 0` shards are resampled (with replacement, seeded
per rank and worker) and an epoch is a fixed number of samples per rank: long runs never wait on an epoch
boundary, and every rank yields the same number of batches (which DDP needs). The order of samples is a function
of the seed, the epoch, the rank and the worker only: the same seed gives the same batches, with or without
workers. Corrupt tars and malformed samples are skipped and counted; the counts travel with each batch (`bad`,
`seen`, per worker) so the training module can log them and stop past `max_bad_fraction`, and the first few and
then every power of two are logged with their reason. Tar members are checked by their headers before they are
read (`datamodules.tars`). A reader that sees `max_bad_in_a_row` bad samples in a row, or ends an epoch without a
batch, yields one `fatal` batch naming the counted reasons instead, and the training system stops the run with
it: nothing loops without progress.
"""

from __future__ import annotations

import glob
import json
import logging
import re
from collections import Counter
from itertools import islice
from pathlib import Path

import braceexpand
import lightning as L
import torch

from datamodules.decode import decode_sample, has_latents
from datamodules.latents import LatentSpec
from datamodules.schema import AUX_FIELDS
from datamodules.tars import MAX_MEMBER_BYTES, tar_samples
from datamodules.sampling import rank_and_world, seeded, shard_stream, share, shuffled, worker_and_count
from disco_train.codec.container import FULL, Pattern
from disco_train.config import ConfigError, DataConfig
from disco_train.config.prepare import flat_settings

log = logging.getLogger("datamodules")


class BadDataError(RuntimeError):
    """Training cannot make progress on these shards: a reader found nothing usable (the counted reasons say why)."""


def expand_shards(spec: str, key: str = "data.train_shards") -> list[str]:
    """Comma list of globs / brace patterns -> existing shard paths. Missing paths fail here, at start."""
    urls: list[str] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        for pattern in braceexpand.braceexpand(part):
            matches = sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else [pattern]
            missing = [m for m in matches if not Path(m).is_file()]
            if not matches or missing:
                raise ConfigError(f"{key}: no shard at {missing[0] if missing else pattern!r}; run "
                                  f"`python -m disco_train prepare` first or fix the path")
            urls.extend(matches)
    if not urls:
        raise ConfigError(f"{key}: {spec!r} names no shard")
    return urls


class BadSampleCounter:
    """Per-worker tally of skipped samples and corrupt tars, with the reasons counted by kind; a handler that logs
    and continues."""

    def __init__(self):
        self.bad, self.seen, self.in_a_row, self.last_error = 0, 0, 0, ""
        self.reasons: Counter[str] = Counter()

    def __call__(self, exn: Exception) -> bool:
        self.bad += 1
        self.in_a_row += 1
        self.last_error = f"{type(exn).__name__}: {exn}"[:300]
        self.reasons[_reason(str(exn))] += 1
        if self.bad <= 3 or self.bad & (self.bad - 1) == 0:  # the first three, then 4, 8, 16, ...
            log.warning("skipped bad sample #%d (of %d seen in this worker): %s", self.bad, self.seen,
                        self.last_error)
        return True  # keep going

    def summary(self) -> str:
        top = "; ".join(f"{n} × {r}" for r, n in self.reasons.most_common(3))
        return f"{self.bad} of {self.seen} samples bad ({top or 'no sample'}); last: {self.last_error or '-'}"


def _reason(message: str) -> str:
    """The kind of a bad-sample message: without the sample key and numbers, so reasons group."""
    text = re.sub(r"^sample \S+: ", "", message)
    return re.sub(r"\d+", "N", text)[:120]


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
                 rank: int, world: int, spec: LatentSpec | None = None, pattern: Pattern = FULL,
                 reference: str = "full"):
        super().__init__()
        self.urls, self.cfg, self.fill, self.aux, self.latents, self.spec = urls, cfg, fill, aux, latents, spec
        self.pattern, self.reference = pattern, reference
        self.seed, self.rank, self.world = seed, rank, world
        self.epoch = 0  # per process: advances each time this copy starts iterating
        self.skip_batches = 0  # batches of the first epoch already consumed before a resume

    def resume(self, epoch: int, batches_done: int) -> None:
        """Continue the sample stream of a killed run: same epoch, minus the batches its steps consumed."""
        self.epoch, self.skip_batches = epoch, batches_done

    def samples(self, counter: BadSampleCounter, epoch: int, worker: int, workers: int, skip: int = 0):
        """Decoded samples of this reader, shuffled; bad tars and samples counted and skipped. The first `skip`
        raw samples are dropped undecoded (resume: exact unless a corrupt sample lay in the skipped range).
        Ends early once `max_bad_in_a_row` samples in a row were bad (the caller reports it)."""
        slot, slots = self.rank * workers + worker, self.world * workers
        shards = shard_stream(self.urls, self.seed, epoch, slot, slots, resampled=self.cfg.epoch_length > 0)
        raw = tar_samples(shards, counter, self.cfg.max_member_bytes)
        order = shuffled(raw, self.cfg.shuffle_buffer, seeded("shuffle", self.seed, epoch, slot))
        for sample in islice(order, skip, None):
            counter.seen += 1
            try:
                decoded = decode_sample(sample, self.cfg, self.fill, self.aux, self.latents, self.spec, self.pattern,
                                        self.reference)
            except Exception as err:  # one bad sample must not stop training: count, log, skip
                counter(err)
                if counter.in_a_row >= self.cfg.max_bad_in_a_row:
                    return
                continue
            counter.in_a_row = 0
            yield decoded

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
        delivered = 0
        for batch in batches:
            batch["bad"], batch["seen"] = torch.tensor(counter.bad), torch.tensor(counter.seen)
            delivered += 1
            yield batch
        starved = counter.in_a_row >= self.cfg.max_bad_in_a_row
        # An epoch without a batch and without one good sample (all bad, or no sample at all in a fresh epoch)
        # would repeat forever; after a resume an emptied epoch is normal.
        useless = delivered == 0 and (counter.bad >= counter.seen > 0 or (counter.seen == 0 and not skipped))
        if starved or useless:
            why = (f"{counter.in_a_row} bad samples in a row" if starved else
                   f"epoch {epoch} ended without a batch and without a usable sample")
            yield {"fatal": f"reader {self.rank}.{worker}: {why}: {counter.summary()}",
                   "bad": torch.tensor(counter.bad), "seen": torch.tensor(counter.seen)}


def first_sample(urls: list[str], tries: int = 8, max_member_bytes: int = MAX_MEMBER_BYTES) -> dict:
    """The first readable sample of the first readable shard among the first `tries` (corrupt ones skipped)."""
    errors = []
    for url in urls[:tries]:
        for sample in tar_samples([{"url": url}], lambda err: errors.append(str(err)[:200]), max_member_bytes):
            return sample
    raise ConfigError(f"data.train_shards: no readable sample in the first {min(tries, len(urls))} shards "
                      f"({'; '.join(errors) or 'they are empty'})")


class ShardDataModule(L.LightningDataModule):
    """WebDataset shards -> batches. Pixel path: video, cond (and aux) uint8 [B,T,H,W,3]; latent path: target,
    degraded [B,C,F,h,w], text [B,L,D], text_mask [B,L] (and aux_latents); always caption, fps, bpp, bad, seen.
    `pattern`: the run's stream pattern (`Pattern.of_condition`), which the shards' must be; `reference`:
    `condition.reference` (compact: `cond` / `degraded` at the coded size / ds, and one ds in all the shards)."""

    def __init__(self, cfg: DataConfig, fill: str = "forward", seed: int = 0, aux: str = "none",
                 spec: LatentSpec | None = None, pattern: Pattern = FULL, reference: str = "full"):
        super().__init__()
        self.cfg, self.fill, self.seed, self.aux, self.spec, self.pattern = cfg, fill, seed, aux, spec, pattern
        self.reference = reference
        self.urls = expand_shards(cfg.train_shards)
        self.use_latents = self._latent_mode()
        check_shards(self.urls, cfg, aux, self.use_latents, fill, spec, pattern, reference)

    def _latent_mode(self) -> bool:
        if self.cfg.latents != "auto":
            return self.cfg.latents == "always"
        sample = first_sample(self.urls, max_member_bytes=self.cfg.max_member_bytes)
        usable = has_latents(sample, self.fill, self.reference)
        if "latents.safetensors" in sample and not usable:
            log.warning("shards hold latents made with another fill or reference than %r, %r; encoding on the fly",
                        self.fill, self.reference)
        return usable

    def stream(self, rank: int = 0, world: int = 1) -> ShardStream:
        readers = world * max(1, self.cfg.num_workers)
        if self.cfg.epoch_length == 0 and len(self.urls) < readers:
            raise ConfigError(f"data.train_shards: {len(self.urls)} shards cannot feed {world} ranks × "
                              f"{max(1, self.cfg.num_workers)} workers = {readers} readers in one-pass mode; "
                              f"prepare smaller shards (shard_size) or set data.epoch_length > 0 (resampling)")
        return ShardStream(self.urls, self.cfg, self.fill, self.aux, self.use_latents, self.seed, rank, world,
                           self.spec, self.pattern, self.reference)

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


# ---- preflight: the shards against the run's data settings, before any weights load -------------------------------
def _prepared_with(folder: Path) -> dict | None:
    path = folder / "prepare_config.json"
    if not path.is_file():
        return None
    try:
        found = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as err:
        raise ConfigError(f"data.train_shards: {path} is unreadable ({err}); re-run prepare into that folder")
    return flat_settings(found) if isinstance(found, dict) else None


def check_shards(urls: list[str], cfg: DataConfig, aux: str, latents: bool, fill: str,
                 spec: LatentSpec | None, pattern: Pattern = FULL, reference: str = "full") -> None:
    """ConfigError naming both sides when the shards cannot feed this run: clip size, the auxiliary field the
    condition needs, the stream pattern (selected streams hold only what one pattern's tokens read), precomputed
    latents that do not fit the model (read from each folder's prepare_config.json and from the first sample)."""
    want = {"frames": cfg.frames, "height": cfg.height, "width": cfg.width}
    for folder in sorted({Path(u).parent for u in urls}):
        prepared = _prepared_with(folder) or {}
        got = {k: prepared[k] for k in want if k in prepared}
        frames = got.get("frames", cfg.frames)
        if got and ((got.get("height"), got.get("width")) != (cfg.height, cfg.width)
                    or frames < cfg.frames or (latents and frames != cfg.frames)):
            raise ConfigError(f"data: frames×height×width = {cfg.frames}×{cfg.height}×{cfg.width}, but the shards in "
                              f"{folder} were prepared at {got.get('frames')}×{got.get('height')}×{got.get('width')} "
                              f"(prepare_config.json); set data.frames/height/width to match or prepare again")
        if aux != "none" and prepared and not prepared.get(aux):
            raise ConfigError(f"condition.aux={aux}, but the shards in {folder} were prepared without {aux}=true "
                              f"(prepare_config.json): they hold no {AUX_FIELDS[aux]}")
        if prepared:
            _check_pattern(prepared, pattern, folder)
        ds = sorted(set(prepared.get("ds") if isinstance(prepared.get("ds"), list) else [prepared.get("ds")]) - {None})
        if reference == "compact" and len(ds) > 1:
            raise ConfigError(f"condition.reference=compact: the shards in {folder} mix ds={ds} (prepare_config.json); "
                              f"compact references of different sizes cannot share a batch: prepare one ds per run")
    sample = first_sample(urls, max_member_bytes=cfg.max_member_bytes)
    try:
        decode_sample(sample, cfg, fill, aux, latents, spec, pattern, reference)
    except Exception as err:
        raise ConfigError(f"data.train_shards: the first sample ({sample.get('__url__')}) does not fit this run: "
                          f"{err}") from None


def _check_pattern(prepared: dict, pattern: Pattern, folder: Path) -> None:
    try:
        got = Pattern.of_settings(prepared)
    except ValueError as err:
        raise ConfigError(f"data.train_shards: {folder / 'prepare_config.json'} has a bad send.ratio ({err})")
    if got != pattern:
        want = ("send.stream=full" if pattern == FULL else f"send.stream=selected send.ratio={pattern.a}:{pattern.b} "
                f"send.interleave_unit={pattern.unit}")
        raise ConfigError(f"condition: this run reads {pattern} (condition.stream, interleave_unit, ratio), but the "
                          f"shards in {folder} were prepared with {got} (prepare_config.json); prepare again with "
                          f"{want} or set condition.* to match the shards")
