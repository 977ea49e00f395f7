import numpy as np
import pytest
import torch

from disco_train.modalities.text import decode_text, encode_text
from disco_train.modalities.degrade import forward_fill, kept_frame_indices
from disco_train.modalities.interleave import interleave_mask, interleave_tokens


def test_text_round_trip_and_corrupt_bytes():
    caption = "A red fox jumps over a snowy fence, ünïcode ✓"
    data = encode_text(caption)
    assert decode_text(data) == caption
    with pytest.raises(ValueError, match="corrupt text bitstream"):
        decode_text(data[:-3])
    with pytest.raises(ValueError):
        decode_text(b"not zlib")


def test_kept_indices():
    assert kept_frame_indices(57, 4) == list(range(0, 57, 4)) and len(kept_frame_indices(57, 4)) == 15
    assert kept_frame_indices(5, 1) == [0, 1, 2, 3, 4]


def test_forward_fill_repeats_last_kept_frame():
    # paper Fig. 3: 4 frames, D_t = 2 -> frames 0 and 2 kept; 1 repeats 0 and 3 repeats 2
    kept = np.array([[10], [30]])
    assert forward_fill(kept, 2, "forward", num_frames=4)[:, 0].tolist() == [10, 10, 30, 30]
    full = np.arange(57)
    kept = full[kept_frame_indices(57, 4)]
    filled = forward_fill(kept, 4, "forward", num_frames=57)
    assert filled.tolist() == [4 * (i // 4) for i in range(57)]
    t = torch.arange(3.0)[:, None, None].expand(3, 2, 2)
    assert forward_fill(t, 3, "forward", num_frames=7)[:, 0, 0].tolist() == [0, 0, 0, 1, 1, 1, 2]


def test_zero_and_none_fill():
    kept = np.ones((3, 2, 2, 3), np.uint8) * np.arange(1, 4, dtype=np.uint8)[:, None, None, None]
    zero = forward_fill(kept, 2, "zero", num_frames=5)
    assert zero[:, 0, 0, 0].tolist() == [1, 0, 2, 0, 3]
    assert forward_fill(kept, 1, "none").shape == kept.shape
    with pytest.raises(ValueError, match="factor must be 1"):
        forward_fill(kept, 2, "none")
    with pytest.raises(ValueError, match="need 4 kept frames"):
        forward_fill(kept, 2, "forward", num_frames=7)
    with pytest.raises(ValueError, match="unknown fill mode"):
        forward_fill(kept, 2, "backward")


@pytest.mark.parametrize("ratio", [(1, 3), (1, 1), (2, 1), (3, 5)])
def test_interleave_pattern(ratio):
    b, n, c = 2, 24, 4
    video, aux = torch.zeros(b, n, c), torch.ones(b, n, c)
    out = interleave_tokens(video, aux, ratio)
    a, bb = ratio
    expected = torch.tensor([0.0 if i % (a + bb) < a else 1.0 for i in range(n)])
    assert out.shape == (b, n, c)
    assert torch.equal(out[0, :, 0], expected) and torch.equal(out[1, :, 1], expected)
    assert interleave_mask(n, ratio).sum() == sum(1 for i in range(n) if i % (a + bb) < a)


def test_interleave_keeps_positions_and_rejects_misaligned():
    video, aux = torch.randn(1, 8, 3), torch.randn(1, 8, 3)
    out = interleave_tokens(video, aux, (1, 3))
    assert torch.equal(out[0, 0], video[0, 0]) and torch.equal(out[0, 1], aux[0, 1])
    assert torch.equal(out[0, 4], video[0, 4])
    with pytest.raises(ValueError, match="aligned"):
        interleave_tokens(video, aux[:, :4], (1, 3))
