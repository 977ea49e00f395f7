"""FVD: I3D layout (i3d_pretrained_400.pt keys), preprocessing and feature extraction."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from disco_train.metrics.distribution import FVDFeatures, frechet_distance
from disco_train.metrics.i3d import InceptionI3d, load_i3d, preprocess_clips

_BRANCHES = ["b0", "b1a", "b1b", "b2a", "b2b", "b3b"]
# (input channels, branch output channels) per Mixed block, from pytorch_i3d.py (VideoGPT/TATS port)
_MIXED = {"3b": (192, [64, 96, 128, 16, 32, 32]), "3c": (256, [128, 128, 192, 32, 96, 64]),
          "4b": (480, [192, 96, 208, 16, 48, 64]), "4c": (512, [160, 112, 224, 24, 64, 64]),
          "4d": (512, [128, 128, 256, 24, 64, 64]), "4e": (512, [112, 144, 288, 32, 64, 64]),
          "4f": (528, [256, 160, 320, 32, 128, 128]), "5b": (832, [256, 160, 320, 32, 128, 128]),
          "5c": (832, [384, 192, 384, 48, 128, 128])}


def _expected_shapes():
    units = {"Conv3d_1a_7x7": (64, 3, 7, 7, 7), "Conv3d_2b_1x1": (64, 64, 1, 1, 1),
             "Conv3d_2c_3x3": (192, 64, 3, 3, 3)}
    for name, (c_in, c) in _MIXED.items():
        ins = [c_in, c_in, c[1], c_in, c[3], c_in]
        ks = [1, 1, 3, 1, 3, 1]
        for br, ci, co, k in zip(_BRANCHES, ins, c, ks):
            units[f"Mixed_{name}.{br}"] = (co, ci, k, k, k)
    shapes = {}
    for unit, w in units.items():
        shapes[f"{unit}.conv3d.weight"] = w
        for p in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{unit}.bn.{p}"] = (w[0],)
    shapes["logits.conv3d.weight"] = (400, 1024, 1, 1, 1)
    shapes["logits.conv3d.bias"] = (400,)
    return shapes


def test_i3d_state_dict_matches_i3d_pretrained_400_layout():
    expected = _expected_shapes()
    assert len(expected) == 57 * 5 + 2 == 287
    sd = InceptionI3d(400).state_dict()
    got = {k: tuple(v.shape) for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    assert got == expected
    # concat widths must chain: output of each Mixed block = sum of b0, b1b, b2b, b3b
    names = list(_MIXED)
    for a, b in zip(names, names[1:]):
        c = _MIXED[a][1]
        assert c[0] + c[2] + c[4] + c[5] == _MIXED[b][0]


def test_preprocess_matches_reference_scaling():
    clips = torch.full((2, 3, 10, 12, 3), 255, dtype=torch.uint8)
    clips[1] = 0
    x = preprocess_clips(clips)
    assert x.shape == (2, 3, 3, 224, 224)
    assert torch.allclose(x[0], torch.ones(1)) and torch.allclose(x[1], -torch.ones(1))
    with pytest.raises(ValueError, match=r"\(B, T, H, W, 3\)"):
        preprocess_clips(clips[0])


def test_preprocess_scales_the_short_side_and_centre_crops():
    # VideoGPT: 36x64 -> short side 224, long side ceil(64 * 224 / 36) = 399, then columns 87..310
    clips = torch.randint(0, 256, (1, 2, 36, 64, 3), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    frames = clips[0].permute(0, 3, 1, 2).float() / 255.0
    want = F.interpolate(frames, size=(224, 399), mode="bilinear", align_corners=False)[:, :, :, 87:311]
    want = (want - 0.5) * 2  # (T, 3, 224, 224) in [-1, 1]
    got = preprocess_clips(clips)
    assert got.shape == (1, 3, 2, 224, 224)
    torch.testing.assert_close(got[0].transpose(0, 1), want, atol=1e-5, rtol=0)
    # portrait frames crop rows; a square clip is a plain resize
    torch.testing.assert_close(preprocess_clips(clips.transpose(2, 3))[0], got[0].transpose(2, 3), atol=1e-5, rtol=0)
    square = clips[:, :, :, :36]
    plain = F.interpolate(square[0].permute(0, 3, 1, 2).float(), size=(224, 224), mode="bilinear", align_corners=False)
    torch.testing.assert_close(preprocess_clips(square)[0].transpose(0, 1), 2 * plain / 255 - 1, atol=1e-5, rtol=0)


def test_too_short_clip_is_rejected():
    with pytest.raises(ValueError, match=">= 9 frames"):
        InceptionI3d()(torch.zeros(1, 3, 4, 64, 64))


def test_missing_i3d_weights_message(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"i3d_pretrained_400\.pt.*1mQK8KD8G6UWRa5t87SRMm5PVXtlpneJT"):
        load_i3d(tmp_path)


@pytest.mark.slow
def test_fvd_features_with_random_weights(tmp_path):
    g = torch.Generator().manual_seed(0)
    state = {}
    for k, v in InceptionI3d(400).state_dict().items():
        if k.endswith("running_var"):
            state[k] = torch.rand(v.shape, generator=g) + 0.5
        elif v.is_floating_point():
            state[k] = torch.randn(v.shape, generator=g) * 0.05
    torch.save(state, tmp_path / "i3d_pretrained_400.pt")
    feats = FVDFeatures.from_weights(tmp_path)
    clips = np.random.default_rng(0).integers(0, 256, size=(2, 16, 32, 32, 3), dtype=np.uint8)
    f = feats(clips)
    assert f.shape == (2, 400) and np.isfinite(f).all() and f.std() > 0
    np.testing.assert_allclose(feats(clips[1:]), f[1:], rtol=1e-4, atol=1e-6)
    assert frechet_distance(f, f) == pytest.approx(0.0, abs=1e-6)
