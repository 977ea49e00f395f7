"""A `.disco` file is network input: hostile bytes end in a DecodeError (exit code 2 from `decode`) within bounded
time and memory, before any model is built. Each bomb below is a reproduction of a file that used to hang, eat
gigabytes or reach a traceback; the mutation fuzz feeds the receiver files whose CRCs were fixed up after the
mutation, so the bytes reach the stream decoders instead of stopping at the container's checksums."""

from __future__ import annotations

import json
import lzma
import random
import struct
import subprocess
import sys
import time
import tracemalloc
import zlib
from fractions import Fraction

import numpy as np
import pytest

from conftest import ROOT, SESSION_ENV
from disco_train.codec import container as C
from disco_train.codec.receiver import receive
from disco_train.codec.sender import send_video
from disco_train.config.send import SendSettings
from disco_train.io.errors import DecodeError
from disco_train.modalities import pose as P

SECONDS = 10.0  # per bomb, measured in the child process, including nothing but decoding
RSS_MB = 1500   # the decode child's peak resident memory (torch + PyAV + diffusers imported: ~600 MB)


def raw_container(g: tuple, streams: list[tuple], pattern: tuple | None = None) -> bytes:
    """A container with valid CRCs whatever the fields say (no sanity checks: what an attacker can write).
    g = (frames, h, w, coded_frames, coded_h, coded_w, fps_num, fps_den); streams = (kind_id, codec_id, ds, dt,
    payload); pattern = (stream, unit, a, b) of a version 2 file, None for version 1."""
    head = C.HEADER.pack(C.MAGIC, 1 if pattern is None else 2, 0, len(streams), *g)
    head += b"" if pattern is None else C.PATTERN.pack(*pattern)
    table = b"".join(C.ENTRY.pack(k, c, ds, dt, len(p), zlib.crc32(p)) for k, c, ds, dt, p in streams)
    return head + table + C.CRC.pack(zlib.crc32(head + table)) + b"".join(s[-1] for s in streams)


KIND, CODEC = {v: k for k, v in C.KINDS.items()}, {v: k for k, v in C.CODECS.items()}
SMALL = (9, 64, 64, 9, 64, 64, 24, 1)


def _zlib_bomb(size: int = 1 << 30) -> bytes:
    """~4.7 MB of zlib that inflates to 1 GiB of zeros, made without holding the 1 GiB."""
    z, chunk = zlib.compressobj(1), bytes(1 << 24)
    return b"".join([z.compress(chunk) for _ in range(size >> 24)] + [z.flush()])


def _pose_bomb(frames: int = 20_000_000) -> bytes:
    """5.9 KB of pose stream declaring 20M frames of nobody (a 40 MB body)."""
    body = struct.pack("<HHI", 64, 64, frames) + bytes(2 * frames)
    payload = lzma.compress(body, format=lzma.FORMAT_RAW, filters=P._LZMA_FILTERS)
    return P._HEADER.pack(P.MAGIC, P.FORMAT_VERSION, len(body), zlib.crc32(body)) + payload


def _skip_frames_x264(side: int = 4096, frames: int = 40) -> bytes:
    """A small x264 stream of huge grey skip frames (~40 KB for 40 frames of 4096², 1 GB once decoded)."""
    import av

    ctx = av.CodecContext.create("libx264", "w")
    ctx.width = ctx.height = side
    ctx.pix_fmt, ctx.framerate, ctx.time_base = "yuv420p", Fraction(25), Fraction(1, 25)
    ctx.options = {"preset": "ultrafast", "crf": "51"}
    frame = av.VideoFrame(side, side, "yuv420p")
    for plane in frame.planes:
        plane.update(bytes(plane.buffer_size))
    out = bytearray()
    for i in range(frames):
        frame.pts = i
        out += b"".join(bytes(p) for p in ctx.encode(frame))
    out += b"".join(bytes(p) for p in ctx.encode(None))
    return bytes(out)


def _dcvc_stream(frames: int, side: int = 16) -> bytes:
    from disco_train.dcvc_rt import api

    rng = np.random.default_rng(0)
    return api.encode_video(rng.integers(0, 255, (frames, side, side, 3), dtype=np.uint8), 40,
                            codec=api.synthetic_codec())


def _patch_dcvc_size(stream: bytes, height: int, width: int) -> bytes:
    from disco_train.dcvc_rt import bitstream as bs

    head = bytearray(stream[:bs._HEADER.size])
    magic, version, kind, _, _, n, threads = bs._HEADER.unpack_from(head)
    head = bs._HEADER.pack(magic, version, kind, height, width, n, threads)
    return head + struct.pack("<I", zlib.crc32(head)) + stream[bs.HEADER_BYTES:]


def _video(side: int = 64) -> tuple:
    """A valid video stream of the SMALL geometry (9 frames of 64×64, ds=dt=1): bombs elsewhere get past it; or
    one frame of side × side."""
    from disco_train.codec.standard import encode_bitstream

    shape = (9, 64, 64, 3) if side == 64 else (1, side, side, 3)
    frames = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    return KIND["video"], CODEC["x264"], 1, 1, encode_bitstream(frames, 24.0, "x264", crf=40)


TEXT = (KIND["text"], CODEC["zlib"], 1, 1)
BOMBS = {  # name -> (builder of the file's bytes, a phrase its error must contain)
    "text_1GiB": (lambda: raw_container(SMALL, [(*TEXT, _zlib_bomb()), _video()]), "inflates to more than"),
    "pose_20M_frames": (lambda: raw_container(SMALL, [_video(), (KIND["pose"], CODEC["lzma"], 1, 1, _pose_bomb())]),
                        "exceeds the"),
    "header_65504": (lambda: raw_container((1, 65504, 65504, 1, 65504, 65504, 24, 1),
                                           [(*TEXT, zlib.compress(b"x"))]), "side limit"),
    "coded_frames_4e9": (lambda: raw_container((9, 64, 64, 4_000_000_000, 64, 64, 24, 1), [(*TEXT, b"")]),
                         "is not the 8k+1"),
    "x264_4096_skip": (lambda: raw_container(SMALL, [(KIND["video"], CODEC["x264"], 1, 1, _skip_frames_x264())]),
                       "the container declares 64×64"),
    "dcvc_claims_2048": (lambda: raw_container(SMALL, [(KIND["video"], CODEC["dcvc_rt"], 4, 8,
                                                        _patch_dcvc_size(_dcvc_stream(1), 2048, 2048))]),
                         "the container declares"),
    "dcvc_40_frames": (lambda: raw_container((1, 16, 16, 1, 32, 32, 24, 1),
                                             [(KIND["video"], CODEC["dcvc_rt"], 2, 1, _dcvc_stream(40))]),
                       "holds 40 frames"),
    "pattern_unit_7": (lambda: raw_container(SMALL, [_video()], pattern=(1, 7, 1, 3)), "corrupt stream pattern"),
}
LONGEST = (2_097_145, 32, 32, 2_097_145, 32, 32, 24, 1)  # 2^31 pixels / 32² = 2,097,152 frames: the most allowed
SELECTED_BOMBS = {  # version 2 files read with their own pattern: the plan over every frame stays bounded
    "selected_2M_frames_by_token": (lambda: raw_container(LONGEST, [_video(32)], pattern=(1, 0, 1, 3)),
                                    "the container declares 524281"),
    "selected_2M_frames_by_frame": (lambda: raw_container(LONGEST, [_video(32)], pattern=(1, 1, 65535, 1)),
                                    "the container declares 2097113"),
}


DRIVER = """
import json, resource, sys, time
from disco_train.__main__ import main

def peak_mb():
    # VmHWM is this process image's own peak. ru_maxrss is not: Linux carries the peak of the image replaced by
    # execve into it, and subprocess forks (or vforks) the pytest process, ~3 GB deep into the slow suite.
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20 if sys.platform == "darwin" else 1024)

results = {}
for name, path in json.loads(sys.argv[1]).items():
    t = time.perf_counter()
    rc = main(["decode", path, "", "export=" + sys.argv[2], "dcvc_rt_dir=synthetic"])
    results[name] = [rc, time.perf_counter() - t, peak_mb()]
results["rss_mb"] = peak_mb()
print(json.dumps(results))
"""


@pytest.mark.slow
def test_bombs_end_with_exit_2_in_bounded_time_and_memory(tmp_path):
    from test_export import CODEC as TRAINED, make_run

    from disco_train.train.export import export

    _, ckpt = make_run(tmp_path, "condition.mode=interleave", "condition.aux=pose")  # a decoder that reads poses
    out = export(ckpt, tmp_path / "export", codec=TRAINED)
    files, phrases = {}, {}
    for name, (build, phrase) in BOMBS.items():
        (tmp_path / f"{name}.disco").write_bytes(build())
        files[name], phrases[name] = str(tmp_path / f"{name}.disco"), phrase
    # The environment the suite started with: a user's fresh process, whatever earlier tests set
    result = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(files), str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=600, env=SESSION_ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    for name, phrase in phrases.items():
        rc, seconds, _ = report[name]  # the third: the child's peak RSS (MB) after this bomb
        assert rc == 2 and seconds < SECONDS, (name, rc, seconds)
        assert phrase in result.stderr, (name, phrase)
    at = result.stderr.find("Traceback")
    assert at < 0, result.stderr[at:at + 4000]
    assert report["rss_mb"] < RSS_MB, json.dumps(report)


@pytest.mark.parametrize("name", ["text_1GiB", "pose_20M_frames", "header_65504", "coded_frames_4e9",
                                  "dcvc_claims_2048", "pattern_unit_7", *SELECTED_BOMBS])
def test_each_bomb_is_a_decode_error_fast(name):
    build, phrase = {**BOMBS, **SELECTED_BOMBS}[name]
    data = build()
    tracemalloc.start()
    t = time.perf_counter()
    with pytest.raises(DecodeError, match=phrase.replace("+", r"\+")):
        c = C.unpack(data)
        receive(c, "forward", "pose" if "pose" in name else "none", video_weights="synthetic", pattern=c.pattern)
    seconds = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert seconds < SECONDS and peak < 256 << 20, (seconds, peak)


# ---- mutation fuzz ----------------------------------------------------------------------------------------------
def _base(pattern: C.Pattern = C.FULL) -> C.Container:
    """A real file of text, video and pose streams: full (version 1) or selected (version 2, `pattern`)."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:40, 0:56]
    frames = np.stack([((xx * 5 + yy * 3 + 4 * t) % 256)[..., None].repeat(3, -1) for t in range(11)])
    frames = (frames + rng.integers(0, 20, frames.shape)).clip(0, 255).astype(np.uint8)
    kps = [rng.uniform(0, 40, (1, P.NUM_KEYPOINTS, 2)).astype(np.float32) for _ in range(11)]
    poses = P.PoseSequence(kps, [np.ones((1, P.NUM_KEYPOINTS), np.float32)] * 11, (40, 56))
    keys = {} if pattern == C.FULL else {"stream": "selected", "interleave_unit": pattern.unit,
                                         "ratio": f"{pattern.a}:{pattern.b}"}
    return send_video(frames, 24.0, "a gradient", SendSettings(ds=2, dt=2, codec="x264", crf=30, **keys),
                      poses=poses)


BASES = [C.FULL, C.Pattern("selected", "latent_frame", 1, 1), C.Pattern("selected", "token", 1, 3)]


def _fields(c: C.Container) -> tuple[list[int], list[list], list[int] | None]:
    g = c.geometry
    head = [g.frames, g.height, g.width, g.coded_frames, g.coded_height, g.coded_width, g.fps.numerator,
            g.fps.denominator]
    pattern = None if c.pattern == C.FULL else [1, C.INTERLEAVE_UNITS.index(c.pattern.unit), c.pattern.a, c.pattern.b]
    return head, [[KIND[s.kind], CODEC[s.codec], s.ds, s.dt, bytearray(s.data)] for s in c.streams], pattern


def _mutant(rng: random.Random, base: C.Container) -> bytes:
    head, streams, pattern = _fields(base)
    for _ in range(rng.randint(1, 3)):
        what = rng.random()
        if pattern and what < 0.1:  # a pattern field of a version 2 file
            i = rng.randrange(4)
            pattern[i] = rng.choice([0, 1, 2, 3, 7, 255, 2**16 - 1, pattern[i] + 1])
        elif what < 0.25:  # a header field
            i = rng.randrange(len(head))
            head[i] = rng.choice([0, 1, head[i] + 1, head[i] * 2, head[i] // 2, 2**16 - 1, rng.randrange(2**16)])
        elif what < 0.4:  # a stream table field
            s = rng.choice(streams)
            j = rng.randrange(4)
            s[j] = rng.choice([0, 1, 2, 3, 4, 5, 7, 255, s[j] + 1])
        else:  # payload bytes: flips, truncation, insertion
            payload = rng.choice(streams)[4]
            if payload and rng.random() < 0.6:
                for _ in range(rng.randint(1, 8)):
                    payload[rng.randrange(len(payload))] = rng.randrange(256)
            elif payload:
                del payload[rng.randrange(len(payload)):]
            else:
                payload += bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    head = [min(max(v, 0), 2**32 - 1) if i in (0, 3, 6, 7) else min(max(v, 0), 2**16 - 1) for i, v in enumerate(head)]
    streams = [[min(max(v, 0), 255) for v in s[:4]] + [bytes(s[4])] for s in streams]
    pattern = pattern and [min(v, 255) for v in pattern[:2]] + pattern[2:]
    return raw_container(tuple(head), [tuple(s) for s in streams], pattern and tuple(pattern))


def _fuzz(count: int, seed: int) -> dict[str, int]:
    from disco_train.dcvc_rt import api

    api.synthetic_codec()  # built once (~2 s) before the clock runs: a mutant may name dcvc_rt
    bases, rng, outcomes = [_base(p) for p in BASES], random.Random(seed), {"decoded": 0, "rejected": 0}
    for i in range(count):
        data = _mutant(rng, bases[i % len(bases)])
        t = time.perf_counter()
        try:
            c = C.unpack(data)
            got = receive(c, "forward", "pose" if c.get("pose") else "none", video_weights="synthetic",
                          sketch_weights="synthetic", pattern=c.pattern)
            assert got["cond"].shape == (c.geometry.coded_frames, c.geometry.coded_height, c.geometry.coded_width, 3)
            outcomes["decoded"] += 1
        except DecodeError:
            outcomes["rejected"] += 1
        assert time.perf_counter() - t < 2.0, f"mutant {i} (seed {seed}) took too long"
    return outcomes


def test_mutated_files_end_in_decode_errors_fast():
    outcomes = _fuzz(120, seed=0)
    assert outcomes["rejected"] > 60 and sum(outcomes.values()) == 120, outcomes


@pytest.mark.slow
def test_a_thousand_mutated_files():
    tracemalloc.start()
    outcomes = _fuzz(1000, seed=1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert sum(outcomes.values()) == 1000 and outcomes["rejected"] > 500 and peak < 256 << 20, (outcomes, peak)
