"""FVMD: PIPs++ layout (model_state_dict keys), tracker pieces, motion histograms, Fréchet distance, pipeline.

The PIPs++ manifest is written out from the authors' network definition (aharley/pips2 ``nets/pips2.py``, also
vendored as ljh0v0/FMD-frechet-motion-distance ``fvmd/nets/pips2.py``), not derived from the module under test.
Histogram and distance goldens are computed by hand from the definition in fvmd.py; the default protocol is
checked against a transcription of the fvmd 1.0.0 package (keypoint_tracking.calc_velocity/calc_acceleration,
extract_motion_features.calc_hist, frechet_distance.calculate_frechet_distance) on fixed tracks.
"""

import math

import numpy as np
import pytest
import torch
from scipy import linalg

from disco_train.config.metrics import TRACKER_MIN_SIZE, TRACKER_STRIDE
from disco_train.metrics import pips2
from disco_train.metrics.fvmd import (FVMD, FVMDSettings, acceleration, fvmd_distance, motion_histograms,
                                      query_grid, velocity, window_feature)
from disco_train.metrics.pips2 import CostPyramid, PIPs, load_pips, sample_features
from random_metric_weights import write_random_weights

# encoder stages: (in, out, stride); a strided first block has a 1x1 "downsample" conv
_STAGES = [(64, 64, 1), (64, 96, 2), (96, 128, 2), (128, 128, 2)]
# DeltaBlock(n_block=8, base_filters=128, increasefilter_gap=2): width doubles at blocks 2, 4, 6
_BLOCKS = [(128, 128), (128, 128), (128, 256), (256, 256), (256, 512), (512, 512), (512, 1024), (1024, 1024)]
_DELTA_IN = 4 * 7 * 7 * 3 + 128 + 2  # corr_levels * (2 * corr_radius + 1)^2 * 3 templates + latent + 2 = 718


def _pips_manifest():
    m = {"fnet.conv1.weight": (64, 3, 7, 7), "fnet.conv1.bias": (64,)}
    for i, (ci, co, s) in enumerate(_STAGES, start=1):
        for b, c_in in ((0, ci), (1, co)):
            p = f"fnet.layer{i}.{b}"
            m[f"{p}.conv1.weight"], m[f"{p}.conv1.bias"] = (co, c_in, 3, 3), (co,)
            m[f"{p}.conv2.weight"], m[f"{p}.conv2.bias"] = (co, co, 3, 3), (co,)
        if s != 1:
            m[f"fnet.layer{i}.0.downsample.0.weight"], m[f"fnet.layer{i}.0.downsample.0.bias"] = (co, ci, 1, 1), (co,)
    m["fnet.conv2.weight"], m["fnet.conv2.bias"] = (256, 64 + 96 + 128 + 128, 3, 3), (256,)
    m["fnet.conv3.weight"], m["fnet.conv3.bias"] = (128, 256, 1, 1), (128,)
    m["delta_block.first_block_conv.conv.weight"] = (128, _DELTA_IN, 3)
    m["delta_block.first_block_conv.conv.bias"] = (128,)
    for k, (ci, co) in enumerate(_BLOCKS):
        p = f"delta_block.basicblock_list.{k}"
        m[f"{p}.conv1.conv.weight"], m[f"{p}.conv1.conv.bias"] = (co, ci, 3), (co,)
        m[f"{p}.conv2.conv.weight"], m[f"{p}.conv2.conv.bias"] = (co, co, 3), (co,)
    m["delta_block.dense.weight"], m["delta_block.dense.bias"] = (2, 1024), (2,)
    m["norm.weight"], m["norm.bias"] = (128,), (128,)
    return m


def test_pips_state_dict_matches_published_layout():
    expected = _pips_manifest()
    assert len(expected) == 44 + 36 + 2 == 82
    assert {k: tuple(v.shape) for k, v in PIPs().state_dict().items()} == expected
    assert sum(math.prod(s) for s in expected.values()) == 17_565_410


def test_published_sampling_defaults():
    s = FVMDSettings()
    assert (s.clip_len, s.window_stride, s.points, s.size, s.iters) == (16, 1, 400, 256, 16)
    assert s.protocol == "package"
    assert s.grid_side == 20 and s.feature_dim == 2 * (4 * 4 * 4) * 8 == 1024
    for bad, match in [(dict(clip_len=3), "clip_len"), (dict(points=24), "square"), (dict(points=16), "square"),
                       (dict(size=120), "size"), (dict(size=96), "size"), (dict(iters=0), "iters"),
                       (dict(protocol="paper"), "protocol must be one of package, definition")]:
        with pytest.raises(ValueError, match=match):
            FVMDSettings(**bad).validate()
    assert (pips2.STRIDE, pips2.MIN_SIZE) == (TRACKER_STRIDE, TRACKER_MIN_SIZE)  # the config checks the network's own


def _reference_sample(fmap, x, y):
    """The reference's 4-neighbour bilinear lookup with clipped indices, transcribed for one channel."""
    h, w = fmap.shape
    x0, y0 = math.floor(x), math.floor(y)
    out = 0.0
    for xi, yi, wt in [(x0, y0, (x0 + 1 - x) * (y0 + 1 - y)), (x0 + 1, y0, (x - x0) * (y0 + 1 - y)),
                       (x0, y0 + 1, (x0 + 1 - x) * (y - y0)), (x0 + 1, y0 + 1, (x - x0) * (y - y0))]:
        out += wt * float(fmap[min(max(yi, 0), h - 1), min(max(xi, 0), w - 1)])
    return out


def test_feature_sampling_matches_clipped_bilinear():
    fmap = torch.randn(1, 1, 5, 6, generator=torch.Generator().manual_seed(0))
    pts = [(0.0, 0.0), (2.3, 1.7), (5.0, 4.0), (-0.6, 2.2), (6.8, -1.5), (3.5, 4.9)]
    got = sample_features(fmap, torch.tensor([pts]))[0, :, 0]
    want = [_reference_sample(fmap[0, 0], x, y) for x, y in pts]
    assert got.tolist() == pytest.approx(want, abs=1e-5)


def test_cost_window_rows_step_x():
    fmaps = torch.zeros(1, 1, 1, 16, 16)
    pyr = CostPyramid(fmaps)
    cost = torch.zeros(1, 1, 1, 16, 16)
    cost[0, 0, 0, 5, 9] = 1.0  # (y, x) = (5, 9)
    costs = [cost] + [torch.zeros(1, 1, 1, 16 >> k, 16 >> k) for k in (1, 2, 3)]
    window = pyr.sample(costs, torch.tensor([[[[8.0, 5.0]]]]))[0, 0, 0, :49]
    # centre (x, y) = (8, 5): the hot cell is x + 1, y + 0 -> row 3 + 1 = 4, column 3 -> index 4 * 7 + 3
    assert int(window.argmax()) == 31 and float(window[31]) == 1.0 and float(window.sum()) == 1.0


def test_query_grid_is_the_published_layout():
    g = query_grid(20, 256, 256)
    assert g.shape == (400, 2)
    assert g[0].tolist() == [8.0, 8.0] and g[19].tolist() == [248.0, 8.0] and g[-1].tolist() == [248.0, 248.0]
    assert g[20].tolist() == pytest.approx([8.0, 8 + 240 / 19])  # row-major: y is the outer index


def test_velocity_and_acceleration():
    t = np.arange(6, dtype=float)
    tracks = np.stack([np.stack([3 * t, t ** 2], -1)] * 2, axis=1)  # x = 3t, y = t^2 for 2 points
    v, a = velocity(tracks), acceleration(velocity(tracks))
    assert v[0].tolist() == [[0, 0]] * 2 and v[1, 0].tolist() == [3, 1] and v[5, 0].tolist() == [3, 9]
    assert a[:2].tolist() == [[[0, 0]] * 2] * 2 and a[2:, 0].tolist() == [[0, 2]] * 4


def test_motion_histogram_golden():
    vec = np.zeros((4, 25, 2))  # one cube: 4 frames x 5 x 5 points
    vec[0, 0] = (0, 1)  # atan2(0, 1) = 0 -> bin (0 + pi) // (pi/4) = 4; |v| = 1 -> ceil(log2 2) / 8 = 1/8
    vec[0, 1] = (3, 4)  # atan2(3, 4) = 0.64 -> bin 4; |v| = 5 -> ceil(log2 6) = 3 -> 3/8
    vec[1, 2] = (-5, 0)  # atan2(-5, 0) = -pi/2 -> bin 2; 3/8
    vec[2, 3] = (300, 0)  # atan2(300, 0) = pi/2 -> bin 6; |v| clipped to 255 -> log2 256 = 8 -> 1
    vec[3, 4] = (0, -0.01)  # atan2(0, -0.01) = pi -> bin 8, clipped to 7; any motion counts 1/8
    h = motion_histograms(vec)
    assert h.shape == (1, 1, 1, 8)
    assert h[0, 0, 0].tolist() == [0, 0, 3 / 8, 0, 1 / 8 + 3 / 8, 0, 1, 1 / 8]
    # 16 frames x 20 x 20 points -> 4 x 4 x 4 cubes; a vector at frame 5, row 7, column 12 lands in cube (1, 1, 2)
    big = np.zeros((16, 400, 2))
    big[5, 7 * 20 + 12] = (0, 1)
    hb = motion_histograms(big)
    assert hb.shape == (4, 4, 4, 8) and hb.sum() == 1 / 8 and hb[1, 1, 2, 4] == 1 / 8


def test_window_feature_sees_a_frozen_frame():
    t = np.arange(8, dtype=float)[:, None, None]
    smooth = np.tile(np.array([2.0, 1.0]), (8, 25, 1)) * t  # every point moves (2, 1) px per frame
    frozen = smooth.copy()
    frozen[4] = frozen[3]  # a repeated frame: velocity 0 then 2x, acceleration -v then +2v
    fs, ff = window_feature(smooth, "definition"), window_feature(frozen, "definition")
    assert fs.shape == ff.shape == (2 * 2 * 8,)
    assert fs[16:].sum() == 0 and ff[16:].sum() > 0  # smooth motion has no acceleration
    # the package differences positions for its "acceleration": the velocity from frame 2 on
    package, vel = window_feature(smooth), velocity(smooth)
    vel[:2] = 0
    assert package[16:].sum() > 0 and package[16:].tolist() == motion_histograms(vel).ravel().tolist()


def test_fvmd_distance_golden_and_properties():
    a, b = np.array([[0.0], [2.0]]), np.array([[1.0], [5.0]])
    # 1-D, e = 1e-5: (1 - 3)^2 + 2 + 8 - 2 sqrt((2 + e)(8 + e)), the ridge inside the root only (package) ...
    e = 1e-5
    assert fvmd_distance(a, b) == pytest.approx(4 + 10 - 2 * math.sqrt((2 + e) * (8 + e)), abs=1e-9)
    # ... or on the covariances (definition): exactly 2 e D more
    assert fvmd_distance(a, b, "definition") == pytest.approx(fvmd_distance(a, b) + 2 * e, abs=1e-12)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 16)), rng.normal(1.0, 2.0, size=(9, 16))
    assert fvmd_distance(x, x, "definition") == pytest.approx(0.0, abs=1e-6)
    assert fvmd_distance(x, x) == pytest.approx(-2 * e * 16, abs=1e-9)  # the package's offset
    for protocol in ("package", "definition"):
        d = fvmd_distance(x, y, protocol)
        assert d == pytest.approx(fvmd_distance(y, x, protocol), rel=1e-6) and d > 0
    # constant (zero-variance) histogram bins, as from a static region, stay finite thanks to the ridge
    z = np.zeros((5, 8))
    assert fvmd_distance(z, z, "definition") == pytest.approx(0.0, abs=1e-9)
    assert np.isfinite(fvmd_distance(z, x[:5, :8])) and np.isfinite(fvmd_distance(z, z))


def _package_hist(vectors):
    """fvmd 1.0.0 calc_hist(vectors, cell_size=5, angle_bins=8, cube_frames=4), (B, S, N, 2) -> (B, MS, MH, MW, 8),
    with count_subcube_hist's loops (magnitude_bins=256)."""
    b, s, n, _ = vectors.shape
    side = int(np.sqrt(n).round())
    ms, mh = s // 4, side // 5
    v = vectors.reshape(b, s, side, side, 2)[:, :ms * 4, :mh * 5, :mh * 5]
    v = v.reshape(b, ms, 4, mh, 5, mh, 5, 2).transpose(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, 4, 5, 5, 2)
    hists = []
    for cell in v:
        hist = np.zeros(8)
        angle_bin = np.clip((np.arctan2(cell[..., 0], cell[..., 1]) + np.pi) // (2 * np.pi / 8), 0, 7)
        mag = np.clip(np.linalg.norm(cell, axis=3), 0, 255) + 1
        mag = np.ceil(np.clip(np.log2(mag), 0, int(np.log2(256)))) / np.log2(256)
        for t, i, j in np.ndindex(4, 5, 5):
            hist[int(angle_bin[t, i, j])] += mag[t, i, j]
        hists.append(hist)
    return np.stack(hists).reshape(b, ms, mh, mh, 8)


def _package_fvmd(trajs_gt, trajs_gen):
    """fvmd 1.0.0's fvmd(): velocity and its calc_acceleration applied to the *tracks*, as track_keypoints does;
    calc_hist; calculate_fd_given_vectors(gt, gen) with eps=1e-5 inside sqrtm only."""
    feats = []
    for trajs in (trajs_gt, trajs_gen):
        zeros = np.zeros_like(trajs[:, :1])
        velo = np.concatenate([zeros, trajs[:, 1:] - trajs[:, :-1]], axis=1)
        acc = np.concatenate([zeros, zeros, trajs[:, 2:] - trajs[:, 1:-1]], axis=1)
        n = len(trajs)
        feats.append(np.concatenate([_package_hist(velo).reshape(n, -1), _package_hist(acc).reshape(n, -1)], 1))
    (m1, s1), (m2, s2) = ((f.mean(axis=0), np.cov(f, rowvar=False)) for f in feats)
    offset = np.eye(s1.shape[0]) * 1e-5
    covmean = linalg.sqrtm((s1 + offset).dot(s2 + offset)).real
    return (m1 - m2).dot(m1 - m2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)


def _random_tracks(n, step, seed):
    """n windows of 16 frames x 400 points: the published grid plus random walks of the given step size."""
    rng = np.random.default_rng(seed)
    grid = query_grid(20, 256, 256).numpy().astype(np.float64)
    steps = rng.normal(0, 1, size=(n, 15, 400, 2)) * rng.uniform(0.2, step, size=(n, 1, 400, 1))
    return grid + np.concatenate([np.zeros((n, 1, 400, 2)), np.cumsum(steps, axis=1)], axis=1)


GOLDEN_PACKAGE_FVMD = 2597.436881878168


def test_default_fvmd_is_the_fvmd_package():
    gt, gen = _random_tracks(12, 3.0, seed=0), _random_tracks(10, 6.0, seed=1)
    want = _package_fvmd(gt, gen)
    got = fvmd_distance(np.stack([window_feature(t) for t in gt]), np.stack([window_feature(t) for t in gen]))
    assert got == pytest.approx(want, rel=1e-9)
    assert got == pytest.approx(GOLDEN_PACKAGE_FVMD, rel=1e-6)  # pinned: the computation above, once
    definition = fvmd_distance(np.stack([window_feature(t, "definition") for t in gt]),
                               np.stack([window_feature(t, "definition") for t in gen]), "definition")
    assert abs(definition - got) > 1  # the other protocol is a different number, not an offset


def _tracks_set(kind, n=6, seed=0):
    rng = np.random.default_rng(seed)
    feats = []
    for _ in range(n):
        speed = rng.uniform(0.5, 3.0, size=(1, 25, 2))
        tracks = speed * np.arange(8.0)[:, None, None]
        if kind == "frozen":
            tracks[4] = tracks[3]
        elif kind == "jitter":  # flicker-like back-and-forth of 2 px on alternate frames
            tracks = tracks + 2.0 * (np.arange(8) % 2)[:, None, None]
        feats.append(window_feature(tracks))
    return np.stack(feats)


def test_fvmd_ranks_frozen_and_jittery_motion_worse_than_smooth():
    ref = _tracks_set("smooth", seed=0)
    smooth = fvmd_distance(ref, _tracks_set("smooth", seed=1))
    assert smooth < fvmd_distance(ref, _tracks_set("frozen", seed=1))
    assert smooth < fvmd_distance(ref, _tracks_set("jitter", seed=1))


TINY = FVMDSettings(clip_len=4, window_stride=2, points=25, size=128, iters=2)


@pytest.fixture(scope="module")
def fvmd_model(tmp_path_factory):
    wdir = write_random_weights(tmp_path_factory.mktemp("w"), keys=("pips2",))
    return wdir, load_pips(wdir)


def _video(t=6, size=48, seed=0):
    yy, xx = np.mgrid[0:size, 0:size]
    base = np.random.default_rng(seed).integers(0, 256, size=3)
    return np.stack([np.stack([(xx * 5 + 3 * i + base[c]) % 256 for c in range(3)], -1)
                     for i in range(t)]).astype(np.uint8)


def _run(model, *videos):
    metric = FVMD(model, TINY)
    for chunks in videos:  # a video = list of (ref, rec) chunks
        metric.begin_video()
        for ref, rec in chunks:
            metric.add(ref, rec)
    return metric


def test_fvmd_pipeline_with_random_weights(fvmd_model):
    wdir, model = fvmd_model
    file = torch.load(wdir / "pips2" / "pips2_weights.pth", weights_only=True)
    assert set(file) == {"model_state_dict", "optimizer_state_dict"}  # the checkpoint's layout
    assert torch.equal(model.delta_block.dense.bias, file["model_state_dict"]["delta_block.dense.bias"])
    ref, rec = _video(seed=0), _video(seed=1)
    rec[4] = rec[3]
    metric = _run(model, [(ref[:3], rec[:3]), (ref[3:], rec[3:])])  # streamed in uneven chunks
    assert metric.windows == (6 - 4) // 2 + 1 == 2
    assert metric.features[0][0].shape == (TINY.feature_dim,) == (16,)
    score = metric.score()
    assert np.isfinite(score) and score > 0
    assert fvmd_distance(np.stack(metric.features[1]), np.stack(metric.features[0])) == pytest.approx(score)
    same = _run(model, [(ref, ref)])  # in one piece
    for a, b, c in zip(metric.features[0], same.features[0], same.features[1]):
        np.testing.assert_allclose(a, b, atol=1e-9)  # chunking does not change a window
        np.testing.assert_array_equal(b, c)
    assert same.score() == pytest.approx(-2e-5 * TINY.feature_dim, abs=1e-6)  # the package's offset (fvmd.py)
    short = _run(model, [(ref[:4], ref[:4])], [(ref[4:], ref[4:])])  # windows never span two videos
    with pytest.raises(ValueError, match="at least 2 windows of 4 frames"):
        short.score()


def test_missing_and_mismatched_pips_weights(tmp_path, fvmd_model):
    with pytest.raises(FileNotFoundError) as err:
        load_pips(tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "pips2" / "pips2_weights.pth") in msg and "70.3 MB" in msg
    assert "ljh0v0/FVMD-frechet-video-motion-distance/releases/download/pips2_weights/pips2_weights.pth" in msg
    state = {k: v for k, v in fvmd_model[1].state_dict().items() if k != "norm.bias"}
    (tmp_path / "pips2").mkdir()
    torch.save(state, tmp_path / "pips2" / "pips2_weights.pth")  # a bare state dict loads too, but strictly
    with pytest.raises(ValueError, match=r"(?s)pips2_weights\.pth.*norm\.bias"):
        load_pips(tmp_path)
    with pytest.raises(ValueError, match="at least 128x128"):
        fvmd_model[1].encode(torch.zeros(1, 3, 64, 64))
