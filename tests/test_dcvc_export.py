"""Export of finetuned DCVC-RT weights: official {'state_dict'} .pth.tar + safetensors, strict round trip."""

from __future__ import annotations

import json

import pytest
import torch

from disco_train.dcvc_rt import DMC, DMCI, CheckpointMismatchError
from disco_train.dcvc_rt import train_forward as tf
from disco_train.dcvc_rt.export import (SAFETENSORS_FILES, export_checkpoint, export_models,
                                               load_exported, load_safetensors_model, main)
from disco_train.dcvc_rt.loading import CHECKPOINT_FILES, load_model


@pytest.fixture(scope="module")
def finetuned():
    """Randomly initialised networks with every parameter perturbed (so nothing equals a fresh init)."""
    torch.manual_seed(0)
    intra, inter = DMCI(), DMC()
    with torch.no_grad():
        for p in list(intra.parameters()) + list(inter.parameters()):
            p.add_(0.01 * torch.randn_like(p))
    return intra.eval(), inter.eval()


def _outputs(intra: DMCI, inter: DMC) -> list[torch.Tensor]:
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    qp = torch.tensor([10, 50])
    with torch.no_grad():
        i = tf.intra_forward(intra, x, qp, noise=False)
        inter.clear_dpb()
        inter.add_ref_frame(None, i["x_hat"])
        p = tf.inter_forward(inter, x.flip(-1), tf.frame_qp(qp, 1), noise=False)
        inter.clear_dpb()
    return [i["x_hat"], i["bits_y"], i["bits_z"], p["x_hat"], p["bits_y"], p["bits_z"]]


def test_export_round_trips_strictly_with_identical_outputs(finetuned, tmp_path):
    intra, inter = finetuned
    out = export_models(intra, inter, tmp_path / "export", info={"stage": "intra"})
    for kind in ("intra", "inter"):
        raw = torch.load(out / CHECKPOINT_FILES[kind], map_location="cpu", weights_only=True)
        assert list(raw) == ["state_dict"]  # the official DCVC-UF / DCVC-RT layout
    loaded = load_exported(out)  # the official strict loader, fresh models
    for original, copy in zip(finetuned, loaded):
        assert original.state_dict().keys() == copy.state_dict().keys()
        assert all(torch.equal(v, copy.state_dict()[k]) for k, v in original.state_dict().items())
    assert all(torch.equal(a, b) for a, b in zip(_outputs(intra, inter), _outputs(*loaded)))
    from_safetensors = [load_safetensors_model(k, out / SAFETENSORS_FILES[k]) for k in ("intra", "inter")]
    assert all(torch.equal(a, b) for a, b in zip(_outputs(intra, inter), _outputs(*from_safetensors)))
    assert json.loads((out / "export.json").read_text())["stage"] == "intra"


def test_export_from_a_lightning_checkpoint_via_cli(finetuned, tmp_path, capsys):
    intra, inter = finetuned
    state = {f"intra.{k}": v for k, v in intra.state_dict().items()}
    state.update({f"inter.{k}": v for k, v in inter.state_dict().items()})
    ckpt = tmp_path / "last.ckpt"
    torch.save({"state_dict": state, "global_step": 7, "epoch": 0}, ckpt)  # what Lightning stores, minus loops
    assert main([f"ckpt={ckpt}", f"out={tmp_path / 'e'}"]) == 0
    model = load_model("intra", ckpt_dir=tmp_path / "e")
    assert torch.equal(model.q_scale_dec, intra.q_scale_dec)
    assert json.loads((tmp_path / "e" / "export.json").read_text())["global_step"] == 7
    assert main([f"ckpt={tmp_path / 'missing.ckpt'}", f"out={tmp_path / 'x'}"]) == 2
    assert "Lightning checkpoint not found" in capsys.readouterr().err
    assert main(["ckpt=a"]) == 2


def test_export_rejects_foreign_checkpoints(finetuned, tmp_path):
    torch.save({"state_dict": {"transformer.w": torch.zeros(1)}}, tmp_path / "lora.ckpt")
    with pytest.raises(KeyError, match="no 'intra.\\*' keys"):
        export_checkpoint(tmp_path / "lora.ckpt", tmp_path / "out")
    intra, inter = finetuned
    bad = dict(intra.state_dict())
    bad["q_scale_enc"] = torch.ones(63, 368, 1, 1)
    state = {**{f"intra.{k}": v for k, v in bad.items()}, **{f"inter.{k}": v for k, v in inter.state_dict().items()}}
    torch.save({"state_dict": state}, tmp_path / "bad.ckpt")
    with pytest.raises(CheckpointMismatchError, match=r"q_scale_enc: \(63, 368, 1, 1\) != \(64, 368, 1, 1\)"):
        export_checkpoint(tmp_path / "bad.ckpt", tmp_path / "out")
