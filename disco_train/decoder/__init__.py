"""The generative decoder, paper §3.2, as plain torch modules and pure functions:

- `decoder`: `DiscoDecoder(nn.Module)`, backbone + adapter, `training_loss`, `reconstruct`, `from_export`;
- `models`: LTX-Video / VAE / T5 from local paths, or tiny random ones (the one home of their construction);
- `lora`: the peft adapter and its state dicts; `speed`: checkpointing, attention kernel, compile, merge;
- `flow`: rectified-flow math; `conditioning`: the in-context token layout; `sampling`: the Euler sampler;
- `encoders`: the frozen VAE and T5 as functions; `export`: the export folder's format and reading it.

May import config and modalities; never lightning, the codecs, datamodules or train.
"""
