"""What an export tells the sender and receiver: the rate points its decoder trained on, its sketch settings and
the DCVC-RT weights of its training data (`disco_train.decoder.export`, disco.json v2).

The choice rule of `encode` (`choose_point`): the rate keys given on the command line (ds, dt, codec, qp, crf)
must match at least one trained point, else the command refuses (ConfigError, exit 2, naming the trained set)
unless `force=true`. Among the matching points the first in the set's order (codec, D_s, D_t, QP, CRF) is used and,
when there are several, a note names it and how to pick another; a single trained point is therefore today's
behaviour: its settings are the defaults. A QP is compared as the codec uses it (dcvc_rt's -1 is QP 32), a CRF
only where the point codes at a CRF (x264/x265 with qp = -1).
"""

from __future__ import annotations

from pathlib import Path

from disco_train.codec.backends import used_qp
from disco_train.config import ConfigError
from disco_train.decoder.export import describe_settings
from disco_train.decoder.manifest import CODEC_KEYS, SKETCH_KEYS, ExportManifest


def matches(point: dict, given: dict) -> bool:
    """Whether trained rate point `point` has the values `given` (module docstring: how qp and crf compare)."""
    codec = given.get("codec", point.get("codec"))
    for key, value in given.items():
        if key not in point:
            continue  # an export that does not record the key (v1, or given at export time without it)
        if key == "qp" and used_qp(codec, value) != used_qp(point.get("codec"), point["qp"]):
            return False
        if key == "crf" and point.get("qp", -1) < 0 and point.get("codec") in ("x264", "x265") \
                and value != point["crf"]:
            return False
        if key in ("ds", "dt", "codec") and value != point[key]:
            return False
    return True


def choose_point(trained: list[dict], given: dict, force: bool = False) -> tuple[dict, str]:
    """(the rate point to code at: the first trained point matching `given`, with `given` on top; a note for the
    user or ''). No match: ConfigError naming the trained set, unless `force` (then `given` on the first point)."""
    given = {k: v for k, v in given.items() if k in CODEC_KEYS and v is not None}
    matching = [p for p in trained if matches(p, given)]
    if not matching:
        asked = " ".join(f"{k}={v}" for k, v in given.items())
        if not force:
            raise ConfigError(f"{', '.join(given)}: {asked} is not a rate point the decoder was trained on "
                              f"({describe_settings(trained)}); name one of them, or force=true to code it anyway")
        return {**trained[0], **given}, (f"encode: note: {asked} is outside the trained set "
                                         f"({describe_settings(trained)}); coding it anyway (force=true)")
    note = ""
    if len(matching) > 1:
        note = (f"encode: note: {len(matching)} trained rate points match; coding at the first, "
                f"{describe_settings(matching[:1])} (set ds/dt/qp to choose another: {describe_settings(matching)})")
    return {**matching[0], **given}, note


def sketch_defaults(manifest: ExportManifest) -> dict:
    """The sketch settings of the training data (the first, if several shard sets differed)."""
    found = manifest.sketch
    return {k: v for k, v in found[0].items() if v is not None} if found else {}


def _recorded(manifest: ExportManifest, key: str) -> str:
    return (getattr(manifest.weights, key) or [""])[0]


def video_weights(manifest: ExportManifest | None, given: str) -> str:
    """DCVC-RT weights of the degraded video: the command line, else the folder the training data was coded with
    ('' = the backend's default checkpoints/dcvc_rt)."""
    return given or (_recorded(manifest, "dcvc_rt_dir") if manifest else "")


def sketch_weights(export: str, manifest: ExportManifest | None, given: str, video: str) -> str:
    """DCVC-RT weights of the sketch: the command line, else the export's own sketch_codec/ copy, else the sketch
    codec folder the training data recorded, else the video's weights (exports before sketch weights were kept
    apart shared one folder)."""
    if given:
        return given
    if manifest and manifest.sketch_codec:
        return str(Path(export) / manifest.sketch_codec)
    return (_recorded(manifest, "sketch_dcvc_dir") if manifest else "") or video



def clip_size(size: str, export: str = "") -> tuple[int, int]:
    """(width, height) of `encode size=`: 'WxH', or 'export': the clip size the export's decoder trained at."""
    if size == "export":
        if not export:
            raise ConfigError("size=export: needs export=DIR (the decoder whose training size to use)")
        from disco_train.decoder.export import read_manifest

        data = read_manifest(export, verify=False).config.get("data", {})
        return int(data["width"]), int(data["height"])
    width, _, height = size.partition("x")
    if not (width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0):
        raise ConfigError(f"size={size}: expected WxH (e.g. 512x512) or 'export'")
    return int(width), int(height)


def scale_to(frames, size: str, export: str = ""):
    """`encode size=`: frames [T,H,W,3] scaled as prepare makes training clips (cover, then centre crop)."""
    from disco_train.modalities.degrade import resize_center_crop

    width, height = clip_size(size, export)
    return resize_center_crop(frames, height, width)[0]
