"""Text modality of DiSCo (§3.1), sender side: a caption of each clip from a LLaVA-family vision-language model.

The paper names LLaVA but not the variant or the prompt; any transformers image-text-to-text checkpoint saved
with `save_pretrained` (model + processor in one folder, e.g. `llava-hf/llava-1.5-7b-hf`) works.

Frames are fed as **one image**: the N frames `caption_clip` samples (CAPTION_FRAMES, evenly spaced; the same for
`prepare` and `encode`) are tiled into a near-square grid in reading order, and the prompt says so. Why a grid: video
processors in transformers 5 require torchvision (which cannot be installed next to the CPU torch, see
checkpoints/README.md), LLaVA-1.5 was trained on single images, and one image costs one set of image tokens, so
the caption sees the clip's motion at the cost of resolution per frame (the processor resizes the grid to its input
size, e.g. 336 px: 168 px per frame for a 2×2 grid). One frame (N = 1) is passed as is.

Only the image-processor path is used, with the PIL backend (`backend="pil"`), so nothing imports torchvision.
Everything is loaded with `local_files_only=True`: nothing is downloaded.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import torch

from disco_train.io.hub import repo_ref, resolve_weights

DEFAULT_DIR = "checkpoints/llava"
CAPTION_FRAMES = 4
"""Frames sampled evenly from a clip and tiled into the captioner's one image."""
DEFAULT_PROMPT = ("The image shows {n} frames of one video clip, tiled in reading order. Describe what happens in "
                  "the video in one short sentence.")
# LLaVA-1.5's conversation format, used when the processor carries no chat template.
FALLBACK_TEMPLATE = "USER: <image>\n{prompt} ASSISTANT:"


def frame_grid(frames: np.ndarray) -> np.ndarray:
    """uint8 [N,H,W,3] -> one uint8 image [rows*H, cols*W, 3], frames in reading order, unused cells black."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"expected uint8 frames [N,H,W,3] with N >= 1, got {frames.dtype} {frames.shape}")
    n, h, w, _ = frames.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.zeros((rows * h, cols * w, 3), np.uint8)
    for i, frame in enumerate(frames):
        r, c = divmod(i, cols)
        grid[r * h:(r + 1) * h, c * w:(c + 1) * w] = frame
    return grid


def _default_dtype(device: str) -> torch.dtype:
    # fp32 on CPU (half precision is slow or unsupported there); bf16 on GPUs, as LLaVA checkpoints are trained.
    return torch.bfloat16 if str(device).startswith("cuda") else torch.float32


class Captioner:
    """`Captioner(folder).caption(frames uint8 [N,H,W,3]) -> str`, greedy decoding (deterministic captions)."""

    def __init__(self, path: str | Path = DEFAULT_DIR, device: str = "cpu", prompt: str = DEFAULT_PROMPT,
                 max_new_tokens: int = 48, dtype: torch.dtype | None = None):
        if repo_ref(str(path)):  # a Hub repo id such as llava-hf/llava-1.5-7b-hf
            path = resolve_weights(path, "captioner", "captioner model")
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"captioner folder {path} not found; put a transformers LLaVA-family model "
                                    f"folder (model + processor, save_pretrained layout) at {DEFAULT_DIR}/ or point "
                                    f"captioner at it (see checkpoints/README.md)")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        from transformers import AutoModelForImageTextToText, AutoProcessor

        try:
            self.processor = AutoProcessor.from_pretrained(path, local_files_only=True, backend="pil")
            self.model = AutoModelForImageTextToText.from_pretrained(
                path, local_files_only=True, dtype=dtype or _default_dtype(device))
        except (OSError, ValueError, ImportError) as err:
            raise ValueError(f"could not load a vision-language model and its processor from {path} "
                             f"({type(err).__name__}: {err})") from err
        self.model.to(device).eval()
        self.device, self.prompt, self.max_new_tokens = device, prompt, max_new_tokens

    def _text(self, n: int) -> str:
        prompt = self.prompt.format(n=n)
        if getattr(self.processor, "chat_template", None):
            messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
            return self.processor.apply_chat_template(messages, add_generation_prompt=True)
        return FALLBACK_TEMPLATE.format(prompt=prompt)

    @torch.no_grad()
    def caption(self, frames: np.ndarray) -> str:
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        image = frame_grid(frames)
        inputs = self.processor(images=[image], text=[self._text(len(frames))], return_tensors="pt")
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        new = out[0, inputs["input_ids"].shape[1]:]  # decoder-only: the prompt is echoed first
        text = self.processor.batch_decode(new[None], skip_special_tokens=True)[0]
        return re.sub(r"\s+", " ", text).strip()


def caption_clip(captioner, clip: np.ndarray, frames: int = CAPTION_FRAMES) -> str:
    """Caption a clip from `frames` evenly spaced frames; an empty caption is an error (it would code as nothing)."""
    picks = np.linspace(0, len(clip) - 1, frames).round().astype(int)
    caption = str(captioner.caption(clip[picks])).strip()
    if not caption:
        raise ValueError("the captioner returned an empty caption")
    return caption
