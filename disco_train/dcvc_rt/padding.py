"""Size bookkeeping: frames are padded to multiples of 16, latents to multiples of 4."""

import torch
import torch.nn.functional as F

FRAME_ALIGN = 16  # the encoder downsamples by 16 (pixel_unshuffle 8, then a stride-2 conv)
LATENT_ALIGN = 4  # the hyper-encoder downsamples y by 4 more (two stride-2 blocks)


def padding_size(height: int, width: int, p: int):
    """(pad_right, pad_bottom) to the next multiple of p, e.g. 270 -> 272 for p=16: (0, 2)."""
    new_h = (height + p - 1) // p * p
    new_w = (width + p - 1) // p * p
    return new_w - width, new_h - height


def replicate_pad(x: torch.Tensor, pad_bottom: int, pad_right: int) -> torch.Tensor:
    """Replicate the last row/column to the bottom/right (official `replicate_pad`)."""
    if pad_bottom == 0 and pad_right == 0:
        return x
    return F.pad(x, (0, pad_right, 0, pad_bottom), mode="replicate")


def pad_frame(x: torch.Tensor) -> torch.Tensor:
    """Pad an NCHW frame to multiples of 16 on the right and bottom."""
    pad_r, pad_b = padding_size(x.shape[-2], x.shape[-1], FRAME_ALIGN)
    return replicate_pad(x, pad_b, pad_r)


def pad_for_y(y: torch.Tensor) -> torch.Tensor:
    """Pad a latent to multiples of 4 so the hyper-prior round trip (/4 then x4) covers it."""
    pad_r, pad_b = padding_size(y.shape[-2], y.shape[-1], LATENT_ALIGN)
    return replicate_pad(y, pad_b, pad_r)


def downsampled_shape(height: int, width: int, p: int):
    """ceil(H/p), ceil(W/p): the y size for p=16 and the z size for p=64."""
    return (height + p - 1) // p, (width + p - 1) // p
