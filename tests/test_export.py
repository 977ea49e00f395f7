"""Export: diffusers / ComfyUI LoRA files that diffusers' own loaders accept, key checks, atomic writes, manifest."""

import json

import pytest
import torch

from disco_train.decoder import export as E
from disco_train.decoder.decoder import DiscoDecoder
from disco_train.train.export import export

RANK, ALPHA = 4, 8.0  # alpha != rank: a loader that ignored the exported alpha would give different outputs


def make_run(root, *overrides, step=3, recipe="disco_lora_debug"):
    """A run folder as train.py leaves it (config.yaml + a Lightning checkpoint) with non-zero LoRA weights.
    Returns (decoder, checkpoint path)."""
    from disco_train.config.recipe import resolve, to_yaml
    from disco_train.decoder.lora import lora_state_dict

    cfg, merged, _ = resolve([f"recipe={recipe}", f"lora.rank={RANK}", f"lora.alpha={ALPHA}",
                              f"output_dir={root}", "name=run",
                              f"data.train_shards={root}/no-shards/train-*.tar", *overrides])
    run = root / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text(to_yaml(merged))
    module = DiscoDecoder(cfg)
    torch.manual_seed(5)
    for name, p in module.transformer.named_parameters():
        if "lora_" in name:
            p.data.normal_(0, 0.2)
    state = {f"lora.{k}": v for k, v in lora_state_dict(module.transformer).items()}
    ckpt = run / "checkpoints" / "last.ckpt"
    torch.save({"state_dict": state, "disco": {"model": cfg.model.name}, "global_step": step}, ckpt)
    return module, ckpt


def transformer_inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(hidden_states=torch.randn(1, 12, 16, generator=g), encoder_hidden_states=torch.randn(1, 6, 32, generator=g),
                timestep=torch.tensor([500.0]), encoder_attention_mask=torch.ones(1, 6), num_frames=3, height=2, width=2,
                return_dict=False)


def outputs(transformer):
    with torch.no_grad():
        return transformer(**transformer_inputs())[0]


CODEC = {"ds": 4, "dt": 4, "codec": "x264", "crf": 30, "qp": -1}  # the demo_shards fixture settings


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    module, ckpt = make_run(root)
    out = export(ckpt, root / "export", codec=CODEC)
    return module, out


def test_diffusers_loader_reproduces_the_trained_transformer(exported):
    from diffusers import LTXPipeline

    from disco_train.decoder.models import tiny_transformer

    module, out = exported
    expected = outputs(module.transformer)
    base = tiny_transformer(module.cfg.seed)
    assert not torch.allclose(outputs(base), expected, atol=1e-4)  # the LoRA changes the output
    state, metadata = LTXPipeline.lora_state_dict(str(out), return_lora_metadata=True)  # default file name
    assert metadata["transformer.r"] == RANK and metadata["transformer.lora_alpha"] == ALPHA
    LTXPipeline.load_lora_into_transformer(state, transformer=base, metadata=metadata)
    torch.testing.assert_close(outputs(base), expected, atol=1e-5, rtol=1e-5)

    fresh = tiny_transformer(module.cfg.seed)
    # diffusers reads the safetensors header (and so alpha) only when weight_name names a .safetensors file
    fresh.load_lora_adapter(str(out), weight_name=E.DIFFUSERS_FILE, prefix="transformer")
    torch.testing.assert_close(outputs(fresh), expected, atol=1e-5, rtol=1e-5)


def test_comfyui_file_loads_through_diffusers_converter(exported):
    from diffusers import LTXPipeline
    from safetensors import safe_open

    from disco_train.decoder.models import tiny_transformer

    module, out = exported
    with safe_open(str(out / E.COMFYUI_FILE), "pt") as f:
        assert all(k.startswith("diffusion_model.") for k in f.keys())
        assert json.loads(f.metadata()["disco.scale_folded_into_lora_B"]) == ALPHA / RANK
    state = LTXPipeline.lora_state_dict(str(out / E.COMFYUI_FILE))  # diffusion_model. -> transformer.
    base = tiny_transformer(module.cfg.seed)
    LTXPipeline.load_lora_into_transformer(state, transformer=base)  # no metadata: alpha = rank convention
    torch.testing.assert_close(outputs(base), outputs(module.transformer), atol=1e-5, rtol=1e-5)


def test_metadata_and_manifest(exported):
    from safetensors import safe_open

    module, out = exported
    with safe_open(str(out / E.DIFFUSERS_FILE), "pt") as f:
        meta = f.metadata()
    assert meta["disco.base_model"] == "tiny" and json.loads(meta["disco.rank"]) == RANK
    assert json.loads(meta["disco.alpha"]) == ALPHA and meta["disco.condition_mode"] == "video_only"
    assert meta["disco.interleave_ratio"] == "1:3" and meta["disco.fill"] == "forward"
    assert json.loads(meta["disco.ds"]) == 4 and meta["disco.codec"] == "x264"
    assert json.loads(meta["disco.shift_tokens"]) == [1024, 4096]
    manifest = E.read_manifest(out)
    assert set(manifest.files) == {E.DIFFUSERS_FILE, E.COMFYUI_FILE}
    assert manifest.config["lora"]["rank"] == RANK and manifest.source.global_step == 3
    assert manifest.codec == CODEC


def test_rebuilt_decoder_matches_trained_module(exported):
    module, out = exported
    decoder = DiscoDecoder.from_export(out)
    assert decoder.cfg.lora.init_from.endswith(E.DIFFUSERS_FILE)
    torch.testing.assert_close(outputs(decoder.transformer), outputs(module.transformer), atol=1e-6, rtol=1e-6)


def test_tampered_export_is_rejected(exported, tmp_path):
    import shutil

    _, out = exported
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    data = bytearray((copy / E.COMFYUI_FILE).read_bytes())
    data[-1] ^= 1
    (copy / E.COMFYUI_FILE).write_bytes(bytes(data))
    with pytest.raises(E.ExportError, match="sha256"):
        E.read_manifest(copy)
    (copy / E.COMFYUI_FILE).unlink()
    with pytest.raises(E.ExportError, match="missing"):
        E.read_manifest(copy)


def _corrupt(ckpt, edit):
    checkpoint = torch.load(ckpt, weights_only=True)
    edit(checkpoint["state_dict"])
    torch.save(checkpoint, ckpt)


@pytest.mark.parametrize("edit,message", [
    (lambda s: s.update({"lora.transformer_blocks.0.attn1.to_z.lora_A.weight": torch.zeros(RANK, 32)}),
     "no Linear layer 'transformer_blocks.0.attn1.to_z'"),
    (lambda s: s.update({"lora.transformer_blocks.0.attn1.to_q.lora_A.weight": torch.zeros(RANK + 1, 32)}),
     r"shape \(5, 32\), expected \(4, 32\)"),
    (lambda s: s.pop("lora.transformer_blocks.1.attn2.to_v.lora_B.weight"), "has only lora_A"),
    (lambda s: [s.pop(k) for k in list(s) if "blocks.1.attn2.to_v." in k], "targeted by lora.targets"),
])
def test_wrong_keys_rejected_before_writing(tmp_path, edit, message):
    _, ckpt = make_run(tmp_path)
    _corrupt(ckpt, edit)
    with pytest.raises(E.ExportError, match=message):
        export(ckpt, tmp_path / "export", codec=CODEC)
    assert not (tmp_path / "export").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no temporary folder left behind


def test_keys_checked_against_13b_architecture():
    from disco_train.config import DiscoLoraConfig

    cfg = DiscoLoraConfig()
    cfg.lora.targets = ["to_q"]
    state = {f"transformer_blocks.{i}.{a}.to_q.lora_{p}.weight": torch.zeros(s, device="meta")
             for i in range(48) for a in ("attn1", "attn2")
             for p, s in (("A", (256, 4096)), ("B", (256, 256)))}
    with pytest.raises(E.ExportError, match=r"lora_B.weight: shape \(256, 256\), expected \(4096, 256\)"):
        E.check_keys(state, cfg)


def test_existing_output_kept_unless_forced(tmp_path):
    _, ckpt = make_run(tmp_path)
    out = tmp_path / "export"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(E.ExportError, match="exists"):
        export(ckpt, out, codec=CODEC)
    with pytest.raises(E.ExportError, match="is not an export"):  # force replaces exports only
        export(ckpt, out, codec=CODEC, force=True)
    assert (out / "keep.txt").read_text() == "mine"
    (out / "keep.txt").unlink()
    export(ckpt, out, codec=CODEC, force=True)
    (out / "keep.txt").write_text("mine")
    export(ckpt, out, codec=CODEC, force=True)  # an earlier export, with all it holds
    assert not (out / "keep.txt").exists() and (out / E.MANIFEST).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export", "run"]


def test_cli_needs_codec_settings_without_shards_and_copies_sketch_codec(tmp_path, capsys):
    from disco_train.__main__ import main

    _, ckpt = make_run(tmp_path)
    assert main(["export", f"ckpt={ckpt}", f"out={tmp_path / 'e'}"]) == 2
    assert "ds, dt, codec: not found" in capsys.readouterr().err
    codec_dir = tmp_path / "sketch"
    codec_dir.mkdir()
    (codec_dir / "cvpr2025_image.safetensors").write_bytes(b"weights")
    argv = ["export", f"ckpt={ckpt}", f"out={tmp_path / 'e'}", "ds=2", "dt=4", "codec=dcvc_rt", "qp=16",
            f"sketch_codec={codec_dir}"]
    assert main(argv) == 0
    manifest = E.read_manifest(tmp_path / "e")
    assert manifest.codec == {"ds": 2, "dt": 4, "codec": "dcvc_rt", "qp": 16}
    assert manifest.sketch_codec == "sketch_codec"
    assert "sketch_codec/cvpr2025_image.safetensors" in manifest.files


def test_export_after_real_training_reads_codec_from_shards(demo_shards, tmp_path):
    import train
    from conftest import debug_overrides

    assert train.main(debug_overrides(demo_shards, tmp_path, steps=1)) == 0
    out = export(tmp_path / "test" / "checkpoints" / "last.ckpt", tmp_path / "export")
    manifest = E.read_manifest(out)
    assert manifest.codec["ds"] == 4 and manifest.codec["dt"] == 4 and manifest.codec["codec"] == "x264"
    assert manifest.source.global_step == 1


def test_export_is_readable_by_the_group(tmp_path):
    import os
    import stat

    umask = os.umask(0o022)
    try:
        _, ckpt = make_run(tmp_path)
        out = export(ckpt, tmp_path / "export", codec=CODEC)
    finally:
        os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert {stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == {0o644}


def test_export_records_the_rope_convention(exported):
    from safetensors import safe_open

    from disco_train.decoder.conditioning import ROPE_CONVENTION

    _, out = exported
    assert E.read_manifest(out).rope == ROPE_CONVENTION
    with safe_open(str(out / E.DIFFUSERS_FILE), "pt") as f:
        assert json.loads(f.metadata()["disco.rope"])["time"].startswith("max(0, 8*f - 7) / fps")
