import torch

from disco_train.decoder import flow


def test_interpolation_endpoints_and_target():
    x0, eps = torch.randn(3, 5, 4), torch.randn(3, 5, 4)
    assert torch.equal(flow.interpolate(x0, eps, torch.zeros(3)), x0)
    assert torch.equal(flow.interpolate(x0, eps, torch.ones(3)), eps)
    mid = flow.interpolate(x0, eps, torch.tensor([0.25, 0.5, 0.75]))
    assert torch.allclose(mid[1], 0.5 * x0[1] + 0.5 * eps[1])
    assert torch.equal(flow.velocity_target(x0, eps), eps - x0)
    # the velocity is the derivative of x_t in σ
    s = torch.full((3,), 0.3)
    assert torch.allclose(flow.interpolate(x0, eps, s + 0.1) - flow.interpolate(x0, eps, s),
                          0.1 * flow.velocity_target(x0, eps), atol=1e-6)


def test_euler_step_with_exact_velocity_recovers_data():
    x0, eps = torch.randn(2, 6, 3), torch.randn(2, 6, 3)
    sigmas = flow.sampling_sigmas(4, 2048)
    x = eps.clone()
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        x = flow.euler_step(x, eps - x0, float(s), float(s_next))
    assert torch.allclose(x, x0, atol=1e-5)


def test_sampling_sigmas_endpoints_and_monotone():
    s = flow.sampling_sigmas(50, 2048)
    assert s.shape == (51,) and s[0] == 1.0 and s[-1] == 0.0
    assert torch.all(s[1:] < s[:-1])


def test_shift_is_linear_in_tokens():
    assert abs(flow.shift_for_tokens(1024) - 0.95) < 1e-9
    assert abs(flow.shift_for_tokens(4096) - 2.05) < 1e-9
    assert abs(flow.shift_for_tokens(2048) - (0.95 + 1024 * 1.1 / 3072)) < 1e-9


def test_sigma_samplers():
    g = torch.Generator().manual_seed(0)
    short = flow.sample_sigmas(20000, 1024, generator=g)
    long = flow.sample_sigmas(20000, 4096, generator=g)
    assert short.min() > 0 and long.max() < 1
    assert long.mean() > short.mean() + 0.1  # longer sequences train at more noise
    u = flow.sample_sigmas(20000, 4096, "uniform", generator=g)
    assert abs(u.mean().item() - 0.5) < 0.02


def test_flow_loss_is_a_per_sample_mse():
    pred, target = torch.zeros(2, 4, 3), torch.zeros(2, 4, 3)
    target[0, :2] = 10.0  # sample 0: error 100 on half its values
    assert torch.allclose(flow.flow_loss(pred, target), torch.tensor([50.0, 0.0]))
