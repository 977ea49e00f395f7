"""`decode` of many `.disco` files: a folder (searched recursively), a glob or a comma-separated list into an
output folder, `<out>/<stem>.mkv` each (FFV1, lossless).

The files are dealt to the parts (`part=K/N`, else torchrun's or SLURM's variables, as `prepare` and `benchmark`
read them; `config.parts`), in name order, so every part decodes its own share into the shared folder. A part
builds the decoder once (only when it has work) and samples the clips of one coded size `batch_size` at a time,
each with the same noise seed (`seed`), so a clip's output does not depend on its batch. Finished outputs are
skipped: each is written to a temporary name and renamed, so a killed run never leaves a half file that would
count as done, and a rerun continues. A file that cannot be read or restored is reported at the end (exit 2);
the others are still decoded.
"""

from __future__ import annotations

import glob
from pathlib import Path

from disco_train.codec import container as C
from disco_train.codec.pipeline import decoder_setup, generate, ready_decoder, receive_all, resolve_device
from disco_train.codec.sender import CodecError
from disco_train.config.base import check
from disco_train.config.outputs import check_folder_output, claim_folder
from disco_train.config.parts import deal, part_tag, resolve_part
from disco_train.io.files import locked


def is_batch(text: str) -> bool:
    """Several inputs: a folder, a glob or a comma-separated list (a single .disco path is the one-file decode)."""
    return Path(text).is_dir() or any(ch in text for ch in "*?[,")


def list_inputs(text: str) -> list[Path]:
    """The .disco files of a folder, glob or comma-separated list, sorted; their stems name the outputs."""
    if Path(text).is_dir():
        found = [p for p in Path(text).rglob("*.disco") if p.is_file()]
    elif any(ch in text for ch in "*?["):
        found = [Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file()]
    else:
        found = [Path(p.strip()) for p in text.split(",") if p.strip()]
        absent = [str(p) for p in found if not p.is_file()]
        if absent:
            raise CodecError(f"input: no such file(s) {absent}")
    if not found:
        raise CodecError(f"input={text}: no .disco files")
    found, clashes = sorted_by_stem(found)
    if clashes:
        raise CodecError(f"input={text}: several files named {clashes}; the outputs are named by file stem")
    return found


def sorted_by_stem(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """(`paths` in stem order, the stems that more than one of them has): outputs and tables name files by stem."""
    found = sorted(paths, key=lambda p: (p.stem, str(p)))
    stems = [p.stem for p in found]
    return found, sorted({s for s in stems if stems.count(s) > 1})


def target(out: Path, source: Path) -> Path:
    return out / f"{source.stem}.mkv"


def decode_many(a, log=print) -> dict:
    """Decode this part's share of `a.input` into the folder `a.out`; returns {'part', 'decoded', 'skipped',
    'written'}. Files that failed raise a CodecError after the others are written."""
    if not a.out:
        raise CodecError("out: several inputs need an output folder (out=DIR)")
    check(a.batch_size >= 1, "batch_size", "must be >= 1")
    k, n, source = resolve_part(a.part)  # a bad part= fails before anything is read
    inputs = list_inputs(a.input)
    out = Path(a.out)
    if out.suffix.lower() in (".mkv", ".mp4") or out.is_file():
        raise CodecError(f"out={out}: several inputs need an output folder, not a file")
    check_folder_output(out, [*(("input", p) for p in inputs), ("export", a.export), ("dcvc_rt_dir", a.dcvc_rt_dir),
                              ("sketch_dcvc_dir", a.sketch_dcvc_dir)], a.overwrite, "decode")
    claim_folder(out, "decode")
    mine = [p for p, owner in zip(inputs, deal([1.0] * len(inputs), n)) if owner == k]
    label = f" of part {k}/{n} ({source})" if n > 1 else ""
    with locked(out / f".decode{part_tag(k, n)}.lock", CodecError, f"out={out}" + (f" (part {k}/{n})" if n > 1
                                                                                   else ""), by="decode run"):
        for p in mine:  # temporary files of this part's killed runs (the lock says no one else writes them)
            for stale in out.glob(f".{target(out, p).name}.tmp*"):
                stale.unlink()
        todo = [p for p in mine if not target(out, p).is_file()]
        log(f"decode: {len(mine)} file(s){label}, {len(mine) - len(todo)} already decoded, {len(todo)} to decode")
        written, failures = _decode_files(a, todo, out, log) if todo else ([], [])
    if failures:
        raise CodecError(f"decode: {len(failures)} file(s) failed{label}: " + "; ".join(failures[:3])
                         + ("; ..." if len(failures) > 3 else "") + f" ({len(written)} written)")
    log(f"decode: part {k}/{n}: {len(written)} decoded, {len(mine) - len(todo)} already there, in {out}")
    return {"part": f"{k}/{n}", "decoded": len(written), "skipped": len(mine) - len(todo), "written": written}


def _read(a, paths: list[Path], failures: list[str]) -> list[tuple[Path, C.Container]]:
    read = []
    for path in paths:
        try:
            read.append((path, C.read(path, a.limits)))
        except (ValueError, OSError) as err:
            failures.append(f"{path}: {err}")
    return read


def _decode_files(a, paths: list[Path], out: Path, log) -> tuple[list[Path], list[str]]:
    """Decode `paths` with one decoder build, a batch per coded size; returns (written outputs, failures)."""
    from disco_train.codec.guards import check_memory
    from disco_train.decoder import fast

    fast.check(a.cache, a.dtype)  # a bad setting fails before any stream is decoded
    failures: list[str] = []
    cfg, video_weights, sketch_weights = decoder_setup(a)
    groups: dict[tuple, list] = {}
    for path, c in _read(a, paths, failures):
        g = c.geometry
        groups.setdefault((g.coded_frames, g.coded_height, g.coded_width), []).append((path, c))
    built, written = None, []
    for items in groups.values():
        for start in range(0, len(items), a.batch_size):
            batch, received = [], []
            for path, c in items[start:start + a.batch_size]:
                try:
                    check_memory(a, c, cfg, resolve_device(a.device))  # as one-file decode does, per clip
                    received += receive_all(cfg, [c], video_weights or None, sketch_weights or None, a.limits)
                    batch.append((path, c))
                except (ValueError, OSError) as err:
                    failures.append(f"{path}: {err}")
            if batch:
                built = built or ready_decoder(a, cfg)  # only a part with work builds it, once
                written += _generate(a, cfg, built, batch, received, out, log)
    return written, failures


def _generate(a, cfg, built: tuple, batch: list, received: list, out: Path, log) -> list[Path]:
    """One batch of one coded size -> its outputs, each written to a temporary name and renamed."""
    from disco_train.io.video import write_lossless
    from disco_train.decoder import fast

    decoder, schedule, steps = built
    geometry = batch[0][1].geometry
    fast.configure_vae(decoder.vae, geometry.coded_height, geometry.coded_width, a.vae_tiling)
    frames = generate(decoder, [c for _, c in batch], received, steps,
                      cfg.validation.guidance if a.guidance is None else a.guidance, [a.seed] * len(batch),
                      a.negative_prompt or cfg.validation.negative_prompt, schedule)
    written = []
    for (path, c), recon in zip(batch, frames):
        written.append(write_lossless(target(out, path), recon, float(c.geometry.fps)))
        log(f"decode: {path} -> {written[-1]}")
    return written
