"""The package layout's import rules (disco_train/__init__.py), enforced by parsing every import statement of every
module, inside functions too; no import cycles; and the size budgets of modules and functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import ROOT

# package -> the disco_train packages (and top-level third-party names) it must not import
FORBIDDEN = {
    "disco_train.io": ("disco_train.config", "disco_train.modalities", "disco_train.codec", "disco_train.dcvc_rt",
                       "disco_train.decoder", "disco_train.metrics", "disco_train.benchmark", "disco_train.train",
                       "datamodules", "torch", "lightning", "diffusers", "transformers"),
    "disco_train.config": ("disco_train.modalities", "disco_train.codec", "disco_train.dcvc_rt", "disco_train.decoder",
                           "disco_train.metrics", "disco_train.benchmark", "disco_train.train", "datamodules", "torch", "lightning",
                           "diffusers", "transformers"),
    "disco_train.dcvc_rt": ("disco_train.modalities", "disco_train.codec", "disco_train.decoder", "disco_train.metrics",
                            "disco_train.benchmark", "disco_train.train", "datamodules", "lightning", "diffusers"),
    "disco_train.modalities": ("disco_train.codec", "disco_train.decoder", "disco_train.metrics",
                               "disco_train.benchmark", "disco_train.train", "datamodules", "lightning"),
    "disco_train.decoder": ("disco_train.codec", "disco_train.metrics", "disco_train.benchmark", "disco_train.train",
                            "datamodules", "lightning"),
    "disco_train.codec": ("disco_train.metrics", "disco_train.benchmark", "disco_train.train", "datamodules",
                          "lightning"),
    "disco_train.metrics": ("disco_train.decoder", "disco_train.benchmark", "disco_train.train", "datamodules",
                            "lightning"),
    "disco_train.benchmark": ("disco_train.train", "datamodules", "lightning", "pytorch_lightning"),
    "datamodules": ("disco_train.train", "disco_train.benchmark"),
}
# The command layer may import everything; nothing in the packages imports it but `python -m disco_train`.
COMMANDS, ENTRY = "disco_train.commands", "disco_train.__main__"
LIGHTNING = ("lightning", "pytorch_lightning")


def _modules(folder: Path, root: Path = ROOT):
    for path in sorted(folder.rglob("*.py")):
        rel = path.relative_to(root).with_suffix("")
        yield ".".join(p for p in rel.parts if p != "__init__"), path


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [(node.lineno, node.module)] + [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def _under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_import_rules_hold():
    broken = []
    for folder in (ROOT / "disco_train", ROOT / "datamodules"):
        for module, path in _modules(folder):
            rules = [bad for pkg, bad in FORBIDDEN.items() if _under(module, pkg)]
            for line, name in _imports(path):
                for bad in (b for rule in rules for b in rule):
                    if _under(name, bad):
                        broken.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not broken, "\n".join(sorted(set(broken)))


def test_only_the_entry_point_imports_the_command_layer():
    users = {module for folder in (ROOT / "disco_train", ROOT / "datamodules") for module, path in _modules(folder)
             if not _under(module, COMMANDS) and any(_under(name, COMMANDS) for _, name in _imports(path))}
    assert users == {ENTRY}, sorted(users)


def test_only_train_and_datamodules_import_lightning():
    users = {str(path.relative_to(ROOT)) for folder in (ROOT / "disco_train", ROOT / "datamodules")
             for _, path in _modules(folder) if any(_under(n, p) for _, n in _imports(path) for p in LIGHTNING)}
    assert users and all(u.startswith(("disco_train/train/", "datamodules/")) for u in users), sorted(users)


def test_the_rules_catch_a_violation(tmp_path):
    """The parser sees imports inside functions (where the old layout hid its cycles)."""
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from disco_train.train.build import build_module\n")
    assert (2, "disco_train.train.build") in _imports(bad)


def _import_graph(root: Path, folders: list[str]) -> dict[str, set[str]]:
    """Module -> the project modules it imports, at module level or inside functions. A name is the longest module
    it starts with (`from a.b import c`: the module a.b.c when it is one, else a.b)."""
    paths = dict(m for folder in folders for m in _modules(root / folder, root))
    graph = {}
    for module, path in paths.items():
        for _, name in _imports(path):
            while name and name not in paths:
                name = name.rpartition(".")[0]
            if name and name != module:
                graph.setdefault(module, set()).add(name)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """The modules of each import cycle (a set of modules that all reach one another), sorted."""
    reach = {}
    for start in graph:
        seen, todo = set(), list(graph[start])
        while todo:
            module = todo.pop()
            if module not in seen:
                seen.add(module)
                todo += graph.get(module, ())
        reach[start] = seen
    return sorted({tuple(sorted(m for m in reach[start] if start in reach.get(m, ())))
                   for start in graph if start in reach[start]})


def test_no_import_cycles():
    """An import inside a function hides a cycle from Python until that function runs; here both count."""
    assert _cycles(_import_graph(ROOT, ["disco_train", "datamodules"])) == [], "import cycles (break each at a seam):"


def test_the_cycle_check_catches_a_planted_cycle(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.b import f\n")
    (package / "b.py").write_text("def f():\n    from pkg import a\n")  # function level, through the package
    (package / "c.py").write_text("import pkg.a\n")  # imports the cycle, is not in it
    assert _cycles(_import_graph(tmp_path, ["pkg"])) == [("pkg.a", "pkg.b")]
    (package / "b.py").write_text("def f():\n    pass\n")
    assert _cycles(_import_graph(tmp_path, ["pkg"])) == []


@pytest.mark.parametrize("folder", ["disco_train", "datamodules", "bench"])
def test_size_budgets(folder):
    """No module over 600 lines, no function over 60 (train.py: 80)."""
    over = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        lines = path.read_text().splitlines()
        if len(lines) > 600:
            over.append(f"{path.relative_to(ROOT)}: {len(lines)} lines")
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 60:
                    over.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {length} lines")
    assert not over, "\n".join(over)
    assert len((ROOT / "train.py").read_text().splitlines()) <= 80


def test_every_package_says_what_it_holds_and_may_import():
    for init in [ROOT / "datamodules" / "__init__.py", *sorted((ROOT / "disco_train").glob("*/__init__.py"))]:
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert len(doc) > 80 and "import" in doc, init
