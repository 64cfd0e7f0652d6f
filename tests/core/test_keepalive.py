"""Keepalive (RFC 1122 4.2.3.6): off by default; probes an idle connection and gives
up when the peer stops answering."""

from __future__ import annotations

from engine_helpers import ISN, OUR_WINDOW, PEER_ISN, established, events, feed, fire, seg, sent

from rudp.core.events import ConnectionTerminated
from rudp.core.segment import ACK
from rudp.core.state import State

SND = ISN + 1
RCV = PEER_ISN + 1
IDLE, INTERVAL, PROBES = 10.0, 2.0, 3
# established() completes the handshake at the fixture's RTT.
START = 0.125


def keepalive_connection():  # type: ignore[no-untyped-def]
    return established(
        keepalive=True,
        keepalive_idle=IDLE,
        keepalive_interval=INTERVAL,
        keepalive_probes=PROBES,
    )


def probe() -> object:
    """A keepalive probe, as Linux sends it: an ACK one below SND.UNA, which the
    peer finds unacceptable and answers with an ACK (RFC 9293 3.10.7.4)."""
    return seg(SND - 1, RCV, ACK, window=OUR_WINDOW)


def test_rfc1122_4_2_3_6_keepalive_is_off_by_default() -> None:
    """RFC 1122 4.2.3.6: keepalive "MUST default to off": an idle connection has no
    timer at all."""
    conn = established()
    assert conn.next_timer() is None
    assert conn.keepalive_at is None


def test_rfc1122_4_2_3_6_idle_connection_is_probed_after_the_idle_time() -> None:
    conn = keepalive_connection()
    assert conn.keepalive_at == START + IDLE
    assert fire(conn, START + IDLE - 0.001) == []
    assert fire(conn, START + IDLE) == [probe()]
    assert conn.keepalive_at == START + IDLE + INTERVAL


def test_rfc1122_4_2_3_6_an_answer_restarts_the_idle_period() -> None:
    conn = keepalive_connection()
    fire(conn, START + IDLE)
    feed(conn, seg(RCV, SND, ACK), START + IDLE + 0.1)
    assert sent(conn, START + IDLE + 0.1) == []
    assert conn.keepalive_at == START + IDLE + 0.1 + IDLE
    assert conn.state is State.ESTABLISHED


def test_rfc1122_4_2_3_6_unanswered_probes_end_with_timeout_error() -> None:
    """After ``keepalive_probes`` unanswered probes the connection is dead: the
    application gets TimeoutError, as Linux's ETIMEDOUT."""
    conn = keepalive_connection()
    at = START + IDLE
    for _ in range(PROBES):
        assert fire(conn, at) == [probe()]
        at += INTERVAL
    assert fire(conn, at) == []
    assert conn.state is State.CLOSED
    [end] = events(conn)
    assert isinstance(end, ConnectionTerminated)
    assert isinstance(end.error, TimeoutError)


def test_rfc1122_4_2_3_6_traffic_defers_the_probe() -> None:
    """Data from the peer is proof of life: no probe while it keeps talking."""
    conn = keepalive_connection()
    for i in range(5):
        at = START + (i + 1) * (IDLE - 1)
        feed(conn, seg(RCV + i, SND, ACK, payload=b"x"), at)
        sent(conn, at)
        assert conn.keepalive_at == at + IDLE
