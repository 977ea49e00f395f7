"""End to end: `train.py recipe=sketch_dcvc_stage1_debug`, then stage 2 from its export, on CPU (slow: ~40 s)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from disco_train.dcvc_rt.export import load_exported
from disco_train.config.recipe import resolve


def _run(recipe: str, tmp_path, *extra: str):
    from disco_train.train.build import build_datamodule, build_module, build_trainer

    import lightning as L

    cfg, _, _ = resolve([f"recipe={recipe}", f"output_dir={tmp_path}", "logger.kind=none",
                         f"data.train_dir={tmp_path / 'clips'}", *extra])
    datamodule = build_datamodule(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    module = build_module(cfg)
    trainer, history = build_trainer(cfg)
    trainer.fit(module, datamodule=datamodule)
    return cfg, history.losses


@pytest.mark.slow
def test_debug_stages_lower_the_rd_loss_and_chain_by_export(tmp_path):
    cfg1, losses1 = _run("sketch_dcvc_stage1_debug", tmp_path)
    export1 = tmp_path / cfg1.name / "export"
    assert len(losses1) == cfg1.trainer.max_steps
    assert np.mean(losses1[-10:]) < 0.8 * np.mean(losses1[:10]), losses1
    intra1, inter1 = load_exported(export1)  # strict official-format load
    cfg2, losses2 = _run("sketch_dcvc_stage2_debug", tmp_path, f"model.init_from={export1}")
    assert np.mean(losses2[-10:]) < 0.8 * np.mean(losses2[:10]), losses2
    intra2, inter2 = load_exported(tmp_path / cfg2.name / "export")
    # stage 2 froze the I-frame network it received and trained the P-frame network
    assert all(torch.equal(v, intra2.state_dict()[k]) for k, v in intra1.state_dict().items())
    assert not all(torch.equal(v, inter2.state_dict()[k]) for k, v in inter1.state_dict().items())
