"""Fast decoding (issue #23) on the tiny model: compact references (sequence length, RoPE positions, one code path
for training and sampling), few-step schedules, and that the default settings decode exactly as before."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from disco_train.config import ConfigError
from disco_train.config.recipe import resolve

GOLDEN = Path(__file__).parent / "golden" / "decode.json"


def _decoder(*overrides):
    from disco_train.decoder.decoder import DiscoDecoder

    cfg, _, _ = resolve(["recipe=disco_lora_debug", "lora.rank=4", "lora.alpha=4", *overrides])
    torch.manual_seed(0)
    return DiscoDecoder(cfg).eval()


def _frames(b, t, h, w, seed=0):
    return torch.randint(0, 255, (b, t, h, w, 3), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def _spy(decoder) -> list[dict]:
    calls, forward = [], decoder.transformer.forward

    def spy(**kwargs):
        calls.append(kwargs)
        return forward(**kwargs)

    decoder.transformer.forward = spy
    return calls


@pytest.mark.parametrize("ds,cond_tokens", [(2, 3 * 4 * 4), (4, 3 * 2 * 2)])
def test_compact_reference_sequence_length_and_positions(ds, cond_tokens):
    """17×256×256: 3×8×8 = 192 target tokens; the compact reference (256/ds, a multiple of 32) has 3×(8/ds)² tokens,
    each at the centre of the ds×ds target block it covers."""
    from disco_train.config.geometry import compact_size

    decoder = _decoder("condition.reference=compact")
    calls = _spy(decoder)
    size = compact_size(256, 256, ds)
    batch = {"video": _frames(1, 17, 256, 256), "cond": _frames(1, 17, *size, seed=1), "caption": ["x"],
             "fps": torch.tensor([24.0]), "ds": [ds]}
    loss, _ = decoder.training_loss(decoder.prepare_batch(batch), torch.Generator().manual_seed(0))
    decoder.reconstruct({k: v for k, v in batch.items() if k != "video"} | {"size": (17, 256, 256)}, steps=1,
                        guidance=1.0)
    assert torch.isfinite(loss).all()
    for call in calls:
        assert call["hidden_states"].shape[1] == cond_tokens + 192  # full: 384
        assert torch.all(call["timestep"][:, :cond_tokens] == 0)
    coords = calls[0]["video_coords"][0]
    side = 8 // ds  # reference cells per side
    cond_x, target_x = coords[2, :cond_tokens].reshape(3, side, side), coords[2, cond_tokens:].reshape(3, 8, 8)
    block = target_x[0, 0, :ds]  # the target cells the first reference column covers
    assert cond_x[0, 0, 0] == block.mean()  # block centre, LTX-2's convention
    assert torch.equal(coords[0, :cond_tokens].reshape(3, -1)[:, 0], coords[0, cond_tokens:].reshape(3, -1)[:, 0])


def test_compact_at_ds_1_is_the_full_layout():
    """At D_s = 1 a compact reference is the full one: same tokens, same positions, same loss bit for bit."""
    batch = {"video": _frames(1, 17, 64, 64), "cond": _frames(1, 17, 64, 64, seed=1), "caption": ["x"],
             "fps": torch.tensor([24.0]), "ds": [1]}
    losses = []
    for reference in ("full", "compact"):
        decoder = _decoder(f"condition.reference={reference}")
        losses.append(decoder.training_loss(decoder.prepare_batch(batch), torch.Generator().manual_seed(0))[0])
    assert torch.equal(*losses)


def test_compact_refuses_interleave_and_mixed_ds():
    from disco_train.decoder.decoder import one_ds

    with pytest.raises(ConfigError, match="compact.*video_only"):
        resolve(["recipe=disco_lora_sketch_debug", "condition.reference=compact"])
    with pytest.raises(ValueError, match="one D_s per batch"):
        one_ds([2, 4])


def test_default_decoding_is_unchanged_bit_for_bit():
    """Golden frames of the default path (shifted schedule, guidance 3, full references), made by the code before
    issue #23 with one thread; the sha256 of the uint8 frames."""
    torch.set_num_threads(1)  # the suite's autouse fixture restores it
    decoder = _decoder()
    batch = {"cond": _frames(2, 17, 64, 64), "caption": ["a red square", "a dog"], "fps": torch.tensor([24.0, 25.0])}
    out = decoder.reconstruct(batch, steps=3, guidance=3.0, seed=[0, 1])
    assert hashlib.sha256(out.numpy().tobytes()).hexdigest() == json.loads(GOLDEN.read_text())["tiny_default"]


def test_distilled_schedules_fix_the_step_count():
    from disco_train.decoder import flow

    sigmas = flow.schedule_sigmas("ltx2_distilled", None, 2048)
    assert len(sigmas) == 9 and sigmas[0] == 1 and sigmas[-1] == 0 and torch.all(sigmas[1:] < sigmas[:-1])
    assert torch.equal(flow.schedule_sigmas("shifted", 8, 2048), flow.sampling_sigmas(8, 2048))
    with pytest.raises(ValueError, match="fixed list of 8 steps"):
        flow.schedule_sigmas("ltxv097_distilled", 50, 2048)
    with pytest.raises(ConfigError, match="validation.steps=8"):
        resolve(["recipe=disco_lora_debug", "validation.schedule=ltx2_distilled"])
    decoder = _decoder()
    calls = _spy(decoder)
    decoder.reconstruct({"cond": _frames(1, 17, 64, 64), "caption": ["x"], "fps": torch.tensor([24.0])},
                        steps=None, guidance=1.0, schedule="ltx2_distilled")
    assert len(calls) == 8 and all(c["hidden_states"].shape[0] == 1 for c in calls)  # no negative branch


def test_base_override_of_another_architecture_is_refused_before_loading(tmp_path):
    from disco_train.config.decoder import ModelConfig
    from disco_train.decoder.models import LTXV_CONFIGS, check_architecture

    (tmp_path / "transformer").mkdir()
    (tmp_path / "transformer" / "config.json").write_text(json.dumps(LTXV_CONFIGS["ltxv_2b"]))
    with pytest.raises(ConfigError, match=r"its transformer is ltxv_2b \(.*num_layers=28 \(not 48\).*model.name="
                                          r"ltxv_13b"):
        check_architecture(ModelConfig(name="ltxv_13b", path=str(tmp_path)), tmp_path)
    check_architecture(ModelConfig(name="ltxv_2b", path=str(tmp_path)), tmp_path)  # same architecture: fine


def test_compact_export_encode_decode_in_8_steps_without_guidance(tmp_path, monkeypatch):
    """A compact decoder from export to frames through `decode ... steps=8 guidance=1`: 8 transformer calls of
    batch 1, the reference at the coded size / D_s (20×50×70 -> coded 25×64×96, D_s = 2 -> 32×48, padded to 32×64:
    4×1×2 = 8 condition tokens for 4×2×3 = 24 target tokens)."""
    from conftest import make_video
    from disco_train.__main__ import main
    from disco_train.decoder import export as E
    from disco_train.decoder.decoder import DiscoDecoder
    from disco_train.train.export import export
    from test_export import CODEC, make_run

    _, ckpt = make_run(tmp_path, "condition.reference=compact")
    folder = export(ckpt, tmp_path / "export", codec={**CODEC, "ds": 2})
    assert E.read_manifest(folder).config["condition"]["reference"] == "compact"
    assert "compact_reference" in E.read_manifest(folder).rope
    make_video(tmp_path / "v.mp4", frames=20, height=50, width=70)
    assert main(["encode", str(tmp_path / "v.mp4"), str(tmp_path / "v.disco"), "caption=x", f"export={folder}",
                 "send.ds=2"]) == 0
    seen, denoise = [], DiscoDecoder.denoise

    def spy(self, noisy, cond, *args, **kwargs):
        seen.append((tuple(noisy.shape[:2]), tuple(cond.shape[:2])))
        return denoise(self, noisy, cond, *args, **kwargs)

    monkeypatch.setattr(DiscoDecoder, "denoise", spy)
    assert main(["decode", str(tmp_path / "v.disco"), str(tmp_path / "r.mkv"), f"export={folder}", "steps=8",
                 "guidance=1"]) == 0
    assert seen == [((1, 24), (1, 8))] * 8
    assert main(["decode", str(tmp_path / "v.disco"), "", f"export={folder}", "schedule=ltx2_distilled",
                 "steps=50"]) == 2


def _trained_decoder():
    """The tiny decoder with a non-zero adapter folded in, as `decode` builds it."""
    from disco_train.decoder import speed

    decoder = _decoder()
    torch.manual_seed(5)
    for name, p in decoder.transformer.named_parameters():
        if "lora_" in name:
            p.data.normal_(0, 0.2)
    speed.merge_lora(decoder.transformer)
    return decoder


@pytest.mark.parametrize("cache,dtype,hook,min_psnr", [("first_block:0.05", "", "fbc_leader_block_hook", 40.0),
                                                       ("none", "fp8", "layerwise_casting", 40.0)])
def test_cache_and_fp8_are_diffusers_hooks_within_a_stated_psnr(cache, dtype, hook, min_psnr):
    """The hook diffusers registers is on the transformer, and the tiny model's 8-step output stays within
    `min_psnr` dB of the plain one (measured: first_block:0.05 ≈ 57 dB, fp8 ≈ 48 dB at 50 steps, guidance 3)."""
    from diffusers.hooks import HookRegistry

    from disco_train.decoder import fast
    from disco_train.metrics.fidelity import psnr_video

    batch = {"cond": _frames(1, 17, 64, 64), "caption": ["a red square"], "fps": torch.tensor([24.0])}
    plain = _trained_decoder().reconstruct(batch, steps=8, guidance=3.0)[0].numpy()
    decoder = _trained_decoder()
    fast.apply(decoder.transformer, cache, dtype, steps=8)
    modules = [m for m in decoder.transformer.modules() if isinstance(getattr(m, "_diffusers_hook", None),
                                                                      HookRegistry)]
    assert any(m._diffusers_hook.get_hook(hook) is not None for m in modules)
    out = decoder.reconstruct(batch, steps=8, guidance=3.0)[0].numpy()
    again = decoder.reconstruct(batch, steps=8, guidance=3.0)[0].numpy()
    assert (again == out).all()  # the cache state is reset between clips
    assert min_psnr <= psnr_video(plain, out) < 100  # changed, but within the stated bound


def test_unsupported_cache_compile_and_tiling(tmp_path):
    from disco_train.decoder import fast

    with pytest.raises(ValueError, match="cache=faster: unsupported; choose none, first_block"):
        fast.check("faster", "")
    with pytest.raises(ValueError, match="mag:calibrate"):
        fast.check("mag:0.1", "")
    with pytest.raises(ValueError, match="threshold 'x' is not a number"):
        fast.check("first_block:x", "")
    with pytest.raises(ValueError, match="dtype='int4'"):
        fast.check("none", "int4")
    decoder = _decoder()
    fast.apply(decoder.transformer, compile=True)  # diffusers' compile_repeated_blocks: each block compiled
    assert all(b._compiled_call_impl is not None for b in decoder.transformer.transformer_blocks)
    fast.configure_vae(decoder.vae, 768, 1440, 1024)
    assert decoder.vae.use_tiling
    fast.configure_vae(decoder.vae, 512, 512, 1024)
    assert not decoder.vae.use_tiling


def test_mag_cache_calibrates_then_runs_with_the_ratios(tmp_path):
    """diffusers ships no MagCache ratios for LTX-Video: mag:calibrate registers the hook without skipping (same
    frames as no cache), and mag:<threshold>:<file> runs with ratios from a file."""
    from diffusers.hooks import HookRegistry

    from disco_train.decoder import fast

    batch = {"cond": _frames(1, 17, 64, 64), "caption": ["x"], "fps": torch.tensor([24.0])}
    plain = _trained_decoder().reconstruct(batch, steps=4, guidance=1.0)
    decoder = _trained_decoder()
    fast.apply(decoder.transformer, "mag:calibrate", steps=4)
    block = decoder.transformer.transformer_blocks[0]
    assert isinstance(block._diffusers_hook, HookRegistry)
    assert block._diffusers_hook.get_hook("mag_cache_leader_block_hook") is not None
    assert torch.equal(decoder.reconstruct(batch, steps=4, guidance=1.0), plain)
    (tmp_path / "ratios.json").write_text(json.dumps([1.0, 0.99, 0.98, 0.97]))
    decoder = _trained_decoder()
    fast.apply(decoder.transformer, f"mag:0.5:{tmp_path / 'ratios.json'}", steps=4)
    assert decoder.reconstruct(batch, steps=4, guidance=1.0).shape == plain.shape
