"""DCVC-RT real bitstreams: exact round trips, rate from bytes, schedule, and corrupt input."""

import copy

import numpy as np
import pytest
import torch

from disco_train.dcvc_rt import bitstream as bs
from disco_train.dcvc_rt import tables
from disco_train.dcvc_rt.api import (decode_image, decode_video, encode_image, encode_video,
                                            encode_video_result, synthetic_codec)
from disco_train.dcvc_rt.codec import DcvcRtCodec
from disco_train.dcvc_rt.coding import BitstreamError, SymbolReader, SymbolWriter
from disco_train.dcvc_rt.color import ycbcr_to_uint8_frames


@pytest.fixture(scope="module")
def codec():
    return synthetic_codec()


def smooth_frames(T, H, W, seed=0):
    """Natural-ish uint8 RGB content: gradients plus a moving blob plus mild noise."""
    rng = np.random.default_rng(seed)
    i, j = np.mgrid[0:H, 0:W]
    frames = []
    for t in range(T):
        blob = np.exp(-((i - H / 2) ** 2 + (j - W / 3 - 3 * t) ** 2) / (0.05 * H * W))
        rgb = np.stack([i / H, j / W, blob], -1) * 200 + rng.normal(0, 4, (H, W, 3)) + 20
        frames.append(np.clip(rgb, 0, 255).astype(np.uint8))
    return np.stack(frames)


def _extreme_symbols():
    """Folded y scales and symbols covering skips, the 0.11 / 16 clamps and every escape length."""
    torch.manual_seed(0)
    s_w = torch.rand(1, 64, 3, 5) * 20  # some <= 0.12 (skipped), some clamped at 16
    s_w[0, 0, 0, :3] = torch.tensor([0.05, 0.11, 0.13])
    y = torch.randint(-3, 4, s_w.shape).float()
    s_w[0, 1, 0, :] = 0.2  # the narrowest tables (-2..2): everything beyond is escaped
    y[0, 1, 0, :] = torch.tensor([-128., 127., 3., -3., 40.])  # 5, 5, 0, 1 and 4 bypass digits
    y[s_w <= 0.12] = 0  # the encoder forces skipped symbols to 0
    z = torch.randint(-128, 128, (1, 128, 2, 3)).float()
    z[0, :, 0, 0] = 0.0
    return s_w, y, z


def test_symbol_coder_round_trip_extremes(codec):
    # Out-of-range symbols go through the escape entry and the bypass bins; all must round-trip.
    s_w, y, z = _extreme_symbols()
    y_t, z_t = codec.tables(codec.intra)
    w = SymbolWriter(y_t, z_t)
    w.write_z(z, 5)
    w.write_y(y, s_w)
    r = SymbolReader(w.to_bytes(), y_t, z_t)
    assert torch.equal(r.read_z(5, z.shape, "cpu", torch.float32), z)
    assert torch.equal(r.read_y(s_w), y)
    r.finish(w.model_crc)


def test_escape_bins_are_the_official_layout():
    # raw 0 -> one count bin 0; 5 = 0b0101 -> count 2, digits 1, 1; 48 = 3 * 4^2 -> count [3, 0], digits 0, 0, 3;
    # 64 = 4^3 -> count 4 = [3, 1], digits 0, 0, 0, 1
    counts, payload = tables.escape_bins(np.array([0, 5, 48, 64]))
    assert counts == [[0], [2], [3, 0], [3, 1]]
    assert payload == [[], [1, 1], [0, 0, 3], [0, 0, 0, 1]]
    entry, esc, raw = tables.fold_escapes(np.array([-3, 2, 3, 10]), np.array([-2] * 4), np.array([7] * 4))
    assert entry.tolist() == [5, 4, 5, 5] and esc.tolist() == [True, False, True, True]
    assert raw.tolist() == [1, 0, 14]  # below by 1: 2*1-1; at the escape itself: 0; 7 above it: 2*7
    assert tables.unfold_escapes(raw, np.array([-2] * 3), np.array([7] * 3)).tolist() == [-3, 3, 10]


def test_image_round_trip_exact_and_bpp(codec):
    img = smooth_frames(1, 64, 64)[0]
    res = encode_video_result(img[None], qp=37, codec=codec)
    assert torch.equal(codec.decode_frames(res.bitstream), res.recon)
    decoded = decode_image(res.bitstream, codec=codec)
    assert decoded.dtype == np.uint8 and decoded.shape == (64, 64, 3)
    assert np.array_equal(decoded, ycbcr_to_uint8_frames(res.recon)[0])
    assert res.bpp == 8 * len(res.bitstream) / (64 * 64)
    assert res.frame_bytes == [len(res.bitstream)]
    assert encode_image(img, 37, codec=codec) == res.bitstream  # deterministic encoder


def test_video_round_trip_padding_qp_schedule_and_reset(codec):
    frames = smooth_frames(4, 40, 56)  # pads to 48x64; y 3x4 pads to 4x4 for the hyperprior
    res = encode_video_result(frames, qp=63, reset_interval=2, codec=codec)
    header, recs = bs.parse_stream(res.bitstream)
    assert (header.kind, header.height, header.width, header.num_frames) == (bs.KIND_VIDEO, 40, 56, 4)
    assert [r.frame_type for r in recs] == [bs.FRAME_I] + [bs.FRAME_P] * 3
    assert [r.qp for r in recs] == [63, 71, 63, 67]  # qp_p + 8, +0, +4
    assert [r.reset for r in recs] == [False, True, False, True]  # t % 2 == 1
    assert sum(res.frame_bytes) == len(res.bitstream)
    decoded = codec.decode_frames(res.bitstream)
    assert decoded.shape == (4, 3, 40, 56)
    assert torch.equal(decoded, res.recon)
    assert np.array_equal(decode_video(res.bitstream, codec=codec), ycbcr_to_uint8_frames(res.recon))


def test_intra_period_and_separate_p_qp(codec):
    frames = smooth_frames(3, 32, 32, seed=1)
    res = encode_video_result(frames, qp=0, qp_p=10, intra_period=2, codec=codec)
    _, recs = bs.parse_stream(res.bitstream)
    assert [(r.frame_type, r.qp) for r in recs] == [(bs.FRAME_I, 0), (bs.FRAME_P, 18), (bs.FRAME_I, 0)]
    assert torch.equal(codec.decode_frames(res.bitstream), res.recon)


def test_rate_grows_with_qp(codec):
    img = smooth_frames(1, 64, 64, seed=2)
    sizes = [len(encode_image(img[0], qp, codec=codec)) for qp in (0, 63)]
    assert sizes[0] < sizes[1], sizes  # QP 0 is the lowest quality / rate


@pytest.fixture(scope="module")
def stream(codec):
    return encode_video(smooth_frames(2, 32, 48, seed=3), qp=30, codec=codec)


def test_every_truncation_raises(codec, stream):
    for n in sorted(set(range(0, 40)) | set(range(40, len(stream), 7)) | {len(stream) - 1}):
        with pytest.raises(BitstreamError):
            codec.decode_frames(stream[:n])


def test_every_byte_corruption_raises(codec, stream):
    for pos in range(0, len(stream), max(1, len(stream) // 60)):
        bad = bytearray(stream)
        bad[pos] ^= 0x5A
        with pytest.raises(BitstreamError):
            codec.decode_frames(bytes(bad))


@pytest.mark.parametrize("data,match", [
    (b"", "shorter than"), (b"XXXX" + bytes(30), "magic"), (None, "trailing"), (None, "announces"),
])
def test_malformed_streams(codec, stream, data, match):
    if match == "trailing":
        data = stream + b"\x00"
    elif match == "announces":
        h = bs.write_header(bs.StreamHeader(bs.KIND_VIDEO, 32, 48, 2 ** 32 - 1))
        data = h + stream[bs.HEADER_BYTES:]
    with pytest.raises(BitstreamError, match=match):
        codec.decode_frames(data)
    assert issubclass(BitstreamError, ValueError)


def test_p_frame_qp_out_of_range_is_rejected(codec, stream):
    header, recs = bs.parse_stream(stream)
    p = recs[1]
    forged = bs.write_header(header) + bs.write_frame(recs[0]) + bs.write_frame(
        bs.FrameRecord(p.frame_type, 72, p.reset, p.payload))
    with pytest.raises(BitstreamError, match="P-frame qp 72"):
        codec.decode_frames(forged)


def test_invalid_inputs(codec):
    with pytest.raises(ValueError, match="qp must be an int in 0..63"):
        encode_image(np.zeros((16, 16, 3), np.uint8), 64, codec=codec)
    with pytest.raises(TypeError, match="uint8"):
        encode_video(np.zeros((1, 16, 16, 3), np.float32), 1, codec=codec)
    with pytest.raises(ValueError, match=r"\(T,H,W,3\)"):
        encode_video(np.zeros((1, 16, 16, 4), np.uint8), 1, codec=codec)


def test_p_frames_need_inter_model(codec, stream):
    intra_only = DcvcRtCodec(codec.intra)
    with pytest.raises(ValueError, match="inter model"):
        intra_only.decode_frames(stream)


def test_decoding_does_not_depend_on_the_callers_thread_count(codec):
    """Shards are written by a process with every core and decoded in DataLoader workers with one thread: the
    entropy-model parameters must come out bit-identical (without the pin this stream failed to decode)."""
    frames = smooth_frames(2, 128, 128, seed=5)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        result = encode_video_result(frames, qp=30, codec=codec)
        assert torch.get_num_threads() == 2  # the caller's setting is restored
        torch.set_num_threads(1)
        decoded = codec.decode_frames(result.bitstream)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(decoded, result.recon)


def test_a_stream_for_other_entropy_models_fails_clearly(codec):
    """A decoder whose networks predict other scales picks other tables: a clear error, never a wrong picture."""
    stream = encode_video(smooth_frames(1, 64, 64, seed=6), qp=30, codec=codec)
    other = DcvcRtCodec(copy.deepcopy(codec.intra))
    with torch.no_grad():
        other.intra.y_prior_fusion[3].bias[2:258] += 0.05  # the step-0 scales
    with pytest.raises(BitstreamError, match="other weights, device, dtype or thread count"):
        other.decode_frames(stream)
