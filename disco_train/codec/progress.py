"""The decode's progress bar: sampling steps × clips on stderr, advanced by a forward hook on the transformer (one
pass per sampling step denoises the whole batch, both guidance branches at once)."""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def sampling_bar(transformer, schedule: str, steps: int | None, clips: int, enabled: bool = True):
    from tqdm import tqdm

    from disco_train.decoder.flow import schedule_steps

    with tqdm(total=schedule_steps(schedule, steps) * clips, desc="decode", unit="clip·step", disable=not enabled,
              dynamic_ncols=True) as bar:
        def step(*_) -> None:  # a forward hook's return value would replace the transformer's output
            bar.update(clips)

        hook = transformer.register_forward_hook(step)
        try:
            yield bar
        finally:
            hook.remove()
