"""Strict loading of official-format DCVC-RT checkpoints built from the state-dict manifests."""

import json
import os
from pathlib import Path

import pytest
import torch

from disco_train.dcvc_rt.inter import DMC
from disco_train.dcvc_rt.intra import DMCI
from disco_train.dcvc_rt.loading import (CheckpointMismatchError, load_model, manifest,
                                                unwrap_state_dict)

# CI clones the repository with shared/ beside it: ../shared/fixtures from the repository root.
FIXTURES = Path(os.environ.get("DCVC_RT_FIXTURES", Path(__file__).resolve().parents[2] / "shared" / "fixtures"))
KINDS = {"intra": (DMCI, 407, 45_651_314), "inter": (DMC, 341, 20_691_456)}


def manifest_state_dict(kind, fill=0.0):
    """Official-shaped state dict from the manifest. Each tensor is a stride-0 view of one value,
    so the saved .pth.tar stays a few hundred KB instead of 180 MB."""
    return {k: torch.full((1,), fill + i * 1e-3).expand(*shape)
            for i, (k, shape) in enumerate(manifest(kind).items())}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_model_state_dict_equals_manifest(kind):
    cls, n_keys, n_params = KINDS[kind]
    sd = cls().state_dict()
    man = manifest(kind)
    assert list(sd) == list(man)  # same keys, same registration order
    assert {k: list(v.shape) for k, v in sd.items()} == man
    assert len(sd) == n_keys
    assert sum(v.numel() for v in sd.values()) == n_params


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_packaged_manifest_equals_shared_fixture(kind):
    path = FIXTURES / f"dcvc_rt_{kind}_state_dict.json"
    if not path.is_file():
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"shared fixture {path} not present")
    with open(path) as f:
        assert json.load(f)["keys"] == manifest(kind)


@pytest.mark.parametrize("kind,wrap", [("intra", "state_dict"), ("inter", "net"), ("intra", None)])
def test_strict_load_official_layout(tmp_path, kind, wrap):
    sd = manifest_state_dict(kind)
    stored = {"module." + k: v for k, v in sd.items()} if wrap == "state_dict" else sd
    ckpt = {wrap: stored} if wrap else stored
    if wrap == "net":
        ckpt["epoch"] = 3  # extra fields around 'net' are ignored, as in the official loader
    path = tmp_path / "ckpt.pth.tar"
    torch.save(ckpt, path)
    model = load_model(kind, path=path)
    assert not model.training
    loaded = model.state_dict()
    for k in list(sd)[:: 37]:
        assert torch.equal(loaded[k], sd[k].float()), k


def test_missing_checkpoint_names_file_and_location(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        load_model("intra", ckpt_dir=tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "cvpr2025_image.pth.tar") in msg
    assert "checkpoints/dcvc_rt/cvpr2025_image.pth.tar" in msg
    with pytest.raises(FileNotFoundError, match="cvpr2025_video.pth.tar"):
        load_model("inter", ckpt_dir=tmp_path)


def test_mismatch_names_offending_keys(tmp_path):
    sd = manifest_state_dict("inter")
    del sd["q_recon"]
    sd["encoder.extra.weight"] = torch.zeros(3)
    sd["feature_adaptor_p.bias"] = torch.zeros(7)
    path = tmp_path / "bad.pth.tar"
    torch.save({"state_dict": sd}, path)
    with pytest.raises(CheckpointMismatchError) as e:
        load_model("inter", path=path)
    msg = str(e.value)
    assert "missing keys (1): q_recon" in msg
    assert "unexpected keys (1): encoder.extra.weight" in msg
    assert "feature_adaptor_p.bias: (7,) != (256,)" in msg


def test_unwrap_rejects_non_dict():
    with pytest.raises(CheckpointMismatchError, match="not a state dict"):
        unwrap_state_dict({"state_dict": [1, 2]})


def test_bad_kind():
    with pytest.raises(ValueError, match="kind must be one of"):
        load_model("audio")
