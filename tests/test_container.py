"""The .disco container: round trip, rate accounting, and a parser that rejects every malformed input cleanly."""

import zlib
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from disco_train.codec import container as C


def sample() -> C.Container:
    geometry = C.Geometry(frames=20, height=50, width=70, coded_frames=25, coded_height=64, coded_width=96,
                          fps=Fraction(24000, 1001))
    return C.Container(geometry, [C.Stream("text", "zlib", b"x\x9c caption"),
                                  C.Stream("video", "x264", bytes(range(256)) * 3, ds=4, dt=4),
                                  C.Stream("sketch", "dcvc_rt", b"\x00\x01sketch", ds=2, dt=8)])


PACKED = C.pack(sample())


def test_round_trip_and_rates(tmp_path):
    original = sample()
    assert C.unpack(PACKED) == original
    assert C.write(tmp_path / "a.disco", original) == len(PACKED)
    assert C.read(tmp_path / "a.disco") == original
    assert original.bits() == {"text": 80, "video": 6144, "sketch": 64}
    assert len(PACKED) == original.overhead_bytes + sum(len(s.data) for s in original.streams)
    assert original.bpp() == pytest.approx(6288 / (20 * 50 * 70))
    assert original.get("pose") is None and original.get("video").ds == 4


@pytest.mark.parametrize("change,message", [
    (lambda c: c.streams.clear(), "1 to 16 streams"),
    (lambda c: c.streams.append(C.Stream("text", "zlib", b"")), "duplicate"),
    (lambda c: c.streams.append(C.Stream("audio", "zlib", b"")), "unknown stream kind"),
    (lambda c: setattr(c, "geometry", C.Geometry(20, 50, 70, 24, 64, 96, Fraction(24))),
     r"24×64×96 is not the 8k\+1 × 32-multiple cover"),
    (lambda c: setattr(c, "geometry", C.Geometry(20, 50, 70, 25, 48, 96, Fraction(24))),
     r"25×48×96 is not the 8k\+1 × 32-multiple cover"),
    (lambda c: setattr(c, "geometry", C.Geometry(20, 50, 70, 25, 64, 96, Fraction(24))) or
     c.streams.append(C.Stream("pose", "lzma", b"", ds=300)), "does not fit"),
])
def test_invalid_containers_are_not_written(change, message):
    c = sample()
    change(c)
    with pytest.raises(C.ContainerError, match=message):
        C.pack(c)


@pytest.mark.parametrize("data,message", [
    (b"", "truncated"), (b"RIFF" + PACKED[4:], "not a .disco container"),
    (PACKED[:4] + b"\x03" + PACKED[5:], "version 3"), (PACKED + b"\x00", "trailing bytes"),
    (PACKED[:-1], "truncated"), (PACKED[:40], "truncated"),
])
def test_parser_messages(data, message):
    with pytest.raises(C.ContainerError, match=message):
        C.unpack(data)


def test_missing_file_named(tmp_path):
    with pytest.raises(C.ContainerError, match="no such file"):
        C.read(tmp_path / "none.disco")


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.integers(0, len(PACKED) - 1))
def test_every_truncation_is_rejected(cut):
    with pytest.raises(C.ContainerError):
        C.unpack(PACKED[:cut])


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(PACKED) - 1), st.integers(1, 255)), min_size=1, max_size=4))
def test_byte_mutations_are_rejected(flips):
    """Every byte is covered by the header CRC or a payload CRC, so any change is caught."""
    data = bytearray(PACKED)
    for position, mask in flips:
        data[position] ^= mask
    if bytes(data) == PACKED:  # two flips of the same byte cancelled out
        return
    with pytest.raises(C.ContainerError):
        C.unpack(bytes(data))


@FUZZ
@given(st.binary(max_size=200), st.booleans())
def test_arbitrary_bytes_raise_only_container_error(data, with_magic):
    data = (C.MAGIC + bytes([C.VERSION]) + data) if with_magic else data
    try:
        C.unpack(data)
    except C.ContainerError:
        pass


# ---- version 2: selected streams carry their pattern ------------------------------------------------------------
def selected() -> C.Container:
    c = sample()
    c.pattern = C.Pattern("selected", "latent_frame", 1, 3)
    return c


PACKED_V2 = C.pack(selected())


def test_full_streams_stay_version_1_and_selected_ones_are_version_2():
    assert PACKED[4] == 1 and PACKED_V2[4] == 2
    assert len(PACKED_V2) == len(PACKED) + C.PATTERN.size == selected().overhead_bytes + 6288 // 8
    assert PACKED_V2[32:38] == bytes([1, 1, 1, 0, 3, 0])  # selected, latent_frame, a=1, b=3 (u16 little-endian)
    assert C.unpack(PACKED_V2) == selected() and C.unpack(PACKED).pattern == C.FULL
    token = C.Pattern.of("selected", "token", "3:1")
    assert C.unpack(C.pack(C.Container(sample().geometry, sample().streams, token))).pattern == token
    assert str(token) == "stream=selected interleave_unit=token ratio=3:1" and str(C.FULL) == "stream=full"


def _v2_with(pattern: tuple) -> bytes:
    """PACKED_V2 with other pattern bytes and the header CRC fixed up (what an attacker can write)."""
    table_end = 38 + 12 * 3
    head = PACKED_V2[:32] + C.PATTERN.pack(*pattern) + PACKED_V2[38:table_end]
    return head + C.CRC.pack(zlib.crc32(head)) + PACKED_V2[table_end + 4:]


@pytest.mark.parametrize("pattern", [(0, 0, 1, 3), (2, 0, 1, 3), (1, 2, 1, 3), (1, 255, 1, 3), (1, 0, 0, 3),
                                     (1, 1, 1, 0), (0, 0, 0, 0)])
def test_hostile_patterns_are_container_errors(pattern):
    assert C.unpack(_v2_with((1, 0, 2, 5))).pattern == C.Pattern("selected", "token", 2, 5)  # the fix-up is right
    with pytest.raises(C.ContainerError, match="corrupt stream pattern"):
        C.unpack(_v2_with(pattern))


@pytest.mark.parametrize("pattern,message", [
    (C.Pattern("selected", "frame", 1, 3), "bad stream pattern"), (C.Pattern("selected", "token", 0, 3), "a, b >= 1"),
    (C.Pattern("some", "token", 1, 3), "bad stream pattern"), (C.Pattern("selected", "token", 1, 70000), "fit"),
])
def test_invalid_patterns_are_not_written(pattern, message):
    with pytest.raises(C.ContainerError, match=message):
        C.pack(C.Container(sample().geometry, sample().streams, pattern))


@FUZZ
@given(st.integers(0, len(PACKED_V2) - 1))
def test_every_truncation_of_version_2_is_rejected(cut):
    with pytest.raises(C.ContainerError):
        C.unpack(PACKED_V2[:cut])


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(PACKED_V2) - 1), st.integers(1, 255)), min_size=1, max_size=4))
def test_version_2_byte_mutations_are_rejected(flips):
    """The pattern bytes are under the header CRC like the rest; version 1 <-> 2 flips shift the table."""
    data = bytearray(PACKED_V2)
    for position, mask in flips:
        data[position] ^= mask
    if bytes(data) == PACKED_V2:
        return
    with pytest.raises(C.ContainerError):
        C.unpack(bytes(data))
