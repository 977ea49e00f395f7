"""The caption each DiSCo clip is sent with: a fixed text (an ablation's "NA"), a captions file (matched by
`modalities.captions`, as `prepare` matches it), `disco.caption_default`, else a local captioner (built once and
shared by every variant that needs it). Clips are named by their source's file name."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from disco_train.config import ConfigError
from disco_train.modalities.captions import load


class Captions:
    """The caption of each clip (module docstring). `fixed`: one text for every clip; `file`: a captions file
    instead of disco.captions, which must hold every clip (an ablation of one captioner must not fall back on
    another; `option` names it in errors); `shared`: holds the captioner across instances."""

    def __init__(self, d, device: str, fixed: str = "", file: str = "", option: str = "disco.captions",
                 shared: dict | None = None):
        self.d, self.device, self.fixed, self.shared = d, device, fixed, {} if shared is None else shared
        self.strict, self.option = bool(file) and not fixed, option
        path = file or d.captions
        self.table = load(path, d.caption_key, d.caption_column, option) if path else None

    def _row(self, name: str) -> str | None:
        """The table's caption of this clip (`name`: its source's file name), by `modalities.captions`' rule; an
        ambiguous match is an error naming the rows, never a pick."""
        if self.table is None:
            return None
        text, why = self.table.lookup(name)
        if why:
            raise ConfigError(f"{self.option}: no caption for {name}: {why}")
        return text

    def key(self, name: str):
        """What picks this clip's caption, for the cache key (the text itself unless the captioner writes it)."""
        if self.fixed:
            return self.fixed
        return self._row(name) or self.d.caption_default or {"captioner": str(Path(self.d.captioner).resolve())}

    def missing(self, names: list[str]) -> list[str]:
        """Clips that would need the captioner when there is none."""
        if self.fixed or (not self.strict and (self.d.caption_default or self.d.captioner)):
            return []
        return [n for n in names if self._row(n) is None]

    def __call__(self, name: str, frames: np.ndarray) -> str:
        if self.fixed:
            return self.fixed
        text = self._row(name)
        if text is not None:
            return text
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
