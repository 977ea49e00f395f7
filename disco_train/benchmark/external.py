"""External methods `ext:<name>`: any codec with a command line, as a benchmark method (VTM, HM, a GVC-RT or
DCVC-UF checkout, a semantic codec's script).

The reference clip goes to `{input}` as raw 8-bit YUV 4:2:0 (PyAV's conversion, as for x264/x265/vvenc); the
`ext.<name>.encode` command writes `{bitstream}`, whose bytes are the rate; the `.decode` command writes
`{output}`, raw YUV 4:2:0 again, which is read back to RGB the way PyAV's decoders give it. Each command runs in a
shell from the benchmark's working folder (the files are in a fresh temporary folder), with the placeholders
quoted, in its own process group: past `timeout` the whole group is killed (a codec's children too) and the cell
fails. The output is checked before anything is stored: it exists, is not empty, and holds exactly {frames}
frames of {width}x{height}. Each command's output (stderr, then stdout; its end) is kept in the cell's record,
and in the error when it fails.
"""

from __future__ import annotations

import shlex
import tempfile
import time
from pathlib import Path

import numpy as np

from disco_train.benchmark.points import Coded, Point

PREFIX = "ext:"
STDERR_KEPT = 4000
"""Characters of each command's output kept in the cell (its end: where errors are)."""


class ExternalError(ValueError):
    """An external command failed, timed out or wrote something that is not the clip."""


def is_external(method: str) -> bool:
    return method.startswith(PREFIX)


def settings(cfg, method: str):
    return cfg.ext[method[len(PREFIX):]]


def ladder(cfg, method: str) -> list[Point]:
    ext = settings(cfg, method)
    sign = 1 if ext.qp_raises_quality else -1
    return [Point(method, f"qp{q}", (("qp", q),), sign * q) for q in ext.qp]


def key_settings(cfg, method: str) -> dict:
    """What, besides the QP, changes the method's output (its part of the cache key)."""
    ext = settings(cfg, method)
    return {"encode": ext.encode, "decode": ext.decode, "version": ext.version}


def run_command(template: str, values: dict, timeout: float, what: str) -> str:
    """Run one command template in a shell (`vvenc.run_tool`: its process group is killed at the timeout);
    returns the end of its output (stderr first)."""
    from disco_train.codec.vvenc import run_tool

    command = template.format(**{k: shlex.quote(str(v)) for k, v in values.items()})
    code, output = run_tool(command, timeout, f"{what} did not finish in {timeout:g} s (killed): {command}")
    if code != 0:
        raise ExternalError(f"{what} failed (exit {code}): {command}; stderr: {output[-STDERR_KEPT:].strip()}")
    return output[-STDERR_KEPT:].strip()


def read_yuv(path: Path, frames: int, height: int, width: int, what: str) -> np.ndarray:
    """Raw 8-bit YUV 4:2:0 -> RGB uint8 [T,H,W,3], refusing a missing or empty file or a wrong frame count."""
    import av

    size = height * width * 3 // 2
    if not path.is_file() or path.stat().st_size == 0:
        raise ExternalError(f"{what} wrote no {path.name} (or an empty one)")
    data = path.read_bytes()
    if len(data) != frames * size:
        raise ExternalError(f"{what} wrote {len(data)} bytes = {len(data) / size:g} frames of {width}x{height} "
                            f"YUV 4:2:0; the clip has {frames}")
    planes = np.frombuffer(data, np.uint8).reshape(frames, height * 3 // 2, width)
    return np.stack([av.VideoFrame.from_ndarray(p, format="yuv420p").to_ndarray(format="rgb24") for p in planes])


def code(cfg, point: Point, frames: np.ndarray, fps: float) -> Coded:
    """Encode and decode one clip at one point of an external method."""
    from disco_train.codec.vvenc import yuv420_bytes

    ext = settings(cfg, point.method)
    t, h, w = frames.shape[:3]
    with tempfile.TemporaryDirectory(prefix="disco-ext-") as tmp:
        folder = Path(tmp)
        values = {"input": folder / "input.yuv", "bitstream": folder / "stream.bin", "output": folder / "output.yuv",
                  "qp": point.settings["qp"], "width": w, "height": h, "frames": t, "fps": f"{fps:g}"}
        values["input"].write_bytes(yuv420_bytes(frames))
        start = time.perf_counter()
        encode_err = run_command(ext.encode, values, ext.timeout, f"{point.method} encode")
        encoded = time.perf_counter()
        if not values["bitstream"].is_file() or values["bitstream"].stat().st_size == 0:
            raise ExternalError(f"{point.method} encode wrote no bitstream (or an empty one); stderr: {encode_err}")
        bits = 8 * values["bitstream"].stat().st_size
        decode_err = run_command(ext.decode, values, ext.timeout, f"{point.method} decode")
        decoded = time.perf_counter()
        recon = read_yuv(values["output"], t, h, w, f"{point.method} decode")
    return Coded(bits, recon, encoded - start, decoded - encoded,
                 log={"encode_stderr": encode_err, "decode_stderr": decode_err})
