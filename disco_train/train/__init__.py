"""Training: the only place Lightning is imported.

- `lora_module`: `DiscoLoRAModule`, the training system around a `DiscoDecoder`;
- `codec_module`: `SketchCodecModule`, the two-stage DCVC-RT finetune on sketches;
- `build`: config -> Lightning trainer, module and datamodule; `callbacks`, `validation`, `optim`,
  `reliability` (atomic checkpoints, resume, non-finite steps);
- `export`: a training checkpoint -> an export folder; `sweep`: one training per grid point.

May import every other package.
"""
