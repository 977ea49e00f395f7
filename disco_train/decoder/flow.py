"""Rectified-flow math, free of Lightning and diffusers so it is unit-tested on its own.

Convention (LTX-Video and its trainers): x_t = (1 - σ)·x0 + σ·ε, the network predicts the velocity
v = ε - x0, and sampling integrates dx/dσ = v from σ = 1 (noise) to σ = 0 (data). The transformer's timestep
input is σ·1000. Training and sampling share `shift_for_tokens` so the σ distribution seen in training matches
the schedule used at inference (the public trainers drift here; we must not).
"""

from __future__ import annotations

import math

import torch

from disco_train.config.decoder import DISTILLED_SIGMAS, SCHEDULES, SHIFT_TOKENS, SHIFT_VALUES

TIMESTEP_SCALE = 1000.0
"""LTX-Video embeds σ·1000 as its timestep."""


def shift_for_tokens(num_tokens: int, tokens: tuple[int, int] = SHIFT_TOKENS,
                     values: tuple[float, float] = SHIFT_VALUES) -> float:
    """Logit-normal mean for a target sequence of `num_tokens` tokens, linear in the token count, unclamped.

    512×512×57: latent 16×16×8 = 2048 tokens -> 0.95 + (2048-1024)·(1.10/3072) = 1.3167.
    """
    slope = (values[1] - values[0]) / (tokens[1] - tokens[0])
    return values[0] + slope * (num_tokens - tokens[0])


def sample_sigmas(batch_size: int, num_tokens: int, sampler: str = "shifted_logit_normal", std: float = 1.0,
                  tokens: tuple[int, int] = SHIFT_TOKENS, values: tuple[float, float] = SHIFT_VALUES,
                  generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> torch.Tensor:
    """One σ in (0, 1) per sample."""
    if sampler == "uniform":
        return torch.rand(batch_size, generator=generator, device=device)
    if sampler != "shifted_logit_normal":
        raise ValueError(f"unknown sigma sampler {sampler!r}")
    mean = shift_for_tokens(num_tokens, tokens, values)
    normal = torch.randn(batch_size, generator=generator, device=device)
    return torch.sigmoid(normal * std + mean)


def interpolate(x0: torch.Tensor, noise: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """x_t = (1 - σ)·x0 + σ·ε, with σ broadcast per sample (first dimension)."""
    s = sigmas.reshape(-1, *([1] * (x0.dim() - 1))).to(x0.dtype)
    return (1.0 - s) * x0 + s * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """d x_t / dσ = ε - x0: what the network learns to predict."""
    return noise - x0


def flow_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample MSE [B]. `pred` holds only the target tokens (`conditioning.target_slice`): the condition tokens
    are cut away before the loss, so they need no mask."""
    return (pred.float() - target.float()).pow(2).flatten(1).mean(1)


def sampling_sigmas(steps: int, num_tokens: int, tokens: tuple[int, int] = SHIFT_TOKENS,
                    values: tuple[float, float] = SHIFT_VALUES) -> torch.Tensor:
    """Inference schedule of `steps` Euler steps from σ=1 to σ=0 (steps + 1 values).

    Uses the same shift as training: a uniform grid u is warped by the logit shift μ, σ = e^μ / (e^μ + 1/u - 1)
    (the time-shift used by flow-matching schedulers), so the density of steps follows the training
    distribution's location.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    mu = shift_for_tokens(num_tokens, tokens, values)
    u = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    shifted = torch.zeros_like(u)
    inner = u > 0
    shifted[inner] = math.exp(mu) / (math.exp(mu) + (1.0 / u[inner] - 1.0))
    return shifted.float()


def euler_step(x: torch.Tensor, velocity: torch.Tensor, sigma: float, sigma_next: float) -> torch.Tensor:
    """One Euler step of dx/dσ = v from σ to σ_next (σ_next < σ)."""
    return x + (sigma_next - sigma) * velocity



def schedule_steps(schedule: str, steps: int | None) -> int:
    """How many Euler steps a schedule takes (a distilled list: its own length)."""
    return steps if schedule == "shifted" else len(DISTILLED_SIGMAS[schedule]) - 1


def schedule_sigmas(schedule: str, steps: int | None, num_tokens: int, tokens: tuple[int, int] = SHIFT_TOKENS,
                    values: tuple[float, float] = SHIFT_VALUES) -> torch.Tensor:
    """The σ values (steps + 1, from 1 to 0) of a named schedule. A distilled list fixes the step count: `steps`
    must be None or its length."""
    if schedule == "shifted":
        return sampling_sigmas(steps, num_tokens, tokens, values)
    if schedule not in DISTILLED_SIGMAS:
        raise ValueError(f"schedule={schedule!r}: choose one of {', '.join(SCHEDULES)}")
    sigmas = DISTILLED_SIGMAS[schedule]
    if steps is not None and steps != len(sigmas) - 1:
        raise ValueError(f"schedule={schedule} is a fixed list of {len(sigmas) - 1} steps; steps={steps} does not "
                         f"fit it (leave steps unset)")
    return torch.tensor(sigmas, dtype=torch.float32)
