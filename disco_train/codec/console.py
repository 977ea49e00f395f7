"""What `encode` and `decode` print: the file's streams and totals in bits, bpp and kbps, and the decode's progress
bar of sampling steps × clips on stderr, advanced by a forward hook on the transformer (one pass per sampling step
denoises the whole batch, both guidance branches at once)."""

from __future__ import annotations

from contextlib import contextmanager

from disco_train.codec import container as C


def kbps(bits: int, frames: int, fps: float) -> float:
    """Rate in kbit/s of `bits` spread over `frames` frames at `fps`: bits / (frames / fps) / 1000."""
    return bits * float(fps) / frames / 1000


def report(c: C.Container) -> str:
    g = c.geometry
    pixels, payload = g.frames * g.height * g.width, sum(c.bits().values())
    total = payload + 8 * c.overhead_bytes
    lines = [f"{g.frames} frames {g.width}×{g.height} @ {float(g.fps):.3f} fps (generated as "
             f"{g.coded_frames}×{g.coded_width}×{g.coded_height})"]
    if c.pattern != C.FULL:  # the streams below hold only what this pattern's tokens read
        lines.append(f"  pattern {c.pattern}")
    lines += [f"  {s.kind:7s} {s.codec:8s} {s.bits:>12,} bits" for s in c.streams]
    lines.append(f"  streams          {payload:>12,} bits  {payload / pixels:.6f} bpp "
                 f"{kbps(payload, g.frames, g.fps):.3f} kbps")
    lines.append(f"  total            {total:>12,} bits  {total / pixels:.6f} bpp {kbps(total, g.frames, g.fps):.3f} "
                 f"kbps (the file: streams + the {c.overhead_bytes}-byte header, {8 * c.overhead_bytes} bits)")
    return "\n".join(lines)


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
