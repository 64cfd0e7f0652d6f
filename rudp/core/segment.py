"""TCP segments: the RFC 9293 3.1 header, its options, and the RFC 1071 checksum.

One UDP datagram carries exactly one segment, so the payload is everything after
the header (data offset * 4 bytes); there is no IP length to consult.  The checksum
covers the whole segment (header, options, payload) and no IP pseudo-header.

Invariants: :func:`decode` raises nothing but :class:`MalformedSegment`, whatever
the bytes; :func:`encode` emits options in Linux's order and padding, and
:func:`options_length` predicts their size exactly, cheaply.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from rudp.core.errors import MalformedSegment

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80


class Flag(enum.IntFlag):
    """The flag bits of RFC 9293 3.1 (and RFC 3168 ECE/CWR), for printing."""

    FIN = FIN
    SYN = SYN
    RST = RST
    PSH = PSH
    ACK = ACK
    URG = URG
    ECE = ECE
    CWR = CWR


HEADER_LEN = 20
#: The largest payload a UDP datagram can carry over IPv4 (65,535 - 8 - 20): a
#: longer "datagram" cannot have come from a socket and is malformed.
MAX_DATAGRAM = 65507
MAX_OPTIONS_LEN = 40
MAX_WSCALE = 14  # RFC 7323 2.3

# Option kinds (IANA "TCP Option Kind Numbers").
OPT_EOL, OPT_NOP, OPT_MSS, OPT_WSCALE, OPT_SACK_PERMITTED, OPT_SACK, OPT_TIMESTAMPS = (
    0, 1, 2, 3, 4, 5, 8,
)

# RFC 9293 3.1: ports, seq, ack, data offset+reserved, flags, window, checksum, urgent.
_HEADER = struct.Struct("!HHIIBBHHH")
_CHECKSUM_OFFSET = CHECKSUM_OFFSET = 16
_U16 = CHECKSUM_FIELD = struct.Struct("!H")
_U32_PAIR = struct.Struct("!II")
_MSS = struct.Struct("!BBH")              # kind 2, len 4, mss
_TS_AFTER_2 = struct.Struct("!BBBBII")    # 2 bytes (SACKOK or NOP NOP), then kind 8, len 10
_NOP_NOP_SACKOK = b"\x01\x01\x04\x02"
_NOP_WSCALE = struct.Struct("!BBBB")      # NOP, kind 3, len 3, shift
# NOP NOP, kind 5, len 2+8n, then n (left, right) pairs; indexed by n.
_SACK = [struct.Struct("!BBBB" + "II" * n) for n in range(5)]
#: The header of nearly every data segment and ACK once timestamps are on: the
#: 20 fixed bytes, then NOP NOP TS (Linux's layout, and what encode emits).
#: The fast paths read and write it in one call.
TS_SEGMENT = struct.Struct("!HHIIBBHHHBBBBII")
TS_SEGMENT_OFFSET = (5 + 3) << 4  # its data-offset byte: 8 words
# A SYN's options when it offers everything: MSS (kind, length, value),
# SACK-permitted then timestamps (kind, length, kind, length, TSval, TSecr), NOP then
# window scale (NOP, kind, length, shift) -- Linux's layout, and what encode emits.
_ALL_SYN_OPTIONS = struct.Struct("!BBHBBBBIIBBBB")
_ALL_SYN_KINDS = (OPT_MSS, 4, OPT_SACK_PERMITTED, 2, OPT_TIMESTAMPS, 10, OPT_NOP, OPT_WSCALE, 3)
PLAIN_OFFSET = 5 << 4  # ... and that of a header without options
HEADER = _HEADER


@dataclass(slots=True, repr=False)
class Segment:
    """One TCP segment.  ``window`` is the raw 16-bit field (unscaled)."""

    src_port: int = 0
    dst_port: int = 0
    seq: int = 0
    ack: int = 0
    flags: int = 0
    window: int = 0
    urgent: int = 0
    payload: bytes | memoryview = b""
    mss: int | None = None
    wscale: int | None = None
    sack_permitted: bool = False
    sack_blocks: tuple[tuple[int, int], ...] = ()
    ts_val: int | None = None
    ts_ecr: int | None = None

    @property
    def seg_len(self) -> int:
        """RFC 9293 3.4 SEG.LEN: payload octets, plus one each for SYN and FIN."""
        return len(self.payload) + (self.flags & SYN) // SYN + (self.flags & FIN)

    def describe(self) -> str:
        """tcpdump-like one-liner: ``[S.] seq 1 ack 2 win 3 <mss 1380,...> len 0``."""
        flags = self.flags
        names = "".join(ch for bit, ch in _FLAG_CHARS if flags & bit) or "none"
        parts = [f"[{names}] seq {self.seq}"]
        if flags & ACK or self.ack:
            parts.append(f"ack {self.ack}")
        parts.append(f"win {self.window}")
        if flags & URG or self.urgent:
            parts.append(f"urg {self.urgent}")
        options = _describe_options(self)
        if options:
            parts.append(f"<{options}>")
        parts.append(f"len {len(self.payload)}")
        return " ".join(parts)

    def __repr__(self) -> str:
        return self.describe()


# tcpdump's order and letters (print-tcp.c tcp_flag_values).
_FLAG_CHARS = ((FIN, "F"), (SYN, "S"), (RST, "R"), (PSH, "P"), (ACK, "."), (URG, "U"),
               (ECE, "E"), (CWR, "W"))


def _describe_options(seg: Segment) -> str:
    # Mirrors the layout _write_options produces, nops included, as tcpdump prints it.
    items: list[str] = []
    if seg.mss is not None:
        items.append(f"mss {seg.mss}")
    if seg.ts_val is not None:
        items += ["sackOK"] if seg.sack_permitted else ["nop", "nop"]
        items.append(f"TS val {seg.ts_val} ecr {seg.ts_ecr}")
    elif seg.sack_permitted:
        items += ["nop", "nop", "sackOK"]
    if seg.wscale is not None:
        items += ["nop", f"wscale {seg.wscale}"]
    if seg.sack_blocks:
        blocks = "".join(f"{{{left}:{right}}}" for left, right in seg.sack_blocks)
        items += ["nop", "nop", f"sack {len(seg.sack_blocks)} {blocks}"]
    return ",".join(items)


def options_length(seg: Segment) -> int:
    """Bytes of options :func:`encode` emits for ``seg`` (a multiple of 4).

    More than 40 means encode would raise ValueError.
    """
    n = 0
    if seg.mss is not None:
        n = 4
    if seg.ts_val is not None:
        n += 12  # SACKOK TS, or NOP NOP TS
    elif seg.sack_permitted:
        n += 4
    if seg.wscale is not None:
        n += 4
    if seg.sack_blocks:
        n += 4 + 8 * len(seg.sack_blocks)
    return n


def _write_options(seg: Segment, buf: bytearray) -> None:
    # Linux tcp_options_write order: MSS, (SACKOK+)TS, SACKOK alone, WS, SACK blocks.
    at = HEADER_LEN
    if seg.mss is not None:
        _MSS.pack_into(buf, at, OPT_MSS, 4, seg.mss)
        at += 4
    if seg.ts_val is not None:
        if seg.ts_ecr is None:
            raise ValueError("ts_val and ts_ecr must both be set or both be None")
        if seg.sack_permitted:
            _TS_AFTER_2.pack_into(buf, at, OPT_SACK_PERMITTED, 2, OPT_TIMESTAMPS, 10,
                                  seg.ts_val, seg.ts_ecr)
        else:
            _TS_AFTER_2.pack_into(buf, at, OPT_NOP, OPT_NOP, OPT_TIMESTAMPS, 10,
                                  seg.ts_val, seg.ts_ecr)
        at += 12
    elif seg.sack_permitted:
        buf[at:at + 4] = _NOP_NOP_SACKOK
        at += 4
    if seg.ts_ecr is not None and seg.ts_val is None:
        raise ValueError("ts_val and ts_ecr must both be set or both be None")
    if seg.wscale is not None:
        _NOP_WSCALE.pack_into(buf, at, OPT_NOP, OPT_WSCALE, 3, seg.wscale)
        at += 4
    blocks = seg.sack_blocks
    if blocks:
        edges = [edge for block in blocks for edge in block]
        _SACK[len(blocks)].pack_into(buf, at, OPT_NOP, OPT_NOP, OPT_SACK, 2 + 8 * len(blocks),
                                     *edges)


def encode(seg: Segment, *, checksum: bool = True) -> bytes:
    """The wire bytes of ``seg``; ``checksum=False`` leaves the checksum field 0.

    Raises ValueError when the options do not fit in 40 bytes or a field is out of range.
    """
    opt_len = options_length(seg)
    if opt_len > MAX_OPTIONS_LEN:
        raise ValueError(f"options need {opt_len} bytes, more than {MAX_OPTIONS_LEN}")
    head = bytearray(HEADER_LEN + opt_len)
    try:
        _HEADER.pack_into(head, 0, seg.src_port, seg.dst_port, seg.seq, seg.ack,
                          (5 + (opt_len >> 2)) << 4, seg.flags, seg.window, 0, seg.urgent)
        if opt_len or seg.ts_ecr is not None:
            _write_options(seg, head)
    except struct.error as exc:
        raise ValueError(f"cannot encode {seg!r}: {exc}") from exc
    payload = seg.payload
    if checksum:
        _U16.pack_into(head, _CHECKSUM_OFFSET, segment_checksum(head, payload))
    return b"".join((head, payload))


def segment_checksum(head: bytes | bytearray, payload: bytes | memoryview) -> int:
    """The checksum field for ``head`` (its checksum zero) followed by ``payload``.

    The header+options length is even, so the payload's 16-bit words line up with
    the whole segment's and the two sums can be added (RFC 1071 2(B))."""
    return _complement(int.from_bytes(head, "little") + int.from_bytes(payload, "little"))


def segment_is_intact(data: bytes | bytearray | memoryview) -> bool:
    """Whether the RFC 1071 checksum of a whole received segment verifies: its
    one's-complement sum is 0xFFFF, i.e. ≡ 0 (mod 0xFFFF) and not all zero (see
    the note on the arithmetic below; read little-endian, byte-swapped words)."""
    value = int.from_bytes(data, "little")
    return value % 0xFFFF == 0 and value != 0


def decode(data: bytes | bytearray | memoryview, *, verify_checksum: bool = True) -> Segment:
    """Parse one datagram as a segment; raises only :class:`MalformedSegment`."""
    size = len(data)
    if size < HEADER_LEN:
        raise MalformedSegment(f"{size} bytes, shorter than a TCP header")
    src, dst, seq, ack, offset, flags, window, _, urgent = _HEADER.unpack_from(data)
    header_len = (offset >> 4) * 4
    if header_len < HEADER_LEN or header_len > size:
        raise MalformedSegment(f"data offset {header_len} bytes in a {size}-byte datagram")
    if verify_checksum and not segment_is_intact(data):
        raise MalformedSegment("bad checksum")
    seg = Segment(src, dst, seq, ack, flags, window, urgent, bytes(data[header_len:]))
    if header_len == HEADER_LEN + 12:
        # Fast path for the usual data/ACK layout: NOP NOP TS.
        nop1, nop2, kind, length, ts_val, ts_ecr = _TS_AFTER_2.unpack_from(data, HEADER_LEN)
        if (nop1, nop2, kind, length) == (OPT_NOP, OPT_NOP, OPT_TIMESTAMPS, 10):
            seg.ts_val, seg.ts_ecr = ts_val, ts_ecr
            return seg
    elif header_len == HEADER_LEN + _ALL_SYN_OPTIONS.size:
        # Fast path for the usual SYN and SYN-ACK: every option, in encode's order.
        opts = _ALL_SYN_OPTIONS.unpack_from(data, HEADER_LEN)
        if opts[:2] + opts[3:7] + opts[9:12] == _ALL_SYN_KINDS:
            seg.mss, seg.ts_val, seg.ts_ecr = opts[2], opts[7], opts[8]
            seg.sack_permitted = True
            seg.wscale = min(opts[12], MAX_WSCALE)  # RFC 7323 2.3: clamp, as below
            return seg
    if header_len > HEADER_LEN:
        _parse_options(data, header_len, seg)
    return seg


def _parse_options(data: bytes | bytearray | memoryview, end: int, seg: Segment) -> None:
    # RFC 9293 3.1: kinds 0 and 1 are one byte; every other option carries its length,
    # which lets us skip kinds we do not know.
    at = HEADER_LEN
    while at < end:
        kind = data[at]
        if kind == OPT_EOL:
            return
        if kind == OPT_NOP:
            at += 1
            continue
        if at + 1 >= end:
            raise MalformedSegment(f"option {kind} has no length byte")
        length = data[at + 1]
        if length < 2 or at + length > end:
            raise MalformedSegment(f"option {kind} length {length} does not fit the header")
        if kind == OPT_MSS:
            _expect_length(kind, length, 4)
            seg.mss = _U16.unpack_from(data, at + 2)[0]
        elif kind == OPT_WSCALE:
            _expect_length(kind, length, 3)
            seg.wscale = min(data[at + 2], MAX_WSCALE)  # RFC 7323 2.3: clamp, log nothing
        elif kind == OPT_SACK_PERMITTED:
            _expect_length(kind, length, 2)
            seg.sack_permitted = True
        elif kind == OPT_TIMESTAMPS:
            _expect_length(kind, length, 10)
            seg.ts_val, seg.ts_ecr = _U32_PAIR.unpack_from(data, at + 2)
        elif kind == OPT_SACK:
            # RFC 2018 3: 2 + 8n bytes, n >= 1.
            if length < 10 or (length - 2) % 8:
                raise MalformedSegment(f"SACK option length {length}")
            seg.sack_blocks = tuple(
                _U32_PAIR.unpack_from(data, pos) for pos in range(at + 2, at + length, 8)
            )
        at += length


def _expect_length(kind: int, length: int, expected: int) -> None:
    if length != expected:
        raise MalformedSegment(f"option {kind} has length {length}, expected {expected}")


# RFC 1071 one's-complement arithmetic.  Because 65536 ≡ 1 (mod 65535), the
# end-around-carry sum of 16-bit words is congruent to the whole buffer read as
# one big integer, modulo 0xFFFF: one C-level int.from_bytes and one modulo
# instead of a Python loop.  The modulo yields 0 where one's complement yields
# 0xFFFF ("negative zero"): an end-around-carry sum of words that are not all zero
# is never +0, so 0 maps back to 0xFFFF unless the input itself is all zero.
# The buffer is read little-endian: cheaper than big-endian, and an odd last byte
# needs no padding (it is the low byte of the top word, the high byte zero).  Each
# word is then byte-swapped, and so is the sum (RFC 1071 2(B), byte order
# independence): one swap of the 16-bit result puts it back in network order.


def _fold(data: bytes | bytearray | memoryview) -> int:
    """One's-complement 16-bit sum of ``data``'s words, byte-swapped, in [0, 0xFFFF]."""
    value = int.from_bytes(data, "little")
    folded = value % 0xFFFF
    return 0xFFFF if folded == 0 and value else folded


def _swap(word: int) -> int:
    return ((word & 0xFF) << 8) | (word >> 8)


def ones_complement_sum(data: bytes | bytearray | memoryview) -> int:
    """RFC 1071 sum of ``data`` (odd length padded with a zero byte); 0xFFFF when a
    segment with its checksum in place is intact."""
    return _swap(_fold(data))


def internet_checksum(data: bytes | bytearray | memoryview) -> int:
    """RFC 1071 checksum: the one's complement of the one's-complement sum."""
    return _complement(int.from_bytes(data, "little"))


def _complement(value: int) -> int:
    """The checksum, in network order, of words whose little-endian reading sums to
    ``value``."""
    folded = value % 0xFFFF
    if folded == 0:
        return 0 if value else 0xFFFF
    return _swap(0xFFFF - folded)
