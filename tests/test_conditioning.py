import pytest
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


def test_interleave_units_over_the_frame_major_token_order():
    from disco_train.modalities.interleave import interleave_mask, latent_ownership

    # 3 latent frames of 2×2 tokens. token: i mod 4 < 1 -> one video token per frame, at (row 0, col 0)
    own = latent_ownership((3, 2, 2), (1, 3), "token")
    assert own.tolist() == [[[True, False], [False, False]]] * 3
    # latent_frame: frame f is the video's when f mod 4 < 1 -> frame 0 only; each frame is one modality's
    own = latent_ownership((3, 2, 2), (1, 3), "latent_frame")
    assert own[0].all() and not own[1:].any()
    assert latent_ownership((3, 2, 2), (1, 1), "latent_frame")[:, 0, 0].tolist() == [True, False, True]
    assert torch.equal(interleave_mask(12, (1, 3)), interleave_mask(12, (1, 3), unit="token", frame_tokens=4))
    with pytest.raises(ValueError, match="not whole latent frames"):
        interleave_mask(10, (1, 1), unit="latent_frame", frame_tokens=4)
    with pytest.raises(ValueError, match="unknown interleave unit"):
        interleave_mask(12, (1, 1), unit="frame")


def test_condition_tokens_by_latent_frame():
    video, aux = torch.zeros(1, 12, 2), torch.ones(1, 12, 2)
    cond, copies = C.condition_tokens(video, aux, "interleave", (1, 1), "latent_frame", frame_tokens=4)
    assert copies == 1 and cond[0, :, 0].tolist() == [0.0] * 4 + [1.0] * 4 + [0.0] * 4
    token, _ = C.condition_tokens(video, aux, "interleave", (1, 1))
    assert token[0, :, 0].tolist() == [0.0, 1.0] * 6  # the default alternates inside every frame


def test_decoder_condition_reads_its_unit():
    from test_decoder import _module

    module = _module("condition.mode=interleave", "condition.aux=sketch", "condition.interleave_unit=latent_frame",
                     "condition.ratio=1:1")
    inputs = {"cond": torch.zeros(1, 4, 3, 2, 2), "aux": torch.ones(1, 4, 3, 2, 2)}
    cond, _ = module.condition(inputs)
    assert cond[0, :, 0].tolist() == [0.0] * 4 + [1.0] * 4 + [0.0] * 4


@pytest.mark.parametrize("overrides,message", [
    (["condition.stream=selected"], r"condition\.stream: 'selected' needs condition\.mode=interleave"),
    (["condition.mode=concat", "condition.aux=sketch", "condition.stream=selected"], "needs condition.mode"),
    (["condition.interleave_unit=frame"], r"condition\.interleave_unit: unknown unit 'frame'"),
    (["condition.stream=some"], r"condition\.stream: unknown stream"),
    (["condition.mode=interleave", "condition.aux=sketch", "condition.stream=selected", "condition.ratio=1:70000"],
     r"condition\.ratio: selected streams carry a and b .* u16"),
])
def test_condition_pattern_is_validated(overrides, message):
    from disco_train.config import ConfigError
    from disco_train.config.recipe import resolve

    with pytest.raises(ConfigError, match=message):
        resolve(["recipe=disco_lora_debug", *overrides])
