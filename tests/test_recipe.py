from pathlib import Path

import pytest

from disco_train.config.decoder import TINY_MODELS
from disco_train.config import ConfigError, DiscoLoraConfig
from disco_train.config.recipe import RECIPES_DIR, available_recipes, resolve

RECIPES = available_recipes()


def test_recipes_exist():
    assert {"disco_lora", "disco_lora_debug"} <= set(RECIPES)


@pytest.mark.parametrize("name", RECIPES)
def test_every_recipe_resolves(name, tmp_path):
    argv = [f"recipe={name}"]
    if name.startswith("prepare"):
        argv += [f"input={tmp_path}", f"output={tmp_path / 'out'}"]
    cfg, resolved, _ = resolve(argv)
    assert cfg.task == resolved.task


TRAINING = set(available_recipes(task="disco_lora")) | set(available_recipes(task="sketch_dcvc"))


@pytest.mark.parametrize("name", sorted(r for r in TRAINING if not r.endswith("_debug")))
def test_every_training_recipe_has_a_cpu_debug_child(name):
    debug, _, _ = resolve([f"recipe={name}_debug"])
    assert debug.trainer.accelerator == "cpu" and debug.model.name in TINY_MODELS


def test_benchmark_recipes_follow_the_paper_and_have_a_cpu_debug_run():
    names = {n for n in available_recipes(task="benchmark") if "ablation" not in n and "restore" not in n}
    assert names == {"benchmark_hevc_b", "benchmark_uvg", "benchmark_mcl_jcv", "benchmark_debug"}
    for name in names - {"benchmark_debug"}:
        cfg, _, _ = resolve([f"recipe={name}"])
        assert (cfg.size, cfg.frames, cfg.anchor) == ("512x512", 57, "vvenc")
        assert (cfg.disco.send.ds, cfg.disco.send.dt, cfg.disco.send.qp) == ([1, 2, 4], [2, 4, 8], [0, 8, 16, 24, 32])
        assert {"lpips", "dists", "fid", "fvd"} <= set(cfg.metrics.name_list)
    debug, _, _ = resolve(["recipe=benchmark_debug"])
    assert debug.device == "cpu" and debug.dcvc_rt.weights == "synthetic" and debug.metrics.names == "psnr,ssim"
    assert debug.method_list == ["x264", "x265", "vvenc", "dcvc_rt", "disco"]


def test_the_restore_recipes_compare_a_restored_codec_on_the_papers_protocol():
    """benchmark_restore: HEVC-B's protocol with Lightricks' Decompression IC-LoRA beside DiSCo; its CPU smoke run."""
    full, _, _ = resolve(["recipe=benchmark_restore"])
    assert (full.size, full.frames, full.anchor) == ("512x512", 57, "vvenc")
    assert full.method_list == ["vvenc", "x265", "restore", "disco"]
    assert full.restore.lora.endswith("ltx-2.5-22b-ic-lora-decompression-0.9.safetensors")
    assert (full.restore.base, full.restore.codec) == ("disco_lora_ltx25", "x265")
    debug, _, _ = resolve(["recipe=benchmark_restore_debug"])
    assert debug.device == "cpu" and debug.method_list == ["x265", "restore"] and debug.anchor == "x265"


def test_ablation_recipes_follow_tables_4_and_5_and_have_a_cpu_debug_run():
    fill, _, _ = resolve(["recipe=benchmark_ablation_fill"])
    assert fill.method_list == ["disco:no_fill", "disco:zero_fill", "disco:forward_fill"]
    assert (fill.anchor, fill.metrics.names, fill.size, fill.frames) == ("disco:no_fill", "lpips", "512x512", 57)
    assert [v.export for v in fill.disco.variants] == ["exports/fill_none", "exports/fill_zero", "exports/fill_forward"]
    text, _, _ = resolve(["recipe=benchmark_ablation_text"])
    assert text.anchor == "disco:no_text" and [v.text for v in text.disco.variants] == ["NA", "", ""]
    assert text.disco.variants[1].captions and not text.disco.variants[2].captions  # Gemini's file, LLaVA's captioner
    for name in ("benchmark_ablation_fill_debug", "benchmark_ablation_text_debug"):
        debug, _, _ = resolve([f"recipe={name}"])
        assert debug.device == "cpu" and debug.metrics.names == "psnr,ssim" and debug.size == "64x64", name
        assert debug.anchor in debug.method_list and len(debug.method_list) == 2, name


def test_grid_recipes_hold_the_papers_grid_and_train_one_decoder_on_it(tmp_path):
    where = [f"input={tmp_path}", f"output={tmp_path / 'out'}"]
    grid, _, _ = resolve(["recipe=prepare_openvid_grid", *where])
    assert (grid.send.ds, grid.send.dt, grid.send.qp, grid.send.codec, grid.grid) == (
        [1, 2, 4], [2, 4, 8], [0, 8, 16, 24, 32], "dcvc_rt", "sample")
    assert len(grid.grid_points()) == 45
    demo, _, _ = resolve(["recipe=prepare_demo_grid", *where])
    assert len(demo.grid_points()) == 4 and demo.grid == "all"
    train, _, _ = resolve(["recipe=disco_lora_grid_debug"])
    assert train.data.train_shards == "data/demo/grid_shards/train-*.tar" and train.model.name == "tiny"


def test_paper_defaults():
    cfg, _, _ = resolve(["recipe=disco_lora"])
    assert (cfg.lora.rank, cfg.optim.lr, cfg.optim.schedule, cfg.trainer.max_steps) == (256, 2e-4, "cosine", 8000)
    assert (cfg.data.frames, cfg.data.height, cfg.data.width, cfg.condition.fill) == (57, 512, 512, "forward")
    assert cfg.model.name == "ltxv_13b" and cfg.model.dtype == "bf16"


def test_precedence_defaults_base_recipe_cli():
    base, _, _ = resolve(["recipe=disco_lora"])
    debug, _, _ = resolve(["recipe=disco_lora_debug"])
    cli, _, _ = resolve(["recipe=disco_lora_debug", "lora.rank=4"])
    assert base.lora.rank == 256 and debug.lora.rank == 8 and cli.lora.rank == 4
    assert debug.optim.schedule == DiscoLoraConfig().optim.schedule  # untouched keys keep dataclass defaults
    assert debug.data.epoch_length == 100 and base.data.epoch_length == 8000


def test_unknown_key_names_full_key_and_suggestion():
    with pytest.raises(ConfigError, match=r"lora\.rnak: unknown key.*did you mean 'lora\.rank'"):
        resolve(["recipe=disco_lora", "lora.rnak=4"])
    with pytest.raises(ConfigError, match=r"^nope: unknown key"):
        resolve(["recipe=disco_lora", "nope.deep=1"])


def test_wrong_type_and_invalid_values_name_the_key():
    with pytest.raises(ConfigError, match=r"^lora\.rank:"):
        resolve(["recipe=disco_lora", "lora.rank=many"])
    with pytest.raises(ConfigError, match=r"^data\.frames: must be 8k\+1"):
        resolve(["recipe=disco_lora", "data.frames=56"])
    with pytest.raises(ConfigError, match=r"^data\.width: must be a multiple of 32"):
        resolve(["recipe=disco_lora", "data.width=500"])
    with pytest.raises(ConfigError, match=r"^condition\.ratio"):
        resolve(["recipe=disco_lora", "condition.mode=interleave", "condition.aux=sketch", "condition.ratio=1:0"])


def test_missing_recipe_lists_available():
    with pytest.raises(ConfigError, match="available: .*disco_lora_debug"):
        resolve(["recipe=nope"])
    with pytest.raises(ConfigError, match="key=value"):
        resolve(["recipe=disco_lora", "--lr"])


def _write(dir_: Path, name: str, text: str) -> None:
    (dir_ / f"{name}.yaml").write_text(text)


def test_base_chain_later_wins_and_cycles_rejected(tmp_path):
    _write(tmp_path, "a", "task: disco_lora\nlora: {rank: 4, alpha: 4}\n")
    _write(tmp_path, "b", "task: disco_lora\nlora: {rank: 16}\n")
    _write(tmp_path, "c", "base: [a, b]\noptim: {lr: 0.1}\n")
    cfg, _, _ = resolve(["recipe=c"], recipes_dir=tmp_path)
    assert (cfg.lora.rank, cfg.lora.alpha, cfg.optim.lr) == (16, 4.0, 0.1)
    _write(tmp_path, "x", "base: y\ntask: disco_lora\n")
    _write(tmp_path, "y", "base: x\n")
    with pytest.raises(ConfigError, match="cycle x -> y -> x"):
        resolve(["recipe=x"], recipes_dir=tmp_path)


def test_recipe_keys_are_checked_too(tmp_path):
    _write(tmp_path, "bad", "task: disco_lora\noptim: {learning_rate: 1}\n")
    with pytest.raises(ConfigError, match=r"optim\.learning_rate: unknown key \(from recipe bad\)"):
        resolve(["recipe=bad"], recipes_dir=tmp_path)


def test_train_print_config_and_errors(capsys):
    import train

    assert train.main(["recipe=disco_lora", "print_config=true"]) == 0
    assert "rank: 256" in capsys.readouterr().out
    assert train.main(["recipe=disco_lora", "lora.rnak=1"]) == 2
    assert "did you mean 'lora.rank'" in capsys.readouterr().err
    # no weights here: a clear message naming the key and the folder, before anything loads
    assert train.main(["recipe=disco_lora"]) == 2
    assert "model.path=checkpoints/ltx-video-13b" in capsys.readouterr().err


def test_recipes_dir_is_yaml_only():
    assert {p.suffix for p in RECIPES_DIR.iterdir()} <= {".yaml", ".md"}


def test_ratio_on_command_line_and_unquoted_in_yaml(tmp_path):
    cfg, _, _ = resolve(["recipe=disco_lora", "condition.mode=interleave", "condition.aux=sketch",
                         "condition.ratio=2:5"])
    assert cfg.condition.ratio == "2:5"
    _write(tmp_path, "r", "task: disco_lora\ncondition: {mode: interleave, aux: pose, ratio: 1:3}\n")
    with pytest.raises(ConfigError, match=r"condition\.ratio: got '63'.*quoted"):
        resolve(["recipe=r"], recipes_dir=tmp_path)
