"""The optional prepare stages' real modules with weights built in code, for tests: the InformativeDrawings
generator with random weights, a tiny random LLaVA saved with save_pretrained, and DWPose's rtmlib tools.

DWPose needs the two official ONNX files, which cannot be built here (no onnx package), so rtmlib's YOLOX and
RTMPose are replaced by stand-ins with their interface (`install_rtmlib`); the project's DWPose wrapper around
them runs for real. DCVC-RT needs no stand-in: `dcvc_rt_dir=synthetic` selects its deterministic test weights.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import torch


def sketch_weights(folder: Path) -> Path:
    """A random InformativeDrawings generator saved under its official file name (loads strictly)."""
    from disco_train.modalities.sketch import SketchGenerator

    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "netG_A_latest.pth"
    torch.save(SketchGenerator().state_dict(), path)
    return path


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


def build_llava(folder, chat_template=None, silent=True):
    """A tiny random LLaVA (CLIP vision + Llama text) with its processor, saved in `folder`. `silent`: all logits
    equal, so greedy decoding writes "video" at every step (a known caption)."""
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



class Detector:
    """Stand-in for rtmlib.YOLOX in 'multiclass' mode: (boxes, class ids); frames whose mean is 0 hold nobody."""

    def __init__(self, path, **kwargs):
        self.path, self.kwargs, self.frames = path, kwargs, []

    def __call__(self, frame):
        self.frames.append(frame)
        if frame.mean() == 0:
            return np.array([]), np.array([])
        return np.array([[1, 2, 10, 12], [0, 0, 5, 5], [3, 4, 20, 22]], np.float32), np.array([0, 2, 0])


class Pose:
    """Stand-in for rtmlib.RTMPose's preprocess/inference: SimCC peaks that decode to COCO-WholeBody points
    spread along each box's diagonal, with x peaks 0.9 and y peaks 0.6 (DWPose's score: the smaller, 0.6)."""

    model_input_size = (192, 256)  # (w, h); SimCC has 2 bins per input pixel

    def __init__(self, path, **kwargs):
        self.path, self.kwargs, self.boxes = path, kwargs, []

    def preprocess(self, frame, box):
        self.boxes.append(list(box))
        x1, y1, x2, y2 = (float(v) for v in box)
        return box, np.array([(x1 + x2) / 2, (y1 + y2) / 2]), np.array([x2 - x1, y2 - y1])

    def inference(self, box):
        (w, h), t = self.model_input_size, np.linspace(0, 1, 133)
        simcc_x, simcc_y = np.zeros((1, 133, 2 * w), np.float32), np.zeros((1, 133, 2 * h), np.float32)
        simcc_x[0, np.arange(133), np.round(t * (2 * w - 2)).astype(int)] = 0.9
        simcc_y[0, np.arange(133), np.round(t * (2 * h - 2)).astype(int)] = 0.6
        return [simcc_x, simcc_y]


def expected_poses(boxes):
    """What the fake's SimCC decodes to, in frame pixels."""
    out = []
    for x1, y1, x2, y2 in boxes:
        t = np.linspace(0, 1, 133)
        fx, fy = np.round(t * (2 * 192 - 2)) / 2 / 192, np.round(t * (2 * 256 - 2)) / 2 / 256
        out.append(np.stack([x1 + fx * (x2 - x1), y1 + fy * (y2 - y1)], -1))
    return np.stack(out).astype(np.float32), np.full((len(boxes), 133), 0.6, np.float32)



def install_rtmlib(monkeypatch, folder: Path) -> Path:
    """rtmlib's tools replaced by the stand-ins above, and empty files at the ONNX paths DWPose checks."""
    monkeypatch.setitem(sys.modules, "rtmlib", types.SimpleNamespace(YOLOX=Detector, RTMPose=Pose))
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("dw-ll_ucoco_384.onnx", "yolox_l.onnx"):
        (folder / name).write_bytes(b"")
    return folder
