"""What every schema shares: the error type and the value checks that name the full dotted key.

This package is torch-free (recipes resolve and validate on a machine without torch, and before any weights load);
of disco_train it imports only `disco_train.io`.
"""

from __future__ import annotations

import re

from disco_train.config.geometry import SPATIAL, TEMPORAL
from disco_train.io.errors import DecodeError  # noqa: F401  (the receivers' error family lives in io/)


class ConfigError(ValueError):
    """A recipe, override, command-line argument or value is invalid. The message names the full dotted key."""


def check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {message}")


def check_clip_size(cfg, prefix: str) -> None:
    """frames 8k+1 (the LTX VAE keeps frame 0, then 8:1 in time) and height/width multiples of 32 (32× spatial)."""
    dot = f"{prefix}." if prefix else ""
    check(cfg.frames >= 1 and (cfg.frames - 1) % TEMPORAL == 0, f"{dot}frames",
          f"must be 8k+1 (e.g. 9, 17, 57), got {cfg.frames}")
    for key in ("height", "width"):
        value = getattr(cfg, key)
        check(value >= SPATIAL and value % SPATIAL == 0, f"{dot}{key}", f"must be a multiple of 32, got {value}")


def parse_ratio(text: str, key: str = "ratio") -> tuple[int, int]:
    """'1:3' -> (1, 3). Both parts must be positive integers."""
    if str(text).isdigit():
        raise ConfigError(f"{key}: got {text!r}; an unquoted a:b in YAML is read as a base-60 number "
                          f"(1:3 -> 63): write it quoted, e.g. ratio: \"1:3\"")
    match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", str(text))
    check(match is not None, key, f"expected 'a:b' with positive integers, got {text!r}")
    a, b = int(match.group(1)), int(match.group(2))
    check(a > 0 and b > 0, key, f"both parts must be positive, got {text!r}")
    return a, b
