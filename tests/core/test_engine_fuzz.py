"""Hostile input for the engine: every malformed datagram is dropped and counted, and
Hypothesis feeds a Connection in every RFC 9293 3.3.2 state random bytes, valid segments
with fields near the values that matter (RCV.NXT, SND.UNA, SND.NXT, SND.MAX, each off
by a little or by 2**31; window 0; options), mutated encodings, timers and user calls.

After every step: nothing raised (user calls may raise LocalProtocolError only), and
the invariants hold: SND.UNA <= SND.NXT <= SND.MAX; what the receive side holds fits
the largest buffer ever configured (plus the window-scale rounding) and nothing lies
beyond the window advertised; the next timer is None or finite, and None once CLOSED;
unacknowledged sequence space keeps a timer armed; every datagram sent decodes and
carries the application's bytes for its sequence numbers (a FIN right after the last);
the bytes delivered are the peer's stream, in order; malformed datagrams are counted in
stats.dropped_malformed; ConnectionTerminated comes at most once, last.

Runs are derandomized and use no example database, so CI sees the same examples;
RUDP_FUZZ_EXAMPLES raises the number of examples per state for a long hunt.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from engine_helpers import (
    ISN,
    PEER_ISN,
    WRAP_ISN,
    close_wait,
    config,
    established,
    established_passive,
    feed,
    fin_wait_1,
    fin_wait_2,
    listening,
    seg,
    sent,
    syn_received,
    syn_sent,
    time_wait,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rudp.core.connection import Connection
from rudp.core.errors import LocalProtocolError, MalformedSegment
from rudp.core.events import (
    Connected,
    ConnectionTerminated,
    DataReceived,
    EofReceived,
    Event,
)
from rudp.core.segment import (
    ACK,
    FIN,
    HEADER_LEN,
    MAX_DATAGRAM,
    PSH,
    RST,
    SYN,
    Segment,
    decode,
    encode,
    internet_checksum,
)
from rudp.core.seq import SEQ_MASK, seq_add, seq_le, seq_lt, seq_sub
from rudp.core.state import State

# Engine bug, reported to the lead: _enter_closed() leaves pacing_at armed, so a CLOSED
# engine (after abort() with paced data queued) still returns a deadline from
# next_timer().  See test_closed_engine_asks_for_no_timer_after_abort_while_pacing.
PACING_TIMER_SURVIVES_CLOSE = False
# Engine bug, reported to the lead: a connection that reaches CLOSED while reading is
# paused loses its unread bytes and pending EOF, or (if its owner keeps it) hands them
# over after ConnectionTerminated.  See the *_while_paused tests at the end.
UNDELIVERED_AT_CLOSE_BUG = False

# The fuzz clock starts after every fixture's last input (TIME-WAIT's is at t=1.2).
START = 2.0

# ---------------------------------------------------------------------------------------
# Connections in every state, with a few option/config variants.
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """Peer options and local config a fixture is built with."""

    name: str
    isn: int = ISN
    peer_isn: int = PEER_ISN
    peer_ts: bool = False
    peer_wscale: int | None = None
    overrides: tuple[tuple[str, Any], ...] = ()

    def active(self) -> dict[str, Any]:
        """Keyword arguments for the active-open fixtures (established() and on)."""
        return {
            "peer_ts": self.peer_ts,
            "peer_wscale": self.peer_wscale,
            **dict(self.overrides),
        }

    def passive(self) -> dict[str, Any]:
        """Keyword arguments for syn_received()/established_passive()."""
        return {
            "peer_ts": (1, 0) if self.peer_ts else None,
            "peer_wscale": self.peer_wscale,
            **dict(self.overrides),
        }


VARIANTS = [
    Variant("plain"),
    Variant(
        "timestamps+wscale, pacing",
        peer_ts=True,
        peer_wscale=7,
        overrides=(("pacing", True),),
    ),
    Variant(
        "wrap, 3000-byte buffer, no delayed ACK, newreno",
        isn=WRAP_ISN,
        peer_isn=2**32 - 2,
        overrides=(
            ("receive_buffer", 3000),
            ("delayed_ack", 0.0),
            ("window_scale", False),
            ("congestion_control", "newreno"),
        ),
    ),
    Variant(
        "cubic, keepalive, nagle, small MSS, PMTUD",
        peer_ts=True,
        peer_wscale=14,
        overrides=(
            ("congestion_control", "cubic"),
            ("keepalive", True),
            ("keepalive_idle", 3.0),
            ("keepalive_interval", 1.0),
            ("keepalive_probes", 2),
            ("nagle", True),
            ("max_segment_size", 200),
            ("user_timeout", 20.0),
            ("msl", 2.0),
            ("fin_wait_2_timeout", 5.0),
            ("pmtud", True),
            ("pmtud_max_segment_size", 1400),
        ),
    ),
]


def build_closed_new(v: Variant) -> Connection:
    return Connection(config(**dict(v.overrides)), isn=v.isn)


def build_closed_after_reset(v: Variant) -> Connection:
    conn = established(v.isn, v.peer_isn, **v.active())
    feed(conn, seg(seq_add(v.peer_isn, 1), 0, RST), 0.5)
    sent(conn, 0.5)
    assert conn.state is State.CLOSED
    return conn


def build_listen(v: Variant) -> Connection:
    return listening(v.isn, **dict(v.overrides))


def build_syn_sent(v: Variant) -> Connection:
    return syn_sent(v.isn, **dict(v.overrides))


def build_syn_received(v: Variant) -> Connection:
    return syn_received(v.isn, v.peer_isn, **v.passive())


def build_established(v: Variant) -> Connection:
    return established(v.isn, v.peer_isn, **v.active())


def build_established_passive(v: Variant) -> Connection:
    return established_passive(v.isn, v.peer_isn, **v.passive())


def build_fin_wait_1(v: Variant) -> Connection:
    return fin_wait_1(v.isn, v.peer_isn, **v.active())


def build_fin_wait_2(v: Variant) -> Connection:
    return fin_wait_2(v.isn, v.peer_isn, **v.active())


def build_close_wait(v: Variant) -> Connection:
    return close_wait(v.isn, v.peer_isn, **v.active())


def build_closing(v: Variant) -> Connection:
    """CLOSING: our FIN out (unacknowledged), then the peer's FIN crosses it."""
    conn = fin_wait_1(v.isn, v.peer_isn, **v.active())
    feed(conn, peer_segment(conn, FIN | ACK, ack=seq_add(v.isn, 1)), 1.1)
    sent(conn, 1.1)
    assert conn.state is State.CLOSING, conn.state
    return conn


def build_last_ack(v: Variant) -> Connection:
    """LAST-ACK: the peer's FIN came, then we closed; our FIN taken."""
    conn = close_wait(v.isn, v.peer_isn, **v.active())
    conn.close()
    sent(conn, 1.1)
    assert conn.state is State.LAST_ACK, conn.state
    return conn


def build_time_wait(v: Variant) -> Connection:
    if not v.peer_ts:
        return time_wait(v.isn, v.peer_isn, **v.active())
    # time_wait() expects an ACK without options; with timestamps, finish by hand.
    conn = fin_wait_2(v.isn, v.peer_isn, **v.active())
    feed(conn, peer_segment(conn, FIN | ACK, ack=seq_add(v.isn, 2)), 1.2)
    sent(conn, 1.2)
    assert conn.state is State.TIME_WAIT, conn.state
    return conn


def peer_segment(conn: Connection, flags: int, *, ack: int) -> Segment:
    """An in-sequence segment from the peer, with the timestamps option if agreed."""
    segment = seg(conn.rcv_nxt, ack, flags)
    if conn.timestamps_enabled:
        segment.ts_val, segment.ts_ecr = 2, 0
    return segment


BUILDERS: dict[State | str, Callable[[Variant], Connection]] = {
    State.CLOSED: build_closed_new,
    "CLOSED-after-reset": build_closed_after_reset,
    State.LISTEN: build_listen,
    State.SYN_SENT: build_syn_sent,
    State.SYN_RECEIVED: build_syn_received,
    State.ESTABLISHED: build_established,
    "ESTABLISHED-passive": build_established_passive,
    State.FIN_WAIT_1: build_fin_wait_1,
    State.FIN_WAIT_2: build_fin_wait_2,
    State.CLOSE_WAIT: build_close_wait,
    State.CLOSING: build_closing,
    State.LAST_ACK: build_last_ack,
    State.TIME_WAIT: build_time_wait,
}
STATE_IDS = [str(key) for key in BUILDERS]


def test_every_state_has_a_fixture() -> None:
    """All 11 states of RFC 9293 3.3.2 are fuzzed, in every variant."""
    assert set(State) <= set(BUILDERS)
    for key, build in BUILDERS.items():
        for variant in VARIANTS:
            conn = build(variant)
            expected = State.CLOSED if key == "CLOSED-after-reset" else key
            if isinstance(expected, str):
                expected = State.ESTABLISHED
            assert conn.state is expected, (key, variant.name)


# ---------------------------------------------------------------------------------------
# What the engine's owner and the checks read.
# ---------------------------------------------------------------------------------------


def receive_held(conn: Connection) -> int:
    """Bytes the receive side stores: unread in-order plus out-of-order pieces."""
    buffer = conn._rcv_buffer  # the invariant is about internal memory, so peek
    return buffer.unread + buffer.out_of_order_bytes


def stored_beyond_rcv_nxt(conn: Connection) -> int:
    """How far past RCV.NXT the out-of-order bytes we hold reach."""
    buffer = conn._rcv_buffer
    ranges = buffer.ranges()
    return ranges[-1][1] - buffer.delivered_end if ranges else 0


def ts_recent(conn: Connection) -> int:
    return conn._ts_recent


def ts_now(conn: Connection, now: float) -> int:
    return conn._ts_now(now)


def terminated(conn: Connection) -> bool:
    return conn._terminated


def verify_checksum(conn: Connection) -> bool:
    return conn.config.checksum == "full"


def with_checksum(data: bytes | bytearray) -> bytes:
    """``data`` (at least a header long) with a correct RFC 1071 checksum filled in."""
    raw = bytearray(data)
    raw[16:18] = b"\0\0"
    raw[16:18] = struct.pack("!H", internet_checksum(bytes(raw)))
    return bytes(raw)


def is_malformed(data: bytes, verify: bool) -> bool:
    try:
        decode(data, verify_checksum=verify)
    except MalformedSegment:
        return True
    return False


# Our application's byte stream: never periodic, so a segment carrying the wrong
# bytes for its sequence number shows.
APP_STREAM = random.Random("app stream").randbytes(1 << 20)
# The peer's stream: byte o is o % 251, for any o, so every segment we forge carries
# the bytes its sequence number stands for, whatever the window or the wrap.
_PEER_PERIOD = 251
_PEER_PATTERN = bytes(i % _PEER_PERIOD for i in range(_PEER_PERIOD + 256 * 1024))


def peer_bytes(offset: int, n: int) -> bytes:
    """``n`` bytes of the peer's stream from stream offset ``offset`` (may be < 0)."""
    start = offset % _PEER_PERIOD
    return _PEER_PATTERN[start : start + n]


def peer_offset(conn: Connection, segment: Segment) -> int:
    """Stream offset of the first payload byte of ``segment`` from the peer."""
    if segment.flags & SYN and conn.state in (State.LISTEN, State.SYN_SENT):
        return 0  # this SYN would set IRS to its own sequence number
    first = seq_add(segment.seq, 1) if segment.flags & SYN else segment.seq
    return seq_sub(first, seq_add(conn.irs, 1))


# ---------------------------------------------------------------------------------------
# Strategies.  A segment is planned symbolically ("RCV.NXT + 1") and resolved against
# the connection at the moment it is fed, so it stays near the values that matter.
# Plans come from a Random seeded by Hypothesis: drawing each field through Hypothesis
# cost more than running the engine, and shrinking a failure to fewer steps is what
# matters; the seed replays the plan exactly.
# ---------------------------------------------------------------------------------------

SEQ_BASES = ("rcv_nxt", "rcv_nxt", "rcv_nxt", "rcv_edge", "irs", "zero")
ACK_BASES = ("snd_una", "snd_nxt", "snd_max", "snd_max", "iss")
NOTABLE_DELTAS = (2**31, -(2**31), 2**31 - 1, 1 - 2**31, 1000, 1380, 2760, 65535, 65536)
FLAG_SETS = (ACK, ACK | PSH, ACK | FIN, FIN, SYN, SYN | ACK, RST, RST | ACK, 0, ACK | SYN | FIN)
NOTABLE_LENGTHS = (536, 1368, 1380, 1400, 2999, 3000, 3001)


def random_delta(rng: random.Random) -> int:
    """Off by a little, by 2**31, by a window's worth, or by anything."""
    pick = rng.random()
    if pick < 0.45:
        return rng.randint(-3, 3)
    if pick < 0.65:
        return rng.choice(NOTABLE_DELTAS)
    if pick < 0.9:
        return rng.randint(-70_000, 70_000)
    return rng.getrandbits(32)


@dataclass(frozen=True)
class SegmentPlan:
    seq_base: str
    seq_delta: int
    ack_base: str
    ack_delta: int
    flags: int
    window: int
    length: int
    mss: int | None
    wscale: int | None
    sack_permitted: bool
    sack: tuple[tuple[int, int], ...]  # block edges, as offsets from SND.UNA
    ts: tuple[str, int, str, int] | None

    @classmethod
    def random(cls, rng: random.Random) -> SegmentPlan:
        ts = None
        if rng.random() < 0.5:
            ts = (
                rng.choice(["ts_recent", "ts_recent", "zero"]),
                random_delta(rng),
                rng.choice(["ts_now", "zero"]),
                rng.randint(-2000, 10),
            )
        mss = rng.choice([None, None, None, 0, 1, 536, 1460, 0xFFFF])
        wscale = rng.choice([None, None, rng.randint(0, 14)])
        sack_permitted = rng.random() < 0.3
        # Options must fit in 40 bytes: MSS 4, TS 12 (or SACK-permitted 4), WS 4, SACK 4+8n.
        used = (4 if mss is not None else 0) + (12 if ts else 4 if sack_permitted else 0)
        used += 4 if wscale is not None else 0
        max_blocks = max(0, min(4, (40 - used - 4) // 8))
        sack = tuple(
            (rng.randint(-3000, 70_000), rng.randint(-3000, 70_000))
            for _ in range(rng.randint(0, max_blocks))
        )
        flags = rng.choice(FLAG_SETS) if rng.random() < 0.7 else rng.randint(0, 0xFF)
        window = rng.choice([0, 0, 1, 2, 0xFFFF, 1000, rng.randint(0, 0xFFFF)])
        pick = rng.random()
        length = (
            0 if pick < 0.3
            else rng.randint(1, 3) if pick < 0.45
            else rng.choice(NOTABLE_LENGTHS) if pick < 0.6
            else rng.randint(0, 4000)
        )
        return cls(
            rng.choice(SEQ_BASES), random_delta(rng), rng.choice(ACK_BASES), random_delta(rng),
            flags, window, length, mss, wscale, sack_permitted, sack, ts,
        )

    def resolve(self, conn: Connection, now: float) -> Segment:
        bases = {
            "rcv_nxt": conn.rcv_nxt,
            "rcv_edge": seq_add(conn.rcv_nxt, conn.receive_window),
            "irs": conn.irs,
            "zero": 0,
            "snd_una": conn.snd_una,
            "snd_nxt": conn.snd_nxt,
            "snd_max": conn.snd_max,
            "iss": conn.iss,
            "ts_recent": ts_recent(conn),
            "ts_now": ts_now(conn, now),
        }
        segment = Segment(
            seq=seq_add(bases[self.seq_base], self.seq_delta),
            ack=seq_add(bases[self.ack_base], self.ack_delta),
            flags=self.flags,
            window=self.window,
            mss=self.mss,
            wscale=self.wscale,
            sack_permitted=self.sack_permitted,
            sack_blocks=tuple(
                (seq_add(conn.snd_una, left), seq_add(conn.snd_una, right))
                for left, right in self.sack
            ),
        )
        if self.ts is not None:
            val_base, val_delta, ecr_base, ecr_delta = self.ts
            segment.ts_val = seq_add(bases[val_base], val_delta)
            segment.ts_ecr = seq_add(bases[ecr_base], ecr_delta)
        segment.payload = peer_bytes(peer_offset(conn, segment), self.length)
        return segment


def mutate(data: bytes, rng: random.Random) -> bytes:
    """1 to 3 random edits: flip a bit, set a byte, insert, delete, truncate."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        op = rng.choice(["flip", "flip", "set", "insert", "delete", "truncate"])
        # Headers are where parsing can go wrong: aim there half of the time.
        at = rng.randrange(min(len(out), 60) + 1) if rng.random() < 0.5 else rng.randrange(
            len(out) + 1
        )
        if op == "flip" and at < len(out):
            out[at] ^= 1 << rng.randrange(8)
        elif op == "set" and at < len(out):
            out[at] = rng.randrange(256)
        elif op == "insert":
            out.insert(at, rng.randrange(256))
        elif op == "delete" and at < len(out):
            del out[at]
        elif op == "truncate":
            del out[at:]
    return bytes(out)


def random_options(raw: bytes, words: int) -> bytes:
    """A random header whose data offset is plausible, checksum fixed: reaches the
    option parser (and, when the options happen to parse, the engine)."""
    head = bytearray(raw.ljust(60, b"\0"))
    head[12] = words << 4
    return with_checksum(head[: max(words * 4, HEADER_LEN)] + head[60:])


# A well-behaved peer's segments, built from the engine's current state: they take it
# down its real paths (acknowledgments, duplicate ACKs and fast recovery, reassembly,
# FIN, the handshake) so that the hostile steps land in interesting places.
peer_action = st.tuples(
    st.just("peer"),
    st.sampled_from(
        ["ack", "ack", "sack", "sack", "data", "data", "data", "fin", "syn", "syn-ack", "rst",
         "recovery"]
    ),
    st.integers(0, 3),  # which ACK / which segment of data ahead of RCV.NXT
    st.sampled_from([1, 1, 3, 4]),  # copies: 3 or 4 identical ACKs are duplicates
    st.sampled_from(["same", "same", "zero", "full"]),  # advertised window
    st.sampled_from([1, 100, 536, 1000, 1368, 3000, -1]),  # data length; -1: RCV.WND
)

TIMER_STEPS = st.sampled_from([0.0, 0.001, 0.04, 0.2, 1.0, 3.0, 61.0, 400.0])

seeds = st.integers(0, 2**32 - 1)
action = st.one_of(
    peer_action,
    peer_action,
    peer_action,
    st.tuples(st.just("repeat")),
    st.tuples(st.just("segment"), seeds),
    st.tuples(st.just("segment"), seeds),
    st.tuples(st.just("mutated"), seeds),
    st.tuples(st.just("random"), st.binary(max_size=80)),
    st.tuples(
        st.just("random-checksummed"),
        st.binary(min_size=20, max_size=100),
        st.integers(0, 15),
    ),
    st.tuples(st.just("timer"), TIMER_STEPS),
    st.tuples(st.just("timer-next")),
    st.tuples(st.just("drain")),
    st.tuples(st.just("send"), st.integers(1, 5000)),
    st.tuples(
        st.just("call"),
        st.sampled_from(
            ["shutdown_write", "close", "abort", "pause_reading", "resume_reading", "connect",
             "listen"]
        ),
    ),
    st.tuples(st.just("set_receive_window"), st.integers(-1, 300_000)),
    st.tuples(st.just("set_send_buffer_limits"), st.integers(-1, 70_000), st.integers(0, 9000)),
)

# ---------------------------------------------------------------------------------------
# The driver: one step at a time, every invariant after each.
# ---------------------------------------------------------------------------------------


@dataclass
class Fuzzer:
    conn: Connection
    now: float = START
    events: list[Event] = dataclasses.field(default_factory=list)
    terminations: int = 0
    largest_buffer: int = 0
    last_fed: bytes = b""
    peer_clock: int = 1
    #: Bytes of APP_STREAM handed to send().
    app_sent: int = 0
    #: Bytes we did not forge (random, mutated) got past the decoder: the peer's
    #: stream is no longer known, so delivered bytes are not checked against it.
    tainted: bool = False

    def __post_init__(self) -> None:
        # A fixture may have drained (and dropped) the ConnectionTerminated already.
        leftovers = self.drain_events()
        if terminated(self.conn) and not any(
            isinstance(e, ConnectionTerminated) for e in leftovers
        ):
            self.terminations = 1
        self.largest_buffer = self.conn.config.receive_buffer

    def step(self, act: tuple[Any, ...]) -> None:
        kind = act[0]
        conn = self.conn
        if kind == "segment":
            plan = SegmentPlan.random(random.Random(act[1]))
            self.feed(encode_plan(plan, conn, self.now))
        elif kind == "mutated":
            rng = random.Random(act[1])
            data = mutate(encode_plan(SegmentPlan.random(rng), conn, self.now), rng)
            self.feed(data, forged=False)
        elif kind == "random":
            self.feed(act[1], forged=False)
        elif kind == "random-checksummed":
            self.feed(random_options(act[1], act[2]), forged=False)
        elif kind == "peer" and act[1] == "recovery":
            # RFC 5681 (3.2), RFC 6582: three duplicate ACKs, the retransmission, a
            # partial ACK, then everything acknowledged.
            self.step(("peer", "ack", 0, 3, "same", 0))
            self.drain()
            self.step(("peer", "ack", 1, 1, "same", 0))
            self.drain()
            self.step(("peer", "ack", 3, 1, "same", 0))
        elif kind == "peer":
            _, what, k, copies, window, length = act
            data = encode(self.peer(what, k, window, length), checksum=verify_checksum(conn))
            for _ in range(copies):
                self.feed(data)
        elif kind == "repeat":
            self.feed(self.last_fed)
        elif kind == "timer":
            self.now += act[1]
            conn.handle_timer(self.now)
        elif kind == "timer-next":
            deadline = conn.next_timer()
            if deadline is not None:
                self.now = max(self.now, deadline)
                conn.handle_timer(self.now)
        elif kind == "drain":
            self.drain()
        else:
            self.user_call(act)

    def peer(self, what: str, k: int, window: str, length: int) -> Segment:
        """What a correct peer could send now."""
        conn = self.conn
        mss = conn.snd_mss
        in_flight = conn.bytes_in_flight
        field = {
            "same": conn.snd_wnd >> conn.snd_wscale,
            "zero": 0,
            "full": 0xFFFF,
        }[window]
        segment = Segment(seq=conn.rcv_nxt, ack=conn.snd_una, flags=ACK, window=field)
        if what == "ack":
            acked = [0, min(mss, in_flight), in_flight // 2, in_flight][k]
            segment.ack = seq_add(conn.snd_una, acked)
        elif what == "sack":
            # RFC 2018: the peer holds some segments beyond a hole at SND.UNA.
            una, end = conn.snd_una, in_flight
            blocks = [
                [(mss, 2 * mss)],
                [(mss, end)],
                [(4 * mss, 5 * mss), (2 * mss, 3 * mss)],
                [(end // 3, end // 2), (end - mss, end)],
            ][k]
            segment.sack_blocks = tuple(
                (seq_add(una, left), seq_add(una, min(right, end)))
                for left, right in blocks
                if 0 < left < min(right, end)
            )
        elif what == "rst":
            segment.flags = RST | (ACK if k & 1 else 0)
            segment.ack = conn.snd_max
        elif what in ("data", "fin"):
            if length < 0:
                length = max(conn.receive_window, 1)
            # In order, one segment ahead, overlapping the left edge, a little ahead
            # (long segments then run past the right edge).
            segment.seq = seq_add(conn.rcv_nxt, [0, length, -(length // 2), 700][k])
            segment.flags = ACK | PSH | (FIN if what == "fin" else 0)
            segment.payload = peer_bytes(peer_offset(conn, segment), length)
        else:
            segment.seq = conn.irs if conn.state is not State.LISTEN else PEER_ISN
            segment.flags = SYN | (ACK if what == "syn-ack" else 0)
            segment.ack = conn.snd_max if what == "syn-ack" else 0
            segment.mss = 1460
            segment.sack_permitted = bool(k & 1)
            segment.wscale = 7 if k & 2 else None
        if conn.timestamps_enabled or (what in ("syn", "syn-ack") and k >= 2):
            if seq_lt(self.peer_clock, ts_recent(conn)):
                self.peer_clock = ts_recent(conn)
            self.peer_clock = seq_add(self.peer_clock, 1)
            segment.ts_val = self.peer_clock
            segment.ts_ecr = ts_now(conn, self.now - 0.01)
        return segment

    def feed(self, data: bytes, *, forged: bool = True) -> None:
        conn = self.conn
        self.last_fed = data
        malformed = len(data) > MAX_DATAGRAM or is_malformed(data, verify_checksum(conn))
        if not forged and not malformed:
            self.tainted = True
        before = conn.stats.dropped_malformed
        state = conn.state
        conn.receive_datagram(data, self.now)
        dropped = conn.stats.dropped_malformed - before
        assert dropped == (1 if malformed else 0), (malformed, dropped, data[:80].hex())
        if malformed:
            assert conn.state is state

    def user_call(self, act: tuple[Any, ...]) -> None:
        conn = self.conn
        kind = act[0]
        try:
            if kind == "send":
                data = APP_STREAM[self.app_sent : self.app_sent + act[1]]
                conn.send(data)
                self.app_sent += len(data)
            elif kind == "set_receive_window":
                conn.set_receive_window(act[1])
                self.largest_buffer = max(self.largest_buffer, act[1])
            elif kind == "set_send_buffer_limits":
                conn.set_send_buffer_limits(act[1], act[2])
            elif act[1] == "connect":
                conn.connect(self.now)
            else:
                getattr(conn, act[1])()
        except LocalProtocolError:
            pass

    def drain(self) -> None:
        conn = self.conn
        verify = verify_checksum(conn)
        first_byte = seq_add(conn.iss, 1)
        for data in conn.datagrams_to_send(self.now):
            assert len(data) <= MAX_DATAGRAM
            segment = decode(data, verify_checksum=verify)  # MalformedSegment if junk
            if segment.flags & (RST | SYN):
                continue
            # Every byte we send is the application's byte for that sequence number,
            # and a FIN sits right after the last byte the application wrote.
            offset = seq_sub(segment.seq, first_byte)
            if segment.payload:
                assert offset >= 0 and offset + len(segment.payload) <= self.app_sent, segment
                expected = APP_STREAM[offset : offset + len(segment.payload)]
                assert segment.payload == expected, f"wrong bytes in {segment}"
            if segment.flags & FIN:
                assert offset + len(segment.payload) == self.app_sent, segment
        self.drain_events()

    def drain_events(self) -> list[Event]:
        new: list[Event] = []
        while (event := self.conn.next_event()) is not None:
            tolerated = UNDELIVERED_AT_CLOSE_BUG and isinstance(event, DataReceived)
            if self.terminations and not tolerated:
                raise AssertionError(f"{event!r} after ConnectionTerminated")
            if isinstance(event, ConnectionTerminated):
                self.terminations += 1
            new.append(event)
        self.events += new
        return new

    def check(self) -> None:
        conn = self.conn
        for name in ("snd_una", "snd_nxt", "snd_max", "rcv_nxt"):
            assert 0 <= getattr(conn, name) <= SEQ_MASK, name
        assert seq_le(conn.snd_una, conn.snd_nxt), conn
        assert seq_le(conn.snd_nxt, conn.snd_max), conn
        # Autotuning (Linux DRS) grows the buffer, never past receive_buffer_max
        # (set_receive_window may set any size).
        capacity = conn.receive_buffer
        assert capacity <= max(conn.config.receive_buffer_max, self.largest_buffer), capacity
        self.largest_buffer = max(self.largest_buffer, capacity)
        # What we advertise is rounded up to a multiple of 2**wscale (RFC 7323 2.3).
        limit = self.largest_buffer + (1 << conn.rcv_wscale)
        assert receive_held(conn) <= limit, (receive_held(conn), limit)
        # RFC 9293 3.10.7.4: nothing beyond the window we advertised is kept.
        assert stored_beyond_rcv_nxt(conn) <= conn.receive_window, conn
        deadline = conn.next_timer()
        assert deadline is None or (isinstance(deadline, float) and math.isfinite(deadline))
        if conn.state is State.CLOSED:
            # PACING_TIMER_SURVIVES_CLOSE (reported): tolerated here, pinned below.
            leftover = getattr(conn, "pacing_at", None) if PACING_TIMER_SURVIVES_CLOSE else None
            assert deadline in (None, leftover), "a CLOSED engine must not ask to be woken"
        elif conn.snd_una != conn.snd_max and conn.state is not State.TIME_WAIT:
            # Unacknowledged sequence space: something must wake us to retransmit.
            assert deadline is not None, conn
        assert conn.send_buffered >= 0
        kinds = [type(e) for e in self.events]
        assert kinds.count(Connected) <= 1 and kinds.count(EofReceived) <= 1, kinds
        assert all(e.data for e in self.events if isinstance(e, DataReceived))
        if EofReceived in kinds:
            assert DataReceived not in kinds[kinds.index(EofReceived) :], kinds
        if not self.tainted:
            delivered = b"".join(e.data for e in self.events if isinstance(e, DataReceived))
            assert delivered == peer_bytes(0, len(delivered)), "delivered bytes out of order"


def encode_plan(plan: SegmentPlan, conn: Connection, now: float) -> bytes:
    return encode(plan.resolve(conn, now), checksum=verify_checksum(conn))


def run_fuzz(conn: Connection, prelude: int, steps: list[tuple[tuple[Any, ...], bool]]) -> Fuzzer:
    """``prelude`` bytes are sent first (if the state allows), so that data is in flight
    when the steps begin; each step is an action and whether the owner drains after it
    (owners do, per the engine's contract; a lazy one is worth fuzzing too)."""
    fuzzer = Fuzzer(conn)
    fuzzer.check()
    if prelude:
        fuzzer.step(("send", prelude))
        fuzzer.drain()
        fuzzer.check()
    for act, drain in steps:
        fuzzer.step(act)
        fuzzer.check()
        if drain:
            fuzzer.drain()
            fuzzer.check()
    # The owner always drains in the end, reads again, and runs the clock out.
    fuzzer.drain()
    fuzzer.check()
    fuzzer.user_call(("call", "resume_reading"))
    fuzzer.drain()
    fuzzer.check()
    for _ in range(50):
        deadline = conn.next_timer()
        if deadline is None:
            break
        fuzzer.now = max(fuzzer.now, deadline)
        conn.handle_timer(fuzzer.now)
        fuzzer.drain()
        fuzzer.check()
    return fuzzer


FUZZ = settings(
    # Overridable for a long hunt: RUDP_FUZZ_EXAMPLES=5000 pytest tests/core/test_engine_fuzz.py
    max_examples=int(os.environ.get("RUDP_FUZZ_EXAMPLES", "80")),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("key", list(BUILDERS), ids=STATE_IDS)
@FUZZ
@given(
    variant=st.sampled_from(VARIANTS),
    prelude=st.sampled_from([0, 1, 3000, 20_000]),
    steps=st.lists(st.tuples(action, st.sampled_from([True, True, False])), min_size=10,
                   max_size=60),
)
def test_rfc9293_3_10_7_engine_survives_hostile_input_in_every_state(
    key: State | str, variant: Variant, prelude: int, steps: list[tuple[tuple[Any, ...], bool]]
) -> None:
    """RFC 9293 3.10.7: whatever arrives, in whatever state, the engine drops or
    handles it without raising, and its invariants hold after every step."""
    run_fuzz(BUILDERS[key](variant), prelude, steps)


# ---------------------------------------------------------------------------------------
# Each kind of malformed datagram, in every state: dropped, counted, nothing else.
# ---------------------------------------------------------------------------------------


def good_segment(conn: Connection) -> bytes:
    """A well-formed, in-window ACK with data, as the peer would send it."""
    return encode(
        Segment(
            seq=conn.rcv_nxt,
            ack=conn.snd_max,
            flags=ACK | PSH,
            window=4096,
            payload=b"abcdefgh",
            mss=1460,
        )
    )


def header_with(offset_words: int, options: bytes, payload: bytes = b"") -> bytes:
    raw = struct.pack("!HHIIBBHHH", 1, 2, 3, 4, offset_words << 4, ACK, 512, 0, 0)
    return with_checksum(raw + options + payload)


MALFORMED: dict[str, Callable[[Connection], bytes]] = {
    "empty": lambda conn: b"",
    "one byte": lambda conn: b"\x00",
    "19 bytes": lambda conn: good_segment(conn)[:19],
    "data offset 0": lambda conn: header_with(0, b""),
    "data offset 4": lambda conn: header_with(4, b""),
    "data offset past the end": lambda conn: header_with(15, b"", bytes(8)),
    "option without length byte": lambda conn: header_with(6, bytes([1, 1, 1, 2])),
    "option length 0": lambda conn: header_with(6, bytes([30, 0, 0, 0])),
    "option length 1": lambda conn: header_with(6, bytes([30, 1, 0, 0])),
    "option runs past the header": lambda conn: header_with(6, bytes([30, 9, 0, 0])),
    "MSS length 5": lambda conn: header_with(7, bytes([2, 5, 5, 0, 0, 0, 0, 0])),
    "window scale length 4": lambda conn: header_with(6, bytes([3, 4, 7, 0])),
    "SACK-permitted length 3": lambda conn: header_with(6, bytes([4, 3, 0, 0])),
    "timestamps length 9": lambda conn: header_with(8, bytes([8, 9]) + bytes(10)),
    "SACK with no block": lambda conn: header_with(6, bytes([5, 2, 0, 0])),
    "SACK length 11": lambda conn: header_with(8, bytes([5, 11]) + bytes(10)),
    "bad checksum": lambda conn: bytes(
        b ^ 0x01 if i == 16 else b for i, b in enumerate(good_segment(conn))
    ),
    "one payload bit flipped": lambda conn: good_segment(conn)[:-1]
    + bytes([good_segment(conn)[-1] ^ 0x40]),
}


@pytest.mark.parametrize("malformation", list(MALFORMED))
@pytest.mark.parametrize("key", list(BUILDERS), ids=STATE_IDS)
def test_rfc9293_3_1_malformed_datagram_dropped_and_counted(
    key: State | str, malformation: str
) -> None:
    """Short, bad data offset, bad option lengths, bad checksum (RFC 9293 3.1, RFC 1071):
    dropped and counted in stats.dropped_malformed; no state change, no reply, no event."""
    conn = BUILDERS[key](VARIANTS[0])
    state = conn.state
    fuzzer = Fuzzer(conn)
    fuzzer.drain()
    before = dataclasses.replace(conn.stats)
    conn.receive_datagram(MALFORMED[malformation](conn), START)
    assert conn.stats.dropped_malformed == before.dropped_malformed + 1
    assert dataclasses.replace(conn.stats, dropped_malformed=before.dropped_malformed) == before
    assert conn.state is state
    assert conn.datagrams_to_send(START) == []
    assert conn.next_event() is None


def oversized(conn: Connection, size: int) -> bytes:
    data = good_segment(conn)
    segment = decode(data)
    segment.payload = peer_bytes(peer_offset(conn, segment), size - len(data) + 8)
    return encode(segment)


@pytest.mark.parametrize("key", list(BUILDERS), ids=STATE_IDS)
def test_oversized_datagram_dropped_and_counted(key: State | str) -> None:
    """A datagram larger than the largest UDP payload (65,507 bytes) cannot have come
    from a UDP socket: dropped and counted as malformed, in every state."""
    conn = BUILDERS[key](VARIANTS[0])
    state = conn.state
    Fuzzer(conn).drain()
    before = conn.stats.dropped_malformed
    conn.receive_datagram(oversized(conn, MAX_DATAGRAM + 1), START)
    assert conn.stats.dropped_malformed == before + 1
    assert conn.state is state
    assert conn.datagrams_to_send(START) == []
    assert conn.next_event() is None


@pytest.mark.parametrize("key", list(BUILDERS), ids=STATE_IDS)
def test_oversized_datagram_never_raises_or_overfills(key: State | str) -> None:
    """Whatever the engine decides about a huge datagram, it stays within its limits."""
    conn = BUILDERS[key](VARIANTS[2])  # 3000-byte receive buffer
    fuzzer = Fuzzer(conn)
    for size in (MAX_DATAGRAM + 1, 200_000):
        fuzzer.feed(oversized(conn, size))
        fuzzer.check()
        fuzzer.drain()
        fuzzer.check()


@pytest.mark.xfail(
    PACING_TIMER_SURVIVES_CLOSE,
    strict=True,
    reason="engine bug reported to the lead: _enter_closed() does not clear pacing_at",
)
def test_closed_engine_asks_for_no_timer_after_abort_while_pacing() -> None:
    """RFC 9293 3.10.5 ABORT: once CLOSED (and the RST handed over) nothing is left to
    do, so next_timer() is None -- also when the pacer was holding data back."""
    conn = established(pacing=True)
    conn.send(bytes(20_000))
    conn.datagrams_to_send(1.0)  # the pacer lets a burst go and arms pacing_at
    conn.abort()
    resets = sent(conn, 1.0)
    assert resets and all(rst.flags & RST for rst in resets) and conn.is_closed
    assert conn.next_timer() is None


def owner_sees(conn: Connection, now: float, horizon: float = 600.0) -> list[Event]:
    """The events an owner sees that drains after every input, wakes the engine at
    next_timer() and drops it once ``is_closed`` (as ListenerHost does), and whose
    application resumes reading at the end if the engine is still there to read from."""
    seen = events_of(conn)
    while not conn.is_closed and (deadline := conn.next_timer()) is not None:
        if deadline > now + horizon:
            break
        conn.handle_timer(deadline)
        sent(conn, deadline)
        seen += events_of(conn)
    if not conn.is_closed:
        conn.resume_reading()
        sent(conn, now + horizon)
        seen += events_of(conn)
    return seen


def events_of(conn: Connection) -> list[Event]:
    out = []
    while (event := conn.next_event()) is not None:
        out.append(event)
    return out


BUG_REASON = (
    "engine bug reported to the lead: reaching CLOSED while reading is paused drops the"
    " unread bytes and the EOF, or hands them over after ConnectionTerminated"
)


@pytest.mark.xfail(UNDELIVERED_AT_CLOSE_BUG, strict=True, reason=BUG_REASON)
def test_rfc9293_3_10_7_4_last_ack_keeps_unread_data_while_paused() -> None:
    """Data and FIN arrive while the application has paused reading; it half-closes
    (LAST-ACK) and the peer acknowledges our FIN.  The bytes and the EOF must still
    reach the application, before ConnectionTerminated."""
    conn = established()
    conn.pause_reading()
    feed(conn, seg(PEER_ISN + 1, ISN + 1, ACK | PSH | FIN, payload=b"hello"), 1.0)
    sent(conn, 1.0)
    conn.shutdown_write()
    [fin] = sent(conn, 1.1)
    assert conn.state is State.LAST_ACK and fin.flags & FIN
    feed(conn, seg(PEER_ISN + 7, ISN + 2), 1.2)
    seen = owner_sees(conn, 1.2)
    assert seen == [DataReceived(b"hello"), EofReceived(), ConnectionTerminated(None)], seen


@pytest.mark.xfail(UNDELIVERED_AT_CLOSE_BUG, strict=True, reason=BUG_REASON)
def test_rfc9293_3_10_7_4_time_wait_keeps_unread_data_and_eof_while_paused() -> None:
    """After our half-close, the peer's last bytes and FIN arrive while reading is
    paused (TIME-WAIT); then an RST (RFC 9293 3.10.7.4 closes TIME-WAIT on it; RFC 1337
    would ignore it) or the 2 MSL timer ends it.  The application must still get the
    bytes and the EOF, before ConnectionTerminated."""
    conn = established()
    conn.shutdown_write()
    sent(conn, 1.0)
    feed(conn, seg(PEER_ISN + 1, ISN + 2), 1.1)
    assert conn.state is State.FIN_WAIT_2
    conn.pause_reading()
    feed(conn, seg(PEER_ISN + 1, ISN + 2, ACK | PSH | FIN, payload=b"bye"), 1.2)
    sent(conn, 1.2)
    assert conn.state is State.TIME_WAIT
    feed(conn, seg(PEER_ISN + 5, 0, RST), 1.3)
    seen = owner_sees(conn, 1.3)
    assert seen == [DataReceived(b"bye"), EofReceived(), ConnectionTerminated(None)], seen


@pytest.mark.xfail(UNDELIVERED_AT_CLOSE_BUG, strict=True, reason=BUG_REASON)
def test_rfc9293_3_10_7_4_reset_while_paused_ends_the_event_stream() -> None:
    """An RST arrives while unread bytes wait behind a paused reader: whatever the
    engine does with them, ConnectionTerminated(ConnectionResetError) comes once and
    nothing follows it, even when the application resumes reading."""
    conn = established()
    conn.pause_reading()
    feed(conn, seg(PEER_ISN + 1, ISN + 1, ACK | PSH, payload=b"hello"), 1.0)
    sent(conn, 1.0)
    feed(conn, seg(PEER_ISN + 6, 0, RST), 1.1)
    seen = events_of(conn)
    conn.resume_reading()  # an owner may still hold the engine (ConnectionHost does)
    seen += events_of(conn)
    ends = [e for e in seen if isinstance(e, ConnectionTerminated)]
    assert len(ends) == 1 and isinstance(ends[0].error, ConnectionResetError), seen
    assert seen[-1] is ends[0], seen
    assert all(e.data == b"hello" for e in seen if isinstance(e, DataReceived)), seen
