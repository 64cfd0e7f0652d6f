"""One TCP connection (RFC 9293) as a sans-IO state machine.

Invariants: SND.UNA <= SND.NXT <= SND.MAX (modulo 2**32); the send buffer holds
exactly the bytes from the first unacknowledged data byte on; what the receive side
stores never exceeds the window it advertised; the state changes only in
``_set_state``, along an edge of ``state.TRANSITIONS``.
"""

from __future__ import annotations

import struct
import weakref
from dataclasses import dataclass, field, replace
from math import inf, trunc
from typing import Any

from . import congestion
from .buffers import ReceiveBuffer, SendBuffer
from .config import Config
from .errors import LocalProtocolError, MalformedSegment
from .events import (
    Connected,
    ConnectionTerminated,
    DataReceived,
    EofReceived,
    Event,
    WritableAgain,
)
from .isn import random_isn
from .pmtud import PathMtuDiscovery
from .rtt import RttEstimator
from .scoreboard import Scoreboard, SentSegment
from .segment import (
    ACK,
    CHECKSUM_FIELD,
    CHECKSUM_OFFSET,
    FIN,
    HEADER,
    HEADER_LEN,
    MAX_DATAGRAM,
    PLAIN_OFFSET,
    PSH,
    RST,
    SYN,
    TS_SEGMENT_OFFSET,
    Segment,
    decode,
    encode,
    internet_checksum,
    segment_is_intact,
)
from .seq import HALF, SEQ_MASK, seq_add, seq_ge, seq_gt, seq_in_window, seq_le, seq_lt, seq_sub
from .state import TRANSITIONS, State

# RFC 9293 3.7.1: the MSS assumed when the peer sends no MSS option.
DEFAULT_MSS = 536
# Bytes of a timestamps option as we send it (NOP NOP TS).
TS_OPTION_LEN = 12
# RFC 7323 (2.3): the largest window scale shift.
MAX_WSCALE = 14
# RFC 5681 (3.2): duplicate ACKs that trigger fast retransmit.
DUPACK_THRESHOLD = 3
# RFC 5961 (7): at most this many challenge ACKs per second.
CHALLENGE_ACK_LIMIT = 10
# Timestamps tick in milliseconds (RFC 7323 5.4 asks for 1 ms to 1 s).
TS_HZ = 1000
# Pacing gains (Linux's tcp_pacing_ss_ratio and tcp_pacing_ca_ratio) and the burst
# sent back to back before the pacer waits.
PACING_GAIN_SLOW_START = 2.0
PACING_GAIN_AVOIDANCE = 1.2
PACING_BURST_SEGMENTS = 2
# How long the minimum RTT sample stays valid (Linux's tcp_min_rtt_wlen).
MIN_RTT_WINDOW = 300.0
# RFC 4821 (7.7): consecutive timeouts after which a black hole is suspected
# (Linux's tcp_retries1).
BLACK_HOLE_TIMEOUTS = 3
# Slack added to a probe timeout and its floor (Linux's TCP_TIMEOUT_MIN and the
# 10 ms minimum of tcp_schedule_loss_probe).
PTO_SLACK = 0.002
MIN_PTO = 0.010
# RFC 8985 (7.2): worst-case delayed-ACK time added to a lone segment's probe timeout.
WORST_CASE_DELAYED_ACK = 0.2
# The option bytes of TS_SEGMENT: NOP, NOP, kind 8, length 10.
_NOP_NOP_TS = (1, 1, 8, 10)
# Stands among the events for the in-order bytes the receive buffer holds.
_DATA_READY: Event = DataReceived(b"")
# RFC 7323 (5.5): TS.Recent older than 24 days is no base for PAWS.
PAWS_IDLE_LIMIT = 24 * 24 * 3600.0
# Receive-buffer autotuning (Linux's DRS, tcp_rcv_space_adjust): the first measure
# expects the peer's initial window (TCP_INIT_CWND segments), and a grown buffer
# keeps a cushion of DRS_CUSHION_SEGMENTS beyond twice what was read.
DRS_INITIAL_SEGMENTS = 10
DRS_CUSHION_SEGMENTS = 16
# The shortest measuring period: the timestamp clock's tick.  On loopback a round
# trip lasts microseconds, and a measure every few segments would cost more than
# it tells.
DRS_MIN_INTERVAL = 1 / TS_HZ
# Autotuning's next measure: at the first in-order data, or never (off).  Shared
# float objects, so that an idle connection holds no float of its own.
_MEASURE_AT_ONCE = -inf
_MEASURE_NEVER = inf
# A SYN (or SYN-ACK) carrying every option we offer, in encode()'s order: the
# header, MSS, SACK-permitted then timestamps, NOP then window scale.
_FULL_SYN = struct.Struct("!HHIIBBHHHBBHBBBBIIBBBB")
_FULL_SYN_OFFSET = (_FULL_SYN.size // 4) << 4
_MSS_KIND_LEN = (2, 4)
_SACKOK_TS_KINDS = (4, 2, 8, 10)
_NOP_WSCALE_KINDS = (1, 3, 3)
# TS_SEGMENT with its four option-kind bytes (NOP NOP TS 10) as one word:
# header prediction compares them at once, and packing needs no tuple of them.
_TS_WORDS = struct.Struct("!HHIIBBHHHIII")
_NOP_NOP_TS_WORD = 0x0101080A
_TS_LEN = _TS_WORDS.size
_ACK_PSH = ACK | PSH
# The fields header prediction reads (ports, checksum and urgent pointer skipped).
_TS_PREDICTED = struct.Struct("!4xIIBBH4xIII")
_PLAIN_PREDICTED = struct.Struct("!4xIIBBH4x")
# The states tested on every call (an Enum member lookup costs a dict search).
_ESTABLISHED = State.ESTABLISHED
_CLOSED = State.CLOSED
_LISTEN = State.LISTEN
_SYN_SENT = State.SYN_SENT
_SYN_RECEIVED = State.SYN_RECEIVED


def _is_dsack(blocks: tuple[tuple[int, int], ...], ack: int) -> bool:
    """RFC 2883 (4) / RFC 3708 (2): the first block reports a duplicate when it
    lies below the cumulative ACK or inside the second block."""
    left, right = blocks[0]
    if seq_le(right, ack):
        return True
    if len(blocks) > 1:
        outer_left, outer_right = blocks[1]
        return seq_le(outer_left, left) and seq_le(right, outer_right)
    return False


@dataclass(slots=True)
class ConnectionStats:
    """Counters a debugger or a benchmark reads (all grow monotonically), and,
    as properties, the connection's live state, RTT estimate and windows."""

    segments_sent: int = 0
    segments_received: int = 0
    bytes_sent: int = 0
    bytes_retransmitted: int = 0
    bytes_acked: int = 0
    bytes_received: int = 0
    bytes_delivered: int = 0
    retransmitted_segments: int = 0
    timeouts: int = 0
    fast_retransmits: int = 0
    duplicate_segments: int = 0
    out_of_order_segments: int = 0
    #: RFC 2883 D-SACKs: duplicates we reported, and reports of ours the peer sent.
    dsacks_sent: int = 0
    dsacks_received: int = 0
    dropped_malformed: int = 0
    dropped_unacceptable: int = 0
    challenge_acks: int = 0
    resets_sent: int = 0
    resets_received: int = 0
    # A weak reference: the connection holds its stats, and a strong one back
    # would make each connection a reference cycle, freed only by the cyclic
    # garbage collector (a full collection every few thousand connections on a
    # busy server) instead of when its owner drops it.
    _conn: weakref.ref[Connection] | None = field(default=None, repr=False, compare=False)

    @property
    def _live(self) -> Connection | None:
        """The connection, while it exists (the live values read None after)."""
        return None if self._conn is None else self._conn()

    @property
    def state(self) -> str:
        conn = self._live
        return str(conn.state) if conn is not None else "CLOSED"

    @property
    def srtt(self) -> float | None:
        conn = self._live
        return conn.rtt.srtt if conn is not None else None

    @property
    def rttvar(self) -> float | None:
        conn = self._live
        return conn.rtt.rttvar if conn is not None else None

    @property
    def rto(self) -> float | None:
        conn = self._live
        return conn.rtt.rto if conn is not None else None

    @property
    def cwnd(self) -> int | None:
        conn = self._live
        return conn.cc.cwnd if conn is not None else None

    @property
    def ssthresh(self) -> int | None:
        conn = self._live
        return conn.cc.ssthresh if conn is not None else None

    @property
    def bytes_in_flight(self) -> int | None:
        conn = self._live
        return conn.bytes_in_flight if conn is not None else None

    @property
    def receive_buffer(self) -> int | None:
        """The receive buffer's size now, the largest window we may advertise:
        ``Config.receive_buffer`` at first, more once autotuning grew it."""
        conn = self._live
        return conn.receive_buffer if conn is not None else None

    @property
    def receive_window(self) -> int | None:
        conn = self._live
        return conn.receive_window if conn is not None else None

    def as_dict(self) -> dict[str, object]:
        """Every counter and live value, for logs and JSON."""
        counters = {name: getattr(self, name) for name in self.__dataclass_fields__}
        del counters["_conn"]
        live = (
            "state",
            "srtt",
            "rttvar",
            "rto",
            "cwnd",
            "ssthresh",
            "bytes_in_flight",
            "receive_buffer",
            "receive_window",
        )
        return {**{name: getattr(self, name) for name in live}, **counters}


class Connection:
    """One TCP connection, driven by its owner.  Three inputs, three outputs:

    in:  ``receive_datagram(data, now)``, ``handle_timer(now)``, and the user calls
         ``connect``, ``listen``, ``send``, ``shutdown_write``, ``close``, ``abort``,
         ``pause_reading``, ``resume_reading``, ``set_receive_window``.
    out: ``datagrams_to_send(now)``, ``next_timer()``, ``next_event()``.

    ``now`` is a float in seconds from any monotonic clock the owner chooses; the
    engine never reads a clock, never sleeps, and never raises on what the network
    sends (bad segments are dropped and counted in ``stats``).  Misuse by the
    application raises :class:`LocalProtocolError`.  After every input the owner
    calls ``datagrams_to_send`` and drains ``next_event``, and wakes the engine with
    ``handle_timer`` at ``next_timer()``.
    """

    # Slots, not a __dict__: an idle connection's footprint matters (thousands per
    # server), and a misspelt attribute fails loudly.
    __slots__ = (
        "__weakref__",  # for ConnectionStats' back-reference
        "_above_high_water", "_ack_now", "_app_closed", "_buffer_offset", "_buffer_start",
        "_challenge_count", "_challenge_window_start", "_consecutive_timeouts", "_data_queued",
        "_dupacks",
        "_eof_delivered", "_events", "_fill_checksum", "_fin_queued", "_fin_received",
        "_fin_received_seq", "_fin_seq", "_high_water", "_in_recovery",
        "_keepalive_probes_sent", "_last_ack_sent", "_log", "_low_water", "_lt_bytes",
        "_min_rtt_at", "_offer_wscale", "_paced_until", "_passive_open", "_persist_backoff",
        "_dsack", "_pmtud_probe", "_probe_now", "_rcv_adv_edge", "_rcv_buffer", "_rcv_rtt",
        "_rcvq_at",
        "_rcvq_copied", "_rcvq_space", "_reading", "_recent_ooo", "_recover", "_resets",
        "_retransmit_now", "_reusable_listen",
        "_rtt_sent_at", "_rtt_seq", "_scoreboard", "_segs_since_ack", "_send_buffer",
        "_syn_retries", "_terminated", "_termination_pending", "_tlp_allowed", "_tlp_high",
        "_tlp_new_data", "_tlp_resend", "_ts_offset", "_ts_recent", "_ts_recent_at",
        "_ts_retransmitted", "_untimed_handshake", "_verify_checksum", "cc", "config",
        "delayed_ack_at", "fin_wait_2_at", "give_up_at", "irs", "iss", "keepalive_at",
        "local_port", "max_snd_wnd", "min_rtt", "pacing_at", "peer_mss", "persist_at", "pmtud",
        "rack_at", "rcv_nxt", "rcv_wscale", "remote_port", "rto_at", "rtt", "sack_permitted",
        "snd_max", "snd_mss", "snd_nxt", "snd_una", "snd_wl1", "snd_wl2", "snd_wnd",
        "snd_wscale", "state", "stats", "superseded", "time_wait_at", "timestamps_enabled",
        "tlp_at", "window_scaling",
    )

    def __init__(
        self,
        config: Config | None = None,
        *,
        isn: int | None = None,
        local_port: int = 0,
        remote_port: int = 0,
        logger: Any = None,
    ) -> None:
        self.config = cfg = config or Config()
        self.local_port = local_port
        self.remote_port = remote_port
        self.stats = ConnectionStats(_conn=weakref.ref(self))
        self._log = logger
        self.state = State.CLOSED
        # A list, not a deque: rarely more than a few events wait, and an empty
        # list is a tenth of an empty deque's size (thousands of idle connections).
        self._events: list[Event] = []
        # _DATA_READY waits among the events: in-order bytes are taken from the
        # receive buffer when it is read, so a burst of segments makes one event.
        self._data_queued = False
        self._verify_checksum = cfg.checksum == "full"
        self._fill_checksum = cfg.checksum == "full"

        # Send sequence space (RFC 9293 3.3.1), plus SND.MAX: the highest sent.
        self.iss = (random_isn() if isn is None else isn) & SEQ_MASK
        self.snd_una = self.snd_nxt = self.snd_max = self.iss
        self.snd_wnd = 0
        self.snd_wl1 = 0
        self.snd_wl2 = 0
        self.max_snd_wnd = 0
        self._send_buffer = SendBuffer()
        self._buffer_start = seq_add(self.iss, 1)  # sequence number of its first byte
        self._buffer_offset = 0  # ... and its stream offset (bytes acked so far)
        self._scoreboard = Scoreboard()
        self._fin_seq = 0  # where our FIN sits, once queued
        self._fin_queued = False  # the application shut down its sending side
        self._app_closed = False  # ... and will read no more (close())

        # Receive sequence space.
        self.irs = 0
        self.rcv_nxt = 0
        self._rcv_buffer = ReceiveBuffer(cfg.receive_buffer)
        self._rcv_adv_edge = 0  # RCV.NXT + RCV.WND as last advertised
        # Autotuning's measure (Linux's rcvq_space): when the next one is due
        # (-inf: at the first in-order data; inf: never, autotuning is off),
        # stats.bytes_delivered when the current one began, the most the
        # application read in one (0 until the first measure), and the receiver's
        # RTT estimate (None until a timestamp echo gave a sample).
        self._rcvq_at = (
            _MEASURE_AT_ONCE if cfg.receive_buffer_max > cfg.receive_buffer else _MEASURE_NEVER
        )
        self._rcvq_copied = 0
        self._rcvq_space = 0
        self._rcv_rtt: float | None = None
        self._reading = True
        self._fin_received_seq: int | None = None  # where the peer's FIN sits
        self._fin_received = False
        self._eof_delivered = False
        # ConnectionTerminated waiting for the application to read what came
        # before it: (error,) once the connection ended with data undelivered.
        self._termination_pending: tuple[Exception | None] | None = None

        # Negotiated options.
        self.peer_mss = DEFAULT_MSS
        self.snd_mss = DEFAULT_MSS  # payload bytes per segment we send
        self.snd_wscale = 0  # shift applied to the peer's window field
        self.rcv_wscale = 0  # shift the peer applies to ours
        self.window_scaling = False
        # RFC 7323 (2.3): the shift is fixed at the handshake, so it is chosen
        # for the largest buffer autotuning may grow to (as Linux, from tcp_rmem[2]).
        self._offer_wscale = _wscale_for(cfg.receive_buffer_max) if cfg.window_scale else None
        self.sack_permitted = False
        self.timestamps_enabled = False
        self._ts_offset = (self.iss * 2654435761) & SEQ_MASK
        self._ts_recent = 0
        self._last_ack_sent = 0

        # Reliability and congestion control.
        self.rtt = RttEstimator(cfg.initial_rto, cfg.min_rto, cfg.max_rto)
        self.cc = congestion.create(cfg.congestion_control, self.snd_mss, cfg.initial_window,
                                    self.rtt, hystart=cfg.hystart, paced=cfg.pacing)
        self._rtt_seq: int | None = None  # Karn: the one segment being timed
        # TSval of our latest retransmission: echoes older than it may be the
        # peer re-acknowledging an original, and would measure our RTO wait.
        self._ts_retransmitted: int | None = None
        self._rtt_sent_at = 0.0
        self._dupacks = 0
        self._in_recovery = False
        self._recover = self.iss  # RFC 6582 "recover"
        self._syn_retries = 0
        self._retransmit_now = False
        self._consecutive_timeouts = 0
        # RFC 8899 / RFC 4821 path MTU discovery, when enabled, and the probe in
        # flight as (start offset, end offset, datagram size).
        self.pmtud: PathMtuDiscovery | None = None
        self._pmtud_probe: tuple[int, int, int] | None = None
        self.min_rtt: float | None = None
        self._min_rtt_at = 0.0
        self._untimed_handshake = False
        self._tlp_allowed = True  # RFC 8985 (7): one probe until new data is acked
        self._tlp_high: int | None = None  # SND.MAX when a probe retransmitted
        self._tlp_new_data = False  # the probe due now sends new data
        self._tlp_resend: SentSegment | None = None  # ... or resends this

        # Output wishes, turned into segments by datagrams_to_send.
        self._ack_now = False
        self._segs_since_ack = 0
        self._resets: list[bytes] = []  # RSTs waiting for datagrams_to_send
        self._probe_now = False
        self._challenge_window_start = 0.0
        self._challenge_count = 0

        # Deadlines (None when the timer is off).
        self.rto_at: float | None = None
        self.delayed_ack_at: float | None = None
        self.persist_at: float | None = None
        self.time_wait_at: float | None = None
        self.fin_wait_2_at: float | None = None
        self.give_up_at: float | None = None  # RFC 5482 user timeout
        self.keepalive_at: float | None = None
        self.tlp_at: float | None = None  # RFC 8985 (7) tail loss probe
        self.rack_at: float | None = None  # RFC 8985 (6.3) reordering timer
        self.pacing_at: float | None = None  # when the pacer lets the next segment go
        self._paced_until = 0.0
        self._keepalive_probes_sent = 0
        self._persist_backoff = 1

        # Application flow control.
        self._high_water = cfg.send_buffer
        self._low_water = cfg.send_buffer // 4
        self._above_high_water = False
        self._terminated = False
        self._passive_open = False
        #: Set when a new SYN ended this connection in TIME-WAIT (RFC 6191): the
        #: owner drops it and hands the same datagram to its Listener.
        self.superseded = False
        self._reusable_listen = True
        self._ts_recent_at = 0.0  # when TS.Recent was last updated (RFC 7323 5.5)
        # Starts of the latest out-of-order arrivals, newest first (RFC 2018 4).
        self._recent_ooo: list[int] = []
        # RFC 2883: a duplicate [left, right) in sequence space, reported in the
        # first SACK block of the next ACK, once.
        self._dsack: tuple[int, int] | None = None
        self._lt_bytes = 0  # RFC 3042 limited-transmit bytes now in flight

    # ------------------------------------------------------------------ reading
    def __repr__(self) -> str:
        return (
            f"<Connection {self.state} una={self.snd_una} nxt={self.snd_nxt} "
            f"rcv_nxt={self.rcv_nxt} cwnd={self.cc.cwnd}>"
        )

    @property
    def is_closed(self) -> bool:
        """CLOSED with nothing left to transmit or to deliver: the owner may drop
        the engine."""
        return (
            self.state is State.CLOSED
            and not self._resets
            and self._termination_pending is None
        )

    @property
    def send_buffered(self) -> int:
        """Bytes accepted by ``send`` and not yet acknowledged by the peer."""
        return len(self._send_buffer)

    @property
    def receive_window(self) -> int:
        """The window we last advertised (RCV.WND), in bytes."""
        return max(seq_sub(self._rcv_adv_edge, self.rcv_nxt), 0)

    @property
    def receive_buffer(self) -> int:
        """The receive buffer's size now (RCV.BUFF): the largest window we may
        advertise, grown by autotuning or set by ``set_receive_window``."""
        return self._rcv_buffer.capacity

    @property
    def bytes_in_flight(self) -> int:
        """RFC 6675 "pipe": sent bytes presumed still in the network."""
        return self._scoreboard.pipe

    @property
    def has_events(self) -> bool:
        """Whether next_event() has something: a cheap test for an owner that
        would otherwise call it only to be told None."""
        return bool(self._events)

    def next_event(self) -> Event | None:
        events = self._events
        while events:
            event = events.pop(0)
            if event is not _DATA_READY:
                return event
            self._data_queued = False
            buffer = self._rcv_buffer
            # buffer.take(), written out: this runs for every read.
            data = bytes(buffer.ready)
            if data:
                buffer.ready.clear()
                self.stats.bytes_delivered += len(data)
                clamp = 0xFFFF << self.rcv_wscale
                if buffer.capacity < clamp:
                    clamp = buffer.capacity
                window = ((self._rcv_adv_edge - self.rcv_nxt + HALF) & SEQ_MASK) - HALF
                if 2 * window <= clamp:
                    # As Linux's tcp_cleanup_rbuf: reading reopened a window that
                    # had closed to half or less; say so if it grew enough.
                    self._maybe_window_update()
                return DataReceived(data)
        return None

    def next_timer(self) -> float | None:
        deadline: float | None = None
        for at in (
            self.rto_at,
            self.delayed_ack_at,
            self.persist_at,
            self.time_wait_at,
            self.fin_wait_2_at,
            self.give_up_at,
            self.keepalive_at,
            self.tlp_at,
            self.rack_at,
            self.pacing_at,
            self.pmtud.next_timer() if self.pmtud is not None else None,
        ):
            if at is not None and (deadline is None or at < deadline):
                deadline = at
        return deadline

    # ---------------------------------------------------------- user commands
    def connect(self, now: float) -> None:
        """Active OPEN (RFC 9293 3.10.1): send a SYN, enter SYN-SENT."""
        if self.state is not State.CLOSED or self._terminated:
            raise LocalProtocolError(f"connect() in state {self.state}")
        self._set_state(State.SYN_SENT)

    def listen(self, *, reusable: bool = True) -> None:
        """Passive OPEN (RFC 9293 3.10.1): wait for a SYN.

        RFC 9293 3.10.7.4: an RST in SYN-RECEIVED returns a passive open to
        LISTEN without telling the user.  A Listener's connections pass
        ``reusable=False``: the Listener itself goes on listening, so they close.
        """
        if self.state is not State.CLOSED or self._terminated:
            raise LocalProtocolError(f"listen() in state {self.state}")
        self._passive_open = True
        self._reusable_listen = reusable
        self._set_state(State.LISTEN)

    def send(self, data: bytes | bytearray | memoryview) -> None:
        """RFC 9293 3.10.2 SEND: queue bytes; they go out as the windows allow."""
        if self._fin_queued or self.state not in _CAN_SEND:
            raise LocalProtocolError(f"cannot send in state {self.state} (after shutdown?)")
        if not data:
            return
        self._send_buffer += data
        if len(self._send_buffer) > self._high_water:
            self._above_high_water = True

    def shutdown_write(self) -> None:
        """Send FIN after the queued data (half-close); reading goes on."""
        if self._fin_queued or self.state in (State.CLOSED, State.LISTEN):
            return
        self._fin_queued = True
        self._fin_seq = seq_add(self._buffer_seq(), len(self._send_buffer))
        if self.state is State.ESTABLISHED:
            self._set_state(State.FIN_WAIT_1)
        elif self.state is State.CLOSE_WAIT:
            self._set_state(State.LAST_ACK)
            self._end_if_only_fin_unacked()

    def close(self) -> None:
        """RFC 9293 3.10.4 CLOSE: FIN after the queued data; the application reads no
        more.  Closing with unread data resets instead (RFC 2525 2.17, as Linux)."""
        if self._app_closed:
            return
        self._app_closed = True
        self._reading = False
        if self.state in (State.LISTEN, State.SYN_SENT, State.CLOSED):
            self._resets.clear()
            self._enter_closed(None)
            return
        if self._rcv_buffer.unread and not self._data_queued:
            self.abort()
            return
        self.shutdown_write()
        if self.state is State.FIN_WAIT_2:
            # Our FIN was already acknowledged after an earlier shutdown_write.
            self._terminate(None)

    def abort(self) -> None:
        """RFC 9293 3.10.5 ABORT: send RST (if synchronized), drop every buffer."""
        if self.state is State.CLOSED:
            return
        if self.state is State.SYN_RECEIVED or (
            self.state.synchronized and self.state is not State.TIME_WAIT
        ):
            # At SND.NXT, as Linux; and at SND.UNA too when data is in flight:
            # the peer's RCV.NXT lies between them, and RFC 5961 resets only on
            # an exact match (else it challenges, and our socket may be gone).
            for seq in dict.fromkeys((self.snd_max, self.snd_una)):
                rst = Segment(seq=seq, ack=self.rcv_nxt, flags=RST | ACK)
                self._resets.append(self._encode(rst))
                self.stats.resets_sent += 1
        self._app_closed = True
        self._enter_closed(None)

    def forget_handshake_timing(self) -> None:
        """Take no RTT sample from the SYN-ACK just sent: its owner knows it is a
        copy of one sent earlier (SYN cookies rebuild connections this way).  A
        timestamp echo still measures the real one, unless it is older than the
        initial RTO: a stateful listener would have resent its SYN-ACK by then
        and ignored that echo (Karn; RFC 7323 4.2)."""
        self._rtt_seq = None
        self._untimed_handshake = True

    def pause_reading(self) -> None:
        """Stop DataReceived events; what arrives waits here and the window closes."""
        self._reading = False

    def resume_reading(self) -> None:
        if self._reading or self._app_closed:
            return
        self._reading = True
        self._deliver()
        self._maybe_window_update()

    def set_receive_window(self, nbytes: int) -> None:
        """Resize the receive buffer (the largest window we will advertise).  As
        SO_RCVBUF on Linux, this turns autotuning off for the connection."""
        if nbytes < 1:
            raise LocalProtocolError("receive window must be at least one byte")
        self._rcv_buffer.capacity = nbytes
        self._rcvq_at = _MEASURE_NEVER
        if self._offer_wscale is not None and self.state in (State.CLOSED, State.LISTEN):
            # No SYN exchanged yet: offer a shift that lets this size be advertised.
            self._offer_wscale = _wscale_for(max(nbytes, self.config.receive_buffer_max))
        self._maybe_window_update()

    def set_send_buffer_limits(self, high: int, low: int) -> None:
        """Marks for WritableAgain: armed above ``high``, fired at ``low`` or below."""
        if not 0 <= low <= high:
            raise LocalProtocolError("need 0 <= low <= high")
        self._high_water, self._low_water = high, low
        if len(self._send_buffer) > high:
            self._above_high_water = True

    # ---------------------------------------------------------------- inputs
    def receive_datagram(self, data: bytes | bytearray | memoryview, now: float) -> None:
        """One datagram from the peer.  Never raises on its content."""
        if self.state is _ESTABLISHED and self._receive_predicted(data, now):
            return
        try:
            if len(data) > MAX_DATAGRAM:
                raise MalformedSegment("larger than any UDP datagram")
            seg = decode(data, verify_checksum=self._verify_checksum)
        except MalformedSegment:
            self.stats.dropped_malformed += 1
            return
        self.receive_segment(seg, now)

    def receive_segment(self, seg: Segment, now: float) -> None:
        """RFC 9293 3.10.7 SEGMENT ARRIVES."""
        self.stats.segments_received += 1
        if self.keepalive_at is not None:
            # Anything from the peer proves it alive: restart the idle period.
            self._keepalive_probes_sent = 0
            self.keepalive_at = now + self.config.keepalive_idle
        state = self.state
        if state is State.CLOSED:
            self._reply_reset(seg)
        elif state is State.LISTEN:
            self._on_segment_listen(seg, now)
        elif state is State.SYN_SENT:
            self._on_segment_syn_sent(seg, now)
        else:
            self._on_segment_synchronized(seg, now)

    def _receive_predicted(self, data: bytes | bytearray | memoryview, now: float) -> bool:
        """Header prediction (Van Jacobson's, as Linux's tcp_rcv_established): the
        next in-order segment in ESTABLISHED, ACK (and PSH) alone, in the usual
        layout, acknowledging nothing new or new data outside loss recovery.  It
        takes exactly the steps of RFC 9293 3.10.7.4 that such a segment needs,
        without building a Segment.  Anything else -- or a bad checksum, to be
        counted there -- returns False having changed nothing, for the general path.

        Sequence arithmetic is written out here (it runs for every segment):
        ``(a - b) & SEQ_MASK`` is seq.py's distance, ``< HALF`` meaning ahead.
        """
        length = len(data)
        if self.timestamps_enabled:
            if length < _TS_LEN:
                return False
            seq, ack, offset, flags, window, kinds, ts_val, ts_ecr = _TS_PREDICTED.unpack_from(data)
            if offset != TS_SEGMENT_OFFSET or kinds != _NOP_NOP_TS_WORD:
                return False
            if ((ts_val - self._ts_recent) & SEQ_MASK) >= HALF:
                return False  # RFC 7323 (5.3 R1): PAWS decides
            header_len = _TS_LEN
        else:
            if length < HEADER_LEN:
                return False
            seq, ack, offset, flags, window = _PLAIN_PREDICTED.unpack_from(data)
            if offset != PLAIN_OFFSET:
                return False
            ts_val = ts_ecr = None
            header_len = HEADER_LEN
        if flags | PSH != _ACK_PSH or seq != self.rcv_nxt:
            return False
        size = length - header_len
        # Acceptable (RFC 9293 3.10.7.4 first) and wholly inside the window:
        # seq_sub(RCV.NXT + RCV.WND, seq).
        if size > ((self._rcv_adv_edge - seq + HALF) & SEQ_MASK) - HALF or length > MAX_DATAGRAM:
            return False
        board = self._scoreboard
        acked = ((ack - self.snd_una + HALF) & SEQ_MASK) - HALF
        if acked == 0:
            if not size:
                return False  # a duplicate ACK or a window update
        elif (
            acked < 0
            or 0 < ((ack - self.snd_max) & SEQ_MASK) < HALF  # beyond SND.MAX
            or self._in_recovery
            or board.lost_bytes
            or board.sacked_bytes
            or board.retransmitted_out
            or self._tlp_high is not None
        ):
            return False
        if size and (
            self._app_closed or self._rcv_buffer.has_gaps or self._fin_received_seq is not None
        ):
            return False
        # RFC 9293 3.10.7.4 fifth: the window, unless an older segment set it (one
        # ahead of a gap may have): SND.WL1 < seq, or SND.WL1 = seq and SND.WL2 <= ack.
        wl1 = self.snd_wl1
        if wl1 == seq:
            wl2_ahead = (self.snd_wl2 - ack) & SEQ_MASK
            update_window = wl2_ahead == 0 or wl2_ahead >= HALF
        else:
            update_window = ((wl1 - seq) & SEQ_MASK) >= HALF
        snd_wnd = window << self.snd_wscale
        if (update_window and not snd_wnd) or self._pmtud_probe is not None:
            return False
        if self._verify_checksum and not segment_is_intact(data):
            return False
        stats = self.stats
        stats.segments_received += 1
        if self.keepalive_at is not None:
            self._keepalive_probes_sent = 0
            self.keepalive_at = now + self.config.keepalive_idle
        if ts_val is not None:
            behind = (seq - self._last_ack_sent) & SEQ_MASK
            if behind == 0 or behind >= HALF:  # seq <= the last ACK we sent
                self._ts_recent = ts_val  # RFC 7323 (4.3)
                self._ts_recent_at = now
        # Fifth: the ACK field.
        if acked:
            # _on_new_ack's steps for an ACK outside recovery and any tail loss
            # probe episode, with nothing SACKed, lost or resent on the scoreboard
            # (less those that cannot apply), written out.
            flight = board.sent_end - board.acked
            snd_max = self.snd_max
            newly = board.ack_all(now) if ack == snd_max else board.ack(self._offset(ack), now)
            # _consume_acked_data(ack), written out.
            start = self._buffer_start
            freed = ((ack - start + HALF) & SEQ_MASK) - HALF
            if freed > 0:
                buffer = self._send_buffer
                if freed > len(buffer):
                    freed = len(buffer)  # (the FIN is not in the buffer)
                if freed:
                    buffer.consume(freed)
                    self._buffer_start = (start + freed) & SEQ_MASK
                    self._buffer_offset += freed
                    self.stats.bytes_acked += freed
            self.snd_una = ack
            self._sample_rtt(ts_ecr, ack, now)
            if self._cwnd_limited(flight):
                self.cc.on_ack(newly, now, self.rtt.srtt)
            self._dupacks = 0
            self._lt_bytes = 0
            self._tlp_allowed = True
            self._consecutive_timeouts = 0
            # RFC 6298 (5.2, 5.3): stop the timer when all is acked, else restart it.
            if ack == snd_max:
                self.rto_at = self.tlp_at = self.rack_at = None
                self.give_up_at = None
            else:
                self.rto_at = now + self.rtt.rto
                self.give_up_at = now + self.config.user_timeout
                self._arm_tlp(now)
            if self._above_high_water and len(self._send_buffer) <= self._low_water:
                self._above_high_water = False
                self._events.append(WritableAgain())
        if board.sent_end != board.acked:
            if board.sacked_bytes or board.lost_bytes or board.retransmitted_out:
                self._detect_losses(now)
            elif self.sack_permitted:
                # What _detect_losses concludes when nothing was SACKed or resent:
                # no loss (RFC 6675 4 IsLost, RFC 8985 6.2) and no RACK timer.
                self.rack_at = None
        if update_window:
            self.snd_wnd = snd_wnd
            self.snd_wl1 = seq
            self.snd_wl2 = ack
            if snd_wnd > self.max_snd_wnd:
                self.max_snd_wnd = snd_wnd
            self.persist_at = None
            self._persist_backoff = 1
        # Seventh: the text, in order with nothing waiting behind it.
        if size:
            # A slice copies and a view does not, but the view costs more below
            # some 16 KiB.
            self._rcv_buffer.append(
                data[header_len:] if size < 16384 else memoryview(data)[header_len:]
            )
            stats.bytes_received += size
            self.rcv_nxt = (seq + size) & SEQ_MASK
            if now >= self._rcvq_at:
                self._rcv_space_adjust(now, ts_ecr)  # once a round trip
            if flags & PSH and self._reading:
                # As the general path: an ACK due now for a reader that waits.
                self._segs_since_ack += 1
                self.delayed_ack_at = now
            else:
                self._schedule_ack(now)
            # _deliver(), whose first step is all the usual case needs: the
            # buffer holds unread bytes now.
            if self._reading and not self._terminated:
                if not self._data_queued:
                    self._data_queued = True
                    self._events.append(_DATA_READY)
                if self._fin_received or self._termination_pending is not None:
                    self._deliver()
        return True

    def handle_timer(self, now: float) -> None:
        """Fire every deadline that is due."""
        if self.give_up_at is not None and now >= self.give_up_at:
            self.give_up_at = None
            self._fail(TimeoutError("user timeout: data unacknowledged too long (RFC 5482)"))
            return
        if self.time_wait_at is not None and now >= self.time_wait_at:
            self.time_wait_at = None
            self._enter_closed(None)
            return
        if self.fin_wait_2_at is not None and now >= self.fin_wait_2_at:
            self.fin_wait_2_at = None
            self._enter_closed(None)
            return
        if self.tlp_at is not None and now >= self.tlp_at:
            # Before the RTO: a probe due with it goes first and re-arms it.
            self.tlp_at = None
            self._on_probe_timeout(now)
        if self.rto_at is not None and now >= self.rto_at:
            self.rto_at = None
            self._on_retransmission_timeout(now)
        if self.rack_at is not None and now >= self.rack_at:
            self.rack_at = None
            self._detect_losses(now)
        if self.pacing_at is not None and now >= self.pacing_at:
            self.pacing_at = None  # datagrams_to_send sends what the pacer held
        if self.pmtud is not None:
            at = self.pmtud.next_timer()
            if at is not None and now >= at:
                self.pmtud.handle_timer(now)
                self._check_pmtud_probe(now)
        if self.keepalive_at is not None and now >= self.keepalive_at:
            self._on_keepalive_timer(now)
            if self.state is State.CLOSED:
                return
        if self.persist_at is not None and now >= self.persist_at:
            self.persist_at = None
            self._probe_now = True
            self._persist_backoff = min(self._persist_backoff * 2, 1 << 16)
        if self.delayed_ack_at is not None and now >= self.delayed_ack_at:
            self.delayed_ack_at = None
            self._ack_now = True

    # --------------------------------------------------------------- output
    def datagrams_to_send(self, now: float, limit: int | None = None) -> list[bytes]:
        """Everything the engine wants on the wire now, in order.

        With ``limit``, new data stops after about ``limit`` segments: an owner
        that calls again while a call returns ``limit`` datagrams or more can put
        each batch on the wire while the engine builds the next one."""
        out: list[bytes] = []
        if self._resets:
            out += self._resets
            self.stats.segments_sent += len(self._resets)
            self._resets.clear()
        state = self.state
        if state is _CLOSED or state is _LISTEN:
            self._ack_now = self._probe_now = False
            return out
        if state is _SYN_SENT or state is _SYN_RECEIVED:
            if self.snd_nxt == self.iss:
                self._send_syn(now, out)
        else:
            if self._scoreboard.lost_bytes:
                self._send_lost(now, out)
            probe = self._tlp_resend
            if probe is not None:
                self._tlp_resend = None
                if probe.end > self._scoreboard.acked and not probe.sacked:
                    # (An ACK that arrived since the probe was decided may cover it.)
                    self._resend(probe, now, out)
            if self._tlp_new_data:
                self._tlp_new_data = False
                self._send_new_data(now, out, probe=True, limit=limit)
            else:
                self._send_new_data(now, out, False, limit)
            if self._probe_now:
                # The persist timer fired and no data could go: probe the window.
                self._probe_now = False
                self._send_window_probe(now, out)
        if (self._ack_now or self._dsack is not None) and state is not _SYN_SENT:
            # (A D-SACK rides on a pure ACK even when data just carried the ACK.)
            out.append(self._make_ack(now))
        return out

    # ===================================================== segment arrival
    def _on_segment_listen(self, seg: Segment, now: float) -> None:
        # RFC 9293 3.10.7.2
        flags = seg.flags
        if flags & RST:
            return
        if flags & ACK:
            self._reply_reset(seg)
            return
        if not flags & SYN:
            return
        self._accept_syn_options(seg)
        self.irs = seg.seq
        self.rcv_nxt = seq_add(seg.seq, 1)
        self._rcv_adv_edge = self.rcv_nxt
        self._set_state(State.SYN_RECEIVED)

    def _on_segment_syn_sent(self, seg: Segment, now: float) -> None:
        # RFC 9293 3.10.7.3
        flags = seg.flags
        if flags & ACK:
            # First: an ACK that does not acknowledge our SYN is from an old
            # incarnation; reset it unless it is itself a reset.
            if seq_le(seg.ack, self.iss) or seq_gt(seg.ack, self.snd_max):
                if not flags & RST:
                    self._reply_reset(seg)
                return
        if flags & RST:
            if flags & ACK:
                self.stats.resets_received += 1
                self._fail(ConnectionRefusedError("connection refused by the peer"))
            return
        if not flags & SYN:
            return
        self._accept_syn_options(seg)
        self.irs = seg.seq
        self.rcv_nxt = seq_add(seg.seq, 1)
        # What our SYN advertised (unscaled, RFC 7323 2.2).
        self._rcv_adv_edge = seq_add(self.rcv_nxt, min(self._rcv_buffer.free_space(), 0xFFFF))
        if flags & ACK:
            self._take_ack_of_syn(seg, now)
            self._update_send_window(seg)
            self._set_state(State.ESTABLISHED)
            self._on_established(now)
            self._ack_now = True
            if seg.payload or flags & FIN:
                # RFC 9293 3.10.7.3: other controls or text go on at the sixth step.
                self._process_text_and_fin(seg, now)
        else:
            # Simultaneous open: answer with SYN-ACK from SYN-RECEIVED.
            self.snd_nxt = self.iss
            self._set_state(State.SYN_RECEIVED)

    def _on_segment_synchronized(self, seg: Segment, now: float) -> None:
        flags = seg.flags
        if self.state is State.SYN_RECEIVED and flags & SYN and seg.seq == self.irs:
            if not flags & ACK:
                # Our SYN-ACK was lost: the peer retransmitted its SYN.
                self.snd_nxt = self.iss
                return
            # RFC 9293 3.5 figure 8 (simultaneous open): the peer's SYN-ACK sits
            # one below RCV.NXT; what matters in it is the ACK of our SYN.
            seg = replace(seg, seq=self.rcv_nxt, flags=flags & ~SYN, payload=b"")
            flags = seg.flags
        if self.state is State.TIME_WAIT and flags & SYN and not flags & ACK:
            if self._new_incarnation(seg):
                self.superseded = True
                self._enter_closed(None)
                return
        if self._paws_rejects(seg, now):
            # RFC 7323 (5.3 R1): an old duplicate; acknowledge and drop it.
            self.stats.dropped_unacceptable += 1
            self._ack_now = True
            return
        # RFC 9293 3.10.7.4 first: sequence number acceptability.
        if not self._acceptable(seg):
            if self._zero_window_allowance(seg):
                # RFC 9293 3.10.7.4: with RCV.WND zero, still take valid ACKs and
                # RSTs from a segment at RCV.NXT; its text is dropped (and ACKed).
                seg = replace(seg, payload=b"", flags=flags & ~FIN)
                self._ack_now = True
            else:
                self._on_unacceptable(seg, now)
                return
        if self.timestamps_enabled and seg.ts_val is not None and seq_le(
            seg.seq, self._last_ack_sent
        ):
            # RFC 7323 (4.3, 5.3 R3): remember the peer's clock from in-sequence
            # segments.
            if not seq_lt(seg.ts_val, self._ts_recent):
                self._ts_recent = seg.ts_val
                self._ts_recent_at = now
        # Second: RST, per RFC 5961 (3.2).
        if flags & RST:
            self._on_reset(seg, now)
            return
        # Fourth: a SYN in a synchronized state gets a challenge ACK (RFC 5961 4.2).
        if flags & SYN:
            self._challenge_ack(now)
            return
        # Fifth: the ACK field.
        if not flags & ACK:
            return
        if self.state is State.SYN_RECEIVED:
            if seq_gt(seg.ack, self.snd_una) and seq_le(seg.ack, self.snd_max):
                self._take_ack_of_syn(seg, now)
                self._update_send_window(seg)
                self._set_state(State.ESTABLISHED)
                self._on_established(now)
            else:
                self._reply_reset(seg)
                return
        elif not self._process_ack(seg, now):
            return
        if self.state is State.CLOSED:
            return
        # Seventh and eighth: segment text and FIN.
        if seg.payload or flags & FIN:
            self._process_text_and_fin(seg, now)

    def _on_unacceptable(self, seg: Segment, now: float) -> None:
        self.stats.dropped_unacceptable += 1
        if seg.flags & RST:
            return
        self._ack_now = True
        if seg.payload and seq_lt(seg.seq, self.rcv_nxt):
            self.stats.duplicate_segments += 1
            self._note_duplicate(seg.seq, seq_add(seg.seq, len(seg.payload)))
        if self.state is State.TIME_WAIT and seg.flags & FIN:
            # RFC 9293 3.10.7.4: a retransmitted FIN in TIME-WAIT is acknowledged
            # and restarts the 2 MSL timeout.
            self.time_wait_at = now + 2 * self.config.msl

    def _new_incarnation(self, seg: Segment) -> bool:
        """RFC 9293 3.10.7.4 / RFC 6191: a SYN in TIME-WAIT may open a new
        connection when it cannot belong to the old one: a higher timestamp when
        both sides use them, else a sequence number beyond the old RCV.NXT."""
        if self.timestamps_enabled and seg.ts_val is not None:
            return seq_gt(seg.ts_val, self._ts_recent)
        return seq_gt(seg.seq, self.rcv_nxt)

    def _zero_window_allowance(self, seg: Segment) -> bool:
        return (
            seg.seq == self.rcv_nxt
            and seq_sub(self._rcv_adv_edge, self.rcv_nxt) <= 0
            and bool(seg.flags & (ACK | RST))
        )

    def _paws_rejects(self, seg: Segment, now: float) -> bool:
        # RFC 7323 (5.3 R1, 5.5): PAWS, unless TS.Recent is over 24 days old.
        return (
            self.timestamps_enabled
            and seg.ts_val is not None
            and not seg.flags & RST
            and seq_lt(seg.ts_val, self._ts_recent)
            and now - self._ts_recent_at < PAWS_IDLE_LIMIT
        )

    def _acceptable(self, seg: Segment) -> bool:
        # RFC 9293 3.10.7.4, the four cases of the acceptability table.
        rcv_wnd = seq_sub(self._rcv_adv_edge, self.rcv_nxt)
        rcv_wnd = rcv_wnd if rcv_wnd > 0 else 0
        seg_len = seg.seg_len
        if seg_len == 0:
            if rcv_wnd == 0:
                return seg.seq == self.rcv_nxt
            return seq_in_window(seg.seq, self.rcv_nxt, rcv_wnd)
        if rcv_wnd == 0:
            return False
        last = seq_add(seg.seq, seg_len - 1)
        return seq_in_window(seg.seq, self.rcv_nxt, rcv_wnd) or seq_in_window(
            last, self.rcv_nxt, rcv_wnd
        )

    def _on_reset(self, seg: Segment, now: float) -> None:
        # RFC 5961 (3.2): only an exact match resets; others in the window are
        # challenged, so a blind attacker must guess RCV.NXT exactly.
        if seg.seq != self.rcv_nxt:
            self._challenge_ack(now)
            return
        self.stats.resets_received += 1
        state = self.state
        if state is State.SYN_RECEIVED and self._passive_open:
            # RFC 9293 3.10.7.4 second: back to LISTEN; the user need not know.
            self._return_to_listen()
        elif state is State.SYN_RECEIVED:
            self._fail(ConnectionRefusedError("connection refused by the peer"))
        elif state in (State.CLOSING, State.LAST_ACK, State.TIME_WAIT):
            self._enter_closed(None)
        else:
            self._fail(ConnectionResetError("connection reset by the peer"))

    def _challenge_ack(self, now: float) -> None:
        # RFC 5961 (7): rate-limit challenge ACKs.
        if now - self._challenge_window_start >= 1.0:
            self._challenge_window_start = now
            self._challenge_count = 0
        if self._challenge_count < CHALLENGE_ACK_LIMIT:
            self._challenge_count += 1
            self.stats.challenge_acks += 1
            self._ack_now = True

    def _process_ack(self, seg: Segment, now: float) -> bool:
        """RFC 9293 3.10.7.4 fifth step in the synchronized states.  Returns False
        when the segment must be dropped."""
        ack = seg.ack
        if seq_gt(ack, self.snd_max):
            # Acknowledges something not yet sent.
            self._ack_now = True
            return False
        acked = seq_sub(ack, self.snd_una)
        if acked < -self.max_snd_wnd:
            # RFC 5961 (5.2): an ACK older than any window the peer offered is
            # discarded with an ACK, text and all.
            self._ack_now = True
            return False
        blocks = seg.sack_blocks
        if blocks and self.sack_permitted and _is_dsack(blocks, ack):
            self.stats.dsacks_received += 1
            if self._tlp_high is not None and seq_ge(ack, self._tlp_high):
                # RFC 8985 (7.4.2): the probe was a duplicate -- the original
                # arrived too, nothing was lost: the episode ends with no
                # congestion response (as Linux's tcp_process_tlp_ack).
                self._tlp_high = None
        if acked > 0:
            self._on_new_ack(ack, seg.ts_ecr, acked, now)
        if blocks and self.sack_permitted:
            self._take_sack_blocks(blocks, now)
        if acked == 0:
            self._maybe_duplicate_ack(seg, now)
        if self._scoreboard.outstanding:
            self._detect_losses(now)
        if self._pmtud_probe is not None:
            self._check_pmtud_probe(now)
        # RFC 9293 3.10.7.4: window update if the segment is not older than the
        # last one that updated it.
        if seq_lt(self.snd_wl1, seg.seq) or (
            self.snd_wl1 == seg.seq and seq_le(self.snd_wl2, ack)
        ):
            self._update_send_window(seg)
        self._after_ack_state_changes(now)
        return True

    def _on_new_ack(self, ack: int, ts_ecr: int | None, acked: int, now: float) -> None:
        flight = self._scoreboard.outstanding
        newly = self._scoreboard.ack(self._offset(ack), now)
        data_acked = self._consume_acked_data(ack)
        self.snd_una = ack
        self.stats.bytes_acked += data_acked
        self._sample_rtt(ts_ecr, ack, now)
        if self._in_recovery:
            if seq_ge(ack, self._recover):
                # RFC 6582 (3.2 step 3) / RFC 6675 (5): full acknowledgment ends
                # recovery.
                self._in_recovery = False
                self.cc.on_recovery_end(self._scoreboard.outstanding)
            elif not self.sack_permitted:
                # RFC 6582 (3.2 step 3) partial acknowledgment: the next hole is
                # lost too; deflate by what was acked.
                self.cc.on_partial_ack(newly)
                self._mark_first_outstanding_lost()
                self._retransmit_now = True
        elif self._cwnd_limited(flight):
            self.cc.on_ack(newly, now, self.rtt.srtt)
        if self._tlp_high is not None and seq_ge(ack, self._tlp_high):
            self._end_tlp_episode(now)
        self._dupacks = 0
        self._lt_bytes = 0
        self._tlp_allowed = True
        self._consecutive_timeouts = 0
        # RFC 6298 (5.2, 5.3): stop the timer when all is acked, else restart it.
        if self.snd_una == self.snd_max:
            self.rto_at = self.tlp_at = self.rack_at = None
            self.give_up_at = None
        else:
            self.rto_at = now + self.rtt.rto
            self.give_up_at = now + self.config.user_timeout
            self._arm_tlp(now)
        if self._above_high_water and len(self._send_buffer) <= self._low_water:
            self._above_high_water = False
            self._events.append(WritableAgain())

    def _cwnd_limited(self, flight: int) -> bool:
        """Whether the window was what limited sending (RFC 7661, RFC 9438 4.6): an
        application-limited sender does not grow cwnd it never used.  As Linux's
        tcp_is_cwnd_limited: in slow start, half the window in flight suffices."""
        if self.cc.in_slow_start:
            return 2 * flight > self.cc.cwnd
        return flight + self.snd_mss > self.cc.cwnd

    def _take_sack_blocks(self, blocks: tuple[tuple[int, int], ...], now: float) -> None:
        # RFC 2018 (4) / RFC 6675 (4): record what the receiver holds; blocks
        # outside SND.UNA..SND.MAX are ignored.
        for left, right in blocks:
            if seq_lt(left, right) and seq_ge(left, self.snd_una) and seq_le(right, self.snd_max):
                self._scoreboard.sack(self._offset(left), self._offset(right), now)

    def _maybe_duplicate_ack(self, seg: Segment, now: float) -> None:
        # RFC 5681 (2): the definition of a duplicate acknowledgment.
        if (
            seg.payload
            or seg.flags & (SYN | FIN)
            or self.snd_una == self.snd_max
            or (seg.window << self.snd_wscale) != self.snd_wnd
        ):
            return
        self._dupacks += 1
        if self._in_recovery:
            if not self.sack_permitted:
                # RFC 5681 (3.2 step 4): each further duplicate means a segment
                # left the network; without SACK only inflation can say so.
                self.cc.on_dupack()
        elif self._dupacks == DUPACK_THRESHOLD and seq_gt(self.snd_una, self._recover):
            # RFC 5681 (3.2 step 2) / RFC 6675 (5): the first hole is lost --
            # unless these duplicates answer our own resending after an RTO
            # (RFC 6582 3.2 step 2).
            self._mark_first_outstanding_lost()

    def _mark_first_outstanding_lost(self) -> None:
        for sent in self._scoreboard:
            if not sent.sacked:
                self._scoreboard.mark_lost(sent)
                return

    def _detect_losses(self, now: float) -> None:
        """Mark lost segments (RFC 6675 IsLost, RFC 8985 RACK) and start recovery."""
        board = self._scoreboard
        if self.sack_permitted:
            board.detect_by_dupthresh(DUPACK_THRESHOLD, self.snd_mss)
            # RFC 8985 (6.2 step 4): no reordering window in recovery on a path
            # not known to reorder; else a quarter of the minimum RTT.
            recovering = self._in_recovery or self._dupacks >= DUPACK_THRESHOLD
            if recovering and not board.reordering_seen:
                reo_wnd = 0.0
            else:
                reo_wnd = (self.min_rtt or 0.0) / 4
                if self.rtt.srtt is not None:
                    reo_wnd = min(reo_wnd, self.rtt.srtt)
            self.rack_at = board.detect_by_time(now, reo_wnd)
        if board.lost_bytes and not self._in_recovery and seq_gt(self.snd_una, self._recover):
            self._enter_recovery(now)

    def _enter_recovery(self, now: float) -> None:
        # RFC 6582 (3.2 step 2) / RFC 6675 (5): one window reduction per episode.
        self._in_recovery = True
        self._recover = self.snd_max
        # RFC 5681 (3.2 step 2): FlightSize without limited-transmit data.
        self.cc.on_loss(now, self._scoreboard.outstanding - self._lt_bytes)
        if self.sack_permitted:
            # RFC 6675 (5 step 4.2): with a scoreboard, pipe does what inflation
            # does for NewReno.
            self.cc.cwnd = self.cc.ssthresh
        self.tlp_at = None
        self._rtt_seq = None
        self._retransmit_now = True
        self.stats.fast_retransmits += 1
        if self._log is not None:
            self._log.info("loss_recovery", cwnd=self.cc.cwnd, ssthresh=self.cc.ssthresh)

    def _after_ack_state_changes(self, now: float) -> None:
        if not self._fin_queued or not self._fin_sent():
            return
        if self.snd_una != self.snd_max:
            if self.state is State.LAST_ACK:
                self._end_if_only_fin_unacked()
            return
        # Our FIN is acknowledged.
        state = self.state
        if state is State.FIN_WAIT_1:
            self._stop_pmtud()
            self._set_state(State.FIN_WAIT_2)
            if self._app_closed:
                self.fin_wait_2_at = now + self.config.fin_wait_2_timeout
                self._terminate(None)
        elif state is State.CLOSING:
            self._enter_time_wait(now)
        elif state is State.LAST_ACK:
            self._enter_closed(None)

    def _end_if_only_fin_unacked(self) -> None:
        """LAST-ACK with every data byte acknowledged: the peer closed first and
        has all we sent, so the connection is over for the user (RFC 9293 3.10.4:
        CLOSE in CLOSE-WAIT), as close() on a kernel socket returns at once.  The
        ACK of our FIN matters to the peer's TCP alone; we go on retransmitting
        the FIN until it comes or the user timeout ends it, silently.  Else a
        peer gone after its FIN (a client that exits once its own close is done)
        would hold the application -- and Server.wait_closed -- that long."""
        if self.snd_una == self._fin_seq:
            self._terminate(None)

    def _process_text_and_fin(self, seg: Segment, now: float) -> None:
        state = self.state
        if state not in _CAN_RECEIVE_TEXT:
            # The peer's FIN came already; RFC 9293 3.10.7.4 seventh: ignore the text.
            if state is State.TIME_WAIT and seg.flags & FIN:
                # A retransmitted FIN: acknowledge it, restart the 2 MSL timeout.
                self._ack_now = True
                self.time_wait_at = now + 2 * self.config.msl
            elif seg.flags & FIN:
                self._ack_now = True
            return
        payload = seg.payload
        # Text starts after the SYN, if the segment carries one.
        seq = seq_add(seg.seq, 1) if seg.flags & SYN else seg.seq
        # Trim what we already have (the left edge) and what lies past the window.
        offset = seq_sub(self.rcv_nxt, seq)
        if offset > 0:
            if payload:
                self._note_duplicate(seq, seq_add(seq, min(offset, len(payload))))
            payload = payload[offset:]
            seq = self.rcv_nxt
        fin = bool(seg.flags & FIN)
        room = seq_sub(self._rcv_adv_edge, seq)
        if len(payload) > room:
            payload = payload[: max(room, 0)]
            fin = False
        if payload and self._app_closed:
            # RFC 9293 3.10.7.4 seventh, as Linux: new data after CLOSE cannot be
            # delivered; reset rather than pretend.
            self.abort()
            return
        if payload:
            start = self._rcv_buffer.delivered_end + seq_sub(seq, self.rcv_nxt)
            was_gap = self._rcv_buffer.has_gaps
            if was_gap and self.sack_permitted:
                end = start + len(payload)
                for held_start, held_end in self._rcv_buffer.ranges():
                    if held_start <= start and end <= held_end:
                        # All of it is held already, out of order (RFC 2883 4.1.3).
                        self._note_duplicate(seq, seq_add(seq, len(payload)))
                        break
            in_order = self._rcv_buffer.insert(start, bytes(payload))
            self.stats.bytes_received += len(payload)
            if in_order:
                self.rcv_nxt = seq_add(self.rcv_nxt, in_order)
                if now >= self._rcvq_at:
                    self._rcv_space_adjust(now, seg.ts_ecr)
                if was_gap:
                    # RFC 5681 (4.2): ACK at once when a gap is filled.
                    self._ack_now = True
                elif seg.flags & PSH and self._reading:
                    # The application is reading and the sender pushed: it waits
                    # for this ACK (as Linux's ICSK_ACK_PUSHED).  Due now, as a
                    # deadline rather than at once, so that an owner gives the
                    # application its turn first and a reply carries the ACK.
                    self._segs_since_ack += 1
                    self.delayed_ack_at = now
                else:
                    self._schedule_ack(now)
                self._deliver()
            else:
                # RFC 5681 (4.2): an out-of-order segment is ACKed at once.
                self.stats.out_of_order_segments += 1
                self._recent_ooo.insert(0, start)
                del self._recent_ooo[4:]
                self._ack_now = True
        if fin:
            self._fin_received_seq = seq_add(seq, len(payload))
            self._ack_now = True
        if self._fin_received_seq is not None and self.rcv_nxt == self._fin_received_seq:
            self._on_fin(now)

    def _on_fin(self, now: float) -> None:
        # RFC 9293 3.10.7.4 eighth: the FIN is in order.
        self._fin_received_seq = None
        self._fin_received = True
        self.rcv_nxt = seq_add(self.rcv_nxt, 1)
        if seq_lt(self._rcv_adv_edge, self.rcv_nxt):
            self._rcv_adv_edge = self.rcv_nxt
        self._ack_now = True
        state = self.state
        if state is State.ESTABLISHED:
            self._set_state(State.CLOSE_WAIT)
        elif state is State.FIN_WAIT_1:
            if self._fin_sent() and self.snd_una == self.snd_max:
                self._enter_time_wait(now)
            else:
                self._set_state(State.CLOSING)
        elif state is State.FIN_WAIT_2:
            self._enter_time_wait(now)
        self._deliver()

    # ========================================================== delivery
    def _deliver(self) -> None:
        """Hand in-order data, then EOF, then a pending end, to the application
        while it reads."""
        if not self._reading or self._terminated:
            return
        if self._rcv_buffer.unread and not self._data_queued:
            self._data_queued = True
            self._events.append(_DATA_READY)
        if self._fin_received and not self._eof_delivered:
            self._eof_delivered = True
            self._events.append(EofReceived())
        if self._termination_pending is not None:
            (error,) = self._termination_pending
            self._termination_pending = None
            self._terminate(error)

    def _undelivered(self) -> bool:
        unread = bool(self._rcv_buffer.unread) and not self._data_queued
        return unread or (self._fin_received and not self._eof_delivered)

    def _schedule_ack(self, now: float) -> None:
        # RFC 5681 (4.2) / RFC 9293 3.8.6.3: ACK at least every second full-sized
        # segment, and within the delayed-ACK time otherwise.
        self._segs_since_ack += 1
        if self._segs_since_ack >= 2 or self.config.delayed_ack == 0:
            self._ack_now = True
        elif self.delayed_ack_at is None:
            self.delayed_ack_at = now + self.config.delayed_ack

    def _rcv_space_adjust(self, now: float, ts_ecr: int | None) -> None:
        """Receive-buffer autotuning, as Linux's DRS (tcp_rcv_space_adjust), when
        in-order data arrives a round trip or more after the measure began.

        What counts is what the application read in that time less what still
        waits unread (as Linux since "tcp: add receive queue awareness in
        tcp_rcv_space_adjust()"): only an application that keeps up with the
        data grows the buffer.  If that is more than in any measure before, the
        buffer grows to twice it (a lost segment costs a round trip to repair)
        plus a cushion of DRS_CUSHION_SEGMENTS, and more in proportion to the
        growth: a sender in slow start doubles its rate each round trip, and the
        window we advertise now is the one it uses in the next.  The buffer
        never shrinks and stops at ``Config.receive_buffer_max``; an application
        that does not read never grows it.  (Linux sizes sk_rcvbuf with its
        per-packet overhead; ours holds payload only, so the window it computes
        is the buffer.)"""
        buffer = self._rcv_buffer
        ceiling = self.config.receive_buffer_max
        # No further than the window field can say with the agreed shift.
        field_max = 0xFFFF << self.rcv_wscale
        if field_max < ceiling:
            ceiling = field_max
        if buffer.capacity >= ceiling:
            self._rcvq_at = _MEASURE_NEVER  # nothing left to grow to: measure no more
            return
        delivered = self.stats.bytes_delivered
        copied = delivered - self._rcvq_copied - len(buffer.ready)
        mss = self.snd_mss
        # Linux's tcp_init_buffer_space: the first measure expects the initial window.
        space = self._rcvq_space or min(buffer.capacity, DRS_INITIAL_SEGMENTS * mss)
        if copied > space:
            window = 2 * copied + DRS_CUSHION_SEGMENTS * mss
            window += 2 * (window * (copied - space) // space)
            if window > ceiling:
                window = ceiling
            if window > buffer.capacity:
                # The advertised window follows through _advertise_window: its
                # right edge moves on (never back) by the receiver's SWS rule.
                buffer.capacity = window
            space = copied
        self._rcvq_space = space
        self._rcvq_copied = delivered
        self._rcvq_at = now + self._receiver_rtt(now, ts_ecr)

    def _receiver_rtt(self, now: float, ts_ecr: int | None) -> float:
        """The round trip that paces autotuning's measure, as the receiver sees it
        (Linux's rcv_rtt_est).

        A bulk receiver sends only ACKs, which nothing times, so SRTT may hold the
        handshake's sample alone.  With timestamps, the TSecr of arriving data
        echoes the TSval of the ACK that let it go (RFC 7323 4.3), so now - TSecr
        is a round trip (Linux's tcp_rcv_rtt_measure_ts); a sample lowers the
        estimate at once but raises it by an eighth of the difference, because
        a sender that paused echoes an old TSval.  Without timestamps, SRTT (the
        handshake's sample, or our own data's); with no sample at all, the RTO."""
        rtt = self._rcv_rtt
        if rtt is None:
            rtt = self.rtt.srtt
        if ts_ecr is not None and self.timestamps_enabled:
            # (_ts_now(now) - ts_ecr, modulo 2**32, in ticks)
            ticks = (trunc(now * TS_HZ) + self._ts_offset - ts_ecr) & SEQ_MASK
            if ticks < self.config.max_rto * 2 * TS_HZ:  # else no echo of ours
                sample = ticks / TS_HZ
                rtt = sample if rtt is None or sample < rtt else rtt + (sample - rtt) / 8
                self._rcv_rtt = rtt
        if rtt is None:
            rtt = self.rtt.rto
        return rtt if rtt > DRS_MIN_INTERVAL else DRS_MIN_INTERVAL

    def _maybe_window_update(self) -> None:
        # RFC 9293 3.8.6.2.2: tell the peer once the window has grown by enough.
        if self.state not in _CAN_RECEIVE_TEXT:
            return
        edge = seq_add(self.rcv_nxt, self._rcv_buffer.free_space())
        if seq_sub(edge, self._rcv_adv_edge) >= self._sws_threshold():
            self._ack_now = True

    def _sws_threshold(self) -> int:
        half_buffer = self._rcv_buffer.capacity // 2
        segment = self.config.max_segment_size - HEADER_LEN
        return half_buffer if half_buffer < segment else segment

    # ========================================================== sending
    def _send_syn(self, now: float, out: list[bytes]) -> None:
        cfg = self.config
        passive = self.state is State.SYN_RECEIVED
        flags = SYN | ACK if passive else SYN
        ack = self.rcv_nxt if passive else 0
        mss = (cfg.pmtud_max_segment_size if cfg.pmtud else cfg.max_segment_size) - HEADER_LEN
        # RFC 7323 / RFC 2018: offer options; when answering, only what was offered.
        ts_val = ts_ecr = None
        if cfg.timestamps and (self.timestamps_enabled or not passive):
            ts_val = self._ts_now(now)
            ts_ecr = self._ts_recent if passive else 0
        sack = cfg.sack and (self.sack_permitted or not passive)
        wscale = self._offer_wscale
        if wscale is not None and passive and not self.window_scaling:
            wscale = None
        # RFC 7323 (2.2): the window in a SYN is never scaled.
        window = min(self._rcv_buffer.free_space(), 0xFFFF)
        if passive:
            self._rcv_adv_edge = seq_add(self.rcv_nxt, window)
            self._last_ack_sent = self.rcv_nxt
            self._ack_now = False
        if ts_val is not None and ts_ecr is not None and sack and wscale is not None:
            # Every option, as nearly every SYN and SYN-ACK has them: packed in one
            # call, byte for byte what encode() writes.
            data = bytearray(_FULL_SYN.size)
            _FULL_SYN.pack_into(
                data, 0, self.local_port, self.remote_port, self.iss, ack, _FULL_SYN_OFFSET,
                flags, window, 0, 0, *_MSS_KIND_LEN, mss, *_SACKOK_TS_KINDS, ts_val, ts_ecr,
                *_NOP_WSCALE_KINDS, wscale,
            )
            if self._fill_checksum:
                CHECKSUM_FIELD.pack_into(data, CHECKSUM_OFFSET, internet_checksum(data))
            self.stats.segments_sent += 1
            out.append(bytes(data))
        else:
            seg = Segment(seq=self.iss, ack=ack, flags=flags, window=window, mss=mss,
                          sack_permitted=sack, wscale=wscale, ts_val=ts_val, ts_ecr=ts_ecr)
            out.append(self._finish(seg))
        if self.snd_max != self.iss:
            self._ts_retransmitted = ts_val
        if self._syn_retries == 0 and self.snd_max == self.iss:
            self._rtt_seq = self.iss
            self._rtt_sent_at = now
        self.snd_nxt = seq_add(self.iss, 1)
        if seq_lt(self.snd_max, self.snd_nxt):
            self.snd_max = self.snd_nxt
        if self.rto_at is None:
            self.rto_at = now + self.rtt.rto

    def _send_new_data(
        self, now: float, out: list[bytes], probe: bool = False, limit: int | None = None
    ) -> None:
        """Send unsent data (and the FIN) as the windows allow, up to about
        ``limit`` segments.  ``probe``: a tail loss probe (RFC 8985 7.3) may send
        one segment beyond the windows."""
        buffer_seq = self._buffer_start
        buffered = len(self._send_buffer)
        # seq_sub(SND.NXT, buffer_seq): the first unsent byte's buffer offset.
        unsent = ((self.snd_nxt - buffer_seq + HALF) & SEQ_MASK) - HALF
        if buffered <= unsent and not self._fin_queued:
            return  # nothing new to send (most calls, on a connection that echoes)
        mss = self.snd_mss
        sent_any = False
        burst = 0 if probe else self._burst_size(buffered - unsent)
        if burst:
            if limit is not None and burst > limit * mss:
                # The owner takes this batch and asks again for the rest.
                self._send_burst(now, out, unsent, limit * mss)
                self._arm_tlp(now)
                return
            self._send_burst(now, out, unsent, burst)
            if burst == buffered - unsent and not self._fin_queued:
                # All sent, and no FIN to follow: the loop below would find
                # nothing to do.
                self._arm_tlp(now)
                return
            sent_any = True
        while True:
            offset = seq_sub(self.snd_nxt, buffer_seq)
            remaining = buffered - offset
            fin_due = self._fin_queued and remaining <= 0 and not self._fin_in_flight()
            if remaining <= 0 and not fin_due:
                break
            size = 0
            mtu_probe = self._mtu_probe_payload(now, remaining) if self.pmtud else 0
            if self.config.pacing and not probe and self._pacer_holds(now):
                break
            if mtu_probe:
                size = mtu_probe
            elif remaining > 0:
                usable = self._receiver_room() if probe else self._usable_window()
                size = min(mss, remaining, usable)
                # RFC 9293 3.8.6.2.1: sender silly-window avoidance, overridden
                # when the persist timer fired (the "override timeout").
                if (
                    size < mss
                    and size < remaining
                    and size < self.max_snd_wnd // 2
                    and not self._probe_now
                ):
                    size = 0
                if size <= 0:
                    self._arm_persist(now)
                    break
                if self.config.nagle and size < mss and self.snd_nxt != self.snd_una:
                    break  # RFC 896: one small segment in flight at a time
            fin = self._fin_queued and size == remaining
            flags = ACK | (PSH if size == remaining and size else 0) | (FIN if fin else 0)
            payload = self._send_buffer.peek(offset, size) if size else b""
            self._emit_data(now, out, self.snd_nxt, flags, payload, False)
            start = self._buffer_offset + offset
            self._scoreboard.on_sent(start, start + size + fin, now)
            if self.config.pacing:
                self._pace(len(out[-1]), now)
            if mtu_probe and self.pmtud is not None:
                datagram = len(out[-1])
                self._pmtud_probe = (start, start + size + fin, datagram)
                self.pmtud.on_probe_sent(datagram, now)
            self._probe_now = False
            self.snd_nxt = self.snd_max = seq_add(self.snd_nxt, size + fin)
            sent_any = True
            if fin or probe:
                break
        if sent_any:
            # RFC 8985 (7.2): (re)schedule the probe after sending new data.
            self._arm_tlp(now)

    def _burst_size(self, remaining: int) -> int:
        """How many of the ``remaining`` unsent bytes go as one burst: full-sized
        segments, and a last shorter one when it empties the buffer.  0 when some
        segment needs the general loop's decisions (pacing, path MTU probes,
        limited transmit, a FIN, silly-window or Nagle holding a short one back)."""
        if self.pmtud is not None or self.config.pacing:
            return 0
        dupacks = self._dupacks
        if not self.sack_permitted and 0 < dupacks < DUPACK_THRESHOLD and not self._in_recovery:
            return 0  # _limited_transmit() is not 0
        mss = self.snd_mss
        # _usable_window(), written out: cwnd less pipe, and the receiver's room.
        board = self._scoreboard
        pipe = board.sent_end - board.acked - board.sacked_bytes - board.lost_bytes
        room = ((self.snd_una + self.snd_wnd - self.snd_nxt + HALF) & SEQ_MASK) - HALF
        size = self.cc.cwnd - pipe
        if room < size:
            size = room
        if remaining < size:
            size = remaining
        if size < remaining:
            size -= size % mss  # a short segment here: the loop's SWS avoidance decides
        elif size % mss and self.config.nagle and (size > mss or self.snd_nxt != self.snd_una):
            size -= size % mss  # RFC 896: the loop holds the short segment back
        if self._fin_queued and size == remaining:
            # The last segment carries the FIN: the general loop sends it.
            size -= size % mss or mss
        return size if size > 0 else 0

    def _send_burst(self, now: float, out: list[bytes], offset: int, size: int) -> None:
        """``size`` bytes of new data from buffer ``offset``, in full-sized segments
        and a shorter last one: what the loop of _send_new_data would send, built
        in one pass -- one window and one timestamp for all (nothing changes them
        in between), headers packed from one template, one scoreboard and
        statistics update."""
        mss = self.snd_mss
        buffer = self._send_buffer
        end = offset + size
        last_flags = _ACK_PSH if len(buffer) == end else ACK
        seq = self.snd_nxt
        start = self._buffer_offset + offset
        if size <= mss:
            # One segment (a request or a reply): packed as the general path would.
            out.append(self._pack_with_ack(seq, last_flags, buffer[offset:end], now))
            self._scoreboard.on_sent(start, start + size, now)
            self.stats.bytes_sent += size
            seq = (seq + size) & SEQ_MASK
        else:
            seq = self._pack_burst(now, out, offset, end, last_flags)
            self._scoreboard.on_sent_many(start, start + size, mss, now)
            stats = self.stats
            stats.bytes_sent += size
            stats.segments_sent += -(-size // mss)
        self.cc.on_sent(size, now)
        if self._rtt_seq is None and not self.timestamps_enabled:
            self._rtt_seq = self.snd_nxt
            self._rtt_sent_at = now
        if self.rto_at is None:
            self.rto_at = now + self.rtt.rto  # RFC 6298 (5.1)
        if self.give_up_at is None:
            self.give_up_at = now + self.config.user_timeout
        self.persist_at = None
        self._persist_backoff = 1
        self._probe_now = False
        self.snd_nxt = self.snd_max = seq

    def _pack_burst(
        self, now: float, out: list[bytes], offset: int, end: int, last_flags: int
    ) -> int:
        """The segments of _send_burst, from buffer ``offset`` to ``end``; returns
        the sequence number after them."""
        mss = self.snd_mss
        window = self._advertise_window()
        rcv_nxt = self._last_ack_sent = self.rcv_nxt
        self._ack_now = False
        self._segs_since_ack = 0
        self.delayed_ack_at = None
        ports = (self.local_port, self.remote_port)
        if self.timestamps_enabled:
            template = _TS_WORDS
            options: tuple[int, ...] = (_NOP_NOP_TS_WORD, self._ts_now(now), self._ts_recent)
            offset_byte = TS_SEGMENT_OFFSET
        else:
            template, options, offset_byte = HEADER, (), PLAIN_OFFSET
        pack_into = template.pack_into
        header_len = template.size
        checksum = self._fill_checksum
        seq = self.snd_nxt
        append = out.append
        with self._send_buffer.view() as data:
            for start in range(offset, end, mss):
                stop = start + mss if start + mss < end else end
                flags = last_flags if stop == end else ACK
                datagram = bytearray(header_len + stop - start)
                pack_into(datagram, 0, *ports, seq, rcv_nxt, offset_byte, flags, window, 0, 0,
                          *options)
                datagram[header_len:] = data[start:stop]
                if checksum:
                    CHECKSUM_FIELD.pack_into(datagram, CHECKSUM_OFFSET, internet_checksum(datagram))
                append(bytes(datagram))
                seq = (seq + stop - start) & SEQ_MASK
        return seq

    def _send_lost(self, now: float, out: list[bytes]) -> None:
        """RFC 6675 (4, NextSeg rule 1): resend segments presumed lost, oldest
        first, while the congestion window has room for them."""
        board = self._scoreboard
        mss = self.snd_mss
        while board.lost_bytes and (self._retransmit_now or self.cc.cwnd - board.pipe >= mss):
            # RFC 5681 (3.2 step 2) and RFC 6582 (3.2 step 3): the fast
            # retransmission and a partial ACK's retransmission go at once.
            self._retransmit_now = False
            sent = board.first_lost()
            if sent is None:
                break
            if sent.end - sent.start > mss:
                board.split_front(sent, mss)  # the MSS shrank since
            if sent.start == board.acked:
                # As Linux: resending the oldest segment restarts the RTO, which
                # would otherwise expire before the repair could be acknowledged.
                self.rto_at = now + self.rtt.rto
            self._resend(sent, now, out)

    def _resend(self, sent: SentSegment, now: float, out: list[bytes]) -> None:
        offset = sent.start - self._buffer_offset
        data_end = min(sent.end - self._buffer_offset, len(self._send_buffer))
        fin = self._fin_queued and sent.end - self._buffer_offset > len(self._send_buffer)
        payload = self._send_buffer.peek(offset, data_end - offset) if data_end > offset else b""
        seq = seq_add(self._buffer_start, offset)
        push = PSH if payload and data_end == len(self._send_buffer) else 0
        self._emit_data(now, out, seq, ACK | push | (FIN if fin else 0), payload, True)
        if self._log is not None:
            self._log.debug("retransmit", seq=seq, length=len(payload), fin=bool(fin))
        self._scoreboard.on_retransmitted(sent, now)

    def _emit_data(
        self, now: float, out: list[bytes], seq: int, flags: int, payload: bytes, again: bool
    ) -> None:
        out.append(self._pack_with_ack(seq, flags, payload, now))
        n = len(payload)
        stats = self.stats
        stats.bytes_sent += n
        if again:
            self._ts_retransmitted = self._ts_now(now) if self.timestamps_enabled else None
            stats.bytes_retransmitted += n
            stats.retransmitted_segments += 1
            self._rtt_seq = None  # Karn: never time across a retransmission
        else:
            self.cc.on_sent(n, now)
            if self._limited_transmit():
                self._lt_bytes += n
            if self._rtt_seq is None and not self.timestamps_enabled:
                self._rtt_seq = seq
                self._rtt_sent_at = now
        if self.rto_at is None:
            # RFC 6298 (5.1)
            self.rto_at = now + self.rtt.rto
        if self.give_up_at is None:
            self.give_up_at = now + self.config.user_timeout
        self.persist_at = None
        self._persist_backoff = 1

    # ============================================================ pacing
    def _pacer_holds(self, now: float) -> bool:
        """True when the next segment must wait for the pacer (then it arms
        ``pacing_at``)."""
        if self.rtt.srtt is None or now >= self._paced_until:
            return False
        if self.pacing_at is None or self.pacing_at > self._paced_until:
            self.pacing_at = self._paced_until
        return True

    def _pace(self, size: int, now: float) -> None:
        # Rate = gain * cwnd / SRTT; a burst of PACING_BURST_SEGMENTS goes at once.
        srtt = self.rtt.srtt
        if srtt is None or srtt <= 0:
            return
        gain = PACING_GAIN_SLOW_START if self.cc.in_slow_start else PACING_GAIN_AVOIDANCE
        interval = size * srtt / (gain * self.cc.cwnd)
        burst = PACING_BURST_SEGMENTS * interval
        start = max(self._paced_until, now - burst)
        self._paced_until = start + interval

    # ================================================ path MTU discovery
    def _start_pmtud(self) -> None:
        cfg = self.config
        ceiling = min(cfg.pmtud_max_segment_size, self.peer_mss + HEADER_LEN)
        base = min(cfg.max_segment_size, ceiling)
        if cfg.pmtud and ceiling > base:
            self.pmtud = PathMtuDiscovery(base, ceiling)
            self.pmtud.start()

    def _mtu_probe_payload(self, now: float, remaining: int) -> int:
        """Payload of the probe to send now, or 0 (RFC 4821 7.4: probe only with
        data to fill it and more behind it, outside recovery, within both windows)."""
        pmtud = self.pmtud
        if pmtud is None or self._pmtud_probe is not None or self._in_recovery:
            return 0
        size = pmtud.should_probe(now)
        if size is None:
            return 0
        payload = size - HEADER_LEN - (TS_OPTION_LEN if self.timestamps_enabled else 0)
        if payload < self.snd_mss or remaining < payload + self.snd_mss:
            return 0
        if self._usable_window() < payload:
            return 0
        return payload

    def _check_pmtud_probe(self, now: float) -> None:
        """Tell the prober what became of its probe; resize segments after."""
        probe, pmtud = self._pmtud_probe, self.pmtud
        if probe is None or pmtud is None:
            return
        start, end, size = probe
        board = self._scoreboard
        record = board.find(start)
        if board.acked >= end or (record is not None and record.sacked and record.end >= end):
            pmtud.on_probe_acked(size, now)
        elif record is not None and (record.lost or record.retransmitted):
            # RFC 4821 (7.5): a lost probe; its data goes again at the old size.
            pmtud.on_probe_lost(size, now)
        elif pmtud.probe_in_flight:
            return
        self._pmtud_probe = None
        self._size_segments(pmtud.plpmtu)

    # ===================================================== tail loss probe
    def _arm_tlp(self, now: float) -> None:
        # RFC 8985 (7.2): PTO = 2 * SRTT, plus the worst-case delayed ACK when a
        # single segment is in flight; never later than the RTO.
        if (
            not (self.sack_permitted and self._tlp_allowed)
            or self._in_recovery
            # seq_lt(SND.UNA, recover): still repairing after an RTO
            or ((self.snd_una - self._recover) & SEQ_MASK) >= HALF
        ):
            return
        srtt = self.rtt.srtt
        board = self._scoreboard
        if srtt is None:
            pto = 1.0  # TLP_calc_PTO: one second before any RTT sample
        elif board.sent_end - board.acked <= self.snd_mss:
            pto = 2 * srtt + WORST_CASE_DELAYED_ACK
        else:
            # Linux adds TCP_TIMEOUT_MIN and keeps 10 ms at least: on a fast
            # path a few scheduling delays would otherwise fire needless probes.
            pto = 2 * srtt + PTO_SLACK
            if pto < MIN_PTO:
                pto = MIN_PTO
        at = now + pto
        rto_at = self.rto_at
        if rto_at is not None and at > rto_at:
            at = rto_at  # RFC 8985 (7.2): never later than the RTO
        self.tlp_at = at

    def _on_probe_timeout(self, now: float) -> None:
        # RFC 8985 (7.3): send one new segment if there is one, else resend the
        # last one, to draw a SACK that lets RACK find the tail losses.
        if self.snd_una == self.snd_max or self._in_recovery:
            return
        self._tlp_allowed = False
        unsent = len(self._send_buffer) - seq_sub(self.snd_nxt, self._buffer_start)
        if unsent > 0 and self._receiver_room() >= min(unsent, self.snd_mss):
            self._tlp_new_data = True
        else:
            last = self._scoreboard.last()
            if last is not None and not last.sacked:
                self._tlp_high = self.snd_max
                self._tlp_resend = last
        # RFC 8985 (7.3): re-arm the RTO from now.
        self.rto_at = now + self.rtt.rto

    def _end_tlp_episode(self, now: float) -> None:
        # RFC 8985 (7.4.2): the episode ended with no D-SACK for the probe (that
        # case ends it in _process_ack): the probe repaired a loss, so the
        # window is reduced once.
        self._tlp_high = None
        if not self._in_recovery:
            self.cc.on_loss(now, self._scoreboard.outstanding)
            self.cc.cwnd = self.cc.ssthresh

    def _send_window_probe(self, now: float, out: list[bytes]) -> None:
        # RFC 9293 3.8.6.1: probe a zero window.  Like Linux, send an ACK one
        # byte below SND.UNA: unacceptable, it makes the receiver answer with
        # its current window, and it commits no data beyond that window.
        seg = Segment(seq=seq_add(self.snd_una, -1), ack=self.rcv_nxt, flags=ACK)
        out.append(self._finish_with_ack(seg, now))
        if self._send_buffer and self.snd_una == self.snd_max:
            self.persist_at = now + min(self.rtt.rto * self._persist_backoff, self.config.max_rto)

    def _make_ack(self, now: float) -> bytes:
        # SND.MAX, not SND.NXT: while going back after a timeout, SND.NXT sits
        # below what the peer has already received and a bare ACK carrying it
        # would fail the peer's acceptability test (as BSD's tcp_output notes).
        if self.sack_permitted and (self._rcv_buffer.has_gaps or self._dsack is not None):
            seg = Segment(seq=self.snd_max, ack=self.rcv_nxt, flags=ACK)
            seg.sack_blocks = self._sack_blocks()
            return self._finish_with_ack(seg, now)
        return self._pack_with_ack(self.snd_max, ACK, b"", now)

    def _note_duplicate(self, left: int, right: int) -> None:
        """Data we already had arrived again: RFC 2883 (4) reports it to the
        sender (a D-SACK), which tells it the resend was needless."""
        if self.sack_permitted:
            self._dsack = (left, right)
            self._ack_now = True

    def _sack_blocks(self) -> tuple[tuple[int, int], ...]:
        # RFC 2018 (4): the first block holds the newest arrival, the next ones
        # repeat the most recently reported, then the rest, highest first; at
        # most 3 fit beside timestamps.
        ranges = self._rcv_buffer.ranges()
        chosen: list[tuple[int, int]] = []
        base = self._rcv_buffer.delivered_end
        dsack = self._dsack
        if dsack is not None:
            # RFC 2883 (4): the duplicate goes first, followed by the block that
            # holds it when it lies above the cumulative ACK (4.1.3); reported once.
            self._dsack = None
            self.stats.dsacks_sent += 1
            left = base + seq_sub(dsack[0], self.rcv_nxt)
            chosen += [r for r in ranges if r[0] <= left < r[1]]
        for start in self._recent_ooo:
            for r in ranges:
                if r[0] <= start < r[1] and r not in chosen:
                    chosen.append(r)
        chosen += [r for r in reversed(ranges) if r not in chosen]
        limit = 3 if self.timestamps_enabled else 4
        blocks = tuple(
            (seq_add(self.rcv_nxt, start - base), seq_add(self.rcv_nxt, end - base))
            for start, end in chosen
        )
        return (dsack, *blocks)[:limit] if dsack is not None else blocks[:limit]

    def _pack_with_ack(
        self, seq: int, flags: int, payload: bytes | bytearray | memoryview, now: float
    ) -> bytes:
        """What _finish_with_ack and encode() make of an ACK-bearing segment with
        no option but timestamps, packed from the header template as _send_burst
        packs its segments."""
        window = self._advertise_window()
        ack = self._last_ack_sent = self.rcv_nxt
        self._ack_now = False
        self._segs_since_ack = 0
        self.delayed_ack_at = None
        # Packed whole, header then payload, as bytes: cheaper than filling a
        # bytearray.  With checksums, the header is packed again around the sum.
        src, dst = self.local_port, self.remote_port
        if self.timestamps_enabled:
            ts_val = (trunc(now * TS_HZ) + self._ts_offset) & SEQ_MASK  # _ts_now(now)
            ts_ecr = self._ts_recent
            datagram = _TS_WORDS.pack(
                src, dst, seq, ack, TS_SEGMENT_OFFSET, flags, window, 0, 0, _NOP_NOP_TS_WORD,
                ts_val, ts_ecr,
            ) + payload
            if self._fill_checksum:
                datagram = _TS_WORDS.pack(
                    src, dst, seq, ack, TS_SEGMENT_OFFSET, flags, window,
                    internet_checksum(datagram), 0, _NOP_NOP_TS_WORD, ts_val, ts_ecr,
                ) + payload
        else:
            datagram = HEADER.pack(src, dst, seq, ack, PLAIN_OFFSET, flags, window, 0, 0) + payload
            if self._fill_checksum:
                datagram = HEADER.pack(
                    src, dst, seq, ack, PLAIN_OFFSET, flags, window, internet_checksum(datagram), 0
                ) + payload
        self.stats.segments_sent += 1
        return datagram

    def _finish_with_ack(self, seg: Segment, now: float) -> bytes:
        """Fill the window and timestamps of an ACK-bearing segment and encode it."""
        seg.window = self._advertise_window()
        self._last_ack_sent = seg.ack
        self._ack_now = False
        self._segs_since_ack = 0
        self.delayed_ack_at = None
        if self.timestamps_enabled:
            seg.ts_val = self._ts_now(now)
            seg.ts_ecr = self._ts_recent
        return self._finish(seg)

    def _finish(self, seg: Segment) -> bytes:
        seg.src_port = self.local_port
        seg.dst_port = self.remote_port
        self.stats.segments_sent += 1
        return encode(seg, checksum=self._fill_checksum)

    def _encode(self, seg: Segment) -> bytes:
        seg.src_port = self.local_port
        seg.dst_port = self.remote_port
        return encode(seg, checksum=self._fill_checksum)

    def _advertise_window(self) -> int:
        """RCV.WND for the segment being sent, as the 16-bit field (RFC 7323 2.3)."""
        # (Sequence arithmetic written out: this runs for every segment sent.)
        rcv_nxt = self.rcv_nxt
        buffer = self._rcv_buffer
        unread = len(buffer.ready)
        free = buffer.capacity - unread  # free_space()
        free_edge = (rcv_nxt + (free if free > 0 else 0)) & SEQ_MASK
        edge = self._rcv_adv_edge
        grown = ((free_edge - edge + HALF) & SEQ_MASK) - HALF  # seq_sub
        # RFC 9293 3.8.6.2.2: move the right edge only by a worthwhile amount, and
        # never back (shrinking the window is discouraged).
        if grown > 0 and (unread == 0 or grown >= self._sws_threshold()):
            edge = free_edge
        window = ((edge - rcv_nxt + HALF) & SEQ_MASK) - HALF
        if window < 0:
            window = 0
        # Round up, as Linux does: rounding down would pull back the right edge
        # we already promised.  The overshoot is under 2**rcv_wscale bytes.
        shift = self.rcv_wscale
        field = (window + (1 << shift) - 1) >> shift
        if field > 0xFFFF:
            field = 0xFFFF
        # What the peer will compute from the field is what we promised.
        self._rcv_adv_edge = (rcv_nxt + (field << shift)) & SEQ_MASK
        return field

    def _usable_window(self) -> int:
        # RFC 5681 (2) / RFC 9293 3.8.6.2.1: min(cwnd, peer window) less in flight;
        # RFC 3042 limited transmit adds a segment per early duplicate ACK.
        # With a scoreboard, what counts against cwnd is pipe (RFC 6675 4).
        congestion = self.cc.cwnd + self._limited_transmit() - self._scoreboard.pipe
        return min(congestion, self._receiver_room())

    def _receiver_room(self) -> int:
        """What the peer's window still admits beyond SND.NXT."""
        return seq_sub(seq_add(self.snd_una, self.snd_wnd), self.snd_nxt)

    def _limited_transmit(self) -> int:
        # With SACK, pipe already shrinks by the segment each duplicate reports.
        if self.sack_permitted:
            return 0
        if 0 < self._dupacks < DUPACK_THRESHOLD and not self._in_recovery:
            return self._dupacks * self.snd_mss
        return 0

    def _arm_persist(self, now: float) -> None:
        if self.snd_una == self.snd_max and self.persist_at is None:
            # RFC 9293 3.8.6.1 / RFC 1122 4.2.2.17: probe with exponential backoff.
            self.persist_at = now + min(self.rtt.rto * self._persist_backoff, self.config.max_rto)

    # ======================================================= retransmission
    def _on_retransmission_timeout(self, now: float) -> None:
        if self.snd_una == self.snd_max:
            return
        self.stats.timeouts += 1
        if self.state in (State.SYN_SENT, State.SYN_RECEIVED):
            self._syn_retries += 1
            if self._syn_retries > self.config.syn_retries:
                if self.state is State.SYN_SENT:
                    self._fail(TimeoutError("connection timed out: no answer to SYN"))
                elif self._passive_open:
                    self._return_to_listen()
                else:
                    self._fail(TimeoutError("handshake timed out: no ACK of SYN-ACK"))
                return
        self.rtt.on_timeout()
        self.rto_at = now + self.rtt.rto
        if self.state in (State.SYN_SENT, State.SYN_RECEIVED):
            self.snd_nxt = self.iss  # resend the SYN
            self._rtt_seq = None  # Karn
            return
        # RFC 5681 (3.1) and RFC 6582 (3.2 step 4).
        self.cc.on_rto(now, self._scoreboard.outstanding)
        self._recover = self.snd_max
        self._in_recovery = False
        self._dupacks = 0
        self._rtt_seq = None
        self.tlp_at = self.rack_at = None
        # RFC 6298 (5.4) with RFC 6675 (5.1): everything not SACKed is presumed
        # lost; cwnd (one segment now) paces the resending, oldest first.
        self._scoreboard.mark_all_lost()
        self._consecutive_timeouts += 1
        if self._log is not None:
            self._log.info("rto", rto=round(self.rtt.rto, 3), timeouts=self.stats.timeouts)
        if self.pmtud is not None:
            self._check_pmtud_probe(now)
            if self._consecutive_timeouts >= BLACK_HOLE_TIMEOUTS:
                # RFC 4821 (7.7) / RFC 8899 (4.4): repeated timeouts of ordinary
                # segments may mean the path no longer carries our size.
                self.pmtud.on_black_hole_suspected(now)
                self._size_segments(self.pmtud.plpmtu)

    def _on_keepalive_timer(self, now: float) -> None:
        # RFC 1122 (4.2.3.6): probe an idle connection; give up after the
        # configured number of unanswered probes.
        cfg = self.config
        if self._keepalive_probes_sent >= cfg.keepalive_probes:
            self._fail(TimeoutError("keepalive: the peer stopped answering"))
            return
        if self.snd_una != self.snd_max or self._send_buffer:
            # Not idle: the retransmission timer and user timeout watch the peer.
            self.keepalive_at = now + cfg.keepalive_idle
            return
        self._keepalive_probes_sent += 1
        self._probe_now = True
        self.keepalive_at = now + cfg.keepalive_interval

    def _sample_rtt(self, ts_ecr: int | None, ack: int, now: float) -> None:
        if self.timestamps_enabled and ts_ecr is not None:
            # RFC 7323 (4.2): RTTM from the echoed timestamp, valid even for
            # retransmitted segments -- but not from an echo older than our last
            # retransmission: after a lost ACK the peer re-acknowledges with the
            # original's timestamp, and the sample would include the whole RTO
            # wait (Karn's idea, applied to timestamps; Linux guards likewise).
            retransmitted = self._ts_retransmitted
            if retransmitted is not None and ((ts_ecr - retransmitted) & SEQ_MASK) >= HALF:
                return
            # (_ts_now(now) - ts_ecr, modulo 2**32, in seconds)
            rtt = ((trunc(now * TS_HZ) + self._ts_offset - ts_ecr) & SEQ_MASK) / TS_HZ
            if self._untimed_handshake:
                self._untimed_handshake = False
                if rtt >= self.config.initial_rto:
                    return
            if not rtt < self.config.max_rto * 2:
                return
        elif self._rtt_seq is not None and seq_gt(ack, self._rtt_seq):
            rtt = now - self._rtt_sent_at
            self._rtt_seq = None
        else:
            return
        self.rtt.on_sample(rtt)
        # A windowed minimum, as Linux's tcp_min_rtt_wlen: an old or bad sample
        # does not pin RACK's reordering window for ever.
        min_rtt = self.min_rtt
        if min_rtt is None or rtt <= min_rtt or now - self._min_rtt_at > MIN_RTT_WINDOW:
            self.min_rtt = rtt
            self._min_rtt_at = now
            self._scoreboard.min_rtt = rtt

    # ============================================================ helpers
    def _take_ack_of_syn(self, seg: Segment, now: float) -> None:
        self.snd_una = seg.ack
        if seq_lt(self.snd_nxt, self.snd_una):
            self.snd_nxt = self.snd_una
        self._sample_rtt(seg.ts_ecr, seg.ack, now)
        if self._syn_retries:
            self.rtt.reset_after_syn_timeout(self.config.initial_rto)
        self.rto_at = None
        self.give_up_at = None

    def _on_established(self, now: float) -> None:
        if self.config.keepalive:
            self.keepalive_at = now + self.config.keepalive_idle
        # RFC 6928 (2) initial window for the negotiated MSS; one segment if
        # the SYN or SYN-ACK had to be retransmitted (RFC 5681 3.1).
        iw = 1 if self._syn_retries else self.config.initial_window
        self.cc.reset_initial_window(self.snd_mss, iw)
        self._start_pmtud()
        self._events.append(Connected())
        if self._fin_queued:
            # close() or shutdown_write() came during the handshake.
            self._fin_queued = False
            self.shutdown_write()

    def _accept_syn_options(self, seg: Segment) -> None:
        """Negotiate from the peer's SYN or SYN-ACK (RFC 7323, RFC 2018, RFC 9293 3.7.1)."""
        cfg = self.config
        self.peer_mss = seg.mss if seg.mss else DEFAULT_MSS
        self.timestamps_enabled = cfg.timestamps and seg.ts_val is not None
        if self.timestamps_enabled:
            self._ts_recent = seg.ts_val or 0
        self.sack_permitted = cfg.sack and seg.sack_permitted
        # RFC 7323 (2.2): scaling applies only when both SYNs carry the option.
        self.window_scaling = self._offer_wscale is not None and seg.wscale is not None
        if self.window_scaling:
            self.snd_wscale = min(seg.wscale or 0, MAX_WSCALE)
            self.rcv_wscale = self._offer_wscale or 0
        else:
            self.snd_wscale = self.rcv_wscale = 0
        self._size_segments(cfg.max_segment_size)

    def _size_segments(self, max_segment: int) -> None:
        """Payload per segment for a largest segment (datagram) of ``max_segment``."""
        # RFC 9293 3.7.1 / RFC 6691: the MSS counts no options; we subtract ours.
        mss = min(self.peer_mss, max_segment - HEADER_LEN)
        if self.timestamps_enabled:
            mss -= TS_OPTION_LEN
        self.snd_mss = max(mss, 1)
        self.cc.set_mss(self.snd_mss)

    def _update_send_window(self, seg: Segment) -> None:
        # RFC 7323 (2.3): the window of a SYN is never scaled.
        shift = 0 if seg.flags & SYN else self.snd_wscale
        self.snd_wnd = seg.window << shift
        self.snd_wl1 = seg.seq
        self.snd_wl2 = seg.ack
        if self.snd_wnd > self.max_snd_wnd:
            self.max_snd_wnd = self.snd_wnd
        if self.snd_wnd > 0:
            self.persist_at = None
            self._persist_backoff = 1

    def _consume_acked_data(self, ack: int) -> int:
        """Drop acknowledged bytes from the send buffer; returns how many."""
        start = self._buffer_start
        # seq_sub(ack, start), at most what is buffered (the FIN is not).
        acked = ((ack - start + HALF) & SEQ_MASK) - HALF
        if acked <= 0:
            return 0
        buffer = self._send_buffer
        if acked > len(buffer):
            acked = len(buffer)
        if acked:
            buffer.consume(acked)
            self._buffer_start = (start + acked) & SEQ_MASK
            self._buffer_offset += acked
        return acked

    def _offset(self, seq: int) -> int:
        """Stream offset (scoreboard coordinates) of a sequence number."""
        return self._buffer_offset + (((seq - self._buffer_start + HALF) & SEQ_MASK) - HALF)

    def _buffer_seq(self) -> int:
        """Sequence number of the first byte in the send buffer."""
        return self._buffer_start

    def _fin_sent(self) -> bool:
        return self._fin_queued and seq_gt(self.snd_max, self._fin_seq)

    def _fin_in_flight(self) -> bool:
        return self._fin_queued and seq_gt(self.snd_nxt, self._fin_seq)

    def _ts_now(self, now: float) -> int:
        # math.trunc is int() for a float, at half the cost of calling the type.
        return (trunc(now * TS_HZ) + self._ts_offset) & SEQ_MASK

    def _reply_reset(self, seg: Segment) -> None:
        reply = reset_for(seg)
        if reply is not None:
            self._resets.append(self._encode(reply))
            self.stats.resets_sent += 1

    def _stop_pmtud(self) -> None:
        if self.pmtud is not None:
            self.pmtud.stop()
            self._pmtud_probe = None

    def _enter_time_wait(self, now: float) -> None:
        self._stop_pmtud()
        self._set_state(State.TIME_WAIT)
        self.rto_at = self.persist_at = self.give_up_at = self.fin_wait_2_at = None
        self.keepalive_at = None
        self.time_wait_at = now + 2 * self.config.msl
        self._terminate(None)

    def _enter_closed(self, error: Exception | None) -> None:
        self._stop_pmtud()
        self._set_state(State.CLOSED)
        self.rto_at = self.delayed_ack_at = self.persist_at = None
        self.time_wait_at = self.fin_wait_2_at = self.give_up_at = self.keepalive_at = None
        self._ack_now = self._probe_now = False
        self.tlp_at = self.rack_at = self.pacing_at = None
        self._send_buffer.clear()
        self._terminate(error)

    def _return_to_listen(self) -> None:
        self.rto_at = self.delayed_ack_at = self.give_up_at = None
        self._ack_now = False
        self._syn_retries = 0
        self.snd_una = self.snd_nxt = self.snd_max = self.iss
        self._buffer_start = seq_add(self.iss, 1)
        if self._reusable_listen:
            self._set_state(State.LISTEN)
        else:
            self._terminated = True  # the user never saw this connection
            self._enter_closed(None)

    def _fail(self, error: Exception) -> None:
        self._enter_closed(error)

    def _terminate(self, error: Exception | None) -> None:
        if self._terminated:
            return
        if self._undelivered() and not self._app_closed:
            # What arrived before the end stays readable, and the application
            # learns of the end after it, as recv() on Linux returns queued data
            # before a reset's error or the EOF.
            if self._termination_pending is None:
                self._termination_pending = (error,)
            return
        # (An abort or close while an end waited for the reader ends it now.)
        self._termination_pending = None
        self._terminated = True
        self._events.append(ConnectionTerminated(error))

    def _set_state(self, new: State) -> None:
        old = self.state
        if old is new:
            return
        if new not in TRANSITIONS[old]:
            raise AssertionError(f"illegal transition {old} -> {new}")
        self.state = new
        if self._log is not None:
            self._log.info("state_change", old=str(old), new=str(new))


def reset_for(seg: Segment) -> Segment | None:
    """RFC 9293 3.10.7.1: the RST answering a segment that has no connection."""
    if seg.flags & RST:
        return None
    if seg.flags & ACK:
        return Segment(seq=seg.ack, flags=RST)
    return Segment(seq=0, ack=seq_add(seg.seq, seg.seg_len), flags=RST | ACK)


def _wscale_for(buffer: int) -> int:
    """The smallest shift that brings ``buffer`` within the 16-bit window field."""
    return min(max(buffer.bit_length() - 16, 0), MAX_WSCALE)


_CAN_SEND = frozenset({State.SYN_SENT, State.SYN_RECEIVED, State.ESTABLISHED, State.CLOSE_WAIT})
_CAN_RECEIVE_TEXT = frozenset({State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2})
