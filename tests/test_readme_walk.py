"""The README's and the docs pages' journeys as a newcomer runs them. Every ```bash block of README.md and of
docs/*.md carries a marker in the line above it: `<!-- walk -->` (runs as written after `make demo`),
`<!-- walk: needs TOOL -->` (runs where TOOL is on PATH) or `<!-- walk: skip (why) -->` (weights, data sets,
GPUs). The slow test runs the Makefile's demo commands, then every walked block in order — the README's, then each
docs page's in the order the README links them — in a copy of the repository: a page or code change that breaks
a journey fails. The fast tests check the markers, that every docs page is linked from the README, that every
relative link of the README and the docs reaches a file (and a heading, when it names one), and that every
repository file and module a page names is still there.
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
ANY_FENCE = re.compile(r"^```.*?^```[ \t]*$", re.S | re.M)
INLINE_CODE = re.compile(r"(`+).+?\1")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*$", re.M)
REPO_PATH = re.compile(r"(?<![\w/.])(?:disco_train|datamodules|tests|bench|recipes|sweeps|docs)/[\w./-]*\w")
MODULE = re.compile(r"(?<![\w/.])(?:disco_train|datamodules)(?:\.\w+)+")
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


def links(text: str) -> list[str]:
    """Targets of the markdown links in the prose (not in code blocks or code spans)."""
    prose = INLINE_CODE.sub("", ANY_FENCE.sub("", text))
    return LINK.findall(prose)


def anchors(text: str) -> set[str]:
    """GitHub's ids of the headings: lower case, punctuation dropped, spaces as '-', repeats numbered."""
    seen: dict[str, int] = {}
    for heading in HEADING.findall(ANY_FENCE.sub("", text)):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        seen[slug] = seen.get(slug, -1) + 1
        if seen[slug]:
            seen[f"{slug}-{seen[slug]}"] = 0
    return set(seen)


def docs_in_readme_order(root: Path) -> list[Path]:
    """docs/*.md pages in the order README.md first links them."""
    order: list[Path] = []
    for target in links((root / "README.md").read_text()):
        path = (root / target.split("#", 1)[0]).resolve()
        if path.parent == (root / "docs").resolve() and path.suffix == ".md" and path not in order:
            order.append(path)
    return order


def pages(root: Path) -> list[Path]:
    """README.md, then the docs pages in the README's link order (any it does not link last, so the tests see them)."""
    linked = docs_in_readme_order(root)
    return [root / "README.md", *linked, *sorted(set((root / "docs").glob("*.md")) - set(linked))]


def named_files(text: str) -> list[str]:
    """Repository paths (`disco_train/codec/sender.py`, in prose or commands) and modules
    (`datamodules.shards.ShardDataModule`) that a page names."""
    return REPO_PATH.findall(text) + MODULE.findall(text)


def exists(root: Path, name: str) -> bool:
    """A path exists; a module's longest prefix that is a module or package is more than the top package, and
    what follows a package is a class (a lower-case name there is a module that is not there)."""
    if "/" in name:
        return (root / name.split("::", 1)[0]).exists()
    parts = name.split(".")
    for i in range(len(parts), 1, -1):
        path = root.joinpath(*parts[:i])
        if path.with_suffix(".py").exists():
            return True
        if (path / "__init__.py").exists():
            return i == len(parts) or parts[i][:1].isupper()
    return False


def demo_commands(makefile: str) -> str:
    """The recipe lines of the Makefile's `demo:` target, with `$(PY)` as `python`."""
    lines = makefile.split("demo: ", 1)[1].splitlines()[1:]
    body = []
    for line in lines:
        if not line.startswith("\t"):
            break
        body.append(line[1:].replace("$(PY)", "python"))
    return "\n".join(body)


@pytest.mark.parametrize("page", pages(ROOT), ids=lambda path: str(path.relative_to(ROOT)))
def test_every_bash_block_says_whether_the_walk_runs_it(page):
    blocks = readme_blocks(page.read_text())
    unmarked = [arg for kind, arg, _ in blocks if kind == "unmarked"]
    assert not unmarked, f"{page.name}: bash blocks without a <!-- walk --> marker (the lines above them): {unmarked}"
    assert all(arg for kind, arg, _ in blocks if kind in ("skip", "needs")), "a skip says why, a needs names a tool"


def test_the_walk_runs_journeys_of_the_readme_and_of_the_docs():
    walked = {page.name: sum(kind == "walk" for kind, _, _ in readme_blocks(page.read_text())) for page in pages(ROOT)}
    assert walked.pop("README.md") >= 2 and sum(walked.values()) >= 3, walked


def test_make_demo_commands_are_the_ones_the_readme_names():
    demo = demo_commands((ROOT / "Makefile").read_text())
    assert "python train.py recipe=disco_lora_debug name=disco_lora_debug resume=auto" in demo
    bodies = [body.strip() for _, _, body in readme_blocks((ROOT / "README.md").read_text())]
    assert demo.strip() in bodies, f"the README shows `make demo`'s commands as one bash block:\n{demo}"


def test_every_docs_page_is_linked_from_the_readme():
    unlinked = set((ROOT / "docs").glob("*.md")) - set(docs_in_readme_order(ROOT))
    assert not unlinked, f"docs pages the README does not link: {sorted(p.name for p in unlinked)}"
    assert len(docs_in_readme_order(ROOT)) >= 6


@pytest.mark.parametrize("page", pages(ROOT), ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_reaches_a_file_and_heading(page):
    text = page.read_text()
    broken = []
    for target in links(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        file, _, anchor = target.partition("#")
        path = (page.parent / file).resolve() if file else page
        if not path.exists() or ROOT.resolve() not in (path, *path.parents):
            broken.append(f"{target} (no such file in the repository)")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path.read_text()):
            broken.append(f"{target} (no heading #{anchor} in {path.name})")
    assert not broken, f"{page.relative_to(ROOT)}: broken links: {broken}"


@pytest.mark.parametrize("page", [*pages(ROOT), ROOT / "recipes" / "README.md", ROOT / "checkpoints" / "README.md",
                                  ROOT / "BENCHMARKS.md"], ids=lambda path: str(path.relative_to(ROOT)))
def test_every_file_and_module_a_page_names_exists(page):
    gone = sorted({name for name in named_files(page.read_text()) if not exists(ROOT, name)})
    assert not gone, f"{page.relative_to(ROOT)} names files or modules that are not there (moved?): {gone}"


def test_link_checks_see_links_headings_and_code_as_a_reader_does():
    text = "# The .disco file\n## LTX-2 (`model.family=ltx2`)\n## Notes\n## Notes\n```bash\n# not a heading [a](b.md)\n```\n"
    assert anchors(text) == {"the-disco-file", "ltx-2-modelfamilyltx2", "notes", "notes-1"}
    assert links(text + "see [docs](docs/x.md#y), `[c](d.md)` and ```` ```bash [e](f) ````") == ["docs/x.md#y"]


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
def test_readme_and_docs_journeys_run_as_written_after_make_demo(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(ROOT, repo, ignore=COPY_IGNORE)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)
    out = _run(demo_commands((repo / "Makefile").read_text()), repo, env, "make demo (its commands)")
    # The demo ends with the run folder and the commands the README's journey runs next.
    export = "python -m disco_train export ckpt=runs/disco_lora_debug/checkpoints/last.ckpt out=exports/disco_lora_debug"
    assert "run folder: runs/disco_lora_debug" in out and export in out
    assert export in (repo / "README.md").read_text()
    walked = 0
    for page in pages(repo):
        for kind, arg, body in readme_blocks(page.read_text()):
            if kind == "skip" or (kind == "needs" and shutil.which(arg) is None):
                continue
            _run(body, repo, env, f"{page.relative_to(repo)} block: {body.splitlines()[0][:80]}")
            walked += 1
    assert walked >= 5
    assert (repo / "runs" / "disco_lora_debug" / "eval.csv").is_file()
