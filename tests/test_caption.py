"""LLaVA captioner: a tiny randomly initialised LLaVA (CLIP vision + Llama text), its tokenizer and processor are
built offline, saved with save_pretrained and loaded back through Captioner."""

import numpy as np
import pytest

from disco_train.modalities.caption import Captioner, frame_grid
from stages import build_llava


@pytest.fixture(scope="module")
def llava_dir(tmp_path_factory):
    return build_llava(tmp_path_factory.mktemp("llava"))


def _frames(n=4, h=20, w=24, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_frame_grid_layout():
    frames = _frames(n=3, h=2, w=3)
    grid = frame_grid(frames)
    assert grid.shape == (4, 6, 3)  # 3 frames -> 2 columns x 2 rows, reading order
    assert np.array_equal(grid[:2, :3], frames[0]) and np.array_equal(grid[:2, 3:], frames[1])
    assert np.array_equal(grid[2:, :3], frames[2]) and not grid[2:, 3:].any()
    assert np.array_equal(frame_grid(frames[:1]), frames[0])
    assert frame_grid(_frames(n=4, h=2, w=3)).shape == (4, 6, 3)
    with pytest.raises(ValueError, match="uint8 frames"):
        frame_grid(frames.astype(np.float32))


def test_caption_from_a_saved_tiny_llava(llava_dir):
    captioner = Captioner(str(llava_dir), max_new_tokens=3)
    seen = []
    real = captioner.model.model.get_image_features

    def spy(pixel_values, **kwargs):
        seen.append(tuple(pixel_values.shape))
        return real(pixel_values, **kwargs)

    captioner.model.model.get_image_features = spy
    # only the generated tokens come back (the prompt is not echoed), whitespace normalised
    assert captioner.caption(_frames()) == "video video video"
    assert seen and seen[0] == (1, 3, 28, 28)  # the 4 frames reach the vision tower as one 28x28 image


def test_random_model_returns_a_string(tmp_path):
    captioner = Captioner(build_llava(tmp_path / "m", silent=False), max_new_tokens=4)
    caption = captioner.caption(_frames(n=1))
    assert isinstance(caption, str) and caption == caption.strip()
    assert captioner.caption(_frames(n=1)) == caption  # greedy: deterministic


def test_chat_template_is_used_when_present(tmp_path):
    template = "{% for m in messages %}USER: <image>\nCHAT {{ m['content'][1]['text'] }}{% endfor %} ASSISTANT:"
    captioner = Captioner(build_llava(tmp_path / "m", chat_template=template), prompt="{n} frames", max_new_tokens=2)
    assert captioner._text(4) == "USER: <image>\nCHAT 4 frames ASSISTANT:"
    assert captioner.caption(_frames()) == "video video"


def test_missing_or_bad_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere.*checkpoints/llava/"):
        Captioner(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="could not load a vision-language model"):
        Captioner(tmp_path / "empty")


def test_prepare_caption_stage_uses_the_real_captioner(llava_dir):
    from datamodules.stages import CaptionStage
    from disco_train.config import PrepareConfig

    stage = CaptionStage(PrepareConfig(input="unused", output="unused", captioner=str(llava_dir)))
    stage.preflight()
    assert isinstance(stage.model, Captioner)
    assert stage(_frames(n=9)) == " ".join(["video"] * 48)
