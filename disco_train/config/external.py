"""Schema of the benchmark's external methods `ext:<name>`: a codec run by two command templates."""

from __future__ import annotations

from dataclasses import dataclass, field

from disco_train.config.base import ConfigError, check

EXT_FIELDS = ("input", "bitstream", "output", "qp", "width", "height", "frames", "fps")
"""The placeholders of an external method's command templates."""


@dataclass
class ExternalConfig:
    """An external codec run by command line (VTM, HM, a GVC-RT or DCVC-UF checkout, any semantic codec with a
    CLI): method `ext:<name>` of `methods`, its settings `ext.<name>.*`. Each command runs in a shell (the
    placeholders are quoted, the files are in a fresh temporary folder), under `timeout`."""

    encode: str = ""
    """Command that codes {input} (raw 8-bit YUV 4:2:0, {width}x{height}, {frames} frames at {fps} fps) at {qp}
    into {bitstream}; the rate is that file's bytes."""
    decode: str = ""
    """Command that decodes {bitstream} into {output} (raw 8-bit YUV 4:2:0, same size and frame count)."""
    qp: list[int] = field(default_factory=lambda: [37, 32, 27, 22])
    """The QP ladder: one RD point each."""
    qp_raises_quality: bool = False
    """True when a higher QP means more rate (DCVC-style); false: the x264/HM convention."""
    timeout: float = 600.0
    """Seconds each command may run; then its process group is killed and the cell fails."""
    version: str = ""
    """What identifies the codec's build (part of every cell key: change it to recompute its cells)."""

    def validate(self, key: str) -> None:
        import string

        for name, needed in (("encode", ("input", "bitstream")), ("decode", ("bitstream", "output"))):
            template = getattr(self, name)
            check(bool(template.strip()), f"{key}.{name}", "a command template is required")
            try:
                used = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
            except ValueError as err:
                raise ConfigError(f"{key}.{name}: {err} in {template!r}") from None
            unknown = sorted(used - set(EXT_FIELDS))
            check(not unknown, f"{key}.{name}", f"unknown placeholder(s) {unknown}; use {{{'}, {'.join(EXT_FIELDS)}}}")
            missing = [f for f in needed if f not in used]
            check(not missing, f"{key}.{name}", f"needs {', '.join('{' + f + '}' for f in missing)}")
        check(bool(self.qp), f"{key}.qp", "one or more QPs")
        check(len(set(self.qp)) == len(self.qp), f"{key}.qp", f"duplicate values in {self.qp}")
        check(self.timeout > 0, f"{key}.timeout", "must be > 0 seconds")
