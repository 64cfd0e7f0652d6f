"""RudpTransport: one rudp connection behind the asyncio.Transport API.

It turns the engine's events into Protocol calls in the order CPython documents
(``connection_made``, ``data_received``*, ``eof_received``?, ``connection_lost``
once) and the asyncio calls into engine calls; its Endpoint owns the socket, the
clock and the transmission.  What a user sees mirrors ``selector_events``'s TCP
transport: the same argument checks, the same silent drop of writes after
``close()``, the same flow-control limits.  A protocol callback that raises is
reported to the loop's exception handler and aborts that connection only.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING, Any, cast

from ..core.connection import Connection
from ..core.errors import LocalProtocolError
from ..core.events import (
    Connected,
    ConnectionTerminated,
    DataReceived,
    EofReceived,
    Event,
    WritableAgain,
)
from ..core.state import State

if TYPE_CHECKING:
    import structlog

    from .endpoint import Endpoint
    from .server import Server

ProtocolFactory = Callable[[], asyncio.BaseProtocol]

# As asyncio.constants: warn once this many writes were dropped after close.
LOG_THRESHOLD_FOR_CONNLOST_WRITES = 5
DEFAULT_HIGH_WATER = 64 * 1024

_logger = logging.getLogger("rudp")
_NO_EXTRA: dict[str, Any] = {}


class _Phase(enum.Enum):
    HANDSHAKE = "handshake"  # the protocol has not been told of the connection yet
    MAKING = "making"  # connection_made is under way; events wait in the engine
    OPEN = "open"  # events go to the protocol
    LOST = "lost"  # connection_lost is scheduled or done; events are discarded


# The phases as plain globals: an Enum member read through its class costs a
# lookup through EnumType on every access, and these are read on every event.
_HANDSHAKE = _Phase.HANDSHAKE
_MAKING = _Phase.MAKING
_OPEN = _Phase.OPEN
_LOST = _Phase.LOST


class RudpTransport(asyncio.Transport):
    """The asyncio face of one engine ``Connection``."""

    # Slots (asyncio's transport classes have them too): one of these per
    # connection, thousands per server.
    __slots__ = (
        "_attached", "_buffered", "_closing", "_conn", "_dropped", "_endpoint", "_entry_at",
        "_eof_written", "_finish_waiters", "_held", "_high_water", "_log", "_loop", "_lost_writes",
        "_low_water", "_pause_above", "_peername", "_phase", "_protocol", "_protocol_factory",
        "_reading_paused", "_server", "_socket_buffer", "_timer_at", "_waiter",
        "_writing_paused",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        endpoint: Endpoint,
        conn: Connection,
        peername: Hashable,
        *,
        log: structlog.stdlib.BoundLogger,
        protocol: asyncio.BaseProtocol | None = None,
        protocol_factory: ProtocolFactory | None = None,
        server: Server | None = None,
        waiter: asyncio.Future[None] | None = None,
    ) -> None:
        # BaseTransport.__init__, inlined (get_extra_info answers without it).
        self._extra = _NO_EXTRA
        self._loop = loop
        self._endpoint = endpoint
        self._conn = conn
        self._peername = peername
        self._log = log
        self._protocol: asyncio.BaseProtocol | None = None
        self._buffered = False
        if protocol is not None:
            self.set_protocol(protocol)
        self._protocol_factory = protocol_factory
        self._server = server
        self._attached = False
        self._waiter = waiter
        self._phase = _HANDSHAKE
        self._closing = False  # close(), abort() or the end of the connection
        self._eof_written = False
        self._lost_writes = 0
        self._reading_paused = False
        # Events the engine queued before pause_reading(), kept in order until resumed.
        # (None while empty: most connections never hold one, thousands may be idle.)
        self._held: list[Event] | None = None
        # Futures of wait_finished(), created only when someone waits.
        self._finish_waiters: list[asyncio.Future[None]] | None = None
        self._writing_paused = False
        self._high_water = DEFAULT_HIGH_WATER
        self._low_water = DEFAULT_HIGH_WATER // 4
        # The connection's own send buffer, as a kernel socket's SO_SNDBUF: what
        # it holds (unsent or unacknowledged) before this transport's buffer,
        # which the write-buffer limits govern, fills.
        self._socket_buffer = conn.config.send_buffer
        # What the engine may buffer before pause_writing(): the high-water mark
        # of get_write_buffer_size(), counted as the engine counts.
        self._pause_above = self._high_water + self._socket_buffer
        conn.set_send_buffer_limits(self._pause_above, self._low_water + self._socket_buffer)
        # Kept by the Endpoint: the connection's deadline as last read, and that
        # of its live timer-heap entry (never later; see endpoint's docstring).
        self._timer_at: float | None = None
        self._entry_at: float | None = None
        self._dropped = False

    def __repr__(self) -> str:
        return (
            f"<RudpTransport peer={self._peername!r} state={self._conn.state} "
            f"phase={self._phase.value} bufsize={self._conn.send_buffered}>"
        )

    # ------------------------------------------------------------ asyncio API
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return self._peername
        if name == "sockname":
            return self._endpoint.sockname
        if name == "socket":
            return self._endpoint.socket
        if name == "rudp_stats":
            return self._conn.stats
        if name == "rudp_endpoint_stats":
            return self._endpoint.stats
        return default

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol
        self._buffered = isinstance(protocol, asyncio.BufferedProtocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        # None once connection_lost has run, as with asyncio's and uvloop's own
        # transports: a lingering connection does not keep its protocol alive.
        return self._protocol  # type: ignore[return-value]

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """FIN after the queued data; ``connection_lost(None)`` once the peer has it.

        Data received and never read makes it a reset instead, as the engine does
        with what it still buffers (RFC 2525 2.17, as Linux)."""
        if self._closing:
            return
        self._closing = True
        self._log.info("close")
        unread = end = None
        if self._held:
            unread = any(isinstance(event, DataReceived) for event in self._held)
            end = self._take_held_end()
        if end is not None:
            self._engine_call(self._conn.close)
            self._lose(end.error)
        elif unread:
            self._log.info("reset", by="local")
            self._engine_call(self._conn.abort)
        else:
            self._engine_call(self._conn.close)

    async def wait_finished(self) -> None:
        """Wait until the connection needs nothing more from this process.

        After ``close()`` a kernel socket finishes the FIN exchange by itself,
        even once its process has exited; a rudp connection lives in the process.
        Returns once both FINs are exchanged and acknowledged (TIME-WAIT, whose
        late duplicates the endpoint still answers while the loop runs) or the
        connection is over; a program about to exit awaits it after
        ``wait_closed()``, with a timeout of its choosing (the peer may keep its
        side open)."""
        if self._finished:
            return
        waiter: asyncio.Future[None] = self._loop.create_future()
        if self._finish_waiters is None:
            self._finish_waiters = []
        self._finish_waiters.append(waiter)
        await waiter

    @property
    def _finished(self) -> bool:
        return self._dropped or self._conn.state in (State.TIME_WAIT, State.CLOSED)

    def _check_finished(self) -> None:
        """Called by the endpoint as the connection moves on."""
        waiters = self._finish_waiters
        if waiters is not None and self._finished:
            self._finish_waiters = None
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def abort(self) -> None:
        """RST now, drop both buffers; ``connection_lost(None)`` soon."""
        if self._phase is _LOST:
            return
        self._closing = True
        self._held = None
        self._log.info("reset", by="local")
        self._engine_call(self._conn.abort)
        self._lose(None)

    # The hooks asyncio's SSL layer uses on its own socket transports: with them the
    # default loop's loop.start_tls (so a plain StreamWriter.start_tls) accepts us
    # too; uvloop's accepts only its own transports, hence rudp.start_tls.
    _start_tls_compatible = True

    def _force_close(self, exc: BaseException | None) -> None:
        """Like abort(), but connection_lost gets ``exc``."""
        if self._phase is _LOST:
            return
        self._closing = True
        self._held = None
        self._engine_call(self._conn.abort)
        self._lose(exc if isinstance(exc, Exception) else None)

    def is_reading(self) -> bool:
        return not self._closing and not self._reading_paused

    def pause_reading(self) -> None:
        """No more data_received; the engine's buffer fills and the window closes."""
        if not self.is_reading():
            return
        self._reading_paused = True
        self._engine_call(self._conn.pause_reading)

    def resume_reading(self) -> None:
        if self._closing or not self._reading_paused:
            return
        self._reading_paused = False
        self._engine_call(self._conn.resume_reading)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"data argument must be a bytes-like object, not {type(data).__name__!r}"
            )
        if self._eof_written:
            raise RuntimeError("Cannot call write() after write_eof()")
        if not data:
            return
        if self._closing:
            # selector_events drops writes once the connection is going away.
            if self._lost_writes >= LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                _logger.warning("socket.send() raised exception.")
            self._lost_writes += 1
            return
        conn = self._conn
        try:
            conn.send(bytes(data))
        except LocalProtocolError:
            # The peer reset us and the event is not processed yet: as a dead socket.
            self._lost_writes += 1
            return
        self._endpoint.mark_dirty(self)
        if conn.send_buffered > self._pause_above:
            self._maybe_pause_protocol()

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        self.write(b"".join(list_of_data))

    def write_eof(self) -> None:
        """FIN after the queued data; reading goes on (TCP half-close)."""
        if self._closing or self._eof_written:
            return
        self._eof_written = True
        self._engine_call(self._conn.shutdown_write)

    def can_write_eof(self) -> bool:
        return True

    def get_write_buffer_size(self) -> int:
        """Bytes written beyond what the connection's send buffer holds
        (``Config.send_buffer``, the counterpart of a kernel socket's SO_SNDBUF):
        the part a kernel TCP transport would still hold in user space."""
        return max(self._conn.send_buffered - self._socket_buffer, 0)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (self._low_water, self._high_water)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        # Same defaults and checks as asyncio.transports._FlowControlMixin.
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high_water, self._low_water = high, low
        self._pause_above = high + self._socket_buffer
        self._conn.set_send_buffer_limits(self._pause_above, low + self._socket_buffer)
        self._maybe_pause_protocol()

    # --------------------------------------------------- driven by the Endpoint
    def _start_active_open(self) -> None:
        """Send the SYN (the endpoint transmits it next)."""
        self._log.info("connect")
        self._conn.connect(self._loop.time())

    def _drain_events(self) -> None:
        """Dispatch what the engine has to say, as far as the phase allows."""
        if self._held and not self._reading_paused and self._phase is _OPEN:
            self._release_held()
        next_event = self._conn.next_event
        while self._phase is not _MAKING:  # MAKING: events wait for connection_made
            event = next_event()
            if event is None:
                break
            if (
                type(event) is DataReceived
                and self._phase is _OPEN
                and not (self._closing or self._reading_paused or self._held or self._buffered)
            ):
                # What _dispatch would decide, without its three calls: the
                # common event in the common state.
                try:
                    self._protocol.data_received(event.data)  # type: ignore[union-attr]
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:
                    self._fatal_error(exc, "Fatal error: protocol.data_received() call failed.")
            else:
                self._dispatch(event)
        if self._writing_paused and self.get_write_buffer_size() <= self._low_water:
            self._maybe_resume_protocol()

    def _fail_handshake(self, exc: Exception) -> None:
        """An ICMP error ended a pending active open (as the kernel does in SYN-SENT)."""
        if self._phase is not _HANDSHAKE:
            return
        self._phase = _LOST
        self._closing = True
        self._conn.abort()
        self._handshake_failed(exc)

    def _force_lost(self, exc: Exception | None) -> None:
        """The connection ends under the application (endpoint closing, listener
        closed during the handshake): tell whoever waits for it."""
        if self._phase is _HANDSHAKE or self._phase is _MAKING:
            self._phase = _LOST
            self._handshake_failed(exc or ConnectionAbortedError("endpoint closed"))
        elif self._phase is _OPEN:
            self._closing = True
            self._held = None
            self._lose(exc)

    @property
    def _in_handshake(self) -> bool:
        return self._phase is _HANDSHAKE

    @property
    def _ended_cleanly(self) -> bool:
        """Both FINs exchanged, the application not yet told: it learns when it
        closes the transport (the connection itself needs nothing more)."""
        return any(
            isinstance(event, ConnectionTerminated) and event.error is None
            for event in self._held or ()
        )

    @property
    def _app_done(self) -> bool:
        """The application has been told (or never needed telling) that it is over."""
        return self._phase is _LOST

    # ------------------------------------------------------------- internals
    def _engine_call(self, call: Callable[[], None]) -> None:
        # (No contextlib.suppress: an object and two calls, on every close.)
        try:  # noqa: SIM105
            call()
        except LocalProtocolError:
            pass  # raised only once the engine has ended: nothing left to do
        self._endpoint.mark_dirty(self)

    def _dispatch(self, event: Event) -> None:
        if self._phase is _OPEN:
            self._on_event(event)
        elif self._phase is _HANDSHAKE:
            self._on_handshake_event(event)

    def _on_handshake_event(self, event: Event) -> None:
        if isinstance(event, Connected):
            self._phase = _MAKING
            if self._server is not None:
                # Counted from now, so that Server.wait_closed waits for it.
                self._server._attach()
                self._attached = True
                self._endpoint.count_accepted()
            # Now, not in a later loop pass: the events behind Connected go to the
            # protocol in this same drain, and a client's waiter wakes in time for
            # its first write to carry the ACK of the SYN-ACK.
            self._make_connection()
        elif isinstance(event, ConnectionTerminated):
            self._phase = _LOST
            self._closing = True
            self._handshake_failed(event.error or ConnectionAbortedError("connection aborted"))

    def _handshake_failed(self, exc: Exception) -> None:
        self._log.info("handshake_failed", error=repr(exc))
        self._detach()
        waiter = self._waiter
        self._waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self._endpoint.app_done(self)

    def _make_connection(self) -> None:
        if self._phase is not _MAKING:
            return
        waiter = self._waiter
        if waiter is not None and waiter.cancelled():
            self._phase = _LOST
            self._closing = True
            self._engine_call(self._conn.abort)
            self._endpoint.app_done(self)
            return
        if self._protocol is None:
            assert self._protocol_factory is not None
            try:
                self.set_protocol(self._protocol_factory())
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._loop.call_exception_handler(
                    {
                        "message": "Error on transport creation for incoming connection",
                        "exception": exc,
                        "transport": self,
                    }
                )
                self._phase = _LOST
                self._closing = True
                self._engine_call(self._conn.abort)
                self._detach()
                self._endpoint.app_done(self)
                return
            self._log.info("accept")
        self._phase = _OPEN
        try:
            self.get_protocol().connection_made(self)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.connection_made() call failed.")
        self._waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        # (The drain that delivered Connected goes on with what came after it.)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, WritableAgain):
            self._maybe_resume_protocol()
        elif isinstance(event, ConnectionTerminated):
            if event.error is None and not self._closing:
                # As a kernel socket: a clean end (both FINs exchanged) leaves the
                # transport open until the application closes it, and waits
                # behind any data not yet delivered.
                self._hold(event)
            else:
                self._held = None
                self._lose(event.error)
        elif self._closing:
            pass  # after close() the application reads no more
        elif self._reading_paused or self._held:
            self._hold(event)
        else:
            self._deliver(event)

    def _hold(self, event: Event) -> None:
        if self._held is None:
            self._held = [event]
        else:
            self._held.append(event)

    def _release_held(self) -> None:
        while self._held and not self._reading_paused and self._phase is _OPEN:
            event = self._held.pop(0)
            if isinstance(event, ConnectionTerminated):
                if event.error is None and not self._closing:
                    self._held.insert(0, event)  # until close(), as above
                    break
                self._lose(event.error)
            elif not self._closing:
                self._deliver(event)

    def _take_held_end(self) -> ConnectionTerminated | None:
        end = None
        for event in self._held or ():
            if isinstance(event, ConnectionTerminated):
                end = event
        self._held = None
        return end

    def _deliver(self, event: Event) -> None:
        protocol = self._protocol
        if isinstance(event, DataReceived):
            try:
                if self._buffered:
                    _feed_buffered(cast(asyncio.BufferedProtocol, protocol), event.data)
                else:
                    cast(asyncio.Protocol, protocol).data_received(event.data)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal error: protocol.data_received() call failed.")
        elif isinstance(event, EofReceived):
            try:
                keep_open = cast(asyncio.Protocol, protocol).eof_received()
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal error: protocol.eof_received() call failed.")
                return
            if not keep_open:
                self.close()

    def _fatal_error(self, exc: BaseException, message: str) -> None:
        """As selector_events: report, then reset the connection with ``exc``."""
        if not isinstance(exc, OSError):
            self._loop.call_exception_handler(
                {
                    "message": message,
                    "exception": exc,
                    "transport": self,
                    "protocol": self._protocol,
                }
            )
        if self._phase is _LOST:
            return
        self._closing = True
        self._held = None
        self._engine_call(self._conn.abort)
        self._lose(exc if isinstance(exc, Exception) else None)

    def _lose(self, exc: Exception | None) -> None:
        if self._phase is _LOST:
            return
        self._phase = _LOST
        self._closing = True
        if isinstance(exc, ConnectionResetError):
            self._log.info("reset", by="peer")
        self._loop.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc: Exception | None) -> None:
        self._log.info("connection_lost", error=repr(exc) if exc else None)
        try:
            self._notify_protocol("connection_lost", exc)
        finally:
            self._protocol = None
            self._detach()
            self._endpoint.app_done(self)

    def _detach(self) -> None:
        if self._attached and self._server is not None:
            self._attached = False
            self._server._detach()

    def _maybe_pause_protocol(self) -> None:
        if self._writing_paused or self.get_write_buffer_size() <= self._high_water:
            return
        self._writing_paused = True
        self._notify_protocol("pause_writing")

    def _maybe_resume_protocol(self) -> None:
        if not self._writing_paused or self.get_write_buffer_size() > self._low_water:
            return
        self._writing_paused = False
        if self._phase is _OPEN:
            self._notify_protocol("resume_writing")

    def _notify_protocol(self, method: str, *args: Any) -> None:
        """Call a protocol method whose failure asyncio reports but survives, as
        _FlowControlMixin does for pause_writing / resume_writing."""
        protocol = self._protocol
        if protocol is None:
            return  # connection_lost has run: nothing more to tell
        try:
            getattr(protocol, method)(*args)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler(
                {
                    "message": f"protocol.{method}() failed",
                    "exception": exc,
                    "transport": self,
                    "protocol": self._protocol,
                }
            )


def _feed_buffered(protocol: asyncio.BufferedProtocol, data: bytes) -> None:
    """As asyncio.protocols._feed_data_to_buffered_proto."""
    view = memoryview(data)
    while view:
        buf = memoryview(protocol.get_buffer(len(view)))
        if not len(buf):
            raise RuntimeError("get_buffer() returned an empty buffer")
        n = min(len(buf), len(view))
        buf[:n] = view[:n]
        protocol.buffer_updated(n)
        view = view[n:]
