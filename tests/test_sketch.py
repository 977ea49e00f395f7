"""InformativeDrawings generator: state-dict layout of the official netG_A_latest.pth, strict loading, inference."""

import numpy as np
import pytest

from conftest import prepare_config
import torch

from disco_train.modalities.sketch import SketchGenerator, extract_sketches, load_sketch_generator

# The official netG_A_latest.pth keys and shapes, written out from upstream model.py
# (carolineec/informative-drawings, Generator(3, 1, n_residual_blocks=3)): conv weights and biases only.
_RES = [(f"model2.{b}.conv_block.{i}.{p}", (256, 256, 3, 3) if p == "weight" else (256,))
        for b in range(3) for i in (1, 5) for p in ("weight", "bias")]
EXPECTED = [("model0.1.weight", (64, 3, 7, 7)), ("model0.1.bias", (64,)),
            ("model1.0.weight", (128, 64, 3, 3)), ("model1.0.bias", (128,)),
            ("model1.3.weight", (256, 128, 3, 3)), ("model1.3.bias", (256,)),
            *_RES,
            ("model3.0.weight", (256, 128, 3, 3)), ("model3.0.bias", (128,)),
            ("model3.3.weight", (128, 64, 3, 3)), ("model3.3.bias", (64,)),
            ("model4.1.weight", (1, 64, 7, 7)), ("model4.1.bias", (1,))]


def _clip(t=3, h=18, w=22, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    model = SketchGenerator()
    path = tmp_path_factory.mktemp("sketch") / "netG_A_latest.pth"
    torch.save(model.state_dict(), path)
    return path, model


def test_layout_matches_the_official_state_dict():
    state = SketchGenerator().state_dict()
    assert [(k, tuple(v.shape)) for k, v in state.items()] == EXPECTED
    assert len(state) == 24
    assert sum(v.numel() for v in state.values()) == 4_290_945
    assert sum(p.numel() for p in SketchGenerator(padding="replicate").parameters()) == 4_290_945


def test_strict_load_round_trip(weights):
    path, model = weights
    loaded = load_sketch_generator(str(path))
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    clip = _clip()
    x = torch.from_numpy(clip[:, :16, :20]).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        expected = (model.eval()(x)[:, 0] * 255).round().byte().numpy()
    assert np.array_equal(extract_sketches(loaded, clip[:, :16, :20]), expected)


def test_missing_file_names_it_and_the_default_place(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_sketch_generator(tmp_path / "nope.pth")
    assert "nope.pth" in str(err.value) and "checkpoints/informative_drawings/netG_A_latest.pth" in str(err.value)


def test_wrong_keys_and_shapes_are_rejected(tmp_path, weights):
    state = torch.load(weights[0], weights_only=True)
    state["model4.1.gain"] = state.pop("model4.1.bias")
    torch.save(state, tmp_path / "renamed.pth")
    with pytest.raises(ValueError, match=r"missing keys \['model4.1.bias'\].*unexpected keys \['model4.1.gain'\]"):
        load_sketch_generator(tmp_path / "renamed.pth")
    state = SketchGenerator(n_residual_blocks=4).state_dict()  # the class default of 9 blocks is the usual mix-up
    torch.save(state, tmp_path / "deeper.pth")
    with pytest.raises(ValueError, match=r"unexpected keys \['model2.3.conv_block.1.bias'"):
        load_sketch_generator(tmp_path / "deeper.pth")
    state = SketchGenerator(output_nc=3).state_dict()
    torch.save(state, tmp_path / "rgb.pth")
    with pytest.raises(ValueError, match=r"model4.1.weight: \(3, 64, 7, 7\) \(expected \(1, 64, 7, 7\)\)"):
        load_sketch_generator(tmp_path / "rgb.pth")


def test_output_shape_dtype_and_batching(weights):
    gen = load_sketch_generator(weights[0])
    clip = _clip(t=5, h=18, w=22)  # not multiples of 4: padded, then cropped back
    out = extract_sketches(gen, clip, batch_size=2)
    assert out.shape == (5, 18, 22) and out.dtype == np.uint8
    assert out.min() < out.max()  # random weights still draw something that varies
    assert np.array_equal(out, extract_sketches(gen, clip, batch_size=8))  # instance norm: frames independent
    resized = extract_sketches(gen, clip, size=12)  # upstream-style: shorter side resized, drawing resized back
    assert resized.shape == (5, 18, 22) and resized.dtype == np.uint8
    with pytest.raises(ValueError, match="uint8 clip"):
        extract_sketches(gen, clip.astype(np.float32))


@pytest.mark.parametrize("bias,value", [(20.0, 255), (-20.0, 0)])
def test_sigmoid_output_maps_to_full_uint8_range(bias, value):
    # The last conv decides the sigmoid's value: 1 is the white background, 0 a dark line.
    gen = SketchGenerator().eval()
    with torch.no_grad():
        gen.model4[1].weight.zero_()
        gen.model4[1].bias.fill_(bias)
    assert (extract_sketches(gen, _clip(t=2, h=8, w=8)) == value).all()


def test_corrupt_file_is_a_clear_error(tmp_path):
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.pth could not be read as a torch state dict"):
        load_sketch_generator(tmp_path / "empty.pth")


def test_prepare_sketch_stage_runs_the_real_generator(weights):
    from datamodules.stages import SketchStage
    from disco_train.codec.sender import send_clip

    cfg = prepare_config(input="unused", output="unused", sketch=True, sketch_weights=str(weights[0]),
                        codec="x264", ds=2, sketch_codec="x264", sketch_ds=2, sketch_dt=2)
    stage = SketchStage(cfg)
    stage.preflight()
    assert isinstance(stage.generator, SketchGenerator)
    clip = _clip(t=5, h=16, w=16)
    sketch = stage.extract(clip)
    assert sketch.shape == clip.shape and sketch.dtype == np.uint8
    streams, info = send_clip(clip, 24.0, "x", cfg.send, sketch=sketch)
    assert (info["sketch"]["frames"], info["sketch"]["height"], info["sketch"]["width"]) == (3, 8, 8)
    assert streams[-1].kind == "sketch" and streams[-1].bits > 0
