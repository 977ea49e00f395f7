"""LTX-2 parts (`model.family=ltx2`): transformer configs of the released models, tiny ones built in code from the
diffusers / transformers classes, and the Gemma 3 + `LTX2TextConnectors` text path.

Released transformer configs (for meta-device planning and checking an export's keys): what diffusers'
scripts/convert_ltx2_to_diffusers.py writes into transformer/config.json (`get_ltx2_transformer_config`, versions
"2.0", "2.3", "2.5"; huggingface/diffusers #12915, #13217, #14447, whose 2.5 flags the installed 0.42.1 class
documents) where it differs from `LTX2VideoTransformer3DModel`'s defaults, checked against Lightricks/LTX-2's own
loader (packages/ltx-core/src/ltx_core/model/transformer/model_configurator.py: rope_type "split" by default,
"LTX 2.5 (gemma4) sets ff_bias=false"):
- 'ltx2_19b' (LTX-2 19B, "2.0"): 48 layers, 32×128 video heads, 32×64 audio heads, caption 3840 (Gemma 3 12B),
  split RoPE (the class default is interleaved);
- 'ltx23_22b' ("2.3"): + gated attention, prompt cross-attention modulation, no caption projection (the
  connectors project per modality), perturbed attention;
- 'ltx25_22b' ("2.5"): + no video FFN bias, a learned keyframe position embedding (unused by a plain forward).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from disco_train.io.hub import require_path

LTX2_19B = dict(in_channels=128, out_channels=128, num_attention_heads=32, attention_head_dim=128,
                cross_attention_dim=4096, audio_in_channels=128, audio_out_channels=128,
                audio_num_attention_heads=32, audio_attention_head_dim=64, audio_cross_attention_dim=2048,
                num_layers=48, caption_channels=3840, rope_type="split")
LTX23_22B = dict(LTX2_19B, gated_attn=True, cross_attn_mod=True, audio_gated_attn=True, audio_cross_attn_mod=True,
                 use_prompt_embeddings=False, perturbed_attn=True)
LTX2_CONFIGS = {"ltx2_19b": LTX2_19B, "ltx23_22b": LTX23_22B,
                "ltx25_22b": dict(LTX23_22B, ff_bias=False, use_keyframes_abs_pos_embedding=True)}

TINY_TEXT_DIM = 16
TINY_LTX2 = dict(in_channels=16, out_channels=16, num_attention_heads=2, attention_head_dim=8, cross_attention_dim=16,
                 audio_in_channels=4, audio_out_channels=4, audio_num_attention_heads=1, audio_attention_head_dim=8,
                 audio_cross_attention_dim=8, num_layers=2, caption_channels=TINY_TEXT_DIM)
# 'tiny': the 19B's layout but diffusers' default interleaved RoPE (the 19B's is split): its golden losses
# (tests/golden/losses.json) were recorded so, and a real checkpoint's config.json brings its own rope_type.
# 'tiny25': every flag of 'ltx25_22b' (gated attention, prompt modulation, split RoPE, no video FFN bias, keyframe
# embedding) and of the 2.5 connectors (per-modality projections with bias, gated attention, split RoPE).
TINY_LTX25 = dict(TINY_LTX2, **{k: v for k, v in LTX2_CONFIGS["ltx25_22b"].items() if k not in LTX2_19B},
                  rope_type="split")
TINY_CONFIGS = {"tiny": TINY_LTX2, "tiny25": TINY_LTX25}
# 4 (patch) × 2 × 2 × 2 (three spatio-temporal downsamplers) = 32× spatial, 2 × 2 × 2 = 8× temporal, as LTX-2's.
TINY_LTX2_VAE = dict(in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(8, 16, 16, 16),
                     decoder_block_out_channels=(16, 16, 16), layers_per_block=(1, 1, 1, 1, 1),
                     decoder_layers_per_block=(1, 1, 1, 1), spatio_temporal_scaling=(True, True, True, False),
                     decoder_spatio_temporal_scaling=(True, True, True), decoder_inject_noise=(False,) * 4,
                     downsample_type=("spatiotemporal",) * 3 + ("spatial",), upsample_type=("spatiotemporal",) * 3,
                     upsample_residual=(False,) * 3, upsample_factor=(1, 1, 1), patch_size=4, patch_size_t=1)
TINY_GEMMA_LAYERS = 2
TINY_CONNECTORS = dict(caption_channels=TINY_TEXT_DIM, text_proj_in_factor=TINY_GEMMA_LAYERS + 1,
                       video_connector_num_attention_heads=2, video_connector_attention_head_dim=8,
                       video_connector_num_layers=1, video_connector_num_learnable_registers=8,
                       audio_connector_num_attention_heads=2, audio_connector_attention_head_dim=8,
                       audio_connector_num_layers=1, audio_connector_num_learnable_registers=8)

LTX2_FILES = ["transformer/*", "vae/*", "connectors/*", "model_index.json"]
"""What of an LTX-2 diffusers repo the decoder reads (the audio VAE and vocoder are never needed)."""
GEMMA_FILES = ["text_encoder/*", "tokenizer/*", "*.json", "*.safetensors", "*.model"]
"""What of a Gemma 3 repo (the LTX-2 diffusers repo's text_encoder/ + tokenizer/, or a plain one) the decoder reads."""


class GemmaText(nn.Module):
    """Gemma 3 and LTX-2's text connectors as one frozen text encoder: captions' token ids -> the video stream's
    text states and mask (diffusers `LTX2Pipeline._get_gemma_prompt_embeds` then `connectors(...)`)."""

    def __init__(self, gemma: nn.Module, connectors: nn.Module):
        super().__init__()
        self.gemma, self.connectors = gemma, connectors

    @property
    def dtype(self) -> torch.dtype:
        return next(self.connectors.parameters()).dtype

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.gemma(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        # every layer's states, stacked and flattened, as the pipeline does ([B, L, D·(layers+1)])
        stacked = torch.stack(out.hidden_states, dim=-1).flatten(2, 3).to(self.dtype)
        video, _, mask = self.connectors(stacked, attention_mask, padding_side="left")
        return video, mask


def left_padded(tokenizer):
    """Gemma is prompted with left padding (diffusers' LTX-2 pipelines set it); the connectors assume it."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def tiny_transformer(seed: int = 0, name: str = "tiny"):
    from diffusers import LTX2VideoTransformer3DModel

    torch.manual_seed(seed)
    return LTX2VideoTransformer3DModel(**TINY_CONFIGS[name])


def tiny_vae(seed: int = 0):
    from diffusers import AutoencoderKLLTX2Video

    torch.manual_seed(seed)
    return AutoencoderKLLTX2Video(**TINY_LTX2_VAE)


def tiny_text_encoder(seed: int = 0, name: str = "tiny") -> tuple[GemmaText, object]:
    """A 2-layer Gemma 3 text model and tiny connectors (per-modality projections for 'tiny25', as LTX-2.3/2.5),
    with a byte-level tokenizer (no vocabulary file)."""
    from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors
    from transformers import ByT5Tokenizer, Gemma3TextConfig, Gemma3TextModel

    torch.manual_seed(seed)
    tokenizer = left_padded(ByT5Tokenizer())
    gemma = Gemma3TextModel(Gemma3TextConfig(
        vocab_size=len(tokenizer), hidden_size=TINY_TEXT_DIM, intermediate_size=32,
        num_hidden_layers=TINY_GEMMA_LAYERS, num_attention_heads=2, num_key_value_heads=1, head_dim=8,
        max_position_embeddings=256, sliding_window=16))
    connectors = TINY_CONNECTORS if name == "tiny" else dict(  # convert_ltx2_to_diffusers.py's "2.5" connectors
        TINY_CONNECTORS, per_modality_projections=True, video_hidden_dim=TINY_LTX25["cross_attention_dim"],
        audio_hidden_dim=TINY_LTX25["audio_cross_attention_dim"], audio_connector_num_attention_heads=1,
        video_gated_attn=True, audio_gated_attn=True, rope_type="split", proj_bias=True)
    return GemmaText(gemma, LTX2TextConnectors(**connectors)), tokenizer


def load_text_encoder(model_path: Path, gemma_path: Path, dtype: torch.dtype) -> tuple[GemmaText, object]:
    """Gemma 3 (its text tower) from `model.text_encoder_path` and the connectors from `model.path`/connectors."""
    from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors
    from transformers import AutoModel, AutoTokenizer

    enc_dir = gemma_path / "text_encoder" if (gemma_path / "text_encoder").is_dir() else gemma_path
    tok_dir = gemma_path / "tokenizer" if (gemma_path / "tokenizer").is_dir() else gemma_path
    require_path(enc_dir / "config.json", "Gemma 3 text encoder config", "model.text_encoder_path")
    require_path(model_path / "connectors" / "config.json", "LTX-2 text connectors config", "model.path")
    gemma = AutoModel.from_pretrained(enc_dir, torch_dtype=dtype, local_files_only=True)
    gemma = getattr(gemma, "language_model", gemma)  # Gemma3ForConditionalGeneration: the text tower only
    connectors = LTX2TextConnectors.from_pretrained(model_path, subfolder="connectors", torch_dtype=dtype,
                                                    local_files_only=True)
    tokenizer = left_padded(AutoTokenizer.from_pretrained(tok_dir, local_files_only=True))
    return GemmaText(gemma, connectors), tokenizer
