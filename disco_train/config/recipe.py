"""Recipe resolution: `recipe=NAME [dotted.key=value ...]` -> a validated, typed config.

Order of precedence (later wins): dataclass defaults < base chain (depth first) < recipe < command line.
Unknown keys, wrong types and invalid values raise `ConfigError` naming the full dotted key (and the closest
valid key), before anything heavy is built. OmegaConf only, no Hydra: one composition axis (the recipe) and
Lightning's launchers re-execute argv, which Hydra's run-folder handling fights.
"""

from __future__ import annotations

import difflib
import math
import re
import typing
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from disco_train.config.base import ConfigError
from disco_train.config.benchmark import BenchmarkConfig
from disco_train.config.codec import SketchCodecConfig
from disco_train.config.prepare import PrepareConfig
from disco_train.config.training import DiscoLoraConfig

TASKS: dict[str, type] = {"disco_lora": DiscoLoraConfig, "sketch_dcvc": SketchCodecConfig, "prepare": PrepareConfig,
                          "benchmark": BenchmarkConfig}
"""Task name -> top-level schema. A recipe's `task:` key picks one."""

TRAINABLE = ("disco_lora", "sketch_dcvc")
"""Tasks that `train.py` (and `sweep`) run."""

TASK_COMMANDS = {"disco_lora": "python train.py", "sketch_dcvc": "python train.py",
                 "prepare": "python -m disco_train prepare", "benchmark": "python -m disco_train benchmark"}
"""The command that runs each task's recipes, named when a recipe reaches the wrong one."""

RECIPES_DIR = Path(__file__).resolve().parents[2] / "recipes"
MAX_BASE_DEPTH = 4


def available_recipes(recipes_dir: Path = RECIPES_DIR, task: str | None = None) -> list[str]:
    """Recipe names (of one task, when given)."""
    names = sorted(p.stem for p in recipes_dir.glob("*.yaml"))
    if task is None:
        return names
    return [n for n in names if _task_of(recipes_dir / f"{n}.yaml", recipes_dir) == task]


def _task_of(path: Path, recipes_dir: Path) -> str | None:
    try:
        return load_recipe_chain(str(path), recipes_dir).get("task")
    except ConfigError:
        return None


def _recipe_path(name: str, recipes_dir: Path) -> Path:
    if "/" in name or name.endswith(".yaml"):
        path = Path(name)
    else:
        path = recipes_dir / f"{name}.yaml"
    if not path.is_file():
        names = ", ".join(available_recipes(recipes_dir)) or "(none)"
        raise ConfigError(f"recipe: no recipe {name!r} ({path}); available: {names}")
    return path


def load_recipe_chain(name: str, recipes_dir: Path = RECIPES_DIR, _stack: tuple[str, ...] = ()) -> DictConfig:
    """Load a recipe with its `base:` chain merged in (bases first, the recipe itself last)."""
    if name in _stack:
        raise ConfigError(f"base: cycle {' -> '.join(_stack + (name,))}")
    if len(_stack) >= MAX_BASE_DEPTH:
        raise ConfigError(f"base: chain deeper than {MAX_BASE_DEPTH}: {' -> '.join(_stack + (name,))}")
    path = _recipe_path(name, recipes_dir)
    raw = load_yaml(path)
    if not isinstance(raw, DictConfig):
        raise ConfigError(f"recipe {name!r}: {path} must hold a mapping")
    bases = raw.pop("base", None) or []
    bases = [bases] if isinstance(bases, str) else list(bases)
    merged = OmegaConf.create({})
    for base in bases:
        merged = OmegaConf.merge(merged, load_recipe_chain(str(base), recipes_dir, _stack + (name,)))
    return OmegaConf.merge(merged, raw)


MAX_RECIPE_BYTES = 1 << 20
RESOLVER = re.compile(r"\$\{[^}]*:")
"""An OmegaConf resolver call such as ${oc.env:NAME} or ${oc.decode:...}: refused in recipes and overrides."""


def load_yaml(path: Path) -> DictConfig:
    """A recipe file, refusing what YAML allows but a recipe never needs: anchors and aliases (a few lines of
    aliases expand to gigabytes, the 'billion laughs'), files over 1 MiB; syntax errors name file, line, column."""
    if path.stat().st_size > MAX_RECIPE_BYTES:
        raise ConfigError(f"recipe {path}: {path.stat().st_size:,} bytes; a recipe is a small YAML delta "
                          f"(limit {MAX_RECIPE_BYTES:,})")
    text = path.read_text()
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                mark = event.start_mark
                raise ConfigError(f"{path}:{mark.line + 1}:{mark.column + 1}: YAML anchors and aliases are not "
                                  f"allowed in recipes (use base: to share settings)")
        return OmegaConf.create(text) if text.strip() else OmegaConf.create({})
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: invalid YAML: {err.problem or err.context}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML: {err}") from None


def refuse_resolvers(values: Any, source: str, prefix: str = "") -> None:
    """ConfigError for any `${name:...}` resolver in a recipe or override: oc.env would copy the environment (a
    token, a password) into the run's name and its config.yaml, oc.decode and friends run parsers on text that
    came from a command line. Plain references such as ${data.frames} stay allowed."""
    if isinstance(values, dict):
        for key, value in values.items():
            refuse_resolvers(value, source, f"{prefix}{key}.")
    elif isinstance(values, (list, tuple)):
        for i, value in enumerate(values):
            refuse_resolvers(value, source, f"{prefix}{i}.")
    elif isinstance(values, str) and RESOLVER.search(values):
        raise ConfigError(f"{prefix.rstrip('.')}: {values!r} (from {source}) calls a resolver; resolvers such as "
                          f"oc.env are not allowed in recipes or overrides (they would write the environment into "
                          f"the run's name and config.yaml): give the value itself")


def _default(f) -> Any:
    return f.default_factory() if callable(f.default_factory) else f.default  # type: ignore[misc]


def valid_keys(schema: type, prefix: str = "") -> list[str]:
    """Every dotted key of a schema, sections and their fields."""
    keys = []
    for f in fields(schema):
        full = f"{prefix}{f.name}"
        keys.append(full)
        if is_dataclass(_default(f)):
            keys.extend(valid_keys(type(_default(f)), full + "."))
    return keys


def closest(key: str, keys: list[str]) -> list[str]:
    """The valid key nearest `key`, as a one-item list (or none): by the whole dotted key, else by its last part
    (qpp -> send.qp: a key that moved into a section)."""
    close = difflib.get_close_matches(key, keys, n=1, cutoff=0.5)
    if close:
        return close
    leaves = {k.rsplit(".", 1)[-1]: k for k in reversed(keys)}  # of two keys with one name, the first wins
    return [leaves[m] for m in difflib.get_close_matches(key.rsplit(".", 1)[-1], list(leaves), n=1, cutoff=0.6)]


def check_keys(values: Any, schema: type, source: str, prefix: str = "") -> None:
    """Reject keys that the schema does not have, naming the full key and the closest valid one."""
    known = {f.name: f for f in fields(schema)}
    for key, value in values.items():
        full = f"{prefix}{key}"
        renamed(schema, key, value, source, prefix)
        if key not in known:
            close = closest(full, valid_keys(schema, prefix))
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(prefix + k for k in known)}"
            raise ConfigError(f"{full}: unknown key (from {source}){hint}")
        default = _default(known[key])
        if is_dataclass(default):
            if not isinstance(value, dict):
                raise ConfigError(f"{full}: expected a mapping of {type(default).__name__} fields, got {value!r}")
            check_keys(value, type(default), source, full + ".")
        item = _list_item(schema, key)
        if item is not None and isinstance(value, list):  # a list of sections, e.g. benchmark disco.variants
            for i, entry in enumerate(value):
                if not isinstance(entry, dict):
                    raise ConfigError(f"{full}[{i}]: expected a mapping of {item.__name__} fields, got {entry!r}")
                check_keys(entry, item, source, f"{full}[{i}].")


def renamed(schema: type, key: str, value: Any, source: str, prefix: str = "") -> None:
    """ConfigError naming the new key of a key that a schema renamed (its `RENAMED` {old: new}, relative to the
    schema; a key that became a section is renamed only for a value that is not a mapping)."""
    new = getattr(schema, "RENAMED", {}).get(key)
    if new is None or (isinstance(value, dict) and any(f.name == key for f in fields(schema))):
        return
    full, target = f"{prefix}{key}", f"{prefix}{new}"
    if any(f.name == key for f in fields(schema)):
        raise ConfigError(f"{full}: now a section (from {source}); this value is {target!r} (e.g. "
                          f"{target}={value})")
    raise ConfigError(f"{full}: unknown key (from {source}): it is now {target!r}")


def _list_item(schema: type, key: str) -> type | None:
    """The dataclass of the items of a `list[SomeSection]` field, else None."""
    hint = typing.get_type_hints(schema).get(key)
    args = typing.get_args(hint) if typing.get_origin(hint) is list else ()
    return args[0] if args and is_dataclass(args[0]) else None


_RATIO = re.compile(r"\d+:\d+")


def dotlist(tokens: list[str]) -> list[str]:
    """key=value tokens as an OmegaConf dotlist. YAML 1.1 reads 1:3 as the base-60 integer 63; a ratio on the
    command line is meant as text, so it is quoted."""
    out = []
    for token in tokens:
        key, _, value = token.partition("=")
        out.append(f'{key}="{value}"' if _RATIO.fullmatch(value) else token)
    return out


def _field_type(schema: type, key: str) -> Any:
    """The annotation of a dotted key of a schema (None: not a field of it)."""
    for part in key.split("."):
        if not is_dataclass(schema):
            return None
        hint = typing.get_type_hints(schema).get(part)
        if hint is None:
            return None
        schema = hint
    return schema


def _is_text(hint: Any) -> bool:
    return hint is str or (typing.get_origin(hint) is typing.Union and set(typing.get_args(hint)) == {str, type(None)})


def _unquoted(value: str) -> str:
    """A value quoted whole, as YAML would quote it ('' or "a b"), without its quotes; any other text as is."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        try:
            loaded = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        return loaded if isinstance(loaded, str) else value
    return value


def command_line(tokens: list[str], schema: type) -> DictConfig:
    """key=value tokens -> a DictConfig. Free text and paths stay the exact text given: a value whose field is a
    string (caption=007, caption=yes, 'a dog #1 runs', '[draft] a dog', paths with ': ' or a newline) is never
    read as YAML; only typed fields (numbers, booleans, lists) are (`dotlist`). `null` clears an optional
    string; a value quoted whole (`export=''`, `caption="007"`) loses its quotes."""
    parts = [OmegaConf.create({})]
    for token in tokens:
        key, _, value = token.partition("=")
        hint = _field_type(schema, key)
        if _is_text(hint):
            node: Any = None if value == "null" and hint is not str else _unquoted(value)
            for name in reversed(key.split(".")):
                node = {name: node}
            parts.append(OmegaConf.create(node))
        else:
            parts.append(OmegaConf.from_dotlist(dotlist([token])))
    return OmegaConf.merge(*parts)


def merge(schema: type, layers: list[tuple[Any, str]]) -> tuple[Any, DictConfig]:
    """Typed defaults < each (mapping, source) layer, strictly: unknown keys, wrong types and invalid values
    raise ConfigError naming the key. Returns (validated dataclass instance, merged DictConfig)."""
    for values, source in layers:
        plain = OmegaConf.to_container(values) if isinstance(values, DictConfig) else values
        refuse_resolvers(plain, source)
        check_keys(plain, schema, source)
    base = OmegaConf.structured(schema)
    OmegaConf.set_struct(base, True)
    for name, hint in typing.get_type_hints(schema).items():  # a dict of named sections (benchmark ext.<name>)
        if typing.get_origin(hint) is dict and name in base:  # takes new names; their fields stay typed
            OmegaConf.set_struct(base[name], False)
    try:
        merged = OmegaConf.merge(base, *[values for values, _ in layers])
        config = OmegaConf.to_object(merged)
    except MissingMandatoryValue as err:
        key = getattr(err, "full_key", None) or "config"
        raise ConfigError(f"{key}: is required (give {key}=...)") from None
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "config"
        raise ConfigError(f"{key}: {str(err).splitlines()[0]}") from None
    refuse_nonfinite(OmegaConf.to_container(merged))
    if hasattr(config, "validate"):
        config.validate()
    return config, merged


def refuse_nonfinite(values: Any, prefix: str = "") -> None:
    """ConfigError for a NaN or infinite number anywhere (optim.lr=inf trains nothing, silently): no setting of
    any command means 'unbounded' with inf."""
    if isinstance(values, dict):
        for key, value in values.items():
            refuse_nonfinite(value, f"{prefix}{key}.")
    elif isinstance(values, list):
        for i, value in enumerate(values):
            refuse_nonfinite(value, f"{prefix[:-1]}[{i}].")
    elif isinstance(values, float) and not math.isfinite(values):
        raise ConfigError(f"{prefix[:-1]}: {values} is not a finite number")


def resolve(argv: list[str], recipes_dir: Path = RECIPES_DIR, default_task: str | None = None,
            tasks: tuple[str, ...] | None = None) -> tuple[Any, DictConfig, str]:
    """Resolve `recipe=NAME key=value ...` into (typed config, resolved DictConfig, recipe name).

    Without `recipe=`, `default_task` (if given) supplies a recipe of pure defaults: `prepare input=...`. A recipe
    whose task is not `tasks` (default: `default_task`, when given) is a ConfigError naming the command it needs.
    """
    name, overrides = None, []
    for token in argv:
        if token.startswith("-") or "=" not in token:
            raise ConfigError(f"argument {token!r}: expected key=value (e.g. recipe=disco_lora trainer.max_steps=10)")
        if token.startswith("recipe="):
            name = token.split("=", 1)[1]
        else:
            overrides.append(token)
    if not name and default_task is None:
        raise ConfigError(f"recipe: missing recipe=NAME; available: "
                          f"{', '.join(n for t in tasks or (None,) for n in available_recipes(recipes_dir, t))}")
    recipe = load_recipe_chain(name, recipes_dir) if name else OmegaConf.create({"task": default_task})
    name = name or default_task
    task = recipe.get("task")
    if task not in TASKS:
        raise ConfigError(f"task: recipe {name!r} has task {task!r}; known tasks: {', '.join(TASKS)}")
    allowed = tasks or ((default_task,) if default_task is not None else None)
    if allowed is not None and task not in allowed:
        raise ConfigError(f"recipe={name}: a {task!r} recipe, run it with {TASK_COMMANDS[task]} recipe={name} "
                          f"(this command takes {' or '.join(repr(t) for t in allowed)} recipes)")
    config, merged = merge(TASKS[task], [(recipe, f"recipe {name}"),
                                         (command_line(overrides, TASKS[task]), "command line")])
    if hasattr(config, "name") and not config.name:
        from datetime import datetime

        config.name = f"{Path(name).stem}-{datetime.now():%Y%m%d-%H%M%S}"
        merged.name = config.name
    return config, merged, name


def to_yaml(resolved: DictConfig) -> str:
    return OmegaConf.to_yaml(resolved)
