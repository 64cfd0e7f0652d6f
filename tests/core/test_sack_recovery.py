"""Loss recovery with SACK negotiated (the ``established()`` default): RFC 6675
(conservative SACK-based recovery: pipe, NextSeg, one reduction per episode),
RFC 8985 (RACK loss detection by time, TLP tail loss probes), RFC 3042 (limited
transmit), and the receiver's side of RFC 2018 (which blocks an ACK reports).

Sender tests use segment numbers: segment i is the MSS-sized piece of the stream
at SND + i*M, and the peer's SACK blocks are written as (first, end) segment
numbers.  The engine has one RTT sample from the handshake (SRTT 0.125 s,
min_RTT 0.125 s, RTO 0.375 s) unless a test builds it with another ``rtt``; all
times that deadlines derive from are binary fractions, so they compare exactly.
Tests that check the RFC 6675 formula FlightSize/2 use NewReno; the others keep
the default CUBIC.
"""

from __future__ import annotations

from typing import Any

import pytest
from engine_helpers import (
    ISN,
    OUR_WINDOW,
    PEER_ISN,
    established,
    feed,
    fire,
    payload,
    seg,
    sent,
    syn_ack,
    syn_sent,
)

from rudp.core.congestion.cubic import BETA_CUBIC
from rudp.core.connection import MIN_PTO, PTO_SLACK, WORST_CASE_DELAYED_ACK, Connection
from rudp.core.segment import ACK, PSH, Segment
from rudp.core.state import State

SND = ISN + 1
RCV = PEER_ISN + 1
M = 1380  # our MSS against the default peer (MSS 1460, no timestamps)
SRTT = 0.125  # after the handshake sample
MIN_RTT = 0.125
REO_WND = MIN_RTT / 4  # RFC 8985 6.2 step 4, without reordering seen
RTO = 0.375


def data(i: int, *, psh: bool = False, size: int = M) -> Segment:
    """Segment i exactly as we send it (PSH on the last bytes of the buffer)."""
    flags = ACK | (PSH if psh else 0)
    return seg(SND + i * M, RCV, flags, window=OUR_WINDOW, payload=payload(size, i * M))


def sack(conn: Connection, at: float, *blocks: tuple[int, int], ack: int = 0) -> list[Segment]:
    """The peer's ACK of segments below ``ack``, with SACK blocks in segment numbers;
    returns what we send in answer."""
    edges = tuple((SND + a * M, SND + b * M) for a, b in blocks)
    feed(conn, seg(RCV, SND + ack * M, sack_blocks=edges), at)
    return sent(conn, at)


def flight(count: int, *, queued: int | None = None, **kwargs: Any) -> Connection:
    """ESTABLISHED with ``queued`` segments of data (default ``count``) handed to
    send() at t=1.0, of which the first ``count`` (the initial window allows 10)
    went out at once."""
    conn = established(**kwargs)
    conn.send(payload((queued or count) * M))
    out = sent(conn, 1.0)
    assert [s.seq for s in out] == [SND + i * M for i in range(count)]
    return conn


def three_sack_dupacks(conn: Connection) -> list[Segment]:
    """Segment 0 lost, 1-3 arrive: three duplicate ACKs at 1.2, 1.21, 1.22."""
    assert sack(conn, 1.2, (1, 2)) == []
    assert sack(conn, 1.21, (1, 3)) == []
    return sack(conn, 1.22, (1, 4))


# ================================================================ fast recovery
def test_three_sack_dupacks_retransmit_first_hole_rfc6675_5_step_4() -> None:
    """RFC 6675 5: the third duplicate ACK starts loss recovery: step 4.2 sets
    ssthresh = cwnd = FlightSize / 2 (no 3*SMSS inflation: pipe does that work),
    step 4.3 retransmits the first segment presumed lost, and step 4.4 sends more
    only while cwnd - pipe >= 1 SMSS (here pipe = 10 - 3 SACKed = 7 segments)."""
    conn = flight(10, congestion_control="newreno")
    assert three_sack_dupacks(conn) == [data(0)]
    assert conn.cc.ssthresh == conn.cc.cwnd == 10 * M // 2
    assert conn.bytes_in_flight == 7 * M
    assert conn.stats.fast_retransmits == 1
    assert conn.tlp_at is None  # RFC 8985 7.2: no probe during fast recovery
    # As Linux: resending the oldest segment restarts the RTO (RFC 6298 5.1 leaves
    # it running otherwise, and it could expire before the repair is acknowledged).
    assert conn.rto_at == 1.22 + RTO


def test_multiple_holes_repaired_in_one_episode_rfc6675_4_nextseg_rules_1_2() -> None:
    """Segments 0, 3 and 6 lost out of ten.  RFC 6675: each hole is resent once it
    is known lost and cwnd - pipe >= 1 SMSS (NextSeg rule 1, before any new data);
    new data goes when no hole qualifies (rule 2).  Segment 0 is lost by IsLost (3
    SACKed segments above it); once in recovery on a path not seen to reorder,
    RACK's reordering window is 0 (RFC 8985 6.2 step 4), so 3 and 6 are lost as
    soon as segment 7, sent with them, is delivered.  One recovery episode, one
    window reduction (RFC 6675 5 / RFC 6582: recovery lasts until RecoveryPoint =
    10 segments is acknowledged)."""
    conn = flight(10, congestion_control="newreno")
    assert sack(conn, 1.2, (1, 2)) == []
    assert sack(conn, 1.21, (1, 3)) == []
    # Segment 4 arrives: three SACKed segments above segment 0.
    assert sack(conn, 1.22, (4, 5), (1, 3)) == [data(0)]
    assert conn.cc.cwnd == conn.cc.ssthresh == 5 * M
    assert sack(conn, 1.23, (4, 6), (1, 3)) == []  # pipe 6 > cwnd 5
    # Segment 7: 3 and 6 lost (RACK); pipe 10 - 5 SACKed - 2 lost = 3 segments.
    assert sack(conn, 1.24, (7, 8), (4, 6), (1, 3)) == [data(3), data(6)]
    conn.send(payload(2 * M, 10 * M))
    # Segment 8: pipe 4 (0, 3, 6 resent, 9): room for one new segment.
    assert sack(conn, 1.25, (7, 9), (4, 6), (1, 3)) == [data(10)]
    assert sack(conn, 1.26, (7, 10), (4, 6), (1, 3)) == [data(11, psh=True)]
    assert conn.tlp_at is None
    # The retransmissions, then the new data, arrive in the order they were sent:
    # a partial ACK, a full one (recovery ends at 10 segments), then the rest.
    assert sack(conn, 1.345, (4, 6), (7, 10), ack=3) == []
    assert sack(conn, 1.365, ack=10) == []
    assert not conn._in_recovery
    assert sack(conn, 1.385, ack=12) == []
    assert conn.stats.fast_retransmits == 1
    assert conn.cc.ssthresh == 5 * M  # reduced once, on entry
    assert conn.stats.retransmitted_segments == 3
    assert conn.next_timer() is None


def test_full_ack_ends_recovery_rfc6675_5_rfc6582_3_2() -> None:
    """RFC 6675 5: an ACK covering RecoveryPoint ends recovery, cwnd = ssthresh
    (as RFC 6675 and RFC 6582 3.2 step 3 option 2, and Linux).  Later duplicate
    ACKs may start a new episode."""
    conn = flight(10, congestion_control="newreno")
    assert three_sack_dupacks(conn) == [data(0)]
    conn.send(payload(3 * M, 10 * M))
    # Segments 4-8 arrive: pipe falls to 2 segments, and 3 new ones fit cwnd = 5.
    assert sack(conn, 1.23, (1, 9)) == [data(10), data(11), data(12, psh=True)]
    # The retransmission arrives: the ACK covers RecoveryPoint (segment 10).
    assert sack(conn, 1.35, ack=10) == []
    assert not conn._in_recovery
    assert conn.cc.ssthresh == 5 * M
    assert conn.cc.cwnd == 5 * M
    # Once the ACK is beyond RecoveryPoint, a new loss starts a second episode
    # (RFC 6675 5: "the cumulative acknowledgment point is beyond the last value
    # of RecoveryPoint"): segment 13 goes, 11 is lost and RACK sees it at once
    # (sent at 1.23, before the delivered 13, longer ago than RACK.rtt + reo_wnd).
    conn.send(payload(M, 13 * M))
    assert sent(conn, 1.35) == [data(13, psh=True)]
    assert sack(conn, 1.4, (12, 14), ack=11) == [data(11)]
    assert conn.stats.fast_retransmits == 2
    assert conn.cc.ssthresh == 2 * M  # max(FlightSize / 2, 2 * SMSS), FlightSize 3


def test_further_dupacks_do_not_inflate_cwnd_with_sack_rfc6675_5() -> None:
    """RFC 6675 replaces RFC 5681's per-dupack inflation by the pipe estimate:
    cwnd stays at ssthresh through the episode."""
    conn = flight(10, congestion_control="newreno")
    three_sack_dupacks(conn)
    for i, at in enumerate((1.23, 1.24, 1.25)):
        sack(conn, at, (1, 5 + i))
        assert conn.cc.cwnd == 5 * M


# ========================================================================= RACK
def rack_flight() -> Connection:
    """Three segments at 1.0; segment 0 ACKed at 1.125 (RTT 0.125: SRTT stays
    0.125); segment 1 lost; segment 2 SACKed at 1.15625 (RACK.rtt 0.15625)."""
    conn = flight(3, congestion_control="newreno")
    assert sack(conn, 1.125, ack=1) == []
    assert sack(conn, 1.15625, (2, 3), ack=1) == []
    return conn


def test_rack_single_loss_resent_when_reordering_timer_fires_rfc8985_6_2_6_3() -> None:
    """RFC 8985 6.2 step 5 / 6.3: one SACKed segment (far below DupThresh) is
    enough: segment 1, sent before the delivered segment 2, is lost at
    xmit_ts + RACK.rtt + RACK.reo_wnd = 1.0 + 0.15625 + min_RTT/4; the reordering
    timer fires then, and the hole is resent as recovery starts."""
    conn = rack_flight()
    deadline = 1.0 + 0.15625 + REO_WND
    assert conn.rack_at == deadline == 1.1875
    assert conn.next_timer() == deadline
    assert fire(conn, deadline - 2**-20) == []
    assert fire(conn, deadline) == [data(1)]
    assert conn.stats.fast_retransmits == 1
    assert conn.cc.cwnd == conn.cc.ssthresh == 2 * M  # max(FlightSize/2, 2*SMSS)
    assert conn.rack_at is None and conn.tlp_at is None
    assert sack(conn, 1.3125, ack=3) == []
    assert conn.next_timer() is None


def test_rack_lost_retransmission_detected_and_resent_rfc8985_6_2() -> None:
    """RFC 8985 6.2: RACK judges a retransmission by its own send time.  The
    retransmission of segment 1 (at 1.1875) is lost; segment 3, sent with it,
    is SACKed at 1.3125: the retransmission is lost by 1.1875 + RACK.rtt
    (0.125) + reo_wnd at the latest, and is resent then -- with no second
    window reduction (still the same episode)."""
    conn = rack_flight()
    conn.send(payload(2 * M, 3 * M))
    assert fire(conn, 1.1875) == [data(1), data(3)]  # cwnd 2: pipe 1 + 1 new
    ssthresh = conn.cc.ssthresh
    answer = sack(conn, 1.3125, (2, 4), ack=1)
    assert data(4, psh=True) in answer
    latest = 1.1875 + 0.125 + REO_WND
    if data(1) not in answer:
        assert conn.rack_at is not None and conn.rack_at <= latest
        answer += fire(conn, conn.rack_at)
    assert answer.count(data(1)) == 1
    assert conn.stats.fast_retransmits == 1
    assert conn.cc.ssthresh == ssthresh


def test_rack_reo_wnd_is_zero_in_recovery_without_reordering_rfc8985_6_2_step_4() -> None:
    """RFC 8985 6.2 step 4 (RACK_update_reo_wnd): "If RACK.reordering_seen is
    FALSE: If in fast or RTO recovery: Return 0".  So the SACK at 1.3125 proves
    the retransmission sent at 1.1875 lost at once (1.1875 + RACK.rtt 0.125 =
    now): it goes again at 1.3125, before the new segment 4, and no reordering
    timer is left."""
    conn = rack_flight()
    conn.send(payload(2 * M, 3 * M))
    assert fire(conn, 1.1875) == [data(1), data(3)]
    assert sack(conn, 1.3125, (2, 4), ack=1) == [data(1), data(4, psh=True)]
    assert conn.rack_at is None


def steady_path() -> Connection:
    """ESTABLISHED over a path whose RTT is exactly 0.25 s: twenty one-segment
    exchanges (segments 0-19) have driven RTTVAR almost to zero, so RTO =
    SRTT + max(4*RTTVAR, 200 ms) -- the bound on the variance term, as Linux."""
    conn = established(rtt=0.25)
    for i in range(20):
        conn.send(payload(M, i * M))
        assert sent(conn, 1.0 + i) == [data(i, psh=True)]
        assert sack(conn, 1.25 + i, ack=i + 1) == []
    assert conn.rtt.rto == pytest.approx(0.45)
    return conn


def test_rack_timer_replaces_rto_no_spurious_timeout_rfc8985_8() -> None:
    """RFC 8985 8: "When arming a RACK reordering timer or TLP PTO timer, the
    sender SHOULD cancel any other pending timers"; the RTO runs again from the
    retransmission (RFC 6298 5.1).  Segment 21 of 20-22 is lost; the SACK of 22
    at 21.25 arms the reordering timer for 21.0 + 0.25 + min_RTT/4 = 21.3125;
    the retransmission is ACKed one RTT later, at 21.5625.  No timeout may fire
    in between (the engine's RTO, armed at 21.25 for 21.5016, does: cwnd
    collapses to one segment and segment 21 goes a third time)."""
    conn = steady_path()
    conn.send(payload(3 * M, 20 * M))
    assert sent(conn, 21.0) == [data(20), data(21), data(22, psh=True)]
    assert sack(conn, 21.25, (22, 23), ack=21) == []
    assert conn.next_timer() == conn.rack_at == 21.3125
    assert fire(conn, 21.3125) == [data(21)]
    due = conn.next_timer()
    assert due is not None and due > 21.5625
    assert sack(conn, 21.5625, ack=23) == []
    assert conn.stats.timeouts == 0


# ==================================================================== tail probes
# RFC 8985 7.2 PTO for more than one segment in flight, with Linux's slack and floor:
# flights sent at 1.0 over a 0.5 s SRTT are probed here.
PROBE_AT = 1.0 + max(2 * 0.5 + PTO_SLACK, MIN_PTO)


def test_tlp_fires_at_two_srtt_and_resends_last_segment_rfc8985_7_2_7_3() -> None:
    """RFC 8985 7.2: PTO = 2*SRTT after the last transmission (SRTT 0.5 here, so
    the RTO, 1.5, is later), plus Linux's 2 ms slack; 7.3: with nothing new to
    send, the probe is the last segment again; the RTO is then re-armed from it."""
    conn = flight(3, rtt=0.5)
    assert conn.tlp_at == PROBE_AT
    assert fire(conn, PROBE_AT - 2**-20) == []
    assert fire(conn, PROBE_AT) == [data(2, psh=True)]
    assert conn.rto_at == PROBE_AT + conn.rtt.rto == PROBE_AT + 1.5
    assert conn.tlp_at is None
    assert fire(conn, 3.0) == []  # one probe only (RFC 8985 7.3)


def test_tlp_single_segment_adds_worst_case_delayed_ack_rfc8985_7_2() -> None:
    """RFC 8985 7.2: with one segment in flight, PTO += WCDelAckT (200 ms)."""
    conn = flight(1, rtt=0.5)
    probe_at = 1.0 + (2 * 0.5 + WORST_CASE_DELAYED_ACK)
    assert conn.tlp_at == probe_at
    assert fire(conn, probe_at - 2**-20) == []
    assert fire(conn, probe_at) == [data(0, psh=True)]
    assert conn.rto_at == probe_at + 1.5


def test_tlp_sends_new_data_if_waiting_and_window_allows_rfc8985_7_3() -> None:
    """RFC 8985 7.3: "If a previously unsent segment exists AND the receive window
    allows new data to be sent", the probe is that new segment (even beyond
    cwnd, which filled at ten segments)."""
    conn = flight(10, queued=12, rtt=0.5)
    assert fire(conn, PROBE_AT) == [data(10)]
    assert conn.rto_at == PROBE_AT + 1.5


def test_tlp_retransmission_acknowledged_reduces_window_once_rfc8985_7_4_2() -> None:
    """RFC 8985 7.4.2: an ACK covering a retransmitted probe, with no D-SACK
    saying the probe was a duplicate, means the probe repaired a loss: one
    congestion event: CUBIC reduces cwnd once (beta = 0.7; three segments in a
    ten-segment window are application-limited, so the ACK itself grew nothing,
    RFC 9438 4.6), and ACKs of a window-limited flight grow it again."""
    conn = flight(3, rtt=0.5)
    fire(conn, PROBE_AT)
    assert sack(conn, 2.5, ack=3) == []
    reduced = int(10 * M * BETA_CUBIC)
    assert conn.cc.cwnd == conn.cc.ssthresh == reduced
    conn.send(payload(10 * M, 3 * M))
    sent(conn, 2.5)
    sack(conn, 3.0, ack=8)
    assert conn.cc.cwnd > reduced
    assert conn.cc.ssthresh == reduced


def test_tlp_probe_reported_as_duplicate_keeps_window_rfc8985_7_4_2_rfc2883() -> None:
    """RFC 8985 7.4.2: the ACK that covers the probe carries a D-SACK for it
    (RFC 2883: the first block below the cumulative ACK): the original arrived
    too, nothing was lost, and the episode ends with no reduction."""
    conn = flight(3, rtt=0.5)
    assert fire(conn, PROBE_AT) == [data(2, psh=True)]
    cwnd = conn.cc.cwnd
    assert sack(conn, 2.5, (2, 3), ack=3) == []
    assert conn.stats.dsacks_received == 1
    assert conn.cc.cwnd == cwnd
    assert conn.cc.ssthresh > 2**40
    assert conn._tlp_high is None


def test_tlp_of_new_data_acknowledged_keeps_window_rfc8985_7_4_2() -> None:
    """RFC 8985 7.4.2: a probe of new data that is delivered repaired nothing:
    no reduction (slow start simply goes on: the 11 segments acked count, up to
    the L = 8 segments one ACK may add in HyStart++'s slow start, RFC 9406 4.2)."""
    conn = flight(10, queued=12, rtt=0.5)
    fire(conn, PROBE_AT)
    sack(conn, 2.5, ack=11)
    assert conn.cc.cwnd == 10 * M + 8 * M
    assert conn.cc.ssthresh > 2**40


def test_tlp_not_armed_in_fast_recovery_rfc8985_7_2() -> None:
    """RFC 8985 7.2: no probe "if it is already in fast recovery"; new data sent
    during recovery does not arm one either."""
    conn = flight(10, queued=20)
    assert conn.tlp_at == 1.0 + max(2 * 0.125 + PTO_SLACK, MIN_PTO)
    sack(conn, 1.2, (1, 2))
    sack(conn, 1.21, (1, 3))
    sack(conn, 1.22, (1, 4))
    assert conn._in_recovery
    assert conn.tlp_at is None
    for i, at in enumerate((1.23, 1.24, 1.25)):
        sack(conn, at, (1, 5 + i))
        assert conn.tlp_at is None


def test_tlp_restarted_by_ack_and_clamped_to_rto_rfc8985_7_2() -> None:
    """RFC 8985 7.2: the PTO restarts "upon receiving an ACK that cumulatively
    acknowledges new data", and "If Now() + PTO > TCP_RTO_expiration(): PTO =
    TCP_RTO_expiration() - Now()".  Three segments at 1.0 (probe due at 1.25);
    segments 0-1 ACKed at 1.125, so one segment is left: PTO = 2*SRTT + 0.2 =
    0.45, clamped to the RTO (1.125 + 0.325).  The probe must not go at 1.25,
    and at 1.45 it is a probe (the last segment, no collapse of cwnd)."""
    conn = flight(3)
    assert sack(conn, 1.125, ack=2) == []
    rto_at = 1.125 + conn.rtt.rto
    assert rto_at == 1.125 + 0.325
    assert conn.tlp_at == rto_at
    assert fire(conn, 1.25) == []
    cwnd = conn.cc.cwnd
    assert fire(conn, rto_at) == [data(2, psh=True)]
    assert conn.cc.cwnd == cwnd
    assert conn.stats.timeouts == 0


def test_tlp_without_rtt_sample_uses_one_second_pto_rfc8985_7_2() -> None:
    """RFC 8985 7.2 TLP_calc_PTO: "If SRTT is available: PTO = 2 * SRTT ...
    Else: PTO = 1 sec", clamped to the RTO.  Our SYN was retransmitted, so the
    handshake gave no RTT sample (Karn) and the RTO is 3 s (RFC 6298 5.7): the
    first data segment is probed 1 s after it left."""
    conn = syn_sent()
    assert [s.seq for s in fire(conn, 1.0)] == [ISN]
    feed(conn, syn_ack(PEER_ISN, SND), 1.125)
    sent(conn, 1.125)
    assert conn.state is State.ESTABLISHED and conn.rtt.srtt is None
    conn.send(payload(M))
    assert sent(conn, 1.25) == [data(0, psh=True)]
    assert conn.rto_at == 1.25 + 3.0
    assert conn.tlp_at == 2.25
    assert fire(conn, 2.25) == [data(0, psh=True)]


# ==================================================================== timeouts
def test_rto_keeps_sacked_segments_and_resends_only_the_rest_rfc6675_5_1() -> None:
    """RFC 6675 5.1: after an RTO during recovery, everything not SACKed is
    presumed lost and resent oldest first as cwnd (1 SMSS, RFC 5681 3.1) allows;
    SACKed segments are not resent.  Here segments 0 and 5 and both of their
    fast retransmissions are lost; RACK cannot see the retransmissions as lost
    (nothing sent after them is delivered), so the RTO, restarted by the fast
    retransmission at 1.22, fires."""
    conn = flight(10, congestion_control="newreno")
    assert three_sack_dupacks(conn) == [data(0)]
    sack(conn, 1.23, (1, 5))
    # Segment 6 delivered: 5, sent with it, is lost at once (RACK, reo_wnd 0 in
    # recovery, RFC 8985 6.2 step 4).
    assert sack(conn, 1.24, (6, 7), (1, 5)) == [data(5)]
    assert sack(conn, 1.25, (6, 8), (1, 5)) == []
    assert sack(conn, 1.26, (6, 9), (1, 5)) == []
    assert sack(conn, 1.27, (6, 10), (1, 5)) == []
    assert conn.next_timer() == conn.rto_at == 1.22 + RTO
    assert fire(conn, 1.22 + RTO) == [data(0)]
    assert (conn.cc.cwnd, conn.cc.ssthresh) == (M, 5 * M)
    assert conn.bytes_in_flight == M  # 8 SACKed, 1 lost, 1 resent
    # Segment 0 arrives: the ACK jumps to 5; slow start (+2 SMSS): only segment 5
    # is left to resend.
    assert sack(conn, 1.5, (6, 10), ack=5) == [data(5)]
    assert sack(conn, 1.625, ack=10) == []
    assert conn.stats.retransmitted_segments == 4
    assert conn.next_timer() is None


# ============================================================ SACK validation
def test_sack_blocks_outside_una_to_max_are_ignored_rfc2018_rfc6675_4() -> None:
    """Blocks below SND.UNA, beyond SND.MAX, or straddling SND.MAX say nothing
    about data in flight: the scoreboard ignores them (no SACKed bytes, no RACK
    timer); the ACK itself is still processed."""
    conn = flight(10)
    assert sack(conn, 1.125, ack=2) == []
    for blocks in (((0, 1),), ((10, 11),), ((9, 11),), ((12, 20), (0, 2))):
        sack(conn, 1.2, *blocks, ack=2)
        assert conn.bytes_in_flight == 8 * M
        assert conn._scoreboard.sacked_bytes == 0
        assert conn.rack_at is None


def test_sack_blocks_ignored_when_not_negotiated_rfc2018_2() -> None:
    """RFC 2018 2: without SACK-permitted in the SYNs, the option is not used."""
    conn = flight(10, peer_sack=False)
    sack(conn, 1.2, (1, 5))
    assert conn._scoreboard.sacked_bytes == 0
    assert conn.bytes_in_flight == 10 * M


def test_limited_transmit_with_sack_one_segment_per_dupack_rfc3042_2() -> None:
    """RFC 3042 2: on each of the first two duplicate ACKs one new segment may go,
    as long as "the amount of outstanding data would remain less than or equal
    to the congestion window plus 2*SMSS" -- so 12 segments, not 14."""
    conn = flight(10, queued=20)
    assert sack(conn, 1.2, (1, 2)) == [data(10)]
    assert sack(conn, 1.21, (1, 3)) == [data(11)]
    assert conn._scoreboard.outstanding <= conn.cc.cwnd + 2 * M


# ================================================================ receiver side
AckView = list[tuple[int, tuple[tuple[int, int], ...]]]


def ack_blocks(out: list[Segment]) -> AckView:
    """(ACK, SACK blocks) of each segment, relative to RCV, in units of 100 bytes."""
    return [
        (
            (s.ack - RCV) // 100,
            tuple(((left - RCV) // 100, (right - RCV) // 100) for left, right in s.sack_blocks),
        )
        for s in out
    ]


def arrive(conn: Connection, at: float, first: int, count: int = 1, **options: Any) -> AckView:
    """The peer's segment(s) [first, first+count) x 100 bytes arrive at ``at``."""
    piece = seg(RCV + first * 100, SND, payload=payload(count * 100, first * 100), **options)
    feed(conn, piece, at)
    return ack_blocks(sent(conn, at))


def test_receiver_first_block_is_the_newest_arrival_rfc2018_4() -> None:
    """RFC 2018 4: the first block "MUST specify the contiguous block of data
    containing the segment which triggered this ACK" -- including when that
    segment extends an existing block (blocks are merged ranges)."""
    conn = established()
    assert arrive(conn, 1.0, 10) == [(0, ((10, 11),))]
    assert arrive(conn, 1.01, 4) == [(0, ((4, 5), (10, 11)))]
    assert arrive(conn, 1.02, 11) == [(0, ((10, 12), (4, 5)))]
    assert arrive(conn, 1.03, 3) == [(0, ((3, 5), (10, 12)))]


@pytest.mark.parametrize(("timestamps", "limit"), [(False, 4), (True, 3)])
def test_receiver_reports_at_most_four_blocks_or_three_with_timestamps_rfc2018_3(
    timestamps: bool, limit: int
) -> None:
    """RFC 2018 3: 40 option bytes hold 4 blocks, or 3 beside the 12-byte
    timestamps option.  Each block reported is a range we hold, none repeated."""
    conn = established(peer_ts=timestamps)
    held: set[tuple[int, int]] = set()
    for i, first in enumerate((2, 10, 6, 4, 8, 12)):
        options = {"ts_val": 2 + i, "ts_ecr": 0} if timestamps else {}
        [(ack, blocks)] = arrive(conn, 1.0 + i / 64, first, **options)
        held.add((first, first + 1))
        assert ack == 0
        assert blocks[0] == (first, first + 1)
        assert len(blocks) == min(len(held), limit)
        assert len(set(blocks)) == len(blocks) and set(blocks) <= held


def test_receiver_blocks_shrink_as_gaps_fill_and_vanish_rfc2018_4() -> None:
    """Blocks report only data above the cumulative ACK; once every gap is
    filled the ACK carries no SACK option at all (RFC 2018 4: the receiver
    reports non-contiguous blocks only)."""
    conn = established()
    arrive(conn, 1.0, 2)
    arrive(conn, 1.01, 4)
    assert arrive(conn, 1.02, 0, 2) == [(3, ((4, 5),))]
    assert arrive(conn, 1.03, 3) == [(5, ())]


def test_receiver_repeats_the_most_recently_reported_blocks_rfc2018_4() -> None:
    """RFC 2018 4: "The SACK option SHOULD be filled out by repeating the most
    recently reported SACK blocks (based on first SACK blocks in previous SACK
    options)" -- so with five separate blocks and room for four, the oldest
    news ([10, 11), reported first) is the one left out."""
    conn = established()
    arrive(conn, 1.0, 10)
    arrive(conn, 1.01, 2)
    arrive(conn, 1.02, 6)
    assert arrive(conn, 1.03, 4) == [(0, ((4, 5), (6, 7), (2, 3), (10, 11)))]
    assert arrive(conn, 1.04, 8) == [(0, ((8, 9), (4, 5), (6, 7), (2, 3)))]


def test_tlp_probe_covered_by_an_ack_before_it_goes_is_not_sent_rfc8985_7_3() -> None:
    """RFC 8985 7.3: the probe resends the last segment -- unless an ACK covering it
    arrives between the probe timer and the transmission: then nothing is resent
    (the probe would repeat data the peer already holds)."""
    conn = flight(3, rtt=0.5)
    conn.handle_timer(PROBE_AT)  # the probe is decided...
    feed(conn, seg(RCV, SND + 3 * M, ACK), PROBE_AT)  # ...and everything is ACKed
    assert sent(conn, PROBE_AT) == []
    assert conn.stats.retransmitted_segments == 0
