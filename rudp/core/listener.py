"""Passive opens without sockets: the LISTEN state of a server (RFC 9293 3.10.7.2).

The owner feeds the Listener every datagram from a peer that has no connection yet,
with the peer's address and the time.  A SYN within the backlog becomes a new
Connection in SYN-RECEIVED; anything else is dropped or answered with the RST of
RFC 9293 3.10.7.1.  Invariant: at most ``backlog`` half-open connections exist,
so a flood of SYNs cannot grow memory without bound.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from .config import Config
from .connection import Connection, reset_for
from .errors import MalformedSegment
from .isn import IsnSource
from .segment import ACK, MAX_DATAGRAM, RST, SYN, Segment, decode, encode
from .state import State

LoggerFactory = Callable[[Hashable], Any]


@dataclass(slots=True)
class ListenerStats:
    syns_received: int = 0
    connections_created: int = 0
    syns_dropped_backlog_full: int = 0
    resets_sent: int = 0
    dropped_malformed: int = 0
    dropped_other: int = 0


class Listener:
    def __init__(
        self,
        config: Config | None = None,
        *,
        backlog: int = 100,
        local_port: int = 0,
        isn_source: Callable[[float, Hashable, Hashable], int] | None = None,
        logger_factory: LoggerFactory | None = None,
    ) -> None:
        if backlog < 1:
            raise ValueError("backlog must be at least 1")
        self.config = config or Config()
        self.backlog = backlog
        self.local_port = local_port
        self.stats = ListenerStats()
        self._isn = isn_source or IsnSource()
        self._logger_factory = logger_factory
        self._half_open: dict[Hashable, Connection] = {}
        self._replies: list[tuple[bytes, Hashable]] = []

    @property
    def half_open(self) -> int:
        self._forget_finished_handshakes()
        return len(self._half_open)

    def receive_datagram(self, data: bytes, peer: Hashable, now: float) -> Connection | None:
        """A datagram from a peer with no connection; returns a new Connection for
        a SYN that fits the backlog, else None."""
        if len(data) > MAX_DATAGRAM:
            self.stats.dropped_malformed += 1
            return None
        try:
            seg = decode(data, verify_checksum=self.config.checksum == "full")
        except MalformedSegment:
            self.stats.dropped_malformed += 1
            return None
        flags = seg.flags
        # RFC 9293 3.10.7.2, in order: RST, ACK, SYN.
        if flags & RST:
            self.stats.dropped_other += 1
            return None
        if flags & ACK:
            self._reply(seg, peer)
            return None
        if not flags & SYN:
            self.stats.dropped_other += 1
            return None
        self.stats.syns_received += 1
        pending = self._half_open.get(peer)
        if pending is not None and pending.state is State.SYN_RECEIVED:
            # A retransmitted SYN: the handshake in progress answers it.
            pending.receive_segment(seg, now)
            return None
        if self.half_open >= self.backlog:
            self.stats.syns_dropped_backlog_full += 1
            return None
        logger = self._logger_factory(peer) if self._logger_factory else None
        conn = Connection(
            self.config,
            isn=self._isn(now, self.local_port, peer),
            local_port=self.local_port,
            remote_port=seg.src_port,
            logger=logger,
        )
        conn.listen(reusable=False)
        conn.receive_segment(seg, now)
        self._half_open[peer] = conn
        self.stats.connections_created += 1
        return conn

    def datagrams_to_send(self) -> list[tuple[bytes, Hashable]]:
        """RST replies queued since the last call, each with its peer."""
        replies, self._replies = self._replies, []
        return replies

    def _reply(self, seg: Segment, peer: Hashable) -> None:
        rst = reset_for(seg)
        if rst is None:
            return
        rst.src_port, rst.dst_port = seg.dst_port, seg.src_port
        self._replies.append((encode(rst, checksum=self.config.checksum == "full"), peer))
        self.stats.resets_sent += 1

    def _forget_finished_handshakes(self) -> None:
        done = [p for p, c in self._half_open.items() if c.state is not State.SYN_RECEIVED]
        for peer in done:
            del self._half_open[peer]


def reset_reply(data: bytes, config: Config | None = None) -> bytes | None:
    """RFC 9293 3.10.7.1: the RST answering a datagram that belongs to no
    connection (None for an RST or for bytes that are not a segment)."""
    checksum = (config or Config()).checksum == "full"
    try:
        seg = decode(data, verify_checksum=checksum)
    except MalformedSegment:
        return None
    rst = reset_for(seg)
    if rst is None:
        return None
    rst.src_port, rst.dst_port = seg.dst_port, seg.src_port
    return encode(rst, checksum=checksum)
