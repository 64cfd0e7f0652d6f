"""Segment codec: RFC 9293 3.1 layout, options, and the RFC 1071 checksum."""

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rudp.core.errors import MalformedSegment
from rudp.core.segment import (
    ACK,
    CWR,
    ECE,
    FIN,
    HEADER_LEN,
    PSH,
    RST,
    SYN,
    URG,
    Flag,
    Segment,
    decode,
    encode,
    internet_checksum,
    ones_complement_sum,
    options_length,
)

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def reference_checksum(data: bytes) -> int:
    """RFC 1071 4.1, word by word with end-around carry: the slow, obvious version."""
    if len(data) % 2:
        data += b"\x00"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def with_checksum(segment: bytes) -> bytes:
    """Fill bytes 16..17 of a segment whose checksum field is zero."""
    return segment[:16] + struct.pack("!H", reference_checksum(segment)) + segment[18:]


def header(offset_words: int, flags: int, options: bytes = b"", payload: bytes = b"") -> bytes:
    raw = struct.pack("!HHIIBBHHH", 1000, 2000, 7, 9, offset_words << 4, flags, 512, 0, 0)
    return with_checksum(raw + options + payload)


# --- RFC 9293 3.1 layout and known vectors ---------------------------------------------


def test_rfc9293_3_1_header_layout_hand_built_syn() -> None:
    """A Linux-style SYN built field by field with struct decodes and re-encodes identically."""
    options = (
        struct.pack("!BBH", 2, 4, 1460)               # MSS
        + struct.pack("!BBBBII", 4, 2, 8, 10, 111, 0)  # SACK-permitted, timestamps
        + struct.pack("!BBBB", 1, 3, 3, 7)             # NOP, window scale
    )
    raw = struct.pack(
        "!HHIIBBHHH", 40000, 80, 0x12345678, 0, (5 + len(options) // 4) << 4, SYN, 64240, 0, 0
    )
    wire = with_checksum(raw + options)
    assert options.hex() == "020405b40402080a0000006f00000000" + "01030307"

    seg = decode(wire)
    assert seg == Segment(
        src_port=40000, dst_port=80, seq=0x12345678, ack=0, flags=SYN, window=64240,
        mss=1460, sack_permitted=True, ts_val=111, ts_ecr=0, wscale=7,
    )
    assert seg.payload == b""
    assert seg.seg_len == 1
    assert encode(seg) == wire
    assert options_length(seg) == len(options)


def test_rfc9293_3_1_field_offsets() -> None:
    seg = Segment(src_port=0x0102, dst_port=0x0304, seq=0x05060708, ack=0x090A0B0C,
                  flags=ACK | PSH, window=0x0D0E, urgent=0x1112, payload=b"xyz")
    wire = encode(seg, checksum=False)
    assert wire[:12] == bytes(range(1, 13))
    assert wire[12] == 5 << 4  # data offset 5 words, reserved bits 0
    assert wire[13] == ACK | PSH
    assert wire[14:16] == b"\x0d\x0e"
    assert wire[16:18] == b"\x00\x00"  # checksum=False leaves the field zero
    assert wire[18:20] == b"\x11\x12"
    assert wire[20:] == b"xyz"


def test_rfc9293_3_1_flag_bits() -> None:
    assert [1 << i for i in range(8)] == [FIN, SYN, RST, PSH, ACK, URG, ECE, CWR]
    assert Flag.SYN | Flag.ACK == SYN | ACK
    for bit in (FIN, SYN, RST, PSH, ACK, URG, ECE, CWR):
        assert decode(encode(Segment(flags=bit))).flags == bit


def test_rfc9293_3_1_payload_is_rest_of_datagram() -> None:
    wire = header(6, ACK, b"\x01\x01\x01\x01", b"payload!")
    seg = decode(wire)
    assert seg.payload == b"payload!"
    assert type(seg.payload) is bytes


def test_rfc9293_3_4_seg_len_counts_syn_and_fin() -> None:
    assert Segment(payload=b"abc").seg_len == 3
    assert Segment(flags=SYN).seg_len == 1
    assert Segment(flags=FIN | ACK, payload=b"ab").seg_len == 3
    assert Segment(flags=SYN | FIN, payload=b"a").seg_len == 3


def test_describe_reads_like_tcpdump() -> None:
    seg = Segment(seq=1, ack=2, window=3, flags=SYN | ACK, mss=1380, sack_permitted=True,
                  ts_val=1, ts_ecr=0, wscale=7)
    assert repr(seg) == "[S.] seq 1 ack 2 win 3 <mss 1380,sackOK,TS val 1 ecr 0,nop,wscale 7> len 0"
    data = Segment(seq=5, ack=6, window=9, flags=ACK | PSH | FIN, payload=b"hi",
                   sack_blocks=((10, 20),), ts_val=3, ts_ecr=4)
    assert data.describe() == (
        "[FP.] seq 5 ack 6 win 9 <nop,nop,TS val 3 ecr 4,nop,nop,sack 1 {10:20}> len 2"
    )
    assert Segment().describe() == "[none] seq 0 win 0 len 0"


# --- options ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("segment", "expected_hex"),
    [
        (Segment(mss=1380), "02040564"),
        (Segment(sack_permitted=True, ts_val=1, ts_ecr=2), "0402080a0000000100000002"),
        (Segment(ts_val=1, ts_ecr=2), "0101080a0000000100000002"),
        (Segment(sack_permitted=True), "01010402"),
        (Segment(wscale=14), "0103030e"),
        (Segment(sack_blocks=((1, 2),)), "0101050a0000000100000002"),
        (
            Segment(mss=536, sack_permitted=True, wscale=0),
            "020402180101040201030300",
        ),
    ],
)
def test_rfc9293_3_2_options_in_linux_order(segment: Segment, expected_hex: str) -> None:
    wire = encode(segment)
    assert wire[HEADER_LEN:].hex() == expected_hex
    assert options_length(segment) == len(wire) - HEADER_LEN
    assert wire[12] >> 4 == len(wire) // 4
    assert decode(wire) == segment


def test_rfc2018_sack_blocks_limit_with_timestamps() -> None:
    """RFC 2018 3: with timestamps at most 3 blocks fit in 40 bytes; without, 4."""
    three = tuple((i, i + 1) for i in range(3))
    four = tuple((i, i + 1) for i in range(4))
    assert options_length(Segment(ts_val=1, ts_ecr=1, sack_blocks=three)) == 40
    assert decode(encode(Segment(ts_val=1, ts_ecr=1, sack_blocks=three))).sack_blocks == three
    assert decode(encode(Segment(sack_blocks=four))).sack_blocks == four
    with pytest.raises(ValueError):
        encode(Segment(ts_val=1, ts_ecr=1, sack_blocks=four))
    with pytest.raises(ValueError):
        encode(Segment(sack_blocks=(*four, (9, 10))))


def test_encode_rejects_half_a_timestamp_and_out_of_range_fields() -> None:
    for bad in (
        Segment(ts_val=1),
        Segment(ts_ecr=1),
        Segment(seq=2**32),
        Segment(window=-1),
        Segment(mss=70000),
    ):
        with pytest.raises(ValueError):
            encode(bad)


def test_rfc7323_2_3_wscale_clamped_to_14() -> None:
    wire = header(6, SYN, bytes([1, 3, 3, 15]))
    assert decode(wire).wscale == 14
    assert decode(header(6, SYN, bytes([1, 3, 3, 255]))).wscale == 14
    assert decode(header(6, SYN, bytes([1, 3, 3, 14]))).wscale == 14
    assert decode(header(6, SYN, bytes([1, 3, 3, 3]))).wscale == 3


def test_rfc9293_3_1_unknown_option_skipped_by_length() -> None:
    # Kind 30 (MPTCP) with 6 bytes, then MSS, then EOL padding.
    options = bytes([30, 6, 1, 2, 3, 4]) + struct.pack("!BBH", 2, 4, 1200) + b"\x00\x00"
    seg = decode(header(8, SYN, options))
    assert seg.mss == 1200


def test_rfc9293_3_1_eol_ends_option_list() -> None:
    # After EOL, remaining bytes are padding, even if they look like options.
    options = b"\x00" + bytes([2, 4, 5, 0]) + b"\x00\x00\x00"
    assert decode(header(7, SYN, options)).mss is None


@pytest.mark.parametrize(
    ("offset_words", "options", "why"),
    [
        (6, bytes([2, 4, 5]), "option runs past the header"),
        (6, bytes([1, 1, 1, 2]), "no length byte"),
        (6, bytes([30, 1, 0, 0]), "length < 2"),
        (6, bytes([30, 0, 0, 0]), "length 0"),
        (6, bytes([30, 5, 0, 0]), "length past header"),
        (7, bytes([2, 3, 5, 0, 0, 0, 0, 0]), "MSS length 3"),
        (7, bytes([2, 5, 5, 0, 0, 0, 0, 0]), "MSS length 5"),
        (6, bytes([3, 4, 7, 0]), "window scale length 4"),
        (6, bytes([4, 3, 0, 0]), "SACK-permitted length 3"),
        (8, bytes([8, 9]) + bytes(10), "timestamps length 9"),
        (6, bytes([5, 2, 0, 0]), "SACK with no block"),
        (8, bytes([5, 9]) + bytes(10), "SACK length not 2+8n"),
    ],
)
def test_rfc9293_3_1_malformed_options_rejected(
    offset_words: int, options: bytes, why: str
) -> None:
    with pytest.raises(MalformedSegment):
        decode(header(offset_words, ACK, options))


def test_rfc9293_3_1_malformed_headers_rejected() -> None:
    good = encode(Segment(flags=ACK, payload=b"abcd"))
    with pytest.raises(MalformedSegment):
        decode(good[:19])
    with pytest.raises(MalformedSegment):
        decode(b"")
    with pytest.raises(MalformedSegment):
        decode(header(4, ACK))  # data offset < 5
    with pytest.raises(MalformedSegment):
        decode(header(15, ACK, payload=bytes(20)))  # 60-byte header in a 40-byte datagram


def test_decode_accepts_memoryview_and_encode_accepts_memoryview_payload() -> None:
    seg = Segment(flags=ACK, payload=memoryview(b"0123456789")[2:7], ts_val=1, ts_ecr=2)
    wire = encode(seg)
    assert decode(memoryview(wire)) == Segment(flags=ACK, payload=b"23456", ts_val=1, ts_ecr=2)
    assert decode(bytearray(wire)).payload == b"23456"


# --- RFC 1071 checksum -----------------------------------------------------------------


def test_rfc1071_3_numerical_example() -> None:
    """RFC 1071 3: words 0001 f203 f4f5 f6f7 sum to ddf2, checksum 220d."""
    data = bytes.fromhex("0001f203f4f5f6f7")
    assert ones_complement_sum(data) == 0xDDF2
    assert internet_checksum(data) == 0x220D


def test_rfc1071_zero_and_negative_zero() -> None:
    """All-zero data sums to +0; words that cancel sum to 0xFFFF (negative zero), not 0."""
    assert internet_checksum(b"") == 0xFFFF
    assert internet_checksum(bytes(7)) == 0xFFFF
    assert ones_complement_sum(b"\xff\xff") == 0xFFFF
    assert internet_checksum(b"\xff\xff") == 0
    assert ones_complement_sum(b"\x80\x00\x7f\xff") == 0xFFFF
    assert internet_checksum(b"\x80\x00\x7f\xff") == reference_checksum(b"\x80\x00\x7f\xff")


@FUZZ
@given(st.binary(max_size=3000))
def test_rfc1071_checksum_matches_reference(data: bytes) -> None:
    assert internet_checksum(data) == reference_checksum(data)


@FUZZ
@given(st.lists(st.sampled_from([0x0000, 0xFFFF, 0x0001, 0xFFFE, 0x8000]), max_size=20),
       st.booleans())
def test_rfc1071_checksum_matches_reference_on_edge_words(words: list[int], odd: bool) -> None:
    data = b"".join(w.to_bytes(2, "big") for w in words)
    if odd and data:
        data = data[:-1]
    assert internet_checksum(data) == reference_checksum(data)


def test_rfc1071_encoded_segment_sums_to_ffff() -> None:
    wire = encode(Segment(flags=ACK, payload=b"odd"))
    assert ones_complement_sum(wire) == 0xFFFF
    assert wire[16:18] == struct.pack("!H", reference_checksum(wire[:16] + b"\0\0" + wire[18:]))


def test_rfc1071_bad_checksum_rejected_unless_verification_off() -> None:
    wire = bytearray(encode(Segment(flags=ACK, payload=b"data")))
    wire[16] ^= 0x01
    with pytest.raises(MalformedSegment):
        decode(bytes(wire))
    assert decode(bytes(wire), verify_checksum=False).payload == b"data"
    unchecked = encode(Segment(flags=ACK, payload=b"data"), checksum=False)
    assert decode(unchecked, verify_checksum=False).payload == b"data"


# --- Hypothesis ------------------------------------------------------------------------

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)


@st.composite
def segments(draw: st.DrawFn) -> Segment:
    """Segments whose options fit in 40 bytes."""
    timestamps = draw(st.none() | st.tuples(u32, u32))
    seg = Segment(
        src_port=draw(u16), dst_port=draw(u16), seq=draw(u32), ack=draw(u32),
        flags=draw(st.integers(0, 0xFF)), window=draw(u16), urgent=draw(u16),
        payload=draw(st.binary(max_size=1500)),
        mss=draw(st.none() | u16),
        wscale=draw(st.none() | st.integers(0, 14)),
        sack_permitted=draw(st.booleans()),
        ts_val=None if timestamps is None else timestamps[0],
        ts_ecr=None if timestamps is None else timestamps[1],
    )
    room = 40 - options_length(seg)
    max_blocks = max(0, min(4, (room - 4) // 8))
    seg.sack_blocks = tuple(draw(st.lists(st.tuples(u32, u32), max_size=max_blocks)))
    return seg


@FUZZ
@given(segments())
def test_rfc9293_3_1_encode_decode_round_trip(seg: Segment) -> None:
    wire = encode(seg)
    assert len(wire) == HEADER_LEN + options_length(seg) + len(seg.payload)
    assert options_length(seg) % 4 == 0 and options_length(seg) <= 40
    assert decode(wire) == seg
    assert decode(encode(seg, checksum=False), verify_checksum=False) == seg


def decodes_or_malformed(data: bytes, verify: bool) -> None:
    try:
        seg = decode(data, verify_checksum=verify)
    except MalformedSegment:
        return
    assert isinstance(seg, Segment)
    assert isinstance(seg.payload, bytes)


@FUZZ
@given(st.binary(max_size=120), st.booleans())
def test_decode_random_bytes_returns_segment_or_malformed(data: bytes, verify: bool) -> None:
    decodes_or_malformed(data, verify)


@FUZZ
@given(
    st.binary(min_size=20, max_size=80).map(bytearray),
    st.integers(5, 15),
)
def test_decode_random_options_returns_segment_or_malformed(raw: bytearray, words: int) -> None:
    """Random bytes with a plausible data offset exercise the option parser hard."""
    raw[12] = words << 4
    decodes_or_malformed(bytes(raw), verify=False)
    decodes_or_malformed(with_checksum(bytes(raw[:16]) + b"\0\0" + bytes(raw[18:])), verify=True)


mutation = st.tuples(
    st.sampled_from(["flip", "set", "insert", "delete", "truncate"]),
    st.integers(0, 2000),
    st.integers(0, 255),
)


@FUZZ
@given(segments(), st.lists(mutation, min_size=1, max_size=4), st.booleans())
def test_decode_mutated_segments_returns_segment_or_malformed(
    seg: Segment, mutations: list[tuple[str, int, int]], verify: bool
) -> None:
    data = bytearray(encode(seg))
    for op, position, value in mutations:
        at = position % (len(data) + 1)
        if op == "flip" and at < len(data):
            data[at] ^= 1 << (value % 8)
        elif op == "set" and at < len(data):
            data[at] = value
        elif op == "insert":
            data.insert(at, value)
        elif op == "delete" and at < len(data):
            del data[at]
        elif op == "truncate":
            del data[at:]
    decodes_or_malformed(bytes(data), verify)


@FUZZ
@given(segments(), st.data())
def test_rfc1071_single_bit_flip_detected(seg: Segment, data: st.DataObject) -> None:
    wire = bytearray(encode(seg))
    bit = data.draw(st.integers(0, len(wire) * 8 - 1))
    wire[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(MalformedSegment):
        decode(bytes(wire))
