"""DeepSpeed checkpoint folders, without DeepSpeed: when one is complete, which one resume=auto picks, and the
errors of resume, export and lora.init_from for a folder a kill cut. (Folders DeepSpeed really wrote, with two
ranks, are in tests/test_deepspeed.py.)"""

from __future__ import annotations

import os

import pytest
import torch

import train
from conftest import debug_overrides
from disco_train.config import ConfigError
from disco_train.decoder.sharded import COMPLETE, incomplete, is_sharded, write_complete


def sharded(folder, step: int, world: int = 2, complete: bool = True):
    """The layout DeepSpeed writes for ZeRO-2 (tag folder `checkpoint`, one optimizer-state file per rank)."""
    tag = folder / "checkpoint"
    tag.mkdir(parents=True)
    torch.save({"module": {}}, tag / "mp_rank_00_model_states.pt")
    for rank in range(world):
        torch.save({"rank": torch.zeros(8)}, tag / f"zero_pp_rank_{rank}_mp_rank_00_optim_states.pt")
    (folder / "latest").write_text("checkpoint")
    if complete:
        write_complete(folder, step, world)
    return folder


def test_a_folder_is_complete_only_with_its_mark_and_every_file_whole(tmp_path):
    folder = sharded(tmp_path / "step000002.ckpt", 2)
    assert is_sharded(folder) and incomplete(folder) is None
    optim = folder / "checkpoint" / "zero_pp_rank_1_mp_rank_00_optim_states.pt"
    os.truncate(optim, optim.stat().st_size // 2)
    assert "zero_pp_rank_1_mp_rank_00_optim_states.pt has" in incomplete(folder)
    optim.unlink()
    assert "zero_pp_rank_1_mp_rank_00_optim_states.pt is missing" in incomplete(folder)
    cut = sharded(tmp_path / "step000003.ckpt", 3, complete=False)  # `latest` is there: DeepSpeed's rank 0 wrote it
    assert is_sharded(cut) and f"no {COMPLETE}" in incomplete(cut)
    assert not is_sharded(tmp_path) and not is_sharded(tmp_path / "none")


def test_resume_auto_skips_a_folder_cut_by_a_kill(tmp_path):
    from disco_train.train.reliability import find_resume_checkpoint

    checkpoints = tmp_path / "checkpoints"
    sharded(checkpoints / "step000002.ckpt", 2)
    sharded(checkpoints / "step000003.ckpt", 3, complete=False)
    (checkpoints / "last.ckpt").symlink_to("step000002.ckpt")
    assert find_resume_checkpoint(tmp_path).resolve() == (checkpoints / "step000002.ckpt").resolve()
    write_complete(checkpoints / "step000003.ckpt", 3, 2)
    assert find_resume_checkpoint(tmp_path) == checkpoints / "step000003.ckpt"
    for name in ("step000002.ckpt", "step000003.ckpt"):
        (checkpoints / name / COMPLETE).unlink()
    assert find_resume_checkpoint(tmp_path) is None  # last.ckpt links to an incomplete folder: not one either


def test_resume_needs_the_checkpoint_kind_of_its_strategy(demo_shards, tmp_path, capsys):
    from disco_train.config.recipe import resolve
    from disco_train.train.build import check_resume_kind

    folder = sharded(tmp_path / "step000002.ckpt", 2)
    one_file = tmp_path / "last.ckpt"
    torch.save({"state_dict": {}}, one_file)
    plain, _, _ = resolve(debug_overrides(demo_shards, tmp_path))
    zero, _, _ = resolve(debug_overrides(demo_shards, tmp_path) + ["trainer.strategy=deepspeed_stage_2"])
    assert check_resume_kind(zero, folder) == folder and check_resume_kind(plain, one_file) == one_file
    with pytest.raises(ConfigError, match="a DeepSpeed checkpoint folder cannot resume trainer.strategy=auto.*"
                                          "lora.init_from="):
        check_resume_kind(plain, folder)
    with pytest.raises(ConfigError, match="a one-file checkpoint cannot resume trainer.strategy=deepspeed_stage_2"):
        check_resume_kind(zero, one_file)
    (folder / COMPLETE).unlink()
    with pytest.raises(ConfigError, match=f"not a complete DeepSpeed checkpoint: it has no {COMPLETE}"):
        check_resume_kind(zero, folder)
    assert train.main(debug_overrides(demo_shards, tmp_path) + [f"resume={tmp_path / 'none'}"]) == 2
    assert "no such checkpoint file or DeepSpeed checkpoint folder" in capsys.readouterr().err


def test_export_and_init_from_refuse_a_folder_cut_by_a_kill(demo_shards, tmp_path, capsys):
    from disco_train.decoder.export import ExportError
    from disco_train.train.export import read_adapter

    cut = sharded(tmp_path / "run" / "checkpoints" / "step000003.ckpt", 3, complete=False)
    with pytest.raises(ExportError, match=f"ckpt={cut}: not a complete DeepSpeed checkpoint: it has no {COMPLETE}"):
        read_adapter(cut)
    assert train.main(debug_overrides(demo_shards, tmp_path) + [f"lora.init_from={cut}"]) == 2
    err = capsys.readouterr().err
    assert f"lora.init_from={cut}: not a complete DeepSpeed checkpoint" in err and err.count("\n") <= 3
