"""Configuration: typed schemas of every task and command, recipe resolution, and the one command-line grammar.

Torch-free (only the standard library and OmegaConf), and of disco_train it imports only `disco_train.io` (files,
locks, the Hub), so recipes resolve and validate before anything heavy loads. What lives here:
- `base`: `ConfigError` (every config, recipe and argument error) and the value checks; `limits`: `DecodeLimits`,
  what a receiver accepts from untrusted bytes;
- `geometry`: the LTX-Video VAE's 32× spatial / 8× temporal factors;
- `decoder`: backbone, LoRA, σ schedule, conditioning, sampling (what an export carries to the receiver);
- `training`, `codec`, `prepare`, `benchmark`: the schemas of the `disco_lora`, `sketch_dcvc`, `prepare` and
  `benchmark` tasks;
- `external`: the benchmark's command-line codecs (`ext.<name>`); `parts`: `part=K/N` and the scheduler's
  variables, part file tags and the dealing of work, shared by `prepare`, `benchmark` and `decode`;
- `recipe`: `recipe=NAME key=value ...` -> typed config (`base:` inheritance, strict keys, closest-key hints);
- `cli`: `Command`, the grammar every command speaks (positional paths, key=value, --help, exit code 2).
"""

from disco_train.config.base import ConfigError, check, check_clip_size, parse_ratio
from disco_train.config.codec import (CodecModelConfig, CodecOptimConfig, SketchCodecConfig, SketchDataConfig,
                                      StageConfig)
from disco_train.config.decoder import (ATTENTION_KERNELS, FILL_MODES, NEGATIVE_PROMPT, SHIFT_TOKENS, SHIFT_VALUES,
                                        ConditionConfig, FlowConfig, LoraConfig, ModelConfig, ValidationConfig)
from disco_train.config.geometry import SPATIAL, TEMPORAL, coded_size, latent_grid
from disco_train.config.limits import DecodeLimits
from disco_train.config.prepare import PrepareConfig
from disco_train.config.training import (CheckpointConfig, DataConfig, DiscoLoraConfig, LoggerConfig, OptimConfig,
                                         RunConfig, TrainerConfig)

__all__ = [
    "ATTENTION_KERNELS", "FILL_MODES", "NEGATIVE_PROMPT", "SHIFT_TOKENS", "SHIFT_VALUES", "SPATIAL", "TEMPORAL",
    "CheckpointConfig", "CodecModelConfig", "CodecOptimConfig", "ConditionConfig", "ConfigError", "DataConfig",
    "DecodeLimits",
    "DiscoLoraConfig", "FlowConfig", "LoggerConfig", "LoraConfig", "ModelConfig", "OptimConfig", "PrepareConfig",
    "RunConfig", "SketchCodecConfig", "SketchDataConfig", "StageConfig", "TrainerConfig", "ValidationConfig",
    "check", "check_clip_size", "coded_size", "latent_grid", "parse_ratio",
]
