"""Command functions: ``evaluate``, ``bdrate`` and ``plot`` (key=value arguments, parsed by OmegaConf).

    evaluate refs=<dir> recons=<dir> out=<csv> [metrics.names=psnr,ssim,lpips,dists,fid,fvd] [bpp=<float> |
             bitstreams=<dir>] [metrics.weights_dir=checkpoints/metrics] [metrics.device=cpu] [append=false] ...
             (metrics.names may also name lpips_vgg, flolpips and fvmd; metrics.fvmd.* set FVMD's sampling)
    bdrate <anchor.csv> <test.csv> [metric=lpips] [interpolation=akima]
    plot <a.csv> [<b.csv> ...] metric=lpips[,psnr,...] out=rd.png

``evaluate`` pairs ``refs/<stem>.*`` with ``recons/<stem>.*`` by stem, whatever the containers (a reference .mp4
with a reconstruction .mkv, or a ``<stem>/`` folder of PNG frames, as ``decode`` writes them), and writes one csv row per video plus
an ``overall`` row: per-frame metrics and bpp are the mean over videos (every sequence weighs the same, as
in codec test conditions), FID/FVD/FVMD are computed over the pooled frames/clips/windows of all videos. Appending
several runs (``append=true``), one per rate point, to one csv gives the RD curve that ``bdrate`` and
``plot`` read.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Optional

from disco_train.config import ConfigError
from disco_train.config.cli import REQUIRED, Command, moved
from disco_train.config.metrics import ALL_METRICS, RENAMED_METRIC_KEYS, MetricSettings
from disco_train.io.files import csv_cell

from .results import LOWER_IS_BETTER, OVERALL

BASE_COLUMNS = ["video", "frames", "height", "width", "fps", "bpp", "kbps"]
"""kbps = bpp · height · width · fps / 1000: the rate at the reference's frame rate."""


@dataclass
class EvaluateConfig:
    refs: str = REQUIRED
    """Folder of reference videos."""
    recons: str = REQUIRED
    """Folder of reconstructions, with the same file stems."""
    out: str = REQUIRED
    """The csv to write."""
    ext: str = ""
    """Only files of this extension in both folders ('' = any video file, or a folder of PNG frames)."""
    bpp: Optional[float] = None
    """The rate of this run, written to every row ..."""
    bitstreams: Optional[str] = None
    """... or a folder whose <stem>.<bitstream_ext> file (or <stem>/ folder of stream files) gives each video's
    rate."""
    bitstream_ext: str = "disco"
    """Extension of the one bitstream file per video in `bitstreams`."""
    metrics: MetricSettings = field(default_factory=MetricSettings)
    """Which metrics and how (`metrics.names=psnr,ssim,lpips`, `metrics.fvmd.points=25`, ...)."""
    append: bool = False
    """Add rows to an existing csv (same columns) instead of overwriting it."""

    RENAMED: ClassVar[dict[str, str]] = {**RENAMED_METRIC_KEYS, "device": "metrics.device",
                                         "batch_size": "metrics.batch_size"}

    def validate(self) -> None:
        self.metrics.validate()


@dataclass
class BDRateConfig:
    anchor: str = REQUIRED
    """RD points of the anchor (an evaluate csv)."""
    test: str = REQUIRED
    """RD points of the tested method."""
    metric: str = "lpips"
    """Quality column to integrate."""
    interpolation: str = "akima"
    """Curve interpolation of bjontegaard: akima or pchip."""
    min_overlap: float = 0.75
    """Least overlap of the two quality ranges, as a fraction of their joint span (bjontegaard's measure); under it
    the BD-rate is refused (0 accepts any overlap)."""
    check_monotonic: bool = True
    """Refuse curves whose quality does not improve with rate (false: compute the BD-rate anyway)."""


@dataclass
class PlotConfig:
    csvs: list[str] = field(default_factory=list)
    """Evaluate csvs, one curve each."""
    metric: str = REQUIRED
    """Quality column on the y axis; several, comma-separated, make a panel each in one figure."""
    out: str = REQUIRED
    """PNG to write."""
    title: Optional[str] = None
    """Plot title."""
    labels: list[str] = field(default_factory=list)
    """Legend entries, one per csv, e.g. the method and its setting ([] = the file stems)."""


EVALUATE = Command("python -m disco_train evaluate", "Reference vs reconstructed videos -> one csv row per video "
                   "and an overall row (per-frame metrics averaged, FID/FVD pooled).", EvaluateConfig)
BDRATE = Command("python -m disco_train bdrate", "BD-rate (%) of one evaluate csv against another.", BDRateConfig,
                 ("anchor", "test"))
PLOT = Command("python -m disco_train plot", "Rate-distortion curves of evaluate csvs as a PNG.", PlotConfig,
               ("csvs",))


def videos_by_stem(folder: Path, ext: str = "") -> dict[str, Path]:
    """{stem: path} of the videos in `folder`: files of a video suffix (or `ext`) and folders of PNG frames; a stem
    held by two of them is ambiguous and refused."""
    from disco_train.io.video import VIDEO_SUFFIXES

    suffixes = (f".{ext.lstrip('.').lower()}",) if ext else VIDEO_SUFFIXES
    found: dict[str, list[Path]] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):  # temporary files of a writer (.name.tmp.mkv)
            continue
        if (p.is_file() and p.suffix.lower() in suffixes) or (not ext and p.is_dir() and any(p.glob("*.png"))):
            found.setdefault(p.stem if p.is_file() else p.name, []).append(p)
    twice = {s: ps for s, ps in found.items() if len(ps) > 1}
    if twice:
        stem, paths = next(iter(twice.items()))
        raise ValueError(f"{folder}: {len(twice)} video name(s) held by several files, e.g. {stem}: "
                         f"{', '.join(p.name for p in paths)}; keep one, or pick one with ext=")
    return {s: ps[0] for s, ps in found.items()}


def pair_videos(refs: Path, recons: Path, ext: str = "") -> list[tuple[str, Path, Path]]:
    """[(stem, ref, recon)] sorted by stem; every reference needs a reconstruction and vice versa."""
    for label, d in (("refs", refs), ("recons", recons)):
        if not d.is_dir():
            raise FileNotFoundError(f"{label} folder not found: {d}")
    ref_map, rec_map = videos_by_stem(refs, ext), videos_by_stem(recons, ext)
    kind = f"*.{ext.lstrip('.')}" if ext else "video"
    if not ref_map:
        raise FileNotFoundError(f"no {kind} files in refs folder {refs}")
    if OVERALL in ref_map:
        raise ValueError(f"a video may not be named {OVERALL!r} (reserved for the summary row): {ref_map[OVERALL]}")
    missing = sorted(set(ref_map) - set(rec_map))
    extra = sorted(set(rec_map) - set(ref_map))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"no reconstruction in {recons} for: {', '.join(missing)}")
        if extra:
            parts.append(f"reconstructions without a reference in {refs}: {', '.join(extra)}")
        raise ValueError(f"video names do not match (paired by file stem, {kind}); " + "; ".join(parts))
    return [(s, ref_map[s], rec_map[s]) for s in sorted(ref_map)]


def bitstream_bits(folder: Path, stem: str, ext: str = "disco") -> int:
    """Size in bits of exactly ``folder/<stem>.<ext>``, or of every file in the folder ``folder/<stem>/`` (a method
    whose streams are separate files). Nothing else counts: a log beside ``clip.disco``, or ``clip.v2.disco``,
    is not the clip's rate."""
    single, several = folder / f"{stem}.{ext.lstrip('.')}", folder / stem
    if single.is_file():
        return 8 * single.stat().st_size
    if several.is_dir():
        return 8 * sum(p.stat().st_size for p in several.rglob("*") if p.is_file())
    raise FileNotFoundError(f"no bitstream for video {stem!r} in {folder} (expected {single.name} or {stem}/)")


def _write_rows(out: Path, columns: list[str], rows: list[dict], append: bool) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    if append and out.exists():
        with out.open(newline="") as f:
            header = next(csv.reader(f), None)
        if header != columns:
            raise ValueError(f"cannot append to {out}: its columns {header} differ from {columns}")
        mode = "a"
    else:
        mode = "w"
    with out.open(mode, newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        if mode == "w":
            writer.writeheader()
        writer.writerows({k: csv_cell(v) for k, v in row.items()} for row in rows)


def _fmt(value) -> str:
    return "" if value is None else (f"{value:.8g}" if isinstance(value, float) else str(value))


def run_evaluate(cfg: EvaluateConfig) -> list[dict]:
    """Evaluate all pairs, write the csv and return its rows (the last one is the overall row)."""
    from .suite import MetricSuite

    names = cfg.metrics.name_list
    if cfg.bpp is not None and cfg.bitstreams is not None:
        raise ConfigError("bpp, bitstreams: give either bpp= or bitstreams=, not both")
    if cfg.bitstreams is not None and not Path(cfg.bitstreams).is_dir():
        raise FileNotFoundError(f"bitstreams folder not found: {cfg.bitstreams}")
    pairs = pair_videos(Path(cfg.refs), Path(cfg.recons), cfg.ext)
    suite = MetricSuite.of(cfg.metrics, "cpu")
    from disco_train.io.video import probe_fps

    rows, bpps = [], []
    for stem, ref, rec in pairs:
        res = suite.evaluate_pair(ref, rec)
        bpp, fps = cfg.bpp, probe_fps(ref)
        if cfg.bitstreams is not None:
            bpp = bitstream_bits(Path(cfg.bitstreams), stem, cfg.bitstream_ext) / (res.frames * res.height * res.width)
        bpps.append(bpp)
        kbps = None if bpp is None else bpp * res.height * res.width * fps / 1000
        rows.append({"video": stem, "frames": res.frames, "height": res.height, "width": res.width, "fps": fps,
                     "bpp": bpp, "kbps": kbps, **res.scores})
    overall = {"video": OVERALL, "frames": sum(r["frames"] for r in rows),
               "bpp": None if bpps[0] is None else sum(bpps) / len(bpps),
               "kbps": None if bpps[0] is None else sum(r["kbps"] for r in rows) / len(rows)}
    for n in names:
        if n in suite.frame_metric_names:
            overall[n] = sum(r[n] for r in rows) / len(rows)
    overall.update(suite.distribution_scores())
    rows.append(overall)
    columns = BASE_COLUMNS + names
    _write_rows(Path(cfg.out), columns, [{c: _fmt(r.get(c)) for c in columns} for r in rows], cfg.append)
    return rows


ERRORS = (ValueError, FileNotFoundError)  # input errors: one clear line, no traceback


def main(argv: list[str]) -> int:
    """``evaluate key=value ...``; returns a process exit code (0 ok, 2 usage/input error)."""
    def run(cfg: EvaluateConfig) -> None:
        rows = run_evaluate(cfg)
        summary = ", ".join(f"{k}={_fmt(v)}" for k, v in rows[-1].items() if k not in ("video",))
        print(f"evaluated {len(rows) - 1} video(s) -> {cfg.out}: {summary}")
        others = [m for m in ALL_METRICS if m not in cfg.metrics.name_list + ["psnr", "ssim"]]
        if others:  # the default needs no download; say what else there is and what it needs
            print(f"also available: metrics.names={','.join(others)} (weight files in {cfg.metrics.weights_dir}/: "
                  f"docs/metrics.md)")

    return EVALUATE.main(argv, run, ERRORS)


def bdrate_main(argv: list[str]) -> int:
    """``bdrate anchor.csv test.csv [metric=lpips] [interpolation=akima]``: print the BD-rate in percent."""
    def run(cfg: BDRateConfig) -> None:
        from .bdrate import bd_rate
        from .results import read_rd_points

        (ra, qa), (rt, qt) = (read_rd_points(p, cfg.metric) for p in (cfg.anchor, cfg.test))
        value = bd_rate(ra, qa, rt, qt, interpolation=cfg.interpolation,
                        lower_is_better=cfg.metric in LOWER_IS_BETTER, min_overlap=cfg.min_overlap,
                        check_monotonic=cfg.check_monotonic)
        print(f"BD-rate {cfg.metric} ({cfg.interpolation}) of {cfg.test} vs {cfg.anchor}: {value:.4f} %")

    return BDRATE.main(argv, run, ERRORS)


def plot_main(argv: list[str]) -> int:
    """``plot a.csv [b.csv ...] metric=lpips out=rd.png [title=...]``: RD-curve PNG, one line per csv."""
    def run(cfg: PlotConfig) -> None:
        from .plot import plot_rd

        if not cfg.csvs:
            raise ConfigError("csvs: plot needs at least one csv file")
        print(f"wrote {plot_rd(cfg.csvs, cfg.metric, cfg.out, labels=cfg.labels or None, title=cfg.title)}")

    return PLOT.main(argv, run, ERRORS)


if __name__ == "__main__":
    moved("disco_train.metrics.evaluate", EVALUATE.prog)
    sys.exit(main(sys.argv[1:]))
