"""The retransmission timer (RFC 6298): the estimator's formulas on their own, then
the engine's timer at exact times (backoff, Karn's rule, timestamps of RFC 7323,
the RFC 5482 user timeout).

All sample values are binary fractions so the expected floats are exact.
"""

from __future__ import annotations

import random

import pytest
from engine_helpers import (
    ISN,
    OUR_WINDOW,
    PEER_ISN,
    RTO_AFTER_HANDSHAKE,
    established,
    events,
    feed,
    fire,
    payload,
    seg,
    sent,
    syn_ack,
    syn_sent,
)

from rudp.core.config import Config
from rudp.core.connection import Connection
from rudp.core.events import ConnectionTerminated
from rudp.core.rtt import ALPHA, BETA, G, K, RttEstimator
from rudp.core.segment import ACK, PSH, SYN
from rudp.core.seq import seq_add
from rudp.core.state import State

SND = ISN + 1
RCV = PEER_ISN + 1
RTO = RTO_AFTER_HANDSHAKE


def estimator(initial: float = 1.0, min_rto: float = 0.2, max_rto: float = 60.0) -> RttEstimator:
    return RttEstimator(initial, min_rto, max_rto)


def reference(samples: list[float], min_rto: float = 0.2) -> list[tuple[float, float, float]]:
    """RFC 6298 section 2 written out: (SRTT, RTTVAR, RTO) after each sample."""
    out = []
    srtt = rttvar = 0.0
    for i, r in enumerate(samples):
        if i == 0:
            srtt, rttvar = r, r / 2  # (2.2)
        else:
            rttvar = (1 - 1 / 4) * rttvar + 1 / 4 * abs(srtt - r)  # (2.3), old SRTT
            srtt = (1 - 1 / 8) * srtt + 1 / 8 * r
        # (2.3) with the (2.4) bound on the variance term, as Linux applies it.
        out.append((srtt, rttvar, srtt + max(0.001, 4 * rttvar, min_rto)))
    return out


# ============================================================ estimator
def test_rfc6298_constants() -> None:
    """RFC 6298 (2.3): alpha = 1/8, beta = 1/4, K = 4; G is our clock granularity."""
    assert (ALPHA, BETA, K) == (1 / 8, 1 / 4, 4)
    assert G == 0.001


@pytest.mark.parametrize("initial", [1.0, 2.5])
def test_rfc6298_2_1_rto_before_any_sample_is_initial(initial: float) -> None:
    rtt = estimator(initial)
    assert rtt.rto == initial
    assert rtt.srtt is None
    assert rtt.samples == 0


def test_rfc6298_2_2_first_sample() -> None:
    """RFC 6298 (2.2): SRTT <- R, RTTVAR <- R/2, RTO <- SRTT + max(G, K*RTTVAR)."""
    rtt = estimator()
    rtt.on_sample(0.5)
    assert (rtt.srtt, rtt.rttvar, rtt.rto) == (0.5, 0.25, 1.5)
    assert rtt.samples == 1


def test_rfc6298_2_3_subsequent_samples_use_old_srtt_for_rttvar() -> None:
    """RFC 6298 (2.3): RTTVAR <- 3/4 RTTVAR + 1/4 |SRTT - R'| with the SRTT from
    before this sample, then SRTT <- 7/8 SRTT + 1/8 R'."""
    rtt = estimator()
    trace = []
    for r in (0.5, 0.25, 1.0):
        rtt.on_sample(r)
        trace.append((rtt.srtt, rtt.rttvar, rtt.rto))
    assert trace == [
        (0.5, 0.25, 1.5),
        (0.46875, 0.25, 1.46875),
        (0.53515625, 0.3203125, 1.81640625),
    ]


def test_rfc6298_2_estimator_matches_reference_on_a_long_trace() -> None:
    samples = [0.25, 0.125, 0.75, 0.0625, 2.0, 0.5, 0.5, 0.5, 0.5, 0.03125]
    rtt = estimator()
    trace: list[float | None] = []
    for r in samples:
        rtt.on_sample(r)
        trace += [rtt.srtt, rtt.rttvar, rtt.rto]
    expected = [value for triple in reference(samples) for value in triple]
    assert trace == pytest.approx(expected, rel=1e-12)


def test_rfc6298_2_3_clock_granularity_bounds_the_variance_term() -> None:
    """RFC 6298 (2.3): max(G, K*RTTVAR): with no variance the RTO is SRTT + G."""
    rtt = estimator(min_rto=0.0001)
    rtt.on_sample(0.0)
    assert rtt.rto == G


def test_rfc6298_2_4_rto_floored_at_min_rto() -> None:
    """RFC 6298 (2.4): a computed RTO below the minimum is rounded up (200 ms here,
    as Linux, rather than the RFC's 1 s) -- and, as Linux does, the bound applies to
    the variance term: RTO = SRTT + max(G, 4*RTTVAR, min_rto) >= min_rto."""
    rtt = estimator()
    rtt.on_sample(0.015625)
    assert rtt.rto == 0.015625 + 0.2


def test_rfc6298_2_5_rto_capped_at_max_rto() -> None:
    rtt = estimator()
    rtt.on_sample(100.0)
    assert rtt.rto == 60.0


def test_rfc6298_5_5_backoff_doubles_up_to_max_rto() -> None:
    """RFC 6298 (5.5): RTO <- RTO * 2 on each expiry, (2.5) within the maximum."""
    rtt = estimator()
    trace = [rtt.rto]
    for _ in range(8):
        rtt.on_timeout()
        trace.append(rtt.rto)
    assert trace == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]


def test_rfc6298_5_new_sample_collapses_backoff() -> None:
    """RFC 6298 section 5 note: a new measurement after backing off is computed as
    in section 2, "collapsing" the RTO."""
    rtt = estimator()
    rtt.on_sample(0.125)
    assert rtt.rto == 0.375
    rtt.on_timeout()
    rtt.on_timeout()
    assert rtt.rto == 1.5
    rtt.on_sample(0.125)
    assert rtt.rto == 0.125 + 0.2  # 4 * RTTVAR (0.1875) is below the 200 ms bound


@pytest.mark.parametrize("seed", range(20))
def test_rto_kept_equal_to_base_times_backoff_capped_rfc6298_2_5(seed: int) -> None:
    """``rto`` is stored, not computed when read: after any mix of samples,
    timeouts and SYN-timeout resets it is still min(base * backoff, max_rto)."""
    rng = random.Random(seed)
    rtt = estimator(initial=rng.choice([0.5, 1.0]), max_rto=rng.choice([4.0, 60.0]))
    for _ in range(60):
        roll = rng.random()
        if roll < 0.5:
            rtt.on_sample(rng.choice([0.0, 0.001, 0.125, 0.75, 3.0]))
        elif roll < 0.9:
            rtt.on_timeout()
        else:
            rtt.reset_after_syn_timeout(1.0)
        assert rtt.rto == min(rtt._base_rto * rtt._backoff, rtt.max_rto)


def test_rfc6298_5_7_rto_is_3s_after_syn_timeout_without_sample() -> None:
    rtt = estimator()
    rtt.on_timeout()
    rtt.reset_after_syn_timeout(1.0)
    assert rtt.rto == 3.0


def test_rfc6298_5_7_no_reset_without_syn_timeout_or_with_sample() -> None:
    rtt = estimator()
    rtt.reset_after_syn_timeout(1.0)
    assert rtt.rto == 1.0
    rtt = estimator()
    rtt.on_timeout()
    rtt.on_sample(0.125)
    rtt.reset_after_syn_timeout(1.0)
    assert rtt.rto == 0.375


# ======================================================== engine timer
@pytest.mark.parametrize("initial_rto", [1.0, 2.5])
def test_syn_sent_first_retransmission_at_initial_rto_rfc6298_2_1(initial_rto: float) -> None:
    conn = syn_sent(initial_rto=initial_rto)
    assert conn.next_timer() == initial_rto
    assert fire(conn, initial_rto - 0.001) == []
    assert [s.flags for s in fire(conn, initial_rto)] == [SYN]
    assert conn.next_timer() == 3 * initial_rto


def test_syn_sent_handshake_gives_first_sample_rfc6298_2_2() -> None:
    conn = syn_sent(timestamps=False)
    feed(conn, syn_ack(PEER_ISN, SND), 0.125)
    assert (conn.rtt.srtt, conn.rtt.rttvar, conn.rtt.rto) == (0.125, 0.0625, 0.375)


def test_established_retransmission_at_exact_rto_with_backoff_rfc6298_5() -> None:
    """RFC 6298 (5.1) start the timer on sending; (5.4) retransmit the earliest
    unacknowledged segment when it expires; (5.5) double the RTO; (5.6) restart."""
    conn = established(peer_sack=False)
    conn.send(payload(1000))
    data = seg(SND, RCV, ACK | PSH, window=OUR_WINDOW, payload=payload(1000))
    assert sent(conn, 1.0) == [data]
    at = 1.0
    for interval in (RTO, 2 * RTO, 4 * RTO, 8 * RTO):
        at += interval
        assert conn.next_timer() == at
        assert fire(conn, at - 0.001) == []
        assert fire(conn, at) == [data]
    assert conn.stats.timeouts == 4
    assert conn.stats.retransmitted_segments == 4


def test_established_retransmission_backoff_capped_at_max_rto_rfc6298_2_5() -> None:
    conn = established(peer_sack=False, max_rto=1.0)
    conn.send(payload(100))
    sent(conn, 1.0)
    at = 1.0
    for interval in (RTO, 2 * RTO, 1.0, 1.0, 1.0):
        at += interval
        assert conn.next_timer() == at
        assert len(fire(conn, at)) == 1


def test_established_new_ack_restarts_timer_full_ack_stops_it_rfc6298_5_2_5_3() -> None:
    """RFC 6298 (5.3): an ACK of new data restarts the timer at now + RTO; (5.2)
    when everything is acknowledged the timer stops."""
    conn = established(peer_sack=False, timestamps=False)
    conn.send(payload(1000))
    sent(conn, 1.0)
    conn.send(payload(1000, 1000))
    sent(conn, 1.125)
    assert conn.next_timer() == 1.0 + RTO  # (5.1) not restarted by the second send
    feed(conn, seg(RCV, SND + 1000), 1.25)
    # Sample 0.25 s (the first segment was timed): SRTT 0.140625, RTTVAR 0.078125.
    assert conn.rtt.rto == 0.453125
    assert conn.next_timer() == 1.25 + 0.453125
    feed(conn, seg(RCV, SND + 2000), 1.375)
    assert conn.next_timer() is None


def test_established_karn_no_sample_from_retransmitted_segment_rfc6298_3() -> None:
    """RFC 6298 3 (Karn): without timestamps, an ACK for a retransmitted segment
    gives no RTT sample; the backed-off RTO stays until a fresh segment is
    timed, whose sample then collapses it."""
    conn = established(peer_sack=False, timestamps=False)
    conn.send(payload(1000))
    sent(conn, 1.0)
    fire(conn, 1.0 + RTO)
    fire(conn, 1.0 + 3 * RTO)
    feed(conn, seg(RCV, SND + 1000), 4.0)
    assert conn.rtt.samples == 1  # only the handshake's
    assert conn.rtt.srtt == 0.125
    assert conn.next_timer() is None
    conn.send(payload(1000, 1000))
    sent(conn, 4.0)
    assert conn.next_timer() == 4.0 + 4 * RTO  # still backed off
    feed(conn, seg(RCV, SND + 2000), 4.25)
    assert conn.rtt.samples == 2
    assert (conn.rtt.srtt, conn.rtt.rttvar, conn.rtt.rto) == (0.140625, 0.078125, 0.453125)


def test_established_timestamps_sample_retransmitted_segment_rfc7323_4_1() -> None:
    """RFC 7323 4.1: with timestamps the echoed TSval says which transmission is
    acknowledged, so even an ACK of a retransmission gives a sample (RTTM)."""
    conn = Connection(Config(), isn=ISN)
    conn.connect(0.0)
    [syn] = sent(conn, 0.0)
    assert syn.ts_val is not None
    base = syn.ts_val
    feed(conn, syn_ack(PEER_ISN, SND, ts=(1, base)), 0.125)
    [ack] = sent(conn, 0.125)
    assert (ack.ts_val, ack.ts_ecr) == (seq_add(base, 125), 1)
    assert conn.rtt.srtt == 0.125
    conn.send(payload(100))
    [first] = sent(conn, 1.0)
    assert (first.ts_val, first.ts_ecr) == (seq_add(base, 1000), 1)
    [again] = fire(conn, 1.375)
    assert (again.ts_val, again.ts_ecr) == (seq_add(base, 1375), 1)
    feed(conn, seg(RCV, SND + 100, ts_val=2, ts_ecr=again.ts_val), 1.5)
    assert conn.rtt.samples == 2
    # Sample 0.125 again: RTTVAR 3/4 * 0.0625, SRTT unchanged.
    assert (conn.rtt.srtt, conn.rtt.rttvar, conn.rtt.rto) == (0.125, 0.046875, 0.325)


def test_established_timestamp_echo_gives_a_sample_rfc7323_4_1() -> None:
    """RFC 7323 4.1: RTT = now - SEG.TSecr (32-bit modular), folded in by RFC 6298."""
    conn = established(peer_sack=False, peer_ts=True)
    conn.send(b"x")
    [data] = sent(conn, 2.0)
    assert data.ts_val is not None
    feed(conn, seg(RCV, SND + 1, ts_val=5, ts_ecr=data.ts_val), 2.25)
    assert conn.rtt.samples == 2
    assert conn.rtt.rttvar == 0.75 * 0.0625 + 0.25 * 0.125


def test_established_user_timeout_gives_up_rfc5482() -> None:
    """RFC 9293 3.8.3 / RFC 5482: data unacknowledged for the user timeout ends the
    connection with TimeoutError (no RST: the peer is presumed unreachable)."""
    conn = established(peer_sack=False, user_timeout=5.0)
    conn.send(payload(100))
    sent(conn, 1.0)
    while (at := conn.next_timer()) is not None and at < 6.0:
        fire(conn, at)
    assert conn.next_timer() == 6.0
    assert fire(conn, 6.0) == []
    [terminated] = events(conn)
    assert isinstance(terminated, ConnectionTerminated)
    assert isinstance(terminated.error, TimeoutError)
    assert conn.state is State.CLOSED
