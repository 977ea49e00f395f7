"""Schema of the benchmark's `restore` method: a standard codec at a low rate, restored by an IC-LoRA decoder."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from disco_train.config.base import check

RESTORE_CODECS = ("x265", "vvenc")
NO_TEXT = "none"
"""`restore.text` for a decoder prompted with nothing (no text is sent, none is counted)."""


@dataclass
class RestoreMethodConfig:
    """restore (issue #24's baseline): each clip coded whole by a standard codec at each QP of its ladder, then
    decoded by its codec and given, as the in-context reference, to an IC-LoRA restoration decoder (Lightricks'
    Decompression IC-LoRA, or a DiSCo export), through the DiSCo decoding path. Its rate: the codec's bytes, plus
    the text's when it sends one."""

    lora: str = ""
    """An export folder (`python -m disco_train export`, its base per its disco.json) or an IC-LoRA .safetensors
    (diffusers, ComfyUI or LTX-2 trainer keys), e.g. Lightricks/LTX-2.5-22b-IC-LoRA-Decompression's
    ltx-2.5-22b-ic-lora-decompression-0.9.safetensors in checkpoints/ic-lora/ (base: `base`)."""
    base: str = "disco_lora_ltx25"
    """For a LoRA file: the recipe whose model (the LoRA's base: model.path, model.name), sampling and condition
    settings it runs with (disco_lora_ltx25: LTX-2.5 22B dev in checkpoints/ltx-2.5)."""
    codec: str = "x265"
    """The standard codec: x265 or vvenc (their presets: x265.preset, vvenc.*)."""
    qp: list[int] = field(default_factory=lambda: [51, 47, 43, 39])
    """The codec's QPs (x265 0-51, vvenc 0-63), one RD point each: low rates, where restoration matters."""
    text: str = "caption"
    """'caption': each clip's caption (disco.captions and its fallbacks), sent and counted; 'none': no text (empty
    prompt, 0 bits); anything else: that prompt for every clip (e.g. the LoRA's trigger words), counted."""
    overrides: list[str] = field(default_factory=list)
    """Decoder-config overrides as section.key=value (e.g. model.path=... of a distilled checkpoint)."""
    steps: Optional[int] = None
    """Euler steps (default: the decoder's validation.steps)."""
    guidance: Optional[float] = None
    """Classifier-free guidance scale (default: the decoder's validation.guidance)."""
    schedule: Optional[str] = None
    """σ schedule: shifted or a distilled list such as ltx2_distilled (default: the decoder's)."""

    def validate(self, key: str) -> None:
        check(self.codec in RESTORE_CODECS, f"{key}.codec", f"one of {RESTORE_CODECS}, got {self.codec!r}")
        top = 51 if self.codec == "x265" else 63
        check(bool(self.qp) and all(0 <= q <= top for q in self.qp), f"{key}.qp",
              f"{self.codec} QPs in 0-{top}, got {self.qp}")
        check(len(set(self.qp)) == len(self.qp), f"{key}.qp", f"duplicate values in {self.qp}")
        check(self.steps is None or self.steps >= 1, f"{key}.steps", "must be >= 1")
        check(bool(self.text.strip()), f"{key}.text", "'caption', 'none' or a prompt")
