"""The benchmark's `restore` method (issue #24): a standard codec at a low rate + an IC-LoRA restoration decoder,
given as an export folder or a LoRA file (diffusers, ComfyUI or LTX-2 trainer keys) on a base recipe."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from disco_train.__main__ import main
from disco_train.benchmark import restore
from disco_train.benchmark.disco import restore_export
from disco_train.config import ConfigError
from disco_train.config.recipe import resolve

VIDEO_TARGETS = ["attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "ff.net.0.proj", "ff.net.2"]


def config(*overrides):
    cfg, _, _ = resolve(["recipe=benchmark_restore_debug", "refs=.", *overrides])
    return cfg


@pytest.mark.parametrize("argv, message", [
    (["restore.lora="], "restore.lora: the restore method needs restore.lora="),
    (["restore.codec=x264"], "restore.codec: one of ('x265', 'vvenc')"),
    (["restore.qp=[52]"], "restore.qp: x265 QPs in 0-51"),
    (["restore.codec=vvenc", "restore.qp=[63, 63]"], "restore.qp: duplicate values"),
])
def test_bad_restore_settings_exit_2_with_the_key(argv, message, capsys):
    assert main(["benchmark", "recipe=benchmark_restore_debug", *argv]) == 2
    assert message in capsys.readouterr().err


def test_a_missing_lora_file_is_named_with_where_to_put_it_and_its_base(tmp_path, capsys):
    missing = tmp_path / "ltx-2.5-22b-ic-lora-decompression-0.9.safetensors"
    with pytest.raises(ConfigError, match=r"restore\.lora=.*decompression-0\.9\.safetensors: no such export folder "
                                          r"or LoRA file.*LTX-2\.5-22b-IC-LoRA-Decompression.*checkpoints/ltx-2\.5"):
        restore_export(config(f"restore.lora={missing}"))
    argv = ["weights", "recipe=benchmark_restore_debug", f"restore.lora={missing}", "metrics.names=psnr"]
    assert main(argv) == 2
    missing_rows = [r for r in capsys.readouterr().out.splitlines() if "MISSING" in r]
    assert missing_rows[0].startswith(f"| restore.lora | IC-LoRA restoration decoder | {missing} |")
    # the base of restore.base=disco_lora_ltx25: the LTX-2.5 transformer, VAE, connectors, Gemma
    assert sum(r.startswith("| restore.base model.path |") for r in missing_rows) == 3, missing_rows


def _trainer_lora(path, metadata=None):
    """An LTX-2 trainer / ComfyUI-layout IC-LoRA of the tiny LTX-2 (`diffusion_model.` keys, no alpha) that also
    adapts the audio stream's self-attention."""
    from disco_train.decoder import ltx2
    from disco_train.decoder.lora import add_lora, lora_state_dict

    model = ltx2.tiny_transformer(0)
    add_lora(model, 4, 4, 0.0, VIDEO_TARGETS + ["audio_attn1.to_q"])
    torch.manual_seed(3)
    state = {f"diffusion_model.{k}": v.normal_(0, 0.1).contiguous() for k, v in lora_state_dict(model).items()}
    save_file(state, str(path), metadata=metadata)
    return {k[len("diffusion_model."):]: v for k, v in state.items()}


def test_a_trainer_lora_loads_on_its_base_without_its_audio_keys(tmp_path):
    from disco_train.decoder.decoder import DiscoDecoder
    from disco_train.decoder.lora import load_lora_state_dict, lora_state_dict

    path = tmp_path / "ic-lora.safetensors"
    written = _trainer_lora(path)
    state, rank, alpha = restore.read_lora(path)
    assert (rank, alpha) == (4, 4.0)
    assert set(state) == {k for k in written if "audio" not in k} and len(state) == 2 * 2 * len(VIDEO_TARGETS)
    r = config(f"restore.lora={path}", "restore.base=disco_lora_ltx2_debug").restore
    decoder = DiscoDecoder(restore.lora_file_config(r, path, state, rank, alpha))
    load_lora_state_dict(decoder.transformer, state)  # every key of the file's video stream, nothing else
    assert set(lora_state_dict(decoder.transformer)) == set(state)
    assert all(torch.equal(v, state[k]) for k, v in lora_state_dict(decoder.transformer).items())


def test_a_scaled_reference_lora_is_refused(tmp_path):
    path = tmp_path / "upscaler.safetensors"
    _trainer_lora(path, {"reference_downscale_factor": "2"})
    with pytest.raises(ConfigError, match="reference_downscale_factor=2"):
        restore.read_lora(path)


def test_the_rate_is_the_codecs_stream_and_the_text_when_sent():
    from disco_train.codec.sender import send_video
    from disco_train.config.send import SendSettings

    frames = np.random.default_rng(0).integers(0, 255, (9, 64, 64, 3), dtype=np.uint8)
    container = send_video(frames, 25.0, "a caption", SendSettings(ds=1, dt=1, codec="x265", qp=45))
    video, text = (next(s.bits for s in container.streams if s.kind == k) for k in ("video", "text"))
    rate, extra = restore.bits(container, "a caption")
    assert rate == video + text and extra["overhead_bits"] == 8 * container.overhead_bytes
    assert restore.bits(container, "")[0] == video
    r = config("restore.text=ENHANCE").restore
    assert [restore.text_of(r, "cap") for r in (config().restore, config("restore.text=none").restore, r)] == \
        ["cap", "", "ENHANCE"]


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_restore_debug_runs_with_an_export_folder_and_with_its_lora_file(tmp_path, capsys):
    """benchmark_restore_debug on the demo videos, the debug export standing in for the IC-LoRA: as a folder, and
    as its LoRA file on the base recipe disco_lora_debug (the same decoder, so the same reconstructions). The rate
    of a point is x265's at the same QP plus the caption's."""
    from datamodules.demo import make_demo
    from disco_train.train.export import export
    from test_export import CODEC, make_run

    videos = make_demo(tmp_path / "videos", videos=4, seed=1)
    _, ckpt = make_run(tmp_path)
    folder = export(ckpt, tmp_path / "export", codec=CODEC)
    runs = {}
    for name, lora, extra in (("folder", folder, []),
                              ("file", folder / "pytorch_lora_weights.safetensors", ["restore.base=disco_lora_debug"])):
        out = tmp_path / f"out_{name}"
        argv = ["benchmark", "recipe=benchmark_restore_debug", f"refs={videos}", f"restore.lora={lora}", f"out={out}",
                f"disco.captions={videos / 'captions.csv'}", *extra]
        assert main(argv) == 0 and "15 cells computed" in capsys.readouterr().out
        runs[name] = {(r["video"], r["method"], r["point"]): r for r in _rows(out / "results.csv")}
    assert main(argv) == 0 and "0 cells computed, 15 from the cache" in capsys.readouterr().out
    assert main([*argv, f"restore.lora={tmp_path / 'gone.safetensors'}"]) == 2
    assert "gone.safetensors: no such export folder or LoRA file" in capsys.readouterr().err
    restored = {k: r for k, r in runs["folder"].items() if k[1] == "restore"}
    assert {k[2] for k in restored} == {"qp45", "qp37"} and len(restored) == 6
    for (video, _, point), r in restored.items():
        assert int(r["video_bits"]) == int(runs["folder"][video, "x265", point]["bits"])
        assert int(r["bits"]) == int(r["video_bits"]) + int(r["text_bits"])
        assert runs["file"][video, "restore", point]["psnr"] == r["psnr"]
