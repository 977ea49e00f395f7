"""The one dispatcher: `python -m disco_train COMMAND` (= the `disco` console script, = `python train.py` for
training) runs every command; the old module paths still run theirs for one release, after one deprecation line."""

from __future__ import annotations

import importlib
import runpy
import sys
import tomllib

import pytest

from conftest import ROOT
from disco_train import commands

# The commands the project documents (README, docs/): each must be in the table and in --help.
EXPECTED = {"demo", "prepare", "sketch-clips", "train", "sweep", "weights", "export", "encode", "decode",
            "calibrate", "evaluate", "bdrate", "plot", "benchmark", "dcvc-rt encode", "dcvc-rt decode",
            "dcvc-rt export", "dcvc-rt conformance"}


def test_help_lists_every_command_on_one_line_each(capsys):
    assert commands.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert set(commands.COMMANDS) == EXPECTED
    listed = [line.split("  ")[1].strip() for line in out.splitlines()[1:]]
    assert listed == list(commands.COMMANDS)
    assert commands.main([]) == 2 and "no command given" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_command_resolves_to_a_main_whose_help_names_its_dispatcher_path(name, capsys):
    module, function = commands.COMMANDS[name][0].split(":")
    assert callable(getattr(importlib.import_module(module), function))
    assert commands.main([*name.split(), "--help"]) == 0
    usage = capsys.readouterr().out.splitlines()[0]
    assert usage.startswith(f"usage: python -m disco_train {name} ") or name == "train" and \
        usage.startswith("usage: python train.py ")


def test_a_wrong_command_is_one_error_line_with_the_closest_name_and_exit_2(capsys):
    assert commands.main(["trian", "recipe=x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m disco_train: error: unknown command 'trian'; did you mean 'train'?\nusage:")
    assert commands.main(["dcvc-rt", "encod"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'dcvc-rt encod'; did you mean 'dcvc-rt encode'?" in err and "  encode " not in err
    assert commands.main(["dcvc-rt"]) == 2 and "dcvc-rt needs a subcommand" in capsys.readouterr().err
    assert commands.main(["dcvc-rt", "--help"]) == 0
    out = capsys.readouterr().out
    assert "dcvc-rt conformance" in out and "  train " not in out


def test_the_console_script_train_py_and_python_m_run_the_same_functions():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, function = scripts["disco"].split(":")
    assert getattr(importlib.import_module(module), function) is commands.main
    assert importlib.import_module("disco_train.__main__").main is commands.main
    import train

    assert train.main is importlib.import_module("disco_train.commands.train").main


# old module path -> the command it now is (argv after the dispatcher), a key its --help lists
OLD_PATHS = [("datamodules.prepare", ["prepare"], "send.sketch_ds=1"), ("datamodules.demo", ["demo"], "videos=12"),
             ("datamodules.sketch_clips", ["sketch-clips"], "clips=8"),
             ("disco_train.dcvc_rt.cli", ["dcvc-rt", "encode"], "qp=(required)"),
             ("disco_train.dcvc_rt.export", ["dcvc-rt", "export"], "ckpt=(required)"),
             ("disco_train.dcvc_rt.conformance", ["dcvc-rt", "conformance"], "meta=''"),
             ("disco_train.codec.dcvc_rt.cli", ["dcvc-rt", "encode"], "qp=(required)"),
             ("disco_train.codec.dcvc_rt.export", ["dcvc-rt", "export"], "ckpt=(required)"),
             ("disco_train.codec.dcvc_rt.conformance", ["dcvc-rt", "conformance"], "meta=''"),
             ("disco_train.metrics.evaluate", ["evaluate"], "metrics.fvd_clip_len=16"),
             ("disco_train.benchmark.cli", ["benchmark"], "anchor='vvenc'"),
             ("disco_train.benchmark.calibrate", ["calibrate"], "metrics.names='lpips'")]


@pytest.mark.filterwarnings("ignore:.*found in sys.modules:RuntimeWarning")  # runpy: the module ran before
@pytest.mark.parametrize("module,command,key", OLD_PATHS, ids=[p[0] for p in OLD_PATHS])
def test_an_old_module_path_prints_one_deprecation_line_and_runs_the_command(module, command, key, monkeypatch,
                                                                              capsys):
    extra = command[1:] if module.endswith("dcvc_rt.cli") else []  # the old dcvc_rt.cli took encode|decode itself
    monkeypatch.setattr(sys, "argv", [module, *extra, "--help"])
    with pytest.raises(SystemExit) as done:
        runpy.run_module(module, run_name="__main__", alter_sys=True)  # as `python -m`
    captured = capsys.readouterr()
    assert done.value.code == 0 and f"  {key}" in captured.out
    new = f"python -m disco_train {command[0]}"
    assert captured.err.count("\n") == 1 and captured.err.startswith(f"deprecated: `python -m {module}` is now `{new}")
    assert commands.main([*command, "--help"]) == 0
    assert captured.out == capsys.readouterr().out
