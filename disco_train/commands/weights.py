"""`python -m disco_train weights recipe=NAME [key=value ...]`: every weight file a recipe needs, where it goes, and
whether it is there; exit code 2 when something is missing, as for every other refusal (so a job script can check
before it queues).

Nothing is fetched: a Hub repo id is reported as present when the Hugging Face cache holds it (io.hub).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from disco_train.config.cli import Command
from disco_train.config.decoder import TINY_MODELS
from disco_train.io.hub import cached, repo_ref

LTX_SOURCE = "HF Lightricks/LTX-Video-0.9.7-dev (13B) or Lightricks/LTX-Video-0.9.1 (2B), diffusers layout"
LTX2_SOURCE = "HF Lightricks/LTX-2 (19B dev; for 22B the LTX-2.3 or LTX-2.5 dev model), diffusers layout"


@dataclass(frozen=True)
class Need:
    key: str
    """The setting that points at it."""
    path: str
    """Where it is expected (a local path or a Hub repo id)."""
    what: str
    """What it is."""
    source: str
    """Where to get it."""

    def present(self) -> bool:
        ref = repo_ref(self.path)
        return Path(self.path).exists() if ref is None else cached(ref)


def _model(m, key: str = "model") -> list[Need]:
    if m.name in TINY_MODELS:
        return []
    sub = lambda p, s: p if repo_ref(p) else str(Path(p) / s)  # noqa: E731
    if m.family == "ltx2":
        return [Need(f"{key}.path", sub(m.path, "transformer/config.json"), f"LTX-2 {m.name} transformer", LTX2_SOURCE),
                Need(f"{key}.path", sub(m.path, "vae/config.json"), "LTX-2 video VAE", LTX2_SOURCE),
                Need(f"{key}.path", sub(m.path, "connectors/config.json"), "LTX-2 text connectors", LTX2_SOURCE),
                Need(f"{key}.text_encoder_path", sub(m.text_encoder_path, "text_encoder/config.json"),
                     "Gemma 3 text encoder", f"the text_encoder/ of {LTX2_SOURCE}, or HF google/gemma-3-12b-it"),
                Need(f"{key}.text_encoder_path", sub(m.text_encoder_path, "tokenizer"), "Gemma 3 tokenizer",
                     f"the tokenizer/ of {LTX2_SOURCE}")]
    return [Need(f"{key}.path", sub(m.path, "transformer/config.json"), f"LTX-Video {m.name} transformer",
                 LTX_SOURCE),
            Need(f"{key}.path", sub(m.path, "vae/config.json"), "LTX-Video VAE", LTX_SOURCE),
            Need(f"{key}.text_encoder_path", m.text_encoder_path, "T5 v1.1 XXL encoder and tokenizer",
                 "the text_encoder/ and tokenizer/ of the LTX-Video diffusers repo, or HF google/t5-v1_1-xxl")]


def _dcvc(folder: str, key: str) -> list[Need]:
    from disco_train.codec.backends import DCVC_WEIGHTS, SYNTHETIC

    if folder == SYNTHETIC:
        return []
    return [Need(key, folder if repo_ref(folder) else str(Path(folder) / name), f"DCVC-RT {name}",
                 "microsoft/DCVC, DCVC-family/DCVC-RT README (OneDrive)") for name in DCVC_WEIGHTS]


def _lora_task(cfg) -> list[Need]:
    needs = _model(cfg.model)
    if cfg.lora.init_from:
        needs.append(Need("lora.init_from", cfg.lora.init_from, "adapter to start from", "an export or checkpoint"))
    return needs


def _codec_task(cfg) -> list[Need]:
    m = cfg.model
    if m.init_from:
        return _dcvc(m.init_from, "model.init_from")
    return _dcvc(m.ckpt_dir, "model.ckpt_dir") if m.init == "official" else []


def _prepare_task(cfg) -> list[Need]:
    from disco_train.modalities.extract import DWPOSE_FILES

    needs, s = [], cfg.send
    if s.codec == "dcvc_rt" or (cfg.sketch and s.sketch_codec == "dcvc_rt" and not s.sketch_dcvc_dir):
        needs += _dcvc(s.dcvc_rt_dir, "send.dcvc_rt_dir")
    if cfg.sketch and s.sketch_codec == "dcvc_rt" and s.sketch_dcvc_dir:
        needs += _dcvc(s.sketch_dcvc_dir, "send.sketch_dcvc_dir")
    if cfg.sketch and s.sketch_weights != "synthetic":
        needs.append(Need("send.sketch_weights", s.sketch_weights, "InformativeDrawings generator",
                          "carolineec/informative-drawings model.zip (a style folder's netG_A_latest.pth)"))
    if cfg.pose and s.pose_dir != "synthetic":
        needs += [Need("send.pose_dir", s.pose_dir if repo_ref(s.pose_dir) else str(Path(s.pose_dir) / name),
                       f"DWPose {name}", "HF yzd-v/DWPose") for name in DWPOSE_FILES]
    if cfg.captioner:
        needs.append(Need("captioner", cfg.captioner, "LLaVA-family captioner", "e.g. HF llava-hf/llava-1.5-7b-hf"))
    return needs + (_model(cfg.model) if cfg.precompute else [])


def _export(folder: str, overrides: list[str], key: str) -> list[Need]:
    """An export's manifest, then the base model its decoder config names (when the manifest reads)."""
    from disco_train.decoder.export import MANIFEST, decoder_config

    needs = [Need(key, str(Path(folder) / MANIFEST), "DiSCo export (LoRA, disco.json)",
                  "python -m disco_train export ckpt=<run>/checkpoints/last.ckpt out=<folder>")]
    if needs[0].present():
        try:
            needs += _model(decoder_config(folder, overrides).model, f"{key} model")
        except Exception:  # a broken manifest is reported by the benchmark itself, naming the file
            pass
    return needs


def _restore(r) -> list[Need]:
    """The restore method's decoder: an export (and its base), or an IC-LoRA file and the model of `restore.base`."""
    from disco_train.benchmark.restore import DECOMPRESSION
    from disco_train.config.recipe import resolve

    if Path(r.lora).is_dir():
        return _export(r.lora, list(r.overrides), "restore.lora")
    base, _, _ = resolve([f"recipe={r.base}", *r.overrides], tasks=("disco_lora",))
    return [Need("restore.lora", r.lora, "IC-LoRA restoration decoder", DECOMPRESSION),
            *_model(base.model, "restore.base model")]


def _benchmark_task(cfg) -> list[Need]:
    from disco_train.benchmark.runner import METRIC_WEIGHTS
    from disco_train.config.benchmark import split_list
    from disco_train.metrics.weights import WEIGHT_FILES

    methods, d = split_list(cfg.methods), cfg.disco
    needs = _dcvc(cfg.dcvc_rt.weights, "dcvc_rt.weights") if "dcvc_rt" in methods else []
    if "disco" in methods:
        variants = d.variants or [None]
        for i, v in enumerate(variants):
            key = f"disco.variants[{i}].export" if v is not None and v.export else "export"
            overrides = [*d.overrides, *(v.overrides if v is not None else [])]
            for folder in split_list((v.export if v is not None else "") or cfg.export):
                needs += [n for n in _export(folder, overrides, key) if n not in needs]
        if d.captioner:
            needs.append(Need("disco.captioner", d.captioner, "LLaVA-family captioner",
                              "e.g. HF llava-hf/llava-1.5-7b-hf"))
    if "restore" in methods:
        needs += [n for n in _restore(cfg.restore) if n not in needs]
    files = sorted({k for n in cfg.metrics.name_list for k in METRIC_WEIGHTS.get(n, ())})
    return needs + [Need("metrics.weights_dir", str(Path(cfg.metrics.weights_dir) / WEIGHT_FILES[k].relpath),
                         WEIGHT_FILES[k].description, WEIGHT_FILES[k].source) for k in files]


TASK_NEEDS = {"disco_lora": _lora_task, "sketch_dcvc": _codec_task, "prepare": _prepare_task,
              "benchmark": _benchmark_task}


def needs(cfg) -> list[Need]:
    return TASK_NEEDS[cfg.task](cfg)


def table(rows: list[Need]) -> str:
    if not rows:
        return "this recipe needs no weight files (tiny or synthetic models)"
    lines = ["| key | what | expected at | present | get it from |", "|---|---|---|---|---|"]
    lines += [f"| {n.key} | {n.what} | {n.path} | {'yes' if n.present() else 'MISSING'} | {n.source} |" for n in rows]
    return "\n".join(lines)


COMMAND = Command("python -m disco_train weights", "Every weight file a recipe needs, where it goes and whether it "
                  "is present (exit 2 when something is missing).", task="*")


def main(argv: list[str]) -> int:
    def run(cfg) -> int:
        rows = needs(cfg)
        print(table(rows))
        missing = [n for n in rows if not n.present()]
        if missing:
            print(f"{len(missing)} of {len(rows)} missing; checkpoints/README.md describes the layout", file=sys.stderr)
        return 2 if missing else 0

    return COMMAND.main(argv, run)
