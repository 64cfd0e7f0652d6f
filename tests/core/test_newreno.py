"""NewReno congestion control: RFC 5681 (slow start, congestion avoidance, fast
retransmit/recovery), RFC 3465 byte counting, RFC 6582 (partial and full ACKs),
RFC 6928 (initial window), RFC 3042 (limited transmit).

First the controller alone, replaying ACK sequences against the formulas; then
the engine, feeding duplicate and partial ACKs and checking the exact segments.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from engine_helpers import (
    ISN,
    OUR_WINDOW,
    PEER_ISN,
    RTO_AFTER_HANDSHAKE,
    WRAP_ISN,
    established,
    feed,
    fire,
    payload,
    seg,
    sent,
)

from rudp.core import congestion
from rudp.core.congestion.base import CongestionControl
from rudp.core.congestion.newreno import NewReno
from rudp.core.connection import Connection
from rudp.core.segment import ACK, PSH, Segment
from rudp.core.seq import seq_add

SND = ISN + 1
RCV = PEER_ISN + 1
M = 1380  # the engine's MSS against the default peer
RTO = RTO_AFTER_HANDSHAKE


def newreno(mss: int = 1000) -> CongestionControl:
    return congestion.create("newreno", mss, 10)


# ============================================================ controller
def test_registry_creates_newreno_by_name() -> None:
    assert "newreno" in congestion.available()
    assert isinstance(newreno(), NewReno)
    with pytest.raises(ValueError, match="unknown congestion control"):
        congestion.create("no-such-algorithm", 1000, 10)


@pytest.mark.parametrize(
    ("mss", "iw"),
    [(536, 5360), (1000, 10000), (1460, 14600), (2000, 14600), (9000, 18000)],
)
def test_rfc6928_2_initial_window(mss: int, iw: int) -> None:
    """RFC 6928 2: IW = min(10*MSS, max(2*MSS, 14600))."""
    assert newreno(mss).cwnd == iw == min(10 * mss, max(2 * mss, 14600))


def test_rfc5681_3_1_initial_ssthresh_is_arbitrarily_high() -> None:
    cc = newreno()
    assert cc.ssthresh >= 2**31
    assert cc.in_slow_start


def test_rfc5681_3_1_slow_start_adds_bytes_acked_up_to_ssthresh_rfc3465() -> None:
    """RFC 5681 (2) with RFC 3465 byte counting, as Linux's tcp_slow_start: cwnd
    grows by every byte acknowledged, a stretch ACK included (no L = 2 cap: rudp
    acknowledges a batch at a time), never past ssthresh."""
    cc = newreno(1000)
    trace = []
    for acked in (1000, 1000, 3000, 500, 10000):
        cc.on_ack(acked, 0.0, None)
        trace.append(cc.cwnd)
    assert trace == [11000, 12000, 15000, 15500, 25500]
    cc.ssthresh = 30000
    cc.on_ack(10000, 0.0, None)
    assert cc.cwnd == 30000


def test_rfc5681_3_1_congestion_avoidance_one_mss_per_cwnd_acked_rfc3465() -> None:
    """RFC 5681 (3) in RFC 3465 2.1 form: once bytes_acked reaches cwnd, it drops
    by cwnd and cwnd grows by one SMSS."""
    cc = newreno(1000)
    cc.ssthresh = 5000
    trace = []
    for _ in range(25):
        cc.on_ack(1000, 0.0, None)
        trace.append(cc.cwnd)
    assert trace == [10000] * 9 + [11000] * 11 + [12000] * 5


def test_rfc5681_3_1_cwnd_equal_to_ssthresh_is_congestion_avoidance() -> None:
    cc = newreno(1000)
    cc.ssthresh = cc.cwnd
    cc.on_ack(1000, 0.0, None)
    assert cc.cwnd == 10000


@pytest.mark.parametrize(
    ("in_flight", "ssthresh", "cwnd"),
    [(20000, 10000, 13000), (10001, 5000, 8000), (3000, 2000, 5000), (0, 2000, 5000)],
)
def test_rfc5681_3_2_fast_retransmit_sets_ssthresh_and_inflates(
    in_flight: int, ssthresh: int, cwnd: int
) -> None:
    """RFC 5681 3.2 step 2: ssthresh = max(FlightSize/2, 2*SMSS) (equation 4);
    step 3: cwnd = ssthresh + 3*SMSS."""
    cc = newreno(1000)
    cc.on_loss(0.0, in_flight)
    assert (cc.ssthresh, cc.cwnd) == (ssthresh, cwnd)


def test_rfc5681_3_2_step_4_each_further_dupack_adds_one_mss() -> None:
    cc = newreno(1000)
    cc.on_loss(0.0, 20000)
    for expected in (14000, 15000, 16000):
        cc.on_dupack()
        assert cc.cwnd == expected


def test_rfc6582_3_2_partial_ack_deflates_by_acked_adds_one_mss() -> None:
    """RFC 6582 3.2 step 3 (partial): "deflate the congestion window by the amount
    of new data acknowledged ..., then add back SMSS bytes"."""
    cc = newreno(1000)
    cc.on_loss(0.0, 20000)
    cc.on_partial_ack(4000)
    assert cc.cwnd == 13000 - 4000 + 1000


@pytest.mark.parametrize("in_flight", [5000, 20000, 500, 0])
def test_rfc6582_3_2_full_ack_deflates_to_ssthresh(in_flight: int) -> None:
    """RFC 6582 3.2 step 3 (full), option 2, as Linux: cwnd = ssthresh, the one
    set on entry (10000), whatever is still in flight."""
    cc = newreno(1000)
    cc.on_loss(0.0, 20000)
    cc.on_recovery_end(in_flight)
    assert cc.cwnd == 10000


@pytest.mark.parametrize(("in_flight", "ssthresh"), [(20000, 10000), (3000, 2000)])
def test_rfc5681_3_1_timeout_sets_ssthresh_and_one_segment_window(
    in_flight: int, ssthresh: int
) -> None:
    """RFC 5681 3.1: on a retransmission timeout ssthresh follows equation (4) and
    cwnd becomes the loss window, LW = 1 SMSS (equation 5 context)."""
    cc = newreno(1000)
    cc.on_rto(0.0, in_flight)
    assert (cc.ssthresh, cc.cwnd) == (ssthresh, 1000)
    cc.on_ack(1000, 0.0, None)
    assert cc.cwnd == 2000  # slow start again


def test_set_mss_keeps_window_in_bytes_rfc4821_7_5() -> None:
    """A path MTU change (RFC 4821 7.5) resizes segments, not the window: cwnd stays
    in bytes, as Linux's tcp_mtup_probe_success does, but never below one segment."""
    cc = newreno(1000)
    cc.set_mss(500)
    assert (cc.mss, cc.cwnd) == (500, 10000)
    cc.set_mss(20000)
    assert (cc.mss, cc.cwnd) == (20000, 20000)


@dataclass
class Reference:
    """RFC 5681 / 3465 / 6582 as formulas, for trace comparison."""

    mss: int
    cwnd: int
    ssthresh: int = 2**62
    bytes_acked: int = 0

    def ack(self, acked: int) -> None:
        if self.cwnd < self.ssthresh:
            self.cwnd = min(self.cwnd + acked, self.ssthresh)
        else:
            self.bytes_acked += acked
            if self.bytes_acked >= self.cwnd:
                self.bytes_acked -= self.cwnd
                self.cwnd += self.mss

    def loss(self, flight: int) -> None:
        self.ssthresh = max(flight // 2, 2 * self.mss)
        self.cwnd = self.ssthresh + 3 * self.mss
        self.bytes_acked = 0

    def dupack(self) -> None:
        self.cwnd += self.mss

    def partial(self, acked: int) -> None:
        self.cwnd = self.cwnd - acked + self.mss

    def full(self, flight: int) -> None:
        self.cwnd = self.ssthresh

    def timeout(self, flight: int) -> None:
        self.ssthresh = max(flight // 2, 2 * self.mss)
        self.cwnd = self.mss
        self.bytes_acked = 0


def test_rfc5681_rfc6582_trace_replay_matches_formulas() -> None:
    """Slow start, a loss with recovery (dupacks, a partial then a full ACK),
    congestion avoidance, a timeout and slow start again: cwnd and ssthresh agree
    with the formulas after every step."""
    cc = newreno(1000)
    ref = Reference(1000, cc.cwnd)
    steps: list[tuple[str, int]] = (
        [("ack", 2000)] * 5
        + [("loss", 20000), ("dupack", 0), ("dupack", 0), ("partial", 4000), ("dupack", 0)]
        + [("full", 6000)]
        + [("ack", 1000)] * 30
        + [("timeout", 12000)]
        + [("ack", 1000)] * 12
    )
    for op, n in steps:
        if op == "ack":
            cc.on_ack(n, 0.0, None)
            ref.ack(n)
        elif op == "loss":
            cc.on_loss(0.0, n)
            ref.loss(n)
        elif op == "dupack":
            cc.on_dupack()
            ref.dupack()
        elif op == "partial":
            cc.on_partial_ack(n)
            ref.partial(n)
        elif op == "full":
            cc.on_recovery_end(n)
            ref.full(n)
        else:
            cc.on_rto(0.0, n)
            ref.timeout(n)
        assert (cc.cwnd, cc.ssthresh) == (ref.cwnd, ref.ssthresh), (op, n)


# ================================================================ engine
def data(seq: int, size: int = M, offset: int | None = None, flags: int = ACK) -> Segment:
    """The data segment we expect at ``seq`` (offset = its stream offset)."""
    start = seq - SND if offset is None else offset
    return seg(seq, RCV, flags, window=OUR_WINDOW, payload=payload(size, start))


def dupack(conn: Connection, at: float, ack: int = SND) -> list[Segment]:
    feed(conn, seg(RCV, ack), at)
    return sent(conn, at)


def flight_of_ten() -> Connection:
    """ESTABLISHED with the initial window (10 segments, SND..SND+10M) in flight."""
    conn = established(congestion_control="newreno", peer_sack=False)
    conn.send(payload(10 * M))
    out = sent(conn, 1.0)
    assert [s.seq for s in out] == [SND + i * M for i in range(10)]
    return conn


def test_established_slow_start_per_ack_rfc5681_3_1_rfc3465() -> None:
    """RFC 5681 (2) / RFC 3465 byte counting: one segment acked: +1 MSS; a
    stretch ACK of four segments: +4 MSS (as Linux; see CongestionControl.slow_start)."""
    conn = flight_of_ten()
    feed(conn, seg(RCV, SND + M), 1.2)
    assert conn.cc.cwnd == 10 * M + M
    feed(conn, seg(RCV, SND + 5 * M), 1.3)
    assert conn.cc.cwnd == 11 * M + 4 * M


def test_established_three_dupacks_fast_retransmit_rfc5681_3_2() -> None:
    """RFC 5681 3.2: the third duplicate ACK retransmits the segment at SND.UNA at
    once; ssthresh = max(FlightSize/2, 2*SMSS) = 6900, cwnd = ssthresh + 3*SMSS."""
    conn = flight_of_ten()
    assert dupack(conn, 1.2) == []
    assert dupack(conn, 1.21) == []
    assert dupack(conn, 1.22) == [data(SND)]
    assert conn.cc.ssthresh == 10 * M // 2 == 6900
    assert conn.cc.cwnd == 6900 + 3 * M
    assert conn.stats.fast_retransmits == 1


def test_established_fast_retransmit_across_wrap_rfc5681_3_2() -> None:
    conn = established(congestion_control="newreno", peer_sack=False, isn=WRAP_ISN)
    conn.send(payload(10 * M))
    sent(conn, 1.0)
    una = 2**32 - 2
    for at in (1.2, 1.21):
        feed(conn, seg(RCV, una), at)
        assert sent(conn, at) == []
    feed(conn, seg(RCV, una), 1.22)
    [again] = sent(conn, 1.22)
    assert (again.seq, again.payload) == (una, payload(M))
    # A partial ACK whose value has wrapped past zero.
    feed(conn, seg(RCV, seq_add(una, 3 * M)), 1.3)
    [hole] = sent(conn, 1.3)
    assert hole.seq == seq_add(una, 3 * M) == 4138


@pytest.mark.parametrize("kind", ["window-change", "data"])
def test_established_ack_that_is_not_duplicate_does_not_count_rfc5681_2(kind: str) -> None:
    """RFC 5681 2 (DUPLICATE ACKNOWLEDGMENT): the ACK must carry no data and leave
    the advertised window unchanged."""
    conn = flight_of_ten()
    for i in range(3):
        if kind == "data":
            feed(conn, seg(RCV + i, SND, payload=b"x"), 1.2 + i / 100)
        else:
            feed(conn, seg(RCV, SND, window=60000 + i), 1.2 + i / 100)
    assert data(SND) not in sent(conn, 1.3)
    assert conn.stats.fast_retransmits == 0


def test_established_limited_transmit_new_segment_per_early_dupack_rfc3042() -> None:
    """RFC 3042 2: the first and second duplicate ACKs each send one new segment,
    if the receiver's window allows; cwnd itself is unchanged."""
    conn = established(congestion_control="newreno", peer_sack=False)
    conn.send(payload(20 * M))
    sent(conn, 1.0)
    assert dupack(conn, 1.2) == [data(SND + 10 * M)]
    assert dupack(conn, 1.21) == [data(SND + 11 * M)]
    assert conn.cc.cwnd == 10 * M
    assert dupack(conn, 1.22) == [data(SND)]


def test_established_limited_transmit_not_in_ssthresh_rfc5681_3_2() -> None:
    """RFC 5681 3.2 step 2: "When [RFC3042] is in use, additional data sent in
    limited transmit MUST NOT be included in this calculation"."""
    conn = established(congestion_control="newreno", peer_sack=False)
    conn.send(payload(20 * M))
    sent(conn, 1.0)
    dupack(conn, 1.2)
    dupack(conn, 1.21)
    dupack(conn, 1.22)
    assert conn.cc.ssthresh == 10 * M // 2
    assert conn.cc.cwnd == 10 * M // 2 + 3 * M


def test_established_dupacks_in_recovery_inflate_and_send_new_data_rfc5681_3_2() -> None:
    """RFC 5681 3.2 steps 4-5: each further duplicate ACK adds one SMSS to cwnd;
    when cwnd allows, one previously unsent segment goes out."""
    conn = flight_of_ten()
    for at in (1.2, 1.21, 1.22):
        dupack(conn, at)
    conn.send(payload(5 * M, 10 * M))
    assert sent(conn, 1.23) == []  # cwnd 11040 < 13800 in flight
    assert dupack(conn, 1.24) == []
    assert conn.cc.cwnd == 6900 + 4 * M
    assert dupack(conn, 1.25) == []
    assert dupack(conn, 1.26) == [data(SND + 10 * M)]
    assert conn.cc.cwnd == 6900 + 6 * M


def test_established_partial_ack_retransmits_next_hole_rfc6582_3_2() -> None:
    """RFC 6582 3.2 step 3 (partial ACK): retransmit the first unacknowledged
    segment at once, deflate cwnd by the bytes acked and add back one SMSS, stay
    in fast recovery, restart the retransmission timer."""
    conn = flight_of_ten()
    for at in (1.2, 1.21, 1.22):
        dupack(conn, at)
    cwnd = conn.cc.cwnd
    feed(conn, seg(RCV, SND + 4 * M), 1.4)
    assert sent(conn, 1.4) == [data(SND + 4 * M)]
    assert conn.cc.cwnd == cwnd - 4 * M + M
    assert conn.cc.ssthresh == 6900
    assert conn.next_timer() == 1.4 + RTO
    # Another duplicate ACK still inflates (still in recovery), no new fast retransmit.
    assert dupack(conn, 1.45, SND + 4 * M) == []
    assert conn.cc.cwnd == cwnd - 4 * M + 2 * M
    assert conn.stats.fast_retransmits == 1


def test_established_full_ack_deflates_cwnd_rfc6582_3_2() -> None:
    """RFC 6582 3.2 step 3 (full ACK, through "recover" = the highest sequence sent
    when recovery began), option 2: cwnd = ssthresh, with the one new segment
    sent during recovery still in flight."""
    conn = flight_of_ten()
    for at in (1.2, 1.21, 1.22):
        dupack(conn, at)
    conn.send(payload(5 * M, 10 * M))
    for at in (1.24, 1.25, 1.26):
        dupack(conn, at)
    feed(conn, seg(RCV, SND + 10 * M), 1.5)
    assert conn.cc.cwnd == conn.cc.ssthresh == 6900
    # cwnd 6900 with 1380 in flight: the other four (5520 bytes fit), the last
    # one emptying the buffer (PSH).
    more = [data(SND + k * M) for k in range(11, 14)] + [data(SND + 14 * M, flags=ACK | PSH)]
    assert sent(conn, 1.5) == more


def test_established_full_ack_with_empty_flight_keeps_ssthresh_rfc6582_3_2() -> None:
    """Nothing in flight at the full ACK: the window is still ssthresh, not two
    segments (option 1 of RFC 6582 3.2 step 3 would restart from there)."""
    conn = flight_of_ten()
    for at in (1.2, 1.21, 1.22):
        dupack(conn, at)
    feed(conn, seg(RCV, SND + 10 * M), 1.5)
    assert conn.cc.cwnd == 6900
    conn.send(payload(5 * M, 10 * M))
    assert sent(conn, 1.5) == [data(SND + k * M) for k in range(10, 14)] + [
        data(SND + 14 * M, flags=ACK | PSH)
    ]


def test_established_timeout_collapses_cwnd_to_one_segment_rfc5681_3_1() -> None:
    """RFC 5681 3.1: after an RTO, ssthresh = max(FlightSize/2, 2*SMSS) and
    cwnd = 1 SMSS: only the segment at SND.UNA goes again; its ACK doubles the
    window (slow start), and the next two segments follow (go-back-N)."""
    conn = flight_of_ten()
    assert fire(conn, 1.0 + RTO) == [data(SND)]
    assert (conn.cc.cwnd, conn.cc.ssthresh) == (M, 6900)
    feed(conn, seg(RCV, SND + M), 1.5)
    assert conn.cc.cwnd == 2 * M
    assert sent(conn, 1.5) == [data(SND + M), data(SND + 2 * M)]


def test_established_no_fast_retransmit_for_dupacks_below_recover_rfc6582_3_2() -> None:
    """RFC 6582 3.2 step 2: after a timeout "recover" is SND.MAX; duplicate ACKs
    that do not cover more than recover do not start another fast retransmit and
    do not touch ssthresh."""
    conn = flight_of_ten()
    fire(conn, 1.0 + RTO)
    feed(conn, seg(RCV, SND + M), 1.5)
    sent(conn, 1.5)
    ssthresh = conn.cc.ssthresh
    for i in range(3):
        assert data(SND + M) not in dupack(conn, 1.6 + i / 100, SND + M)
    assert conn.cc.ssthresh == ssthresh
    assert conn.stats.fast_retransmits == 0


def test_established_congestion_avoidance_one_mss_per_cwnd_acked_rfc5681_3_1() -> None:
    """RFC 5681 (3) with RFC 3465 2.1: with cwnd >= ssthresh, cwnd grows by one
    SMSS once a whole cwnd of bytes (here ten segments) has been acknowledged."""
    conn = established(congestion_control="newreno", peer_sack=False)
    conn.cc.ssthresh = conn.cc.cwnd
    conn.send(payload(40 * M))
    sent(conn, 1.0)
    trace = []
    for i in range(1, 11):
        feed(conn, seg(RCV, SND + i * M), 1.2 + i / 100)
        sent(conn, 1.2 + i / 100)
        trace.append(conn.cc.cwnd)
    assert trace == [10 * M] * 9 + [11 * M]
