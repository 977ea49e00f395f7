"""Training: the only place Lightning is imported.

- `lora_module`: `DiscoLoRAModule`, the training system around a `DiscoDecoder`;
- `codec_module`: `SketchCodecModule`, the two-stage DCVC-RT finetune on sketches;
- `build`: config -> Lightning trainer, module and datamodule; `callbacks`, `validation`, `optim`,
  `reliability` (atomic checkpoints, resume, non-finite steps);
- `run`: one training run from a resolved recipe; `next_steps`: what a finished run writes and prints;
- `export`: a training checkpoint -> an export folder.

Their commands (`train`, `export`) are in `disco_train.commands`.

May import every other package but `commands`.
"""
