"""One command-line grammar for every command: `COMMAND [PATH ...] [key=value ...]` into a typed dataclass.

- Bare arguments fill the command's positional fields in order (a list-typed last one takes the rest); every
  other argument is `key=value` with a dotted key of the schema. Values are typed by the dataclass (OmegaConf).
- Unknown keys, wrong types and invalid values are a `ConfigError` naming the full key and the closest valid one;
  the command prints `prog: error: ...` and exits with code 2, before anything heavy loads.
- `--help` (or `-h`) lists every key with its default and its attribute docstring, and exits 0.
- Commands with recipes take `recipe=NAME` (a recipe of the command's task, `base:` inheritance), and
  `print_config=true` prints the resolved YAML and exits.
"""

from __future__ import annotations

import ast
import inspect
import sys
import textwrap
import typing
from dataclasses import MISSING, dataclass, fields, is_dataclass
from functools import lru_cache
from typing import Any, Callable

from disco_train.config.base import ConfigError
from disco_train.config.recipe import available_recipes, command_line, merge, resolve, to_yaml


REQUIRED = "???"
"""Default of a mandatory key (OmegaConf's MISSING): leaving it out is an error naming the key."""


@lru_cache(maxsize=None)
def field_docs(cls: type) -> dict[str, str]:
    """{field: attribute docstring} of a dataclass and its bases (the string literal under each field)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__[:-1]):
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def _default(f) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return MISSING


def key_help(schema: type, prefix: str = "", values: Any = None) -> list[str]:
    """One line per key: `  key=value  docstring`, sections flattened to dotted keys; the values of `values` (a
    resolved config of `schema`, e.g. a recipe's) or else the schema's defaults."""
    lines, docs = [], field_docs(schema)
    hints = typing.get_type_hints(schema)
    for f in fields(schema):
        default = _default(f) if values is None else getattr(values, f.name)
        if is_dataclass(default):  # a section: its own values (a factory may set some, e.g. the metric names)
            lines += key_help(type(default), f"{prefix}{f.name}.", default)
            continue
        item = typing.get_args(hints.get(f.name))[-1:] if typing.get_origin(hints.get(f.name)) is dict else ()
        if item and is_dataclass(item[0]):  # named sections, e.g. benchmark ext.<name>.*
            lines.append(f"  {prefix}{f.name}.<name>.*\n      {docs.get(f.name, '')}".rstrip())
            lines += key_help(item[0], f"{prefix}{f.name}.<name>.")
            continue
        shown = "(required)" if default is MISSING or default == REQUIRED else repr(default)
        lines.append(f"  {prefix}{f.name}={shown}\n      {docs.get(f.name, '')}".rstrip())
    return lines


@dataclass(frozen=True)
class Command:
    """A command's grammar: its schema, positional fields, and (for recipe commands) its task."""

    prog: str
    """How the command is run, e.g. 'python -m disco_train encode'."""
    summary: str
    """One line: what the command does."""
    schema: type | None = None
    """The dataclass of its arguments; None for recipe commands whose recipe picks the task."""
    positional: tuple[str, ...] = ()
    """Fields filled by bare arguments, in order; a list-typed last field takes all remaining ones."""
    task: str | tuple[str, ...] | None = None
    """Recipe commands: the task (or tasks) whose recipes `recipe=` may name ('*': any task; `recipe=` is required
    unless it is one task, whose defaults serve without a recipe)."""
    passthrough: tuple[str, ...] = ()
    """Key prefixes collected verbatim into the schema's `overrides` list (e.g. 'model.' for decoder overrides),
    checked later by whatever they override."""

    def usage(self) -> str:
        paths = " ".join(p.upper() for p in self.positional)
        return f"usage: {self.prog} {paths + ' ' if paths else ''}[key=value ...]"

    def _tasks(self) -> tuple[tuple[str, ...] | None, str | None]:
        """(tasks `recipe=` may name or None for any, the task whose defaults serve without a recipe or None)."""
        if self.task == "*":
            return None, None
        if isinstance(self.task, str):
            return (self.task,), self.task
        return tuple(self.task), None

    def help(self, argv: list[str] = ()) -> str:
        lines = [self.usage(), "", self.summary, ""]
        schema, values = self.schema, None
        if self.task is not None:
            recipe = next((t.split("=", 1)[1] for t in argv if t.startswith("recipe=")), None)
            tasks, default_task = self._tasks()
            names = [n for t in tasks or (None,) for n in available_recipes(task=t)]
            lines.append(f"recipes (recipe=NAME): {', '.join(names)}")
            if recipe is not None:  # the recipe's resolved values (and the command line's), not the schema's
                values = resolve([t for t in argv if "=" in t], default_task=default_task, tasks=tasks)[0]
                schema = type(values)
                lines.append(f"keys of recipe {recipe} (key=its value):")
            elif schema is None:
                lines.append(f"`{self.prog} recipe=NAME --help` lists the keys of that recipe's task.")
            lines.append("")
        if schema is not None:
            if values is None:
                lines.append("keys (key=default):")
            lines += key_help(schema, values=values)
        return "\n".join(lines)

    def _split(self, argv: list[str]) -> tuple[list[str], list[str], list[str]]:
        bare, keyed, passed = [], [], []
        for token in argv:
            key, sep, _ = token.partition("=")
            if not sep or not key:
                if token.startswith("-"):
                    raise ConfigError(f"argument {token!r}: options are key=value (see --help)")
                bare.append(token)
            elif any(key.startswith(p) for p in self.passthrough) and key.split(".")[0] not in self._names():
                passed.append(token)
            else:
                keyed.append(token)
        return bare, keyed, passed

    def _names(self) -> set[str]:
        return {f.name for f in fields(self.schema)} if self.schema is not None else set()

    def _positional(self, bare: list[str]) -> dict[str, Any]:
        """Bare arguments -> their fields (missing ones are reported as required keys by the merge)."""
        variadic = bool(self.positional) and self.schema is not None and \
            str(next(f.type for f in fields(self.schema) if f.name == self.positional[-1])).startswith("list")
        fixed = self.positional[:-1] if variadic else self.positional
        if len(bare) > len(fixed) and not variadic:
            want = " ".join(p.upper() for p in self.positional) or "no bare arguments"
            raise ConfigError(f"expected {want}, got {bare} ({self.usage()})")
        values: dict[str, Any] = dict(zip(fixed, bare))
        if variadic and len(bare) > len(fixed):
            values[self.positional[-1]] = bare[len(fixed):]
        return values

    def parse(self, argv: list[str]) -> tuple[Any, Any]:
        """argv -> (typed config, resolved DictConfig). Raises ConfigError."""
        if self.task is not None:
            tasks, default_task = self._tasks()
            return resolve(list(argv), default_task=default_task, tasks=tasks)[:2]
        bare, keyed, passed = self._split(list(argv))
        layers = []
        positional = self._positional(bare)
        if positional:
            layers.append((positional, "arguments"))
        if keyed:
            layers.append((command_line(keyed, self.schema), "command line"))
        if passed:
            layers.append(({"overrides": passed}, "command line"))
        return merge(self.schema, layers)

    def main(self, argv: list[str], body: Callable[[Any], int | None], errors: tuple[type, ...] = ()) -> int:
        """Parse argv and run `body(config)`. --help prints the keys (exit 0); a ConfigError or one of `errors`
        raised while parsing or running prints `prog: error: ...` (exit 2)."""
        if any(a in ("-h", "--help") for a in argv):
            try:
                print(self.help([a for a in argv if a not in ("-h", "--help")]))
            except ConfigError as err:
                return self.fail(err)
            return 0
        try:
            cfg, resolved = self.parse(argv)
            if getattr(cfg, "print_config", False):
                print(to_yaml(resolved), end="")
                return 0
            return int(body(cfg) or 0)
        except (ConfigError, *errors) as err:
            return self.fail(err)

    def fail(self, err: Exception) -> int:
        print(f"{self.prog}: error: {err}\n{self.usage()}  (--help lists the keys)", file=sys.stderr)
        return 2


def moved(module: str, command: str) -> None:
    """The one line (on stderr) that a deprecated `python -m MODULE` prints before running as before: old module
    paths of commands keep working one release after the dispatcher (`python -m disco_train`) took them over."""
    print(f"deprecated: `python -m {module}` is now `{command}`; the old path goes in the next release",
          file=sys.stderr)
