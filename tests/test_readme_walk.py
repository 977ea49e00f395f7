"""The README's journeys as a newcomer runs them. Every ```bash block of README.md carries a marker in the line above
it: `<!-- walk -->` (runs as written after `make demo`), `<!-- walk: needs TOOL -->` (runs where TOOL is on PATH)
or `<!-- walk: skip (why) -->` (weights, data sets, GPUs). The slow test runs the Makefile's demo commands, then
every walked block in order, in a copy of the repository: a README or code change that breaks a journey fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```bash\n(?P<body>.*?)^```", re.S | re.M)
MARKER = re.compile(r"<!-- walk(?::\s*(?P<kind>skip|needs)\b\s*(?P<arg>.*?))?\s*-->\s*$")
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", "data", "runs", "exports", "tools", "checkpoints", "__pycache__",
                                     ".pytest_cache", "*.egg-info", "wandb", "lightning_logs")


def readme_blocks(text: str) -> list[tuple[str, str, str]]:
    """[(kind: 'walk' | 'needs' | 'skip' | 'unmarked', argument, body)] of every bash block, in order."""
    out = []
    for match in FENCE.finditer(text):
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.fullmatch(before.strip())
        kind = "unmarked" if marker is None else (marker["kind"] or "walk")
        out.append((kind, (marker["arg"] or "").strip() if marker else before, match["body"]))
    return out


def demo_commands(makefile: str) -> str:
    """The recipe lines of the Makefile's `demo:` target, with `$(PY)` as `python`."""
    lines = makefile.split("demo: ", 1)[1].splitlines()[1:]
    body = []
    for line in lines:
        if not line.startswith("\t"):
            break
        body.append(line[1:].replace("$(PY)", "python"))
    return "\n".join(body)


def test_every_readme_bash_block_says_whether_the_walk_runs_it():
    blocks = readme_blocks((ROOT / "README.md").read_text())
    assert sum(kind == "walk" for kind, _, _ in blocks) >= 5
    unmarked = [arg for kind, arg, _ in blocks if kind == "unmarked"]
    assert not unmarked, f"bash blocks without a <!-- walk --> marker (the lines above them): {unmarked}"
    assert all(arg for kind, arg, _ in blocks if kind in ("skip", "needs")), "a skip says why, a needs names a tool"


def test_make_demo_commands_are_the_ones_the_readme_names():
    demo = demo_commands((ROOT / "Makefile").read_text())
    assert "python train.py recipe=disco_lora_debug name=disco_lora_debug resume=auto" in demo
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "python train.py recipe=disco_lora_debug name=disco_lora_debug resume=auto" in readme


def _run(script: str, cwd: Path, env: dict, what: str) -> str:
    start = time.perf_counter()
    result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=900)
    output = result.stdout + result.stderr
    print(f"[{time.perf_counter() - start:5.1f} s] {what}")
    assert result.returncode == 0, f"{what} failed (exit {result.returncode}):\n{script}\n---\n{output[-4000:]}"
    assert "Traceback" not in output, f"{what} printed a traceback:\n{output[-4000:]}"
    return output


@pytest.mark.slow
def test_readme_journeys_run_as_written_after_make_demo(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(ROOT, repo, ignore=COPY_IGNORE)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)
    out = _run(demo_commands((repo / "Makefile").read_text()), repo, env, "make demo (its commands)")
    # The demo ends with the run folder and the commands the README's journey runs next.
    export = "python -m disco_train export ckpt=runs/disco_lora_debug/checkpoints/last.ckpt out=exports/disco_lora_debug"
    assert "run folder: runs/disco_lora_debug" in out and export in out
    readme = (repo / "README.md").read_text()
    assert export in readme
    walked = 0
    for kind, arg, body in readme_blocks(readme):
        if kind == "skip" or (kind == "needs" and shutil.which(arg) is None):
            continue
        _run(body, repo, env, f"README block: {body.splitlines()[0][:90]}")
        walked += 1
    assert walked >= 5
    assert (repo / "runs" / "disco_lora_debug" / "eval.csv").is_file()
