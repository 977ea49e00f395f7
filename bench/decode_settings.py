"""The decode-settings table of `bench_decode.py --flops-only` / `--settings` (issue #23): the paper's setting
against compact references, 8 steps without guidance, both, and a step cache, side by side.

Per row: transformer calls per clip (one per sample and step: 50 steps with guidance run both branches, 100),
tokens per call ([condition ‖ target]: 2 × 2048 at 512×512×57; a compact reference at D_s = 4 has 128 condition
tokens), the analytic work per clip (`flops.sampling_flops`: matmuls only, checked against FlopCounterMode on
the tiny config in tests/test_bench.py) and its ratio to the paper's row. A step cache skips blocks
data-dependently, so its analytic work is only an upper bound (≤): `--settings` runs the rows and reports the
share of calls that ran every block, the measured ms/frame and its ratio to the paper's row, and the PSNR of
each row's output against the paper row's (random weights: says how far a setting moves the output, not its
quality).
"""

from __future__ import annotations

from dataclasses import dataclass

import flops
import torch

from disco_train.config.geometry import compact_size, latent_grid


@dataclass(frozen=True)
class Row:
    name: str
    steps: int
    guidance: float
    reference: str = "full"
    cache: str = "none"


ROWS = (Row("paper default (50 steps, CFG 3)", 50, 3.0), Row("compact reference", 50, 3.0, "compact"),
        Row("8 steps, no CFG", 8, 1.0), Row("compact + 8 steps, no CFG", 8, 1.0, "compact"),
        Row("  + first_block:0.05 cache", 8, 1.0, "compact", "first_block:0.05"))


def tokens(cfg, reference: str, ds: int) -> tuple[int, int]:
    """(condition, target) tokens per sample of the recipe's clip."""
    f, h, w = latent_grid(cfg.data.frames, cfg.data.height, cfg.data.width)
    if reference == "full":
        return f * h * w, f * h * w
    ch, cw = compact_size(cfg.data.height, cfg.data.width, ds)
    return f * (ch // 32) * (cw // 32), f * h * w


def work(model_cfg: dict, cfg, row: Row, ds: int) -> float:
    cond, target = tokens(cfg, row.reference, ds)
    shapes = flops.Shapes(cond + target, cfg.model.max_text_tokens)
    return flops.sampling_flops(model_cfg, shapes, row.steps, row.guidance != 1.0)


def table(model_cfg: dict, cfg, ds: int, measured: dict | None = None) -> str:
    """The rows as text; `measured[name]` = (ms/frame, share of full calls, PSNR vs the paper row) when run."""
    paper = work(model_cfg, cfg, ROWS[0], ds)
    scale, unit = (1e15, "PFLOP") if paper >= 1e15 else flops.unit_for(paper)
    head = f"  {'setting':<34}{'calls':>7}{'tokens/call':>13}{unit + '/clip':>12}{'× paper':>9}"
    if measured:
        head += f"{'ms/frame':>11}{'× paper':>9}{'full calls':>11}{'PSNR dB':>9}"
    lines = [head]
    for row in ROWS:
        cond, target = tokens(cfg, row.reference, ds)
        w = work(model_cfg, cfg, row, ds)
        bound = "≤" if row.cache != "none" else ""
        line = (f"  {row.name:<34}{row.steps * (2 if row.guidance != 1.0 else 1):>7}{cond + target:>13}"
                f"{bound + format(w / scale, '.4f'):>12}{bound + format(w / paper, '.4f'):>9}")
        if measured:
            ms, full, psnr = measured[row.name]
            line += f"{ms:>11.2f}{ms / measured[ROWS[0].name][0]:>9.3f}{full:>11.2f}{psnr:>9.2f}"
        lines.append(line)
    best = min(work(model_cfg, cfg, r, ds) for r in ROWS) / paper
    lines.append(f"  best row: {100 * best:.2f} % of the paper setting's work per clip "
                 f"({cfg.data.frames}×{cfg.data.height}×{cfg.data.width}, D_s = {ds}, "
                 f"{cfg.model.max_text_tokens} text tokens)")
    return "\n".join(lines)


def run_rows(decoder, cfg, ds: int, device: str, seed: int = 0) -> dict:
    """Sample one clip per row with one built DiscoDecoder (its condition.reference switched per row, a cache
    registered for its row only); returns `table`'s `measured`. T5 is not timed: the caption and negative prompt
    are random states of T5's shape (one encoder call per clip against up to 100 transformer calls)."""
    import time

    from disco_train.decoder import fast
    from disco_train.metrics.fidelity import psnr_video

    g = torch.Generator().manual_seed(seed)
    t, h, w = cfg.data.frames, cfg.data.height, cfg.data.width
    dim, length = decoder.transformer.config.caption_channels, cfg.model.max_text_tokens
    text = torch.randn(1, length, dim, generator=g).to(device, decoder.transformer.dtype)
    decoder.encode_text = lambda captions: (text.expand(len(captions), -1, -1),
                                            torch.ones(len(captions), length, dtype=torch.int64, device=device))
    video = torch.randint(0, 255, (1, 3, t, h // ds, w // ds), generator=g).float()
    ch, cw = compact_size(h, w, ds)
    pad = (0, cw - w // ds, 0, ch - h // ds, 0, 0)
    conds = {"compact": torch.nn.functional.pad(video, pad, mode="replicate"),
             "full": torch.nn.functional.interpolate(video, size=(t, h, w))}
    measured, paper = {}, None
    for row in ROWS:
        decoder.cfg.condition.reference = row.reference
        fast.apply(decoder.transformer, row.cache, steps=row.steps)
        calls = []
        hook = decoder.transformer.transformer_blocks[-1].register_forward_pre_hook(lambda *_: calls.append(1))
        batch = {"cond": conds[row.reference].permute(0, 2, 3, 4, 1).to(device, torch.uint8), "caption": ["x"],
                 "fps": torch.tensor([24.0], device=device), "ds": [ds], "size": (t, h, w)}
        decoder.reconstruct(batch, steps=1, guidance=row.guidance)  # warm-up
        calls.clear()
        start = time.perf_counter()
        out = decoder.reconstruct(batch, steps=row.steps, guidance=row.guidance, seed=seed)[0].cpu().numpy()
        seconds = time.perf_counter() - start  # .cpu() above synchronises the device
        hook.remove()
        if row.cache != "none":
            decoder.transformer.disable_cache()
        paper = out if paper is None else paper
        measured[row.name] = (1000 * seconds / t, len(calls) / row.steps, psnr_video(paper, out))
    return measured
