"""What a newcomer meets first, piece by piece (the README walk runs the journeys whole): evaluate's pairing by
stem, the step progress bar of a resumed run, the synthetic sketch and pose stand-ins of the demo, `encode size=`,
the vvenc build the project finds by itself, the smoke benchmark without vvenc, and a run's closing lines."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import ROOT
from disco_train.io.video import write_lossless, write_png_frames, write_video


def _clip(seed: int = 0, frames: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (frames, 16, 16, 3), dtype=np.uint8)


def test_evaluate_pairs_by_stem_whatever_the_containers(tmp_path, capsys):
    from disco_train.metrics.evaluate import main

    refs, recons = tmp_path / "refs", tmp_path / "recons"
    for d in (refs, recons):
        d.mkdir()
    for i in range(2):
        write_video(refs / f"v{i}.mp4", _clip(i), 25.0)
    (refs / "captions.csv").write_text("video,caption\n")  # not a video: ignored
    write_lossless(recons / "v0.mkv", _clip(0), 25.0)
    write_png_frames(recons / "v1", _clip(1))  # decode's PNG folder
    assert main([f"refs={refs}", f"recons={recons}", f"out={tmp_path / 'e.csv'}"]) == 0
    out = capsys.readouterr().out
    assert "evaluated 2 video(s)" in out and "psnr=" in out and "ssim=" in out  # the default needs no weights
    assert "also available: metrics.names=lpips," in out
    write_video(recons / "v0.mp4", _clip(0), 25.0)  # two reconstructions named v0: which one is meant?
    assert main([f"refs={refs}", f"recons={recons}", f"out={tmp_path / 'e.csv'}"]) == 2
    assert "v0: v0.mkv, v0.mp4; keep one, or pick one with ext=" in capsys.readouterr().err


def test_the_progress_bar_of_a_resumed_run_counts_steps_to_max_steps():
    from tqdm import tqdm

    from disco_train.train.callbacks import StepProgressBar

    bar = StepProgressBar()
    bar._train_progress_bar = tqdm(total=None, disable=True)  # what Lightning shows on a resume mid-epoch: 21/?
    bar._to_steps(SimpleNamespace(max_steps=40, global_step=21, current_epoch=0))
    assert (bar.train_progress_bar.total, bar.train_progress_bar.n, bar.train_progress_bar.initial) == (40, 21, 21)


def test_synthetic_sketch_and_pose_run_without_weights():
    from disco_train.modalities.extract import PoseExtractor, SketchExtractor

    clip = np.full((3, 32, 48, 3), 20, np.uint8)
    clip[1:, 8:16, 10:30] = (220, 40, 40)  # a red box in frames 1 and 2; frame 0 is flat
    sketches = SketchExtractor("synthetic")(clip)
    assert sketches.shape == clip.shape and sketches.dtype == np.uint8
    assert np.array_equal(sketches, SketchExtractor("synthetic")(clip))  # seeded: the same generator every time
    poses = PoseExtractor("synthetic")(clip)
    assert [len(k) for k in poses.keypoints] == [0, 1, 1]
    points = poses.keypoints[1][0]
    assert points[:, 0].min() == 10 and points[:, 0].max() == 29 and points[:, 1].min() >= 8
    assert points[:, 1].max() <= 15


def test_encode_size_is_wxh_or_the_exports_training_size(monkeypatch):
    from disco_train.codec.trained import clip_size
    from disco_train.config import ConfigError
    from disco_train.decoder import export

    assert clip_size("32x24") == (32, 24)
    from types import SimpleNamespace

    manifests = {"exports/x": SimpleNamespace(config={"data": {"height": 64, "width": 96}})}  # what disco.json records
    monkeypatch.setattr(export, "read_manifest", lambda folder, verify=True: manifests[folder])
    assert clip_size("export", "exports/x") == (96, 64)
    for bad in ("32", "0x16", "axb"):
        with pytest.raises(ConfigError, match=f"size={bad}: expected WxH"):
            clip_size(bad)
    with pytest.raises(ConfigError, match="size=export: needs export="):
        clip_size("export")


def test_encode_size_scales_the_video_before_sending(tmp_path, capsys):
    from disco_train.codec.cli import encode_main

    write_video(tmp_path / "v.mp4", np.random.default_rng(0).integers(0, 255, (3, 40, 48, 3), np.uint8), 25.0)
    assert encode_main([str(tmp_path / "v.mp4"), str(tmp_path / "v.disco"), "caption=x", "send.codec=x264", "send.ds=2",
                        "size=64x32"]) == 0
    assert "3 frames 64×32" in capsys.readouterr().out


def test_make_vvenc_installs_where_the_project_looks_and_names_its_source():
    from disco_train.codec import vvenc

    makefile = (ROOT / "Makefile").read_text()
    folder = re.search(r"^VVENC_DIR := (\S+)$", makefile, re.M)[1]
    assert ROOT / folder / "bin" / "vvencapp" == vvenc.PROJECT_APP
    commit = re.search(r"^VVENC_COMMIT := ([0-9a-f]{40})$", makefile, re.M)[1]
    assert commit in (ROOT / "docs" / "benchmark.md").read_text()
    assert "VVENC_SRC" in makefile and "https://github.com/fraunhoferhhi/vvenc/archive/" in makefile


def test_only_debug_recipes_may_skip_a_missing_encoder():
    from disco_train.config.recipe import available_recipes, resolve

    skipping = [n for n in available_recipes(task="benchmark") if resolve([f"recipe={n}"])[0].skip_unavailable]
    assert "benchmark_debug" in skipping and all(n.endswith("_debug") for n in skipping)


def test_the_smoke_benchmark_without_vvenc_skips_it_and_says_how_to_build_it(monkeypatch):
    from disco_train.benchmark.runner import skip_unavailable
    from disco_train.codec import vvenc
    from disco_train.config.recipe import resolve

    def missing(app="", setting=""):
        raise vvenc.VvencUnavailable(f"none was found; {vvenc.install_hint(setting)}")

    monkeypatch.setattr(vvenc, "find_app", missing)
    logged = []
    cfg = resolve(["recipe=benchmark_debug"])[0]
    notes = skip_unavailable(cfg, logged.append)
    assert "vvenc" not in cfg.method_list and cfg.anchor == "x265"
    assert len(notes) == 1 and "`make vvenc`" in notes[0] and logged == [f"benchmark: {notes[0]}"]
    strict = resolve(["recipe=benchmark_debug", "skip_unavailable=false"])[0]
    assert skip_unavailable(strict, logged.append) == [] and "vvenc" in strict.method_list


def test_a_finished_run_names_its_folder_and_the_next_commands(tmp_path):
    from disco_train.config.recipe import resolve
    from disco_train.train.next_steps import next_commands, read_steps, write_summary

    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "index.jsonl").write_text('{"video": "videos/clip.mp4", "shard": "train-000000.tar"}\n')
    (tmp_path / "captions.csv").write_text("video,caption\nclip.mp4,a red car\n")
    (shards / "prepare_config.json").write_text(f'{{"captions": "{tmp_path / "captions.csv"}", "caption_key": '
                                                f'"video", "caption_column": "caption", "pose_dir": "synthetic"}}')
    cfg = resolve(["recipe=disco_lora_pose_debug", "name=r", f"data.train_shards={shards}/train-*.tar"])[0]
    text = next_commands(cfg, Path("runs/r"))
    assert "run folder: runs/r" in text
    assert "export ckpt=runs/r/checkpoints/last.ckpt out=exports/r" in text
    assert "encode videos/clip.mp4 runs/r/coded/clip.disco 'caption=a red car' export=exports/r pose=auto " \
           "send.pose_dir=synthetic" in text
    assert "decode runs/r/coded/clip.disco runs/r/recons/clip.mkv export=exports/r" in text
    write_summary(tmp_path, 12, [1.5, 1.2])
    assert read_steps(tmp_path) == "12" and read_steps(tmp_path / "none") is None

