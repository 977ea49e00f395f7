"""Pose codec (uint16 + LZMA bitstream) and ControlNet-style renderer."""

import lzma
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from disco_train.modalities import pose as P
from disco_train.modalities.pose import NUM_KEYPOINTS, PoseSequence, decode_poses, encode_poses, render_poses

# A plausible standing person in a 256x192 (H x W) frame, OpenPose-18 body order.
_BODY = np.array([[96, 40], [96, 64], [76, 64], [70, 92], [66, 118], [116, 64], [122, 92], [126, 118],
                  [84, 124], [82, 170], [80, 215], [108, 124], [110, 170], [112, 215], [90, 34], [102, 34],
                  [84, 38], [108, 38]], dtype=np.float32)


def make_person(offset=(0.0, 0.0), jitter=0.0, rng=None) -> np.ndarray:
    """[134, 2] keypoints: template body, feet near the ankles, a face ring, hands fanning from the wrists."""
    kp = np.zeros((NUM_KEYPOINTS, 2), np.float32)
    kp[P.BODY] = _BODY
    kp[P.FEET] = np.repeat(_BODY[[13, 10]], 3, axis=0) + np.array([[0, 8], [6, 10], [-6, 10]] * 2)
    ang = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    kp[P.FACE] = np.stack([96 + 10 * np.cos(ang), 40 + 12 * np.sin(ang)], -1)
    fan = np.array([[0, 0]] + [[dx, 4 * (j + 1)] for dx in (-8, -4, 0, 4, 8) for j in range(4)], np.float32)
    kp[P.LEFT_HAND] = kp[7] + fan
    kp[P.RIGHT_HAND] = kp[4] + fan
    kp += np.asarray(offset, np.float32)
    if jitter:
        kp += rng.normal(0, jitter, kp.shape).astype(np.float32)
    return kp


def make_sequence(counts, frame_size=(256, 192), seed=0, score=None) -> PoseSequence:
    rng = np.random.default_rng(seed)
    kps, scs = [], []
    for t, n in enumerate(counts):
        kps.append(np.stack([make_person((t * 0.7 + 3 * i, 0.3 * t), 0.5, rng) for i in range(n)])
                   if n else np.zeros((0, NUM_KEYPOINTS, 2), np.float32))
        s = rng.uniform(0.0, 1.0, (n, NUM_KEYPOINTS)) if score is None else np.full((n, NUM_KEYPOINTS), score)
        scs.append(s.astype(np.float32))
    return PoseSequence(kps, scs, frame_size)


def quantised(seq: PoseSequence):
    """Independent reference for the documented quantiser."""
    h, w = seq.frame_size
    out = []
    for k, s in zip(seq.keypoints, seq.scores):
        qx = np.rint(np.clip(k[..., 0].astype(np.float64) / w, 0, 1) * 65535) * w / 65535
        qy = np.rint(np.clip(k[..., 1].astype(np.float64) / h, 0, 1) * 65535) * h / 65535
        qs = np.rint(np.clip(s.astype(np.float64), 0, 1) * 255) / 255
        out.append((np.stack([qx, qy], -1).astype(np.float32), qs.astype(np.float32)))
    return out


def assert_same(a: PoseSequence, b: PoseSequence):
    assert a.frame_size == b.frame_size and a.poses_per_frame == b.poses_per_frame
    for (ka, sa), (kb, sb) in zip(zip(a.keypoints, a.scores), zip(b.keypoints, b.scores)):
        np.testing.assert_array_equal(ka, kb)
        np.testing.assert_array_equal(sa, sb)


def test_round_trip_is_exact_for_quantised_keypoints():
    seq = make_sequence([1, 2, 1, 3])
    data = encode_poses(seq)
    assert data[:4] == b"DSPK" and data[4] == 1
    dec = decode_poses(data)
    assert dec.frame_size == (256, 192) and dec.num_frames == 4 and dec.poses_per_frame == [1, 2, 1, 3]
    for (k, s), (rk, rs) in zip(zip(dec.keypoints, dec.scores), quantised(seq)):
        assert k.dtype == np.float32 and k.shape[1:] == (NUM_KEYPOINTS, 2)
        np.testing.assert_array_equal(k, rk)
        np.testing.assert_array_equal(s, rs)
    # Quantisation error is bounded by half a step; re-encoding the decoded poses is a fixed point.
    for k, ok in zip(dec.keypoints, seq.keypoints):
        assert np.abs(k - ok).max() <= 256 / 65535
    assert encode_poses(dec) == data
    assert_same(decode_poses(encode_poses(dec)), dec)


def test_raw_arrays_need_frame_size_and_scores():
    seq = make_sequence([1, 1])
    assert encode_poses(seq.keypoints, (256, 192), seq.scores) == encode_poses(seq)
    with pytest.raises(ValueError, match="frame_size"):
        encode_poses(seq.keypoints, None, seq.scores)
    with pytest.raises(ValueError, match="contradicts"):
        encode_poses(seq, frame_size=(100, 100))


@pytest.mark.parametrize("counts", [[0, 1, 0, 0, 2, 0], [0, 0, 0], [], [40] + [0] * 3])
def test_empty_frames_no_frames_and_many_poses(counts):
    seq = make_sequence(counts)
    dec = decode_poses(encode_poses(seq))
    assert dec.poses_per_frame == counts
    for k, s in zip(dec.keypoints, dec.scores):
        assert k.shape == (len(k), NUM_KEYPOINTS, 2) and s.shape == (len(k), NUM_KEYPOINTS)
    assert encode_poses(dec) == encode_poses(seq)


def test_out_of_frame_and_missing_points_are_clipped_or_zeroed():
    seq = make_sequence([1])
    seq.keypoints[0][0, 0] = (-20.0, 300.0)
    seq.keypoints[0][0, 1] = (np.nan, 10.0)
    seq.scores[0][0, 2] = 1.7
    dec = decode_poses(encode_poses(seq))
    np.testing.assert_array_equal(dec.keypoints[0][0, 0], [0.0, 256.0])
    np.testing.assert_array_equal(dec.keypoints[0][0, 1], [0.0, 0.0])
    assert dec.scores[0][0, 1] == 0.0 and dec.scores[0][0, 2] == 1.0


def test_compressed_size_much_smaller_than_raw():
    # 57 frames (the paper's clip length), one moving person with 0.5 px detector jitter: the jitter's
    # low bits are incompressible, so the gain over raw float32 comes from quantisation + temporal residuals.
    seq = make_sequence([1] * 57, score=0.9)
    raw = 57 * NUM_KEYPOINTS * 3 * 4  # float32 x, y, score
    quant = 57 * NUM_KEYPOINTS * 5  # uint16 x, y + uint8 score
    n = len(encode_poses(seq))
    assert n < raw / 4 and n < 0.6 * quant, (n, raw, quant)
    # Without jitter the temporal residuals are nearly constant and LZMA removes almost everything.
    still = PoseSequence([make_person()[None]] * 57, [np.full((1, NUM_KEYPOINTS), 0.9, np.float32)] * 57,
                         (256, 192))
    assert len(encode_poses(still)) < quant / 20


def test_invalid_pose_arrays_are_rejected():
    with pytest.raises(ValueError, match=r"\[P, 134, 2\]"):
        PoseSequence([np.zeros((1, 133, 2))], [np.zeros((1, 133))], (10, 10))
    with pytest.raises(ValueError, match="scores must be"):
        PoseSequence([np.zeros((2, 134, 2))], [np.zeros((1, 134))], (10, 10))
    with pytest.raises(ValueError, match="frame_size"):
        PoseSequence([], [], (0, 10))
    with pytest.raises(ValueError, match="score frames"):
        PoseSequence([np.zeros((0, 134, 2))], [], (10, 10))


def test_every_truncation_raises_value_error():
    data = encode_poses(make_sequence([1, 0, 2]))
    for n in range(len(data)):
        with pytest.raises(ValueError):
            decode_poses(data[:n])
    with pytest.raises(ValueError, match="trailing"):
        decode_poses(data + b"\x00")


def test_every_single_byte_mutation_raises_value_error():
    data = encode_poses(make_sequence([1, 0, 1]))
    for i in range(len(data)):
        for flip in (0x01, 0x80, 0xFF):
            bad = bytearray(data)
            bad[i] ^= flip
            with pytest.raises(ValueError):
                decode_poses(bytes(bad))


def test_header_errors_are_specific():
    data = encode_poses(make_sequence([1]))
    with pytest.raises(ValueError, match="magic"):
        decode_poses(b"XXXX" + data[4:])
    with pytest.raises(ValueError, match="version 2"):
        decode_poses(data[:4] + b"\x02" + data[5:])
    with pytest.raises(ValueError, match="exceeds"):
        decode_poses(data[:5] + struct.pack("<I", 0xFFFFFFFF) + data[9:])


def test_well_formed_lzma_with_inconsistent_body_is_rejected():
    # Valid container and CRC around a body whose counts promise more keypoints than it holds.
    import zlib
    body = struct.pack("<HHI", 8, 8, 1) + struct.pack("<H", 3)
    payload = lzma.compress(body, format=lzma.FORMAT_RAW, filters=P._LZMA_FILTERS)
    data = struct.pack("<4sBII", b"DSPK", 1, len(body), zlib.crc32(body)) + payload
    with pytest.raises(ValueError, match="implies"):
        decode_poses(data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200), st.booleans())
def test_random_bytes_raise_value_error(blob, with_header):
    data = (b"DSPK\x01" + blob) if with_header else blob
    with pytest.raises(ValueError):
        decode_poses(data)


def test_render_shape_dtype_and_black_background():
    seq = make_sequence([1, 0], score=0.9)
    img = render_poses(seq, 256, 192)
    assert img.shape == (2, 256, 192, 3) and img.dtype == np.uint8
    assert img[1].max() == 0  # frame without people is black
    # Every lit pixel lies near some keypoint or limb of the person; the far corners stay black.
    lit = np.argwhere(img[0].any(-1))
    assert len(lit) > 500
    kp = seq.keypoints[0][0]
    assert lit[:, 0].min() >= kp[:, 1].min() - 8 and lit[:, 0].max() <= kp[:, 1].max() + 8
    assert lit[:, 1].min() >= kp[:, 0].min() - 8 and lit[:, 1].max() <= kp[:, 0].max() + 8
    assert img[0, :20, :40].max() == 0 and img[0, 240:, 150:].max() == 0


def test_render_draws_keypoints_in_their_colours():
    seq = make_sequence([1], score=0.9)
    img = render_poses(seq, 256, 192)[0]
    kp = seq.keypoints[0][0].astype(int)
    # Joints are drawn last among body parts, so their centre pixels carry the exact palette colour
    # (except where a hand or face dot is drawn on top: wrists and nose/eyes/ears).
    for j in [1, 2, 3, 5, 6, 8, 9, 10, 11, 12, 13]:
        np.testing.assert_array_equal(img[kp[j, 1], kp[j, 0]], P._COLORS[j])
    np.testing.assert_array_equal(img[kp[100, 1], kp[100, 0]], (0, 0, 255))  # left hand point: blue
    np.testing.assert_array_equal(img[kp[30, 1], kp[30, 0]], (255, 255, 255))  # face dot: white
    # Limbs are dimmed to 60 %: midpoint of the right thigh (limb 7: joints 9-10, 1-indexed; colour 7).
    mid = ((seq.keypoints[0][0, 8] + seq.keypoints[0][0, 9]) / 2).astype(int)
    np.testing.assert_array_equal(img[mid[1], mid[0]], (np.array(P._COLORS[7]) * 0.6).astype(np.uint8))


def test_render_respects_scores_and_rescales():
    seq = make_sequence([1], score=0.9)
    seq.scores[0][0, :] = 0.1
    assert render_poses(seq, 256, 192).max() == 0  # nothing confident enough
    seq.scores[0][0, 9] = 0.9  # a single body joint (R-knee), no limb can form
    img = render_poses(seq, 512, 384)[0]  # 2x the frame size
    x, y = (seq.keypoints[0][0, 9] * 2).astype(int)
    np.testing.assert_array_equal(img[y, x], P._COLORS[9])
    lit = np.argwhere(img.any(-1))
    assert np.abs(lit - [y, x]).max() <= 5


def test_render_rejects_bad_size():
    with pytest.raises(ValueError, match="render size"):
        render_poses(make_sequence([1]), 0, 10)
