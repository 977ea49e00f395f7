"""Which part of the work this process does (`part=K/N` or the scheduler's variables), the GPU of its local rank,
part file tags and the dealing of weighted work into balanced parts. Shared by `prepare`, `benchmark` and `decode`,
so all three split a job the same way (each part's lock: `disco_train.io.files.locked`).

- Which part: `part=K/N`, else the scheduler's environment: a SLURM array (SLURM_ARRAY_TASK_ID minus
  SLURM_ARRAY_TASK_MIN, of SLURM_ARRAY_TASK_COUNT) times the ranks inside each array task (RANK of WORLD_SIZE
  under torchrun, else SLURM_PROCID of SLURM_NTASKS inside an srun step): part = array × ranks + rank. Nothing
  set: the whole input, part 0/1.
- Device: `cuda` is the local rank's GPU (LOCAL_RANK, SLURM_LOCALID), GPU 0 when one is visible.
"""

from __future__ import annotations

import os

from disco_train.config.base import ConfigError
from disco_train.config.prepare import parse_part


def _pair(env: dict, index: str, count: str, offset: str | None = None) -> tuple[int, int, str] | None:
    if index not in env or count not in env:
        return None
    try:
        k, n = int(env[index]) - int(env.get(offset, 0) if offset else 0), int(env[count])
    except ValueError:
        raise ConfigError(f"part: {index}={env[index]!r} / {count}={env[count]!r} are not integers") from None
    if not 0 <= k < n:
        raise ConfigError(f"part: {index}={env[index]} of {count}={env[count]}"
                          f"{f' ({offset}={env.get(offset)})' if offset else ''} is not 0 <= K < N; set part=K/N")
    return k, n, f"{index}/{count}"


def resolve_part(text: str, env: dict | None = None) -> tuple[int, int, str]:
    """(K, N, where that came from) of this process (module docstring)."""
    if text:
        return (*parse_part(text), "part=")
    env = os.environ if env is None else env
    array = _pair(env, "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN")
    # SLURM_PROCID/NTASKS only inside an srun step: a batch script itself sees SLURM_NTASKS but is one process.
    in_step = "SLURM_STEP_ID" in env or "SLURM_STEPID" in env
    ranks = _pair(env, "RANK", "WORLD_SIZE") or (_pair(env, "SLURM_PROCID", "SLURM_NTASKS") if in_step else None)
    found = [p for p in (array, ranks) if p is not None]
    if not found:
        return 0, 1, "the whole input"
    k, n = 0, 1
    for pk, pn, _ in found:
        k, n = k * pn + pk, n * pn
    return k, n, " × ".join(f"{name} {pk}/{pn}" for pk, pn, name in found)


def resolve_device(device: str, env: dict | None = None) -> str:
    """'cuda' -> 'cuda:K' for the process's local rank (LOCAL_RANK, SLURM_LOCALID); GPU 0 when one is visible."""
    env = os.environ if env is None else env
    if device != "cuda":
        return device
    visible = [d for d in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    local = env.get("LOCAL_RANK", env.get("SLURM_LOCALID", "0"))
    return "cuda:0" if len(visible) == 1 else f"cuda:{int(local)}"


def part_tag(index: int, count: int) -> str:
    """'' for the whole job (the file names of a single run), else '-pKKK' (3 digits or more)."""
    return "" if count == 1 else f"-p{index:0{max(3, len(str(count - 1)))}d}"


def deal(costs: list[float], count: int) -> list[int]:
    """The part of each unit of work: the costliest first, each to the least-loaded part (ties: the lowest
    part), so parts get balanced shares. Depends only on `costs` and `count`, so every part deals alike."""
    loads, owner = [0.0] * count, [0] * len(costs)
    for i in sorted(range(len(costs)), key=lambda i: -costs[i]):  # stable: equal costs keep their order
        part = min(range(count), key=lambda k: (loads[k], k))
        owner[i] = part
        loads[part] += costs[i]
    return owner
