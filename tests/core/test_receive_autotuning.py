"""Receive-buffer autotuning: Linux's Dynamic Right-Sizing (tcp_rcv_space_adjust).

The receive buffer starts at ``Config.receive_buffer``.  Once a round trip, when
in-order data arrives, the engine compares what the application read in that
round trip (less what still waits unread) with the most it read in any before;
if it read more, the buffer grows to twice that plus 16 segments, more again in
proportion to the growth (slow start), up to ``Config.receive_buffer_max``.  It
never shrinks, an application that does not read never grows it, and
``set_receive_window`` turns it off (as SO_RCVBUF does).  The window scale is
chosen for the largest size, as RFC 7323 2.3 fixes it at the handshake.

Engine scenarios pin the rule with exact numbers; transfers over the simulated
network (10 MB/s, 40 ms round trip: a 400 KB bandwidth-delay product, over the
256 KiB initial buffer) show what it buys and that the window never shrinks.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from engine_helpers import (
    ISN,
    PEER_ISN,
    established,
    events,
    feed,
    fire,
    listening,
    payload,
    seg,
    sent,
    syn_ack,
)
from sim_helpers import SERVER, bulk_transfer

from rudp.core.config import Config
from rudp.core.connection import Connection
from rudp.core.events import DataReceived
from rudp.core.segment import ACK, SYN, Segment, decode
from rudp.core.seq import seq_add, seq_ge, seq_sub
from rudp.testing import Impairment

SND = ISN + 1
RCV = PEER_ISN + 1
INITIAL = Config().receive_buffer  # 256 KiB
MAXIMUM = Config().receive_buffer_max  # 4 MiB
# Our sending MSS against the fixtures' peer (MSS 1460): 1400 - 20.
MSS = 1380
SRTT = 0.125  # the fixtures' handshake sample


# ===================================================== engine scenarios
def _edges(conn: Connection, segments: list[Segment]) -> list[int]:
    """RCV.NXT + RCV.WND as each of our segments advertised it (RFC 7323 2.3)."""
    return [seq_add(s.ack, s.window << conn.rcv_wscale) for s in segments if s.flags & ACK]


def _read_segments(
    conn: Connection, start: int, count: int, t0: float, t1: float, *, read: bool = True
) -> tuple[int, list[int]]:
    """The peer sends ``count`` full segments from stream offset ``start``, evenly
    between t0 and t1; the application reads each (unless ``read`` is false).
    Returns the next offset and the right edges our ACKs advertised."""
    edges: list[int] = []
    for i in range(count):
        now = t0 + (t1 - t0) * i / count
        data = payload(MSS, start)
        feed(conn, seg(seq_add(RCV, start), SND, ACK, payload=data), now)
        if read:
            assert events(conn) == [DataReceived(data)]
        edges += _edges(conn, sent(conn, now))
        start += MSS
    return start, edges


def _drs_window(copied: int, space: int) -> int:
    """Linux's tcp_rcv_space_adjust: twice what was read, 16 segments' cushion,
    and twice that again in proportion to the growth since the last measure."""
    window = 2 * copied + 16 * MSS
    return window + 2 * (window * (copied - space) // space)


def test_established_reader_keeping_up_grows_buffer_once_a_round_trip_linux_drs() -> None:
    """Linux DRS (tcp_rcv_space_adjust): the first in-order segment starts the
    measure (expecting the peer's initial window, 10 segments); a round trip
    (SRTT) later, what the application read in between, less what waits unread,
    exceeds it, and the buffer grows by the rule -- the next ACK advertises it
    (RFC 7323 2.3: scaled by our shift).  Within the next round trip nothing is
    measured, and a round trip that reads no more than the best one grows nothing."""
    conn = established(peer_wscale=7)
    assert conn.receive_buffer == INITIAL and conn.rcv_wscale == 7
    offset, _ = _read_segments(conn, 0, 30, 1.0, 1.1)
    assert conn.receive_buffer == INITIAL
    # One more segment a round trip after the first: 30 were read, and this
    # one, not yet read, counts against them.
    data = payload(MSS, offset)
    feed(conn, seg(seq_add(RCV, offset), SND, ACK, payload=data), 1.0 + SRTT)
    grown = _drs_window(30 * MSS - MSS, 10 * MSS)
    assert grown == 490_176
    assert conn.receive_buffer == grown
    assert conn.stats.receive_buffer == grown
    events(conn)
    # The delayed ACK advertises the whole grown buffer (rounded up to the unit).
    [ack] = fire(conn, 1.0 + SRTT + 0.04)
    assert ack.window == -(-grown // 128)
    offset += MSS
    # The next measure is due at 1.25; the same pace does not grow it again.
    offset, _ = _read_segments(conn, offset, 20, 1.13, 1.25)
    offset, _ = _read_segments(conn, offset, 5, 1.25, 1.3)
    assert conn.receive_buffer == grown


def test_established_unread_data_does_not_count_linux_drs_inq() -> None:
    """Linux DRS with receive-queue awareness (tcp_rcv_space_adjust subtracts
    RCV.NXT - copied_seq): bytes that arrived and wait unread cancel bytes read,
    so an application falling behind does not grow the buffer."""
    conn = established(peer_wscale=7)
    offset, _ = _read_segments(conn, 0, 30, 1.0, 1.06)
    conn.pause_reading()
    # The measure falls due at 1.125, among these.
    offset, _ = _read_segments(conn, offset, 30, 1.06, 1.0 + SRTT + 0.015, read=False)
    assert conn.receive_buffer == INITIAL
    conn.resume_reading()
    assert len(events(conn)) == 1


def test_established_application_that_never_reads_never_grows_buffer_linux_drs() -> None:
    """Linux DRS: the measure is of bytes the application read; one that reads
    nothing keeps the initial buffer however long data keeps arriving."""
    conn = established(peer_wscale=7)
    conn.pause_reading()
    offset = 0
    for t in range(1, 7):
        offset, _ = _read_segments(conn, offset, 30, float(t), t + 0.1, read=False)
    assert conn.receive_buffer == INITIAL
    assert conn.stats.bytes_delivered == 0


def test_established_buffer_stops_at_receive_buffer_max_linux_drs() -> None:
    """Linux DRS caps the buffer at tcp_rmem[2]; ours at receive_buffer_max, even
    when the rule asks for more."""
    conn = established(peer_wscale=7, receive_buffer_max=300_000)
    offset, _ = _read_segments(conn, 0, 30, 1.0, 1.1)
    _read_segments(conn, offset, 1, 1.0 + SRTT, 1.2)
    assert _drs_window(30 * MSS - MSS, 10 * MSS) > 300_000
    assert conn.receive_buffer == 300_000


def test_established_growth_never_moves_right_edge_left_rfc9293_3_8_6() -> None:
    """RFC 9293 3.8.6 (shrinking the window is strongly discouraged) and
    3.8.6.2.2 (receiver SWS avoidance): as the buffer grows, every ACK's
    RCV.NXT + RCV.WND is at or beyond the one before."""
    conn = established(peer_wscale=7)
    offset, edges = _read_segments(conn, 0, 30, 1.0, 1.1)
    for t in range(1, 6):
        offset, more = _read_segments(conn, offset, 30 * 2**t, 1.0 + t * SRTT, 1.1 + t * SRTT)
        edges += more
    assert conn.receive_buffer > 4 * INITIAL
    assert all(seq_ge(b, a) for a, b in itertools.pairwise(edges))
    assert seq_sub(edges[-1], seq_add(RCV, offset)) > INITIAL  # the window grew


def test_established_set_receive_window_turns_autotuning_off_as_so_rcvbuf() -> None:
    """Linux: setting SO_RCVBUF locks the buffer (SOCK_RCVBUF_LOCK) and DRS
    leaves it alone; set_receive_window does the same."""
    conn = established(peer_wscale=7)
    conn.set_receive_window(INITIAL)
    offset, _ = _read_segments(conn, 0, 30, 1.0, 1.1)
    for t in range(1, 5):
        offset, _ = _read_segments(conn, offset, 60, 1.0 + t * SRTT, 1.1 + t * SRTT)
    assert conn.receive_buffer == INITIAL


def test_established_without_window_scaling_buffer_does_not_grow_rfc7323_2_2() -> None:
    """RFC 7323 2.2: without the option in both SYNs the window field carries at
    most 65535 bytes; a larger buffer could never be advertised, so it is not grown."""
    conn = established(peer_wscale=None)
    offset, _ = _read_segments(conn, 0, 30, 1.0, 1.1)
    _read_segments(conn, offset, 60, 1.0 + SRTT, 1.2 + SRTT)
    assert conn.receive_buffer == INITIAL


def test_established_pure_receiver_times_round_trip_by_tsecr_rfc7323_4_3() -> None:
    """RFC 7323 4.3 / Linux tcp_rcv_rtt_measure_ts: a receiver that sends only
    ACKs takes no RTT sample of its own; the TSecr of arriving data echoes the
    TSval of our ACK that let it go, so now - TSecr is the round trip that paces
    the measure (here 50 ms, not the 125 ms the handshake measured)."""
    conn = established(peer_wscale=7, peer_ts=True)
    mss = conn.snd_mss  # 1368 with timestamps
    assert conn.rtt.srtt == SRTT
    ts_val = 2

    def data(offset: int, now: float) -> int:
        nonlocal ts_val
        ts_val += 1
        segment = seg(
            seq_add(RCV, offset),
            SND,
            ACK,
            payload=payload(mss, offset),
            ts_val=ts_val,
            ts_ecr=conn._ts_now(now - 0.05),
        )
        feed(conn, segment, now)
        assert events(conn) == [DataReceived(payload(mss, offset))]
        sent(conn, now)
        return offset + mss

    offset = data(0, 1.0)
    for i in range(29):
        offset = data(offset, 1.001 + i * 0.001)
    assert conn.receive_buffer == INITIAL
    data(offset, 1.05)
    assert conn.receive_buffer > INITIAL


def test_established_stats_report_receive_buffer_and_window() -> None:
    """What a user inspects: the buffer's size now and the window last advertised."""
    conn = established(peer_wscale=7, receive_buffer=100_000)
    stats = conn.stats.as_dict()
    assert stats["receive_buffer"] == 100_000
    assert stats["receive_window"] == conn.receive_window


# ==================================================== window scale offer
@pytest.mark.parametrize(
    ("buffer", "maximum", "shift"),
    [
        (65535, 65535, 0),
        (65535, 4 * 1024 * 1024, 7),  # the default maximum
        (256 * 1024, 256 * 1024, 3),
        (256 * 1024, 8 * 1024 * 1024, 8),
        (1000, 2**30, 14),
    ],
)
def test_closed_and_listen_offer_window_scale_for_receive_buffer_max_rfc7323_2_3(
    buffer: int, maximum: int, shift: int
) -> None:
    """RFC 7323 2.2/2.3: the shift is fixed by the SYNs, so it is chosen for the
    largest buffer autotuning may grow to (Linux: from tcp_rmem[2]); the SYN's
    own window is the initial buffer, unscaled."""
    config = {"receive_buffer": buffer, "receive_buffer_max": maximum}
    conn = Connection(Config(**config), isn=ISN)
    conn.connect(0.0)
    [syn] = sent(conn, 0.0)
    assert (syn.wscale, syn.window) == (shift, min(buffer, 0xFFFF))
    server = listening(**config)
    feed(server, syn_ack(PEER_ISN, 0, flags=SYN, wscale=7), 0.0)
    [answer] = sent(server, 0.0)
    assert (answer.wscale, answer.window) == (shift, min(buffer, 0xFFFF))
    assert server.rcv_wscale == shift


def test_closed_set_receive_window_beyond_maximum_raises_offered_shift_rfc7323_2_3() -> None:
    """Before any SYN, an explicit buffer larger than receive_buffer_max is
    offered a shift that can advertise it (Linux: SO_RCVBUF before connect)."""
    conn = Connection(Config(), isn=ISN)
    conn.set_receive_window(64 * 1024 * 1024)
    conn.connect(0.0)
    [syn] = sent(conn, 0.0)
    assert syn.wscale == 11


def test_config_receive_buffer_max_is_validated() -> None:
    with pytest.raises(ValueError, match="receive_buffer_max"):
        Config(receive_buffer=1 << 20, receive_buffer_max=1 << 19)
    with pytest.raises(ValueError, match="receive_buffer_max"):
        Config(receive_buffer_max=2**30 + 1)
    assert Config(receive_buffer_max=2**30).receive_buffer_max == 2**30
    assert Config(receive_buffer_max=INITIAL).receive_buffer_max == INITIAL


# ============================================ bulk transfers, simulated
RATE = 10_000_000  # bytes per second
ONE_WAY = 0.020
BDP = int(RATE * 2 * ONE_WAY)  # 400 KB
# The bottleneck queues one BDP (the rule of thumb), then drops.
PATH = Impairment(delay=ONE_WAY, rate=RATE, queue_limit=BDP)
BACK = Impairment(delay=ONE_WAY)
SIZE = 8_000_000
# Enough for the buffer to reach its size, where only that size is checked.
SHORT = 3_000_000


@dataclass(frozen=True)
class Transfer:
    seconds: float  # from the first byte sent to the last byte read
    delivered: int  # bytes the server's application read
    intact: bool
    buffer: int  # the server's receive buffer at the end
    buffers: list[int]  # ... and as each read found it
    edges: list[int]  # RCV.NXT + RCV.WND of every ACK the server sent
    windows: list[int]  # RCV.WND of every ACK the server sent, in bytes
    retransmitted: int  # segments the client sent again


def transfer(
    config: Config,
    *,
    size: int = SIZE,
    setup: Callable[[Connection], object] | None = None,
    until: float = 30.0,
) -> Transfer:
    """The client sends ``size`` bytes to a server whose application reads each as
    it comes (``setup`` may change that on accept); run until all is read or
    ``until``."""
    buffers: list[int] = []
    run = bulk_transfer(
        config,
        size,
        PATH,
        BACK,
        until=until,
        trace=True,
        on_event=lambda conn, _: buffers.append(conn.receive_buffer),
        on_accept=setup,
    )
    net, client, server, data = run.net, run.client, run.server, run.data
    assert net.trace is not None
    edges, windows = [], []
    for record in net.trace:
        if record.kind == "send" and record.src == SERVER:
            segment = decode(record.data)
            if segment.flags & ACK and not segment.flags & SYN:
                window = segment.window << server.rcv_wscale
                edges.append(seq_add(segment.ack, window))
                windows.append(window)
    delivered = run.server_host.received(server)
    return Transfer(
        seconds=run.seconds,
        delivered=len(delivered),
        intact=delivered == data[: len(delivered)],
        buffer=server.receive_buffer,
        buffers=buffers,
        edges=edges,
        windows=windows,
        retransmitted=client.stats.retransmitted_segments,
    )


@functools.cache
def autotuned() -> Transfer:
    return transfer(Config())


@functools.cache
def fixed() -> Transfer:
    return transfer(Config(receive_buffer_max=INITIAL))


def test_bulk_transfer_over_long_fat_path_is_faster_with_autotuning_linux_drs() -> None:
    """Linux DRS (tcp_rcv_space_adjust): 8 MB over 10 MB/s with a 40 ms round
    trip.  A fixed 256 KiB window caps the rate at 256 KiB a round trip (some
    6.5 MB/s: about 1.39 s); the reader keeps up, so the buffer grows past the
    400 KB bandwidth-delay product and the path's rate is reached (about 1.0 s)."""
    auto, capped = autotuned(), fixed()
    assert auto.delivered == capped.delivered == SIZE and auto.intact and capped.intact
    assert auto.seconds < 0.8 * capped.seconds, (auto.seconds, capped.seconds)
    assert max(capped.windows) <= INITIAL
    assert max(auto.windows) > BDP > INITIAL
    assert INITIAL < auto.buffer <= MAXIMUM


def test_bulk_transfer_right_edge_never_moves_left_rfc9293_3_8_6() -> None:
    """RFC 9293 3.8.6: the receiver should not shrink the window; with the buffer
    growing under it (Linux DRS never shrinks it either), each ACK's RCV.NXT +
    RCV.WND is at or beyond the last."""
    run = autotuned()
    assert len(run.edges) > 1000
    assert all(seq_ge(b, a) for a, b in itertools.pairwise(run.edges))
    assert len(run.buffers) > 1000 and run.buffers[0] == INITIAL
    assert all(b >= a for a, b in itertools.pairwise(run.buffers))


def test_bulk_transfer_buffer_stops_at_receive_buffer_max_linux_drs() -> None:
    """Linux DRS stops at tcp_rmem[2]; ours at receive_buffer_max (512 KiB here,
    a multiple of the 2**4 window unit, so no rounding goes past it)."""
    run = transfer(Config(receive_buffer_max=512 * 1024), size=SHORT)
    assert run.delivered == SHORT and run.intact
    assert run.buffer == max(run.buffers) == 512 * 1024
    assert max(run.windows) == 512 * 1024


def test_bulk_transfer_to_application_that_never_reads_keeps_initial_buffer_linux_drs() -> None:
    """Linux DRS grows only for an application that reads: one that paused
    reading never commits more than the initial buffer; the window closes."""
    run = transfer(Config(), size=SHORT, setup=lambda conn: conn.pause_reading(), until=10.0)
    assert run.delivered == 0
    assert run.buffer == INITIAL
    assert max(run.windows) <= INITIAL and run.windows[-1] == 0


def test_bulk_transfer_with_set_receive_window_keeps_that_size_as_so_rcvbuf() -> None:
    """Linux: SO_RCVBUF set by the application turns DRS off for the socket;
    set_receive_window on the accepted connection does the same."""
    run = transfer(Config(), size=SHORT, setup=lambda conn: conn.set_receive_window(INITIAL))
    assert run.delivered == SHORT and run.intact
    assert run.buffer == INITIAL
    assert max(run.windows) <= INITIAL
