"""Analytic FLOP count of one LTX-Video transformer call, forward and LoRA training backward (for MFU).

What is counted: matrix multiplications only (Linear, QKᵀ, AV), at 2 FLOPs per multiply-add, bias adds not
included — the same convention as `torch.utils.flop_counter.FlopCounterMode`, which the unit test compares
against for the tiny config. Norms, RoPE, GELU, softmax and the adaLN modulation are elementwise: O(S·D) per
block against O(S·D²) for the matmuls, i.e. < 1 % at D = 4096, and left out.

Symbols, per sample: S tokens in the transformer sequence ([condition ‖ target]: 2 × 2048 = 4096 at
512×512×57), L text tokens (T5, 128), D = heads × head_dim, C_in/C_out latent channels (128), C_cap caption
channels (4096), r the LoRA rank. A Linear in→out over M rows costs 2·M·in·out.

Forward, per sample:
- proj_in 2·S·C_in·D; caption projection 2·L·(C_cap·D + D·D); proj_out 2·S·D·C_out.
- timestep embedding: LTX embeds one timestep PER TOKEN (condition tokens at t = 0, target at σ·1000), so
  256→D, D→D and the adaLN D→6D linear run on S rows: 2·S·(256·D + D² + 6·D²).
- per block: self-attention q, k, v, out 4 × 2·S·D²; QKᵀ and AV over the full sequence 2 × 2·S²·D;
  cross-attention q, out 2 × 2·S·D², k, v on the text 2 × 2·L·D², QKᵀ and AV 2 × 2·S·L·D;
  FFN D→4D→D 2 × 2·S·4·D².
- LoRA on a targeted Linear: 2·M·r·(in + out) (x·Aᵀ then ·Bᵀ).

Backward of a LoRA step (the base is frozen; the tokens, text and timesteps need no gradient):
- a frozen Linear costs only its input gradient (2·M·in·out, same as forward), and nothing at all when its
  input needs no gradient: proj_in, the timestep embedding, the caption projection, the cross-attention k/v
  base projections (their input is the projected text) and block 0's self-attention q/k/v (its input derives
  from the tokens only) are forward-only.
- a LoRA adapter costs its two weight gradients 2·M·r·(in + out), B's input gradient 2·M·r·out, and A's input
  gradient 2·M·r·in only when the adapted Linear's input needs a gradient.
- attention: dV = Pᵀ·dO, dP = dO·Vᵀ, dQ = dS·K, dK = dSᵀ·Q, each 2·Sq·Sk·D, counted for the inputs that need a
  gradient (so 2× forward when q, k and v all do). Fused kernels also recompute QKᵀ in backward (one more
  2·Sq·Sk·D) — that is hardware work, not model work, and is not counted (MFU, not HFU). Gradient
  checkpointing likewise adds a recomputed forward that is not counted.
So the frozen-base step is ≈ 2× forward for the base matmuls rather than the usual 3× (no weight gradients).
`dense_equivalent` also gives the conventional 3 × forward (6·N·T-style, as if every weight were trained), the
figure to use when comparing with full-finetuning MFU numbers.

Example, 13B at 512×512×57 (S = 4096, L = 128, D = 4096, 48 blocks, rank 256 on q/k/v/out of both
attentions): forward ≈ 112.4 TFLOP of which self-attention QKᵀ+AV ≈ 13.2 TFLOP; the LoRA step ≈ 241.5 TFLOP,
so 1.0 s/step on a 989 TFLOP/s H100 is ≈ 24 % MFU and the paper's ≈ 2.0 s/step ≈ 12 % (`bench_train.py
--flops-only` prints the exact figures).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

TIMESTEP_CHANNELS = 256  # diffusers PixArtAlphaCombinedTimestepSizeEmbeddings: Timesteps(num_channels=256)
FFN_MULT = 4  # diffusers FeedForward default: D -> 4D -> D

PEAK_FLOPS = {  # dense bf16 tensor-core peak, FLOP/s (vendor datasheets, SXM parts)
    "H100": 989e12,
    "H200": 989e12,  # same compute die as the H100 SXM, more/faster memory
}


def peak_flops_for(device_name: str) -> float | None:
    for key, value in PEAK_FLOPS.items():
        if key in device_name:
            return value
    return None


@dataclass
class Shapes:
    seq: int  # tokens in the transformer sequence: condition + target
    text: int  # T5 tokens
    batch: int = 1


class Tally:
    """FLOPs per (phase, part), with the Linear / LoRA / attention rules of the module docstring."""

    def __init__(self, rank: int, targets: tuple[str, ...], backward: bool):
        self.rank, self.targets, self.backward = rank, tuple(targets), backward
        self.parts: dict[tuple[str, str], float] = defaultdict(float)

    def linear(self, name: str, rows: int, d_in: int, d_out: int, x_grad: bool, part: str) -> bool:
        """A (possibly LoRA-adapted) frozen Linear. Returns whether its output needs a gradient."""
        base = 2.0 * rows * d_in * d_out
        self.parts["forward", part] += base
        if self.backward and x_grad:
            self.parts["backward", part] += base
        lora = self.rank > 0 and any(name == t or name.endswith("." + t) for t in self.targets)
        if lora:
            r = self.rank
            self.parts["forward", "lora"] += 2.0 * rows * r * (d_in + d_out)
            if self.backward:
                # weight grads of A and B, input grad of B, input grad of A if x needs one
                self.parts["backward", "lora"] += 2.0 * rows * r * (d_in + 2 * d_out + (d_in if x_grad else 0))
        return x_grad or lora

    def attention(self, sq: int, sk: int, dim: int, q_grad: bool, k_grad: bool, v_grad: bool, part: str) -> bool:
        unit = 2.0 * sq * sk * dim
        self.parts["forward", part] += 2 * unit  # QKᵀ and AV
        if self.backward:
            self.parts["backward", part] += unit * (v_grad + (q_grad or k_grad) + q_grad + k_grad)
        return q_grad or k_grad or v_grad

    def total(self, phase: str | None = None) -> float:
        return sum(v for (p, _), v in self.parts.items() if phase is None or p == phase)


def _block(t: Tally, i: int, s: int, L: int, d: int, h_grad: bool) -> bool:
    """One transformer block for one sample; returns whether the hidden stream needs a gradient after it."""
    p = f"transformer_blocks.{i}"
    q = t.linear(f"{p}.attn1.to_q", s, d, d, h_grad, "self_proj")
    k = t.linear(f"{p}.attn1.to_k", s, d, d, h_grad, "self_proj")
    v = t.linear(f"{p}.attn1.to_v", s, d, d, h_grad, "self_proj")
    a = t.attention(s, s, d, q, k, v, "self_attn")
    h_grad = t.linear(f"{p}.attn1.to_out.0", s, d, d, a, "self_proj") or h_grad
    q = t.linear(f"{p}.attn2.to_q", s, d, d, h_grad, "cross_proj")
    k = t.linear(f"{p}.attn2.to_k", L, d, d, False, "cross_proj")
    v = t.linear(f"{p}.attn2.to_v", L, d, d, False, "cross_proj")
    a = t.attention(s, L, d, q, k, v, "cross_attn")
    h_grad = t.linear(f"{p}.attn2.to_out.0", s, d, d, a, "cross_proj") or h_grad
    f = t.linear(f"{p}.ff.net.0.proj", s, d, FFN_MULT * d, h_grad, "ffn")
    return t.linear(f"{p}.ff.net.2", s, FFN_MULT * d, d, f, "ffn") or h_grad


def transformer_flops(config: dict, shapes: Shapes, rank: int = 0, targets: tuple[str, ...] = (),
                      backward: bool = False) -> Tally:
    """FLOPs of one call of `LTXVideoTransformer3DModel(**config)` (+ LoRA, + backward of a LoRA step)."""
    d = config["num_attention_heads"] * config["attention_head_dim"]
    s, L = shapes.seq, shapes.text
    t = Tally(rank, targets, backward)
    t.linear("proj_in", s, config["in_channels"], d, False, "embed")
    t.linear("time_embed.emb.timestep_embedder.linear_1", s, TIMESTEP_CHANNELS, d, False, "embed")
    t.linear("time_embed.emb.timestep_embedder.linear_2", s, d, d, False, "embed")
    t.linear("time_embed.linear", s, d, 6 * d, False, "embed")
    t.linear("caption_projection.linear_1", L, config["caption_channels"], d, False, "embed")
    t.linear("caption_projection.linear_2", L, d, d, False, "embed")
    h_grad = False
    for i in range(config["num_layers"]):
        h_grad = _block(t, i, s, L, d, h_grad)
    t.linear("proj_out", s, d, config["out_channels"], h_grad, "embed")
    for key in t.parts:
        t.parts[key] *= shapes.batch
    return t


def dense_equivalent(config: dict, shapes: Shapes) -> float:
    """The conventional 3 × forward count (every weight trained): for comparison with full-finetune MFU."""
    return 3 * transformer_flops(config, shapes).total("forward")


def train_step_flops(config: dict, shapes: Shapes, rank: int, targets: tuple[str, ...]) -> float:
    return transformer_flops(config, shapes, rank, targets, backward=True).total()


def sampling_flops(config: dict, shapes: Shapes, steps: int, guidance: bool, rank: int = 0,
                   targets: tuple[str, ...] = ()) -> float:
    """Denoising loop of `reconstruct`: one forward per step, on a batch of 2 with classifier-free guidance.
    The LoRA is counted unmerged (as peft runs it at inference unless merged)."""
    batch = Shapes(shapes.seq, shapes.text, shapes.batch * (2 if guidance else 1))
    return steps * transformer_flops(config, batch, rank, targets).total("forward")


def unit_for(value: float) -> tuple[float, str]:
    """The largest of T/G/M FLOP that keeps `value` >= 1 (13B: TFLOP; tiny: MFLOP)."""
    for scale, unit in ((1e12, "TFLOP"), (1e9, "GFLOP"), (1e6, "MFLOP")):
        if value >= scale:
            return scale, unit
    return 1.0, "FLOP"


def format_table(t: Tally) -> str:
    parts = sorted({part for _, part in t.parts})
    scale, unit = unit_for(t.total())
    lines = [f"  {'part':<12}{'forward ' + unit:>15}{'backward ' + unit:>16}"]
    for part in parts:
        lines.append(f"  {part:<12}{t.parts['forward', part] / scale:>15.4f}{t.parts['backward', part] / scale:>16.4f}")
    lines.append(f"  {'total':<12}{t.total('forward') / scale:>15.4f}{t.total('backward') / scale:>16.4f}")
    return "\n".join(lines)
