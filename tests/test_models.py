"""The real loading code reads local folders: tested with tiny models saved in the released layouts."""

import pytest
import torch

from disco_train.config import ModelConfig
from disco_train.decoder.models import MissingWeightsError, load_backbone, tiny_text_encoder, tiny_transformer, tiny_vae


@pytest.fixture(autouse=True)
def _tiny_weights_stand_in_for_the_named_model(monkeypatch):
    """These tests save tiny models in the released folder layouts and load them as `ltxv_13b`/`ltxv_2b`: the
    loader's architecture check (tests/test_fast_decode.py) would rightly refuse them, so it is lifted here."""
    monkeypatch.setattr("disco_train.decoder.models.check_architecture", lambda *_: None)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    transformer, vae = tiny_transformer(seed=3), tiny_vae(seed=4)
    transformer.save_pretrained(root / "ltx" / "transformer")
    vae.save_pretrained(root / "ltx" / "vae")
    encoder, tokenizer = tiny_text_encoder(seed=5)
    encoder.save_pretrained(root / "t5" / "text_encoder")
    tokenizer.save_pretrained(root / "t5" / "tokenizer")
    return root, transformer, vae, encoder


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k].float(), sb[k].float()) for k in sa)


def test_diffusers_folders_load_frozen_and_exact(weights):
    root, transformer, vae, encoder = weights
    cfg = ModelConfig(name="ltxv_13b", path=str(root / "ltx"), text_encoder_path=str(root / "t5"), dtype="fp32")
    backbone = load_backbone(cfg)
    assert _same(backbone.transformer, transformer) and _same(backbone.vae, vae)
    assert _same(backbone.text_encoder, encoder)
    assert not any(p.requires_grad for m in (backbone.transformer, backbone.vae, backbone.text_encoder)
                   for p in m.parameters())
    assert backbone.tokenizer(["a cat"]).input_ids[0][:2] == [100, 35]  # ByT5: byte + 3 ('a' = 97, ' ' = 32)


def test_bf16_storage(weights):
    root = weights[0]
    cfg = ModelConfig(name="ltxv_2b", path=str(root / "ltx"), text_encoder_path=str(root / "t5"), dtype="bf16")
    backbone = load_backbone(cfg)
    assert backbone.transformer.dtype == torch.bfloat16 and backbone.text_encoder.dtype == torch.bfloat16


def test_missing_files_are_named(weights, tmp_path):
    root = weights[0]
    with pytest.raises(MissingWeightsError, match=r"model\.path=.*nowhere.*checkpoints/README\.md"):
        load_backbone(ModelConfig(path=str(tmp_path / "nowhere"), text_encoder_path=str(root / "t5")))
    (tmp_path / "half" / "transformer").mkdir(parents=True)
    with pytest.raises(MissingWeightsError, match=r"transformer config"):
        load_backbone(ModelConfig(path=str(tmp_path / "half"), text_encoder_path=str(root / "t5")))
    single = tmp_path / "ltxv.safetensors"
    single.write_bytes(b"")
    with pytest.raises(MissingWeightsError, match=r"ltxv-config"):
        load_backbone(ModelConfig(path=str(single), text_encoder_path=str(root / "t5")))


def _hub_cache(cache, repo: str, files_from) -> None:
    """A Hugging Face cache entry for `repo` (what snapshot_download leaves): refs/main -> snapshots/<commit>/."""
    import shutil

    entry = cache / f"models--{repo.replace('/', '--')}"
    commit = "0" * 40
    shutil.copytree(files_from, entry / "snapshots" / commit)
    (entry / "refs").mkdir(parents=True)
    (entry / "refs" / "main").write_text(commit)


def test_hub_repo_ids_resolve_from_the_cache_offline(weights, tmp_path, monkeypatch):
    root, transformer, vae, encoder = weights
    _hub_cache(tmp_path / "hub", "someone/tiny-ltx", root / "ltx")
    _hub_cache(tmp_path / "hub", "someone/tiny-t5", root / "t5")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    cfg = ModelConfig(name="ltxv_13b", path="someone/tiny-ltx", text_encoder_path="hf://someone/tiny-t5", dtype="fp32")
    backbone = load_backbone(cfg)
    assert _same(backbone.transformer, transformer) and _same(backbone.text_encoder, encoder)


def test_an_uncached_repo_id_offline_says_what_to_fetch_and_where(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(MissingWeightsError) as err:
        load_backbone(ModelConfig(path="Lightricks/LTX-Video-0.9.7-dev"))
    message = str(err.value)
    assert "model.path=Lightricks/LTX-Video-0.9.7-dev" in message and "HF_HUB_OFFLINE" in message
    assert "huggingface-cli download Lightricks/LTX-Video-0.9.7-dev --include 'transformer/*'" in message
    assert "--local-dir checkpoints/LTX-Video-0.9.7-dev" in message


@pytest.mark.parametrize("spec,expected", [
    ("Lightricks/LTX-Video", ("Lightricks/LTX-Video", None, None)),
    ("org/name@v1.0/sub/netG_A_latest.pth", ("org/name", "v1.0", "sub/netG_A_latest.pth")),
    ("hf://yzd-v/DWPose", ("yzd-v/DWPose", None, None)),
    ("checkpoints/ltx-video-13b", None),  # the project's own folders are local wherever the command runs
    ("/abs/weights", None), ("./rel/weights", None), ("single", None),
])
def test_repo_ids_and_local_paths_are_told_apart(spec, expected):
    from disco_train.io.hub import repo_ref

    ref = repo_ref(spec)
    assert (None if ref is None else (ref.repo, ref.revision, ref.filename)) == expected
