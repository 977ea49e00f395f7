"""LPIPS / DISTS on plain-torch backbones: standard state-dict layout, weight loading, behaviour.

The expected keys and shapes below are written out from the reference files' layout (torchvision
vgg16-397923af.pth / alexnet-owt-7be5be79.pth ``features.*``, lpips v0.1 heads, DISTS weights.pt), not
derived from the modules under test, so a layout regression fails here.
"""

import pickle

import pytest
import torch

from disco_train.metrics.backbones import AlexNetFeatures, VGG16Features
from disco_train.metrics.perceptual import DISTS, LPIPS, TorchFrameMetric, load_dists, load_lpips
from disco_train.metrics.weights import load_weights

_VGG_IN = [3, 64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512]
_VGG_OUT = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
_VGG_IDX = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
VGG16_FEATURES = {}
for i, ci, co in zip(_VGG_IDX, _VGG_IN, _VGG_OUT):
    VGG16_FEATURES[f"features.{i}.weight"] = (co, ci, 3, 3)
    VGG16_FEATURES[f"features.{i}.bias"] = (co,)
ALEXNET_FEATURES = {
    "features.0.weight": (64, 3, 11, 11), "features.0.bias": (64,),
    "features.3.weight": (192, 64, 5, 5), "features.3.bias": (192,),
    "features.6.weight": (384, 192, 3, 3), "features.6.bias": (384,),
    "features.8.weight": (256, 384, 3, 3), "features.8.bias": (256,),
    "features.10.weight": (256, 256, 3, 3), "features.10.bias": (256,),
}
LPIPS_HEADS = {
    "alex": {f"lin{k}.model.1.weight": (1, c, 1, 1) for k, c in enumerate([64, 192, 384, 256, 256])},
    "vgg": {f"lin{k}.model.1.weight": (1, c, 1, 1) for k, c in enumerate([64, 128, 256, 512, 512])},
}
DISTS_WEIGHTS = {"alpha": (1, 1475, 1, 1), "beta": (1, 1475, 1, 1)}


def _shapes(module):
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def test_backbone_state_dicts_match_torchvision_layout():
    assert len(VGG16_FEATURES) == 26 and len(ALEXNET_FEATURES) == 10
    assert _shapes(VGG16Features()) == VGG16_FEATURES
    assert _shapes(AlexNetFeatures()) == ALEXNET_FEATURES


def test_metric_state_dicts_are_backbone_plus_reference_heads():
    assert _shapes(LPIPS("alex")) == {f"net.{k}": s for k, s in ALEXNET_FEATURES.items()} | LPIPS_HEADS["alex"]
    assert _shapes(LPIPS("vgg")) == {f"net.{k}": s for k, s in VGG16_FEATURES.items()} | LPIPS_HEADS["vgg"]
    assert _shapes(DISTS()) == {f"vgg.{k}": s for k, s in VGG16_FEATURES.items()} | DISTS_WEIGHTS


def _rand(shapes, seed=0, scale=0.05):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=g) * scale for k, s in shapes.items()}


def write_fake_weights(tmp_path):
    """Standard file names and layouts, random values (the real files are not downloaded in tests)."""
    # torchvision files also carry the classifier; a tiny stand-in checks that it is ignored.
    extra = {"classifier.0.weight": torch.zeros(2), "classifier.0.bias": torch.zeros(2)}
    torch.save(_rand(VGG16_FEATURES) | extra, tmp_path / "vgg16-397923af.pth")
    torch.save(_rand(ALEXNET_FEATURES) | extra, tmp_path / "alexnet-owt-7be5be79.pth")
    (tmp_path / "lpips" / "v0.1").mkdir(parents=True)
    for net in ("alex", "vgg"):
        heads = {k: v.abs() for k, v in _rand(LPIPS_HEADS[net], seed=1, scale=1.0).items()}
        torch.save(heads, tmp_path / "lpips" / "v0.1" / f"{net}.pth")
    (tmp_path / "dists").mkdir()
    torch.save({k: v.abs() + 0.01 for k, v in _rand(DISTS_WEIGHTS, seed=2).items()}, tmp_path / "dists" / "weights.pt")
    return tmp_path


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    # module scope: writing ~70 MB of fake backbones once keeps the tests fast; tests must not modify it
    return write_fake_weights(tmp_path_factory.mktemp("weights"))


def _images(seed, n=2, size=32):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_loads_standard_files_and_behaves(weights_dir, net):
    model = load_lpips(net, weights_dir)
    head = torch.load(weights_dir / "lpips" / "v0.1" / f"{net}.pth", weights_only=True)
    assert torch.equal(model.lin0.model[1].weight, head["lin0.model.1.weight"])
    x, y = _images(0), _images(1)
    d = model(x, y)
    assert d.shape == (2,) and torch.isfinite(d).all() and (d > 0).all()
    assert torch.allclose(model(x, x), torch.zeros(2), atol=1e-7)
    assert torch.allclose(model(y, x), d, rtol=1e-5)  # symmetric
    # the heads are linear in the distance: doubling every head doubles LPIPS
    for k in range(5):
        getattr(model, f"lin{k}").model[1].weight.mul_(2)
    assert torch.allclose(model(x, y), 2 * d, rtol=1e-5)


def test_dists_loads_standard_files_and_behaves(weights_dir):
    model = load_dists(weights_dir)
    x, y = _images(0), _images(1)
    d = model(x, y)
    assert d.shape == (2,) and torch.isfinite(d).all() and (d > 0).all() and (d < 1).all()
    assert torch.allclose(model(x, x), torch.zeros(2), atol=1e-6)
    # a mild perturbation is closer than an unrelated image
    assert (model(x, (x + 0.02 * _images(2)).clamp(0, 1)) < d).all()


def test_frame_metric_adapter_batches_uint8_frames(weights_dir):
    metric = TorchFrameMetric(load_lpips("alex", weights_dir), batch_size=2)
    ref = (_images(0, n=5).permute(0, 2, 3, 1) * 255).to(torch.uint8).numpy()
    rec = (_images(1, n=5).permute(0, 2, 3, 1) * 255).to(torch.uint8).numpy()
    per_frame = metric(ref, rec)
    assert per_frame.shape == (5,) and (per_frame > 0).all()
    assert metric(ref, ref) == pytest.approx([0.0] * 5, abs=1e-7)
    assert metric(ref[3:4], rec[3:4])[0] == pytest.approx(per_frame[3], rel=1e-5)


def test_missing_weights_name_file_and_source(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_lpips("alex", tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "alexnet-owt-7be5be79.pth") in msg and "download.pytorch.org" in msg
    torch.save(_rand(VGG16_FEATURES), tmp_path / "vgg16-397923af.pth")
    with pytest.raises(FileNotFoundError, match=r"dists/weights\.pt.*dingkeyan93/DISTS"):
        load_dists(tmp_path)


def test_wrong_layout_is_reported_with_file_name(tmp_path):
    bad = _rand(ALEXNET_FEATURES)
    bad["features.3.weight"] = torch.zeros(192, 64, 3, 3)
    torch.save(bad, tmp_path / "alexnet-owt-7be5be79.pth")
    (tmp_path / "lpips" / "v0.1").mkdir(parents=True)
    torch.save(_rand(LPIPS_HEADS["alex"]), tmp_path / "lpips" / "v0.1" / "alex.pth")
    with pytest.raises(ValueError, match=r"(?s)alexnet-owt-7be5be79\.pth.*features\.3\.weight"):
        load_lpips("alex", tmp_path)


class _NotWeights:
    pass


def test_loading_is_weights_only(tmp_path):
    torch.save({"x": torch.zeros(1), "obj": _NotWeights()}, tmp_path / "alexnet-owt-7be5be79.pth")
    with pytest.raises(pickle.UnpicklingError):
        load_weights("alexnet", tmp_path)
