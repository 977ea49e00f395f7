"""H.266/VVC through Fraunhofer's vvenc encoder (an external binary, `vvencapp`) and PyAV's VVC decoder.

No H.266 encoder is packaged for pip or these machines' ffmpeg, so the encoder runs the way reference-software
anchors usually run: the frames go to a temporary raw YUV 4:2:0 file, `vvencapp` codes it under a timeout, and the
bitstream file is read back. PyAV's bundled ffmpeg decodes VVC.

Where the binary comes from, first found wins: the `app` argument (a setting such as the benchmark's
`vvenc.app`), `$VVENC_APP`, the project's own build (`make vvenc`: fraunhoferhhi/vvenc from its public source,
installed as `tools/vvenc/bin/vvencapp`), `vvencapp` on PATH.

Settings: constant QP (`-q`, 0-63) with vvenc's random-access GOP of 32, an intra period (`--intraperiod`; 0 =
vvenc's default of one refresh per second; the benchmark uses 256 frames, as x264/x265 key frames every 250),
`--preset` (faster, fast, medium, slow, slower; `medium` by default, vvenc's own default), 10-bit internal coding
(vvenc's default: 8-bit input is coded at 10 bits, which codes better), `--qpa` (vvenc's XPSNR-driven perceptual
QP adaptation; on by default as in vvenc) and no HRD parameters in the SPS (`--hrdparameterspresent 0`: buffer
timing that no decoder needs, 10 bytes at 96×64). The colour conversion to 4:2:0 is PyAV's, as for x264/x265. vvenc
writes no version SEI; `annexb.strip_encoder_info` still runs on its output so no encoder text can be stored.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
import numpy as np

from disco_train.codec.annexb import strip_encoder_info
from disco_train.io.video import VideoError, check_frames

ENV = "VVENC_APP"
BINARY = "vvencapp"
PROJECT_APP = Path(__file__).resolve().parents[2] / "tools" / "vvenc" / "bin" / BINARY
"""Where `make vvenc` installs the encoder it builds from source: found without any setting."""
PRESETS = ("faster", "fast", "medium", "slow", "slower")
DEFAULT_PRESET = "medium"


def install_hint(setting: str = "") -> str:
    """How to get vvencapp: the project's build, then the places it is looked for."""
    where = f"{setting}=PATH, " if setting else ""
    return (f"build it with `make vvenc` (fraunhoferhhi/vvenc from source, ≈ 20 min on 2 cores; found without "
            f"settings), or give a vvencapp as {where}${ENV} or on PATH")


class VvencUnavailable(RuntimeError):
    """No vvencapp binary where the settings, $VVENC_APP, the project's build and PATH point."""


def find_app(app: str = "", setting: str = "") -> str:
    """The vvencapp to run: `app`, else $VVENC_APP, else the project's build (`make vvenc`), else `vvencapp` on
    PATH; raises VvencUnavailable saying how to build it. `setting`: the key `app` came from, for messages."""
    for source, candidate in ((setting or "app", app), (f"${ENV}", os.environ.get(ENV, ""))):
        if candidate:
            path = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
            if path is None or not os.access(path, os.X_OK):
                raise VvencUnavailable(f"{source}={candidate}: no executable vvencapp there; {install_hint(setting)}")
            return str(Path(path).resolve())
    if PROJECT_APP.is_file() and os.access(PROJECT_APP, os.X_OK):
        return str(PROJECT_APP)
    found = shutil.which(BINARY)
    if found is None:
        raise VvencUnavailable(f"H.266 (codec vvenc) needs vvenc's encoder and none was found; "
                               f"{install_hint(setting)}")
    return str(Path(found).resolve())


@lru_cache(maxsize=8)
def version(app: str) -> str:
    """The first line vvencapp prints about itself (e.g. 'vvencapp: VVenC, ... version 1.15.0-dev [...]')."""
    try:
        result = subprocess.run([app, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise VvencUnavailable(f"{app}: cannot run it ({err}); {install_hint()}") from None
    lines = (result.stdout + result.stderr).strip().splitlines()
    return lines[0].strip() if lines else "unknown"


def yuv420_bytes(frames: np.ndarray) -> bytes:
    """RGB frames -> raw 8-bit planar 4:2:0 (PyAV's conversion, the same as the x264/x265 path)."""
    return b"".join(av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p").to_ndarray().tobytes()
                    for f in frames)


def timeout_for(frames: np.ndarray, preset: str) -> float:
    """A generous bound on the encoding time: 60 s plus 20 µs per RGB sample (×4 for slow/slower). vvenc's medium
    preset on one thread took 2.1 s for 256×256×33 (6.5 M samples): 0.32 µs each, so this only stops a hung
    process."""
    per_sample = 20e-6 * (4 if preset in ("slow", "slower") else 1)
    return 60 + per_sample * frames.size


def encode(frames: np.ndarray, fps: float, qp: int, preset: str = DEFAULT_PRESET, app: str = "", qpa: bool = True,
           intra_period: int = 0, timeout: float | None = None) -> bytes:
    """RGB uint8 [T,H,W,3] (even sides) -> an H.266 Annex-B stream at constant QP `qp` (0-63). `intra_period`:
    frames between intra pictures (vvenc rounds it to its GOP of 32); 0 = vvenc's one refresh per second."""
    check_frames(frames)
    if not 0 <= qp <= 63:
        raise VideoError(f"vvenc qp {qp}: must be 0-63")
    if preset not in PRESETS:
        raise VideoError(f"vvenc preset {preset!r}: choose one of {PRESETS}")
    binary = find_app(app)
    rate = Fraction(fps).limit_denominator(1001)
    t, h, w = frames.shape[:3]
    with tempfile.TemporaryDirectory(prefix="vvenc-") as tmp:
        source, target = Path(tmp) / "in.yuv", Path(tmp) / "out.266"
        source.write_bytes(yuv420_bytes(frames))
        command = [binary, "-i", str(source), "-s", f"{w}x{h}", "-c", "yuv420", "--fps",
                   f"{rate.numerator}/{rate.denominator}", "-f", str(t), "--preset", preset, "-q", str(qp),
                   "--qpa", "1" if qpa else "0", "--hrdparameterspresent", "0", "-v", "1", "-o", str(target)]
        if intra_period:
            command[-4:-4] = ["--intraperiod", str(intra_period)]
        limit = timeout_for(frames, preset) if timeout is None else timeout
        code, output = run_tool(command, limit, f"vvenc did not finish {t} frames of {w}x{h} in {limit:.0f} s")
        if code != 0 or not target.is_file():
            raise VideoError(f"vvenc failed (exit {code}) on {t} frames of {w}x{h}: {output.strip()[-500:]}")
        data = strip_encoder_info(target.read_bytes(), "vvc")
    if not data:
        raise VideoError(f"{binary} wrote an empty stream for {t} frames of {w}x{h} (exit 0)")
    try:  # an external tool's output is stored only once it decodes to the frames it was given
        decode(data, expect=(t, h, w))
    except VideoError as err:
        raise VideoError(f"{binary} wrote a stream that does not decode to {t} frames of {w}x{h}: {err}") from None
    return data


def run_tool(command: list[str] | str, timeout: float, late: str) -> tuple[int, str]:
    """(exit code, stderr + stdout) of an external tool (a string: a shell command line) run in its own process
    group: on timeout the whole group is killed (a wrapper script's children too, never left running) and
    VideoError(`late`) raised."""
    import signal

    with subprocess.Popen(command, shell=isinstance(command, str), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, errors="replace", start_new_session=True) as process:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise VideoError(late) from None
    return process.returncode, err + out


def decode(data: bytes, expect: tuple[int, int, int] | None = None) -> np.ndarray:
    """H.266 Annex-B stream -> RGB uint8 [T,H,W,3] (PyAV's VVC decoder; `expect` as in standard.decode_bitstream).
    Corrupt or empty streams raise VideoError."""
    from disco_train.codec.standard import decode_bitstream

    return decode_bitstream(data, "vvenc", expect)
