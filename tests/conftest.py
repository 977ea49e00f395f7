"""Shared fixtures: tiny real models, real mp4 videos made with PyAV, and demo shards. No network."""

from __future__ import annotations

import os
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest

from disco_train.config.send import SendSettings

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["HF_HUB_OFFLINE"] = "1"  # no test reaches the network: Hub repo ids resolve from a cache the test builds

ROOT = Path(__file__).resolve().parent.parent
SESSION_ENV = dict(os.environ)
"""The environment at the start of the session, for child processes that must not see what earlier tests set."""


def _library_log_handlers_on_the_real_stderr():
    """diffusers and transformers give their root logger a `StreamHandler()` bound to whatever `sys.stderr` is when
    they are first imported. Imported first inside a test using capsys, that is the test's capture stream, closed
    when the test ends: every later library warning then prints '--- Logging error ---' into the next captured
    stderr, so a test's output would depend on which test imported diffusers first. Bind them to the process's own
    stderr (file descriptor 2, which pytest still captures per test) once, before any test runs."""
    import logging
    import sys

    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    for library in (diffusers_logging, transformers_logging):
        library.get_logger()  # adds the library's default handler if it has none yet
        for handler in library._get_library_root_logger().handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(sys.__stderr__)


_library_log_handlers_on_the_real_stderr()


@pytest.fixture(autouse=True)
def _restore_torch_globals():
    """Every test starts with the process's torch thread count and default dtype and leaves them so: a test (or a
    bench helper it calls) that pins 1 thread or float64 must not change what the next test computes."""
    import torch

    threads, dtype = torch.get_num_threads(), torch.get_default_dtype()
    yield
    torch.set_num_threads(threads)
    torch.set_default_dtype(dtype)


def make_video(path: Path, frames: int, height: int, width: int, fps: float = 24.0, codec: str = "libx264",
               seed: int = 0) -> np.ndarray:
    """A real mp4 of a moving gradient (smooth, so the codec keeps it close); returns the frames written."""
    from disco_train.io.video import write_video

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = rng.integers(0, 255, size=3)
    video = np.stack([np.stack([(xx * 3 + t * 4 + base[c]) % 256 for c in range(3)], -1) for t in range(frames)])
    video = (video // 2 + (yy[None, ..., None] % 64)).astype(np.uint8)
    write_video(path, video, fps, codec=codec, crf=18)
    return video


SEND_KEYS = {f.name for f in fields(SendSettings)}
"""The keys of `SendSettings` (prepare's and encode's `send.*`), which the tests' helpers take flat."""


def prepare_config(**keys):
    """A PrepareConfig of flat keywords, SEND_KEYS going into its send section (or into `send`, when given)."""
    from disco_train.config import PrepareConfig

    flat = {k: keys.pop(k) for k in list(keys) if k in SEND_KEYS}
    send = replace(keys.pop("send", SendSettings()), **flat)
    return PrepareConfig(**keys, send=send)


def send_keys(keys: dict) -> list[str]:
    """key=value tokens of a command with a send section, SEND_KEYS under `send.`."""
    return [f"{'send.' if k in SEND_KEYS else ''}{k}={v}" for k, v in keys.items()]


DEMO_SHARDS = """
import sys
from datamodules.demo import make_demo
from datamodules.prepare import run
from disco_train.config import PrepareConfig
from disco_train.config.send import SendSettings
root = sys.argv[1]
videos = make_demo(root + "/videos", videos=6, seed=1)
run(PrepareConfig(input=str(videos), output=root + "/shards", captions=str(videos / "captions.csv"), frames=17,
                  height=64, width=64, max_clips_per_video=2, send=SendSettings(codec="x264", crf=30), shard_size=4),
    log=lambda *_: None)
"""


@pytest.fixture(scope="session")
def demo_shards(tmp_path_factory) -> Path:
    """Demo videos -> shards with the project's own preprocessing (64×64×17 clips, x264), made in a fresh process:
    libx264 (through PyAV) codes the first clip after other encodes in a process differently from run to run
    (same input planes; measured: 3 target streams in 8 prepare runs in one process, 1 in fresh processes), and
    the golden losses are of the fresh-process shards, whichever tests ran before."""
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("demo")
    subprocess.run([sys.executable, "-c", DEMO_SHARDS, str(root)], cwd=ROOT, check=True, timeout=600)
    return root / "shards"


@pytest.fixture(scope="session")
def stage_files(tmp_path_factory) -> dict:
    """Weights of the real sketch generator and captioner, built in code once per session (see tests/stages.py)."""
    from stages import build_llava, sketch_weights

    root = tmp_path_factory.mktemp("stage-weights")
    return {"sketch_weights": str(sketch_weights(root / "sketch")), "captioner": str(build_llava(root / "llava"))}


@pytest.fixture
def stage_weights(stage_files, tmp_path, monkeypatch) -> dict:
    """PrepareConfig keys of every optional stage's weights: the real sketch generator and captioner, DWPose on
    rtmlib stand-ins, and DCVC-RT's synthetic test weights."""
    from stages import install_rtmlib

    return {**stage_files, "pose_dir": str(install_rtmlib(monkeypatch, tmp_path / "dwpose")),
            "dcvc_rt_dir": "synthetic"}


def debug_overrides(shards: Path, out: Path, steps: int = 2) -> list[str]:
    return ["recipe=disco_lora_debug", f"data.train_shards={shards}/train-*.tar", f"output_dir={out}",
            f"trainer.max_steps={steps}", "data.num_workers=0", "logger.kind=none", "name=test"]
