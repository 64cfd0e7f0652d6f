"""Every tunable of a connection, with the default a careful kernel would pick."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ChecksumMode = Literal["full", "udp"]


@dataclass(frozen=True, slots=True)
class Config:
    """Settings shared by every connection of an endpoint.

    ``checksum``: ``"full"`` fills the RFC 1071 checksum of each segment (header,
    options and payload; no IP pseudo-header, so it survives NAT) and drops
    segments whose checksum is wrong.  ``"udp"`` sends the field as zero and
    trusts UDP's own checksum instead; both peers must use the same mode.
    """

    #: Largest TCP segment (header + options + payload) put in one UDP datagram.
    max_segment_size: int = 1400
    #: Receive buffer: the most in-order data held for the application, and so
    #: the largest window advertised -- at first: see ``receive_buffer_max``.
    receive_buffer: int = 256 * 1024
    #: Receive-buffer autotuning, as Linux's tcp_rcv_space_adjust (its
    #: tcp_rmem[2]): once a round trip, a connection whose application read more
    #: than the buffer allows for grows it, up to this many bytes; it never
    #: shrinks, and an application that does not read never grows it.  Equal to
    #: ``receive_buffer``, autotuning is off; ``Connection.set_receive_window``
    #: turns it off for one connection, as SO_RCVBUF does.  The window scale
    #: offered in the SYN is chosen for this size (RFC 7323 2.3: it is fixed at
    #: the handshake).
    receive_buffer_max: int = 4 * 1024 * 1024
    #: Send buffer, as a kernel socket's SO_SNDBUF: the bytes a connection holds
    #: (unsent or unacknowledged) before the asyncio transport's own write buffer,
    #: and its pause_writing limits, come into play.  Also the engine's default
    #: high-water mark for WritableAgain.
    send_buffer: int = 1024 * 1024
    #: RFC 6298 (2.1): RTO before any RTT sample.
    initial_rto: float = 1.0
    #: RFC 6298 (2.4) lower bound; 200 ms as in Linux rather than the RFC's 1 s.
    min_rto: float = 0.2
    #: RFC 6298 (2.5) upper bound.
    max_rto: float = 60.0
    #: Longest an ACK is delayed (RFC 9293 3.8.6.3 allows up to 500 ms); 0 disables.
    delayed_ack: float = 0.04
    #: Offer and accept RFC 2018 selective acknowledgments.
    sack: bool = True
    #: Offer and accept RFC 7323 timestamps (RTT samples, PAWS).
    timestamps: bool = True
    #: Offer and accept RFC 7323 window scaling.
    window_scale: bool = True
    #: Congestion control algorithm, by registered name.
    congestion_control: str = "cubic"
    #: RFC 6928 initial window, in segments.
    initial_window: int = 10
    #: RFC 9406 HyStart++ in the initial slow start: once the round-trip time
    #: grows by an eighth (4 to 16 ms) within a round, the window grows at a
    #: quarter of the rate for five rounds, then congestion avoidance begins --
    #: before the bottleneck queue overflows rather than after.  Needs RTT
    #: samples on most ACKs (``timestamps``).  On by default, as Linux's CUBIC
    #: runs HyStart.
    hystart: bool = True
    #: Nagle's algorithm (RFC 896); off like asyncio's TCP_NODELAY.
    nagle: bool = False
    #: Maximum segment lifetime; TIME-WAIT lasts 2 * msl.
    msl: float = 30.0
    #: SYN (and SYN-ACK) retransmissions before the open fails, as Linux's tcp_syn_retries.
    syn_retries: int = 6
    #: RFC 5482 user timeout: give up when data stays unacknowledged this long.
    user_timeout: float = 300.0
    #: How long a closed connection may wait in FIN-WAIT-2 for the peer's FIN.
    fin_wait_2_timeout: float = 60.0
    #: See the class docstring.
    checksum: ChecksumMode = "full"
    #: RFC 8899 / RFC 4821 path MTU discovery: probe with larger data segments,
    #: up to ``pmtud_max_segment_size``, and use the largest one acknowledged.
    #: Our SYN then advertises that we can receive segments that large.
    pmtud: bool = False
    pmtud_max_segment_size: int = 65507
    #: Spread each window's segments over the round trip instead of sending them
    #: in bursts (rate = cwnd / SRTT, doubled in slow start, x1.2 after, as Linux's
    #: fq pacing); off by default, as asyncio's TCP does not pace either.
    pacing: bool = False
    #: Write every segment sent and received to this pcap file (the asyncio layer
    #: does the writing; the RUDP_PCAP environment variable sets it too).
    pcap_path: str | None = None
    #: RFC 1122 (4.2.3.6) keepalive, off by default: after ``keepalive_idle``
    #: seconds of silence, probe every ``keepalive_interval`` seconds and give up
    #: (TimeoutError) after ``keepalive_probes`` unanswered probes.  Linux's
    #: defaults.
    keepalive: bool = False
    keepalive_idle: float = 7200.0
    keepalive_interval: float = 75.0
    keepalive_probes: int = 9

    def __post_init__(self) -> None:
        if not 64 <= self.max_segment_size <= 65507:
            raise ValueError("max_segment_size must be within 64..65507 bytes")
        if self.receive_buffer < 1 or self.receive_buffer > (65535 << 14):
            raise ValueError("receive_buffer must be within 1..2**30 bytes")
        if not self.receive_buffer <= self.receive_buffer_max <= 2**30:
            raise ValueError("receive_buffer_max must be within receive_buffer..2**30 bytes")
        if self.send_buffer < 1:
            raise ValueError("send_buffer must be positive")
        if not 0 < self.min_rto <= self.initial_rto <= self.max_rto:
            raise ValueError("need 0 < min_rto <= initial_rto <= max_rto")
        if not 0 <= self.delayed_ack <= 0.5:
            raise ValueError("delayed_ack must be within 0..0.5 s (RFC 9293 3.8.6.3)")
        if self.initial_window < 1:
            raise ValueError("initial_window must be at least one segment")
        if self.msl < 0 or self.user_timeout <= 0 or self.fin_wait_2_timeout <= 0:
            raise ValueError("msl, user_timeout and fin_wait_2_timeout must be positive")
        if self.syn_retries < 0:
            raise ValueError("syn_retries must not be negative")
        if self.keepalive_idle <= 0 or self.keepalive_interval <= 0 or self.keepalive_probes < 1:
            raise ValueError("keepalive idle and interval must be positive, probes at least 1")
        if not self.max_segment_size <= self.pmtud_max_segment_size <= 65507:
            raise ValueError("pmtud_max_segment_size must be within max_segment_size..65507")
        if self.checksum not in ("full", "udp"):
            raise ValueError('checksum must be "full" or "udp"')
