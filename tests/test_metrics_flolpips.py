"""FloLPIPS: PWC-Net layout (network-default.pytorch keys), its plain-torch layers, the flow weighting, the metric.

The PWC-Net manifest below is written out from the channel tables of the authors' network (sniklaus/pytorch-pwc
``run.py``, copied into danier97/flolpips ``pwcnet.py``), with the file's ``module`` key prefix; it is not derived
from the module under test.
"""

import numpy as np
import pytest
import torch
from torch import nn

from disco_train.metrics.flolpips import FloLPIPS, FloLPIPSVideo, flow_weighted_mean, load_flolpips
from disco_train.metrics.perceptual import LPIPS
from disco_train.metrics.pwcnet import PWCNet, backwarp, correlation, load_pwcnet
from random_metric_weights import write_random_weights

_LEVELS = ["One", "Two", "Thr", "Fou", "Fiv", "Six"]
_EXTRACTOR = [(3, 16), (16, 32), (32, 64), (64, 96), (96, 128), (128, 196)]
# the port's intCurrent table, indexed by level: 81 cost channels + features + 2 flow + 2 upsampled features
_CURRENT = {2: 81 + 32 + 2 + 2, 3: 81 + 64 + 2 + 2, 4: 81 + 96 + 2 + 2, 5: 81 + 128 + 2 + 2, 6: 81}
_DENSE = [128, 128, 96, 64, 32, 2]
_REFINER = [(128, 565), (128, 128), (128, 128), (96, 128), (64, 96), (32, 64), (2, 32)]


def _pwc_manifest():
    m = {}
    for name, (ci, co) in zip(_LEVELS, _EXTRACTOR):
        for i, c_in in zip((0, 2, 4), (ci, co, co)):
            m[f"moduleExtractor.module{name}.{i}.weight"] = (co, c_in, 3, 3)
            m[f"moduleExtractor.module{name}.{i}.bias"] = (co,)
    for level in range(2, 7):
        dec, cur = f"module{_LEVELS[level - 1]}", _CURRENT[level]
        if level < 6:
            m[f"{dec}.moduleUpflow.weight"], m[f"{dec}.moduleUpflow.bias"] = (2, 2, 4, 4), (2,)
            m[f"{dec}.moduleUpfeat.weight"] = (_CURRENT[level + 1] + 448, 2, 4, 4)
            m[f"{dec}.moduleUpfeat.bias"] = (2,)
        for name, co in zip(_LEVELS, _DENSE):
            m[f"{dec}.module{name}.0.weight"], m[f"{dec}.module{name}.0.bias"] = (co, cur, 3, 3), (co,)
            cur += co
    for i, (co, ci) in zip(range(0, 14, 2), _REFINER):
        m[f"moduleRefiner.moduleMain.{i}.weight"], m[f"moduleRefiner.moduleMain.{i}.bias"] = (co, ci, 3, 3), (co,)
    return m


def test_pwcnet_state_dict_matches_network_default_layout():
    expected = _pwc_manifest()
    assert len(expected) == 36 + 5 * 12 + 4 * 4 + 14 == 126
    got = {k: tuple(v.shape) for k, v in PWCNet().state_dict().items()}
    assert got == expected
    assert sum(int(np.prod(s)) for s in expected.values()) == 9_374_274


def test_correlation_is_the_channel_mean_of_shifted_products():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1, 3, 6, 7, generator=g), torch.randn(1, 3, 6, 7, generator=g)
    c = correlation(a, b)
    assert c.shape == (1, 81, 6, 7)
    # channel (dy + 4) * 9 + (dx + 4) at (y, x): mean_c a[c, y, x] * b[c, y + dy, x + dx], 0 off the image
    for dy, dx, y, x in [(0, 0, 2, 3), (-1, 2, 2, 3), (4, -4, 1, 5), (3, 3, 5, 6)]:
        yy, xx = y + dy, x + dx
        inside = 0 <= yy < 6 and 0 <= xx < 7
        want = (a[0, :, y, x] * b[0, :, yy, xx]).mean() if inside else torch.tensor(0.0)
        assert c[0, (dy + 4) * 9 + dx + 4, y, x] == pytest.approx(float(want), abs=1e-6)
    # a copy shifted 2 px right matches at displacement dx = +2 (channel 4 * 9 + 6), with the mean square there
    a = torch.randn(1, 64, 6, 7, generator=g)
    shifted = torch.roll(a, shifts=2, dims=3)
    c = correlation(a, shifted)[0, :, 3, 3]
    assert int(c.argmax()) == 42 and float(c[42]) == pytest.approx(float((a[0, :, 3, 3] ** 2).mean()), rel=1e-5)


def test_backwarp_moves_by_the_flow_and_masks_outside():
    img = torch.arange(48, dtype=torch.float32).reshape(1, 1, 6, 8)
    assert torch.allclose(backwarp(img, torch.zeros(1, 2, 6, 8)), img, atol=1e-4)
    # the port scales flow by 2 / (W - 1) on an align_corners=False grid (2 / W per pixel), so a flow of
    # (W - 1) / W = 7/8 px samples exactly one column to the right; the last column leaves the image -> 0
    flow = torch.zeros(1, 2, 6, 8)
    flow[:, 0] = 7.0 / 8.0
    out = backwarp(img, flow)
    assert torch.allclose(out[..., :-1], img[..., 1:], atol=1e-4) and torch.all(out[..., -1] == 0)
    flow = torch.zeros(1, 2, 6, 8)
    flow[:, 1] = -5.0 / 6.0  # one row up
    out = backwarp(img, flow)
    assert torch.allclose(out[..., 1:, :], img[..., :-1, :], atol=1e-4) and torch.all(out[..., 0, :] == 0)


def test_flow_weighted_mean_golden():
    dist = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
    # the flow difference at 4x4 is constant on 2x2 blocks, so the resize to 2x2 keeps the block values
    flow = torch.zeros(1, 2, 4, 4)
    flow[0, 0, :2, 2:] = 3.0
    flow[0, 1, :2, 2:] = 4.0  # |.| = 5 on the top-right block
    flow[0, 0, 2:, :2] = 5.0  # |.| = 5 on the bottom-left block
    assert float(flow_weighted_mean(dist, flow)) == pytest.approx((2.0 * 5 + 3.0 * 5) / 10)
    # flows that agree everywhere: 0/0 in the reference, uniform weights (the LPIPS mean) here
    assert float(flow_weighted_mean(dist, torch.zeros(1, 2, 4, 4))) == pytest.approx(2.5)


class _FixedFlow(nn.Module):
    """Stand-in flow net: the first half of the batch (reference) gets flow_ref, the second (distorted) zero."""

    def __init__(self, flow_ref):
        super().__init__()
        self.flow_ref = flow_ref

    def forward(self, a, b):
        n = a.shape[0] // 2
        return torch.cat([self.flow_ref.expand(n, -1, -1, -1), torch.zeros(n, 2, *a.shape[2:])])


def _images(seed, n=2, size=64):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_flolpips_is_lpips_reweighted_by_the_flow_difference():
    torch.manual_seed(0)
    lpips = LPIPS("alex")
    for k in range(5):
        getattr(lpips, f"lin{k}").model[1].weight.data.abs_()
    x, y = _images(0), _images(1)
    uniform = FloLPIPS(lpips, _FixedFlow(torch.zeros(1, 2, 64, 64)))
    assert torch.allclose(uniform(x, x, y, y), lpips(x, y), rtol=1e-5)
    flow = torch.zeros(1, 2, 64, 64)
    flow[:, 0, :, :32] = 1.0  # the distorted video's motion is wrong on the left half only
    left = FloLPIPS(lpips, _FixedFlow(flow))
    maps = lpips.layer_maps(x, y)
    want = sum(flow_weighted_mean(m, flow.expand(2, -1, -1, -1)) for m in maps)
    assert torch.allclose(left(x, x, y, y), want, rtol=1e-6)
    assert not torch.allclose(want, lpips(x, y), rtol=1e-3)
    with pytest.raises(ValueError, match="LPIPS-alex"):
        FloLPIPS(LPIPS("vgg"), _FixedFlow(flow))


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    return write_random_weights(tmp_path_factory.mktemp("w"), keys=("alexnet", "lpips_alex", "pwcnet"))


def test_pwcnet_loads_the_file_and_gives_pixel_flow(weights_dir):
    model = load_pwcnet(weights_dir)
    file = torch.load(weights_dir / "pwcnet" / "network-default.pytorch", weights_only=True)
    assert torch.equal(model.moduleRefiner.moduleMain[12].bias, file["moduleRefiner.moduleMain.12.bias"])
    a, b = _images(0, n=1, size=48)[:, :, :, :40], _images(1, n=1, size=48)[:, :, :, :40]
    flow = model(a, b)  # 48x40 is resized to 64x64 inside and the flow rescaled back
    assert flow.shape == (1, 2, 48, 40) and torch.isfinite(flow).all() and flow.abs().max() > 0
    with pytest.raises(ValueError, match="one size"):
        model(a, b[..., :32])


def _video(t=6, size=64, seed=0):
    """A texture moving 2 px right per frame: smooth motion."""
    base = np.random.default_rng(seed).integers(0, 256, size=(size // 4, size // 4 + t, 3)).astype(np.uint8)
    big = np.repeat(np.repeat(base, 4, axis=0), 4, axis=1)
    return np.stack([big[:, 2 * i:2 * i + size] for i in range(t)])


def test_flolpips_video_scores(weights_dir):
    metric = FloLPIPSVideo.from_weights(weights_dir, batch_size=2)
    ref = _video()

    def score(rec, chunks=(6,)):
        metric.reset()
        start = 0
        for c in chunks:
            metric.add(ref[start:start + c], rec[start:start + c])
            start += c
        return metric.mean()

    assert score(ref) == 0.0
    frozen = ref.copy()
    frozen[3] = frozen[2]  # a repeated frame: a stall in otherwise smooth motion
    flicker = np.clip(ref.astype(int) + np.array([0, 12] * 3)[:, None, None, None], 0, 255).astype(np.uint8)
    smooth = np.clip(ref.astype(int) + 1, 0, 255).astype(np.uint8)  # the same small offset in every frame
    s_frozen, s_flicker, s_smooth = score(frozen), score(flicker), score(smooth)
    assert 0 < s_smooth < s_flicker and s_smooth < s_frozen
    # chunks are joined: the pair across a chunk border is scored once, like in one piece
    assert score(frozen, chunks=(2, 3, 1)) == pytest.approx(s_frozen, rel=1e-5)
    metric.reset()
    metric.add(ref[:1], ref[:1])
    with pytest.raises(ValueError, match="at least 2 frames"):
        metric.mean()


def test_missing_and_mismatched_weights(tmp_path, weights_dir):
    with pytest.raises(FileNotFoundError) as err:
        load_flolpips(tmp_path)  # LPIPS files first
    assert "alexnet-owt-7be5be79.pth" in str(err.value)
    with pytest.raises(FileNotFoundError) as err:
        load_pwcnet(tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "pwcnet" / "network-default.pytorch") in msg
    assert "37.5 MB" in msg and "content.sniklaus.com/github/pytorch-pwc/network-default.pytorch" in msg
    state = torch.load(weights_dir / "pwcnet" / "network-default.pytorch", weights_only=True)
    renamed = {k.replace("module", "net"): v for k, v in state.items()}  # the port's in-memory names
    (tmp_path / "pwcnet").mkdir()
    torch.save(renamed, tmp_path / "pwcnet" / "network-default.pytorch")
    with pytest.raises(ValueError, match=r"(?s)network-default\.pytorch.*netExtractor\.netOne\.0\.weight"):
        load_pwcnet(tmp_path)
