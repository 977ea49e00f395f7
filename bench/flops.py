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


def _adaln(t: Tally, name: str, rows: int, d: int, mods: int) -> None:
    """diffusers `LTX2AdaLayerNormSingle`: sinusoid(256) -> D -> D, then D -> mods·D, on `rows` timesteps."""
    t.linear(f"{name}.emb.timestep_embedder.linear_1", rows, TIMESTEP_CHANNELS, d, False, "embed")
    t.linear(f"{name}.emb.timestep_embedder.linear_2", rows, d, d, False, "embed")
    t.linear(f"{name}.linear", rows, d, mods * d, False, "embed")


def _ltx2_stream(t: Tally, p: str, rows: int, text: int, d: int, kv_in: int, heads: int, gated: bool,
                 h_grad: bool, part: str) -> bool:
    """One LTX-2 block's self-attention, text cross-attention and FFN of one stream (video: `p`, audio:
    `p.audio_`), each attention with its per-head gate when the model has gated attention (22B)."""
    for attn, sk, k_in in (("attn1", rows, d), ("attn2", text, kv_in)):
        pa = f"{p}{attn}"
        q = t.linear(f"{pa}.to_q", rows, d, d, h_grad, part)
        k = t.linear(f"{pa}.to_k", sk, k_in, d, h_grad and attn == "attn1", part)
        v = t.linear(f"{pa}.to_v", sk, k_in, d, h_grad and attn == "attn1", part)
        a = t.attention(rows, sk, d, q, k, v, part)
        if gated:
            a = t.linear(f"{pa}.to_gate_logits", rows, d, heads, h_grad, part) or a
        h_grad = t.linear(f"{pa}.to_out.0", rows, d, d, a, part) or h_grad
    f = t.linear(f"{p}ff.net.0.proj", rows, d, FFN_MULT * d, h_grad, part)
    return t.linear(f"{p}ff.net.2", rows, FFN_MULT * d, d, f, part) or h_grad


def ltx2_flops(config: dict, shapes: Shapes, rank: int = 0, targets: tuple[str, ...] = (),
               backward: bool = False) -> Tally:
    """FLOPs of one video-only call of `LTX2VideoTransformer3DModel(**config)` as `decoder.family.LTX2` makes it:
    one audio token and one audio text token, `isolate_modalities=True` (the audio↔video attentions do not run).
    Beyond LTX-Video's count: the per-token a2v scale/shift and gate adaLNs (they run on every video timestep even
    when isolated), the audio stream ("audio" part, no gradient: no LoRA there), gates and prompt adaLNs (22B)."""
    g = lambda k, v=False: config.get(k, v)  # noqa: E731  (diffusers defaults for keys a config leaves out)
    d = config["num_attention_heads"] * config["attention_head_dim"]
    da = config["audio_num_attention_heads"] * config["audio_attention_head_dim"]
    s, L, a = shapes.seq, shapes.text, 1
    t = Tally(rank, targets, backward)
    t.linear("proj_in", s, config["in_channels"], d, False, "embed")
    t.linear("audio_proj_in", a, config["audio_in_channels"], da, False, "audio")
    if g("use_prompt_embeddings", True):
        t.linear("caption_projection.linear_1", L, config["caption_channels"], d, False, "embed")
        t.linear("caption_projection.linear_2", L, d, d, False, "embed")
        t.linear("audio_caption_projection.linear_1", a, config["caption_channels"], da, False, "audio")
        t.linear("audio_caption_projection.linear_2", a, da, da, False, "audio")
    _adaln(t, "time_embed", s, d, 9 if g("cross_attn_mod") else 6)
    _adaln(t, "audio_time_embed", 1, da, 9 if g("audio_cross_attn_mod") else 6)
    if g("cross_attn_mod") or g("audio_cross_attn_mod"):
        _adaln(t, "prompt_adaln", 1, d, 2)
        _adaln(t, "audio_prompt_adaln", 1, da, 2)
    _adaln(t, "av_cross_attn_video_scale_shift", s, d, 4)
    _adaln(t, "av_cross_attn_video_a2v_gate", s, d, 1)
    _adaln(t, "av_cross_attn_audio_scale_shift", 1, da, 4)
    _adaln(t, "av_cross_attn_audio_v2a_gate", 1, da, 1)
    h_grad = False
    for i in range(config["num_layers"]):
        p = f"transformer_blocks.{i}."
        h_grad = _ltx2_stream(t, p, s, L, d, config["cross_attention_dim"], config["num_attention_heads"],
                              g("gated_attn"), h_grad, "video")
        _ltx2_stream(t, p + "audio_", a, 1, da, config["audio_cross_attention_dim"],
                     config["audio_num_attention_heads"], g("audio_gated_attn"), False, "audio")
    t.linear("proj_out", s, d, config["out_channels"], h_grad, "embed")
    t.linear("audio_proj_out", a, da, config["audio_out_channels"], False, "audio")
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


RECIPES = (("LTX-Video 13B", "disco_lora"), ("LTX-2 19B", "disco_lora_ltx2"), ("LTX-2.3/2.5 22B", "disco_lora_ltx25"))


def recipe_step(recipe: str) -> tuple[Tally, Tally, int, int]:
    """(forward, LoRA training step) tallies of a recipe's backbone at its clip size, rank, targets and text length
    (condition + target tokens), and its (text tokens, sequence)."""
    from disco_train.config.geometry import latent_grid
    from disco_train.config.recipe import resolve
    from disco_train.decoder.models import transformer_config

    cfg, _, _ = resolve([f"recipe={recipe}"])
    config = transformer_config(cfg.model.name, cfg.model.family)
    f, h, w = latent_grid(cfg.data.frames, cfg.data.height, cfg.data.width)
    shapes = Shapes(2 * f * h * w, cfg.model.max_text_tokens)
    count = ltx2_flops if cfg.model.family == "ltx2" else transformer_flops
    targets = tuple(cfg.lora.targets)
    return (count(config, shapes), count(config, shapes, cfg.lora.rank, targets, backward=True),
            shapes.text, shapes.seq)


def main() -> int:
    """`python bench/flops.py`: one DiSCo step of each backbone's recipe, side by side (analytic, TFLOP)."""
    rows, base = [], None
    for label, recipe in RECIPES:
        fwd, step, text, seq = recipe_step(recipe)
        base = base or step.total()
        audio = fwd.parts["forward", "audio"]
        rows.append(f"| {label} | `{recipe}` | {seq} + {text} text | {fwd.total('forward') / 1e12:.1f} | "
                    f"{audio / 1e9:.3f} | {step.total() / 1e12:.1f} | {step.total() / base:.2f} |")
    print("| backbone | recipe | tokens | base forward TFLOP | audio stream GFLOP | LoRA step TFLOP | step vs 13B |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    raise SystemExit(main())
