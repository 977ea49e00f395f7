import torch

from disco_train.config.geometry import latent_grid

from disco_train.decoder import conditioning as C


def test_pack_unpack_round_trip():
    x = torch.randn(2, 16, 3, 4, 5)
    tokens = C.pack(x)
    assert tokens.shape == (2, 60, 16)
    assert torch.equal(C.unpack(tokens, 3, 4, 5), x)
    assert torch.equal(tokens[0, 1], x[0, :, 0, 0, 1])  # width fastest, then height, then frames


def test_latent_grid_of_paper_clip():
    assert latent_grid(57, 512, 512) == (8, 16, 16)  # 2048 target tokens


def test_coords_units_and_causal_time():
    coords = C.latent_coords(3, 2, 2, fps=torch.tensor([24.0]), batch=1)
    assert coords.shape == (1, 3, 12)
    t = coords[0, 0].reshape(3, 4)[:, 0]
    assert torch.allclose(t, torch.tensor([0.0, 1 / 24, 9 / 24]))  # max(0, 8f+1-8)/fps
    assert coords[0, 1].max() == 32 and coords[0, 2].max() == 32


def test_condition_tokens_share_target_coordinates_and_get_timestep_zero():
    b, n, c = 2, 12, 8
    noisy, video, aux = torch.randn(b, n, c), torch.randn(b, n, c), torch.randn(b, n, c)
    coords = C.latent_coords(3, 2, 2, fps=24.0, batch=b)
    sigmas = torch.tensor([0.2, 0.9])
    for mode, copies in (("video_only", 1), ("interleave", 1), ("concat", 2)):
        cond, k = C.condition_tokens(video, aux, mode, (1, 3))
        assert k == copies
        tokens, all_coords, timesteps = C.assemble(noisy, cond, k, coords, sigmas)
        assert tokens.shape == (b, (k + 1) * n, c)
        assert torch.equal(tokens[:, -n:], noisy)
        for copy in range(k):
            assert torch.equal(all_coords[:, :, copy * n:(copy + 1) * n], all_coords[:, :, -n:])
        assert torch.all(timesteps[:, :k * n] == 0)
        assert torch.allclose(timesteps[:, -n:], (sigmas * 1000)[:, None].expand(b, n))
    pred = torch.randn(b, 2 * n, c)
    assert torch.equal(C.target_slice(pred, n), pred[:, n:])
