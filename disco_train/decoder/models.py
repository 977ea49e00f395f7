"""One place where models come from: local LTX-Video / T5 weights under checkpoints/, or tiny random models.

Nothing here downloads: every loader reads a local path and fails with a message naming the missing file and
where to put it. Tiny models use the real diffusers / transformers classes with small configs, so tests and
`*_debug` recipes exercise the same code paths as the 13B run (same 32× spatial / 8× temporal VAE geometry).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from disco_train.decoder import ltx2
from disco_train.io.hub import MissingWeightsError, require_path, resolve_weights  # noqa: F401  (re-exported)

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}

# Transformer configs of the released checkpoints (diffusers config.json), used for meta-device instantiation
# (parameter counts, memory planning) and as the architecture to check exported keys against.
LTXV_CONFIGS = {
    "ltxv_13b": dict(in_channels=128, out_channels=128, num_attention_heads=32, attention_head_dim=128,
                     cross_attention_dim=4096, num_layers=48, caption_channels=4096),
    "ltxv_2b": dict(in_channels=128, out_channels=128, num_attention_heads=32, attention_head_dim=64,
                    cross_attention_dim=2048, num_layers=28, caption_channels=4096),
}

TINY_TEXT_DIM = 32
TINY_TRANSFORMER = dict(in_channels=16, out_channels=16, num_attention_heads=2, attention_head_dim=16,
                        cross_attention_dim=32, num_layers=2, caption_channels=TINY_TEXT_DIM)
# 4 (patch) × 2 × 2 × 2 (three spatio-temporal downsamplers) = 32× spatial; 2 × 2 × 2 = 8× temporal, as LTX.
TINY_VAE = dict(in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(16, 32, 32, 32),
                decoder_block_out_channels=(16, 32, 32, 32), layers_per_block=(1, 1, 1, 1, 1),
                decoder_layers_per_block=(1, 1, 1, 1, 1), spatio_temporal_scaling=(True, True, True, False),
                decoder_spatio_temporal_scaling=(True, True, True, False),
                decoder_inject_noise=(False, False, False, False, False), upsample_residual=(False,) * 4,
                upsample_factor=(1, 1, 1, 1), timestep_conditioning=False, patch_size=4, patch_size_t=1,
                encoder_causal=True, decoder_causal=False)


LTX_FILES = ["transformer/*", "vae/*", "model_index.json"]
"""What of an LTX-Video diffusers repo the decoder reads (a Hub repo id fetches only these)."""
T5_FILES = ["text_encoder/*", "tokenizer/*", "*.json", "*.safetensors", "*.model"]
"""What of a T5 repo (diffusers layout or a plain transformers one) the decoder reads."""


@dataclass
class Backbone:
    """The frozen parts of the decoder plus the transformer that carries the LoRA."""

    transformer: torch.nn.Module
    vae: torch.nn.Module
    text_encoder: torch.nn.Module
    tokenizer: object


def model_paths(model_cfg) -> tuple[Path, Path]:
    """(LTX path, text encoder path) on disk: local paths, or Hub repo ids fetched into the cache (io.hub)."""
    ltx2_family = model_cfg.family == "ltx2"
    what = "LTX-2" if ltx2_family else "LTX-Video"
    files, text_files = (ltx2.LTX2_FILES, ltx2.GEMMA_FILES) if ltx2_family else (LTX_FILES, T5_FILES)
    return (resolve_weights(model_cfg.path, "model.path", f"{what} {model_cfg.name} weights", files),
            resolve_weights(model_cfg.text_encoder_path, "model.text_encoder_path",
                            "Gemma 3 text encoder" if ltx2_family else "T5 text encoder", text_files))


def tiny_transformer(seed: int = 0):
    from diffusers import LTXVideoTransformer3DModel

    torch.manual_seed(seed)
    return LTXVideoTransformer3DModel(**TINY_TRANSFORMER)


def tiny_vae(seed: int = 0):
    from diffusers import AutoencoderKLLTXVideo

    torch.manual_seed(seed)
    return AutoencoderKLLTXVideo(**TINY_VAE)


def tiny_text_encoder(seed: int = 0):
    """A 2-layer T5 encoder with a byte-level tokenizer (ByT5: needs no vocabulary file, so works offline)."""
    from transformers import ByT5Tokenizer, T5Config, T5EncoderModel

    torch.manual_seed(seed)
    tokenizer = ByT5Tokenizer()
    config = T5Config(vocab_size=len(tokenizer), d_model=TINY_TEXT_DIM, d_ff=64, d_kv=16, num_layers=2,
                      num_heads=2, relative_attention_num_buckets=8, dropout_rate=0.0)
    return T5EncoderModel(config), tokenizer


def transformer_config(name: str, family: str = "ltxv") -> dict:
    """The transformer's diffusers config of `model.name` in `model.family` (KeyError for an unknown name)."""
    if family == "ltx2":
            return {**ltx2.TINY_CONFIGS, **ltx2.LTX2_CONFIGS}[name]
    return TINY_TRANSFORMER if name == "tiny" else LTXV_CONFIGS[name]


def meta_transformer(name: str, family: str = "ltxv"):
    """The transformer of `model.name` on the meta device: architecture without memory or weights (parameter
    counts, memory planning, checking an exported adapter). KeyError for an unknown name."""
    import diffusers

    from disco_train.decoder.family import FAMILIES

    cls = getattr(diffusers, FAMILIES[family].transformer_class)
    with torch.device("meta"):
        return cls(**transformer_config(name, family))


def _load_ltx(path: Path, cls_name: str, subfolder: str, dtype: torch.dtype):
    """One LTX-Video component (transformer or vae) from a diffusers folder or a single-file checkpoint."""
    import diffusers

    cls = getattr(diffusers, cls_name)
    if path.is_dir():
        require_path(path / subfolder / "config.json", f"LTX-Video {subfolder} config", "model.path")
        return cls.from_pretrained(path, subfolder=subfolder, torch_dtype=dtype, local_files_only=True)
    # Single-file checkpoints carry no config; diffusers maps their keys, configs come from a local folder
    # beside the file (<file stem>-config/{transformer,vae}) so nothing is fetched.
    config_dir = require_path(path.with_name(path.stem + "-config"), "diffusers config folder for the single file",
                              "model.path")
    return cls.from_single_file(str(path), config=str(config_dir), subfolder=subfolder, torch_dtype=dtype,
                                local_files_only=True)


def _load_t5(path: Path, dtype: torch.dtype):
    from transformers import AutoTokenizer, T5EncoderModel

    enc_dir = path / "text_encoder" if (path / "text_encoder").is_dir() else path
    tok_dir = path / "tokenizer" if (path / "tokenizer").is_dir() else path
    require_path(enc_dir / "config.json", "T5 encoder config", "model.text_encoder_path")
    encoder = T5EncoderModel.from_pretrained(enc_dir, torch_dtype=dtype, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(tok_dir, local_files_only=True)
    return encoder, tokenizer


def check_weights_present(model_cfg) -> None:
    """Fail fast (before any loading) when the chosen model's files are missing (fetching Hub repo ids)."""
    from disco_train.config.decoder import TINY_MODELS

    if model_cfg.name in TINY_MODELS:
        return
    ltx, text = model_paths(model_cfg)
    if model_cfg.family == "ltx2" and ltx.is_dir():  # every part LTX-2 reads, each named with the key to set
        for sub in ("transformer", "vae", "connectors"):
            require_path(ltx / sub / "config.json", f"LTX-2 {sub} config", "model.path")
        enc = text / "text_encoder" if (text / "text_encoder").is_dir() else text
        require_path(enc / "config.json", "Gemma 3 text encoder config", "model.text_encoder_path")


def cast(module: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """`module.to(dtype)`. diffusers' `to` warns about "modules that should be kept in float32: []" on every cast,
    even of a model that keeps none in float32; such a model is cast as the plain nn.Module it is."""
    if getattr(module, "_keep_in_fp32_modules", None):
        return module.to(dtype)  # the warning names real modules: keep it
    return torch.nn.Module.to(module, dtype)


def _frozen(*modules):
    for module in modules:
        module.requires_grad_(False)
        module.eval()
    return modules


def _config_file(path: Path) -> Path:
    """The transformer's config.json of a diffusers folder or of a single file's `<stem>-config` folder."""
    folder = path if path.is_dir() else path.with_name(path.stem + "-config")
    return require_path(folder / "transformer" / "config.json", "LTX-Video transformer config", "model.path")


def check_architecture(model_cfg, path: Path) -> None:
    """ConfigError, before any weight is read, when the transformer at `path` is not `model.name`'s architecture
    (e.g. `model.path=` a 2B distilled checkpoint for a 13B export): an adapter fits one architecture only.
    A distilled checkpoint of the same architecture (LTX-Video 0.9.7/0.9.8 13B distilled for a 13B dev export)
    passes: that is how the distilled schedules are meant to be used."""
    import json

    from disco_train.config import ConfigError

    from disco_train.decoder import ltx2

    # rope_type is how the positions are rotated, not which weights exist: the checkpoint's own config decides it
    shape = lambda config: {k: v for k, v in config.items() if k != "rope_type"}  # noqa: E731
    want = shape(transformer_config(model_cfg.name, model_cfg.family))
    found = json.loads(_config_file(path).read_text())
    differ = {k: (found.get(k), v) for k, v in want.items() if found.get(k) != v}
    if differ:
        known = ltx2.LTX2_CONFIGS if model_cfg.family == "ltx2" else LTXV_CONFIGS
        names = sorted((n for n, c in known.items() if all(found.get(k) == v for k, v in shape(c).items())),
                       key=lambda n: -len(known[n]))  # the one that sets the most flags it has (22B before 19B)
        what = ", ".join(f"{k}={got} (not {v})" for k, (got, v) in differ.items())
        raise ConfigError(f"model.path={model_cfg.path}: its transformer is {names[0] if names else 'another model'} "
                          f"({what}); this decoder's base is model.name={model_cfg.name}: use a checkpoint of the "
                          f"same architecture")


def load_transformer(model_cfg, seed: int = 0) -> torch.nn.Module:
    """The LTX-Video transformer per `ModelConfig` (tiny: random, seeded), frozen; a checkpoint of another
    architecture than `model.name` is refused before loading."""
    from disco_train.decoder.family import family_of

    dtype = DTYPES[model_cfg.dtype]
    if model_cfg.family == "ltx2" and model_cfg.name in ltx2.TINY_CONFIGS:
        transformer = cast(ltx2.tiny_transformer(seed, model_cfg.name), dtype)
    elif model_cfg.name == "tiny":
        transformer = cast(tiny_transformer(seed), dtype)
    else:
        path = model_paths(model_cfg)[0]
        check_architecture(model_cfg, path)
        transformer = _load_ltx(path, family_of(model_cfg).transformer_class, "transformer", dtype)
    return _frozen(transformer)[0]


def load_encoders(model_cfg, seed: int = 0) -> tuple[torch.nn.Module, torch.nn.Module, object]:
    """(VAE, T5 encoder, tokenizer) per `ModelConfig`, frozen: what the decoder and `prepare precompute=true`
    encode with (tiny: random, seeded seed+1 and seed+2, as inside `load_backbone`)."""
    from disco_train.decoder.family import family_of

    dtype, is_ltx2 = DTYPES[model_cfg.dtype], model_cfg.family == "ltx2"
    if model_cfg.name in ("tiny", "tiny25"):
        vae = (ltx2.tiny_vae if is_ltx2 else tiny_vae)(seed + 1)
        text_encoder, tokenizer = (ltx2.tiny_text_encoder(seed + 2, model_cfg.name) if is_ltx2
                                   else tiny_text_encoder(seed + 2))
        vae, text_encoder = cast(vae, dtype), cast(text_encoder, dtype)
    else:
        ltx, text_path = model_paths(model_cfg)
        vae = _load_ltx(ltx, family_of(model_cfg).vae_class, "vae", dtype)
        text_encoder, tokenizer = (ltx2.load_text_encoder(ltx, text_path, dtype) if is_ltx2
                                   else _load_t5(text_path, dtype))
    return (*_frozen(vae, text_encoder), tokenizer)


def load_backbone(model_cfg, seed: int = 0) -> Backbone:
    """Build or load the frozen decoder parts per `ModelConfig`. All returned modules have requires_grad=False.
    The transformer is built first: the adapter's random init draws from the RNG state the three leave."""
    from disco_train.decoder.family import check_geometry, family_of

    transformer = load_transformer(model_cfg, seed)
    backbone = Backbone(transformer, *load_encoders(model_cfg, seed))
    check_geometry(backbone.vae, transformer, family_of(model_cfg))
    return backbone
