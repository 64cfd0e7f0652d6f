"""SYN cookies (RFC 4987 3.6): answer a SYN without remembering it.

Invariant: a SYN answered with a cookie leaves no state behind.  Everything needed
to build the connection comes back in the ACK that completes the handshake: our ISN
(the cookie) in SEG.ACK-1, the peer's ISN in SEG.SEQ-1, and -- when timestamps are
in use -- the peer's window scale and SACK-permitted offers in the low bits of the
TSval we sent, which the peer echoes in TSecr.  So a flood of spoofed SYNs costs
CPU, never memory.

The cookie, as Linux and FreeBSD build it (bit 31 on the left)::

    | 26-bit MAC                       | t mod 4 | MSS index |
     31                               6  5     4  3       0

The MAC is a keyed BLAKE2b over the peer's address, both ports, the peer's ISN,
the time counter ``t`` (``now`` in 64 s units), the MSS index and the option bits
carried in TSval (or their absence).  A cookie checks out while ``t`` is its own
or the next: it lives 64 to 128 s, like Linux's.  A blind forger must guess the
26 bits; since the option bits are inside the MAC, a peer cannot change them on
the way back, and an ACK without timestamps cannot complete a handshake whose SYN
had them (RFC 7323 3.2 drops such segments anyway).

What cannot come back is lost, as in Linux: without timestamps the SYN-ACK offers
neither window scaling nor SACK; the peer's MSS is rounded down to an entry of
:data:`MSS_TABLE`.
"""

from __future__ import annotations

import hashlib
import secrets
import struct
from collections.abc import Hashable
from dataclasses import dataclass

from .connection import DEFAULT_MSS
from .segment import MAX_WSCALE, Segment
from .seq import SEQ_MASK, seq_add, seq_gt

#: MSS values a cookie can remember (4 bits); a peer gets the largest entry not
#: above what it announced.  Sizes are TCP payloads inside one UDP datagram.
MSS_TABLE: tuple[int, ...] = (
    44,  # the smallest rudp allows (max_segment_size 64)
    256,
    536,  # RFC 9293 3.7.1 default
    1024,
    1180,  # 1200-byte datagrams (QUIC's minimum)
    1212,  # IPv6 minimum MTU 1280, over IPv6 + UDP
    1232,  # 1280-byte MTU over IPv4 + UDP
    1360,
    1380,  # rudp's default (max_segment_size 1400)
    1400,
    1432,  # Ethernet MTU 1500 over IPv6 + UDP
    1440,
    1452,  # Ethernet MTU 1500 over IPv4 + UDP
    1460,  # what kernel TCP announces on Ethernet
    8952,  # 9000-byte jumbo frames over IPv4 + UDP
    65487,  # the largest UDP payload (65507) less the header
)
#: Length of one value of the time counter, in seconds.
COOKIE_PERIOD = 64.0
#: Counter values a cookie stays valid for: its own and the next.
COOKIE_LIFETIME = 2

# Cookie layout.
_MSS_BITS = 4
_COUNTER_BITS = 2
_MAC_SHIFT = _MSS_BITS + _COUNTER_BITS
_MAC_MASK = (1 << (32 - _MAC_SHIFT)) - 1

# Linux's layout of the option bits in TSval (include/net/tcp.h, TS_OPT_*), less ECN.
TS_OPTION_BITS = 5
TS_OPTION_MASK = (1 << TS_OPTION_BITS) - 1
TS_NO_WSCALE = 0x0F  # low 4 bits: the peer's shift, or this for "no option"
TS_SACK = 0x10

_FIELDS = struct.Struct("!HHIqBh")


@dataclass(frozen=True, slots=True)
class CookieOptions:
    """The peer's SYN as far as its cookie remembers it."""

    mss: int
    wscale: int | None
    sack_permitted: bool
    timestamps: bool


def mss_index(mss: int | None) -> int:
    """Index of the largest :data:`MSS_TABLE` entry not above ``mss`` (the first if
    none is)."""
    mss = mss or DEFAULT_MSS
    index = 0
    for i, entry in enumerate(MSS_TABLE):
        if entry <= mss:
            index = i
    return index


def ts_option_bits(wscale: int | None, sack_permitted: bool) -> int:
    """The SYN's window scale and SACK-permitted offers, in TS_OPTION_BITS bits."""
    bits = TS_NO_WSCALE if wscale is None else min(wscale, MAX_WSCALE)  # RFC 7323 2.3
    return bits | (TS_SACK if sack_permitted else 0)


def stamp_ts_val(ts_val: int, bits: int) -> int:
    """``ts_val`` with its low bits replaced by ``bits``, never ahead of it (as
    Linux's cookie_init_timestamp): the clock the connection goes on with must not
    look older to the peer's PAWS check (RFC 7323 5.3) than our SYN-ACK did."""
    stamped = (ts_val & ~TS_OPTION_MASK & SEQ_MASK) | bits
    if seq_gt(stamped, ts_val):
        stamped = seq_add(stamped, -(1 << TS_OPTION_BITS))
    return stamped


def cookie_counter(now: float) -> int:
    """The time counter: ``now`` in COOKIE_PERIOD units."""
    return int(now // COOKIE_PERIOD)


class SynCookies:
    """Makes and checks cookies under one secret (random unless given, for tests)."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes | None = None) -> None:
        if secret is not None and not 1 <= len(secret) <= 64:
            raise ValueError("the SYN cookie secret must be 1 to 64 bytes")
        self._secret = secret if secret is not None else secrets.token_bytes(32)

    def make(self, syn: Segment, peer: Hashable, now: float, *, timestamps: bool) -> int:
        """The cookie (our ISN) answering ``syn`` from ``peer``.  ``timestamps``:
        whether the connection will use them, so the SYN-ACK carries the option
        bits (:func:`ts_option_bits`) in its TSval."""
        index = mss_index(syn.mss)
        bits = ts_option_bits(syn.wscale, syn.sack_permitted) if timestamps else None
        counter = cookie_counter(now)
        mac = self._mac(peer, syn.src_port, syn.dst_port, syn.seq, counter, index, bits)
        return (mac << _MAC_SHIFT) | ((counter % (1 << _COUNTER_BITS)) << _MSS_BITS) | index

    def check(
        self, ack: Segment, peer: Hashable, now: float, *, timestamps: bool
    ) -> CookieOptions | None:
        """What the SYN offered if SEG.ACK-1 of ``ack`` is a live cookie for this
        peer, its ports and SEG.SEQ-1; else None.  ``timestamps``: whether the ACK
        carries them (then its TSecr holds the option bits)."""
        cookie = seq_add(ack.ack, -1)
        index = cookie & ((1 << _MSS_BITS) - 1)
        stamp = (cookie >> _MSS_BITS) & ((1 << _COUNTER_BITS) - 1)
        current = cookie_counter(now)
        age = (current - stamp) % (1 << _COUNTER_BITS)
        if age >= COOKIE_LIFETIME:
            return None
        bits = (ack.ts_ecr or 0) & TS_OPTION_MASK if timestamps else None
        peer_isn = seq_add(ack.seq, -1)
        mac = self._mac(peer, ack.src_port, ack.dst_port, peer_isn, current - age, index, bits)
        if mac != cookie >> _MAC_SHIFT:
            return None
        wscale: int | None = None
        sack_permitted = False
        if bits is not None:
            wscale = None if bits & TS_NO_WSCALE == TS_NO_WSCALE else bits & TS_NO_WSCALE
            sack_permitted = bool(bits & TS_SACK)
        return CookieOptions(MSS_TABLE[index], wscale, sack_permitted, timestamps)

    def _mac(
        self,
        peer: Hashable,
        src_port: int,
        dst_port: int,
        peer_isn: int,
        counter: int,
        index: int,
        bits: int | None,
    ) -> int:
        fields = _FIELDS.pack(
            src_port, dst_port, peer_isn, counter, index, -1 if bits is None else bits
        )
        digest = hashlib.blake2b(
            fields + repr(peer).encode(), key=self._secret, digest_size=4
        ).digest()
        return int.from_bytes(digest, "big") & _MAC_MASK
