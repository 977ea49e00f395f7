"""Sweeps: one short training per value (or per grid point) and a table of final metrics.

    python -m disco_train sweep recipe=disco_lora_sketch_debug sweep.condition.ratio=1:1,1:3,1:5 trainer.max_steps=50

Every `sweep.KEY=v1,v2,...` is an axis (several axes form a grid); every other `key=value` applies to all runs.
Each run is its own `train.py` process (a crash or OOM in one does not end the sweep) writing to
<out>/<sweep name>/<run>/; the final value of every logged metric goes into <out>/<sweep name>/results.csv and
is printed as a table. The same axes work as a W&B sweep: see sweeps/interleave_ratio.yaml.
"""

from __future__ import annotations

import csv
import itertools
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from disco_train.config import ConfigError
from disco_train.config.cli import Command
from disco_train.config.recipe import TRAINABLE, resolve, to_yaml
from disco_train.io.files import csv_cell
from disco_train.train.next_steps import read_steps

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class SweepConfig:
    sweep_out: str = ""
    """Folder of the sweep: <sweep_out>/<recipe>-<axes>/<run>/ and results.csv ('' = <output_dir>/sweeps, with
    output_dir from the command line or the recipe, relative to where the command runs)."""
    overrides: list[str] = field(default_factory=list)
    """`recipe=NAME`, the `sweep.KEY=v1,v2,...` axes and the key=value pairs every run gets."""


COMMAND = Command("python -m disco_train sweep", "One short training per value (or grid point) of the "
                  "sweep.KEY=v1,v2,... axes, and a table of final metrics.", SweepConfig, passthrough=("",))


def parse(tokens: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """key=value tokens -> (common overrides incl. recipe, {key: values})."""
    common, axes = [], {}
    for token in tokens:
        key, _, value = token.partition("=")
        if key.startswith("sweep."):
            values = [v.strip() for v in value.split(",") if v.strip()]
            if not values:
                raise ConfigError(f"{key}: no values (expected {key}=v1,v2,...)")
            axes[key[len("sweep."):]] = values
        else:
            common.append(token)
    if not axes:
        raise ConfigError("sweep: give at least one axis, e.g. sweep.condition.ratio=1:1,1:3,1:5")
    return common, axes


MAX_POINTS = 256
"""Most runs of one sweep (each is a training): a larger grid is refused before any point is validated."""


def grid(axes: dict[str, list[str]]) -> list[dict[str, str]]:
    keys = list(axes)
    count = 1
    for key in keys:
        count *= len(axes[key])
        if count > MAX_POINTS:
            sizes = " × ".join(str(len(axes[k])) for k in keys)
            raise ConfigError(f"sweep: {sizes} values make more than {MAX_POINTS} runs; sweep fewer values (or "
                              f"split the sweep)")
    return [dict(zip(keys, combo)) for combo in itertools.product(*(axes[k] for k in keys))]


def final_metrics(run_dir: Path) -> dict[str, str]:
    """The steps the run reached (its summary.json: what it printed, not the last logged step index, "step 4" of a
    5-step run) and the last logged value of each metric column of its metrics.csv (empty if it logged nothing)."""
    steps, path = read_steps(run_dir), run_dir / "logs" / "metrics.csv"
    last: dict[str, str] = {} if steps is None else {"steps": steps}
    if path.is_file():
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                last.update({k: v for k, v in row.items() if v not in ("", None) and k not in ("epoch", "step")})
    return last


def run_sweep(argv: list[str], python: str = sys.executable) -> Path:
    """The sweep of a command line; returns its results.csv."""
    return sweep(COMMAND.parse(argv)[0], python)


def sweep(cfg: SweepConfig, python: str = sys.executable) -> Path | None:
    """Runs every point and returns results.csv; with print_config=true only prints each point's resolved config."""
    common, axes = parse(cfg.overrides)
    points = grid(axes)
    # Validate every point before spending compute on any of them.
    resolved = [resolve(common + [f"{k}={v}" for k, v in point.items()], tasks=TRAINABLE) for point in points]
    first = resolved[0][0]  # print_config is a common override; the sweep folder follows the first point
    if first.print_config:
        for point, (_, tree, _) in zip(points, resolved):
            print(f"# sweep point {' '.join(f'{k}={v}' for k, v in point.items())}\n{to_yaml(tree)}", end="")
        return None
    recipe = next(t.split("=", 1)[1] for t in common if t.startswith("recipe="))
    # Absolute, from the caller's folder: each run is a train.py process started in the repository.
    out = Path(cfg.sweep_out or Path(first.output_dir) / "sweeps").resolve()
    root = out / (f"{Path(recipe).stem}-" + "-".join(k.split(".")[-1] for k in axes))
    rows = []
    for i, point in enumerate(points):
        name = "run{:02d}_".format(i) + "_".join(f"{k.split('.')[-1]}{v.replace(':', 'to')}" for k, v in point.items())
        name = re.sub(r"[^\w.=+-]", "_", name)[:200]  # one folder name whatever the values hold (a path, a list)
        args = common + [f"{k}={v}" for k, v in point.items()] + [f"output_dir={root}", f"name={name}",
                                                                  "logger.kind=csv"]
        print(f"[sweep {i + 1}/{len(points)}] {' '.join(f'{k}={v}' for k, v in point.items())}", flush=True)
        result = subprocess.run([python, str(ROOT / "train.py"), *args], cwd=ROOT)
        rows.append({**point, "status": "ok" if result.returncode == 0 else f"exit {result.returncode}",
                     **final_metrics(root / name)})
    write_table(rows, root / "results.csv")
    return root / "results.csv"


def write_table(rows: list[dict], path: Path) -> None:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows({k: csv_cell(v) for k, v in row.items()} for row in rows)
    shown = [c for c in columns if not c.startswith("train/loss_sigma") and c not in ("lr-AdamW",)]
    widths = {c: max(len(c), *(len(_fmt(r.get(c, ""))) for r in rows)) for c in shown}
    print("  ".join(c.ljust(widths[c]) for c in shown))
    for row in rows:
        print("  ".join(_fmt(row.get(c, "")).ljust(widths[c]) for c in shown))
    print(f"results: {path}")


def _fmt(value) -> str:
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return str(value)


def main(argv: list[str]) -> int:
    return COMMAND.main(argv, lambda cfg: sweep(cfg) and None)
