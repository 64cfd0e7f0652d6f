"""Data transfer in ESTABLISHED: sequence acceptability and trimming (RFC 9293
3.10.7.4), reassembly and SACK (RFC 2018), ACK policy (RFC 5681 4.2, RFC 9293
3.8.6.3), flow control and windows (RFC 9293 3.8.6), the initial window (RFC 6928)
and zero-window probing (RFC 9293 3.8.6.1)."""

from __future__ import annotations

from typing import Any

import pytest
from engine_helpers import (
    ISN,
    OUR_WINDOW,
    PEER_ISN,
    RTO_AFTER_HANDSHAKE,
    WRAP_ISN,
    established,
    events,
    feed,
    fire,
    payload,
    seg,
    sent,
)

from rudp.core.events import DataReceived, WritableAgain
from rudp.core.segment import ACK, FIN, PSH, Segment
from rudp.core.seq import seq_add
from rudp.core.state import State

SND = ISN + 1
RCV = PEER_ISN + 1
MSS = 1380  # our sending MSS against the default peer (MSS 1460, no timestamps)
RTO = RTO_AFTER_HANDSHAKE
DELAYED_ACK = 0.04


def ack_of(rcv: int, *, snd: int = SND, window: int = OUR_WINDOW, **options: Any) -> Segment:
    """The bare ACK we expect: <SEQ=snd><ACK=rcv><CTL=ACK>."""
    return seg(snd, rcv, ACK, window=window, **options)


# ============================================================ receiving
def test_established_in_order_segment_is_delivered_ack_delayed_rfc9293_3_8_6_3() -> None:
    """RFC 9293 3.8.6.3 / RFC 5681 4.2: one in-order segment: deliver it, and ACK
    within the delayed-ACK time (40 ms here), not at once."""
    conn = established()
    feed(conn, seg(RCV, SND, ACK, payload=payload(MSS)), 1.0)
    assert events(conn) == [DataReceived(payload(MSS))]
    assert sent(conn, 1.0) == []
    assert conn.next_timer() == 1.0 + DELAYED_ACK
    assert fire(conn, 1.0 + DELAYED_ACK - 0.001) == []
    assert fire(conn, 1.0 + DELAYED_ACK) == [ack_of(RCV + MSS)]
    assert conn.next_timer() is None


def test_established_pushed_segment_read_at_once_is_acked_at_once() -> None:
    """The delayed-ACK item of the project's issue: "immediate ACK ... for PSH when
    the application is waiting" (Linux's ICSK_ACK_PUSHED outside interactive mode);
    a paused reader gets the ordinary delayed ACK instead."""
    conn = established()
    feed(conn, seg(RCV, SND, ACK | PSH, payload=payload(100)), 1.0)
    assert events(conn) == [DataReceived(payload(100))]
    # Due at once, but as a deadline: a reply written first would carry it.
    assert conn.next_timer() == 1.0
    assert fire(conn, 1.0) == [ack_of(RCV + 100)]
    conn.pause_reading()
    feed(conn, seg(RCV + 100, SND, ACK | PSH, payload=payload(100, 100)), 2.0)
    assert sent(conn, 2.0) == []
    assert conn.next_timer() == 2.0 + DELAYED_ACK


def test_established_second_full_segment_is_acked_at_once_rfc5681_4_2() -> None:
    """RFC 5681 4.2: "an ACK SHOULD be generated for at least every second
    full-sized segment"; the pending delayed ACK is then cancelled."""
    conn = established()
    feed(conn, seg(RCV, SND, payload=payload(MSS)), 1.0)
    assert sent(conn, 1.0) == []
    feed(conn, seg(RCV + MSS, SND, payload=payload(MSS, MSS)), 1.01)
    assert sent(conn, 1.01) == [ack_of(RCV + 2 * MSS)]
    assert conn.next_timer() is None
    # Bytes the owner has not read yet come as one event.
    assert events(conn) == [DataReceived(payload(MSS) + payload(MSS, MSS))]


def test_established_delayed_ack_zero_acks_every_segment() -> None:
    conn = established(delayed_ack=0)
    feed(conn, seg(RCV, SND, payload=b"abc"), 1.0)
    assert sent(conn, 1.0) == [ack_of(RCV + 3)]


def test_established_old_duplicate_is_acked_not_delivered_rfc9293_3_10_7_4() -> None:
    """RFC 9293 3.10.7.4 first: an unacceptable segment (all of it below RCV.NXT)
    gets <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> at once and is dropped: the
    application never sees the bytes twice.  With SACK the ACK reports the
    duplicate (RFC 2883 4.1.1)."""
    conn = established()
    feed(conn, seg(RCV, SND, payload=payload(100)), 1.0)
    assert events(conn) == [DataReceived(payload(100))]
    feed(conn, seg(RCV, SND, payload=payload(100)), 1.5)
    assert sent(conn, 1.5) == [ack_of(RCV + 100, sack_blocks=((RCV, RCV + 100),))]
    assert events(conn) == []
    assert conn.stats.duplicate_segments == 1


def test_established_overlapping_segment_delivers_only_new_bytes_rfc9293_3_10_7_4() -> None:
    """Segments straddling RCV.NXT are acceptable; only the new part is processed."""
    conn = established()
    feed(conn, seg(RCV, SND, payload=payload(10)), 1.0)
    feed(conn, seg(RCV + 5, SND, payload=payload(10, 5)), 1.01)
    assert events(conn) == [DataReceived(payload(10) + payload(5, 10))]
    assert conn.rcv_nxt == RCV + 15


def test_established_each_read_takes_what_arrived_since_the_last() -> None:
    """DataReceived carries every in-order byte that arrived before the owner read
    the event: one event per read, not per segment, and none twice."""
    conn = established()
    feed(conn, seg(RCV, SND, payload=payload(100)), 1.0)
    feed(conn, seg(RCV + 100, SND, payload=payload(50, 100)), 1.0)
    assert events(conn) == [DataReceived(payload(150))]
    feed(conn, seg(RCV + 150, SND, payload=payload(20, 150)), 1.1)
    assert events(conn) == [DataReceived(payload(20, 150))]
    assert conn.stats.bytes_delivered == 170


@pytest.mark.parametrize(
    "segment",
    [
        seg(RCV + 4096, SND, payload=b"x" * 10),  # starts at the right edge
        seg(RCV + 5000, SND, ACK),  # zero length, beyond the window
        seg(RCV - 1, SND, ACK),  # zero length, just below RCV.NXT
        seg(RCV - 10, SND, payload=b"x" * 10),  # ends just below RCV.NXT
    ],
    ids=["data-at-right-edge", "empty-beyond", "empty-below", "data-below"],
)
def test_established_unacceptable_segment_gets_ack_and_is_dropped_rfc9293_3_10_7_4(
    segment: Segment,
) -> None:
    """RFC 9293 3.10.7.4 first, the four-case table with RCV.WND = 4096."""
    conn = established(receive_buffer=4096)
    assert conn.receive_window == 4096
    feed(conn, segment, 1.0)
    # Data we already had is reported as a duplicate (RFC 2883 4.1.1).
    duplicate = ((segment.seq, RCV),) if segment.payload and segment.seq != RCV + 4096 else None
    options = {} if duplicate is None else {"sack_blocks": duplicate}
    assert sent(conn, 1.0) == [ack_of(RCV, window=4096, **options)]
    assert events(conn) == []
    assert conn.stats.dropped_unacceptable == 1


def test_established_data_beyond_window_is_trimmed_rfc9293_3_10_7_4() -> None:
    """RFC 9293 3.10.7.4: only the part inside RCV.WND (1000) is kept; a FIN past
    the window is not processed."""
    conn = established(receive_buffer=1000)
    feed(conn, seg(RCV, SND, ACK | FIN, payload=payload(1200)), 1.0)
    assert events(conn) == [DataReceived(payload(1000))]
    assert conn.state is State.ESTABLISHED
    assert conn.rcv_nxt == RCV + 1000
    assert fire(conn, 1.0 + DELAYED_ACK) == [ack_of(RCV + 1000, window=1000)]


def test_established_out_of_order_segment_acked_at_once_with_sack_rfc2018_rfc5681_4_2() -> None:
    """RFC 5681 4.2: an out-of-order segment is ACKed at once (a duplicate ACK);
    RFC 2018 4: with the SACK block for it.  The peer's sequence space wraps
    within the data (IRS = 2**32-500)."""
    peer_isn = 2**32 - 500
    rcv = seq_add(peer_isn, 1)
    conn = established(peer_isn=peer_isn)
    feed(conn, seg(seq_add(rcv, 1000), SND, payload=payload(1000, 1000)), 1.0)
    assert sent(conn, 1.0) == [ack_of(rcv, sack_blocks=((seq_add(rcv, 1000), seq_add(rcv, 2000)),))]
    assert seq_add(rcv, 1000) == 501  # both edges of the block have wrapped
    assert events(conn) == []
    assert conn.stats.out_of_order_segments == 1


def test_established_gap_filled_acks_at_once_and_delivers_in_order_rfc5681_4_2() -> None:
    """RFC 5681 4.2: a segment that fills a gap is ACKed at once; the reassembled
    bytes reach the application in order, in one piece, across the wrap."""
    peer_isn = 2**32 - 500
    rcv = seq_add(peer_isn, 1)
    conn = established(peer_isn=peer_isn)
    feed(conn, seg(seq_add(rcv, 1000), SND, payload=payload(1000, 1000)), 1.0)
    sent(conn, 1.0)
    feed(conn, seg(rcv, SND, payload=payload(1000)), 1.1)
    assert sent(conn, 1.1) == [ack_of(seq_add(rcv, 2000))]
    assert events(conn) == [DataReceived(payload(2000))]
    assert conn.next_timer() is None


def test_established_partly_filled_gap_reports_remaining_sack_block_rfc2018_4() -> None:
    conn = established()
    feed(conn, seg(RCV + 2000, SND, payload=payload(500, 2000)), 1.0)
    sent(conn, 1.0)
    feed(conn, seg(RCV, SND, payload=payload(1000)), 1.1)
    assert sent(conn, 1.1) == [ack_of(RCV + 1000, sack_blocks=((RCV + 2000, RCV + 2500),))]
    assert events(conn) == [DataReceived(payload(1000))]


def test_established_first_sack_block_holds_latest_segment_rfc2018_4() -> None:
    """RFC 2018 4: "The first SACK block ... MUST specify the contiguous block of
    data containing the segment which triggered this ACK"; the rest follow most
    recent first."""
    conn = established()
    feed(conn, seg(RCV + 3000, SND, payload=payload(1000, 3000)), 1.0)
    assert sent(conn, 1.0) == [ack_of(RCV, sack_blocks=((RCV + 3000, RCV + 4000),))]
    feed(conn, seg(RCV + 1000, SND, payload=payload(1000, 1000)), 1.1)
    assert sent(conn, 1.1) == [
        ack_of(RCV, sack_blocks=((RCV + 1000, RCV + 2000), (RCV + 3000, RCV + 4000)))
    ]


def test_established_sack_at_most_three_blocks_beside_timestamps_rfc2018_3() -> None:
    """RFC 2018 3/4: with the 12-byte timestamp option, at most 3 SACK blocks fit
    the 40 option bytes; the newest first, then the most recent others."""
    conn = established(peer_ts=True)
    for i, start in enumerate((1000, 3000, 5000, 7000)):
        feed(conn, seg(RCV + start, SND, payload=payload(500, start)), 1.0 + i / 100)
        [ack] = sent(conn, 1.0 + i / 100)
    assert ack.ack == RCV
    assert ack.sack_blocks == (
        (RCV + 7000, RCV + 7500),
        (RCV + 5000, RCV + 5500),
        (RCV + 3000, RCV + 3500),
    )


def test_established_out_of_order_without_sack_permitted_has_no_blocks_rfc2018_2() -> None:
    conn = established(peer_sack=False)
    feed(conn, seg(RCV + 1000, SND, payload=payload(1000)), 1.0)
    assert sent(conn, 1.0) == [ack_of(RCV)]


def test_established_duplicate_out_of_order_segment_is_delivered_once() -> None:
    """The second copy of an out-of-order segment is reported as a D-SACK, then
    the block that holds it (RFC 2883 4.1.3)."""
    conn = established()
    block = (RCV + 100, RCV + 200)
    feed(conn, seg(RCV + 100, SND, payload=payload(100, 100)), 1.0)
    assert sent(conn, 1.0) == [ack_of(RCV, sack_blocks=(block,))]
    feed(conn, seg(RCV + 100, SND, payload=payload(100, 100)), 1.01)
    assert sent(conn, 1.01) == [ack_of(RCV, sack_blocks=(block, block))]
    feed(conn, seg(RCV, SND, payload=payload(150)), 1.02)
    feed(conn, seg(RCV + 100, SND, payload=payload(100, 100)), 1.03)
    assert events(conn) == [DataReceived(payload(200))]
    assert conn.stats.bytes_delivered == 200


def test_established_fin_out_of_order_waits_for_the_gap_rfc9293_3_10_7_4() -> None:
    """RFC 9293 3.10.7.4 eighth: a FIN counts only once everything before it is
    in; then the data comes first, EofReceived after, and CLOSE-WAIT."""
    conn = established()
    feed(conn, seg(RCV + 1000, SND, ACK | FIN, payload=payload(500, 1000)), 1.0)
    assert sent(conn, 1.0) == [ack_of(RCV, sack_blocks=((RCV + 1000, RCV + 1500),))]
    assert conn.state is State.ESTABLISHED
    feed(conn, seg(RCV, SND, payload=payload(1000)), 1.1)
    assert sent(conn, 1.1) == [ack_of(RCV + 1501)]
    [data, eof] = events(conn)
    assert data == DataReceived(payload(1500))
    assert type(eof).__name__ == "EofReceived"
    assert conn.state is State.CLOSE_WAIT


def test_established_ack_of_unsent_data_gets_ack_and_is_dropped_rfc9293_3_10_7_4() -> None:
    """RFC 9293 3.10.7.4 fifth: "If the ACK acks something not yet sent (SEG.ACK >
    SND.NXT), then send an ACK, drop the segment, and return" -- its text too."""
    conn = established()
    feed(conn, seg(RCV, SND + 100, ACK | PSH, payload=b"data"), 1.0)
    assert sent(conn, 1.0) == [ack_of(RCV)]
    assert events(conn) == []
    assert conn.snd_una == SND


def test_established_ack_of_unsent_data_across_wrap_is_dropped_rfc9293_3_10_7_4() -> None:
    conn = established(isn=WRAP_ISN)
    conn.send(b"abc")
    [data] = sent(conn, 1.0)
    assert data.seq == 2**32 - 2
    feed(conn, seg(RCV, 5, ACK), 1.1)  # SND.NXT is 1 (wrapped); 5 is beyond it
    assert sent(conn, 1.1) == [ack_of(RCV, snd=1)]
    assert conn.snd_una == 2**32 - 2
    feed(conn, seg(RCV, 1, ACK), 1.2)
    assert conn.snd_una == 1
    assert conn.send_buffered == 0
    assert conn.next_timer() is None


# ===================================================== receive window
def test_established_pause_reading_closes_advertised_window_rfc9293_3_8_6_2_2() -> None:
    """While the application does not read, arriving bytes take up the buffer and
    the window we advertise shrinks to zero; resume_reading hands the bytes over
    and sends a window update at once (the window grew by at least min(buffer/2,
    MSS), RFC 9293 3.8.6.2.2)."""
    conn = established(receive_buffer=4000)
    conn.pause_reading()
    feed(conn, seg(RCV, SND, payload=payload(MSS)), 1.0)
    feed(conn, seg(RCV + MSS, SND, payload=payload(MSS, MSS)), 1.0)
    assert sent(conn, 1.0) == [ack_of(RCV + 2 * MSS, window=4000 - 2 * MSS)]
    feed(conn, seg(RCV + 2 * MSS, SND, payload=payload(1240, 2 * MSS)), 1.1)
    assert fire(conn, 1.1 + DELAYED_ACK) == [ack_of(RCV + 4000, window=0)]
    assert events(conn) == []
    assert conn.receive_window == 0
    conn.resume_reading()
    assert events(conn) == [DataReceived(payload(4000))]
    assert sent(conn, 1.2) == [ack_of(RCV + 4000, window=4000)]


def test_established_zero_window_drops_data_but_accepts_zero_length_ack_rfc9293_3_10_7_4() -> None:
    """RFC 9293 3.10.7.4: with RCV.WND = 0 a segment with data is not acceptable
    (ACK it, drop it) while a zero-length one at RCV.NXT is."""
    conn = established(receive_buffer=1000)
    conn.pause_reading()
    conn.send(b"q" * 100)
    sent(conn, 1.0)
    feed(conn, seg(RCV, SND, payload=payload(1000)), 1.1)
    assert fire(conn, 1.1 + DELAYED_ACK) == [ack_of(RCV + 1000, snd=SND + 100, window=0)]
    feed(conn, seg(RCV + 1000, SND, payload=b"z"), 1.2)
    assert sent(conn, 1.2) == [ack_of(RCV + 1000, snd=SND + 100, window=0)]
    feed(conn, seg(RCV + 1000, SND + 100, ACK), 1.3)
    assert sent(conn, 1.3) == []
    assert conn.snd_una == SND + 100


def test_established_zero_window_still_takes_ack_from_data_segment_rfc9293_3_10_7_4() -> None:
    """RFC 9293 3.10.7.4: "If the RCV.WND is zero, no segments will be acceptable,
    but special allowance should be made to accept valid ACKs, URGs, and RSTs"
    (Linux accepts SEG.SEQ = RCV.NXT and drops only the text)."""
    conn = established(receive_buffer=1000)
    conn.pause_reading()
    conn.send(b"q" * 100)
    sent(conn, 1.0)
    feed(conn, seg(RCV, SND, payload=payload(1000)), 1.1)
    fire(conn, 1.1 + DELAYED_ACK)
    feed(conn, seg(RCV + 1000, SND + 100, ACK | PSH, payload=b"z"), 1.2)
    assert conn.snd_una == SND + 100
    assert conn.next_timer() is None
    assert sent(conn, 1.2) == [ack_of(RCV + 1000, snd=SND + 100, window=0)]


def test_established_set_receive_window_grows_window_with_update_rfc9293_3_8_6_2_2() -> None:
    conn = established(receive_buffer=2000)
    assert conn.receive_window == 2000
    conn.set_receive_window(60000)
    assert sent(conn, 1.0) == [ack_of(RCV, window=60000)]


# ========================================================== sending
@pytest.mark.parametrize(
    ("peer_mss", "max_segment_size", "segments"),
    [
        (536, 1400, [536] * 10),  # 10 * MSS = 5360
        (1460, 1400, [1380] * 10),  # 13800
        (1460, 1480, [1460] * 10),  # 14600
    ],
)
def test_established_initial_window_rfc6928(
    peer_mss: int, max_segment_size: int, segments: list[int]
) -> None:
    """RFC 6928 2: IW = min(10*MSS, max(2*MSS, 14600)); only that much goes out
    before the first ACK."""
    conn = established(peer_mss=peer_mss, max_segment_size=max_segment_size, peer_sack=False)
    assert conn.cc.cwnd == min(10 * segments[0], max(2 * segments[0], 14600))
    conn.send(payload(30000))
    out = sent(conn, 1.0)
    assert [len(s.payload) for s in out] == segments
    assert [s.seq for s in out] == [SND + sum(segments[:i]) for i in range(len(segments))]
    assert all(s.flags == ACK and s.ack == RCV and s.window == OUR_WINDOW for s in out)
    # RFC 6298 (5.1): the first transmission starts the retransmission timer.
    assert conn.next_timer() == 1.0 + RTO


def test_established_initial_window_capped_at_14600_for_large_mss_rfc6928() -> None:
    """RFC 6928 2: with MSS 2000, IW = min(20000, max(4000, 14600)) = 14600: seven
    full segments (the 600 bytes left would be a silly small segment)."""
    conn = established(peer_mss=2000, max_segment_size=2020)
    assert conn.cc.cwnd == 14600
    conn.send(payload(30000))
    assert [len(s.payload) for s in sent(conn, 1.0)] == [2000] * 7


def test_established_small_send_goes_at_once_with_psh() -> None:
    """No Nagle by default (asyncio's TCP_NODELAY); the segment that empties the
    send buffer carries PSH (RFC 9293 3.9.1)."""
    conn = established()
    conn.send(b"hello")
    assert sent(conn, 1.0) == [seg(SND, RCV, ACK | PSH, window=OUR_WINDOW, payload=b"hello")]
    assert conn.send_buffered == 5
    feed(conn, seg(RCV, SND + 5), 1.1)
    assert conn.send_buffered == 0
    assert conn.next_timer() is None


def test_established_send_respects_peer_window_rfc9293_3_8_6_2_1() -> None:
    """RFC 9293 3.8.6: never send beyond SND.UNA + SND.WND.  With a 3000-byte
    window: two full segments; the 240 bytes left are held (sender SWS avoidance,
    RFC 9293 3.8.6.2.1) until an ACK opens the window again."""
    conn = established(peer_window=3000)
    conn.send(payload(10000))
    out = sent(conn, 1.0)
    assert [(s.seq, len(s.payload)) for s in out] == [(SND, MSS), (SND + MSS, MSS)]
    feed(conn, seg(RCV, SND + MSS, window=3000), 1.2)
    assert [(s.seq, len(s.payload)) for s in sent(conn, 1.2)] == [(SND + 2 * MSS, MSS)]


def test_established_window_shrunk_by_peer_stops_sending_rfc9293_3_8_6() -> None:
    conn = established()
    conn.send(payload(2 * MSS))
    sent(conn, 1.0)
    feed(conn, seg(RCV, SND + MSS, window=MSS), 1.1)  # one segment still in flight
    conn.send(payload(MSS))
    assert sent(conn, 1.2) == []


def test_established_old_segment_does_not_update_window_rfc9293_3_10_7_4() -> None:
    """RFC 9293 3.10.7.4 fifth: SND.WND changes only if SND.WL1 < SEG.SEQ, or
    SND.WL1 = SEG.SEQ and SND.WL2 =< SEG.ACK: a reordered older segment's window
    is ignored."""
    conn = established()
    feed(conn, seg(RCV, SND, window=5000, payload=payload(100)), 1.0)
    feed(conn, seg(RCV + 100, SND, window=4000), 1.1)
    assert conn.snd_wnd == 4000
    feed(conn, seg(RCV + 50, SND, window=9000, payload=payload(100, 50)), 1.2)
    assert conn.snd_wnd == 4000
    feed(conn, seg(RCV + 150, SND, window=9000), 1.3)
    assert conn.snd_wnd == 9000


def test_established_writable_again_at_low_water_mark() -> None:
    conn = established()
    conn.set_send_buffer_limits(high=2000, low=500)
    conn.send(payload(3000))
    out = sent(conn, 1.0)
    assert len(out) == 3
    feed(conn, seg(RCV, SND + 2000), 1.1)
    assert events(conn) == []
    feed(conn, seg(RCV, SND + 2500), 1.2)
    assert events(conn) == [WritableAgain()]
    feed(conn, seg(RCV, SND + 3000), 1.3)
    assert events(conn) == []


def test_established_send_across_wrap_rfc9293_3_4() -> None:
    """ISS = 2**32-3: the first data byte is 2**32-2 and the third segment's
    sequence number has wrapped."""
    conn = established(isn=WRAP_ISN)
    conn.send(payload(3000))
    out = sent(conn, 1.0)
    assert [s.seq for s in out] == [2**32 - 2, seq_add(2**32 - 2, MSS), 2758]
    assert [len(s.payload) for s in out] == [MSS, MSS, 240]
    assert out[2].flags == ACK | PSH
    feed(conn, seg(RCV, 2998), 1.1)
    assert conn.send_buffered == 0
    assert conn.next_timer() is None


# ===================================================== zero window
def test_established_zero_window_probe_after_rto_with_backoff_rfc9293_3_8_6_1() -> None:
    """RFC 9293 3.8.6.1 / RFC 1122 4.2.2.17: with data waiting and a zero send
    window, probe after one RTO, then back off exponentially.  The probe is
    <SEQ=SND.UNA-1><ACK=RCV.NXT><CTL=ACK>: out of the receiver's window, so it
    answers with its current window (as Linux does)."""
    conn = established()
    feed(conn, seg(RCV, SND, window=0), 1.0)
    conn.send(payload(1000))
    assert sent(conn, 1.0) == []
    probe = seg(SND - 1, RCV, ACK, window=OUR_WINDOW)
    at = 1.0
    for interval in (RTO, 2 * RTO, 4 * RTO, 8 * RTO):
        at += interval
        assert conn.next_timer() == at
        assert fire(conn, at - 0.001) == []
        assert fire(conn, at) == [probe]
        # Still closed.
        feed(conn, seg(RCV, SND, window=0), at + 0.1)
        assert sent(conn, at + 0.1) == []


def test_established_zero_window_probe_interval_capped_at_max_rto_rfc6298_2_5() -> None:
    conn = established(max_rto=1.0)
    feed(conn, seg(RCV, SND, window=0), 1.0)
    conn.send(payload(1000))
    sent(conn, 1.0)
    at = 1.0
    for interval in (RTO, 2 * RTO, 1.0, 1.0):
        at += interval
        assert conn.next_timer() == at
        assert len(fire(conn, at)) == 1


def test_established_window_opens_sending_resumes_rfc9293_3_8_6_1() -> None:
    conn = established()
    feed(conn, seg(RCV, SND, window=0), 1.0)
    conn.send(payload(1000))
    sent(conn, 1.0)
    fire(conn, 1.0 + RTO)
    feed(conn, seg(RCV, SND, window=4000), 1.5)
    assert sent(conn, 1.5) == [seg(SND, RCV, ACK | PSH, window=OUR_WINDOW, payload=payload(1000))]
    # The persist timer is off; the retransmission timer runs.
    assert conn.next_timer() == 1.5 + RTO


# ===================================================== blind attacks, PAWS
def test_established_ack_too_old_is_discarded_with_ack_rfc5961_5_2() -> None:
    """RFC 5961 5.2 (RFC 9293 3.10.7.4 MAY-12): accept SEG.ACK only within
    (SND.UNA - MAX.SND.WND) =< SEG.ACK =< SND.NXT; otherwise discard the segment
    and send an ACK -- blind data injection must guess an acceptable ACK too."""
    conn = established()
    feed(conn, seg(RCV, seq_add(SND, -(2**30)), ACK | PSH, payload=b"inject"), 1.0)
    assert events(conn) == []
    assert sent(conn, 1.0) == [ack_of(RCV)]


def test_established_paws_rejects_older_timestamp_rfc7323_5_3() -> None:
    """RFC 7323 5.3 R1: with timestamps in use, SEG.TSval < TS.Recent makes the
    segment not acceptable: send an ACK and drop it."""
    conn = established(peer_ts=True)
    feed(conn, seg(RCV, SND, ACK | PSH, payload=b"a", ts_val=100, ts_ecr=0), 1.0)
    assert events(conn) == [DataReceived(b"a")]
    feed(conn, seg(RCV + 1, SND, ACK | PSH, payload=b"b", ts_val=50, ts_ecr=0), 1.01)
    assert events(conn) == []
    [ack] = sent(conn, 1.01)
    assert (ack.flags, ack.seq, ack.ack, ack.ts_ecr) == (ACK, SND, RCV + 1, 100)
