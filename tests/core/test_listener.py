"""The Listener (RFC 9293 3.10.7.2, LISTEN) and the RST answering segments that
belong to no connection (RFC 9293 3.10.7.1, CLOSED)."""

from __future__ import annotations

from collections.abc import Hashable

import pytest
from engine_helpers import ISN, PEER_ISN, events, feed, fire, payload, seg, sent

from rudp.core.config import Config
from rudp.core.connection import Connection
from rudp.core.events import Connected, DataReceived
from rudp.core.listener import Listener, reset_reply
from rudp.core.segment import ACK, FIN, PSH, RST, SYN, Segment, decode, encode
from rudp.core.state import State

SERVER_PORT = 8080
CLIENT_PORT = 40000
SND = ISN + 1
RCV = PEER_ISN + 1


def fixed_isn(now: float, local: Hashable, remote: Hashable) -> int:
    return ISN


def from_client(segment: Segment) -> bytes:
    segment.src_port, segment.dst_port = CLIENT_PORT, SERVER_PORT
    return encode(segment)


def client_syn(seq: int = PEER_ISN) -> Segment:
    return seg(seq, 0, SYN, mss=1460, sack_permitted=True)


def listener(backlog: int = 100, **overrides: object) -> Listener:
    return Listener(
        Config(**overrides),  # type: ignore[arg-type]
        backlog=backlog,
        local_port=SERVER_PORT,
        isn_source=fixed_isn,
    )


def replies(lst: Listener) -> list[tuple[Segment, Hashable]]:
    return [(decode(data), peer) for data, peer in lst.datagrams_to_send()]


# ------------------------------------------------------------------ SYN
def test_listen_syn_creates_connection_in_syn_received_rfc9293_3_10_7_2() -> None:
    """RFC 9293 3.10.7.2 third: a SYN gets a new connection in SYN-RECEIVED whose
    SYN-ACK <SEQ=ISS><ACK=SEG.SEQ+1> is queued; the ISN comes from the source."""
    lst = listener()
    conn = lst.receive_datagram(from_client(client_syn()), "A", 0.0)
    assert isinstance(conn, Connection)
    assert conn.state is State.SYN_RECEIVED
    [answer] = sent(conn, 0.0)
    expected = seg(ISN, RCV, SYN | ACK, window=0xFFFF, mss=1380, sack_permitted=True)
    expected.src_port, expected.dst_port = SERVER_PORT, CLIENT_PORT
    assert answer == expected
    assert conn.next_timer() == 1.0
    assert replies(lst) == []
    assert (lst.stats.syns_received, lst.stats.connections_created) == (1, 1)
    assert lst.half_open == 1


def test_listen_handshake_completes_on_the_new_connection_rfc9293_3_5() -> None:
    lst = listener()
    conn = lst.receive_datagram(from_client(client_syn()), "A", 0.0)
    assert conn is not None
    sent(conn, 0.0)
    conn.receive_datagram(from_client(seg(RCV, SND, ACK)), 0.125)
    assert conn.state is State.ESTABLISHED
    assert events(conn) == [Connected()]
    assert sent(conn, 0.125) == []
    assert lst.half_open == 0


def test_listen_retransmitted_syn_resends_syn_ack_of_the_same_connection() -> None:
    """The owner still routes the peer to the Listener until it registers the
    connection; a SYN retransmitted meanwhile must not make a second one."""
    lst = listener()
    conn = lst.receive_datagram(from_client(client_syn()), "A", 0.0)
    assert conn is not None
    [first] = sent(conn, 0.0)
    assert lst.receive_datagram(from_client(client_syn()), "A", 0.5) is None
    assert sent(conn, 0.5) == [first]
    assert lst.stats.connections_created == 1
    assert replies(lst) == []


def test_listen_backlog_full_drops_syns_silently() -> None:
    """Without SYN cookies, at most `backlog` half-open connections: a further SYN is
    dropped (no RST, the client retries), and counted."""
    lst = Listener(
        Config(), backlog=2, local_port=SERVER_PORT, isn_source=fixed_isn, syn_cookies=False
    )
    a = lst.receive_datagram(from_client(client_syn()), "A", 0.0)
    b = lst.receive_datagram(from_client(client_syn()), "B", 0.0)
    assert a is not None and b is not None
    assert lst.receive_datagram(from_client(client_syn()), "C", 0.1) is None
    assert replies(lst) == []
    assert lst.stats.syns_dropped_backlog_full == 1
    assert lst.stats.connections_created == 2
    # A completed handshake frees its place.
    sent(a, 0.0)
    a.receive_datagram(from_client(seg(RCV, SND, ACK)), 0.2)
    assert a.state is State.ESTABLISHED
    assert lst.receive_datagram(from_client(client_syn()), "C", 0.3) is not None
    assert lst.stats.connections_created == 3


def test_listen_backlog_frees_place_of_failed_handshake() -> None:
    lst = listener(backlog=1, syn_retries=0)
    a = lst.receive_datagram(from_client(client_syn()), "A", 0.0)
    assert a is not None
    sent(a, 0.0)
    assert fire(a, 1.0) == []
    # The application never saw this connection: it closes without an event.
    assert a.state is State.CLOSED
    assert events(a) == []
    assert lst.receive_datagram(from_client(client_syn()), "B", 1.5) is not None


def test_listen_rst_in_syn_received_discards_half_open_silently_rfc9293_3_10_7_4() -> None:
    """RFC 9293 3.10.7.4 second: an RST for a passive open in SYN-RECEIVED returns
    it to LISTEN and "the user need not be informed": the Listener goes on
    listening, so its half-open connection just closes, with no event."""
    lst = listener()
    conn = lst.receive_datagram(from_client(client_syn()), "A", 0.0)
    assert conn is not None
    sent(conn, 0.0)
    conn.receive_datagram(from_client(seg(RCV, 0, RST, window=0)), 0.2)
    assert sent(conn, 0.2) == []
    assert events(conn) == []
    assert conn.is_closed
    assert lst.half_open == 0


# --------------------------------------------------------------- non-SYN
def test_listen_ack_gets_reset_seq_seg_ack_rfc9293_3_10_7_2() -> None:
    """RFC 9293 3.10.7.2 second: an ACK for no connection is answered
    <SEQ=SEG.ACK><CTL=RST>, ports swapped, to the peer it came from."""
    lst = listener()
    assert lst.receive_datagram(from_client(seg(RCV, 123456, ACK, payload=b"x")), "D", 1.0) is None
    expected = seg(123456, 0, RST, window=0)
    expected.src_port, expected.dst_port = SERVER_PORT, CLIENT_PORT
    assert replies(lst) == [(expected, "D")]
    assert lst.stats.resets_sent == 1
    assert replies(lst) == []


def test_listen_syn_ack_gets_reset_rfc9293_3_10_7_2() -> None:
    """The ACK check comes before the SYN check: a SYN-ACK gets a reset, no
    connection."""
    lst = listener()
    assert lst.receive_datagram(from_client(seg(PEER_ISN, 777, SYN | ACK)), "D", 1.0) is None
    [(rst, peer)] = replies(lst)
    assert (rst.flags, rst.seq, peer) == (RST, 777, "D")
    assert lst.stats.connections_created == 0


@pytest.mark.parametrize(
    "segment",
    [
        seg(RCV, 0, FIN),
        seg(RCV, 0, PSH, payload=b"data"),
        seg(RCV, 0, 0),
    ],
    ids=["fin", "data-without-ack", "no-flags"],
)
def test_listen_segment_without_syn_or_ack_is_dropped_rfc9293_3_10_7_2(
    segment: Segment,
) -> None:
    """RFC 9293 3.10.7.2 fourth: "Any other control or text-bearing segment (not
    containing SYN) must have an ACK and thus would have been discarded by the
    ACK processing" -- drop it, no reply."""
    lst = listener()
    assert lst.receive_datagram(from_client(segment), "D", 1.0) is None
    assert replies(lst) == []
    assert lst.stats.dropped_other == 1


def test_listen_rst_is_ignored_rfc9293_3_10_7_2() -> None:
    lst = listener()
    assert lst.receive_datagram(from_client(seg(RCV, 5, RST | ACK)), "D", 1.0) is None
    assert replies(lst) == []
    assert lst.stats.resets_sent == 0


def test_listen_malformed_datagram_is_dropped_and_counted() -> None:
    lst = listener()
    corrupted = bytearray(from_client(client_syn()))
    corrupted[4] ^= 0xFF
    assert lst.receive_datagram(bytes(corrupted), "D", 1.0) is None
    assert lst.receive_datagram(b"short", "D", 1.0) is None
    assert replies(lst) == []
    assert lst.stats.dropped_malformed == 2


def test_listen_established_connection_receives_data() -> None:
    lst = listener()
    conn = lst.receive_datagram(from_client(client_syn()), "A", 0.0)
    assert conn is not None
    sent(conn, 0.0)
    conn.receive_datagram(from_client(seg(RCV, SND, ACK | PSH, payload=payload(100))), 0.125)
    assert events(conn) == [Connected(), DataReceived(payload(100))]


# ------------------------------------------------------------ reset_reply
def test_closed_reset_reply_to_ack_is_seq_seg_ack_rfc9293_3_10_7_1() -> None:
    """RFC 9293 3.10.7.1: "If the ACK bit is on, <SEQ=SEG.ACK><CTL=RST>"."""
    data = from_client(seg(RCV, 2**32 - 1, ACK | PSH, payload=b"late"))
    reply = reset_reply(data, Config())
    assert reply is not None
    expected = seg(2**32 - 1, 0, RST, window=0)
    expected.src_port, expected.dst_port = SERVER_PORT, CLIENT_PORT
    assert decode(reply) == expected


@pytest.mark.parametrize(
    ("segment", "ack"),
    [
        (seg(100, 0, SYN), 101),
        (seg(100, 0, FIN), 101),
        (seg(100, 0, PSH, payload=b"hello"), 105),
        (seg(100, 0, 0), 100),
        # SEG.SEQ+SEG.LEN wraps: 2**32-2 + 5 data + FIN = 4.
        (seg(2**32 - 2, 0, FIN | PSH, payload=b"hello"), 4),
        (seg(2**32 - 1, 0, SYN | FIN), 1),
    ],
)
def test_closed_reset_reply_to_non_ack_acks_seg_len_rfc9293_3_10_7_1(
    segment: Segment, ack: int
) -> None:
    """RFC 9293 3.10.7.1: "If the ACK bit is off, sequence number zero is used,
    <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>" (SEG.LEN counts SYN and FIN)."""
    reply = reset_reply(from_client(segment), Config())
    assert reply is not None
    expected = seg(0, ack, RST | ACK, window=0)
    expected.src_port, expected.dst_port = SERVER_PORT, CLIENT_PORT
    assert decode(reply) == expected


@pytest.mark.parametrize("flags", [RST, RST | ACK, RST | SYN])
def test_closed_reset_reply_never_answers_rst_rfc9293_3_10_7_1(flags: int) -> None:
    """RFC 9293 3.10.7.1: "An incoming segment containing a RST is discarded"."""
    assert reset_reply(from_client(seg(100, 200, flags)), Config()) is None


def test_closed_reset_reply_ignores_malformed_datagram() -> None:
    assert reset_reply(b"\x00" * 10, Config()) is None


def test_closed_reset_reply_udp_checksum_mode_leaves_checksum_zero() -> None:
    data = encode(seg(100, 200, ACK), checksum=False)
    reply = reset_reply(data, Config(checksum="udp"))
    assert reply is not None
    assert reply[16:18] == b"\x00\x00"
    assert decode(reply, verify_checksum=False).seq == 200


def test_closed_connection_answers_segments_with_reset_rfc9293_3_10_7_1() -> None:
    """A Connection in CLOSED (aborted, before its owner drops it) answers like
    reset_reply."""
    conn = Connection(Config(), isn=ISN)
    feed(conn, seg(RCV, 9999, ACK), 1.0)
    assert sent(conn, 1.0) == [seg(9999, 0, RST, window=0)]
    feed(conn, seg(RCV, 0, PSH, payload=b"abc"), 1.0)
    assert sent(conn, 1.0) == [seg(0, RCV + 3, RST | ACK, window=0)]
    feed(conn, seg(RCV, 0, RST), 1.0)
    assert sent(conn, 1.0) == []
