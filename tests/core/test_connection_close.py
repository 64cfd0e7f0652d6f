"""Closing and resetting (RFC 9293 3.6, 3.10.4, 3.10.5, 3.10.7.4): active, passive
and simultaneous close, TIME-WAIT, half-close, abort, RST processing with RFC 5961
protection, and the resets of RFC 2525 2.17."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from engine_helpers import (
    ISN,
    OUR_WINDOW,
    PEER_ISN,
    RTO_AFTER_HANDSHAKE,
    WRAP_ISN,
    close_wait,
    established,
    established_passive,
    events,
    feed,
    fin_wait_1,
    fin_wait_2,
    fire,
    payload,
    seg,
    sent,
    time_wait,
)

from rudp.core.config import Config
from rudp.core.errors import LocalProtocolError
from rudp.core.events import ConnectionTerminated, DataReceived, EofReceived, Event
from rudp.core.segment import ACK, FIN, PSH, RST, SYN, Segment
from rudp.core.seq import seq_add
from rudp.core.state import State

SND = ISN + 1
RCV = PEER_ISN + 1
RTO = RTO_AFTER_HANDSHAKE
MSL = 30.0
FIN_WAIT_2_TIMEOUT = 60.0


def ack_of(rcv: int, snd: int, window: int = OUR_WINDOW) -> Segment:
    return seg(snd, rcv, ACK, window=window)


def terminations(conn_events: Sequence[Event]) -> list[ConnectionTerminated]:
    return [e for e in conn_events if isinstance(e, ConnectionTerminated)]


# ===================================================== active close
def test_established_close_sends_fin_enters_fin_wait_1_rfc9293_3_10_4() -> None:
    """RFC 9293 3.10.4 CLOSE in ESTABLISHED: form a FIN, enter FIN-WAIT-1; the FIN
    is retransmitted like data (RFC 6298 5.1)."""
    conn = established()
    conn.close()
    assert conn.state is State.FIN_WAIT_1
    assert sent(conn, 1.0) == [seg(SND, RCV, FIN | ACK, window=OUR_WINDOW)]
    assert conn.rto_at == 1.0 + RTO
    # RFC 8985 7.2: the tail loss probe, clamped to the RTO, goes first and
    # re-arms the RTO; the RTO then resends with backoff (RFC 6298 5.5).
    assert conn.next_timer() == 1.0 + RTO
    assert fire(conn, 1.0 + RTO) == [seg(SND, RCV, FIN | ACK, window=OUR_WINDOW)]
    assert conn.next_timer() == conn.rto_at == 1.0 + 2 * RTO
    assert fire(conn, 1.0 + 2 * RTO) == [seg(SND, RCV, FIN | ACK, window=OUR_WINDOW)]
    assert conn.next_timer() == 1.0 + 4 * RTO


def test_fin_wait_1_ack_of_fin_enters_fin_wait_2_rfc9293_3_10_7_4() -> None:
    """RFC 9293 3.10.7.4 fifth, FIN-WAIT-1: our FIN acknowledged: FIN-WAIT-2.
    After close() the application is done: ConnectionTerminated(None) now, and a
    FIN-WAIT-2 timer bounds the wait for the peer's FIN."""
    conn = fin_wait_1()
    feed(conn, seg(RCV, SND + 1), 1.1)
    assert sent(conn, 1.1) == []
    assert conn.state is State.FIN_WAIT_2
    assert events(conn) == [ConnectionTerminated(None)]
    assert conn.next_timer() == 1.1 + FIN_WAIT_2_TIMEOUT


def test_fin_wait_2_fin_enters_time_wait_for_2_msl_rfc9293_3_10_7_4() -> None:
    """RFC 9293 3.10.7.4 eighth, FIN-WAIT-2: ACK the FIN, enter TIME-WAIT, start
    the 2 MSL timer; at exactly 2 MSL the connection is CLOSED, silently."""
    conn = fin_wait_2()
    events(conn)
    feed(conn, seg(RCV, SND + 1, FIN | ACK), 1.2)
    assert sent(conn, 1.2) == [ack_of(RCV + 1, SND + 1)]
    assert conn.state is State.TIME_WAIT
    assert events(conn) == []
    assert conn.next_timer() == 1.2 + 2 * MSL
    assert fire(conn, 1.2 + 2 * MSL - 0.001) == []
    assert conn.state is State.TIME_WAIT
    assert fire(conn, 1.2 + 2 * MSL) == []
    assert conn.state is State.CLOSED
    assert conn.is_closed
    assert events(conn) == []
    assert conn.next_timer() is None


def test_established_active_close_terminates_exactly_once_rfc9293_3_6() -> None:
    """The whole RFC 9293 3.6 figure 12 sequence from A's side, collecting every
    event: one ConnectionTerminated(None), nothing else."""
    conn = established()
    seen: list[Event] = []
    conn.close()
    assert sent(conn, 1.0) == [seg(SND, RCV, FIN | ACK, window=OUR_WINDOW)]
    feed(conn, seg(RCV, SND + 1), 1.1)
    seen += events(conn)
    feed(conn, seg(RCV, SND + 1, FIN | ACK), 1.2)
    assert sent(conn, 1.2) == [ack_of(RCV + 1, SND + 1)]
    seen += events(conn)
    fire(conn, 1.2 + 2 * MSL)
    seen += events(conn)
    assert seen == [ConnectionTerminated(None)]
    assert conn.is_closed


def test_established_passive_side_active_close_rfc9293_3_6() -> None:
    """The side that accepted the connection may close first, too: figure 12 from
    a passive open, ending in TIME-WAIT on the server."""
    conn = established_passive()
    conn.close()
    assert sent(conn, 1.0) == [seg(SND, RCV, FIN | ACK, window=OUR_WINDOW)]
    feed(conn, seg(RCV, SND + 1, FIN | ACK), 1.1)
    assert sent(conn, 1.1) == [ack_of(RCV + 1, SND + 1)]
    assert conn.state is State.TIME_WAIT
    assert events(conn) == [ConnectionTerminated(None)]


def test_fin_wait_1_fin_with_ack_of_our_fin_enters_time_wait_rfc9293_3_10_7_4() -> None:
    """RFC 9293 3.10.7.4 eighth, FIN-WAIT-1: "If our FIN has been ACKed (perhaps in
    this segment), then enter TIME-WAIT"."""
    conn = fin_wait_1()
    feed(conn, seg(RCV, SND + 1, FIN | ACK), 1.1)
    assert sent(conn, 1.1) == [ack_of(RCV + 1, SND + 1)]
    assert conn.state is State.TIME_WAIT
    assert events(conn) == [ConnectionTerminated(None)]
    assert conn.next_timer() == 1.1 + 2 * MSL


def test_fin_wait_1_active_close_across_wrap_rfc9293_3_4() -> None:
    """ISS = 2**32-3 and IRS = 2**32-2: our FIN is 2**32-2, its ACK 2**32-1; the
    peer's FIN is 2**32-1 and our ACK of it wraps to 0."""
    conn = fin_wait_1(isn=WRAP_ISN, peer_isn=2**32 - 2)
    feed(conn, seg(2**32 - 1, 2**32 - 1), 1.1)
    assert conn.state is State.FIN_WAIT_2
    feed(conn, seg(2**32 - 1, 2**32 - 1, FIN | ACK), 1.2)
    assert sent(conn, 1.2) == [ack_of(0, 2**32 - 1)]
    assert conn.state is State.TIME_WAIT


def test_fin_wait_2_timeout_closes_closed_connection() -> None:
    """A connection closed by the application does not wait forever in FIN-WAIT-2
    for a peer that never sends FIN (RFC 9293 3.6 note; Linux tcp_fin_timeout)."""
    conn = fin_wait_2()
    assert events(conn) == [ConnectionTerminated(None)]
    assert conn.next_timer() == 1.1 + FIN_WAIT_2_TIMEOUT
    assert fire(conn, 1.1 + FIN_WAIT_2_TIMEOUT) == []
    assert conn.state is State.CLOSED
    assert conn.is_closed
    assert events(conn) == []


def test_fin_wait_2_after_shutdown_write_keeps_receiving_rfc9293_3_6() -> None:
    """A half-close (shutdown_write) is not a close: no FIN-WAIT-2 timer, data still
    delivered, and the end comes with the peer's FIN: EofReceived, then
    ConnectionTerminated(None)."""
    conn = established()
    conn.shutdown_write()
    assert sent(conn, 1.0) == [seg(SND, RCV, FIN | ACK, window=OUR_WINDOW)]
    feed(conn, seg(RCV, SND + 1), 1.1)
    assert conn.state is State.FIN_WAIT_2
    assert events(conn) == []
    assert conn.next_timer() is None
    feed(conn, seg(RCV, SND + 1, ACK | PSH, payload=b"more"), 2.0)
    assert events(conn) == [DataReceived(b"more")]
    feed(conn, seg(RCV + 4, SND + 1, FIN | ACK), 3.0)
    assert sent(conn, 3.0) == [ack_of(RCV + 5, SND + 1)]
    assert conn.state is State.TIME_WAIT
    assert events(conn) == [EofReceived(), ConnectionTerminated(None)]


# ===================================================== FIN after data
def test_established_close_fin_follows_queued_data_rfc9293_3_10_4() -> None:
    """RFC 9293 3.10.4: "Queue this until all preceding SENDs have been segmentized,
    then form a FIN segment": the FIN rides on the last data segment."""
    conn = established()
    conn.send(payload(3000))
    conn.close()
    out = sent(conn, 1.0)
    assert [(s.seq, len(s.payload), s.flags) for s in out] == [
        (SND, 1380, ACK),
        (SND + 1380, 1380, ACK),
        (SND + 2760, 240, ACK | PSH | FIN),
    ]
    feed(conn, seg(RCV, SND + 3001), 1.1)
    assert conn.state is State.FIN_WAIT_2


def test_established_close_fin_waits_for_the_window_rfc9293_3_10_4() -> None:
    """The FIN is not sent while queued data is held back by the peer's window
    (2000 bytes: one full segment, then 620 bytes are too few to send, RFC 9293
    3.8.6.2.1); once the window slides, the rest goes with the FIN on it."""
    conn = established(peer_window=2000)
    conn.send(payload(3000))
    conn.close()
    assert [(s.seq, len(s.payload), s.flags) for s in sent(conn, 1.0)] == [(SND, 1380, ACK)]
    feed(conn, seg(RCV, SND + 1380, window=2000), 1.1)
    assert sent(conn, 1.1) == [
        seg(SND + 1380, RCV, ACK, window=OUR_WINDOW, payload=payload(1380, 1380)),
        seg(SND + 2760, RCV, ACK | PSH | FIN, window=OUR_WINDOW, payload=payload(240, 2760)),
    ]


def test_established_fin_across_wrap_follows_data_rfc9293_3_4() -> None:
    conn = established(isn=WRAP_ISN)
    conn.send(payload(1000))
    conn.close()
    [last] = sent(conn, 1.0)
    assert (last.seq, last.flags, len(last.payload)) == (2**32 - 2, ACK | PSH | FIN, 1000)
    feed(conn, seg(RCV, 999), 1.1)  # 2**32-2 + 1000 data + FIN = 999
    assert conn.state is State.FIN_WAIT_2


# ===================================================== passive close
def test_established_fin_enters_close_wait_rfc9293_3_10_7_4() -> None:
    """RFC 9293 3.10.7.4 eighth, ESTABLISHED: the FIN is ACKed at once, the
    application learns of it (EofReceived), CLOSE-WAIT."""
    conn = established()
    feed(conn, seg(RCV, SND, FIN | ACK | PSH, payload=b"bye"), 1.0)
    assert sent(conn, 1.0) == [ack_of(RCV + 4, SND)]
    assert events(conn) == [DataReceived(b"bye"), EofReceived()]
    assert conn.state is State.CLOSE_WAIT


def test_close_wait_can_still_send_rfc9293_3_10_2() -> None:
    conn = close_wait()
    conn.send(b"reply")
    assert sent(conn, 2.0) == [seg(SND, RCV + 1, ACK | PSH, window=OUR_WINDOW, payload=b"reply")]


def test_close_wait_retransmitted_fin_is_acked_again_rfc9293_3_10_7_4() -> None:
    """Our ACK of the FIN was lost: the duplicate FIN (below RCV.NXT) is not
    acceptable and is answered with an ACK; no second EofReceived."""
    conn = close_wait()
    feed(conn, seg(RCV, SND, FIN | ACK), 2.0)
    assert sent(conn, 2.0) == [ack_of(RCV + 1, SND)]
    assert events(conn) == []
    assert conn.state is State.CLOSE_WAIT


def test_close_wait_close_sends_fin_enters_last_ack_rfc9293_3_10_4() -> None:
    """RFC 9293 3.10.4 CLOSE in CLOSE-WAIT: send FIN, enter LAST-ACK; the ACK of
    the FIN closes the connection (RFC 9293 3.10.7.4 fifth, LAST-ACK).  With no
    data unacknowledged the user is done at once (ConnectionTerminated before
    the FIN's ACK), and the ACK adds no second event."""
    conn = close_wait()
    conn.close()
    assert sent(conn, 2.0) == [seg(SND, RCV + 1, FIN | ACK, window=OUR_WINDOW)]
    assert conn.state is State.LAST_ACK
    assert conn.next_timer() == 2.0 + RTO
    assert events(conn) == [ConnectionTerminated(None)]
    feed(conn, seg(RCV + 1, SND + 1), 2.1)
    assert sent(conn, 2.1) == []
    assert conn.state is State.CLOSED
    assert conn.is_closed
    assert events(conn) == []
    assert conn.next_timer() is None


def test_last_ack_user_done_only_once_every_data_byte_is_acked_rfc9293_3_10_4() -> None:
    """LAST-ACK with data in flight: the user is not done until the peer has
    acknowledged every data byte (nothing accepted may be lost silently); the ACK
    of the data, not yet of the FIN, ends it for the user; the FIN goes on being
    retransmitted; the user timeout then ends the engine without a second event."""
    conn = close_wait()
    conn.send(b"reply")
    conn.close()
    assert sent(conn, 2.0) == [
        seg(SND, RCV + 1, FIN | ACK | PSH, window=OUR_WINDOW, payload=b"reply")
    ]
    assert conn.state is State.LAST_ACK
    assert events(conn) == []
    feed(conn, seg(RCV + 1, SND + 4), 2.1)  # four of the five bytes
    assert events(conn) == []
    feed(conn, seg(RCV + 1, SND + 5), 2.2)  # all the data, not the FIN
    assert events(conn) == [ConnectionTerminated(None)]
    assert conn.state is State.LAST_ACK
    assert fire(conn, 2.2 + RTO) == [seg(SND + 5, RCV + 1, FIN | ACK, window=OUR_WINDOW)]
    fire(conn, 2.2 + Config().user_timeout + 1.0)
    assert conn.is_closed
    assert events(conn) == []


def test_last_ack_after_shutdown_write_ends_for_the_user_once_data_is_acked() -> None:
    """write_eof in CLOSE-WAIT (RFC 9293 3.10.4 via the half-close) reaches
    LAST-ACK too: the same rule, whether or not the application closed."""
    conn = close_wait()
    conn.shutdown_write()
    assert sent(conn, 2.0) == [seg(SND, RCV + 1, FIN | ACK, window=OUR_WINDOW)]
    assert conn.state is State.LAST_ACK
    assert events(conn) == [ConnectionTerminated(None)]


def test_last_ack_fin_retransmitted_until_acked_rfc6298_5_5() -> None:
    conn = close_wait()
    conn.close()
    fin = seg(SND, RCV + 1, FIN | ACK, window=OUR_WINDOW)
    assert sent(conn, 2.0) == [fin]
    assert fire(conn, 2.0 + RTO) == [fin]
    assert fire(conn, 2.0 + 3 * RTO) == [fin]
    feed(conn, seg(RCV + 1, SND + 1), 4.0)
    assert conn.is_closed


# ===================================================== simultaneous close
def test_fin_wait_1_fin_enters_closing_rfc9293_3_6_figure_13() -> None:
    """RFC 9293 3.6 figure 13: both FINs cross.  In FIN-WAIT-1 the peer's FIN
    (not acknowledging ours) is ACKed and we enter CLOSING; the ACK of our FIN
    then moves us to TIME-WAIT.  ConnectionTerminated(None) comes once."""
    conn = fin_wait_1()
    feed(conn, seg(RCV, SND, FIN | ACK), 1.1)
    assert sent(conn, 1.1) == [ack_of(RCV + 1, SND + 1)]
    assert conn.state is State.CLOSING
    assert events(conn) == []
    feed(conn, seg(RCV + 1, SND + 1), 1.2)
    assert sent(conn, 1.2) == []
    assert conn.state is State.TIME_WAIT
    assert events(conn) == [ConnectionTerminated(None)]
    assert conn.next_timer() == 1.2 + 2 * MSL
    fire(conn, 1.2 + 2 * MSL)
    assert conn.is_closed
    assert events(conn) == []


def test_closing_retransmits_fin_until_acked_rfc6298_5_5() -> None:
    conn = fin_wait_1()
    feed(conn, seg(RCV, SND, FIN | ACK), 1.1)
    sent(conn, 1.1)
    assert conn.next_timer() == 1.0 + RTO
    assert fire(conn, 1.0 + RTO) == [seg(SND, RCV + 1, FIN | ACK, window=OUR_WINDOW)]


# ===================================================== TIME-WAIT
def test_time_wait_retransmitted_fin_is_acked_and_restarts_2_msl_rfc9293_3_10_7_4() -> None:
    """RFC 9293 3.10.7.4 fifth/eighth, TIME-WAIT: "The only thing that can arrive in
    this state is a retransmission of the remote FIN.  Acknowledge it, and restart
    the 2 MSL timeout" (Linux: tcp_timewait_state_process reschedules too)."""
    conn = time_wait()
    assert conn.next_timer() == 1.2 + 2 * MSL
    feed(conn, seg(RCV, SND + 1, FIN | ACK), 30.0)
    assert sent(conn, 30.0) == [ack_of(RCV + 1, SND + 1)]
    assert conn.state is State.TIME_WAIT
    assert conn.next_timer() == 30.0 + 2 * MSL


def test_time_wait_retransmitted_fin_is_acked_rfc9293_3_10_7_4() -> None:
    conn = time_wait()
    feed(conn, seg(RCV, SND + 1, FIN | ACK), 30.0)
    assert sent(conn, 30.0) == [ack_of(RCV + 1, SND + 1)]
    assert events(conn) == []


def test_time_wait_expiry_closes_silently_rfc9293_3_10_8() -> None:
    conn = time_wait()
    assert fire(conn, 1.2 + 2 * MSL) == []
    assert conn.is_closed
    assert events(conn) == []


def test_time_wait_new_syn_above_rcv_nxt_supersedes_rfc9293_3_10_7_4_rfc6191() -> None:
    """RFC 9293 3.10.7.4 (TIME-WAIT) with RFC 6191: a SYN whose sequence number lies
    beyond the old RCV.NXT cannot belong to the old connection; it ends TIME-WAIT so
    the listener can open a new incarnation (the owner hands it the same datagram)."""
    conn = time_wait()
    feed(conn, seg(RCV + 1 + 100_000, 0, SYN), 5.0)
    assert conn.superseded
    assert conn.is_closed
    assert sent(conn, 5.0) == []
    assert events(conn) == []


def test_time_wait_old_syn_does_not_supersede_rfc5961_4_2() -> None:
    """A SYN at or below the old RCV.NXT may be an old duplicate: TIME-WAIT stays and the
    SYN gets a challenge ACK (RFC 5961 4.2)."""
    conn = time_wait()
    feed(conn, seg(RCV - 10, 0, SYN), 5.0)
    assert not conn.superseded
    assert conn.state is State.TIME_WAIT
    assert sent(conn, 5.0) == [seg(SND + 1, RCV + 1, window=OUR_WINDOW)]


# ===================================================== misuse
@pytest.mark.parametrize("how", ["shutdown_write", "close", "abort"])
def test_established_send_after_end_raises_local_protocol_error(how: str) -> None:
    """RFC 9293 3.10.2 SEND after CLOSE: "error: connection closing"."""
    conn = established()
    getattr(conn, how)()
    with pytest.raises(LocalProtocolError):
        conn.send(b"late")


def test_close_twice_is_harmless() -> None:
    conn = fin_wait_1()
    conn.close()
    assert sent(conn, 1.05) == []


# ===================================================== resets we send
def test_established_abort_sends_rst_and_terminates_rfc9293_3_10_5() -> None:
    """RFC 9293 3.10.5 ABORT in ESTABLISHED: send <SEQ=SND.NXT><CTL=RST> (with an
    ACK, like Linux), drop queued data, enter CLOSED; ConnectionTerminated(None).
    With 100 bytes unacknowledged a second RST goes at SND.UNA: the peer's RCV.NXT
    is one of the two, and RFC 5961 3.2 resets only on an exact match."""
    conn = established()
    conn.send(payload(100))
    sent(conn, 1.0)
    conn.send(payload(50))  # queued, never sent
    conn.abort()
    assert sent(conn, 1.1) == [
        seg(SND + 100, RCV, RST | ACK, window=0),
        seg(SND, RCV, RST | ACK, window=0),
    ]
    assert events(conn) == [ConnectionTerminated(None)]
    assert conn.state is State.CLOSED
    assert conn.is_closed
    assert conn.send_buffered == 0
    assert conn.next_timer() is None


def test_established_close_with_unread_data_sends_rst_rfc2525_2_17() -> None:
    """RFC 2525 2.17 / RFC 1122 4.2.2.13: closing with received data the
    application never read resets the connection instead of a FIN."""
    conn = established()
    conn.pause_reading()
    feed(conn, seg(RCV, SND, payload=payload(10)), 1.0)
    conn.close()
    assert sent(conn, 1.1) == [seg(SND, RCV + 10, RST | ACK, window=0)]
    assert conn.state is State.CLOSED
    assert events(conn) == [ConnectionTerminated(None)]


def test_fin_wait_2_data_after_close_sends_rst_rfc2525_2_17() -> None:
    """RFC 2525 2.17: data arriving after the application closed cannot be read:
    reset.  The RST carries SEQ = SND.NXT, the peer's RCV.NXT, so it is accepted."""
    conn = fin_wait_2()
    assert events(conn) == [ConnectionTerminated(None)]
    feed(conn, seg(RCV, SND + 1, ACK | PSH, payload=b"late"), 2.0)
    assert sent(conn, 2.0) == [seg(SND + 1, RCV, RST | ACK, window=0)]
    assert conn.state is State.CLOSED
    assert events(conn) == []


def test_fin_wait_1_data_after_close_sends_rst_rfc2525_2_17() -> None:
    """Our FIN is unacknowledged, so the peer's RCV.NXT is SND or SND + 1: an RST
    goes at each (RFC 5961 3.2 accepts only the exact one)."""
    conn = fin_wait_1()
    feed(conn, seg(RCV, SND, ACK | PSH, payload=b"late"), 2.0)
    assert sent(conn, 2.0) == [
        seg(SND + 1, RCV, RST | ACK, window=0),
        seg(SND, RCV, RST | ACK, window=0),
    ]
    assert conn.state is State.CLOSED
    assert events(conn) == [ConnectionTerminated(None)]


# ===================================================== resets we receive
def test_established_rst_at_rcv_nxt_resets_rfc5961_3_2() -> None:
    """RFC 5961 3.2: an RST whose SEG.SEQ exactly equals RCV.NXT resets the
    connection: ConnectionResetError, CLOSED, nothing sent."""
    conn = established()
    conn.send(payload(100))
    sent(conn, 1.0)
    feed(conn, seg(RCV, 0, RST, window=0), 1.1)
    assert sent(conn, 1.1) == []
    [terminated] = events(conn)
    assert isinstance(terminated, ConnectionTerminated)
    assert isinstance(terminated.error, ConnectionResetError)
    assert conn.state is State.CLOSED
    assert conn.is_closed
    assert conn.next_timer() is None


def test_established_rst_at_rcv_nxt_across_wrap_resets_rfc5961_3_2() -> None:
    conn = established(peer_isn=2**32 - 1)
    assert conn.rcv_nxt == 0
    feed(conn, seg(0, 0, RST, window=0), 1.0)
    assert conn.state is State.CLOSED


def test_established_rst_in_window_not_exact_gets_challenge_ack_rfc5961_3_2() -> None:
    """RFC 5961 3.2: an RST in the window but not at RCV.NXT gets a challenge
    <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>; the connection survives."""
    conn = established()
    feed(conn, seg(RCV + 1, 0, RST, window=0), 1.0)
    assert sent(conn, 1.0) == [ack_of(RCV, SND)]
    assert conn.state is State.ESTABLISHED
    assert events(conn) == []
    assert conn.stats.challenge_acks == 1


def test_established_challenge_acks_are_rate_limited_rfc5961_7() -> None:
    """RFC 5961 7: challenge ACKs are throttled (here 10 per second)."""
    conn = established()
    answered = []
    for i in range(15):
        feed(conn, seg(RCV + 1 + i, 0, RST, window=0), 1.0)
        answered.append(len(sent(conn, 1.0)))
    assert answered == [1] * 10 + [0] * 5
    feed(conn, seg(RCV + 1, 0, RST, window=0), 2.0)
    assert sent(conn, 2.0) == [ack_of(RCV, SND)]
    assert conn.state is State.ESTABLISHED


def test_established_rst_out_of_window_is_dropped_silently_rfc5961_3_2() -> None:
    """RFC 5961 3.2 / RFC 9293 3.10.7.4: an RST outside the window is dropped
    without reply."""
    conn = established()
    for seq in (RCV - 1, RCV + 0xFFFF, RCV + 2**31):
        feed(conn, seg(seq_add(seq, 0), 0, RST, window=0), 1.0)
        assert sent(conn, 1.0) == []
    assert conn.state is State.ESTABLISHED
    assert conn.stats.challenge_acks == 0


def test_established_syn_gets_challenge_ack_rfc5961_4_2() -> None:
    """RFC 5961 4.2: a SYN in a synchronized state, whatever its sequence number,
    gets a challenge ACK; the connection survives."""
    conn = established()
    feed(conn, seg(RCV + 10, 0, SYN, mss=1460), 1.0)
    assert sent(conn, 1.0) == [ack_of(RCV, SND)]
    feed(conn, seg(PEER_ISN - 5000, 0, SYN, mss=1460), 1.1)
    assert sent(conn, 1.1) == [ack_of(RCV, SND)]
    assert conn.state is State.ESTABLISHED
    assert events(conn) == []


def test_close_wait_rst_at_rcv_nxt_resets_rfc5961_3_2() -> None:
    conn = close_wait()
    feed(conn, seg(RCV + 1, 0, RST, window=0), 2.0)
    [terminated] = events(conn)
    assert isinstance(terminated, ConnectionTerminated)
    assert isinstance(terminated.error, ConnectionResetError)
    assert conn.state is State.CLOSED


def test_time_wait_rst_closes_without_second_event_rfc9293_3_10_7_4() -> None:
    """RFC 9293 3.10.7.4 second, TIME-WAIT: on RST "enter the CLOSED state"."""
    conn = time_wait()
    feed(conn, seg(RCV + 1, 0, RST, window=0), 2.0)
    assert conn.state is State.CLOSED
    assert events(conn) == []


def test_fin_wait_2_rst_after_termination_reports_nothing_more() -> None:
    conn = fin_wait_2()
    assert terminations(events(conn)) == [ConnectionTerminated(None)]
    feed(conn, seg(RCV, 0, RST, window=0), 2.0)
    assert conn.state is State.CLOSED
    assert events(conn) == []
