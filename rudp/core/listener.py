"""Passive opens without sockets: the LISTEN state of a server (RFC 9293 3.10.7.2).

The owner feeds the Listener every datagram from a peer that has no connection yet,
with the peer's address and the time.  A SYN within the backlog becomes a new
Connection in SYN-RECEIVED; past the backlog (or always, if so configured) it is
answered with a SYN cookie (RFC 4987 3.6, see :mod:`.syncookies`) and forgotten,
and the ACK that returns the cookie becomes an ESTABLISHED Connection.  Anything
else is dropped or answered with the RST of RFC 9293 3.10.7.1.

Invariant: at most ``backlog`` half-open connections exist and a cookie keeps no
state, so a flood of SYNs cannot grow memory.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from typing import Any

from .config import Config
from .connection import Connection, reset_for
from .errors import MalformedSegment
from .isn import IsnSource
from .segment import ACK, MAX_DATAGRAM, RST, SYN, Segment, decode, encode
from .seq import seq_add
from .state import State
from .syncookies import COOKIE_LIFETIME, SynCookies, cookie_counter, stamp_ts_val, ts_option_bits

LoggerFactory = Callable[[Hashable], Any]


@dataclass(slots=True)
class ListenerStats:
    syns_received: int = 0
    connections_created: int = 0
    syns_dropped_backlog_full: int = 0
    resets_sent: int = 0
    dropped_malformed: int = 0
    dropped_other: int = 0
    syn_cookies_sent: int = 0
    syn_cookies_accepted: int = 0
    syn_cookies_rejected: int = 0


class Listener:
    """``syn_cookies``: None answers SYNs with cookies only while the backlog is
    full (Linux's net.ipv4.tcp_syncookies=1), True always (=2), False never: past
    the backlog, SYNs are dropped and the client retries."""

    def __init__(
        self,
        config: Config | None = None,
        *,
        backlog: int = 100,
        local_port: int = 0,
        isn_source: Callable[[float, Hashable, Hashable], int] | None = None,
        logger_factory: LoggerFactory | None = None,
        syn_cookies: bool | None = None,
        cookies: SynCookies | None = None,
    ) -> None:
        if backlog < 1:
            raise ValueError("backlog must be at least 1")
        self.config = config or Config()
        self.backlog = backlog
        self.local_port = local_port
        self.syn_cookies = syn_cookies
        self.stats = ListenerStats()
        self._isn = isn_source or IsnSource()
        self._cookies = cookies or SynCookies()
        self._logger_factory = logger_factory
        self._half_open: dict[Hashable, Connection] = {}
        self._replies: list[tuple[bytes, Hashable]] = []
        # When the last cookie went out: ACKs are checked only while one may be live
        # (Linux's tcp_synq_no_recent_overflow), so stray ACKs cost no hashing.
        self._last_cookie_at: float | None = None

    @property
    def half_open(self) -> int:
        self._forget_finished_handshakes()
        return len(self._half_open)

    def receive_datagram(self, data: bytes, peer: Hashable, now: float) -> Connection | None:
        """A datagram from a peer with no connection; returns a new Connection for
        a SYN that fits the backlog (in SYN-RECEIVED) or for an ACK returning a
        valid cookie (ESTABLISHED, with what the ACK carried processed), else None."""
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
            if not flags & SYN and self._cookie_may_be_live(now):
                conn = self._accept_cookie(seg, peer, now)
                if conn is not None:
                    return conn
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
        if self.syn_cookies or self.half_open >= self.backlog:
            if self.syn_cookies is False:
                self.stats.syns_dropped_backlog_full += 1
            else:
                self._send_cookie(seg, peer, now)
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
        """RST replies and cookie SYN-ACKs queued since the last call, each with its
        peer."""
        replies, self._replies = self._replies, []
        return replies

    def _send_cookie(self, syn: Segment, peer: Hashable, now: float) -> None:
        """RFC 4987 3.6: answer with the SYN-ACK a connection would send, our ISN
        being the cookie, and keep nothing."""
        cfg = self.config
        timestamps = cfg.timestamps and syn.ts_val is not None
        if not timestamps:
            # Nowhere to keep them: offer neither (the peer does without).
            syn = replace(syn, wscale=None, sack_permitted=False)
        cookie = self._cookies.make(syn, peer, now, timestamps=timestamps)
        # A short-lived engine writes the SYN-ACK, so it offers exactly what the
        # one built from the returning ACK will use, and shares its TS clock.
        engine = Connection(cfg, isn=cookie, local_port=self.local_port, remote_port=syn.src_port)
        engine.listen(reusable=False)
        engine.receive_segment(syn, now)
        for data in engine.datagrams_to_send(now):
            if timestamps:
                syn_ack = decode(data, verify_checksum=False)
                if syn_ack.ts_val is not None:
                    bits = ts_option_bits(syn.wscale, syn.sack_permitted)
                    syn_ack.ts_val = stamp_ts_val(syn_ack.ts_val, bits)
                    data = encode(syn_ack, checksum=cfg.checksum == "full")
            self._replies.append((data, peer))
        self.stats.syn_cookies_sent += 1
        self._last_cookie_at = now

    def _cookie_may_be_live(self, now: float) -> bool:
        sent_at = self._last_cookie_at
        return sent_at is not None and (
            cookie_counter(now) - cookie_counter(sent_at) < COOKIE_LIFETIME
        )

    def _accept_cookie(self, ack: Segment, peer: Hashable, now: float) -> Connection | None:
        """RFC 4987 3.6: an ACK returning a valid cookie rebuilds the connection:
        a new engine is fed the SYN the cookie stands for, answers it (the SYN-ACK
        already went out and is discarded), then takes the ACK itself."""
        cfg = self.config
        timestamps = cfg.timestamps and ack.ts_val is not None
        options = self._cookies.check(ack, peer, now, timestamps=timestamps)
        if options is None:
            self.stats.syn_cookies_rejected += 1
            return None
        syn = Segment(
            src_port=ack.src_port,
            dst_port=ack.dst_port,
            seq=seq_add(ack.seq, -1),
            flags=SYN,
            window=ack.window,
            mss=options.mss,
            wscale=options.wscale,
            sack_permitted=options.sack_permitted,
            # TS.Recent becomes the ACK's TSval: PAWS (RFC 7323 5.3) passes the ACK,
            # and our first segments echo it.
            ts_val=ack.ts_val if timestamps else None,
            ts_ecr=0 if timestamps else None,
        )
        logger = self._logger_factory(peer) if self._logger_factory else None
        conn = Connection(
            cfg,
            isn=seq_add(ack.ack, -1),
            local_port=self.local_port,
            remote_port=ack.src_port,
            logger=logger,
        )
        conn.listen(reusable=False)
        conn.receive_segment(syn, now)
        # When the real SYN-ACK left is unknown: with timestamps the handshake RTT
        # comes from TSecr (at most 31 ms high: the option bits); without, no
        # sample is taken (as Linux), and RTO starts at the initial value.
        conn.datagrams_to_send(now)
        conn.forget_handshake_timing()
        conn.receive_segment(ack, now)
        self.stats.syn_cookies_accepted += 1
        self.stats.connections_created += 1
        return conn

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
