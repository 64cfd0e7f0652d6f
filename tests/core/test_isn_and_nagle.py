"""Initial sequence numbers (RFC 6528) and Nagle's algorithm (RFC 896)."""

from __future__ import annotations

from engine_helpers import ISN, OUR_WINDOW, PEER_ISN, established, feed, payload, seg, sent

from rudp.core.isn import TICKS_PER_SECOND, IsnSource
from rudp.core.segment import ACK, PSH

SND = ISN + 1
RCV = PEER_ISN + 1


def test_rfc6528_isn_is_clock_plus_keyed_hash_of_the_address_pair() -> None:
    """RFC 6528 (3): ISN = M + F(localip, localport, remoteip, remoteport, secret):
    M ticks every 4 microseconds, F is fixed per address pair and secret."""
    source = IsnSource(b"k" * 16)
    a = source(10.0, ("10.0.0.1", 1), ("10.0.0.2", 2))
    b = source(11.0, ("10.0.0.1", 1), ("10.0.0.2", 2))
    assert (b - a) % 2**32 == TICKS_PER_SECOND  # the clock component alone moved


def test_rfc6528_other_pair_or_secret_gives_an_unrelated_isn() -> None:
    """F differs per address pair and per secret, so an off-path attacker who sees
    one connection's ISN learns nothing about another's."""
    one = IsnSource(b"k" * 16)
    other_secret = IsnSource(b"j" * 16)
    pair = (("10.0.0.1", 1), ("10.0.0.2", 2))
    isn = one(5.0, *pair)
    assert isn != one(5.0, ("10.0.0.1", 1), ("10.0.0.2", 3))
    assert isn != other_secret(5.0, *pair)
    assert 0 <= isn < 2**32


def test_rfc896_nagle_holds_small_segments_while_data_is_unacknowledged() -> None:
    """RFC 896 / RFC 9293 3.7.4: with Nagle on, a small segment waits while earlier
    data is unacknowledged, and goes when the ACK arrives."""
    conn = established(nagle=True)
    conn.send(payload(10))
    assert sent(conn, 1.0) == [seg(SND, RCV, ACK | PSH, window=OUR_WINDOW, payload=payload(10))]
    conn.send(payload(10, 10))
    assert sent(conn, 1.01) == []
    feed(conn, seg(RCV, SND + 10, ACK), 1.1)
    [late] = sent(conn, 1.1)
    assert (late.seq, late.payload) == (SND + 10, payload(10, 10))


def test_rfc896_nagle_off_by_default_small_segments_go_at_once() -> None:
    """asyncio sets TCP_NODELAY on its TCP sockets; rudp's default matches."""
    conn = established()
    conn.send(payload(10))
    sent(conn, 1.0)
    conn.send(payload(10, 10))
    [second] = sent(conn, 1.01)
    assert second.seq == SND + 10
