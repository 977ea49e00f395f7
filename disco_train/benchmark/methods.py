"""The baseline methods and their rate ladders: x264, x265 (H.264/H.265 by PyAV), vvenc (H.266) and DCVC-RT, all
through the codec registry `codec.backends` — the same code that codes DiSCo's degraded video.

A method's RD points come from one setting each: a QP or CRF of x264/x265 (`x264.rc`, `x264.values`, preset
`x264.preset`), a QP of vvenc (`vvenc.qp`, preset `vvenc.preset`) or of DCVC-RT (`dcvc_rt.qp`). The rate of a
point is the length of the elementary stream a decoder reads: Annex-B without encoder-info SEI for x264, x265 and
vvenc (what an mp4 would add is recorded apart as `container_bits`), DCVC-RT's official byte format (SPS and frame
NAL units, no checksums) or, with `dcvc_rt.stream_format=disco`, the project's CRC-checked one (its headers
recorded as `container_bits`, and counted). The reconstruction is the decoder's output, scored as it is.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from disco_train.benchmark import external
from disco_train.benchmark.points import Coded, Point
from disco_train.codec import backends

BASELINES = ("x264", "x265", "vvenc", "dcvc_rt")


def ladder_points(cfg) -> dict[str, list[Point]]:
    """The baseline methods of `cfg.methods` -> their points (ladders in config order)."""
    points: dict[str, list[Point]] = {}
    for name in (m for m in cfg.method_list if m in ("x264", "x265")):
        ladder = getattr(cfg, name)
        points[name] = [Point(name, f"{ladder.rc}{v}", (("rc", ladder.rc), ("value", v)), -v) for v in ladder.values]
    if "vvenc" in cfg.method_list:
        points["vvenc"] = [Point("vvenc", f"qp{q}", (("qp", q),), -q) for q in cfg.vvenc.qp]
    if "dcvc_rt" in cfg.method_list:  # DCVC-RT's QP runs the other way: 63 is the highest quality
        points["dcvc_rt"] = [Point("dcvc_rt", f"qp{q}", (("qp", q),), q) for q in cfg.dcvc_rt.qp]
    points.update({m: external.ladder(cfg, m) for m in cfg.method_list if external.is_external(m)})
    return points


def files_fingerprint(paths: list[Path]) -> list:
    """(name, bytes, mtime) of each existing file: cheap identity of weight files for cache keys."""
    return [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in paths if p.is_file()]


def settings_of(cfg, method: str) -> dict:
    """What, besides the point, changes a baseline's output (its part of the cache key)."""
    import av

    if external.is_external(method):
        return external.key_settings(cfg, method)
    if method in ("x264", "x265"):
        return {"preset": getattr(cfg, method).preset, "libavcodec": str(av.library_versions.get("libavcodec")),
                "pyav": av.__version__}
    if method == "vvenc":
        from disco_train.codec import vvenc

        app = vvenc.find_app(cfg.vvenc.app, "vvenc.app")
        return {"preset": cfg.vvenc.preset, "qpa": cfg.vvenc.qpa, "intra_period": cfg.vvenc.intra_period,
                "version": vvenc.version(app)}
    if method == "dcvc_rt":
        weights = cfg.dcvc_rt.weights
        fmt = cfg.dcvc_rt.stream_format
        if weights == backends.SYNTHETIC:
            return {"weights": weights, "format": fmt}
        backends.check_dcvc_weights(weights, key="dcvc_rt.weights")
        return {"weights": files_fingerprint([Path(weights) / n for n in backends.DCVC_WEIGHTS]), "format": fmt}
    raise KeyError(method)


def options_of(cfg, method: str, device: str) -> tuple[dict, dict]:
    """(encode options, decode options) of a baseline's backend."""
    if method in ("x264", "x265"):
        return {"preset": getattr(cfg, method).preset}, {}
    if method == "vvenc":
        return {"preset": cfg.vvenc.preset, "app": cfg.vvenc.app, "qpa": cfg.vvenc.qpa,
                "intra_period": cfg.vvenc.intra_period}, {}
    return {"device": device, "stream_format": cfg.dcvc_rt.stream_format}, {"device": device}


def code_baseline(cfg, point: Point, frames: np.ndarray, fps: float, device: str = "cpu") -> Coded:
    """Encode and decode one clip at one baseline point (or an external method's: `external.code`)."""
    if external.is_external(point.method):
        return external.code(cfg, point, frames, fps)
    s = point.settings
    encode_options, decode_options = options_of(cfg, point.method, device)
    crf = s["value"] if s.get("rc") == "crf" else None
    qp = s["value"] if s.get("rc") == "qp" else s.get("qp")
    weights = cfg.dcvc_rt.weights if point.method == "dcvc_rt" else None
    start = time.perf_counter()
    data, info = backends.encode(point.method, frames, fps, crf=crf, qp=qp, weights_dir=weights, **encode_options)
    encoded = time.perf_counter()
    recon = backends.decode(point.method, data, weights, **decode_options)
    decoded = time.perf_counter()
    if recon.shape != frames.shape:
        raise ValueError(f"{point.method} {point.label}: decoded {recon.shape}, the clip is {frames.shape}")
    extra = {"container_bits": 8 * info["container_overhead_bytes"]} if "container_overhead_bytes" in info else {}
    if point.method == "dcvc_rt" and cfg.dcvc_rt.stream_format == "disco":
        from disco_train.dcvc_rt.bitstream import FRAME_HEADER_BYTES, HEADER_BYTES

        extra["container_bits"] = 8 * (HEADER_BYTES + FRAME_HEADER_BYTES * len(frames))
    return Coded(8 * len(data), recon, encoded - start, decoded - encoded, extra)
