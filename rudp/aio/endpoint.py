"""Endpoint: one UDP socket and every rudp connection it carries.

Datagrams are demultiplexed by the peer's UDP address (the TCP ports inside are
informational, NAT rewrites the UDP ones).  A datagram from an address with no
connection goes to the Listener of a serving endpoint, else is answered with the
RST of RFC 9293 3.10.7.1.

One timer serves all the connections: a heap of ``(deadline, counter, transport)``
holding at most one live entry per connection, never later than its deadline.
A deadline that moves later (the retransmission timer, restarted by every ACK)
costs nothing: the entry stays, and when it comes due the connection's real
deadline is read and the entry pushed again for it (lazy re-arm, as Linux checks
its TCP timers at expiry).  A deadline that moves earlier pushes a new entry and
leaves the old one stale (lazy invalidation).  The endpoint asks to be woken at
its earliest entry, re-armed only when that moves earlier; a stale wake-up just
re-arms for the next live entry.  The endpoints of a loop share in turn one
``loop.call_at`` handle (``LoopTimer``, the same heap one level up): a client has
an endpoint per connection, each arming, moving and cancelling its deadline a few
times in a connection's life.
Transmission is coalesced: a connection with something to send is marked dirty,
and one ``call_soon(flush)`` per loop pass sends for all of them.

When its owner no longer needs it (a client's connection has ended for the
application; a server was closed), the endpoint keeps the socket while some
connection still needs it — FIN-WAIT-2 waiting for the peer's FIN, the
acknowledgments of a LAST-ACK — and then lingers ``time_wait_linger`` seconds
(at most 2*MSL) for connections in TIME-WAIT, long enough to acknowledge again a
FIN the peer retransmits because our last ACK was lost (RFC 9293 3.6), before
closing the socket.  The rest of TIME-WAIT's 2*MSL guards a new incarnation of the
same address pair against old duplicates; a closed UDP socket gives that address
to no new connection of ours, so it has nothing left to guard.  The linger's end
is one more deadline of the endpoint's timer, a plain timer handle: a loop that
closes first simply drops it, with no pending task to complain about.

``stats`` counts what crossed the socket (see ``EndpointStats``).  With
``Config.pcap_path`` or the ``RUDP_PCAP`` environment variable set (the config
wins), every datagram sent and received is written to that pcap file, received
ones before the engine sees them; every endpoint of the process naming the same
file shares it (see ``rudp.observe.pcap``).  Disabled, that costs one None check.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import itertools
import os
import socket
import weakref
from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING, Any, cast

from ..core.config import Config
from ..core.connection import Connection
from ..core.errors import MalformedSegment
from ..core.listener import Listener, reset_reply
from ..core.segment import MAX_DATAGRAM, decode
from ..core.state import State
from ..observe import pcap
from ..observe.log import QUIET, connection_logger, get_logger
from ..observe.stats import EndpointStats
from . import udpio
from .transport import ProtocolFactory, RudpTransport

if TYPE_CHECKING:
    import structlog

    from .server import Server

# How long a finished endpoint keeps its socket for connections in TIME-WAIT.
TIME_WAIT_LINGER = 2.0
# SO_RCVBUF / SO_SNDBUF asked for a UDP socket (the kernel caps them at
# net.core.rmem_max / wmem_max): the burst of every connection's window must fit,
# or the kernel drops datagrams before the engine sees them.
SERVER_SOCKET_BUFFER = 4 * 1024 * 1024
CLIENT_SOCKET_BUFFER = 1024 * 1024
# Datagrams the engine builds before the endpoint sends them: one GSO batch.
SEND_BATCH = udpio.GSO_MAX_SEGMENTS
# Received bytes after which a batch is answered (data delivered, ACKs sent) before
# the rest is read: about one GRO buffer, so that ACKs keep the sender's clock.
FLUSH_BYTES = 64 * 1024
# Rebuild the timer heap when stale entries outnumber live ones by this much.
_HEAP_SLACK = 64
# Breaks ties between equal deadlines in any endpoint's heap.
_heap_counter = itertools.count()
# (A global: reading an Enum member through its class costs a lookup each time.)
_CLOSED = State.CLOSED
_TIME_WAIT = State.TIME_WAIT


class Endpoint(asyncio.DatagramProtocol):
    """A UDP socket's connections, their timers and their transmission.

    A client endpoint has a connected socket and one connection, keyed ``None``;
    a server endpoint keys its connections by the peer's address and hands the
    datagrams of unknown peers to its Listener while accepting.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        config: Config,
        *,
        backlog: int = 100,
        server: Server | None = None,
        protocol_factory: ProtocolFactory | None = None,
        time_wait_linger: float | None = None,
    ) -> None:
        self._loop = loop
        self._config = config
        self._backlog = backlog
        self._server = server
        self._protocol_factory = protocol_factory
        linger = TIME_WAIT_LINGER if time_wait_linger is None else time_wait_linger
        self._linger = min(linger, 2 * config.msl)
        self._udp: asyncio.DatagramTransport | None = None
        self._connected = False  # a connected socket: a client endpoint
        self._listener: Listener | None = None
        self._accepting = False
        self._accept_log: structlog.stdlib.BoundLogger | None = None
        self._links: dict[Hashable, RudpTransport] = {}
        self._heap: list[tuple[float, int, RudpTransport]] = []
        self._timers = LoopTimer.of(loop)
        self._timer_armed = False  # the loop's timer wakes us at _timer_at
        self._timer_at = 0.0
        self._dirty: dict[RudpTransport, None] = {}
        self._unflushed = 0  # bytes received since the last flush
        self._flush_handle: asyncio.Handle | None = None
        self._send_paused = False
        self._owner_done = False
        self._linger_until: float | None = None  # when the lingering socket closes
        self._socket_closed = False
        # For wait_closed(), created only when someone waits.
        self._closed: asyncio.Future[None] | None = None
        self.sockname: Any = None
        self._socket_of: asyncio.DatagramTransport | None = None  # _udp, kept after close
        self._peername: Any = None
        self._log = get_logger()
        # The endpoint's own counters, and those of connections already dropped.
        self._counts = EndpointStats()
        self._pcap: pcap.PcapWriter | None = None
        self._verify_checksum = config.checksum == "full"

    def __repr__(self) -> str:
        return f"<Endpoint sockname={self.sockname!r} connections={len(self._links)}>"

    # --------------------------------------------------------- owner's calls
    def open_connection(
        self, protocol: asyncio.BaseProtocol, waiter: asyncio.Future[None]
    ) -> RudpTransport:
        """Start the active open of this client endpoint's only connection."""
        assert self._connected and self._udp is not None and not self._links
        peername = self._peername
        log = connection_logger("client", peername)
        conn = Connection(
            self._config,
            local_port=_port(self.sockname),
            remote_port=_port(peername),
            logger=None if log is QUIET else log,
        )
        transport = RudpTransport(
            self._loop, self, conn, peername, log=log, protocol=protocol, waiter=waiter
        )
        self._links[None] = transport
        transport._start_active_open()
        # The SYN goes now, not at the end of this loop pass: nothing can join it.
        self._dirty[transport] = None
        self._flush_now()
        return transport

    def start_accepting(self) -> None:
        if self._listener is None:
            self._listener = Listener(
                self._config,
                backlog=self._backlog,
                local_port=_port(self.sockname),
                logger_factory=self._new_accept_logger,
            )
        self._accepting = True

    def stop_accepting(self) -> None:
        """Refuse new connections with RST, and reset those still in the handshake,
        as closing a listening socket does."""
        self._accepting = False
        for transport in list(self._links.values()):
            if transport._in_handshake:
                transport._engine_call(transport._conn.abort)
                transport._force_lost(None)

    def finish(self) -> None:
        """The owner needs no new connection: close the socket once the current
        ones are done with it (see the module docstring)."""
        self._owner_done = True
        self._maybe_finish()

    def close(self) -> None:
        """Close the socket now; open connections are reset and end with
        ConnectionAbortedError."""
        self._owner_done = True
        self._accepting = False
        for transport in list(self._links.values()):
            if not transport._app_done:
                transport._engine_call(transport._conn.abort)
                transport._force_lost(ConnectionAbortedError("endpoint closed"))
        self._flush()  # the resets
        self._close_socket()

    async def wait_closed(self) -> None:
        if self._socket_closed:
            return
        if self._closed is None:
            self._closed = self._loop.create_future()
        await asyncio.shield(self._closed)

    @property
    def is_closed(self) -> bool:
        return self._socket_closed

    @property
    def socket(self) -> Any:
        """The UDP socket, as asyncio shows a transport's (a TransportSocket)."""
        udp = self._socket_of
        return None if udp is None else udp.get_extra_info("socket")

    @property
    def stats(self) -> EndpointStats:
        """A snapshot of this socket's counters: its own, the listener's, the live
        connections' and those of the connections it has dropped."""
        stats = dataclasses.replace(self._counts)
        listener = self._listener
        if listener is not None:
            stats.dropped_malformed += listener.stats.dropped_malformed
            stats.resets_sent += listener.stats.resets_sent
        for transport in self._links.values():
            conn_stats = transport._conn.stats
            stats.dropped_malformed += conn_stats.dropped_malformed
            stats.resets_sent += conn_stats.resets_sent
        stats.connections_active = len(self._links)
        return stats

    def count_accepted(self) -> None:
        """A passive open completed its handshake."""
        self._counts.connections_accepted += 1

    # ---------------------------------------------------- DatagramProtocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._udp = udp = cast(asyncio.DatagramTransport, transport)
        self._socket_of = udp
        self.sockname = udp.get_extra_info("sockname")
        self._peername = udp.get_extra_info("peername")
        self._connected = self._peername is not None
        pcap_path = self._config.pcap_path or os.environ.get("RUDP_PCAP")
        if pcap_path:
            self._pcap = pcap.open_shared(pcap_path, self.sockname)

    def datagram_received(self, data: bytes, addr: Hashable) -> None:
        now = self._loop.time()
        counts = self._counts
        counts.datagrams_received += 1
        counts.bytes_received += len(data)
        if self._pcap is not None:
            self._pcap.received(data, addr, self.sockname, verify_checksum=self._verify_checksum)
        key = None if self._connected else addr
        transport = self._links.get(key)
        if transport is not None:
            conn = transport._conn
            try:
                conn.receive_datagram(data, now)
            except Exception as exc:
                self._engine_failed(transport, exc)
            if not conn.superseded:
                # Events and replies wait for the end of the socket's batch
                # (datagrams_done, which schedules the flush): one delivery and
                # one ACK answer many segments -- but not more than FLUSH_BYTES,
                # or the sender would wait for ACKs the batch holds back.
                self._dirty[transport] = None
                self._unflushed += len(data)
                if self._unflushed >= FLUSH_BYTES:
                    self._unflushed = 0
                    self._flush_now()
                return
            # A new SYN ended the old incarnation in TIME-WAIT: the listener
            # takes the same datagram.
            self._drop(transport)
        listener = self._listener
        if listener is not None and self._accepting:
            accepted = listener.receive_datagram(data, addr, now)
            if accepted is not None:
                self._accept(accepted, addr)
            for reply, peer in listener.datagrams_to_send():
                self._send(reply, peer)
            return
        if len(data) > MAX_DATAGRAM:
            counts.dropped_malformed += 1
            return
        reset = reset_reply(data, self._config)
        if reset is not None:
            counts.resets_sent += 1
            self._send(reset, key)
        elif not _is_segment(data, self._verify_checksum):
            counts.dropped_malformed += 1  # else an RST, which is never answered

    def datagrams_done(self) -> None:
        """The socket's batch is read (``udpio``): deliver it now, and transmit
        after the applications it wakes have had their turn in the next loop
        pass, so that a reply carries the ACK (one datagram, no timer)."""
        self._unflushed = 0
        if not self._dirty:
            return
        for transport in list(self._dirty):  # (a protocol's write may add one)
            if not transport._dropped:
                try:
                    transport._drain_events()
                except Exception as exc:
                    self._engine_failed(transport, exc)
        if self._flush_handle is not None:
            self._flush_handle.cancel()  # behind the callbacks just scheduled
        self._flush_handle = self._loop.call_soon(self._flush)

    def _flush_now(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        self._flush()

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable on a connected socket: kernel TCP fails a connection
        # in SYN-SENT with ECONNREFUSED and treats the error as soft afterwards.
        transport = self._links.get(None) if self._connected else None
        if (
            transport is not None
            and isinstance(exc, ConnectionRefusedError)
            and transport._conn.state is State.SYN_SENT
        ):
            transport._fail_handshake(exc)
            self.mark_dirty(transport)
        else:
            self._log.debug("udp_error", error=repr(exc))

    def pause_writing(self) -> None:
        self._send_paused = True

    def resume_writing(self) -> None:
        self._send_paused = False
        for transport in self._links.values():
            self.mark_dirty(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._udp = None
        if self._pcap is not None:
            pcap.release(self._pcap, self.sockname)
            self._pcap = None
        for transport in list(self._links.values()):
            if not transport._app_done:
                transport._force_lost(exc or ConnectionAbortedError("socket closed"))
        self._drop_all()
        self._linger_until = None
        self._socket_closed = True
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    # ------------------------------------------------------- transmission
    def mark_dirty(self, transport: RudpTransport) -> None:
        """``transport`` may have something to send: flush once this loop pass."""
        if transport._dropped:
            return
        self._dirty[transport] = None
        if self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        dirty, self._dirty = self._dirty, {}
        now = self._loop.time()
        for transport in dirty:
            if not transport._dropped:
                try:
                    self._service(transport, now)
                except Exception as exc:
                    self._engine_failed(transport, exc)

    def _service(self, transport: RudpTransport, now: float) -> None:
        """Deliver events, transmit, then drop the connection or re-arm its timer."""
        conn = transport._conn
        if conn.has_events or transport._held or transport._writing_paused:
            transport._drain_events()
        if not self._send_paused:
            addr = None if self._connected else transport._peername
            while True:
                # A GSO batch at a time: on the wire while the engine builds the next.
                datagrams = conn.datagrams_to_send(now, SEND_BATCH)
                count = len(datagrams)
                if count == 1:
                    self._send(datagrams[0], addr)
                elif count:
                    self._send_all(datagrams, addr)
                if count < SEND_BATCH or self._send_paused:
                    break
        if transport._finish_waiters is not None:
            transport._check_finished()
        if conn.state is _CLOSED and conn.is_closed:  # (the cheap test first)
            transport._drain_events()
            self._drop(transport)
            return
        # The timer: a deadline gone (None) or moved later costs nothing, as the
        # live entry wakes us in time and re-arms then (see the module docstring).
        deadline = transport._timer_at = conn.next_timer()
        if deadline is not None and (transport._entry_at is None or deadline < transport._entry_at):
            self._schedule_at(transport, deadline)
        if self._owner_done and transport._app_done:
            self._maybe_finish()

    def _send_all(self, datagrams: list[bytes], addr: Hashable) -> None:
        """One connection's datagrams, in order, batched where the socket can."""
        udp = self._udp
        if udp is None:
            return
        if len(datagrams) == 1 or not isinstance(udp, udpio.UdpTransport):
            for datagram in datagrams:
                self._send(datagram, addr)
            return
        udp.send_batch(datagrams, addr)
        counts = self._counts
        counts.datagrams_sent += len(datagrams)
        counts.bytes_sent += sum(map(len, datagrams))
        if self._pcap is not None:
            peer = self._peername if addr is None else addr
            for datagram in datagrams:
                self._pcap.sent(datagram, self.sockname, peer)

    def _send(self, datagram: bytes, addr: Hashable) -> None:
        udp = self._udp
        if udp is not None:
            udp.sendto(datagram, addr)  # type: ignore[arg-type]
            counts = self._counts
            counts.datagrams_sent += 1
            counts.bytes_sent += len(datagram)
            if self._pcap is not None:
                self._pcap.sent(datagram, self.sockname, self._peername if addr is None else addr)

    # --------------------------------------------------------------- timer
    def _schedule_at(self, transport: RudpTransport, deadline: float) -> None:
        """A deadline earlier than the connection's live entry, or its first."""
        self._push(transport, deadline)
        if not self._timer_armed or deadline < self._timer_at:
            self._timers.arm(self, deadline)

    def _push(self, transport: RudpTransport, deadline: float) -> None:
        """Make ``(deadline, ., transport)`` the connection's live entry."""
        transport._entry_at = deadline
        heap = self._heap
        heapq.heappush(heap, (deadline, next(_heap_counter), transport))
        if len(heap) > 2 * len(self._links) + _HEAP_SLACK:
            self._heap = [entry for entry in heap if entry[2]._entry_at == entry[0]]
            heapq.heapify(self._heap)

    def _on_timer(self, now: float) -> None:
        """The loop's timer, at ``now`` >= the deadline it was armed for."""
        if self._linger_until is not None and now >= self._linger_until:
            self._close_socket()
            return
        heap = self._heap
        while heap and heap[0][0] <= now:
            entry_at, _, transport = heapq.heappop(heap)
            if transport._entry_at != entry_at or transport._dropped:
                continue  # stale: that connection's deadline moved earlier since
            transport._entry_at = None
            deadline = transport._timer_at
            if deadline is None:
                continue  # nothing is due any more
            if deadline > now:
                self._push(transport, deadline)  # it moved later: the lazy re-arm
                heap = self._heap
                continue
            transport._timer_at = None
            try:
                transport._conn.handle_timer(now)
                transport._drain_events()
            except Exception as exc:
                self._engine_failed(transport, exc)
            self.mark_dirty(transport)
        next_deadline = self._next_deadline()
        if next_deadline is not None:
            self._timers.arm(self, next_deadline)

    def _next_deadline(self) -> float | None:
        """The earliest live deadline in the heap, or the end of the linger."""
        heap = self._heap
        while heap and heap[0][2]._entry_at != heap[0][0]:
            heapq.heappop(heap)
        linger_until = self._linger_until
        if heap and (linger_until is None or heap[0][0] < linger_until):
            return heap[0][0]
        return linger_until

    # ---------------------------------------------------- connection life
    def _new_accept_logger(self, peer: Hashable) -> Any:
        self._accept_log = connection_logger("server", peer)
        return None if self._accept_log is QUIET else self._accept_log

    def _accept(self, conn: Connection, addr: Hashable) -> None:
        log = self._accept_log or connection_logger("server", addr)
        self._accept_log = None
        transport = RudpTransport(
            self._loop,
            self,
            conn,
            addr,
            log=log,
            protocol_factory=self._protocol_factory,
            server=self._server,
        )
        self._links[addr] = transport
        self.mark_dirty(transport)

    def app_done(self, transport: RudpTransport) -> None:
        """The application is finished with ``transport``'s connection."""
        if self._connected:
            self._owner_done = True
        self.mark_dirty(transport)
        self._maybe_finish()

    def _engine_failed(self, transport: RudpTransport, exc: Exception) -> None:
        """A bug in the engine must not take the endpoint or other connections down."""
        self._loop.call_exception_handler(
            {"message": "rudp engine failed", "exception": exc, "transport": transport}
        )
        transport._force_lost(exc)
        self._drop(transport)

    def _drop(self, transport: RudpTransport) -> None:
        if not transport._app_done and not transport._ended_cleanly:
            transport._force_lost(ConnectionAbortedError("connection closed"))
        transport._dropped = True
        transport._timer_at = transport._entry_at = None
        transport._check_finished()
        key = None if self._connected else transport._peername
        if self._links.get(key) is transport:
            del self._links[key]
            self._retire(transport._conn)
        if self._connected:
            self._owner_done = True
        self._maybe_finish()

    def _retire(self, conn: Connection) -> None:
        """Keep the counters of a connection the endpoint forgets."""
        self._counts.dropped_malformed += conn.stats.dropped_malformed
        self._counts.resets_sent += conn.stats.resets_sent

    def _drop_all(self) -> None:
        for transport in self._links.values():
            self._retire(transport._conn)
            transport._dropped = True
            transport._timer_at = transport._entry_at = None
            transport._check_finished()
        self._links.clear()
        self._heap.clear()
        self._dirty.clear()
        self._timers.disarm(self)
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        self._flush_handle = None

    def _maybe_finish(self) -> None:
        if not self._owner_done or self._udp is None:
            return
        if not self._links:
            self._close_socket()
            return
        if self._linger_until is not None:
            return  # lingering already
        if _all_quiet(self._links.values()):
            # The endpoint's timer closes the socket: armed now for whichever comes
            # first, the linger's end or a live deadline (a stale one would only
            # wake the loop to re-arm).
            linger_until = self._linger_until = self._loop.time() + self._linger
            for transport in self._links.values():
                # (The engine's own deadline: _timer_at may predate the ACK of our FIN.)
                at = transport._conn.next_timer()
                if at is None or at >= linger_until:
                    # Nothing due before the socket closes, yet the entry of the
                    # FIN's retransmission timer would wake us up: drop it.
                    transport._entry_at = None
            deadline = self._next_deadline()
            if deadline is not None and (not self._timer_armed or deadline != self._timer_at):
                self._timers.arm(self, deadline)

    def _close_socket(self) -> None:
        udp = self._udp
        if udp is None:
            return
        self._drop_all()
        self._linger_until = None
        udp.close()


class LoopTimer:
    """The one ``loop.call_at`` handle of every endpoint on a loop.

    A heap of ``(deadline, counter, endpoint)``: an endpoint's entry is live while
    it is armed for that deadline (``_timer_armed``, ``_timer_at``); arming again
    or disarming leaves the old entry stale, dropped when it reaches the top or
    when stale entries outnumber live ones.  The handle is re-armed only when the
    earliest deadline moves earlier.  Each endpoint holds its loop's LoopTimer;
    the registry does not, so it goes with the last of them (or with its loop).
    """

    __slots__ = ("__weakref__", "_armed", "_at", "_handle", "_heap", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[tuple[float, int, Endpoint]] = []
        self._handle: asyncio.TimerHandle | None = None
        self._at = 0.0
        self._armed = 0  # endpoints armed, each with one live entry

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> LoopTimer:
        global _last_timer
        timer = _last_timer()
        if timer is not None and timer._loop is loop:
            return timer  # the common case: one loop, and no registry search
        timer = _loop_timers.get(id(loop))
        if timer is None or timer._loop is not loop:  # (a dead loop's id, reused)
            timer = _loop_timers[id(loop)] = cls(loop)
        _last_timer = weakref.ref(timer)
        return timer

    def arm(self, endpoint: Endpoint, deadline: float) -> None:
        """Wake ``endpoint`` (``_on_timer``) at ``deadline``, instead of when it
        was armed for before."""
        if not endpoint._timer_armed:
            endpoint._timer_armed = True
            self._armed += 1
        endpoint._timer_at = deadline
        heap = self._heap
        heapq.heappush(heap, (deadline, next(_heap_counter), endpoint))
        if len(heap) > 2 * self._armed + _HEAP_SLACK:
            self._heap = heap = [entry for entry in heap if _live(entry)]
            heapq.heapify(heap)
        if self._handle is None or deadline < self._at:
            self._schedule(deadline)

    def disarm(self, endpoint: Endpoint) -> None:
        if endpoint._timer_armed:
            endpoint._timer_armed = False
            self._armed -= 1

    def _schedule(self, deadline: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._loop.call_at(deadline, self._fire)
        self._at = deadline

    def _fire(self) -> None:
        # call_at may run up to one clock resolution early: never hand an engine a
        # time before the deadline it asked for.
        now = max(self._loop.time(), self._at)
        self._handle = None
        heap = self._heap
        due: list[Endpoint] = []
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if _live(entry):
                endpoint = entry[2]
                endpoint._timer_armed = False
                self._armed -= 1
                due.append(endpoint)
        for endpoint in due:
            # (What they arm now waits for the next loop pass, as a new call_at.)
            try:
                endpoint._on_timer(now)
            except Exception as exc:
                self._loop.call_exception_handler(
                    {"message": "rudp endpoint timer failed", "exception": exc}
                )
        while heap and not _live(heap[0]):
            heapq.heappop(heap)
        if heap and (self._handle is None or heap[0][0] < self._at):
            self._schedule(heap[0][0])


_loop_timers: weakref.WeakValueDictionary[int, LoopTimer] = weakref.WeakValueDictionary()


def _no_timer() -> LoopTimer | None:
    return None


# The LoopTimer found last, held weakly as the registry holds them.
_last_timer: Callable[[], LoopTimer | None] = _no_timer


def _live(entry: tuple[float, int, Endpoint]) -> bool:
    endpoint = entry[2]
    return endpoint._timer_armed and endpoint._timer_at == entry[0]


def _all_quiet(transports: Iterable[RudpTransport]) -> bool:
    """Every connection is over for its application and waits in TIME-WAIT."""
    # (A loop, not all() over a generator: this runs as every client closes.)
    for transport in transports:
        if transport._conn.state is not _TIME_WAIT or not transport._app_done:
            return False
    return True


def _is_segment(data: bytes, verify_checksum: bool) -> bool:
    try:
        decode(data, verify_checksum=verify_checksum)
    except MalformedSegment:
        return False
    return True


def _port(address: Any) -> int:
    if isinstance(address, tuple) and len(address) >= 2 and isinstance(address[1], int):
        return address[1]
    return 0


# SO_RCVBUF and SO_SNDBUF of a new UDP socket, per family: the kernel's defaults
# (net.core.rmem_default, wmem_default), read from the first socket only.
_default_buffers: dict[int, tuple[int, int]] = {}
_BUFFER_OPTIONS = (socket.SO_RCVBUF, socket.SO_SNDBUF)
# Linux opens a socket non-blocking in the same system call.
_NONBLOCK = getattr(socket, "SOCK_NONBLOCK", 0)


def udp_socket(family: int, buffer_size: int) -> socket.socket:
    """A non-blocking UDP socket with (best effort) ``buffer_size``-byte kernel
    buffers, or the kernel's defaults where they are larger."""
    sock = socket.socket(family, socket.SOCK_DGRAM | _NONBLOCK)
    if not _NONBLOCK:
        sock.setblocking(False)
    defaults = _default_buffers.get(family)
    if defaults is None:
        defaults = _default_buffers[family] = (
            _getsockopt_or_zero(sock, socket.SO_RCVBUF),
            _getsockopt_or_zero(sock, socket.SO_SNDBUF),
        )
    for option, default in zip(_BUFFER_OPTIONS, defaults, strict=True):
        if default < buffer_size:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, option, buffer_size)
    return sock


def _getsockopt_or_zero(sock: socket.socket, option: int) -> int:
    try:
        return sock.getsockopt(socket.SOL_SOCKET, option)
    except OSError:
        return 0
