"""Opening a connection (RFC 9293 3.5, 3.10.7.2, 3.10.7.3): active, passive and
simultaneous opens, option negotiation (RFC 7323, RFC 2018, RFC 9293 3.7.1) and
SYN retransmission (RFC 6298 5.5, 5.7)."""

from __future__ import annotations

import pytest
from engine_helpers import (
    ISN,
    OUR_MSS,
    OUR_WINDOW,
    PEER_ISN,
    WRAP_ISN,
    established,
    events,
    feed,
    fire,
    listening,
    payload,
    seg,
    sent,
    syn_ack,
    syn_received,
    syn_sent,
)

from rudp.core.config import Config
from rudp.core.connection import Connection
from rudp.core.errors import LocalProtocolError
from rudp.core.events import Connected, ConnectionTerminated, DataReceived
from rudp.core.segment import ACK, FIN, PSH, RST, SYN, Segment
from rudp.core.seq import seq_add
from rudp.core.state import State

SND = ISN + 1  # our first data byte
RCV = PEER_ISN + 1  # the peer's first data byte


# ------------------------------------------------------------------ CLOSED
def test_closed_connect_sends_syn_with_every_option_rfc9293_3_5() -> None:
    """RFC 9293 3.5 / 3.7.1, RFC 2018 2, RFC 7323 2-3: the SYN carries MSS
    (max_segment_size - 20), SACK-permitted, timestamps (TSecr 0) and the window
    scale for the 4 MiB that receive-buffer autotuning may grow to (shift 7: RFC
    7323 2.3 fixes it at the handshake); its own window is unscaled."""
    conn = Connection(Config(), isn=ISN)
    conn.connect(0.0)
    [syn] = sent(conn, 0.0)
    assert syn.ts_val is not None
    assert syn == seg(
        ISN,
        0,
        SYN,
        window=0xFFFF,
        mss=1380,
        sack_permitted=True,
        wscale=7,
        ts_val=syn.ts_val,
        ts_ecr=0,
    )
    assert conn.state is State.SYN_SENT
    # RFC 6298 (2.1): before any sample the RTO is the initial 1 s.
    assert conn.next_timer() == 1.0


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"max_segment_size": 1000}, {"mss": 980}),
        ({"sack": False}, {"sack_permitted": False}),
        ({"timestamps": False}, {"ts_val": None, "ts_ecr": None}),
        ({"window_scale": False}, {"wscale": None}),
        # RFC 7323 2.2: prepared to scale, so offer the option even with shift 0.
        ({"receive_buffer": 65535, "receive_buffer_max": 65535}, {"wscale": 0}),
        ({"receive_buffer": 1000, "receive_buffer_max": 1000}, {"wscale": 0, "window": 1000}),
        ({"receive_buffer": 65535 << 14, "receive_buffer_max": 65535 << 14}, {"wscale": 14}),
        # RFC 7323 2.3: the shift is chosen for the buffer autotuning may grow to.
        ({"receive_buffer": 1000}, {"wscale": 7, "window": 1000}),
        ({"receive_buffer_max": 256 * 1024}, {"wscale": 3}),
    ],
)
def test_closed_connect_syn_options_follow_config_rfc9293_3_7_1(
    overrides: dict[str, object], expected: dict[str, object]
) -> None:
    conn = Connection(Config(**overrides), isn=ISN)  # type: ignore[arg-type]
    conn.connect(0.0)
    [syn] = sent(conn, 0.0)
    fields: dict[str, object] = {
        "seq": ISN,
        "ack": 0,
        "flags": SYN,
        "window": 0xFFFF,
        "mss": 1380,
        "sack_permitted": True,
        "wscale": 7,
        "ts_ecr": 0,
    }
    fields.update(expected)
    for name, value in fields.items():
        assert getattr(syn, name) == value, name


def test_closed_connect_twice_raises() -> None:
    conn = syn_sent()
    with pytest.raises(LocalProtocolError):
        conn.connect(0.5)


# --------------------------------------------------------------- SYN-SENT
def test_syn_sent_syn_ack_enters_established_rfc9293_3_10_7_3() -> None:
    """RFC 9293 3.10.7.3 fourth: our SYN acknowledged, the peer's SYN accepted:
    ESTABLISHED, send <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>, report Connected."""
    conn = syn_sent()
    feed(conn, syn_ack(PEER_ISN, SND), 0.125)
    assert sent(conn, 0.125) == [seg(SND, RCV, ACK, window=OUR_WINDOW)]
    assert conn.state is State.ESTABLISHED
    assert events(conn) == [Connected()]
    assert (conn.snd_una, conn.snd_nxt, conn.rcv_nxt, conn.irs) == (SND, SND, RCV, PEER_ISN)
    # RFC 6298 (5.2): everything acknowledged, the retransmission timer stops.
    assert conn.next_timer() is None


def test_syn_sent_syn_ack_negotiates_every_option_rfc7323_rfc2018() -> None:
    """RFC 7323 2.2/3.2, RFC 2018 2, RFC 6691: everything both offered is on; the
    sending MSS is min(peer MSS, ours) less the 12-byte timestamp option."""
    conn = Connection(Config(), isn=ISN)
    conn.connect(0.0)
    [syn] = sent(conn, 0.0)
    assert syn.ts_val is not None
    feed(conn, syn_ack(PEER_ISN, SND, mss=1460, ts=(777, syn.ts_val), wscale=7), 0.125)
    [ack] = sent(conn, 0.125)
    # Our window (256 KiB) goes out shifted by our scale (7); TSecr echoes 777.
    assert ack == seg(
        SND, RCV, ACK, window=262144 >> 7, ts_val=seq_add(syn.ts_val, 125), ts_ecr=777
    )
    assert conn.timestamps_enabled and conn.sack_permitted
    assert (conn.snd_wscale, conn.rcv_wscale) == (7, 7)
    assert conn.peer_mss == 1460
    assert conn.snd_mss == OUR_MSS - 12 == 1368


@pytest.mark.parametrize(
    ("peer_mss", "peer_ts", "snd_mss"),
    [
        (1460, False, 1380),  # ours is smaller
        (1000, False, 1000),  # theirs is smaller
        (1000, True, 988),  # less the timestamp option (RFC 6691)
        (None, False, 536),  # RFC 9293 3.7.1: no option means 536
        (None, True, 524),
    ],
)
def test_syn_sent_snd_mss_is_smaller_mss_less_options_rfc9293_3_7_1(
    peer_mss: int | None, peer_ts: bool, snd_mss: int
) -> None:
    conn = established(peer_mss=peer_mss, peer_ts=peer_ts)
    assert conn.snd_mss == snd_mss
    conn.send(payload(3000))
    assert len(sent(conn, 1.0)[0].payload) == snd_mss


def test_syn_sent_syn_ack_without_wscale_disables_scaling_both_ways_rfc7323_2_2() -> None:
    """RFC 7323 2.2: scaling needs the option in both SYNs; the peer omitted it, so
    both shift counts are 0, our window field is min(buffer, 65535), and the
    peer's window fields are taken as they are."""
    conn = established(peer_wscale=None)
    assert (conn.snd_wscale, conn.rcv_wscale) == (0, 0)
    assert conn.receive_window == 0xFFFF
    feed(conn, seg(RCV, SND, window=1000), 1.0)
    assert conn.snd_wnd == 1000


def test_syn_sent_syn_ack_window_is_never_scaled_rfc7323_2_2() -> None:
    """RFC 7323 2.2: the window field of a SYN segment is not scaled; later ones are."""
    conn = established(peer_wscale=7, peer_window=1000)
    assert conn.snd_wnd == 1000
    feed(conn, seg(RCV, SND, window=1000), 1.0)
    assert conn.snd_wnd == 1000 << 7


def test_syn_sent_syn_ack_with_data_delivers_it_after_connected_rfc9293_3_10_7_3() -> None:
    """RFC 9293 3.10.7.3 fourth: "If there are other controls or text in the
    segment, then continue processing at the sixth step"; the text starts at
    SEG.SEQ+1 and fits the window our SYN advertised."""
    conn = syn_sent()
    answer = syn_ack(PEER_ISN, SND)
    answer.flags |= PSH
    answer.payload = b"hello"
    feed(conn, answer, 0.125)
    assert events(conn) == [Connected(), DataReceived(b"hello")]
    assert conn.rcv_nxt == RCV + 5
    assert sent(conn, 0.125) == [seg(SND, RCV + 5, ACK, window=OUR_WINDOW)]


def test_syn_sent_rst_with_acceptable_ack_refuses_rfc9293_3_10_7_3() -> None:
    """RFC 9293 3.10.7.3 second: RST with an acceptable ACK: "error: connection
    reset", enter CLOSED, send nothing."""
    conn = syn_sent()
    feed(conn, seg(0, SND, RST | ACK, window=0), 0.1)
    assert sent(conn, 0.1) == []
    [terminated] = events(conn)
    assert isinstance(terminated, ConnectionTerminated)
    assert isinstance(terminated.error, ConnectionRefusedError)
    assert conn.state is State.CLOSED
    assert conn.is_closed
    assert conn.next_timer() is None


@pytest.mark.parametrize(
    "rst",
    [
        seg(0, 0, RST, window=0),  # no ACK: drop
        seg(0, ISN + 5, RST | ACK, window=0),  # ACK beyond SND.NXT: drop, never reset an RST
        seg(0, ISN, RST | ACK, window=0),  # ACK of nothing of ours
    ],
    ids=["no-ack", "ack-beyond-snd-nxt", "ack-equals-iss"],
)
def test_syn_sent_unacceptable_rst_is_dropped_rfc9293_3_10_7_3(rst: Segment) -> None:
    conn = syn_sent()
    feed(conn, rst, 0.1)
    assert sent(conn, 0.1) == []
    assert events(conn) == []
    assert conn.state is State.SYN_SENT
    assert conn.next_timer() == 1.0


def test_syn_sent_old_duplicate_syn_ack_gets_reset_rfc9293_3_5_figure_9() -> None:
    """RFC 9293 3.5 figure 9: a SYN-ACK for an old incarnation (SEG.ACK =< ISS)
    is answered <SEQ=SEG.ACK><CTL=RST>; we stay in SYN-SENT and the right
    SYN-ACK still completes the handshake."""
    conn = syn_sent()
    feed(conn, syn_ack(PEER_ISN - 200, ISN - 9), 0.05)
    assert sent(conn, 0.05) == [seg(ISN - 9, 0, RST, window=0)]
    assert conn.state is State.SYN_SENT
    assert events(conn) == []
    assert conn.next_timer() == 1.0
    feed(conn, syn_ack(PEER_ISN, SND), 0.125)
    assert sent(conn, 0.125) == [seg(SND, RCV, ACK, window=OUR_WINDOW)]
    assert events(conn) == [Connected()]


def test_syn_sent_ack_beyond_snd_nxt_across_wrap_gets_reset_rfc9293_3_10_7_3() -> None:
    """SEG.ACK > SND.NXT with ISS = 2**32-3: SND.NXT is 2**32-2 and the ACK 2
    (wrapped) is beyond it: <SEQ=SEG.ACK><CTL=RST>."""
    conn = syn_sent(isn=WRAP_ISN)
    feed(conn, seg(PEER_ISN, 2, ACK), 0.05)
    assert sent(conn, 0.05) == [seg(2, 0, RST, window=0)]
    assert conn.state is State.SYN_SENT


def test_syn_sent_syn_ack_across_wrap_establishes_rfc9293_3_4() -> None:
    """ISS = 2**32-3 and IRS = 2**32-1: SND.NXT = 2**32-2, RCV.NXT wraps to 0."""
    conn = syn_sent(isn=WRAP_ISN)
    feed(conn, syn_ack(2**32 - 1, 2**32 - 2), 0.125)
    assert sent(conn, 0.125) == [seg(2**32 - 2, 0, ACK, window=OUR_WINDOW)]
    assert conn.state is State.ESTABLISHED
    assert conn.rcv_nxt == 0


def test_syn_sent_ack_without_syn_is_dropped_rfc9293_3_10_7_3() -> None:
    """RFC 9293 3.10.7.3 fifth: neither SYN nor RST: drop the segment."""
    conn = syn_sent()
    feed(conn, seg(PEER_ISN, SND, ACK), 0.1)
    assert sent(conn, 0.1) == []
    assert conn.state is State.SYN_SENT


def test_syn_sent_timeout_retransmits_syn_with_backoff_rfc6298_5_5() -> None:
    """RFC 6298 (5.4-5.6): the SYN goes again at 1, 3, 7, 15, 31, 63 s (RTO doubling
    from 1 s); the seventh timeout, with max_rto capping the RTO at 60 s, fails
    the open with TimeoutError after config.syn_retries (6) retransmissions."""
    conn = Connection(Config(), isn=ISN)
    conn.connect(0.0)
    [first] = sent(conn, 0.0)
    assert first.ts_val is not None
    for at in (1.0, 3.0, 7.0, 15.0, 31.0, 63.0):
        assert conn.next_timer() == at
        assert fire(conn, at - 0.001) == []
        [again] = fire(conn, at)
        # The same SYN, with the timestamp clock moved on (1 ms ticks).
        assert again == seg(
            ISN,
            0,
            SYN,
            window=0xFFFF,
            mss=1380,
            sack_permitted=True,
            wscale=7,
            ts_val=seq_add(first.ts_val, int(at * 1000)),
            ts_ecr=0,
        )
        assert events(conn) == []
    assert conn.next_timer() == 63.0 + 60.0
    assert fire(conn, 123.0) == []
    [terminated] = events(conn)
    assert isinstance(terminated, ConnectionTerminated)
    assert isinstance(terminated.error, TimeoutError)
    assert conn.state is State.CLOSED
    assert conn.next_timer() is None


def test_syn_sent_syn_retries_bounds_the_attempts() -> None:
    conn = syn_sent(syn_retries=2)
    assert [s.seq for s in fire(conn, 1.0)] == [ISN]
    assert [s.seq for s in fire(conn, 3.0)] == [ISN]
    assert conn.next_timer() == 7.0
    assert fire(conn, 7.0) == []
    [terminated] = events(conn)
    assert isinstance(terminated, ConnectionTerminated)
    assert isinstance(terminated.error, TimeoutError)


def test_syn_sent_after_syn_timeout_rto_is_3s_rfc6298_5_7() -> None:
    """RFC 6298 (5.7): the SYN timed out, and Karn's rule (no timestamps) gives no
    sample from the retransmitted SYN, so data starts with RTO = 3 s."""
    conn = syn_sent(timestamps=False)
    assert [s.seq for s in fire(conn, 1.0)] == [ISN]
    feed(conn, syn_ack(PEER_ISN, SND), 1.5)
    assert sent(conn, 1.5) == [seg(SND, RCV, ACK, window=OUR_WINDOW)]
    assert conn.rtt.srtt is None
    conn.send(b"x" * 100)
    assert sent(conn, 2.0) == [seg(SND, RCV, ACK | PSH, window=OUR_WINDOW, payload=b"x" * 100)]
    assert conn.rto_at == 5.0


def test_syn_sent_retransmitted_syn_initial_window_is_one_segment_rfc5681_3_1() -> None:
    """RFC 5681 3.1: "if the SYN or SYN/ACK is lost, the initial window used by a
    sender after a correctly transmitted SYN MUST be one segment"."""
    conn = syn_sent(timestamps=False)
    fire(conn, 1.0)
    feed(conn, syn_ack(PEER_ISN, SND), 1.5)
    sent(conn, 1.5)
    conn.send(payload(5000))
    assert [(s.seq, len(s.payload)) for s in sent(conn, 2.0)] == [(SND, OUR_MSS)]
    assert conn.cc.cwnd == OUR_MSS


def test_syn_sent_close_deletes_the_tcb_without_reset_rfc9293_3_10_4() -> None:
    """RFC 9293 3.10.4 CLOSE in SYN-SENT: delete the TCB; nothing goes out."""
    conn = syn_sent()
    conn.close()
    assert sent(conn, 0.1) == []
    assert events(conn) == [ConnectionTerminated(None)]
    assert conn.state is State.CLOSED
    assert conn.is_closed


def test_syn_sent_abort_sends_nothing_rfc9293_3_10_5() -> None:
    conn = syn_sent()
    conn.abort()
    assert sent(conn, 0.1) == []
    assert events(conn) == [ConnectionTerminated(None)]
    assert conn.is_closed


# --------------------------------------------------------- simultaneous open
def test_syn_sent_syn_enters_syn_received_rfc9293_3_5_figure_8() -> None:
    """RFC 9293 3.5 figure 8 line 3-5: SYN-SENT gets a bare SYN, goes to
    SYN-RECEIVED and sends <SEQ=ISS><ACK=IRS+1><CTL=SYN,ACK>, answering with only
    the options the peer offered (MSS and SACK here)."""
    conn = syn_sent()
    feed(conn, syn_ack(PEER_ISN, 0, flags=SYN), 0.1)
    assert sent(conn, 0.1) == [
        seg(ISN, RCV, SYN | ACK, window=0xFFFF, mss=1380, sack_permitted=True)
    ]
    assert conn.state is State.SYN_RECEIVED
    assert events(conn) == []
    # The SYN's retransmission deadline still holds; the SYN-ACK goes again then.
    assert conn.next_timer() == 1.0
    assert fire(conn, 1.0) == [
        seg(ISN, RCV, SYN | ACK, window=0xFFFF, mss=1380, sack_permitted=True)
    ]


def test_syn_received_simultaneous_open_syn_ack_establishes_rfc9293_3_5_figure_8() -> None:
    """RFC 9293 3.5 figure 8 line 6: <SEQ=300><ACK=101><CTL=SYN,ACK> takes peer A
    from SYN-RECEIVED to ESTABLISHED (Linux accepts it too: tcp_validate_incoming's
    simultaneous-open exception to RFC 5961 4.2)."""
    conn = syn_sent()
    feed(conn, syn_ack(PEER_ISN, 0, flags=SYN), 0.1)
    sent(conn, 0.1)
    feed(conn, syn_ack(PEER_ISN, SND), 0.2)
    assert conn.state is State.ESTABLISHED
    assert events(conn) == [Connected()]
    # Figure 8 line 7: nothing more to send; both SYNs are acknowledged.
    assert sent(conn, 0.2) == []
    assert conn.next_timer() is None


def test_syn_received_simultaneous_open_ack_establishes_rfc9293_3_10_7_4() -> None:
    """A bare ACK of our SYN also completes the simultaneous open."""
    conn = syn_sent()
    feed(conn, syn_ack(PEER_ISN, 0, flags=SYN), 0.1)
    sent(conn, 0.1)
    feed(conn, seg(RCV, SND, ACK), 0.2)
    assert sent(conn, 0.2) == []
    assert conn.state is State.ESTABLISHED
    assert events(conn) == [Connected()]
    assert conn.next_timer() is None


# ------------------------------------------------------------ LISTEN (listen())
def test_listen_syn_answers_syn_ack_with_offered_options_rfc9293_3_10_7_2() -> None:
    """RFC 9293 3.10.7.2 third: SYN in LISTEN: RCV.NXT = SEG.SEQ+1, send
    <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>, enter SYN-RECEIVED.  Every option was
    offered, so each is answered (TSecr echoes the SYN's TSval, RFC 7323 3.2)."""
    conn = listening()
    feed(conn, syn_ack(PEER_ISN, 0, flags=SYN, ts=(500, 0), wscale=7), 0.0)
    [answer] = sent(conn, 0.0)
    assert answer.ts_val is not None
    assert answer == seg(
        ISN,
        RCV,
        SYN | ACK,
        window=0xFFFF,
        mss=1380,
        sack_permitted=True,
        wscale=7,
        ts_val=answer.ts_val,
        ts_ecr=500,
    )
    assert conn.state is State.SYN_RECEIVED
    assert (conn.snd_wscale, conn.rcv_wscale) == (7, 7)
    assert conn.next_timer() == 1.0


@pytest.mark.parametrize(
    ("offered", "answered"),
    [
        ({"mss": 1460, "sack": False}, {}),
        ({"mss": None, "sack": True}, {"sack_permitted": True}),
        ({"mss": 1460, "sack": False, "wscale": 0}, {"wscale": 7}),
        ({"mss": 1460, "sack": False, "ts": (9, 0)}, {"ts_ecr": 9}),
    ],
)
def test_listen_syn_answers_only_the_options_offered_rfc7323_2_2_rfc2018_2(
    offered: dict[str, object], answered: dict[str, object]
) -> None:
    """RFC 7323 2.2/3.2, RFC 2018 2: WS, TS and SACK-permitted appear in a SYN-ACK
    only if the SYN carried them; MSS is always sent (RFC 9293 3.7.1)."""
    conn = listening()
    feed(conn, syn_ack(PEER_ISN, 0, flags=SYN, **offered), 0.0)  # type: ignore[arg-type]
    [answer] = sent(conn, 0.0)
    expected = seg(ISN, RCV, SYN | ACK, window=0xFFFF, mss=1380)
    for name, value in answered.items():
        setattr(expected, name, value)
    if "ts_ecr" in answered:
        expected.ts_val = answer.ts_val
    assert answer == expected


def test_listen_rst_is_ignored_rfc9293_3_10_7_2() -> None:
    conn = listening()
    feed(conn, seg(PEER_ISN, 0, RST, window=0), 0.0)
    assert sent(conn, 0.0) == []
    assert conn.state is State.LISTEN


def test_listen_ack_gets_reset_rfc9293_3_10_7_2() -> None:
    """RFC 9293 3.10.7.2 second: any ACK in LISTEN gets <SEQ=SEG.ACK><CTL=RST>."""
    conn = listening()
    feed(conn, seg(PEER_ISN, 4242, ACK), 0.0)
    assert sent(conn, 0.0) == [seg(4242, 0, RST, window=0)]
    assert conn.state is State.LISTEN


def test_listen_segment_without_syn_is_dropped_rfc9293_3_10_7_2() -> None:
    conn = listening()
    feed(conn, seg(PEER_ISN, 0, FIN, payload=b"x"), 0.0)
    assert sent(conn, 0.0) == []
    assert conn.state is State.LISTEN


# ------------------------------------------------------------ SYN-RECEIVED
def test_syn_received_ack_enters_established_rfc9293_3_10_7_4() -> None:
    """RFC 9293 3.10.7.4 fifth: SND.UNA < SEG.ACK =< SND.NXT in SYN-RECEIVED:
    enter ESTABLISHED; nothing to send."""
    conn = syn_received()
    feed(conn, seg(RCV, SND, ACK), 0.125)
    assert sent(conn, 0.125) == []
    assert conn.state is State.ESTABLISHED
    assert events(conn) == [Connected()]
    assert conn.snd_una == SND
    assert conn.next_timer() is None


def test_syn_received_across_wrap_enters_established_rfc9293_3_4() -> None:
    conn = syn_received(isn=WRAP_ISN, peer_isn=2**32 - 1)
    assert conn.rcv_nxt == 0
    feed(conn, seg(0, 2**32 - 2, ACK), 0.125)
    assert conn.state is State.ESTABLISHED
    feed(conn, seg(0, 2**32 - 2, ACK | PSH, payload=b"abc"), 0.2)
    assert events(conn) == [Connected(), DataReceived(b"abc")]
    assert conn.rcv_nxt == 3


def test_syn_received_retransmitted_syn_resends_syn_ack_rfc9293_3_5() -> None:
    """The SYN-ACK was lost and the peer sent its SYN again: the same SYN-ACK
    goes out again, the retransmission deadline unchanged."""
    conn = syn_received()
    feed(conn, syn_ack(PEER_ISN, 0, flags=SYN), 0.5)
    assert sent(conn, 0.5) == [
        seg(ISN, RCV, SYN | ACK, window=0xFFFF, mss=1380, sack_permitted=True)
    ]
    assert conn.state is State.SYN_RECEIVED
    assert conn.next_timer() == 1.0


def test_syn_received_timeout_retransmits_syn_ack_rfc6298_5_5() -> None:
    """The SYN-ACK is retransmitted with the RTO backing off; once syn_retries
    are spent a passive open goes back to LISTEN without telling the user, as
    for an RST (RFC 9293 3.10.7.4 second), ready for a fresh SYN."""
    conn = syn_received(syn_retries=1)
    syn_ack_again = seg(ISN, RCV, SYN | ACK, window=0xFFFF, mss=1380, sack_permitted=True)
    assert conn.next_timer() == 1.0
    assert fire(conn, 1.0) == [syn_ack_again]
    assert conn.next_timer() == 3.0
    assert fire(conn, 3.0) == []
    assert conn.state is State.LISTEN
    assert events(conn) == []
    assert conn.next_timer() is None
    feed(conn, syn_ack(PEER_ISN + 7, 0, flags=SYN), 4.0)
    assert conn.state is State.SYN_RECEIVED
    assert [(s.flags, s.seq, s.ack) for s in sent(conn, 4.0)] == [(SYN | ACK, ISN, PEER_ISN + 8)]


def test_syn_received_rst_returns_passive_open_to_listen_rfc9293_3_10_7_4() -> None:
    """RFC 9293 3.10.7.4 second, SYN-RECEIVED: "If this connection was initiated
    with a passive OPEN (i.e., came from the LISTEN state), then return this
    connection to LISTEN state and return.  The user need not be informed."
    """
    conn = syn_received()
    feed(conn, seg(RCV, 0, RST, window=0), 0.2)
    assert sent(conn, 0.2) == []
    assert conn.state is State.LISTEN
    assert events(conn) == []


def test_syn_received_unacceptable_ack_gets_reset_rfc9293_3_10_7_4() -> None:
    """RFC 9293 3.10.7.4 fifth, SYN-RECEIVED: an unacceptable SEG.ACK gets
    <SEQ=SEG.ACK><CTL=RST>; the half-open connection stays."""
    conn = syn_received()
    feed(conn, seg(RCV, ISN + 5, ACK), 0.1)
    assert sent(conn, 0.1) == [seg(ISN + 5, 0, RST, window=0)]
    assert conn.state is State.SYN_RECEIVED
    assert events(conn) == []


def test_syn_received_ack_with_data_is_delivered_after_connected() -> None:
    conn = syn_received()
    feed(conn, seg(RCV, SND, ACK, payload=b"hello"), 0.2)
    assert conn.state is State.ESTABLISHED
    assert events(conn) == [Connected(), DataReceived(b"hello")]
    # One segment of data: the ACK is delayed (RFC 9293 3.8.6.3).
    assert sent(conn, 0.2) == []
    assert conn.next_timer() == 0.2 + 0.04
    assert fire(conn, 0.2 + 0.04) == [seg(SND, RCV + 5, ACK, window=OUR_WINDOW)]


def test_syn_received_close_sends_fin_once_established_rfc9293_3_10_4() -> None:
    """RFC 9293 3.10.4 CLOSE in SYN-RECEIVED: the FIN waits for ESTABLISHED, then
    the connection goes to FIN-WAIT-1."""
    conn = syn_received()
    conn.close()
    assert sent(conn, 0.1) == []
    feed(conn, seg(RCV, SND, ACK), 0.125)
    assert conn.state is State.FIN_WAIT_1
    assert sent(conn, 0.125) == [seg(SND, RCV, FIN | ACK, window=OUR_WINDOW)]


def test_syn_received_small_buffer_answers_wscale_0_rfc7323_2_2() -> None:
    """RFC 7323 2.2: the peer scales its window only if our SYN-ACK carries the
    option, so our reading of its windows must follow what we answered; a TCP
    prepared to scale SHOULD answer with shift 0 (a 64 KiB buffer) rather than
    omit the option."""
    conn = listening(receive_buffer=65535, receive_buffer_max=65535)
    feed(conn, syn_ack(PEER_ISN, 0, flags=SYN, wscale=7), 0.0)
    [answer] = sent(conn, 0.0)
    assert answer.wscale == 0
    assert answer.window == 0xFFFF
    feed(conn, seg(RCV, SND, ACK, window=1000), 0.125)
    assert conn.state is State.ESTABLISHED
    assert (conn.snd_wscale, conn.rcv_wscale) == (7, 0)
    assert conn.snd_wnd == 1000 << 7


def test_syn_received_window_scale_off_answers_no_wscale_rfc7323_2_2() -> None:
    conn = listening(window_scale=False)
    feed(conn, syn_ack(PEER_ISN, 0, flags=SYN, wscale=7), 0.0)
    [answer] = sent(conn, 0.0)
    assert answer.wscale is None
    feed(conn, seg(RCV, SND, ACK, window=1000), 0.125)
    assert (conn.snd_wscale, conn.rcv_wscale) == (0, 0)
    assert conn.snd_wnd == 1000
