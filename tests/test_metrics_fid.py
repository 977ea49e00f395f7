"""FID: Fréchet distance numerics and the plain-torch pytorch-fid InceptionV3 (layout, loading, forward)."""

import numpy as np
import pytest
import torch

from disco_train.metrics.distribution import FIDFeatures, frechet_distance, load_fid_inception
from disco_train.metrics.inception import FIDInceptionV3

# BasicConv2d names of torchvision's Inception3 blocks (torchvision/models/inception.py), per block type.
_A = ["branch1x1", "branch5x5_1", "branch5x5_2", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3", "branch_pool"]
_B = ["branch3x3", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"]
_C = ["branch1x1", "branch7x7_1", "branch7x7_2", "branch7x7_3"] + [f"branch7x7dbl_{i}" for i in range(1, 6)] + [
    "branch_pool"]
_D = ["branch3x3_1", "branch3x3_2"] + [f"branch7x7x3_{i}" for i in range(1, 5)]
_E = ["branch1x1", "branch3x3_1", "branch3x3_2a", "branch3x3_2b", "branch3x3dbl_1", "branch3x3dbl_2",
      "branch3x3dbl_3a", "branch3x3dbl_3b", "branch_pool"]
BLOCKS = {"5b": _A, "5c": _A, "5d": _A, "6a": _B, "6b": _C, "6c": _C, "6d": _C, "6e": _C, "7a": _D, "7b": _E,
          "7c": _E}
STEM = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3"]
CONVS = STEM + [f"Mixed_{b}.{n}" for b, names in BLOCKS.items() for n in names]
# pt_inception-2015-12-05-6726825d.pth: every BasicConv2d has conv.weight (no bias) and BN affine+stats;
# plus the 1008-way fc. With num_batches_tracked that is 94 * 6 + 2 = 566 entries.
EXPECTED_KEYS = {f"{c}.conv.weight" for c in CONVS} | {
    f"{c}.bn.{p}" for c in CONVS for p in ("weight", "bias", "running_mean", "running_var")} | {
    "fc.weight", "fc.bias"}
SOME_SHAPES = {
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3), "Conv2d_4a_3x3.conv.weight": (192, 80, 3, 3),
    "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1), "Mixed_5d.branch5x5_2.conv.weight": (64, 48, 5, 5),
    "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3), "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
    "Mixed_6b.branch7x7_2.conv.weight": (128, 128, 1, 7), "Mixed_7a.branch3x3_2.conv.weight": (320, 192, 3, 3),
    "Mixed_7b.branch3x3dbl_1.conv.weight": (448, 1280, 1, 1), "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1),
    "Mixed_7c.branch3x3_2b.bn.running_var": (384,), "fc.weight": (1008, 2048), "fc.bias": (1008,),
}


def test_frechet_distance_identical_and_closed_form():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 8))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    # 1-D: y = 2x + 3 -> (m + 3)^2 + s + 4s - 2*sqrt(4 s^2) = (m + 3)^2 + s
    x = rng.normal(size=(1000, 1))
    m, s = x.mean(), np.var(x, ddof=1)
    assert frechet_distance(x, 2 * x + 3) == pytest.approx((m + 3) ** 2 + s, rel=1e-9)
    # symmetric, positive, and more samples than dims not required (rank-deficient covariance)
    b = rng.normal(loc=0.5, size=(6, 8))
    assert frechet_distance(a[:6], b) == pytest.approx(frechet_distance(b, a[:6]), rel=1e-6)
    assert frechet_distance(a[:6], b) > 0


def test_frechet_distance_input_errors():
    with pytest.raises(ValueError, match="N >= 2"):
        frechet_distance(np.zeros((1, 4)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="dimensions differ"):
        frechet_distance(np.zeros((3, 4)), np.zeros((3, 5)))


def test_inception_state_dict_matches_pytorch_fid_file_layout():
    assert len(CONVS) == 94 and len(EXPECTED_KEYS) == 94 * 5 + 2
    sd = FIDInceptionV3().state_dict()
    assert {k for k in sd if not k.endswith("num_batches_tracked")} == EXPECTED_KEYS
    assert len(sd) == 566
    for key, shape in SOME_SHAPES.items():
        assert tuple(sd[key].shape) == shape, key


@pytest.fixture(scope="module")
def inception_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("fidw")
    g = torch.Generator().manual_seed(0)
    state = {}
    for k, v in FIDInceptionV3().state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue  # TF-converted files may not have it; the loader must cope
        if k.endswith("running_var"):
            state[k] = torch.rand(v.shape, generator=g) + 0.5
        elif v.is_floating_point():
            state[k] = torch.randn(v.shape, generator=g) * 0.05
    torch.save(state, d / "pt_inception-2015-12-05-6726825d.pth")
    return d


def test_fid_features_on_tiny_frames(inception_dir):
    feats = FIDFeatures.from_weights(inception_dir, batch_size=2)
    frames = np.random.default_rng(0).integers(0, 256, size=(2, 24, 32, 3), dtype=np.uint8)
    f = feats(frames)
    assert f.shape == (2, 2048) and f.dtype == np.float64 and np.isfinite(f).all()
    # batching does not change features; pool3 features are post-ReLU averages, so non-negative
    np.testing.assert_allclose(feats(frames[1:2])[0], f[1], rtol=1e-4, atol=1e-6)
    assert (f >= 0).all() and f.std() > 0


def test_missing_inception_weights_message(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"pt_inception-2015-12-05-6726825d\.pth.*mseitzer/pytorch-fid"):
        load_fid_inception(tmp_path)
