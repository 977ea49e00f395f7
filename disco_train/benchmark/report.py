"""The benchmark's files in `out/`: results.csv, curves.csv, bdrate.csv/.md, rd_<metric>.png, rd_all.png, report.md.

- results.csv: one row per video × method × point: bits (everything a decoder needs), bpp (bits / (frames · H · W)),
  kbps (at the clip's frame rate), encode and decode seconds, each per-video metric, and what is reported apart
  (container_bits: what an mp4 would add to a raw stream; for disco overhead_bits, the .disco header inside
  `bits`, and the bits of each stream).
- curves.csv: one row per method × point, pooled over the videos (`tables`), with set metrics (FID/FVD/FVMD).
- bdrate.csv: one row per metric × method, numbers only in its numeric columns (BDRATE_COLUMNS): the BD-rate %
  against the anchor, empty unless status is ok (or anchor), the overlap of the quality ranges, min_overlap.
- bdrate.md: the person's view, a row per metric, a column per method, "—" and a numbered footnote saying why.
- rd_<metric>.png, rd_all.png: the RD curves (bpp, log scale; `metrics.plot`), one metric each and all as panels;
  a DiSCo grid as dots with its Pareto front as the line.
- report.md: the settings, the versions, the tables.
Every file is written to a temporary name and renamed.
"""

from __future__ import annotations

import csv
import io
import platform
from pathlib import Path

from disco_train.benchmark.tables import cell_text, method_curve
from disco_train.io.files import atomic_write, csv_cell


def _fmt(value) -> str:
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def csv_text(rows: list[dict], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows({c: csv_cell(_fmt(r.get(c))) for c in columns} for r in rows)
    return buffer.getvalue()


def columns_of(rows: list[dict], first: list[str]) -> list[str]:
    extra = sorted({k for r in rows for k in r} - set(first))
    return first + extra


BDRATE_COLUMNS = ["metric", "method", "anchor", "status", "bd_rate_percent", "overlap", "min_overlap",
                  "interpolation", "detail"]
"""bdrate.csv: one row per metric × method; bd_rate_percent is empty unless status is ok or anchor."""


def bdrate_rows(table: dict, methods: list[str], cfg) -> list[dict]:
    """bdrate.csv's rows (long form, numbers only in the numeric columns)."""
    return [{"metric": metric, "method": m, "anchor": cfg.anchor, "status": cell["status"],
             "bd_rate_percent": cell["value"], "overlap": cell["overlap"], "min_overlap": cfg.min_overlap,
             "interpolation": cfg.interpolation, "detail": cell["detail"]}
            for metric, cells in table.items() for m in methods for cell in [cells[m]]]


def bdrate_markdown(table: dict, methods: list[str], cfg) -> str:
    """bdrate.md: a row per metric, a column per method; a cell without a number is "—" with a footnote."""
    notes: list[str] = []
    rows = []
    for metric, cells in table.items():
        row = {"metric": metric}
        for m in methods:
            cell = cells[m]
            if cell["status"] in ("ok", "anchor"):
                row[m] = cell_text(cell)
                continue
            if cell["detail"] not in notes:
                notes.append(cell["detail"])
            row[m] = f"— [{notes.index(cell['detail']) + 1}]"
        rows.append(row)
    head = (f"BD-rate (%) against {cfg.anchor} ({cfg.interpolation}; negative = less rate for the same quality; "
            f"a cell needs quality ranges that overlap at least min_overlap = {cfg.min_overlap:.0%})\n\n")
    foot = "".join(f"{i}. {n}\n" for i, n in enumerate(notes, 1))
    return head + markdown_table(rows, ["metric", *methods]) + ("\n" + foot if foot else "")


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def legend_label(method: str, line: list[dict], every: list[dict], grid: bool, cfg) -> str:
    """A method and its setting: 'x264 (qp51…qp36, medium)', 'disco (Pareto front of 9 points)'."""
    if grid:
        return f"{method} (Pareto front of {len(every)} points)"
    section = getattr(cfg, method.split(":")[0].split("@")[0], None)
    preset = getattr(section, "preset", None)
    span = line[0]["point"] if len(line) == 1 else f"{line[0]['point']}…{line[-1]['point']}"
    return f"{method} ({span}{', ' + preset if isinstance(preset, str) else ''})"


def plot_rd_curves(curves: list[dict], methods: list[str], metrics: list[str], grids: set[str], out: Path,
                   cfg) -> list[Path]:
    """rd_<metric>.png for each metric with values, and rd_all.png with a panel each."""
    from disco_train.metrics.plot import Series, rd_figure

    panels = {}
    for metric in metrics:
        series = []
        for method in methods:
            line = method_curve(curves, method, metric, method in grids)
            if not line:
                continue
            every = [c for c in curves if c["method"] == method and c.get(metric) is not None]
            dots = ([c["bpp"] for c in every], [c[metric] for c in every]) if method in grids else ((), ())
            series.append(Series(legend_label(method, line, every, method in grids, cfg), [c["bpp"] for c in line],
                                 [c[metric] for c in line], dots))
        if series:
            panels[metric] = series
    written = [rd_figure({m: s}, out / f"rd_{m}.png") for m, s in panels.items()]
    return written + ([rd_figure(panels, out / "rd_all.png")] if panels else [])


def versions(methods: list[str], cfg) -> list[str]:
    import av
    import numpy
    import torch

    lines = [f"python {platform.python_version()}, torch {torch.__version__}, numpy {numpy.__version__}, "
             f"PyAV {av.__version__} (libavcodec {av.library_versions.get('libavcodec')})"]
    from disco_train.codec.standard import encoder_version

    for name in (m for m in methods if m in ("x264", "x265")):
        lines.append(f"{name}: {encoder_version(name)}, preset {getattr(cfg, name).preset}")
    if "vvenc" in methods:
        from disco_train.codec import vvenc

        app = vvenc.find_app(cfg.vvenc.app, "vvenc.app")
        lines.append(f"vvenc: {vvenc.version(app)} ({app}), preset {cfg.vvenc.preset}, qpa {cfg.vvenc.qpa}, "
                     f"intra period {cfg.vvenc.intra_period or '1 s'}")
    if "dcvc_rt" in methods:
        lines.append(f"dcvc_rt: weights {cfg.dcvc_rt.weights}, {cfg.dcvc_rt.stream_format} byte format")
    for name in (m for m in methods if m.startswith("ext:")):
        ext = cfg.ext[name[4:]]
        lines.append(f"{name}: encode `{ext.encode}`, decode `{ext.decode}`"
                     + (f", version {ext.version}" if ext.version else ""))
    return lines


def speed_quality(curves: list[dict], metrics: list[str]) -> list[str]:
    """report.md's DiSCo speed-quality table: every DiSCo method's points with their decode seconds per clip
    beside the metrics (decode settings as `disco.variants`: `disco:fast` against `disco` on the same clips)."""
    rows = [c for c in curves if str(c["method"]).startswith("disco")]
    if not rows:
        return []
    return ["## DiSCo decode speed against quality", "",
            "decode_s: seconds per clip of `decode` (receiver, sampling and VAE), pooled over the videos.", "",
            markdown_table(rows, ["method", "point", "decode_s", "bpp", *metrics]), ""]


def write_report(out: Path, cfg, resolved_yaml: str, clips: list, results: list[dict], curves: list[dict],
                 table: dict, metrics: list[str], grids: set[str], notes: list[str]) -> list[Path]:
    """Every output file; returns their paths."""
    methods = cfg.method_list
    first = ["video", "method", "point", "frames", "height", "width", "fps", "bits", "bpp", "kbps", "encode_s",
             "decode_s", *[m for m in metrics if results and m in results[0]]]
    written = []
    for name, text in (("results.csv", csv_text(results, columns_of(results, first))),
                       ("curves.csv", csv_text(curves, ["method", "point", "videos", "bits", "bpp", "kbps",
                                                        "encode_s", "decode_s", *metrics, "notes"])),
                       ("bdrate.csv", csv_text(bdrate_rows(table, methods, cfg), BDRATE_COLUMNS))):
        atomic_write(out / name, text)
        written.append(out / name)
    bd_md = bdrate_markdown(table, methods, cfg)
    atomic_write(out / "bdrate.md", bd_md)
    written.append(out / "bdrate.md")
    written += plot_rd_curves(curves, methods, metrics, grids, out, cfg)
    lines = ["# Benchmark report", "", "## Settings", "", "```yaml", resolved_yaml.rstrip(), "```", "",
             "## Versions", "", *[f"- {v}" for v in versions(methods, cfg)], "",
             f"## Reference clips ({len(clips)}: {cfg.size}, first {cfg.frames} frames)", "",
             markdown_table([{"video": c.name, "source": c.source, "fps": c.fps, "frames": c.frames} for c in clips],
                            ["video", "source", "fps", "frames"]),
             "## BD-rate", "", bd_md, "## RD points (pooled over the videos)", "",
             markdown_table(curves, ["method", "point", "bpp", "kbps", *metrics]), "",
             *speed_quality(curves, metrics),
             *(["## Notes", "", *[f"- {n}" for n in notes], ""] if notes else []),
             "Rates: every bit a decoder needs (raw streams without encoder-info SEI; the whole .disco file for "
             "DiSCo); kbps at each clip's frame rate."]
    atomic_write(out / "report.md", "\n".join(lines) + "\n")
    written.append(out / "report.md")
    return written
