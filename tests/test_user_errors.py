"""Errors of the user's own making end in one clear message and exit code 2, before any weights load: a bad
lora.init_from, broken or hostile YAML, resolvers that read the environment, a run folder in use, a full disk
while checkpointing. Nothing already done is lost."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import train
from conftest import ROOT, debug_overrides
from disco_train.config import ConfigError
from disco_train.config.recipe import resolve


def _run(demo_shards, tmp_path, *extra, steps=2):
    return train.main(debug_overrides(demo_shards, tmp_path, steps=steps) + list(extra))


def test_init_from_missing_a_folder_or_another_rank_is_named_before_loading(demo_shards, tmp_path, capsys):
    from test_export import make_run

    from disco_train.train.export import export

    assert _run(demo_shards, tmp_path, f"lora.init_from={tmp_path / 'none.safetensors'}") == 2
    assert "lora.init_from=" in capsys.readouterr().err
    assert _run(demo_shards, tmp_path, f"lora.init_from={tmp_path}") == 2
    assert f"lora.init_from={tmp_path}: a folder" in capsys.readouterr().err
    _, ckpt = make_run(tmp_path / "r4")  # a rank-4 adapter
    out = export(ckpt, tmp_path / "r4" / "export", codec={"ds": 4, "dt": 4, "codec": "x264"})
    capsys.readouterr()
    assert _run(demo_shards, tmp_path, f"lora.init_from={out / 'pytorch_lora_weights.safetensors'}") == 2
    err = capsys.readouterr().err
    assert "its adapter has rank 4" in err and "this run trains rank 8 (lora.rank)" in err and "lora_A" in err
    assert err.count("\n") <= 3 and not (tmp_path / "test").exists()  # one message, no run folder


class Payload:  # any Python object in a checkpoint needs pickle, which weights_only refuses
    pass


def test_a_pickled_checkpoint_is_refused_without_suggesting_unsafe_loading(demo_shards, tmp_path, capsys):
    torch.save({"state_dict": {"x": Payload()}}, tmp_path / "evil.ckpt")
    assert _run(demo_shards, tmp_path, f"lora.init_from={tmp_path / 'evil.ckpt'}") == 2
    err = capsys.readouterr().err
    assert "pickles Python objects, which disco-train never loads" in err and "weights_only=False" not in err


def test_yaml_syntax_errors_name_file_line_and_column(tmp_path):
    recipe = tmp_path / "broken.yaml"
    recipe.write_text("task: disco_lora\nlora: {rank: 8\nmodel: {name: tiny}\n")
    with pytest.raises(ConfigError, match=r"broken.yaml:\d+:\d+: invalid YAML"):
        resolve([f"recipe={recipe}"])


def test_yaml_alias_bombs_are_refused_at_once(tmp_path):
    lines = ["task: disco_lora", "a: &a [x, x, x, x, x, x, x, x, x]"]
    lines += [f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
              f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]" for i in range(9)]
    recipe = tmp_path / "laughs.yaml"  # 9^10 ≈ 3.5e9 strings once expanded
    recipe.write_text("\n".join(lines) + "\n")
    t = time.perf_counter()
    with pytest.raises(ConfigError, match=r"laughs.yaml:2:4: YAML anchors and aliases are not allowed"):
        resolve([f"recipe={recipe}"])
    assert time.perf_counter() - t < 2


@pytest.mark.parametrize("where", ["command line", "recipe"])
def test_resolvers_that_read_the_environment_are_refused(tmp_path, monkeypatch, where):
    monkeypatch.setenv("SECRET_TOKEN", "hunter2")
    if where == "recipe":
        recipe = tmp_path / "leak.yaml"
        recipe.write_text("base: disco_lora_debug\nname: run-${oc.env:SECRET_TOKEN}\n")
        argv = [f"recipe={recipe}"]
    else:
        argv = ["recipe=disco_lora_debug", "name=${oc.env:SECRET_TOKEN}"]
    with pytest.raises(ConfigError, match=r"name: .* calls a resolver; resolvers such as oc.env are not allowed") as e:
        resolve(argv)
    assert "hunter2" not in str(e.value)
    cfg, _, _ = resolve(["recipe=disco_lora_debug", "validation.num_samples=${lora.rank}"])  # references are fine
    assert cfg.validation.num_samples == cfg.lora.rank


HOLD = "import sys, time; from disco_train.train.reliability import RunLock; lock = RunLock(__import__('pathlib')" \
       ".Path(sys.argv[1])); print('locked', flush=True); time.sleep(60)"


def test_a_run_folder_in_use_is_refused_and_free_after_its_process_dies(demo_shards, tmp_path, capsys):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "test")], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert _run(demo_shards, tmp_path) == 2
        err = capsys.readouterr().err
        assert "is in use by a live training process (pid" in err
        assert not (tmp_path / "test" / "config.yaml").exists()  # nothing of the live run was touched
    finally:
        holder.kill()
        holder.wait()
    assert _run(demo_shards, tmp_path) == 0  # the kernel released the lock of the killed process


def test_a_forked_child_does_not_keep_the_run_lock(tmp_path):
    """DataLoader workers are forked; a SIGKILLed run's workers live on for seconds and must not hold its lock."""
    from disco_train.train.reliability import RunLock

    lock = RunLock(tmp_path / "run")
    ready, started = os.pipe()
    child = os.fork()
    if child == 0:  # the fork hooks have run when fork returns here
        os.write(started, b"1")
        time.sleep(5)
        os._exit(0)
    try:
        assert os.read(ready, 1) == b"1"
        lock.release()  # the parent's descriptor goes, as the kernel drops it when the parent dies
        RunLock(tmp_path / "run").release()  # refused while the child still shared the locked open file
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        os.close(ready), os.close(started)


def test_a_full_disk_while_checkpointing_says_so_and_leaves_no_partial_file(demo_shards, tmp_path, capsys,
                                                                            monkeypatch):
    from disco_train.train import reliability

    def full(obj, handle, *args, **kwargs):
        handle.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(reliability.torch, "save", full)
    assert _run(demo_shards, tmp_path, "checkpoint.every_n_steps=1") == 2
    err = capsys.readouterr().err
    assert "the disk is full (ENOSPC); the partial file was removed" in err
    assert not list((tmp_path / "test" / "checkpoints").glob("*.tmp"))
