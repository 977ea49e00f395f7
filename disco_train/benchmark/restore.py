"""The `restore` method (issue #24's baseline): a standard codec at a low rate, then an IC-LoRA restoration decoder.

Each clip is coded whole (D_s = D_t = 1) by x265 or vvenc at each QP of `restore.qp`, sent in a `.disco` container
with the text, received by the DiSCo receiver (the codec's own decoder, nothing upsampled or filled at D_s = D_t =
1) and sampled by a `DiscoDecoder` with the decoded clip as its in-context reference: the DiSCo path of
`benchmark.disco` (`run_disco`), with this method's rate rule. The rate is the codec's stream, plus the text stream
when text is sent (`restore.text`); the container's header and table are reported apart (`overhead_bits`), not
counted: a codec + caption baseline needs no DiSCo container.

The decoder is a DiSCo export folder (its base per its disco.json), or an IC-LoRA file on the base of recipe
`restore.base`. Lightricks' restoration IC-LoRAs are the intended files: Lightricks/LTX-2.5-22b-IC-LoRA-
Decompression on the Hub (file ltx-2.5-22b-ic-lora-decompression-0.9.safetensors, base LTX-2.5 22B dev: recipe
disco_lora_ltx25, weights in checkpoints/ltx-2.5; LTX-2.3's ltx-2.3-22b-ic-lora-decompression-0.9.safetensors
runs on LTX-2.3 with restore.overrides=[model.name=ltx23_22b,model.path=...]). A LoRA file's keys are read by
diffusers' `LTX2LoraLoaderMixin.lora_state_dict` (diffusers, ComfyUI or LTX-2 trainer layout); its rank, alpha
(diffusers metadata, else alpha = rank, the trainer's files) and the modules it adapts come from the file. Keys of
the audio stream are dropped: DiSCo runs LTX-2 video-only with `isolate_modalities=True`, so they cannot change
the video (decoder/family.py). The reference must be the clip's own size: a LoRA whose metadata says
`reference_downscale_factor` or `reference_temporal_scale_factor` other than 1 is refused.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import torch

from disco_train.benchmark.points import Point
from disco_train.config import ConfigError
from disco_train.config.benchmark import RESTORE_METHOD
from disco_train.config.restore import NO_TEXT

DECOMPRESSION = ("HF Lightricks/LTX-2.5-22b-IC-LoRA-Decompression: ltx-2.5-22b-ic-lora-decompression-0.9.safetensors "
                 "(e.g. in checkpoints/ic-lora/), on its base LTX-2.5 22B dev (recipe disco_lora_ltx25: "
                 "checkpoints/ltx-2.5)")
"""Where the intended IC-LoRA comes from, for messages and the weights table."""
_AUDIO = re.compile(r"(^|\.)(audio_\w*|\w*_to_audio\w*|audio_to_\w*)\.")
_BLOCK_LORA = re.compile(r"(?P<module>.+)\.lora_(?P<part>[AB])\.weight")


def text_of(r, caption: str) -> str:
    """The text a clip is sent with: its caption, none, or the fixed prompt (`restore.text`)."""
    return caption if r.text == "caption" else "" if r.text == NO_TEXT else r.text


def bits(container, text: str) -> tuple[int, dict]:
    """(rate: the codec's stream + the text's if any, the extras: every stream and the unsent container)."""
    streams = {f"{s.kind}_bits": s.bits for s in container.streams}
    rate = streams.get("video_bits", 0) + (streams.get("text_bits", 0) if text else 0)
    return rate, {"overhead_bits": 8 * container.overhead_bytes, **streams}


def check_lora_file(r) -> Path:
    """`restore.lora` as a LoRA file, or a ConfigError naming the file, where to put it and its base."""
    path = Path(r.lora)
    if not path.is_file():
        raise ConfigError(f"restore.lora={path}: no such export folder or LoRA file. Give a DiSCo export folder, or "
                          f"put the IC-LoRA there: {DECOMPRESSION}")
    if path.suffix != ".safetensors":
        raise ConfigError(f"restore.lora={path}: not a .safetensors LoRA (nor an export folder)")
    return path


def read_lora(path: Path) -> tuple[dict[str, torch.Tensor], int, float]:
    """(peft state dict of the transformer's video stream, rank, alpha) of an IC-LoRA file."""
    from diffusers.loaders.lora_pipeline import LTX2LoraLoaderMixin
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        meta = handle.metadata() or {}
    for key in ("reference_downscale_factor", "reference_temporal_scale_factor"):
        if int(meta.get(key, 1)) != 1:
            raise ConfigError(f"restore.lora={path}: {key}={meta[key]}; restore gives the decoder the decoded clip "
                              f"at its own size and frame rate (factor 1)")
    try:
        state, adapter = LTX2LoraLoaderMixin.lora_state_dict(str(path), return_lora_metadata=True)
    except Exception as err:  # safetensors and diffusers raise their own types for a foreign file
        raise ConfigError(f"restore.lora={path}: not a readable LoRA file ({err})") from None
    other = sorted(k for k in state if not k.startswith("transformer."))
    if other:
        raise ConfigError(f"restore.lora={path}: adapts {other[0].split('.')[0]} ({other[0]}), not only the "
                          f"transformer; restore loads transformer LoRAs")
    state = {k[len("transformer."):]: v for k, v in state.items() if not _AUDIO.search(k[len("transformer."):])}
    ranks = {v.shape[0] for k, v in state.items() if ".lora_A." in k}
    if len(ranks) != 1 or any(_BLOCK_LORA.fullmatch(k) is None for k in state):
        raise ConfigError(f"restore.lora={path}: expected lora_A/lora_B weights of one rank, got ranks "
                          f"{sorted(ranks)} ({len(state)} video-stream keys)")
    rank = ranks.pop()
    alpha = float((adapter or {}).get("transformer.lora_alpha", rank))
    return state, rank, alpha


def lora_file_config(r, path: Path, state: dict, rank: int, alpha: float):
    """The decoder config of a LoRA file: recipe `restore.base` with `restore.overrides`, the file's adapter."""
    from disco_train.config.recipe import resolve

    try:
        cfg, _, _ = resolve([f"recipe={r.base}", *r.overrides], tasks=("disco_lora",))
    except ConfigError as err:
        raise ConfigError(f"restore.base / restore.overrides: {err}") from None
    modules = sorted({_BLOCK_LORA.fullmatch(k)["module"] for k in state})
    cfg.lora.rank, cfg.lora.alpha, cfg.lora.dropout, cfg.lora.targets = rank, alpha, 0.0, modules
    cfg.lora.init_from = ""  # the converted state is loaded by `build`, not re-read from the file
    return cfg


def lora_file_decoder(cfg) -> tuple:
    """(decoder config, cache digest) of `restore.lora` as a LoRA file on `restore.base`, checked before any video
    is coded."""
    r = cfg.restore
    path = check_lora_file(r)
    decoder = lora_file_config(r, path, *read_lora(path))
    if decoder.condition.mode != "video_only":
        raise ConfigError(f"restore.base={r.base}: condition.mode={decoder.condition.mode}; an IC-LoRA reads the "
                          f"decoded clip alone (video_only)")
    digest = hashlib.sha256(path.read_bytes() + repr((r.base, sorted(r.overrides))).encode()).hexdigest()
    return decoder, digest


def build(export, cfg, device: str):
    """The restore decoder of a LoRA file (`benchmark.disco.restore_export`): the base of `restore.base`, the file's adapter loaded,
    folded into the base weights unless disco.merge_lora=false."""
    from disco_train.decoder import speed
    from disco_train.decoder.decoder import DiscoDecoder
    from disco_train.decoder.lora import load_lora_state_dict

    path = Path(export.folder)
    state, rank, alpha = read_lora(path)
    decoder = DiscoDecoder(lora_file_config(cfg.restore, path, state, rank, alpha))  # base: load_backbone
    load_lora_state_dict(decoder.transformer, state)
    if cfg.disco.merge_lora:
        speed.merge_lora(decoder.transformer)
    return decoder.to(device).eval()


def points(cfg, export, overrides: tuple) -> list[Point]:
    """One point per QP of `restore.qp` (D_s = D_t = 1, the codec's ladder; more rate to the right)."""
    from disco_train.benchmark.methods import settings_of

    r = cfg.restore
    base = (("base", r.base),) if not Path(r.lora).is_dir() else ()
    codec = tuple(sorted(settings_of(cfg, r.codec).items()))  # preset, library or vvenc version: in every cell key
    return [Point(RESTORE_METHOD, f"qp{q}", (("export", export.digest), ("ds", 1), ("dt", 1), ("codec", r.codec),
                                              ("qp", q), ("codec_settings", codec), ("text", r.text),
                                              ("steps", export.steps),
                                              ("guidance", export.guidance), ("seed", cfg.disco.seed),
                                              ("merge_lora", cfg.disco.merge_lora), ("overrides", overrides), *base,
                                              *export.speed), -q)
            for q in r.qp]
