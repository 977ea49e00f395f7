"""Decoding-latency benchmark (not a timed test): ms per frame of the DiSCo decoder at several step counts.

    python bench/bench_decode.py --config tiny --device cpu --steps 50,20,8      # seconds; what the test runs
    python bench/bench_decode.py --config 13b --device cuda --steps 50,20,8      # paper: 396.20 ms/frame (H100)
    python bench/bench_decode.py --config 2b --device cuda --steps 50,20,8,4
    python bench/bench_decode.py --config 13b --flops-only     # decode settings: calls, tokens, PFLOP per clip
    python bench/bench_decode.py --config tiny --settings      # the same rows run: ms/frame, PSNR vs the paper row

What is timed is `DiscoDecoder.reconstruct` minus the T5 call: `sampling.sample_tokens` driving the decoder's
own `denoise` (the training code path) with classifier-free guidance (both branches as one batch of 2), then
`encoders.decode_latents` through the VAE. The transformer has random weights and carries a rank-r LoRA,
folded into the base weights as the decode command does (`--lora unmerged`: peft's separate branch); the
condition latents and the T5 states of the caption and of the negative prompt are random tensors of the right
shapes (decoding one caption with T5 is one encoder call per clip, against 2 × steps transformer calls).
VAE: tiny -> the tiny VAE of the debug recipe; 2b/13b -> `AutoencoderKLLTXVideo()` with its default
(LTX-Video 0.9, 128 latent channels) config and random weights, in bf16 — the same architecture and work as
the released VAE (the 0.9.1+ VAEs add timestep conditioning: similar cost).
ms/frame = seconds for the clip / clip frames (57 at 512×512×57), the paper's unit; ×paper = ours / 396.20.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402  (puts the repository on sys.path)
import decode_settings  # noqa: E402
import flops  # noqa: E402
import torch  # noqa: E402

from disco_train.config.geometry import latent_grid  # noqa: E402
from disco_train.decoder import conditioning as C  # noqa: E402
from disco_train.decoder import speed  # noqa: E402
from disco_train.config import ATTENTION_KERNELS  # noqa: E402
from disco_train.decoder.encoders import decode_latents  # noqa: E402
from disco_train.decoder.sampling import sample_tokens  # noqa: E402

PAPER_DECODE_MS = 396.20  # §4.5, per frame, H100, 13B, 50 steps
PAPER_ENCODE_MS = 97.89  # §4.5, per frame (not measured here: bench_data.py / bench_dcvc_rt.py cover the encoder)
COLUMNS = ("steps", "DiT ms/frame", "VAE ms/frame", "total ms/frame", "×paper", "×50 steps", "TFLOP/s")


def parse(argv):
    p = common.parser(__doc__)
    p.add_argument("--steps", default="50,20,8", help="comma-separated denoising step counts")
    p.add_argument("--guidance", type=float, default=3.0, help="CFG scale (1 = no guidance: one branch)")
    p.add_argument("--rank", type=int, default=256, help="LoRA rank (unmerged, as peft runs it)")
    p.add_argument("--autocast", action="store_true", help="bf16 autocast around sampling (LoRA in bf16 too)")
    p.add_argument("--lora", choices=("merged", "unmerged"), default="merged",
                   help="merged: folded into the base weights, as `python -m disco_train decode` runs it")
    p.add_argument("--attention", choices=ATTENTION_KERNELS, default="default", help="SDPA kernel (model.attention)")
    p.add_argument("--compile", choices=("off", "blocks", "cudagraphs"), default="off",
                   help="blocks: torch.compile each block (model.compile); cudagraphs: the whole transformer with "
                        "mode='reduce-overhead' (CUDA graphs: one launch per call instead of thousands)")
    p.add_argument("--repeats", type=int, default=1, help="timed runs per step count (median)")
    p.add_argument("--flops-only", action="store_true",
                   help="print the decode-settings table (paper / compact / 8 steps no CFG / both / + cache) from "
                        "the analytic count, building nothing")
    p.add_argument("--settings", action="store_true", help="run the decode-settings rows: measured ms/frame too")
    p.add_argument("--ds", type=int, default=4, help="D_s of the compact reference rows (paper default: 4)")
    return p.parse_args(argv)


def build(args, device: str):
    """(module, vae, cfg, grid): the recipe's config with a random transformer and VAE."""
    from disco_train.decoder.decoder import DiscoDecoder
    from disco_train.decoder.models import Backbone, tiny_vae

    over = [f"lora.rank={args.rank}", f"model.attention={args.attention}",
            f"model.compile={args.compile == 'blocks'}", *common.clip_overrides(args)]
    cfg = common.recipe_config(args.config, over)
    dtype = torch.bfloat16 if cfg.model.dtype == "bf16" and device.startswith("cuda") else torch.float32
    if args.config == "tiny":
        vae = tiny_vae(1)
    else:
        from diffusers import AutoencoderKLLTXVideo

        with torch.device(device):
            vae = AutoencoderKLLTXVideo()  # ~0.4e9 parameters: cheap to initialise on the GPU
    vae = vae.to(device=device, dtype=dtype).requires_grad_(False).eval()
    transformer = common.random_transformer(args.config, device, dtype)
    module = DiscoDecoder(cfg, Backbone(transformer, vae, None, None)).to(device).eval()
    if args.lora == "merged":
        with torch.no_grad():  # a random adapter (lora_B is zero at init): merging must still cost nothing later
            for name, p in module.transformer.named_parameters():
                if "lora_B" in name:
                    p.normal_(0.0, 1e-3)
        speed.merge_lora(module.transformer)
    if args.compile == "cudagraphs":
        module.transformer.compile(mode="reduce-overhead")
    grid = latent_grid(cfg.data.frames, cfg.data.height, cfg.data.width)
    return module, vae, cfg, grid


def inputs(module, cfg, grid, device: str):
    model_cfg = module.transformer.config
    g = torch.Generator().manual_seed(0)
    n, L = grid[0] * grid[1] * grid[2], cfg.model.max_text_tokens
    cond = torch.randn(1, n, model_cfg.in_channels, generator=g).to(device)
    text = torch.randn(1, L, model_cfg.caption_channels, generator=g).to(device, module.transformer.dtype)
    mask = torch.ones(1, L, dtype=torch.int64, device=device)
    negative = (torch.randn(1, L, model_cfg.caption_channels, generator=g).to(device, text.dtype), mask)
    coords = C.latent_coords(*grid, 25.0, 1, device)
    return cond, coords, text, mask, negative


def time_decode(module, vae, cfg, grid, steps: int, args) -> tuple[float, float]:
    """Seconds of (denoising loop, VAE decode) for one clip."""
    device = args.device
    cond, coords, text, mask, negative = inputs(module, cfg, grid, device)
    guided = negative if args.guidance != 1.0 else None
    ctx = torch.autocast(device.split(":")[0], torch.bfloat16) if args.autocast else torch.autocast(
        device.split(":")[0], enabled=False)
    with torch.no_grad(), ctx:
        with common.Timer(device) as t_dit:
            tokens = sample_tokens(module.denoise, cond, 1, coords, text, mask, guided, cond.shape[1],
                                   cond.shape[2], steps, args.guidance, cfg.flow.shift_tokens, cfg.flow.shift_values,
                                   torch.Generator(device=device).manual_seed(0))
        with common.Timer(device) as t_vae:
            frames = decode_latents(vae, C.unpack(tokens, *grid))
    if frames.shape[1] != cfg.data.frames:
        raise RuntimeError(f"decoded {frames.shape[1]} frames, expected {cfg.data.frames}")
    return t_dit.seconds, t_vae.seconds


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    common.set_threads(args)
    if args.flops_only or args.settings:
        return settings_table(args)
    common.refuse_large_on_cpu(args.config, args.device)
    steps_list = [int(s) for s in args.steps.split(",")]
    from bench_train import quiet

    quiet()
    module, vae, cfg, grid = build(args, args.device)
    shapes = flops.Shapes(2 * grid[0] * grid[1] * grid[2], cfg.model.max_text_tokens)
    model_cfg = common.CONFIGS[args.config]["model"]
    print(common.bench_header("bench_decode", args))
    print(f"  {cfg.data.frames}×{cfg.data.height}×{cfg.data.width} -> latent {grid}, guidance {args.guidance}, "
          f"LoRA rank {args.rank} {args.lora}, dtype {module.transformer.dtype}, autocast {args.autocast}, "
          f"attention {args.attention}, compile {args.compile}")
    time_decode(module, vae, cfg, grid, 1, args)  # warm-up: kernels, allocator
    results = {}
    for steps in steps_list:
        runs = [time_decode(module, vae, cfg, grid, steps, args) for _ in range(args.repeats)]
        results[steps] = (common.median_s([r[0] for r in runs]), common.median_s([r[1] for r in runs]))
    frames = cfg.data.frames
    print("  " + "".join(f"{c:>15}" for c in COLUMNS))
    ref = results.get(50)
    for steps, (dit, vae_s) in results.items():
        total_ms = 1000 * (dit + vae_s) / frames
        rank = args.rank if args.lora == "unmerged" else 0  # a merged adapter adds no work
        work = flops.sampling_flops(model_cfg, shapes, steps, args.guidance != 1.0, rank, tuple(cfg.lora.targets))
        rel50 = total_ms / (1000 * sum(ref) / frames) if ref else None
        print("  " + f"{steps:>15}{1000 * dit / frames:>15.2f}{1000 * vae_s / frames:>15.2f}{total_ms:>15.2f}"
              f"{total_ms / PAPER_DECODE_MS:>15.3f}{common.fmt(rel50, '.3f', 15)}{work / dit / 1e12:>15.4f}")
    print(f"  (×paper: ÷ {PAPER_DECODE_MS} ms/frame, paper §4.5, 13B, H100; the paper's encoder is "
          f"{PAPER_ENCODE_MS} ms/frame)")
    print(f"  load avg after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


def settings_table(args) -> int:
    """`--flops-only` / `--settings`: the decode-settings rows of `decode_settings`, analytic or also run."""
    cfg = common.recipe_config(args.config, common.clip_overrides(args))
    model_cfg = common.CONFIGS[args.config]["model"]
    measured = None
    if args.settings:
        common.refuse_large_on_cpu(args.config, args.device)
        from bench_train import quiet

        quiet()
        module, _, cfg, _ = build(args, args.device)
        measured = decode_settings.run_rows(module, cfg, args.ds, args.device)
    title = "bench_decode --flops-only" if measured is None else "bench_decode --settings"
    print(common.header(f"{title} --config {args.config} ({common.CONFIGS[args.config]['recipe']})", args.device))
    print(decode_settings.table(model_cfg, cfg, args.ds, measured))
    return 0


if __name__ == "__main__":
    sys.exit(main())
