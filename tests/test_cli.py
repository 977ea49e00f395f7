"""The one command-line grammar: every command answers --help with its keys, defaults and docs, rejects unknown
keys with the closest one and exit code 2, and fills positional paths and typed values the same way."""

from __future__ import annotations

import importlib
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from conftest import ROOT
from disco_train.config import ConfigError
from disco_train.config.cli import REQUIRED, Command, field_docs

# (module, function, argv prefix, a key its help must list)
COMMANDS = [
    ("train", "main", [], "recipe"),
    ("train", "main", ["recipe=disco_lora_debug"], "  lora.rank=8"),  # the recipe's value, not the default's 256
    ("disco_train.__main__", "main", ["train", "recipe=disco_lora_debug"], "  lora.rank=8"),
    ("disco_train.__main__", "main", ["prepare"], "  send.sketch_ds=1"),
    ("disco_train.__main__", "main", ["demo"], "  videos=12"),
    ("disco_train.__main__", "main", ["sketch-clips"], "  clips=8"),
    ("disco_train.__main__", "main", ["export"], "  force=False"),
    ("disco_train.__main__", "main", ["encode"], "  send.ds=None"),
    ("disco_train.__main__", "main", ["decode"], "  merge_lora=True"),
    ("disco_train.__main__", "main", ["sweep"], "  sweep_out=''"),
    ("disco_train.__main__", "main", ["weights"], "recipes (recipe=NAME)"),
    ("disco_train.__main__", "main", ["evaluate"], "  metrics.fvd_clip_len=16"),
    ("disco_train.__main__", "main", ["bdrate"], "  interpolation='akima'"),
    ("disco_train.__main__", "main", ["plot"], "  metric=(required)"),
    ("disco_train.__main__", "main", ["benchmark"], "  anchor='vvenc'"),
    ("disco_train.__main__", "main", ["calibrate"], "  metrics.names='lpips'"),
    ("disco_train.__main__", "main", ["benchmark", "recipe=benchmark_hevc_b"], "  disco.trained_only=True"),
    ("disco_train.__main__", "main", ["dcvc-rt", "encode"], "  qp=(required)"),
    ("disco_train.__main__", "main", ["dcvc-rt", "decode"], "  vcodec='libx264rgb'"),
    ("disco_train.__main__", "main", ["dcvc-rt", "export"], "  ckpt=(required)"),
    ("disco_train.__main__", "main", ["dcvc-rt", "conformance"], "  meta=''"),
]


def _call(module: str, function: str, argv: list[str]) -> int:
    return getattr(importlib.import_module(module), function)(argv)


@pytest.mark.parametrize("module,function,prefix,key", COMMANDS, ids=[f"{c[0]}:{' '.join(c[2])}" for c in COMMANDS])
def test_every_command_has_help(module, function, prefix, key, capsys):
    assert _call(module, function, [*prefix, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: ") and key in out


VALID = {"sweep": ["recipe=disco_lora_debug", "sweep.lora.rank=2"]}  # what sweep needs before it reads other keys


SKIP_UNKNOWN = (("train", ()), ("disco_train.__main__", ("train", "recipe=disco_lora_debug")),
                ("disco_train.__main__", ("weights",)))  # recipe commands: `recipe=` comes first
UNKNOWN = [c for c in COMMANDS if (c[0], tuple(c[2])) not in SKIP_UNKNOWN]


@pytest.mark.parametrize("module,function,prefix,key", UNKNOWN, ids=[f"{c[0]}:{' '.join(c[2])}" for c in UNKNOWN])
def test_every_command_rejects_unknown_keys_with_exit_2(module, function, prefix, key, capsys):
    valid = VALID.get(prefix[0] if prefix else "", [])
    assert _call(module, function, [*prefix, *valid, "no_such_key=1"]) == 2
    err = capsys.readouterr().err
    assert "no_such_key: unknown key" in err and "--help" in err


@pytest.mark.parametrize("argv, message", [
    (["prepare", "input=a", "output=b", "ds=2"], "ds: unknown key (from command line): it is now 'send.ds'"),
    (["prepare", "input=a", "output=b", "interleave_ratio=1:3"], "it is now 'send.ratio'"),
    (["encode", "a.mp4", "b.disco", "sketch_codec=x264"], "sketch_codec: unknown key (from command line): it is now "
                                                          "'send.sketch_codec'"),
    (["benchmark", "recipe=benchmark_debug", "disco.qp=[16]"], "disco.qp: unknown key (from command line): it is "
                                                              "now 'disco.send.qp'"),
    (["calibrate", "export=a", "refs=b", "steps=2"], "steps: unknown key (from command line): it is now 'disco.steps'"),
    (["evaluate", "refs=a", "recons=b", "out=c.csv", "fvmd_points=25"], "it is now 'metrics.fvmd.points'"),
])
def test_a_renamed_key_names_its_new_key(argv, message, capsys):
    """The settings sections (send.*, metrics.*, calibrate's disco.*) renamed keys once: the old key exits 2 with
    its new name, before anything is read."""
    assert _call("disco_train.__main__", "main", argv) == 2
    assert message in capsys.readouterr().err


def test_help_of_a_command_in_a_fresh_process():
    result = subprocess.run([sys.executable, "-m", "disco_train", "demo", "--help"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and "out=(required)" in result.stdout and not result.stderr


def test_prepare_prints_its_resolved_config(capsys):
    assert _call("disco_train.__main__", "main",
                 ["prepare", "recipe=prepare_demo", "send.ds=2", "print_config=true"]) == 0
    out = capsys.readouterr().out
    assert "task: prepare" in out and "ds: 2" in out and "frames: 17" in out


@dataclass
class _Args:
    src: str = REQUIRED
    """Input."""
    rest: list[str] = field(default_factory=list)
    """More inputs."""
    qp: int = 32
    """A number."""
    flag: bool = False
    """A switch."""
    overrides: list[str] = field(default_factory=list)
    """Passed through."""


def test_grammar_positionals_types_and_passthrough():
    cmd = Command("prog", "summary", _Args, ("src", "rest"), passthrough=("model.",))
    cfg, _ = cmd.parse(["a.mp4", "b.mp4", "c.mp4", "qp=7", "flag=true", "model.path=/x"])
    assert (cfg.src, cfg.rest, cfg.qp, cfg.flag, cfg.overrides) == ("a.mp4", ["b.mp4", "c.mp4"], 7, True,
                                                                     ["model.path=/x"])
    with pytest.raises(ConfigError, match=r"qp: Value 'many' of type 'str' could not be converted to Integer"):
        cmd.parse(["a", "qp=many"])
    with pytest.raises(ConfigError, match=r"src: is required \(give src=\.\.\.\)"):
        cmd.parse(["qp=1"])
    with pytest.raises(ConfigError, match=r"flg: unknown key \(from command line\); did you mean 'flag'\?"):
        cmd.parse(["a", "flg=1"])
    with pytest.raises(ConfigError, match="options are key=value"):
        cmd.parse(["a", "--qp", "3"])
    assert field_docs(_Args)["qp"] == "A number."


def test_one_error_type_and_code_for_runtime_input_errors(tmp_path, capsys):
    """An input error raised while a command runs (not only while parsing) is one clear line and exit 2."""
    assert _call("disco_train.__main__", "main", ["decode", str(tmp_path / "none.disco"), "",
                                                  f"export={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m disco_train decode: error: ") and "Traceback" not in err


# (module, function, argv prefix, a recipe of another task)
WRONG_TASK = [("train", "main", [], "prepare_demo"), ("train", "main", [], "benchmark_debug"),
              ("disco_train.__main__", "main", ["prepare"], "disco_lora_debug"),
              ("disco_train.__main__", "main", ["benchmark"], "prepare_demo"),
              ("disco_train.__main__", "main", ["sweep"], "benchmark_debug")]


@pytest.mark.parametrize("module,function,prefix,recipe", WRONG_TASK, ids=[f"{c[0]}:{c[3]}" for c in WRONG_TASK])
def test_a_recipe_of_another_task_is_one_line_and_exit_2(module, function, prefix, recipe, capsys):
    argv = [*prefix, f"recipe={recipe}"] + (["sweep.seed=1,2"] if prefix == ["sweep"] else [])
    assert _call(module, function, argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and ": error: recipe=" in err and "run it with python" in err, err


def test_recipe_help_shows_the_recipes_values(capsys):
    assert _call("train", "main", ["recipe=disco_lora_debug", "trainer.max_steps=7", "--help"]) == 0
    out = capsys.readouterr().out
    assert "keys of recipe disco_lora_debug" in out and "  trainer.max_steps=7\n" in out
    assert "  data.train_shards='data/demo/shards/train-*.tar'" in out and "  lora.alpha=8.0" in out


def test_weights_lists_what_a_recipe_needs(capsys, tmp_path):
    assert _call("disco_train.__main__", "main", ["weights", "recipe=disco_lora_debug"]) == 0
    assert "needs no weight files" in capsys.readouterr().out
    assert _call("disco_train.__main__", "main", ["weights", "recipe=disco_lora",
                                                  f"model.path={tmp_path / 'ltx'}"]) == 2
    out = capsys.readouterr().out
    assert f"| model.path | LTX-Video ltxv_13b transformer | {tmp_path / 'ltx' / 'transformer' / 'config.json'} " \
           f"| MISSING |" in out and "model.text_encoder_path" in out
    (tmp_path / "dcvc").mkdir()
    for name in ("cvpr2025_image.pth.tar", "cvpr2025_video.pth.tar"):
        (tmp_path / "dcvc" / name).write_bytes(b"")
    assert _call("disco_train.__main__", "main", ["weights", "recipe=prepare_anim400k", "input=x", "output=y",
                                                  f"send.dcvc_rt_dir={tmp_path / 'dcvc'}"]) == 2
    out = capsys.readouterr().out
    assert "| send.dcvc_rt_dir | DCVC-RT cvpr2025_image.pth.tar |" in out and "| yes |" in out
    assert "| send.sketch_weights |" in out and "| captioner |" in out and "MISSING" in out


def test_weights_of_a_benchmark_name_each_variant_export_its_base_model_and_the_metric_files(capsys, tmp_path):
    from test_export import CODEC, make_run

    from disco_train.train.export import export

    _, ckpt = make_run(tmp_path)
    folder = export(ckpt, tmp_path / "export", codec=CODEC)
    argv = ["weights", "recipe=benchmark_ablation_fill", f"metrics.weights_dir={tmp_path / 'metrics'}", "anchor=disco:a",
            f"disco.variants=[{{name: a, export: '{folder}'}}, {{name: b, export: '{tmp_path / 'none'}'}}]"]
    assert _call("disco_train.__main__", "main", argv) == 2
    out = capsys.readouterr().out
    assert f"| disco.variants[0].export | DiSCo export (LoRA, disco.json) | {folder / 'disco.json'} | yes |" in out
    assert f"| disco.variants[1].export | DiSCo export (LoRA, disco.json) | {tmp_path / 'none' / 'disco.json'} " \
           f"| MISSING |" in out
    assert f"{tmp_path / 'metrics' / 'lpips' / 'v0.1' / 'alex.pth'} | MISSING |" in out
    assert "transformer/config.json" not in out  # the debug export's base model is the tiny one, built in code
