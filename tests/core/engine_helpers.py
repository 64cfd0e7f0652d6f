"""Fixtures for engine scenario tests (DESIGN.md tier 2), in smoltcp's style.

Each builder returns a Connection already in the state under test, reached by
feeding it hand-built segments, with everything it wanted to send and every event
it raised already drained.  Tests then feed exact segments at explicit times and
assert the exact segments that come out.

Conventions: the engine under test is "us"; the hand-built segments come from the
"peer".  The handshake starts at t=0 and the peer answers at t=HANDSHAKE_RTT, so
an established connection has one RTT sample (RFC 6298 2.2: SRTT=0.125,
RTTVAR=0.0625, RTO=0.375; binary fractions, so every deadline is an exact float).
Unless a test asks otherwise the peer offers MSS 1460 and SACK, but no timestamps
and no window scale, so the segments we send carry no options and windows are
plain 16-bit values.  Ports stay 0 on both sides.
"""

from __future__ import annotations

from typing import Any

from rudp.core.config import Config
from rudp.core.connection import Connection
from rudp.core.events import Event
from rudp.core.segment import ACK, FIN, HEADER_LEN, SYN, Segment, decode, encode
from rudp.core.seq import seq_add
from rudp.core.state import State

ISN = 10_000
PEER_ISN = 50_000
# Just below the 2**32 wrap: SYN at 2**32-3, first data byte at 2**32-2.
WRAP_ISN = 2**32 - 3
PEER_MSS = 1460
PEER_WINDOW = 65535
HANDSHAKE_RTT = 0.125
# RFC 6298 (2.2)/(2.3) after the one handshake sample: 0.125 + 4 * 0.0625.
RTO_AFTER_HANDSHAKE = 0.375
# What a default Config offers: max_segment_size minus the 20-byte header.
OUR_MSS = Config().max_segment_size - HEADER_LEN
# min(receive_buffer, 0xFFFF) when no window scale was agreed.
OUR_WINDOW = 0xFFFF


def config(**overrides: Any) -> Config:
    return Config(**overrides)


def seg(
    seq: int,
    ack: int = 0,
    flags: int = ACK,
    *,
    window: int = PEER_WINDOW,
    payload: bytes = b"",
    **options: Any,
) -> Segment:
    """A segment as the peer would send it (or as we expect to see it)."""
    return Segment(seq=seq, ack=ack, flags=flags, window=window, payload=payload, **options)


def feed(conn: Connection, segment: Segment, now: float) -> None:
    """Deliver ``segment`` through the real codec, checksum included."""
    conn.receive_datagram(encode(segment), now)


def sent(conn: Connection, now: float) -> list[Segment]:
    """Decode everything the engine wants on the wire at ``now``."""
    return [decode(data) for data in conn.datagrams_to_send(now)]


def events(conn: Connection) -> list[Event]:
    out: list[Event] = []
    while (event := conn.next_event()) is not None:
        out.append(event)
    return out


def fire(conn: Connection, now: float) -> list[Segment]:
    """Wake the engine at ``now`` and return what it sends."""
    conn.handle_timer(now)
    return sent(conn, now)


def payload(size: int, start: int = 0) -> bytes:
    """Recognisable bytes: byte i of the stream is (start + i) % 251."""
    return bytes((start + i) % 251 for i in range(size))


def syn_sent(isn: int = ISN, now: float = 0.0, **overrides: Any) -> Connection:
    """SYN-SENT, with the SYN already taken from the engine."""
    conn = Connection(config(**overrides), isn=isn)
    conn.connect(now)
    [syn] = sent(conn, now)
    assert syn.flags == SYN and syn.seq == isn
    assert conn.state is State.SYN_SENT
    return conn


def syn_ack(
    peer_isn: int,
    ack: int,
    *,
    window: int = PEER_WINDOW,
    mss: int | None = PEER_MSS,
    sack: bool = True,
    ts: tuple[int, int] | None = None,
    wscale: int | None = None,
    flags: int = SYN | ACK,
) -> Segment:
    """The peer's SYN-ACK (or, with flags=SYN, its SYN) with the options asked for."""
    return seg(
        peer_isn,
        ack,
        flags,
        window=window,
        mss=mss,
        sack_permitted=sack,
        wscale=wscale,
        ts_val=ts[0] if ts else None,
        ts_ecr=ts[1] if ts else None,
    )


def established(
    isn: int = ISN,
    peer_isn: int = PEER_ISN,
    *,
    peer_window: int = PEER_WINDOW,
    peer_mss: int | None = PEER_MSS,
    peer_sack: bool = True,
    peer_ts: bool = False,
    peer_wscale: int | None = None,
    rtt: float = HANDSHAKE_RTT,
    **overrides: Any,
) -> Connection:
    """ESTABLISHED by an active open: SYN at t=0, SYN-ACK at t=rtt, ACK drained.

    With ``peer_ts`` the peer's SYN-ACK carries TSval=1 and echoes our SYN's TSval.
    """
    conn = Connection(config(**overrides), isn=isn)
    conn.connect(0.0)
    [syn] = sent(conn, 0.0)
    ts = (1, syn.ts_val or 0) if peer_ts else None
    answer = syn_ack(
        peer_isn,
        seq_add(isn, 1),
        window=peer_window,
        mss=peer_mss,
        sack=peer_sack,
        ts=ts,
        wscale=peer_wscale,
    )
    feed(conn, answer, rtt)
    [ack] = sent(conn, rtt)
    assert ack.flags == ACK and ack.ack == seq_add(peer_isn, 1), ack
    assert conn.state is State.ESTABLISHED
    events(conn)
    return conn


def listening(isn: int = ISN, **overrides: Any) -> Connection:
    conn = Connection(config(**overrides), isn=isn)
    conn.listen()
    return conn


def syn_received(
    isn: int = ISN,
    peer_isn: int = PEER_ISN,
    *,
    peer_window: int = PEER_WINDOW,
    peer_mss: int | None = PEER_MSS,
    peer_sack: bool = True,
    peer_ts: tuple[int, int] | None = None,
    peer_wscale: int | None = None,
    now: float = 0.0,
    **overrides: Any,
) -> Connection:
    """SYN-RECEIVED by a passive open (listen(), then the peer's SYN at ``now``),
    with the SYN-ACK already taken from the engine."""
    conn = listening(isn, **overrides)
    syn = syn_ack(
        peer_isn,
        0,
        flags=SYN,
        window=peer_window,
        mss=peer_mss,
        sack=peer_sack,
        ts=peer_ts,
        wscale=peer_wscale,
    )
    feed(conn, syn, now)
    [answer] = sent(conn, now)
    assert answer.flags == SYN | ACK and answer.seq == isn, answer
    assert conn.state is State.SYN_RECEIVED
    return conn


def established_passive(isn: int = ISN, peer_isn: int = PEER_ISN, **kwargs: Any) -> Connection:
    """ESTABLISHED by a passive open: SYN at t=0, our SYN-ACK, the ACK at HANDSHAKE_RTT."""
    conn = syn_received(isn, peer_isn, **kwargs)
    feed(conn, seg(seq_add(peer_isn, 1), seq_add(isn, 1)), HANDSHAKE_RTT)
    assert sent(conn, HANDSHAKE_RTT) == []
    assert conn.state is State.ESTABLISHED
    events(conn)
    return conn


def fin_wait_1(
    isn: int = ISN, peer_isn: int = PEER_ISN, now: float = 1.0, **kwargs: Any
) -> Connection:
    """FIN-WAIT-1 after close() at ``now``; our FIN (seq ISN+1) taken from the engine."""
    conn = established(isn, peer_isn, **kwargs)
    conn.close()
    [fin] = sent(conn, now)
    assert fin.flags == FIN | ACK and fin.seq == seq_add(isn, 1), fin
    assert conn.state is State.FIN_WAIT_1
    return conn


def fin_wait_2(
    isn: int = ISN, peer_isn: int = PEER_ISN, now: float = 1.0, **kwargs: Any
) -> Connection:
    """FIN-WAIT-2: close() at ``now``, our FIN acknowledged at ``now`` + 0.1."""
    conn = fin_wait_1(isn, peer_isn, now, **kwargs)
    feed(conn, seg(seq_add(peer_isn, 1), seq_add(isn, 2)), now + 0.1)
    assert sent(conn, now + 0.1) == []
    assert conn.state is State.FIN_WAIT_2
    return conn


def close_wait(
    isn: int = ISN, peer_isn: int = PEER_ISN, now: float = 1.0, **kwargs: Any
) -> Connection:
    """CLOSE-WAIT: the peer's FIN (seq PEER_ISN+1) arrived at ``now`` and was ACKed;
    its EofReceived drained."""
    conn = established(isn, peer_isn, **kwargs)
    feed(conn, seg(seq_add(peer_isn, 1), seq_add(isn, 1), FIN | ACK), now)
    [ack] = sent(conn, now)
    assert ack.flags == ACK and ack.ack == seq_add(peer_isn, 2), ack
    assert conn.state is State.CLOSE_WAIT
    events(conn)
    return conn


def time_wait(
    isn: int = ISN, peer_isn: int = PEER_ISN, now: float = 1.0, **kwargs: Any
) -> Connection:
    """TIME-WAIT entered at ``now`` + 0.2: active close, FIN ACKed, then the peer's FIN."""
    conn = fin_wait_2(isn, peer_isn, now, **kwargs)
    feed(conn, seg(seq_add(peer_isn, 1), seq_add(isn, 2), FIN | ACK), now + 0.2)
    [ack] = sent(conn, now + 0.2)
    assert ack == seg(seq_add(isn, 2), seq_add(peer_isn, 2), window=ack.window)
    assert conn.state is State.TIME_WAIT
    events(conn)
    return conn
