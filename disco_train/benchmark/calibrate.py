"""`python -m disco_train calibrate export=DIR refs=DIR [metrics.names=lpips]`: measure an export's trained rate
points and write them into its `rd_table.json`, which `encode target_kbps=` then orders the points by.

The measurement is the benchmark's `disco` method (`benchmark.runner`, so its reference clips, cache and report
land in `work/<export name>/`) at exactly the trained points, on clips of the export's training size by default;
per point the table holds the mean bpp and kbps over the clips and the pooled metric (`decoder.rd_table`). The
table goes into a copy of the export (`out`, default `<export>-calibrated`), or into the export itself with
`force=true`; either way the folder is rebuilt beside it and renamed into place, its disco.json listing the
table with its sha256. The default metric, LPIPS, needs its weight files (`metrics.weights_dir`): without them the
command stops before any clip is coded, naming the file (psnr and ssim need none).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from disco_train.config import ConfigError
from disco_train.config.calibrate import CalibrateConfig
from disco_train.config.cli import Command, moved

COMMAND = Command("python -m disco_train calibrate", "An export's trained rate points measured on test clips (the "
                  "benchmark's disco method) -> rd_table.json in a copy of the export, for `encode target_kbps=`.",
                  CalibrateConfig)


def check_metric(m) -> str:
    """The one metric of `m` (MetricSettings), once it is known to be a per-video metric whose weight files are
    present."""
    from disco_train.benchmark.runner import METRIC_WEIGHTS
    from disco_train.config.metrics import DISTRIBUTION_METRICS
    from disco_train.metrics.weights import WEIGHT_FILES, weight_path

    names = m.name_list
    if len(names) != 1 or names[0] in DISTRIBUTION_METRICS:
        raise ConfigError(f"metrics.names: one per-video metric (psnr, ssim, lpips, ...), got {m.names!r} (a set "
                          f"metric such as FID needs many clips per point)")
    for key in METRIC_WEIGHTS.get(names[0], ()):
        path = weight_path(key, m.weights_dir)
        if not path.is_file():
            raise ConfigError(f"metrics.names={names[0]}: needs {path} ({WEIGHT_FILES[key].description}; from "
                              f"{WEIGHT_FILES[key].source}), which is missing; put it there or set "
                              f"metrics.weights_dir=, or use metrics.names=psnr, which needs no weight files")
    return names[0]


def destination(a: CalibrateConfig) -> Path:
    """Where the calibrated export goes (`out`, `force`)."""
    export = Path(a.export)
    if not a.out and a.force:
        return export
    dest = Path(a.out) if a.out else export.with_name(f"{export.name}-calibrated")
    if dest.resolve() == export.resolve() and not a.force:
        raise ConfigError(f"out={a.out}: the export itself; force=true writes into it")
    if dest.exists() and not a.force:
        raise ConfigError(f"out={dest}: exists; choose another folder, or force=true to replace it")
    return dest


def benchmark_config(a: CalibrateConfig, manifest):
    """The benchmark of the export's disco method at its trained points, on clips of its training size."""
    from disco_train.codec.trained import video_weights
    from disco_train.config.benchmark import BenchmarkConfig

    data = manifest.config["data"]
    send = replace(a.disco.send, dcvc_rt_dir=video_weights(manifest, a.disco.send.dcvc_rt_dir))
    disco = replace(a.disco, send=send)
    cfg = BenchmarkConfig(refs=a.refs, out=str(Path(a.work) / Path(a.export).resolve().name), methods="disco",
                          anchor="disco", size=a.size or f"{data['width']}x{data['height']}",
                          frames=a.frames or data["frames"], max_videos=a.max_videos, metrics=a.metrics,
                          export=a.export, device=a.device, disco=disco)
    cfg.validate()
    return cfg


def entries(curves: list[dict], trained: list[dict], metric: str) -> list:
    """A table entry per trained point from the benchmark's pooled curves."""
    from disco_train.benchmark.disco import point_label
    from disco_train.decoder.rd_table import Entry

    labels = [point_label(p) for p in trained]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"export: trained points that differ only in codec ({labels}) cannot be told apart")
    by_label = {c["point"]: c for c in curves if c["method"] == "disco"}
    out = []
    for p, label in zip(trained, labels):
        curve = by_label[label]
        if curve.get(metric) is None:
            raise ValueError(f"{label}: no {metric} ({curve.get('notes') or 'not scored'})")
        out.append(Entry(p, curve["bpp"], curve["kbps"], curve[metric]))
    return out


def calibrate(a: CalibrateConfig, log=print) -> Path:
    """Measure, write the calibrated export; returns its folder."""
    from omegaconf import OmegaConf

    from disco_train.benchmark.runner import run
    from disco_train.codec import rate
    from disco_train.decoder import rd_table
    from disco_train.decoder.export import describe_settings, read_manifest, trained_settings
    from disco_train.metrics.results import LOWER_IS_BETTER

    manifest = read_manifest(a.export)
    metric, dest = check_metric(a.metrics), destination(a)
    cfg = benchmark_config(a, manifest)
    summary = run(cfg, OmegaConf.to_yaml(OmegaConf.structured(cfg)), log=log)
    trained = trained_settings(manifest)
    found = entries(summary["curves"], trained, metric)
    clips = summary["cells"] // len(trained)
    data = rd_table.table_dict(metric, metric in LOWER_IS_BETTER, found, clips=clips, size=cfg.size,
                               frames=cfg.frames)
    rd_table.write(a.export, dest, data)
    for e in found:
        log(f"  {describe_settings([e.point])}: {e.bpp:.6g} bpp {e.kbps:.6g} kbps {metric} {e.value:.6g}")
    table = rd_table.parse(data, trained, rd_table.RD_TABLE)
    log(f"wrote {dest / rd_table.RD_TABLE} ({clips} clips, report in {cfg.out}); encode target_kbps= orders the "
        f"points worst to best: " + " < ".join(describe_settings([p]) for p in rate.order(trained, table)))
    return dest


def main(argv: list[str]) -> int:
    def body(a: CalibrateConfig) -> None:
        calibrate(a)

    return COMMAND.main(argv, body, (ValueError, OSError))  # ExportError, RateError, missing files and binaries


if __name__ == "__main__":
    moved("disco_train.benchmark.calibrate", COMMAND.prog)
    sys.exit(main(sys.argv[1:]))
