"""Recipe resolution: `recipe=NAME [dotted.key=value ...]` -> a validated, typed config.

Order of precedence (later wins): dataclass defaults < base chain (depth first) < recipe < command line.
Unknown keys, wrong types and invalid values raise `ConfigError` naming the full dotted key (and the closest
valid key), before anything heavy is built. OmegaConf only; no Hydra (see anchors_aesthetics §3.2).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from disco_train.config import ConfigError, DiscoLoraConfig
from disco_train.config_codec import SketchCodecConfig
from disco_train.config_prepare import PrepareConfig

TASKS: dict[str, type] = {"disco_lora": DiscoLoraConfig, "sketch_dcvc": SketchCodecConfig, "prepare": PrepareConfig}
"""Task name -> top-level schema. A recipe's `task:` key picks one."""

RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"
MAX_BASE_DEPTH = 4


def available_recipes(recipes_dir: Path = RECIPES_DIR) -> list[str]:
    return sorted(p.stem for p in recipes_dir.glob("*.yaml"))


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
    raw = OmegaConf.load(path)
    if not isinstance(raw, DictConfig):
        raise ConfigError(f"recipe {name!r}: {path} must hold a mapping")
    bases = raw.pop("base", None) or []
    bases = [bases] if isinstance(bases, str) else list(bases)
    merged = OmegaConf.create({})
    for base in bases:
        merged = OmegaConf.merge(merged, load_recipe_chain(str(base), recipes_dir, _stack + (name,)))
    return OmegaConf.merge(merged, raw)


def _valid_keys(schema: type, prefix: str = "") -> list[str]:
    keys = []
    for f in fields(schema):
        full = f"{prefix}{f.name}"
        keys.append(full)
        default = f.default_factory() if callable(f.default_factory) else f.default  # type: ignore[misc]
        if is_dataclass(default):
            keys.extend(_valid_keys(type(default), full + "."))
    return keys


def _check_keys(values: Any, schema: type, source: str, prefix: str = "") -> None:
    """Reject keys that the schema does not have, naming the full key and the closest valid one."""
    known = {f.name: f for f in fields(schema)}
    for key, value in values.items():
        full = f"{prefix}{key}"
        if key not in known:
            valid = _valid_keys(schema, prefix)
            close = difflib.get_close_matches(full, valid, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{full}: unknown key (from {source}){hint}")
        f = known[key]
        default = f.default_factory() if callable(f.default_factory) else f.default  # type: ignore[misc]
        if is_dataclass(default):
            if not isinstance(value, dict):
                raise ConfigError(f"{full}: expected a mapping of {type(default).__name__} fields, got {value!r}")
            _check_keys(value, type(default), source, full + ".")


_RATIO = re.compile(r"\d+:\d+")


def _parse_argv(argv: list[str]) -> tuple[str | None, list[str]]:
    recipe, rest = None, []
    for token in argv:
        if token.startswith("-") or "=" not in token:
            raise ConfigError(f"argument {token!r}: expected key=value (e.g. recipe=disco_lora trainer.max_steps=10)")
        key, value = token.split("=", 1)
        if key == "recipe":
            recipe = value
        elif _RATIO.fullmatch(value):
            # YAML 1.1 reads 1:3 as the base-60 integer 63; a ratio on the command line is meant as text.
            rest.append(f'{key}="{value}"')
        else:
            rest.append(token)
    return recipe, rest


def resolve(argv: list[str], recipes_dir: Path = RECIPES_DIR,
            default_task: str | None = None) -> tuple[Any, DictConfig, str]:
    """Resolve argv into (typed config, resolved DictConfig, recipe name). Raises ConfigError.

    Without `recipe=`, `default_task` (if given) supplies a recipe of pure defaults: `prepare input=...`.
    """
    name, overrides = _parse_argv(argv)
    if not name and default_task is None:
        raise ConfigError(f"recipe: missing recipe=NAME; available: {', '.join(available_recipes(recipes_dir))}")
    recipe = load_recipe_chain(name, recipes_dir) if name else OmegaConf.create({"task": default_task})
    name = name or default_task
    if default_task is not None and recipe.get("task") != default_task:
        raise ConfigError(f"task: recipe {name!r} is a {recipe.get('task')!r} recipe, this command needs "
                          f"{default_task!r}")
    task = recipe.get("task")
    if task not in TASKS:
        raise ConfigError(f"task: recipe {name!r} has task {task!r}; known tasks: {', '.join(TASKS)}")
    schema = TASKS[task]
    cli = OmegaConf.from_dotlist(overrides)
    _check_keys(OmegaConf.to_container(recipe), schema, f"recipe {name}")
    _check_keys(OmegaConf.to_container(cli), schema, "command line")
    base = OmegaConf.structured(schema)
    OmegaConf.set_struct(base, True)
    try:
        merged = OmegaConf.merge(base, recipe, cli)
        config = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "config"
        raise ConfigError(f"{key}: {str(err).splitlines()[0]}") from None
    config.validate()
    if hasattr(config, "name") and not config.name:
        from datetime import datetime

        config.name = f"{Path(name).stem}-{datetime.now():%Y%m%d-%H%M%S}"
        merged.name = config.name
    return config, merged, name


def to_yaml(resolved: DictConfig) -> str:
    return OmegaConf.to_yaml(resolved)
