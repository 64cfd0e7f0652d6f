"""D-SACK (RFC 2883): the receiver reports data that arrived twice in the first
SACK block of its next ACK, once; the sender recognises such a block (RFC 2883
4, RFC 3708 2).  What the sender makes of it is tested with TLP in
test_sack_recovery.py (RFC 8985 7.4.2)."""

from __future__ import annotations

from engine_helpers import (
    ISN,
    OUR_WINDOW,
    PEER_ISN,
    established,
    events,
    feed,
    payload,
    seg,
    sent,
)

from rudp.core.connection import _is_dsack
from rudp.core.events import DataReceived
from rudp.core.segment import ACK, PSH, Segment

SND = ISN + 1
RCV = PEER_ISN + 1


def ack_of(rcv: int, *blocks: tuple[int, int]) -> Segment:
    options = {"sack_blocks": blocks} if blocks else {}
    return seg(SND, rcv, ACK, window=OUR_WINDOW, **options)


def test_established_partial_duplicate_reports_the_old_part_rfc2883_4_1_1() -> None:
    """A segment straddling RCV.NXT: its new bytes are delivered, its old ones
    reported as the D-SACK block, and the ACK goes at once."""
    conn = established()
    feed(conn, seg(RCV, SND, payload=payload(100)), 1.0)
    events(conn)
    sent(conn, 1.0)
    feed(conn, seg(RCV + 50, SND, payload=payload(100, 50)), 1.1)
    assert events(conn) == [DataReceived(payload(50, 100))]
    assert sent(conn, 1.1) == [ack_of(RCV + 150, (RCV + 50, RCV + 100))]
    assert conn.stats.dsacks_sent == 1


def test_established_duplicate_below_ack_then_out_of_order_blocks_rfc2883_4_1_2() -> None:
    """A duplicate below the cumulative ACK while out-of-order data waits: the
    D-SACK block first, then the usual SACK blocks."""
    conn = established()
    feed(conn, seg(RCV, SND, payload=payload(100)), 1.0)
    feed(conn, seg(RCV + 200, SND, payload=payload(100, 200)), 1.01)
    sent(conn, 1.01)
    feed(conn, seg(RCV, SND, payload=payload(100)), 1.02)
    assert sent(conn, 1.02) == [ack_of(RCV + 100, (RCV, RCV + 100), (RCV + 200, RCV + 300))]


def test_established_duplicate_is_reported_once_rfc2883_4() -> None:
    """The next ACK, for new out-of-order data, no longer carries the D-SACK."""
    conn = established()
    feed(conn, seg(RCV, SND, payload=payload(100)), 1.0)
    sent(conn, 1.0)
    feed(conn, seg(RCV, SND, payload=payload(100)), 1.1)
    assert sent(conn, 1.1) == [ack_of(RCV + 100, (RCV, RCV + 100))]
    feed(conn, seg(RCV + 200, SND, payload=payload(100, 200)), 1.2)
    assert sent(conn, 1.2) == [ack_of(RCV + 100, (RCV + 200, RCV + 300))]
    assert conn.stats.dsacks_sent == 1


def test_established_without_sack_no_dsack_rfc2883_4() -> None:
    """D-SACK is an extension of SACK: without SACK permitted, a plain ACK."""
    conn = established(peer_sack=False)
    feed(conn, seg(RCV, SND, payload=payload(100)), 1.0)
    sent(conn, 1.0)
    feed(conn, seg(RCV, SND, payload=payload(100)), 1.1)
    assert sent(conn, 1.1) == [ack_of(RCV + 100)]
    assert conn.stats.dsacks_sent == 0


def test_established_dsack_pending_while_data_goes_rides_a_pure_ack_rfc2883_4() -> None:
    """Our own data carrying the ACK has no room for SACK blocks: the D-SACK
    follows on a pure ACK in the same batch instead of being lost."""
    conn = established()
    feed(conn, seg(RCV, SND, payload=payload(100)), 1.0)
    sent(conn, 1.0)
    feed(conn, seg(RCV, SND, payload=payload(100)), 1.1)
    conn.send(b"reply")
    out = sent(conn, 1.1)
    assert out == [
        seg(SND, RCV + 100, ACK | PSH, window=OUR_WINDOW, payload=b"reply"),
        seg(SND + 5, RCV + 100, ACK, window=OUR_WINDOW, sack_blocks=((RCV, RCV + 100),)),
    ]


def test_sender_recognises_dsack_blocks_rfc2883_4_rfc3708_2() -> None:
    ack = 1000
    assert _is_dsack(((900, 1000),), ack)  # below the cumulative ACK
    assert _is_dsack(((1100, 1200), (1100, 1300)), ack)  # inside the second block
    assert not _is_dsack(((1100, 1200),), ack)  # an ordinary SACK block
    assert not _is_dsack(((1100, 1200), (1300, 1400)), ack)
    assert _is_dsack(((2**32 - 100, 2**32 - 50),), 10)  # across the wrap
