"""LTX-2 as the backbone (`model.family=ltx2`): video-only calls, LoRA on the video stream, RoPE from diffusers'
own coordinates, the export in diffusers' loader, weights preflight. Tiny models built in code."""

import pytest
import torch

from disco_train.config.base import ConfigError
from disco_train.decoder import ltx2
from disco_train.decoder.family import FAMILIES
from test_export import CODEC, make_run


@pytest.mark.parametrize("name", ["tiny", "tiny25"])
def test_video_output_ignores_the_audio_stream(name):
    """isolate_modalities=True: the least audio we pass (one zero token) could be anything, the video is the same."""
    transformer = ltx2.tiny_transformer(0, name).eval()
    g = torch.Generator().manual_seed(1)
    n, cfg = 12, transformer.config
    text_dim = cfg.caption_channels if cfg.use_prompt_embeddings else cfg.cross_attention_dim
    audio_text_dim = cfg.caption_channels if cfg.use_prompt_embeddings else cfg.audio_cross_attention_dim
    kw = dict(hidden_states=torch.randn(1, n, 16, generator=g), encoder_hidden_states=torch.randn(1, 5, text_dim, generator=g),
              timestep=torch.full((1, n), 400.0), sigma=torch.tensor([400.0]), encoder_attention_mask=torch.ones(1, 5),
              video_coords=FAMILIES["ltx2"].coords(transformer, 3, 2, 2, 24.0, 1), audio_num_frames=3,
              isolate_modalities=True, return_dict=False)
    with torch.no_grad():
        ours = FAMILIES["ltx2"].forward(transformer, kw["hidden_states"], kw["encoder_hidden_states"],
                                        kw["encoder_attention_mask"], kw["timestep"], kw["video_coords"])
        other = transformer(audio_hidden_states=torch.randn(1, 3, 4, generator=g),
                            audio_encoder_hidden_states=torch.randn(1, 5, audio_text_dim, generator=g),
                            audio_timestep=torch.tensor([900.0]), audio_sigma=torch.tensor([900.0]), **kw)[0]
        coupled = transformer(audio_hidden_states=torch.randn(1, 3, 4, generator=g),
                              audio_encoder_hidden_states=torch.randn(1, 5, audio_text_dim, generator=g),
                              audio_timestep=torch.tensor([900.0]), audio_sigma=torch.tensor([900.0]),
                              **{**kw, "isolate_modalities": False})[0]
    torch.testing.assert_close(ours, other, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(ours, coupled, atol=1e-4)  # without isolation audio would leak into the video


def test_coords_are_diffusers_own_with_per_sample_fps():
    transformer = ltx2.tiny_transformer(0)
    ours = FAMILIES["ltx2"].coords(transformer, 3, 2, 2, torch.tensor([24.0, 30.0]), 2)
    for i, fps in enumerate((24.0, 30.0)):
        theirs = transformer.rope.prepare_video_coords(1, 3, 2, 2, "cpu", fps=fps)
        torch.testing.assert_close(ours[i:i + 1], theirs)


def test_compact_reference_coords_follow_ltx2s_scaled_reference():
    """A compact reference's bounds are the reference grid's × D_s in space (the IC-LoRA pipeline's scaling), so
    its token i sits at the centre of the D_s×D_s target cells it covers; time stays the target's."""
    transformer, family = ltx2.tiny_transformer(0), FAMILIES["ltx2"]
    ref = family.reference_coords(transformer, 3, 1, 1, 24.0, 1, 2)
    target = family.coords(transformer, 3, 2, 2, 24.0, 1)
    centre = ref.mean(-1)  # RoPE takes the midpoint of [start, end)
    torch.testing.assert_close(centre[0, 1:, :1], target[0, 1:].mean(-1).reshape(2, 3, 4).mean(-1)[:, :1])
    torch.testing.assert_close(ref[:, 0], target[:, 0, ::4])


def test_lora_reaches_the_video_stream_only():
    from disco_train.config.recipe import resolve
    from disco_train.decoder.decoder import DiscoDecoder

    cfg, _, _ = resolve(["recipe=disco_lora_ltx2_debug", "data.train_shards=x"])
    decoder = DiscoDecoder(cfg)
    names = [n for n, p in decoder.transformer.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n and "audio" not in n for n in names)
    cfg.lora.targets = ["to_q", "to_v"]  # LTX-Video's short names hit every audio attention too
    with pytest.raises(ValueError, match="audio stream"):
        DiscoDecoder(cfg)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from disco_train.train.export import export

    root = tmp_path_factory.mktemp("export_ltx2")
    decoder, ckpt = make_run(root, recipe="disco_lora_ltx2_debug")
    return decoder, export(ckpt, root / "export", codec=CODEC)


def test_export_loads_in_diffusers_ltx2_loader(exported, caplog):
    """`transformer.load_lora_adapter(..., prefix="transformer")` on a fresh LTX-2 transformer takes every key (no
    missing or unexpected ones: diffusers logs those) and reproduces the trained transformer's video output."""
    from disco_train.decoder import export as E

    decoder, out = exported
    family = FAMILIES["ltx2"]
    g = torch.Generator().manual_seed(0)
    tokens, text = torch.randn(1, 12, 16, generator=g), torch.randn(1, 6, 16, generator=g)
    args = (tokens, text, torch.ones(1, 6), torch.full((1, 12), 500.0),
            family.coords(decoder.transformer, 3, 2, 2, 24.0, 1))
    with torch.no_grad():
        expected = family.forward(decoder.transformer, *args)
        fresh = ltx2.tiny_transformer(decoder.cfg.seed)
        assert not torch.allclose(family.forward(fresh, *args), expected, atol=1e-4)
        caplog.clear()
        fresh.load_lora_adapter(str(out), weight_name=E.DIFFUSERS_FILE, prefix="transformer")
        assert not [r for r in caplog.records if "unexpected" in r.getMessage().lower()
                    or "missing" in r.getMessage().lower()]
        torch.testing.assert_close(family.forward(fresh, *args), expected, atol=1e-5, rtol=1e-5)
    ours = {n for n, _ in decoder.transformer.named_parameters() if "lora_" in n}
    loaded = {n.replace(".default_0.", ".default.") for n, _ in fresh.named_parameters() if "lora_" in n}
    assert loaded == ours


def test_missing_vae_or_gemma_fails_before_loading_with_the_key(tmp_path):
    from disco_train.config.decoder import ModelConfig
    from disco_train.decoder.models import MissingWeightsError, check_weights_present

    model = tmp_path / "ltx-2"
    for sub in ("transformer", "connectors", "text_encoder"):
        (model / sub).mkdir(parents=True)
        (model / sub / "config.json").write_text("{}")
    cfg = ModelConfig(family="ltx2", name="ltx2_19b", path=str(model), text_encoder_path=str(model))
    with pytest.raises(MissingWeightsError, match=r"model\.path=.*vae"):
        check_weights_present(cfg)
    (model / "vae").mkdir()
    (model / "vae" / "config.json").write_text("{}")
    (model / "text_encoder" / "config.json").unlink()
    with pytest.raises(MissingWeightsError, match=r"model\.text_encoder_path=.*Gemma"):
        check_weights_present(cfg)


def test_weights_command_exits_2_naming_a_missing_vae_then_0(tmp_path, capsys):
    from disco_train.__main__ import main

    model = tmp_path / "ltx-2"
    for sub in ("transformer", "connectors", "text_encoder", "tokenizer"):
        (model / sub).mkdir(parents=True)
        (model / sub / "config.json").write_text("{}")
    argv = ["weights", "recipe=disco_lora_ltx2", f"model.path={model}", f"model.text_encoder_path={model}"]
    assert main(argv) == 2
    rows = [r for r in capsys.readouterr().out.splitlines() if "MISSING" in r]
    assert len(rows) == 1 and rows[0].startswith("| model.path | LTX-2 video VAE |"), rows
    (model / "vae").mkdir()
    (model / "vae" / "config.json").write_text("{}")
    assert main(argv) == 0


def test_released_configs_follow_diffusers_converter():
    """convert_ltx2_to_diffusers.py "2.0" / "2.3" / "2.5": split RoPE everywhere, the 22B's gated attention and
    prompt modulation, LTX-2.5's video FFN without bias; the same 18.9e9-parameter transformer (the "22B" counts
    the 8-layer text connectors too)."""
    from disco_train.decoder.models import meta_transformer

    sizes = {}
    for name in ("ltx2_19b", "ltx23_22b", "ltx25_22b"):
        model = meta_transformer(name, "ltx2")
        block = model.transformer_blocks[0]
        assert model.config.rope_type == "split" and block.audio_ff.net[2].bias is not None
        assert (block.ff.net[2].bias is None) == (name == "ltx25_22b")
        assert model.config.gated_attn == model.config.cross_attn_mod == (name != "ltx2_19b")
        sizes[name] = sum(p.numel() for p in model.parameters())
    assert all(18.8e9 < n < 19.0e9 for n in sizes.values()), sizes


def test_a_checkpoint_of_the_other_22b_is_named(tmp_path):
    """check_architecture: an LTX-2.3 22B config.json (video FFN with bias) is not model.name=ltx25_22b's; the
    message names what it is. rope_type, a runtime choice of the checkpoint's own config, is not compared."""
    import json

    from disco_train.config.decoder import ModelConfig
    from disco_train.decoder.models import check_architecture

    (tmp_path / "transformer").mkdir()
    config = {k: v for k, v in ltx2.LTX2_CONFIGS["ltx23_22b"].items() if k != "rope_type"}
    (tmp_path / "transformer" / "config.json").write_text(json.dumps(config))
    check_architecture(ModelConfig(family="ltx2", name="ltx23_22b", path=str(tmp_path)), tmp_path)
    with pytest.raises(ConfigError, match=r"its transformer is ltx23_22b \(ff_bias=None \(not False\)"):
        check_architecture(ModelConfig(family="ltx2", name="ltx25_22b", path=str(tmp_path)), tmp_path)


def test_family_names_are_checked():
    from disco_train.config.recipe import resolve

    with pytest.raises(ConfigError, match="model.name"):
        resolve(["recipe=disco_lora_ltx2", "model.name=ltxv_13b"])


def test_encode_decode_round_trip_with_an_ltx2_export(exported, tmp_path, capsys):
    from conftest import make_video
    from disco_train.__main__ import main
    from disco_train.io.video import read_video

    _, out = exported
    video, disco = tmp_path / "clip.mp4", tmp_path / "clip.disco"
    make_video(video, frames=17, height=64, width=64)
    assert main(["encode", str(video), str(disco), "caption=a moving gradient", f"export={out}"]) == 0
    decoded = []
    for i in range(2):
        recon = tmp_path / f"clip{i}.mkv"
        assert main(["decode", str(disco), str(recon), f"export={out}", "steps=2", "guidance=3", "seed=1"]) == 0
        decoded.append(read_video(recon)[0])
    first, again = decoded
    assert (first == again).all()  # seeded: receivers agree
    assert first.shape == (17, 64, 64, 3)


@pytest.mark.slow
def test_train_validate_kill_resume_export(demo_shards, tmp_path):
    """`train.py recipe=disco_lora_ltx2_debug` trains with validation, is SIGKILLed after a checkpoint, resumes
    to the end, and exports a folder diffusers' LTX-2 loader takes."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import ROOT
    from disco_train.__main__ import main

    argv = [sys.executable, str(ROOT / "train.py"), "recipe=disco_lora_ltx2_debug",
            f"data.train_shards={demo_shards}/train-*.tar", f"data.val_shards={demo_shards}/train-*.tar",
            f"output_dir={tmp_path}", "name=run", "trainer.max_steps=8", "data.num_workers=0", "logger.kind=csv",
            "checkpoint.every_n_steps=2", "validation.every_n_steps=4", "validation.steps=2",
            "validation.num_samples=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target, deadline = tmp_path / "run" / "checkpoints" / "step000004.ckpt", time.time() + 600
    while not target.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    resumed = subprocess.run(argv + ["resume=auto"], env=env, text=True, capture_output=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "continuing from" in resumed.stdout
    assert list((tmp_path / "run").rglob("samples/step*/*.mp4")), "validation left no samples"
    out = tmp_path / "export"
    assert main(["export", f"ckpt={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}", f"out={out}"]) == 0
    from disco_train.decoder import export as E

    ltx2.tiny_transformer(0).load_lora_adapter(str(out), weight_name=E.DIFFUSERS_FILE, prefix="transformer")


@pytest.mark.parametrize("name", ["tiny", "tiny25"])
def test_ltx2_flops_match_direct_count(name):
    """bench/flops.py's LTX-2 count (video-only call, one audio token) equals torch's count of the same call,
    forward and LoRA step, for the 19B-like and the 22B-like (gated, prompt-modulated) tiny models."""
    import sys

    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from conftest import ROOT
    from disco_train.decoder.lora import add_lora

    sys.path.insert(0, str(ROOT / "bench"))
    import flops

    targets = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q", "attn2.to_k", "attn2.to_v",
               "attn2.to_out.0", "ff.net.0.proj", "ff.net.2")
    model, config, family = ltx2.tiny_transformer(0, name), ltx2.TINY_CONFIGS[name], FAMILIES["ltx2"]
    model.requires_grad_(False)
    add_lora(model, 4, 4, 0.0, list(targets))
    b, n, text = 2, 12, 8
    text_dim = family.text_width(config)
    args = (torch.randn(b, 2 * n, 16), torch.randn(b, text, text_dim), torch.ones(b, text),
            torch.cat([torch.zeros(b, n), torch.full((b, n), 500.0)], 1),
            torch.cat([family.coords(model, 3, 2, 2, 24.0, b)] * 2, 2))
    with sdpa_kernel(SDPBackend.MATH):
        with FlopCounterMode(display=False) as fwd, torch.no_grad():
            family.forward(model, *args)
        with FlopCounterMode(display=False) as step:
            family.forward(model, *args)[:, -n:].pow(2).mean().backward()
    tally = flops.ltx2_flops(config, flops.Shapes(2 * n, text, b), 4, targets, backward=True)
    assert tally.total("forward") == fwd.get_total_flops()
    assert tally.total() == step.get_total_flops()


def _pipeline_latents(decoder, export_dir, reference, sigmas, noise, grid):
    """Denoised latents (normalised as ours) of diffusers' own LTX2InContextPipeline with the tiny components, our
    export loaded by `load_lora_adapter`, one reference condition at strength 1, no guidance of any kind."""
    from diffusers import AutoencoderKLLTX2Audio, FlowMatchEulerDiscreteScheduler, LTX2InContextPipeline
    from diffusers.pipelines.ltx2.pipeline_ltx2_ic_lora import LTX2ReferenceCondition

    from disco_train.decoder import conditioning as C
    from disco_train.decoder import export as E

    transformer = ltx2.tiny_transformer(decoder.cfg.seed)
    with torch.no_grad():  # the pipeline runs audio↔video attention; a zero a2v output keeps audio out of the video
        for block in transformer.transformer_blocks:
            block.audio_to_video_attn.to_out[0].weight.zero_()
            block.audio_to_video_attn.to_out[0].bias.zero_()
    transformer.load_lora_adapter(str(export_dir), weight_name=E.DIFFUSERS_FILE, prefix="transformer")
    # a tiny audio VAE whose latent (1 channel × 16/4 mel bins) fits the tiny transformer's 4 audio channels
    audio_vae = AutoencoderKLLTX2Audio(base_channels=4, ch_mult=(1, 2, 4), num_res_blocks=1, latent_channels=1,
                                       mel_bins=16)
    tok, gemma = decoder.tokenizer, decoder.text_encoder.gemma
    ids = tok(["a cat"], padding="max_length", max_length=decoder.cfg.model.max_text_tokens, truncation=True,
              add_special_tokens=True, return_tensors="pt")
    with torch.no_grad():
        states = gemma(input_ids=ids.input_ids, attention_mask=ids.attention_mask, output_hidden_states=True)
    pipe = LTX2InContextPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=decoder.vae, audio_vae=audio_vae,
                                 text_encoder=gemma, tokenizer=tok, connectors=decoder.text_encoder.connectors,
                                 transformer=transformer, vocoder=None)
    f, h, w = grid
    latents = pipe(prompt_embeds=torch.stack(states.hidden_states, -1).flatten(2, 3),
                   prompt_attention_mask=ids.attention_mask,
                   reference_conditions=[LTX2ReferenceCondition(frames=reference.astype("float32") / 255.0)],
                   height=64, width=64, num_frames=17, frame_rate=24.0, sigmas=sigmas[:-1],
                   num_inference_steps=len(sigmas) - 1, guidance_scale=1.0, stg_scale=0.0, modality_scale=1.0,
                   guidance_rescale=0.0, audio_guidance_scale=1.0, audio_stg_scale=0.0, audio_modality_scale=1.0,
                   audio_guidance_rescale=0.0, spatio_temporal_guidance_blocks=None, noise_scale=0.0,
                   latents=C.unpack(noise, f, h, w), output_type="latent", return_dict=False,
                   generator=torch.Generator().manual_seed(0))[0]
    vae = decoder.vae
    mean = vae.latents_mean.view(1, -1, 1, 1, 1)
    return (latents - mean) / (vae.latents_std.view(1, -1, 1, 1, 1) / vae.config.scaling_factor)


def test_diffusers_in_context_pipeline_places_the_reference_as_we_do(exported, monkeypatch):
    """Same seed, schedule and reference: our `reconstruct` and diffusers' LTX2InContextPipeline (reference tokens
    appended after the target, timestep 0, the target's RoPE positions) denoise to the same latents."""
    import numpy as np

    import disco_train.decoder.decoder as D
    from disco_train.decoder import flow

    decoder, out = exported
    frames = np.random.default_rng(0).integers(0, 255, (17, 64, 64, 3), dtype=np.uint8)
    steps, seed, captured = 3, 7, {}
    monkeypatch.setattr(D.encoders, "decode_latents", lambda vae, latents: captured.setdefault("ours", latents))
    decoder.eval().reconstruct({"cond": torch.from_numpy(frames)[None], "caption": ["a cat"],
                                "fps": torch.tensor([24.0])}, steps=steps, guidance=1.0, seed=seed)
    ours = captured["ours"]
    grid = tuple(ours.shape[2:])
    n = grid[0] * grid[1] * grid[2]
    noise = torch.randn(1, n, ours.shape[1], generator=torch.Generator().manual_seed(seed))  # as sample_tokens draws
    sigmas = flow.schedule_sigmas("shifted", steps, n).tolist()
    theirs = _pipeline_latents(decoder, out, frames, sigmas, noise, grid)
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-5)
    other = _pipeline_latents(decoder, out, 255 - frames, sigmas, noise, grid)
    assert (other - ours).abs().max() > 1e-2  # the reference does steer the result: the match is not vacuous
