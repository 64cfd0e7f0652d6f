"""Header prediction and the burst sender against the general paths (RFC 9293 3.10.7.4).

``Connection._receive_predicted`` handles the next in-order segment (an ACK of
everything sent empties the scoreboard with ``Scoreboard.ack_all``) and
``_send_burst`` sends runs of full-sized segments (or a single short one); all
must do exactly what the general paths do.  Each seeded script drives two
engines in the same state -- one of them with the fast paths switched off --
through the same application calls, peer segments (in order, duplicated, ahead
of a gap, acknowledging none, some or all of our data, changing the window,
pushed or not) and timers, and requires the same datagrams, events and state
(scoreboard, RTT estimator and congestion controller included) after every step.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from engine_helpers import PEER_ISN, established

from rudp.core.connection import Connection
from rudp.core.scoreboard import Scoreboard
from rudp.core.segment import ACK, PSH, Segment, decode, encode
from rudp.core.seq import seq_add, seq_sub
from rudp.core.state import State

SCRIPTS = 300
STEPS = 80


class GeneralPathsOnly(Connection):
    __slots__ = ()

    def _receive_predicted(self, data: bytes | bytearray | memoryview, now: float) -> bool:
        return False

    def _burst_size(self, remaining: int) -> int:
        return 0


def _slots(obj: object, *skip: str) -> list[tuple[str, Any]]:
    """The values of an object's __slots__, those of its base classes included."""
    names = {name for cls in type(obj).__mro__ for name in getattr(cls, "__slots__", ())}
    return [(name, getattr(obj, name)) for name in sorted(names - set(skip))]


def _state(conn: Connection) -> dict[str, Any]:
    names = (
        "state", "snd_una", "snd_nxt", "snd_max", "snd_wnd", "snd_wl1", "snd_wl2", "rcv_nxt",
        "max_snd_wnd", "rto_at", "delayed_ack_at", "persist_at", "tlp_at", "rack_at",
        "give_up_at", "_ts_recent", "_rcv_adv_edge", "_segs_since_ack", "_ack_now",
    )
    snapshot = {name: getattr(conn, name) for name in names}
    snapshot["cwnd"] = conn.cc.cwnd
    snapshot["ssthresh"] = conn.cc.ssthresh
    snapshot["stats"] = conn.stats.as_dict()
    cc = conn.cc
    snapshot["cc"] = _slots(cc, "hystart")
    # RFC 9406 HyStart++: its byte clock and round state (the estimator is below).
    snapshot["hystart"] = None if cc.hystart is None else _slots(cc.hystart, "_rtt")
    rtt = conn.rtt
    snapshot["rtt"] = (rtt.srtt, rtt.rttvar, rtt.rto, rtt.samples)
    snapshot["min_rtt"] = (conn.min_rtt, conn._min_rtt_at)
    snapshot["send"] = (
        bytes(conn._send_buffer), conn._buffer_start, conn._buffer_offset, conn._ts_retransmitted,
        conn._rtt_seq, conn._tlp_allowed, conn._dupacks, conn._lt_bytes, conn._above_high_water,
    )
    snapshot["receive"] = (bytes(conn._rcv_buffer.ready), conn._data_queued, conn._last_ack_sent)
    # Receive-buffer autotuning (Linux DRS): its measure and the buffer it grew.
    snapshot["autotuning"] = (
        conn._rcv_buffer.capacity,
        conn._rcvq_at,
        conn._rcvq_copied,
        conn._rcvq_space,
        conn._rcv_rtt,
    )
    board = conn._scoreboard
    snapshot["scoreboard"] = (
        [(r.start, r.end, r.sent_at, r.sacked, r.lost, r.retransmitted) for r in board],
        board.acked, board.sent_end, board.sacked_bytes, board.lost_bytes,
        board.retransmitted_out, board.rack_xmit_ts, board.rack_end, board.rack_rtt,
        board.fack, board.reordering_seen, board.min_rtt,
    )
    return snapshot


class Peer:
    """Builds the peer's segments from what it has seen of ours."""

    def __init__(self, rng: random.Random, timestamps: bool, conn: Connection) -> None:
        self.rng = rng
        self.seq = seq_add(PEER_ISN, 1)
        self.window = 65535
        self.timestamps = timestamps
        self.ts_val = 100
        self.ts_ecr = 0
        self.conn = conn

    def saw(self, datagrams: list[bytes]) -> None:
        for data in datagrams:
            seg = decode(data, verify_checksum=False)
            if seg.ts_val is not None:
                self.ts_ecr = seg.ts_val

    def segment(self) -> bytes:
        rng, conn = self.rng, self.conn
        size = rng.choice([0, 1, 100, conn.snd_mss, conn.snd_mss, conn.snd_mss])
        seq = self.seq
        roll = rng.random()
        if roll < 0.08:
            seq = seq_add(seq, -rng.randint(1, 3000))  # an old duplicate or overlap
        elif roll < 0.14:
            seq = seq_add(seq, rng.randint(1, 3000))  # ahead of a gap
        else:
            self.seq = seq_add(seq, size)
        in_flight = seq_sub(conn.snd_max, conn.snd_una)
        roll = rng.random()
        if roll < 0.2:
            ack = conn.snd_max  # everything sent (the usual ACK)
        else:
            ack = seq_add(conn.snd_una, rng.randint(0, in_flight) if roll < 0.6 else 0)
        if rng.random() < 0.1:
            self.window = rng.choice([0, 2000, 30000, 65535])
        if rng.random() < 0.7:
            self.ts_val += rng.randint(0, 3)
        flags = ACK | (PSH if size and rng.random() < 0.5 else 0)
        seg = Segment(
            seq=seq, ack=ack, flags=flags, window=self.window, payload=bytes(size),
            ts_val=self.ts_val if self.timestamps else None,
            ts_ecr=self.ts_ecr if self.timestamps else None,
        )
        return encode(seg)


def _play(seed: int) -> None:
    rng = random.Random(seed)
    options = {
        "peer_ts": rng.random() < 0.6,
        "receive_buffer": rng.choice([3000, 8000, 65535, 256 * 1024]),
        "peer_mss": rng.choice([536, 1460]),
        "nagle": rng.random() < 0.3,
    }
    fast = established(**options)
    slow = established(**options)
    slow.__class__ = GeneralPathsOnly
    if rng.random() < 0.5:
        _trust_udp_checksum(fast, slow)
    peer = Peer(rng, options["peer_ts"], fast)
    now = 1.0
    for step in range(STEPS):
        now += rng.choice([0.0, 0.0, 0.001, 0.05])
        action = rng.random()
        if fast.state is State.CLOSED:
            # (The scripted peer can make it give up -- while reading is paused,
            # with data still unread, so not yet is_closed.)
            break
        if action < 0.25:
            data = bytes(rng.choice([1, 64, 500, 1448 * 3, 1448 * 4, 20000]))
            fast.send(data)
            slow.send(data)
        elif action < 0.8:
            datagram = peer.segment()
            fast.receive_datagram(datagram, now)
            slow.receive_datagram(datagram, now)
        elif action < 0.9:
            deadline = fast.next_timer()
            assert deadline == slow.next_timer()
            if deadline is not None:
                now = max(now, deadline)
                fast.handle_timer(now)
                slow.handle_timer(now)
        elif action < 0.95:
            for conn in (fast, slow):
                conn.pause_reading() if conn._reading else conn.resume_reading()
        where = f"seed {seed} step {step}"
        out = fast.datagrams_to_send(now)
        assert out == slow.datagrams_to_send(now), where
        peer.saw(out)
        if rng.random() < 0.7:
            assert _drain(fast) == _drain(slow), where
        assert _state(fast) == _state(slow), where


def _trust_udp_checksum(*conns: Connection) -> None:
    """As Config(checksum="udp"), from ESTABLISHED on (the helpers check checksums)."""
    for conn in conns:
        conn._fill_checksum = conn._verify_checksum = False


def _drain(conn: Connection) -> list[object]:
    events = []
    while (event := conn.next_event()) is not None:
        events.append(event)
    return events


@pytest.mark.parametrize("chunk", range(0, SCRIPTS, 50))
def test_fast_paths_do_what_the_general_paths_do_rfc9293_3_10_7_4(chunk: int) -> None:
    for seed in range(chunk, chunk + 50):
        _play(seed)


def test_the_scripts_take_every_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison above means something only if the scripts reach each fast
    path: header prediction with and without a new ACK, the ACK of everything
    sent (Scoreboard.ack_all), bursts of several segments and of a single one --
    and header prediction taking the round trip's autotuning measure (Linux DRS,
    tcp_rcv_space_adjust; growing the buffer is compared in the test after)."""
    taken = {
        "predicted": 0,
        "predicted ack": 0,
        "predicted measure": 0,
        "ack_all": 0,
        "burst": 0,
        "one segment": 0,
    }
    predicted, ack_all, burst = (
        Connection._receive_predicted, Scoreboard.ack_all, Connection._send_burst
    )

    def count_predicted(self: Connection, data: bytes, now: float) -> bool:
        una, measure_at = self.snd_una, self._rcvq_at
        took = predicted(self, data, now)
        taken["predicted"] += took
        taken["predicted ack"] += took and self.snd_una != una
        taken["predicted measure"] += took and self._rcvq_at != measure_at
        return took

    def count_ack_all(self: Scoreboard, now: float) -> int:
        taken["ack_all"] += 1
        return ack_all(self, now)

    def count_burst(self: Connection, now: float, out: list[bytes], offset: int, size: int) -> None:
        taken["one segment" if size <= self.snd_mss else "burst"] += 1
        burst(self, now, out, offset, size)

    monkeypatch.setattr(Connection, "_receive_predicted", count_predicted)
    monkeypatch.setattr(Scoreboard, "ack_all", count_ack_all)
    monkeypatch.setattr(Connection, "_send_burst", count_burst)
    for seed in range(50):
        _play(seed)
    assert min(taken.values()) > 20, taken


@pytest.mark.parametrize("timestamps", [False, True])
def test_autotuning_grows_the_same_buffer_on_both_paths_linux_drs(timestamps: bool) -> None:
    """Receive-buffer autotuning (Linux DRS, tcp_rcv_space_adjust) measures when
    in-order data arrives, in header prediction or in the general path: a bulk
    receiver that reads as data comes from a sender in slow start (its rate
    doubling each 100 ms round trip), with now and then a segment lost and
    repaired (the repair goes the general way), grows its buffer round trip by
    round trip -- the same buffer, measure and receiver RTT on both engines."""
    rtt = 0.1
    rng = random.Random(7)
    fast = established(peer_ts=timestamps, peer_wscale=7)
    slow = established(peer_ts=timestamps, peer_wscale=7)
    slow.__class__ = GeneralPathsOnly
    mss = fast.snd_mss
    seq = seq_add(PEER_ISN, 1)
    ts_val, now = 100, 1.0
    our_ts: list[tuple[float, int]] = [(0.0, 0)]  # (when, TSval) of what we sent
    grown_fast = 0
    held: bytes | None = None  # a segment "lost", sent after the next ones
    for step in range(120):
        now += rtt / 20
        # The peer echoes the TSval of our latest segment it has seen (RFC 7323 4.3).
        ts_ecr = [ts for at, ts in our_ts if at <= now - rtt][-1]
        for _ in range(2 ** (step // 20)):
            ts_val += 1
            segment = Segment(
                seq=seq,
                ack=fast.snd_max,
                flags=ACK,
                window=65535,
                payload=bytes(mss),
                ts_val=ts_val if timestamps else None,
                ts_ecr=ts_ecr if timestamps else None,
            )
            seq = seq_add(seq, mss)
            batch = [encode(segment)]
            if held is None and rng.random() < 0.01:
                held, batch = batch[0], []
            elif held is not None and rng.random() < 0.2:
                batch.append(held)
                held = None
            for data in batch:
                capacity = fast.receive_buffer
                predicted = fast._receive_predicted(data, now)
                if not predicted:
                    fast.receive_datagram(data, now)
                grown_fast += predicted and fast.receive_buffer > capacity
                slow.receive_datagram(data, now)
            out = fast.datagrams_to_send(now)
            assert out == slow.datagrams_to_send(now), step
            our_ts += [(now, decode(d, verify_checksum=False).ts_val or 0) for d in out]
            assert _drain(fast) == _drain(slow), step
            assert _state(fast) == _state(slow), step
    assert fast.receive_buffer > 4 * fast.config.receive_buffer
    assert grown_fast >= 3, grown_fast


@pytest.mark.parametrize("timestamps", [False, True])
@pytest.mark.parametrize("checksum", ["full", "udp"])
def test_burst_ending_the_buffer_pushes_its_last_segment(timestamps: bool, checksum: str) -> None:
    """RFC 9293 3.9.1 (PSH): the segment that empties the send buffer is pushed."""
    fast = established(peer_ts=timestamps)
    slow = established(peer_ts=timestamps)
    slow.__class__ = GeneralPathsOnly
    if checksum == "udp":
        _trust_udp_checksum(fast, slow)
    for conn in (fast, slow):
        conn.send(bytes(range(256)) * (4 * conn.snd_mss // 256) + bytes(4 * conn.snd_mss % 256))
    out = fast.datagrams_to_send(2.0)
    assert out == slow.datagrams_to_send(2.0)
    flags = [decode(data, verify_checksum=checksum == "full").flags for data in out]
    assert flags == [ACK] * (len(out) - 1) + [ACK | PSH] and len(out) == 4


def test_datagrams_to_send_limit_gives_the_same_datagrams_in_batches() -> None:
    """With ``limit`` an owner gets the same datagrams, a batch per call, calling
    again while a call returns ``limit`` or more."""
    whole = established(peer_window=60000)
    batched = established(peer_window=60000)
    for conn in (whole, batched):
        conn.cc.cwnd = 40 * conn.snd_mss
        conn.send(bytes(range(256)) * 200)
    expected = whole.datagrams_to_send(2.0)
    got: list[bytes] = []
    while True:
        batch = batched.datagrams_to_send(2.0, limit=8)
        got += batch
        if len(batch) < 8:
            break
    assert got == expected and len(expected) > 16
    assert _state(batched) == _state(whole)
