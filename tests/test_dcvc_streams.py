"""DCVC-RT stream formats: the official byte format (known answers), thread counts, lazy reconstruction."""

import dataclasses
import hashlib
import zlib

import numpy as np
import pytest
import torch

from disco_train.dcvc_rt import bitstream as bs
from disco_train.dcvc_rt import official_stream as ofs
from disco_train.dcvc_rt import tables
from disco_train.dcvc_rt.api import encode_video, encode_video_result, synthetic_codec
from disco_train.dcvc_rt.coding import BitstreamError
from disco_train.dcvc_rt.golden_input import make_frame
from disco_train.dcvc_rt.rans_official import OfficialReader, OfficialWriter, merge_two

from test_dcvc_codec import smooth_frames

# Known answers of the official C++ rANS extension (MLCodec_extensions_cpp of microsoft/DCVC at 54e8864, built
# from source): RansEncoder with the 128 Gaussian tables added once, encode_z(z, group, 5, 10) then
# encode_y((sym << 8) + idx, group), flush; with set_use_two_encoders False / True. (length, sha256, first 8 bytes)
KNOWN = {False: (352, "7026dd22a987c539062d838a640018b3e95f2729b595fa8beb247b50fc08f77b", "0000e3060003f803"),
         True: (355, "ec39328c56b45b0dacb052b898e926fee543edf3699225473b4be804c5b261bb", "0000ad460003f1ff")}


def _known_symbols():
    i = np.arange(400)
    idx = 40 + (i * 37) % 88
    sym = ((i * 7919) % 5) - 2
    sym[[3, 50, 77, 200, 399]] = [-128, 127, 9, -40, 0]  # escapes with 5, 5, 2 and 4 bypass digits
    z = ((i[:120] * 31) % 5) - 2
    z[[7, 60]] = [-30, 11]
    return z, 5 + np.arange(120) // 10, sym, idx


@pytest.mark.parametrize("two", [False, True])
def test_official_rans_bytes_match_the_official_extension(two):
    t = tables.gaussian_tables()
    z, z_rows, sym, idx = _known_symbols()
    w = OfficialWriter(t, t, two_coders=two)
    w.add(z, z_rows, t, per_channel=10)
    w.add(sym, idx, t)
    data = w.to_bytes()
    assert (len(data), hashlib.sha256(data).hexdigest(), data[:8].hex()) == KNOWN[two]
    r = OfficialReader(data, t, t, two_coders=two)
    assert r.read(z_rows, t, per_channel=10).tolist() == z.tolist()
    assert r.read(idx, t).tolist() == sym.tolist()
    r.finish()


def test_official_rans_rejects_truncation_and_trailing_bytes():
    t = tables.gaussian_tables()
    _, _, sym, idx = _known_symbols()
    w = OfficialWriter(t, t)
    w.add(sym, idx, t)
    data = w.to_bytes()
    with pytest.raises(BitstreamError, match="ended early"):
        OfficialReader(data[:len(data) // 2], t, t).read(idx, t)
    r = OfficialReader(data + b"\x00", t, t)
    r.read(idx, t)
    with pytest.raises(BitstreamError, match="unread"):
        r.finish()


def test_two_stream_merge_shares_trailing_bytes():
    assert merge_two(b"ab\x00\x00", b"cd\x00\x00") == b"ab\x00\x00" + b"dc"  # two zero bytes shared
    assert merge_two(b"abx", b"cdx") == b"abx" + b"dc"                      # one equal non-zero byte
    assert merge_two(b"abx", b"cdy") == b"abx" + b"ydc"


@pytest.fixture(scope="module")
def codec():
    return synthetic_codec()


def test_official_container_round_trip_and_layout(codec):
    frames = smooth_frames(4, 40, 56, seed=7)  # pads to 48x64
    res = encode_video_result(frames, qp=20, reset_interval=2, codec=codec, stream_format="official")
    data = res.bitstream
    # SPS 0: nal 0 | id 0, height 40, width 56, flags 0; then the I-frame: nal 1 | sps 0, qp 20, 2-byte length
    assert data[:4] == bytes((0x00, 40, 56, 0x00)) and data[4:6] == bytes((0x10, 20))
    (H, W, two), recs = ofs.parse_stream(data)
    assert (H, W, two) == (40, 56, 0)
    assert [(r.frame_type, r.qp, r.reset) for r in recs] == [(bs.FRAME_I, 20, False), (bs.FRAME_P, 28, True),
                                                             (bs.FRAME_P, 20, False), (bs.FRAME_P, 24, True)]
    assert data.count(bytes((0x01, 40, 56, 0x01))) == 1  # SPS 1 (use_ada_i) is sent once, before frame 1
    assert sum(res.frame_bytes) == len(data)
    assert torch.equal(codec.decode_frames(data), res.recon)


def test_official_stream_errors(codec):
    data = encode_video(smooth_frames(2, 32, 32, seed=8), qp=30, codec=codec, stream_format="official")
    for n in (1, 3, 6, len(data) // 2, len(data) - 1):
        with pytest.raises(BitstreamError):
            codec.decode_frames(data[:n])
    for pos in range(8, len(data), max(1, len(data) // 25)):  # payload corruption: rANS end-state checks
        bad = bytearray(data)
        bad[pos] ^= 0x5A
        try:
            out = codec.decode_frames(bytes(bad))
        except BitstreamError:
            continue
        assert out.shape == (2, 3, 32, 32)  # rare: a flip the unchecked official format cannot see
    with pytest.raises(BitstreamError, match="SPS 3, not yet sent"):
        codec.decode_frames(bytes((0x00, 32, 32, 0x00, 0x13, 30, 1, 0)))
    with pytest.raises(BitstreamError, match="pixel"):
        codec.decode_frames(bytes((0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0x80, 0x40, 0x00)))
    with pytest.raises(ValueError, match="threads=1"):
        encode_video(smooth_frames(1, 16, 16), qp=30, codec=codec, stream_format="official", threads=2)


def test_version_1_and_oversized_streams_are_rejected_clearly(codec):
    data = encode_video(smooth_frames(1, 16, 16), qp=30, codec=codec)
    old = data[:4] + bytes((1,)) + data[5:]
    with pytest.raises(BitstreamError, match="version 1 streams"):
        codec.decode_frames(old)
    big = bs.write_header(bs.StreamHeader(bs.KIND_IMAGE, 16, 16, 1))
    big = bytearray(big)
    big[6:10] = (60000).to_bytes(2, "little") + (60000).to_bytes(2, "little")
    body = bytes(big[:bs.HEADER_BYTES - 4])
    forged = body + zlib.crc32(body).to_bytes(4, "little") + data[bs.HEADER_BYTES:]
    with pytest.raises(BitstreamError, match="pixel limit"):
        codec.decode_frames(forged)


def test_thread_count_is_recorded_and_used_by_the_decoder(codec):
    # On the golden 256x256 frame, 1 and 2 threads give scales up to 7e-6 apart and one other table index.
    res = codec.encode_frames(make_frame(256, 256, 0).float(), qp=32, threads=2)
    header, _ = bs.parse_stream(res.bitstream)
    assert header.threads == 2
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # a DataLoader worker: the decoder switches to the stream's 2 threads
        assert torch.equal(codec.decode_frames(res.bitstream), res.recon)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    forged = bs.write_header(dataclasses.replace(header, threads=1)) + res.bitstream[bs.HEADER_BYTES:]
    try:
        out = codec.decode_frames(forged)
    except BitstreamError as e:  # what 1 vs 2 threads gave here: one other table index, caught
        assert "thread count" in str(e)
    else:  # kernels that happen to agree at both counts: still the right symbols, so float noise only
        torch.testing.assert_close(out, res.recon, atol=1e-3, rtol=0)


def test_p_frame_pixels_are_built_only_when_asked(codec):
    calls = []
    hook = codec.inter.recon_generation_net.register_forward_hook(lambda *a: calls.append(1))
    try:
        frames = smooth_frames(4, 32, 32, seed=9)
        res = encode_video_result(frames, qp=30, codec=codec)  # reset at t=1 only: a no-op after the I-frame
        assert calls == []
        recon = res.recon  # the 3 P-frames' pixels, now
        assert len(calls) == 3 and res.recon is recon
        calls.clear()
        encode_video_result(frames, qp=30, codec=codec, reset_interval=2)
        assert len(calls) == 1  # frame 3's reset rebuilds pixels from the feature, as the official encoder does
        lean = encode_video_result(frames, qp=30, codec=codec, with_recon=False)
        with pytest.raises(ValueError, match="with_recon=False"):
            lean.recon
    finally:
        hook.remove()
    assert lean.bitstream == res.bitstream == encode_video(frames, qp=30, codec=codec)
    assert torch.equal(codec.decode_frames(res.bitstream), recon)
