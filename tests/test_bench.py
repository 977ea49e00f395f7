"""bench/ scripts: the analytic FLOP count against a direct count, and each new script's tiny mode end to end.

The FLOP test is exact: FlopCounterMode counts the same matmuls (mm/addmm/bmm, 2 FLOPs per multiply-add)
that bench/flops.py derives from the config, with SDPA forced to the math backend so attention is plain bmm
and autograd only computes the gradients that are needed — the model count of the docstring.
"""

import importlib.util
import re
import sys

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))

import flops  # noqa: E402

from disco_train.decoder import conditioning as C  # noqa: E402
from disco_train.decoder import models  # noqa: E402
from disco_train.decoder.lora import add_lora  # noqa: E402

ATTN = ("to_q", "to_k", "to_v", "to_out.0")
ATTN_FFN = ATTN + ("ff.net.0.proj", "ff.net.2")


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def direct_count(targets, rank, grid=(3, 2, 2), text=32, batch=2):
    """(forward, forward+backward) FLOPs of a tiny LoRA step, counted by torch."""
    model = models.tiny_transformer()
    model.requires_grad_(False)
    add_lora(model, rank, rank, 0.0, list(targets))
    n = grid[0] * grid[1] * grid[2]
    tokens = torch.randn(batch, 2 * n, models.TINY_TRANSFORMER["in_channels"])
    kwargs = dict(hidden_states=tokens, encoder_hidden_states=torch.randn(batch, text, models.TINY_TEXT_DIM),
                  timestep=torch.cat([torch.zeros(batch, n), torch.full((batch, n), 500.0)], 1),
                  encoder_attention_mask=torch.ones(batch, text, dtype=torch.long),
                  video_coords=torch.cat([C.latent_coords(*grid, 25.0, batch)] * 2, 2), return_dict=False)
    with sdpa_kernel(SDPBackend.MATH):
        with FlopCounterMode(display=False) as fwd, torch.no_grad():
            model(**kwargs)
        with FlopCounterMode(display=False) as step:
            model(**kwargs)[0][:, -n:].pow(2).mean().backward()
    return fwd.get_total_flops(), step.get_total_flops(), flops.Shapes(2 * n, text, batch)


@pytest.mark.parametrize("targets,rank", [(ATTN, 8), (ATTN_FFN, 4), ((), 0)])
def test_flops_match_direct_count(targets, rank):
    if rank == 0:  # no adapter: nothing needs a gradient, so backward is empty; count the forward only
        fwd, _, shapes = direct_count(ATTN, 1)
        base = flops.transformer_flops(models.TINY_TRANSFORMER, shapes).total("forward")
        lora = flops.transformer_flops(models.TINY_TRANSFORMER, shapes, 1, ATTN).parts["forward", "lora"]
        assert base + lora == fwd
        return
    fwd, step, shapes = direct_count(targets, rank)
    tally = flops.transformer_flops(models.TINY_TRANSFORMER, shapes, rank, targets, backward=True)
    assert tally.total("forward") == fwd
    assert tally.total() == step
    # frozen base: backward < 2× forward (no weight gradients, forward-only embeddings)
    assert tally.total("backward") < 2 * tally.total("forward")


def test_13b_flops_are_in_the_expected_range():
    """512×512×57 with the condition: 4096 tokens. Base forward ≈ 48 blocks × S·(28·D² + 4·S·D) ≈ 106 TFLOP."""
    shapes = flops.Shapes(4096, 128)
    cfg = models.LTXV_CONFIGS["ltxv_13b"]
    forward = flops.transformer_flops(cfg, shapes).total("forward")
    s, d = 4096, 4096
    per_block = s * (28 * d * d + 4 * s * d)
    assert 48 * per_block < forward < 1.05 * 48 * per_block
    step = flops.train_step_flops(cfg, shapes, 256, ATTN)
    assert 2.0 * forward < step < 3.0 * forward
    assert flops.peak_flops_for("NVIDIA H100 80GB HBM3") == 989e12


def test_bench_train_tiny(capsys):
    bench = load("bench_train")
    assert bench.main(["--config", "tiny", "--device", "cpu", "--steps", "2", "--warmup", "1", "--rank", "8"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^\s+path\s+s/step\s+ratio\s+peak GB\s+TFLOP/s\s+MFU$", out, re.M), out
    rows = dict(re.findall(r"^\s+(bare|lightning|datamodule|loader)\s+([\d.]+)\s", out, re.M))
    assert rows.keys() == {"bare", "lightning", "datamodule", "loader"}, out
    assert all(float(v) > 0 for v in rows.values())
    assert "framework overhead lightning/bare" in out and "loader/step" in out and "load avg" in out


def test_bench_train_refuses_large_models_on_cpu():
    bench = load("bench_train")
    with pytest.raises(SystemExit, match="refusing to build the 13b"):
        bench.main(["--config", "13b", "--device", "cpu"])


@pytest.mark.parametrize("levers", [[], ["--lora", "unmerged", "--attention", "flash"],
                                    pytest.param(["--compile", "blocks"], marks=pytest.mark.slow)])
def test_bench_decode_tiny(capsys, levers):
    bench = load("bench_decode")
    assert bench.main(["--config", "tiny", "--device", "cpu", "--steps", "4,2", "--rank", "8", *levers]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^\s+steps\s+DiT ms/frame\s+VAE ms/frame\s+total ms/frame\s+×paper\s+×50 steps\s+TFLOP/s$",
                     out, re.M), out
    rows = re.findall(r"^\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+n/a\s+[\d.]+$", out, re.M)
    assert [r[0] for r in rows] == ["4", "2"], out  # no 50-step row: the ×50 column says n/a
    for _, dit, vae, total, paper in rows:
        assert abs(float(dit) + float(vae) - float(total)) < 0.02
        assert abs(float(total) / 396.20 - float(paper)) < 1e-3


def test_sampling_flops_scale_with_steps_and_guidance():
    shapes = flops.Shapes(4096, 128)
    cfg = models.LTXV_CONFIGS["ltxv_13b"]
    one = flops.transformer_flops(cfg, shapes).total("forward")
    assert flops.sampling_flops(cfg, shapes, 50, guidance=True) == 100 * one
    assert flops.sampling_flops(cfg, shapes, 8, guidance=False) == 8 * one


def test_bench_train_loader_row_alone_runs_for_13b_on_cpu(capsys):
    """The loader row builds no model, so the 13B-shaped shards (128-channel bf16 latents) are read on the CPU."""
    bench = load("bench_train")
    assert bench.main(["--config", "13b", "--device", "cpu", "--rows", "loader", "--steps", "2"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^\s+loader\s+[\d.]+\s+n/a", out, re.M) and "loader/step at the paper's" in out, out
    assert not re.search(r"^\s+(bare|lightning)\s", out, re.M)


@pytest.mark.parametrize("config", ["tiny", "tiny_ltx2"])
def test_bench_memory_tiny_fits_and_plans(capsys, tmp_path, config):
    """tiny_ltx2: the LTX-2 recipes' path (video-only call, Gemma-width text) that --config 19b / 22b measure."""
    bench = load("bench_memory")
    png = tmp_path / "mem.png"
    assert bench.main(["--config", config, "--rank", "8", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    off = float(re.search(r"measured [\d.,]+ MB \(([\d.]+) % off\)", out).group(1))
    assert off < 5.0, out  # the linear model predicts the held-out (3 blocks, 2 recomputing) measurement
    assert re.search(r"^\s+recompute\s+backward GB\s+optimizer GB\s+peak GB\s+recompute TFLOP$", out, re.M), out
    rows = re.findall(r"^\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", out, re.M)
    assert [int(r[0]) for r in rows] == [0, 1, 2], out  # the tiny model has 2 blocks
    assert all(float(r[3]) == max(float(r[1]), float(r[2])) for r in rows)
    assert "issue target (60 GB): model.checkpoint_blocks=0" in out
    assert png.stat().st_size > 10_000


def test_live_bytes_tracks_a_known_step():
    """Linear 1024→1024 on 4096 rows, fp32, frozen weight: input 16 MiB + output 16 MiB + weight 4 MiB live."""
    sys.path.insert(0, str(ROOT / "bench"))
    from memtrack import LiveBytes

    layer = torch.nn.Linear(1024, 1024, bias=False).requires_grad_(False)
    x = torch.randn(4096, 1024)
    with LiveBytes([layer.weight, x]) as tracker:
        y = layer(x)
        assert tracker.now == (4 + 16 + 16) * 2**20
        del y
        assert tracker.now == (4 + 16) * 2**20
    assert tracker.peak == (4 + 16 + 16) * 2**20


def test_gpu_script_calls_only_flags_the_benches_accept():
    """bench/run_gpu.sh runs on a lent GPU, where a typo costs device time: every bench call in it must parse."""
    import shlex

    script = (ROOT / "bench" / "run_gpu.sh").read_text().replace("\\\n", " ")
    calls = re.findall(r"\$B/(bench_\w+)\.py ([^;\n]*)", script)
    assert {name for name, _ in calls} == {"bench_train", "bench_decode", "bench_dcvc_rt"}
    for name, args in calls:
        load(name).parse(shlex.split(args))  # argparse exits (fails the test) on an unknown flag or choice


@pytest.mark.slow
def test_bench_codecs_tiny(capsys, tmp_path):
    bench = load("bench_codecs")
    assert bench.main(["--tiny", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| x264 crf 35 |" in out and "| x265 crf 35 |" in out  # the SEI table
    assert re.search(r"\| x265 vs x264 \| [+-]\d+\.\d\d", out), out


def test_bench_zero_tiny_applies_deepspeeds_estimators(capsys):
    bench = load("bench_zero")
    assert bench.main(["--config", "tiny", "--ranks", "2", "4"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^recipe\s+ZeRO\s+ranks\s+DS: all\s+DS: LoRA\s+\+ base\s+= states\s+peak$", out, re.M), out
    rows = {(int(z), int(n)): [float(x) for x in v.split()] for z, n, v in
            re.findall(r"^disco_lora_\S+\s+(\d)\s+(\d+)\s+([\d. ]+?)\s+n/a$", out, re.M)}
    assert sorted(rows) == [(2, 2), (2, 4), (3, 2), (3, 4)], out
    for all_trained, lora, base, states in rows.values():
        assert lora < all_trained and states == pytest.approx(lora + base, abs=0.011)
    assert rows[3, 2][2] == pytest.approx(rows[2, 2][2] / 2, abs=0.011)  # ZeRO-3 splits the frozen base
    assert rows[3, 4][3] < rows[3, 2][3] < rows[2, 2][3]
    cfg = bench.common.recipe_config("tiny")
    base, lora, largest = bench.parameter_counts(cfg)
    z2 = bench.per_rank_bytes(2, 8, base, lora, largest)  # DeepSpeed's formula: 2 B/param + 18 B/param / ranks
    assert z2["lora"] == 2 * lora + int(18 * lora / 8) and z2["frozen"] == 2 * base


def test_decode_settings_table_13b_flops_only(capsys):
    """Issue #23: the paper's 100 calls × 4096 tokens against compact references and 8 steps without guidance;
    the best row needs ≤ 5 % of the paper's work per clip."""
    bench = load("bench_decode")
    assert bench.main(["--config", "13b", "--flops-only"]) == 0
    out = capsys.readouterr().out
    rows = dict(re.findall(r"^\s+(\S.*?)\s{2,}(\d+\s+\d+)\s+≤?[\d.]+\s+≤?[\d.]+$", out, re.M))
    assert rows["paper default (50 steps, CFG 3)"].split() == ["100", "4096"], out
    assert rows["compact + 8 steps, no CFG"].split() == ["8", "2176"], out
    best = float(re.search(r"best row: ([\d.]+) %", out)[1])
    assert best <= 5.0, out


def test_compact_sequence_work_matches_direct_count():
    """A compact layout's call is one transformer call over cond + target tokens: FlopCounterMode on the tiny
    decoder's `denoise` equals the analytic count for that sequence length (the table's tokens/call)."""
    from disco_train.config.recipe import resolve
    from disco_train.decoder.decoder import DiscoDecoder

    cfg, _, _ = resolve(["recipe=disco_lora_debug", "condition.reference=compact"])
    decoder = DiscoDecoder(cfg).eval()
    decoder.transformer.fuse_lora()  # as decode runs it: no adapter branch
    n, m, text = 3 * 4 * 4, 3 * 2 * 2, 8  # 17×128×128 target, D_s = 2 reference
    channels = models.TINY_TRANSFORMER["in_channels"]
    args = (torch.randn(1, n, channels), torch.randn(1, m, channels), 1, C.latent_coords(3, 4, 4, 24.0, 1),
            torch.full((1,), 0.5), torch.randn(1, text, models.TINY_TEXT_DIM), torch.ones(1, text, dtype=torch.long))
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as count, torch.no_grad():
        decoder.denoise(*args, cond_coords=C.reference_coords(3, 2, 2, 24.0, 1, 2))
    expected = flops.transformer_flops(models.TINY_TRANSFORMER, flops.Shapes(n + m, text)).total("forward")
    assert count.get_total_flops() == expected
