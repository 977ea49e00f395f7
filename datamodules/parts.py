"""Parts of the inputs, the locks of an output folder, and the merge (`part=K/N`, `merge=true`).

- Which part: `part=K/N`, else the scheduler's environment, as `config.parts.resolve_part` reads it for every
  command (SLURM array × torchrun/srun ranks). A video belongs to part `inputs.part_of(name, N)`.
- Locks: `disco_train.io.files.locked` (fcntl.flock) on lock files in the output folder, so the kernel releases
  them when the holder dies (a SIGKILLed run never blocks the next one). `prepare[-pKKK].lock` is held by a part's
  run from start to end and a second run of the same part is refused at once (`PrepareError`, exit 2);
  `prepare_config.lock` is held for moments: to check and record the settings, to drop or write a part's done
  marker, and by the merge.
- A part that finishes writes `done[-pKKK].json` (its summary); a part that starts drops it first. The merge
  needs all N markers, so it never reads a part that is running or was killed.
- Merge: every input is in exactly one part's index or failures, every shard an index names exists and every
  shard on disk is named; then the combined `index.jsonl` and `failures.jsonl` are written (atomically). The last
  part to finish merges by itself; `merge=true` does it by hand.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from datamodules.inputs import Video, part_of
from datamodules.jsonl import read_jsonl
from datamodules.sink import FAILURES, INDEX, Part
from disco_train.config import ConfigError, PrepareConfig
from disco_train.config.parts import resolve_device  # noqa: F401  (prepare and tests take it from here)
from disco_train.config.parts import resolve_part as shared_part
from disco_train.config.prepare import flat_settings
from disco_train.config.send import RATE_KEYS, as_list
from disco_train.io.files import atomic_write, temporaries
from disco_train.io.files import locked as parts_lock

SETTINGS, SETTINGS_LOCK = "prepare_config.json", "prepare_config.lock"
RESUMABLE_KEYS = {"input", "output", "captions", "caption_key", "caption_column", "caption_default", "captioner",
                  "shard_size", "device", "seed", "print_config", "workers", "part", "merge"}
"""Keys that may differ between runs (and parts) into one output without making their samples inconsistent."""


class PrepareError(RuntimeError):
    """A run that cannot or did not do its job: the output is locked, nothing was found or prepared, a merge is
    incomplete. The command prints it and exits with code 2; nothing already done is lost."""


def resolve_part(text: str, env: dict | None = None) -> tuple[Part, str]:
    """(the part this process prepares, where that came from): `config.parts.resolve_part`."""
    k, n, source = shared_part(text, env)
    return Part(k, n), source


def locked(path: Path, what: str, wait: bool):
    """`config.parts.locked`: a held lock is a PrepareError naming its holder."""
    return parts_lock(path, PrepareError, what, wait, by="prepare run")


def hold_part(output: Path, part: Part):
    what = f"output={output}" + (f" (part {part.label})" if part.count > 1 else "")
    return locked(output / part.lock_file, what, wait=False)


def settings_lock(output: Path):
    return locked(output / SETTINGS_LOCK, f"{output / SETTINGS}", wait=True)


def read_settings(output: Path) -> dict | None:
    path = output / SETTINGS
    if not path.is_file():
        return None
    text, settings = path.read_text(errors="replace"), None
    try:
        settings = json.loads(text)
        why = "" if isinstance(settings, dict) else "does not hold a JSON object"
    except json.JSONDecodeError as err:
        why = f"is not JSON ({err})"
    if not text.strip():
        why = "is empty"
    if why:
        raise ConfigError(f"{path} {why}: it records the settings the shards in {output} were made with. Restore "
                          f"it, or delete it if you are sure this run's settings are the ones the shards were made "
                          f"with")
    return settings


def check_same_settings(output: Path, cfg: PrepareConfig, parts: int = 1) -> None:
    """A resumed run (or another part) must make samples like the first run did; otherwise the shard folder would
    mix settings."""
    before = read_settings(output)
    if before is None:
        return
    if before.get("parts", 1) != parts:
        raise ConfigError(f"part: output={output} is prepared in {before.get('parts', 1)} part(s); this run would "
                          f"make {parts}. Use the same N (part=K/{before.get('parts', 1)}) or a new output folder")
    before, now = flat_settings(before), flat_settings(json.loads(json.dumps(asdict(cfg))))
    # A key the first run's version did not have counts as its default; ds=4 and ds=[4] are the same grid.
    defaults = flat_settings(json.loads(json.dumps(asdict(PrepareConfig()))))
    same = lambda k: _normal(k, before.get(k, defaults.get(k))) == _normal(k, now.get(k))  # noqa: E731
    changed = sorted(k for k in set(before) | set(now) if k not in RESUMABLE_KEYS | {"parts"} and not same(k))
    if changed:
        detail = ", ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in changed)
        raise ConfigError(f"output={output} was prepared with other settings ({detail}); use a new output folder "
                          f"or the old values")


def _normal(key: str, value):
    return as_list(value) if key in RATE_KEYS and isinstance(value, (int, list)) else value


def start_part(output: Path, cfg: PrepareConfig, part: Part) -> None:
    """Check and record the settings and drop this part's done marker (it is about to change)."""
    with settings_lock(output):
        check_same_settings(output, cfg, part.count)
        # Rewrites killed before their rename; every writer of these files holds the settings lock.
        merged = [INDEX, FAILURES] if part.count > 1 else []
        for name in [SETTINGS, *merged, *(Part(k, part.count).done_file for k in range(part.count))]:
            for stale in temporaries(output, name):
                stale.unlink()
        atomic_write(output / SETTINGS, json.dumps({**asdict(cfg), "parts": part.count}, indent=2))
        (output / part.done_file).unlink(missing_ok=True)


def finish_part(output: Path, part: Part, summary: dict) -> None:
    with settings_lock(output):
        atomic_write(output / part.done_file, json.dumps(summary, indent=2))


def _missing_parts(output: Path, count: int) -> list[Part]:
    return [p for p in (Part(k, count) for k in range(count)) if not (output / p.done_file).is_file()]


def merge(output: Path, videos: list[Video], log=print, auto: bool = False) -> dict | None:
    """Check the parts and write the combined index (module docstring). With `auto` (a part that just finished),
    parts still missing are not an error: the last one merges. Returns the merged counts, or None."""
    settings = read_settings(output)
    if settings is None:
        raise PrepareError(f"merge: nothing was prepared in {output} (no {SETTINGS})")
    count = settings.get("parts", 1)
    with settings_lock(output):
        missing = _missing_parts(output, count)
        if missing and auto:
            log(f"prepare: waiting for part(s) {', '.join(p.label for p in missing)}; the last part to finish "
                f"merges (or run merge=true)")
            return None
        if missing:
            raise PrepareError(f"merge: part(s) {', '.join(p.label for p in missing)} of {output} have not finished "
                               f"(no {', '.join(p.done_file for p in missing)}): run "
                               f"{' and '.join(f'part={p.label}' for p in missing)} with the same settings first")
        return _merge_parts(output, [Part(k, count) for k in range(count)], videos, log)


def _merge_parts(output: Path, parts: list[Part], videos: list[Video], log) -> dict:
    index, failures, problems = [], [], []
    for part in parts:
        rows = read_jsonl(output / part.index_file)
        index += rows
        failures += read_jsonl(output / part.failures_file)
        named = {r["shard"] for r in rows}
        on_disk = {p.name for p in part.shards(output)}
        problems += [f"{part.index_file} names {s}, which is not in {output}" for s in sorted(named - on_disk)]
        problems += [f"{s} is in no row of {part.index_file}: re-run part {part.label} to reconcile it"
                     for s in sorted(on_disk - named)]
    done = Counter(r["video"] for r in index)
    doubled = sorted(v for v, c in done.items() if c > 1)
    final = {r["video"] for r in failures} - set(done)
    count = len(parts)
    lost = [v for v in videos if str(v.path) not in done and str(v.path) not in final]
    if doubled:
        problems.append(f"{len(doubled)} input(s) are in more than one index row (first: {doubled[0]})")
    if lost:
        owners = sorted({part_of(v.name, count) for v in lost})
        problems.append(f"{len(lost)} input(s) are in no part's index or failures (first: {lost[0].path}); re-run "
                        f"part(s) {', '.join(f'{k}/{count}' for k in owners)}")
    if problems:
        raise PrepareError("merge: " + "; ".join(problems))
    kept_failures = [r for r in _last_per_video(failures) if r["video"] in final]
    if count > 1:
        atomic_write(output / INDEX, "".join(json.dumps(r) + "\n" for r in index))
        atomic_write(output / FAILURES, "".join(json.dumps(r) + "\n" for r in kept_failures))
    retry = sum(1 for r in kept_failures if r.get("retry"))
    counts = {"videos": len(done), "failed": len(kept_failures), "retry": retry, "parts": count,
              "shards": sum(len(p.shards(output)) for p in parts)}
    log(f"prepare: merged {count} part(s): {counts['videos']} videos in {counts['shards']} shards, "
        f"{counts['failed']} failed ({retry} to retry by re-running their part); index in {output / INDEX}")
    return counts


def _last_per_video(rows: list[dict]) -> list[dict]:
    last = {r["video"]: r for r in rows}
    return list(last.values())
