"""The receiving half of the DiSCo system as a library: `.disco` containers -> condition frames -> generated frames.

    decoder_setup(a) -> (cfg, video weights, sketch weights)     the export's decoder config and stream weights
    receive_all(cfg, containers) -> condition frames           `codec.receiver.receive`, before any decoder exists
    ready_decoder(a, cfg) -> (DiscoDecoder, schedule, steps)    built once, with the decode settings applied
    generate(decoder, containers, received) -> frames           one batch of one coded size

`decode` (one file, the `decode` command), `codec.batch.decode_many` (many files) and the benchmark's DiSCo method
(`decode_containers`) are these steps in order, so every path restores and samples a container the same way.
"""

from __future__ import annotations

import sys

import numpy as np

from disco_train.codec import container as C
from disco_train.codec.container import Pattern
from disco_train.codec.guards import (check_memory, check_output, check_viewing_copy, memory_errors,
                                      write_decoded)
from disco_train.codec.progress import sampling_bar
from disco_train.codec.sender import CodecError
from disco_train.config import DecodeLimits


def resolve_device(device: str) -> str:
    """'' -> cuda when available, else cpu; cuda -> the local rank's GPU (`config.parts.resolve_device`)."""
    import torch

    from disco_train.config.parts import resolve_device as local_rank_device

    return local_rank_device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def decoder_setup(a, manifest=None) -> tuple:
    """(decoder config with the overrides, video stream weights, sketch stream weights) of the export (its
    `ExportManifest` when already read)."""
    from disco_train.codec import trained
    from disco_train.decoder.export import decoder_config, read_manifest

    manifest = read_manifest(a.export) if manifest is None else manifest
    video_weights = trained.video_weights(manifest, a.dcvc_rt_dir)
    sketch_weights = trained.sketch_weights(a.export, manifest, a.sketch_dcvc_dir, video_weights)
    return decoder_config(a.export, a.overrides, manifest), video_weights, sketch_weights


def ready_decoder(a, cfg) -> tuple:
    """(the export's DiscoDecoder with the decode settings applied: step cache, dtype, compile; the σ schedule; the
    steps), built on `a.device` (`resolve_device`)."""
    from disco_train.decoder import fast
    from disco_train.decoder.decoder import DiscoDecoder
    from disco_train.decoder.flow import schedule_steps

    decoder = DiscoDecoder.from_export(a.export, device=resolve_device(a.device), merge=a.merge_lora, cfg=cfg)
    schedule, steps = cfg.validation.sampling(a.schedule, a.steps)
    fast.apply(decoder.transformer, a.cache, a.dtype, a.compile, schedule_steps(schedule, steps))
    return decoder, schedule, steps


def receive_all(cfg, containers: list[C.Container], video_weights: str | None = None,
                sketch_weights: str | None = None, limits: DecodeLimits = DecodeLimits()) -> list[dict]:
    """Every container's streams restored to condition frames by the receiver that decodes training data, before a
    decoder is needed."""
    from disco_train.codec.receiver import receive

    pattern = Pattern.of_condition(cfg.condition)
    return [receive(c, cfg.condition.fill, cfg.condition.aux, video_weights, sketch_weights, limits, pattern,
                    cfg.condition.reference) for c in containers]


def generate(decoder, containers: list[C.Container], received: list[dict], steps: int | None, guidance: float,
             seeds: list[int], negative_prompt: str, schedule: str = "shifted", progress=False) -> list[np.ndarray]:
    """Restored containers of one coded size -> their reconstructions [T,H,W,3] uint8, sampled as one batch by a
    built `DiscoDecoder` (each with its own noise seed). `progress`: a bar of steps × clips on stderr."""
    import torch

    from disco_train.codec.receiver import crop

    sizes = {(c.geometry.coded_frames, c.geometry.coded_height, c.geometry.coded_width) for c in containers}
    if len(sizes) != 1:
        raise CodecError(f"one batch needs one coded size, got {sorted(sizes)}")
    device = decoder.device
    stack = lambda key: torch.from_numpy(np.stack([g[key] for g in received])).to(device)  # noqa: E731
    batch = {"cond": stack("cond"), "caption": [g["caption"] for g in received], "size": sizes.pop(),
             "ds": [g["ds"] for g in received],
             "fps": torch.tensor([float(c.geometry.fps) for c in containers], device=device)}
    if decoder.cfg.condition.aux != "none":
        batch["aux"] = stack("aux")
    with sampling_bar(decoder.transformer, schedule, steps, len(containers), progress):
        frames = decoder.reconstruct(batch, steps=steps, guidance=guidance, seed=list(seeds),
                                     negative_prompt=negative_prompt, schedule=schedule)
    return [crop(f.cpu().numpy(), c.geometry) for f, c in zip(frames, containers)]


def decode_containers(decoder, containers: list[C.Container], steps: int | None, guidance: float, seeds: list[int],
                      negative_prompt: str, video_weights: str | None = None,
                      sketch_weights: str | None = None, schedule: str = "shifted") -> list[np.ndarray]:
    """Containers of one coded size -> their reconstructions, by a decoder built once (the benchmark's batches)."""
    received = receive_all(decoder.cfg, containers, video_weights, sketch_weights)
    return generate(decoder, containers, received, steps, guidance, seeds, negative_prompt, schedule)


def decode(a) -> np.ndarray:
    """One .disco file + export folder (`codec.cli.DecodeConfig`) -> reconstructed frames [T,H,W,3] (written
    losslessly when `a.out`). Every stream is checked and restored before the decoder is built; MemoryError becomes
    a DecodeError."""
    with memory_errors(a):
        return _decode(a)


def _decode(a) -> np.ndarray:
    from disco_train.codec.receiver import required
    from disco_train.decoder import fast
    from disco_train.decoder.export import describe_settings, read_manifest, trained_settings

    if a.out:
        check_output(a)  # a path it cannot or must not write fails now, not after decoding
    c = C.read(a.input, a.limits)
    check_viewing_copy(a, c)
    manifest = read_manifest(a.export)
    video, points = required(c, "video", "decoding"), trained_settings(manifest)
    if not any((video.ds, video.dt, video.codec) == (p.get("ds"), p.get("dt"), p.get("codec")) for p in points):
        print(f"decode: warning: video coded with ds={video.ds} dt={video.dt} {video.codec}; the decoder was "
              f"trained on {describe_settings(points)}", file=sys.stderr)
    fast.check(a.cache, a.dtype)  # a bad setting fails before any stream is decoded
    cfg, video_weights, sketch_weights = decoder_setup(a, manifest)
    check_memory(a, c, cfg, resolve_device(a.device))
    received = receive_all(cfg, [c], video_weights or None, sketch_weights or None, a.limits)
    decoder, schedule, steps = ready_decoder(a, cfg)
    fast.configure_vae(decoder.vae, c.geometry.coded_height, c.geometry.coded_width, a.vae_tiling)
    (frames,) = generate(decoder, [c], received, steps, cfg.validation.guidance if a.guidance is None else a.guidance,
                         [a.seed], a.negative_prompt or cfg.validation.negative_prompt, schedule, progress=True)
    if a.out:
        write_decoded(a, frames, float(c.geometry.fps))
    return frames
