"""The caption each DiSCo clip is sent with: a fixed text (an ablation's "NA"), a captions file by video name or
stem, `disco.caption_default`, else a local captioner (built once and shared by every variant that needs it)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from disco_train.config import ConfigError


def read_captions(path: Path, key: str, column: str, option: str) -> dict[str, str]:
    """A csv or jsonl of captions -> {video name and its stem: caption}."""
    if not path.is_file():
        raise ConfigError(f"{option}: file not found: {path}")
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    else:
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    if rows and (key not in rows[0] or column not in rows[0]):
        raise ConfigError(f"{option}: {path} needs columns {key!r} and {column!r}")
    table = {}
    for row in rows:
        name = Path(str(row[key])).name
        table[name] = table[Path(name).stem] = str(row[column])
    return table


class Captions:
    """The caption of each clip (module docstring). `fixed`: one text for every clip; `file`: a captions file
    instead of disco.captions, which must hold every clip (an ablation of one captioner must not fall back on
    another; `option` names it in errors); `shared`: holds the captioner across instances."""

    def __init__(self, d, device: str, fixed: str = "", file: str = "", option: str = "disco.captions",
                 shared: dict | None = None):
        self.d, self.device, self.fixed, self.shared = d, device, fixed, {} if shared is None else shared
        self.strict, self.option = bool(file) and not fixed, option
        path = file or d.captions
        self.table = read_captions(Path(path), d.caption_key, d.caption_column, option) if path else {}

    def key(self, name: str):
        """What picks this clip's caption, for the cache key (the text itself unless the captioner writes it)."""
        if self.fixed:
            return self.fixed
        if name in self.table:
            return self.table[name]
        return self.d.caption_default or {"captioner": str(Path(self.d.captioner).resolve())}

    def missing(self, names: list[str]) -> list[str]:
        """Clips that would need the captioner when there is none."""
        if self.fixed or (not self.strict and (self.d.caption_default or self.d.captioner)):
            return []
        return [n for n in names if n not in self.table]

    def __call__(self, name: str, frames: np.ndarray) -> str:
        if self.fixed:
            return self.fixed
        if name in self.table:
            return self.table[name]
        if self.strict:
            raise ValueError(f"no caption for {name} in {self.option}")
        if self.d.caption_default:
            return self.d.caption_default
        from disco_train.modalities.caption import Captioner, caption_clip

        written = self.shared.setdefault("written", {})  # one caption per clip, whichever variant asks first
        if name not in written:
            if "captioner" not in self.shared:
                self.shared["captioner"] = Captioner(self.d.captioner, device=self.device)
            written[name] = caption_clip(self.shared["captioner"], frames)
        return written[name]
