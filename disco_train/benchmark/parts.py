"""A benchmark in parts (`part=K/N`, or torchrun's / SLURM's variables as `config.parts` reads them) and the
merge of their cells into the tables.

The unit of work is the cache cell (video × method × point). Every part plans every cell (the same plan from the
same settings) and deals them alike (`config.parts.deal`): DiSCo's cells in chunks of `disco.batch_size` clips of
one point (a batch stays whole; every part gets a share of every point, not all of one video), weighted far above
a baseline's cell, the costliest first to the least-loaded part. A part computes only its own cells into the
shared `out/cache/` (each written atomically, so parts never touch each other's files), holds
`parts/part-pKKK.lock` from start to end (a second run of the same part is refused; the kernel drops the lock
with a killed one) and, when done, writes `parts/done-pKKK.json`: the digest of its plan and the cells that
failed. The last part to finish — or `merge=true` — checks that all N markers are there and name this plan, and
that every cell is in the cache, then writes the tables exactly as a one-process run does. What is missing is
named with the part that owns it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from disco_train.config.parts import deal, part_tag, resolve_part
from disco_train.io.files import atomic_write, locked

FOLDER = "parts"
DISCO_COST = 1000.0
"""A DiSCo cell's weight against a baseline cell's 1: sampling a clip costs orders of magnitude more."""


class BenchmarkError(ValueError):
    """A part or merge that cannot do its job: the part is running elsewhere, cells failed or are missing.
    The command prints it and exits with code 2; finished cells are kept."""


@dataclass(frozen=True)
class Share:
    """Part `index` of `count` of the cells, and where that came from."""

    index: int = 0
    count: int = 1
    source: str = "the whole input"

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"

    def done_file(self, out: Path, index: int | None = None) -> Path:
        return Path(out) / FOLDER / f"done{part_tag(self.index if index is None else index, self.count)}.json"


def share_of(text: str) -> Share:
    return Share(*resolve_part(text))


def merged_share(out: Path, text: str) -> Share:
    """The N of `merge=true`: from `part=K/N`, else from the parts' done markers."""
    if text:
        return share_of(text)
    counts = set()
    for path in sorted((Path(out) / FOLDER).glob("done*.json")):
        try:
            counts.add(int(str(json.loads(path.read_text())["part"]).split("/")[1]))
        except (OSError, ValueError, KeyError, IndexError, json.JSONDecodeError):
            continue
    if len(counts) != 1:
        found = f"markers of {sorted(counts)} parts" if counts else "no part has finished"
        raise BenchmarkError(f"merge: {found} in {Path(out) / FOLDER}; give the number of parts as part=0/N")
    return Share(0, counts.pop(), "the done markers")


def owners(cells: list, disco_methods: set, batch_size: int, count: int) -> dict[str, int]:
    """{cell key: its part} (module docstring)."""
    units, chunk = [], []
    for cell in cells:
        if cell.point.method not in disco_methods:
            units.append(([cell], 1.0))
            continue
        if chunk and ((chunk[0].point.method, chunk[0].point.label) != (cell.point.method, cell.point.label)
                      or len(chunk) == batch_size):
            units.append((chunk, DISCO_COST * len(chunk)))
            chunk = []
        chunk.append(cell)
    if chunk:
        units.append((chunk, DISCO_COST * len(chunk)))
    parts = deal([cost for _, cost in units], count)
    return {cell.key: part for (group, _), part in zip(units, parts) for cell in group}


def plan_digest(cells: list) -> str:
    return hashlib.sha256("\n".join(sorted(c.key for c in cells)).encode()).hexdigest()


def hold(out: Path, share: Share):
    (out / FOLDER).mkdir(parents=True, exist_ok=True)
    what = f"out={out} (part {share.label})"
    return locked(out / FOLDER / f"part{part_tag(share.index, share.count)}.lock", BenchmarkError, what,
                  by="benchmark run")


def start(out: Path, share: Share) -> None:
    """Drop this part's done marker: its cells are about to change."""
    share.done_file(out).unlink(missing_ok=True)


def finish(out: Path, share: Share, cells: list, summary: dict, failures: list[dict]) -> None:
    atomic_write(share.done_file(out), json.dumps({"part": share.label, "plan": plan_digest(cells), **summary,
                                                   "failures": failures}, indent=1))


def merge_lock(out: Path):
    (out / FOLDER).mkdir(parents=True, exist_ok=True)
    return locked(out / FOLDER / "merge.lock", BenchmarkError, f"out={out}", wait=True)


def _marker(share: Share, out: Path, k: int, digest: str) -> tuple[dict | None, str]:
    path = share.done_file(out, k)
    try:
        marker = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None, f"part {k}/{share.count} has not finished (no {path.relative_to(out)})"
    if marker.get("part") != f"{k}/{share.count}" or marker.get("plan") != digest:
        return None, (f"part {k}/{share.count} ran with other settings or another N ({path.relative_to(out)} names "
                      f"part {marker.get('part')} of another plan)")
    return marker, ""


def check_complete(out: Path, share: Share, cells: list, owner: dict, have, auto: bool, log) -> bool:
    """True when every part finished this plan and every cell is in the cache. Otherwise: with `auto` and parts
    still to finish, False (the last part merges); else a BenchmarkError naming each part and what it lacks."""
    digest = plan_digest(cells)
    markers, problems = {}, []
    for k in range(share.count if share.count > 1 else 0):  # one process writes no marker
        marker, why = _marker(share, out, k, digest)
        if marker is None:
            problems.append((k, why))
        else:
            markers[k] = marker
    if problems and auto:
        log(f"benchmark: waiting for part(s) {', '.join(f'{k}/{share.count}' for k, _ in problems)}; the last part "
            f"to finish writes the tables (or run merge=true)")
        return False
    failed = {f["key"]: f for m in markers.values() for f in m.get("failures", [])}
    missing = [c for c in cells if (share.count == 1 or owner[c.key] in markers) and not have(c)]
    for k in sorted({owner[c.key] for c in missing}):
        lost = [c for c in missing if owner[c.key] == k]
        named = "; ".join(f"{c.clip.name} {c.point.method} {c.point.label}"
                          + (f" failed: {failed[c.key]['error']}" if c.key in failed else "") for c in lost[:3])
        problems.append((k, f"part {k}/{share.count} lacks {len(lost)} cell(s) ({named}"
                            f"{'; ...' if len(lost) > 3 else ''})"))
    if problems:
        parts = sorted({k for k, _ in problems})
        raise BenchmarkError(f"merge: {'; '.join(why for _, why in sorted(problems))}. Run "
                             f"{' and '.join(f'part={k}/{share.count}' for k in parts)} with the same settings")
    return True
