"""Training RD math of DCVC-RT (rd.py)."""

import math

import pytest
import torch

from disco_train.dcvc_rt import rd
from disco_train.dcvc_rt.color import rgb_to_ycbcr, ycbcr_to_rgb
from disco_train.dcvc_rt.entropy import BitEstimator


def test_ste_round_forward_and_gradient():
    x = torch.tensor([0.4, 0.6, -1.5, 2.5], requires_grad=True)
    y = rd.ste_round(x)
    assert y.tolist() == [0.0, 1.0, -2.0, 2.0]  # round half to even
    y.sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0, 1.0]


def test_uniform_noise_range_and_determinism():
    x = torch.zeros(10000)
    n1 = rd.add_uniform_noise(x, torch.Generator().manual_seed(0))
    n2 = rd.add_uniform_noise(x, torch.Generator().manual_seed(0))
    assert torch.equal(n1, n2)
    assert n1.min() >= -0.5 and n1.max() < 0.5 and abs(n1.mean().item()) < 0.02


def test_gaussian_likelihood_matches_normal_and_is_stable():
    v = torch.arange(-30, 31, dtype=torch.float64)
    s = torch.full_like(v, 1.7)
    p = rd.gaussian_likelihood(v, s)
    normal = torch.distributions.Normal(0.0, 1.7)
    ref = normal.cdf(v + 0.5) - normal.cdf(v - 0.5)
    assert torch.allclose(p[20:41], ref[20:41], atol=1e-12)
    # sums to 1 up to the 1e-9 floor on the ~40 far-tail bins (40 * 1e-9 = 4e-8)
    assert p.sum().item() == pytest.approx(1.0, abs=1e-7)
    assert (p >= rd.LIKELIHOOD_FLOOR).all()
    # the scale is lower-bounded at the coder's minimum 0.11
    assert torch.equal(rd.gaussian_likelihood(v, torch.full_like(v, 0.01)),
                       rd.gaussian_likelihood(v, torch.full_like(v, 0.11)))


def test_bits_and_bpp():
    bits = rd.likelihood_to_bits(torch.tensor([0.5, 1.0, 0.0, 0.25]))
    assert bits[0].item() == pytest.approx(1.0)
    assert bits[1].item() == 0.0
    assert bits[2].item() == pytest.approx(-math.log2(1e-6))  # 19.93
    assert bits[3].item() == pytest.approx(2.0)
    by = torch.ones(2, 4, 2, 2)   # 16 bits per sample
    bz = torch.ones(2, 2, 1, 1)   # 2 bits per sample
    assert rd.bpp(by, bz, 4, 8).tolist() == [18 / 32, 18 / 32]


def test_lambda_interpolation():
    assert rd.lambda_for_qp(0).item() == pytest.approx(10.0)
    assert rd.lambda_for_qp(63).item() == pytest.approx(2048.0)
    assert rd.lambda_for_qp(31.5).item() == pytest.approx(math.sqrt(10 * 2048))
    assert rd.lambda_for_qp([0, 63], "video").tolist() == pytest.approx([1.0, 768.0])
    with pytest.raises(ValueError, match="0..63"):
        rd.lambda_for_qp(64)
    with pytest.raises(ValueError, match="kind"):
        rd.lambda_for_qp(3, "audio")


def test_distortion_weights():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    m = 0.01
    x_hat = x + math.sqrt(m) * torch.tensor([1.0, -1.0], dtype=torch.float64).repeat(32).view(8, 8)
    d = rd.distortion(x_hat, x)
    d_rgb = ((ycbcr_to_rgb(x_hat, clamp=False) - ycbcr_to_rgb(x, clamp=False)) ** 2).mean(dim=(1, 2, 3))
    assert torch.allclose(d, 0.8 * 3 * m + 0.2 * d_rgb)  # equal plane MSEs m -> D_YUV = 3 m
    # Y dominates: the same error on Y alone costs far more than on U alone (weights 10/12 vs 1/12)
    e = torch.zeros_like(x)
    e_y, e_u = e.clone(), e.clone()
    e_y[:, 0], e_u[:, 1] = 0.1, 0.1
    assert (rd.distortion(x + e_y, x) > rd.distortion(x + e_u, x)).all()


def test_rd_loss_and_frame_weights():
    loss = rd.rd_loss(torch.tensor([10.0, 20.0]), torch.tensor([0.01, 0.02]), torch.tensor([0.5, 0.3]))
    assert loss.item() == pytest.approx(((10 * 0.01 + 0.5) + (20 * 0.02 + 0.3)) / 2)
    assert [rd.p_frame_weight(t) for t in range(1, 5)] == [1.33, 0.52, 0.83, 0.52]


def test_rate_gradients_reach_prior_and_latent():
    est = BitEstimator(4, 3)
    z = torch.randn(1, 3, 2, 2, requires_grad=True)
    bits = rd.z_bits(est, z, qp=2, generator=torch.Generator().manual_seed(1))
    assert (bits >= 0).all()
    bits.sum().backward()
    assert est.f1.h.grad[2].abs().sum() > 0 and est.f1.h.grad[0].abs().sum() == 0  # only row qp
    y = torch.randn(1, 4, 3, 3, requires_grad=True)
    scales = torch.rand(1, 4, 3, 3, requires_grad=True)
    rd.y_bits(y, scales + 0.2, torch.zeros_like(y)).sum().backward()
    assert y.grad.abs().sum() > 0 and scales.grad.abs().sum() > 0
    y_hat = rd.quantize_residual_ste(y, torch.full_like(y, 0.3))
    assert torch.allclose(y_hat - 0.3, torch.round(y.detach() - 0.3))


def test_color_round_trip():
    rgb = torch.rand(2, 3, 5, 5, dtype=torch.float64)
    back = ycbcr_to_rgb(rgb_to_ycbcr(rgb, clamp=False), clamp=False)
    assert torch.allclose(back, rgb, atol=2e-4)  # the official rounded factors 0.5389 / 0.6350
