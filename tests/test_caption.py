"""LLaVA captioner: a tiny randomly initialised LLaVA (CLIP vision + Llama text), its tokenizer and processor are
built offline, saved with save_pretrained and loaded back through Captioner."""

import numpy as np
import pytest
import torch

from disco_train.caption import Captioner, frame_grid

WORDS = ["video", "a", "cat", "runs", "the", "frames"]  # "video" is id 0: a zeroed final norm makes it the argmax
SPECIALS = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]


def _tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(WORDS + SPECIALS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece()  # joins word tokens with spaces
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", extra_special_tokens={"image_token": "<image>"})


def _build(folder, chat_template=None, silent=True):
    from transformers import (CLIPImageProcessorPil, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)

    tokenizer = _tokenizer()
    image_token_id = tokenizer.convert_tokens_to_ids("<image>")
    vision = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                              image_size=28, patch_size=14, projection_dim=16)
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                       num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=tokenizer.pad_token_id)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_id=image_token_id,
                         vision_feature_select_strategy="default", vision_feature_layer=-1)
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config).eval()
    if silent:  # all logits equal -> greedy picks id 0 ("video") every step: a known caption
        with torch.no_grad():
            model.model.language_model.norm.weight.zero_()
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=14,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=chat_template)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def llava_dir(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("llava"))


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
    captioner = Captioner(_build(tmp_path / "m", silent=False), max_new_tokens=4)
    caption = captioner.caption(_frames(n=1))
    assert isinstance(caption, str) and caption == caption.strip()
    assert captioner.caption(_frames(n=1)) == caption  # greedy: deterministic


def test_chat_template_is_used_when_present(tmp_path):
    template = "{% for m in messages %}USER: <image>\nCHAT {{ m['content'][1]['text'] }}{% endfor %} ASSISTANT:"
    captioner = Captioner(_build(tmp_path / "m", chat_template=template), prompt="{n} frames", max_new_tokens=2)
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
    from disco_train.config_prepare import PrepareConfig

    stage = CaptionStage(PrepareConfig(input="unused", output="unused", captioner=str(llava_dir)))
    stage.preflight()
    assert isinstance(stage.model, Captioner)
    assert stage(_frames(n=9)) == " ".join(["video"] * 48)
