"""Segments packed from templates are what encode() writes.

``Connection._pack_with_ack`` packs the ACKs without SACK blocks and the data
segments and FINs of the general path, and decode() reads a SYN carrying every
option in one call; each must be byte for byte the segment encode() would write
(Linux's option order and padding).  A segment that encode() writes is one
that decode() then encode() give back unchanged, so each datagram is checked
that way, over every combination of the options we offer, those the peer
offered, and the checksum modes.
"""

from __future__ import annotations

import itertools

import pytest

from rudp.core.config import Config
from rudp.core.connection import Connection
from rudp.core.segment import ACK, FIN, SYN, Segment, decode, encode

OPTION_SETS = list(itertools.product([True, False], repeat=3))  # timestamps, sack, wscale


def _canonical(data: bytes, checksum: bool) -> bool:
    return encode(decode(data, verify_checksum=checksum), checksum=checksum) == data


def _peer_syn(timestamps: bool, sack: bool, wscale: bool, flags: int = SYN) -> Segment:
    return Segment(
        src_port=4000,
        dst_port=5000,
        seq=99,
        ack=0,
        flags=flags,
        window=1000,
        mss=1380,
        sack_permitted=sack,
        wscale=7 if wscale else None,
        ts_val=555 if timestamps else None,
        ts_ecr=0 if timestamps else None,
    )


@pytest.mark.parametrize("checksum", ["full", "udp"])
@pytest.mark.parametrize(("timestamps", "sack", "window_scale"), OPTION_SETS)
def test_syn_and_its_retransmission_are_encoded_as_encode_would(
    timestamps: bool, sack: bool, window_scale: bool, checksum: str
) -> None:
    cfg = Config(timestamps=timestamps, sack=sack, window_scale=window_scale, checksum=checksum)
    conn = Connection(cfg, isn=12345, local_port=4000, remote_port=5000)
    conn.connect(1.0)
    (syn,) = conn.datagrams_to_send(1.0)
    conn.handle_timer(conn.next_timer() or 0.0)
    (again,) = conn.datagrams_to_send(3.0)
    for datagram in (syn, again):
        assert _canonical(datagram, checksum == "full")
        seg = decode(datagram, verify_checksum=False)
        assert (seg.flags, seg.seq, seg.src_port, seg.dst_port) == (SYN, 12345, 4000, 5000)
        assert (seg.ts_val is not None, seg.sack_permitted, seg.wscale is not None) == (
            timestamps,
            sack,
            window_scale,
        )
    assert conn._ts_retransmitted == decode(again, verify_checksum=False).ts_val


@pytest.mark.parametrize("checksum", ["full", "udp"])
@pytest.mark.parametrize(("peer_ts", "peer_sack", "peer_ws"), OPTION_SETS)
@pytest.mark.parametrize(("timestamps", "sack", "window_scale"), OPTION_SETS)
def test_syn_ack_and_acks_are_encoded_as_encode_would(
    timestamps: bool,
    sack: bool,
    window_scale: bool,
    peer_ts: bool,
    peer_sack: bool,
    peer_ws: bool,
    checksum: str,
) -> None:
    full = checksum == "full"
    cfg = Config(timestamps=timestamps, sack=sack, window_scale=window_scale, checksum=checksum)
    conn = Connection(cfg, isn=777, local_port=5000, remote_port=4000)
    conn.listen()
    conn.receive_datagram(encode(_peer_syn(peer_ts, peer_sack, peer_ws), checksum=full), 2.0)
    (syn_ack,) = conn.datagrams_to_send(2.0)
    assert _canonical(syn_ack, full)
    offered = decode(syn_ack, verify_checksum=False)
    assert offered.flags == SYN | ACK and offered.ack == 100
    # RFC 7323 / RFC 2018: only what the peer offered too.
    assert (offered.ts_val is not None) == (timestamps and peer_ts)
    assert offered.sack_permitted == (sack and peer_sack)
    assert (offered.wscale is not None) == (window_scale and peer_ws)

    # The peer's ACK, then its FIN: each acknowledged with a pure ACK.
    ts = {"ts_val": 556, "ts_ecr": offered.ts_val} if offered.ts_val is not None else {}
    ack = Segment(src_port=4000, dst_port=5000, seq=100, ack=778, flags=ACK, window=60000, **ts)
    conn.receive_datagram(encode(ack, checksum=full), 2.1)
    fin = Segment(
        src_port=4000, dst_port=5000, seq=100, ack=778, flags=FIN | ACK, window=60000, **ts
    )
    conn.receive_datagram(encode(fin, checksum=full), 2.2)
    (fin_ack,) = conn.datagrams_to_send(2.2)
    assert _canonical(fin_ack, full)
    answer = decode(fin_ack, verify_checksum=False)
    assert (answer.flags, answer.seq, answer.ack) == (ACK, 778, 101)
    assert (answer.ts_ecr == 556) if offered.ts_val is not None else answer.ts_val is None
    assert conn.stats.segments_sent == 2

    # Our data and FIN, then their retransmission after a timeout (LAST-ACK).
    conn.send(b"x" * 3000)
    conn.close()
    sent = conn.datagrams_to_send(2.3)
    again: list[bytes] = []
    while not again:  # a tail loss probe, or the retransmission timeout
        deadline = conn.next_timer()
        assert deadline is not None
        conn.handle_timer(deadline)
        again = conn.datagrams_to_send(deadline)
    for datagram in sent + again:
        assert _canonical(datagram, full)
    segments = [decode(datagram, verify_checksum=False) for datagram in sent]
    assert sum(len(seg.payload) for seg in segments) == 3000
    assert segments[-1].flags & FIN
    if offered.ts_val is not None:
        assert conn._ts_retransmitted == decode(again[0], verify_checksum=False).ts_val
