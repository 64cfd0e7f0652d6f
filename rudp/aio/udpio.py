"""A UDP datagram transport that moves whole batches per system call.

asyncio's own datagram transport reads one datagram per loop pass (uvloop one
``recvfrom`` per datagram) and sends one per ``sendto``: at bulk rates the loop's
per-callback cost dominates.  ``UdpTransport`` is an ``asyncio.DatagramTransport``
driven by ``loop.add_reader`` / ``add_writer``, so it runs on any loop with those
(the default loop and uvloop alike), and:

- reads until the socket is empty or a fairness bound (``READ_BATCH`` reads,
  ``READ_BUDGET`` bytes) per readable event, then calls the protocol's optional
  ``datagrams_done()`` once, so a protocol can act once per batch (acknowledge,
  deliver) instead of once per datagram; while events bring one datagram each
  (request and reply), it reads one and asks the kernel only now and then
  whether more waits, rather than read into EAGAIN every time;
- with Linux UDP GRO, one ``recvmsg`` returns many datagrams coalesced into one
  buffer, each handed to ``datagram_received`` as a ``memoryview`` slice of it.
  So ``data`` may be a memoryview, valid as long as the protocol holds it but
  pinning the whole buffer: a protocol that keeps data copies it (``bytes()``);
- ``send_batch`` sends a list of datagrams with Linux UDP GSO, one ``sendmsg``
  per run of equal-sized datagrams (the last of a run may be shorter), as the
  kernel splits a GSO buffer: every segment ``size`` bytes but the last.

Everything else follows asyncio's ``_SelectorDatagramTransport``: argument checks,
``error_received`` for socket errors (ICMP errors on a connected socket included),
the write queue and its flow control when the socket would block, and the close
sequence.  A protocol callback that raises goes to the loop's exception handler,
and reading goes on.

GSO may be refused by the path (a NIC without checksum offload: EIO; a segment
larger than the route's MTU: EINVAL...): the first such failure turns GSO off for
the socket and the run goes again datagram by datagram, so nothing is lost to it.
An error that is the peer's or the network's (ECONNREFUSED from an ICMP error,
EHOSTUNREACH...) is no reason to: it is reported and the run dropped, as asyncio
drops the datagram whose ``sendto`` failed.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import select
import socket
import struct
import sys
import warnings
from asyncio import trsock
from asyncio.log import logger
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

__all__ = ["UdpTransport", "create_datagram_endpoint", "open_datagram_endpoint"]

_ProtocolT = TypeVar("_ProtocolT", bound=asyncio.BaseProtocol)
_Address = Any  # what the socket takes and returns: a tuple for IP, a str for AF_UNIX
_Buffer = bytes | bytearray | memoryview

# Linux <linux/udp.h>; Python 3.11's socket module names neither.
SOL_UDP = 17
UDP_SEGMENT = 103
UDP_GRO = 104

# Fairness: one readable event reads at most this much before the loop moves on.
READ_BATCH = 64
READ_BUDGET = 1 << 20
# After readable events that brought one read each, only every this many asks the
# kernel whether more waits (see _read_ready); the others stop after one read.
SPARSE_PROBE = 4
# The largest UDP payload over IPv4 is 65507 bytes and a GRO buffer holds at most
# 64 KiB; a bigger buffer would only cost allocation on every read.
RECV_SIZE = 1 << 16
# UDP_MAX_SEGMENTS of older kernels (newer ones take 128); the bytes stay under the
# 16-bit IP length with room for headers.
GSO_MAX_SEGMENTS = 64
GSO_MAX_BYTES = 65000

# Send errors caused by the peer or the network, not by segmentation offload.
_NOT_GSO_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.EHOSTDOWN,
        errno.ENETDOWN,
        errno.EPERM,
        errno.EACCES,
        errno.ENOBUFS,
        errno.EADDRNOTAVAIL,
    }
)
# As asyncio: writes after the connection was lost are dropped, with a warning
# from this many on.
_LOG_THRESHOLD_FOR_CONNLOST_WRITES = 5
_CMSG_SPACE = socket.CMSG_SPACE(4) if hasattr(socket, "CMSG_SPACE") else 0
# The write queue of every transport that never had to queue: empty and never
# changed (_enqueue gives a transport a queue of its own first).  A client has
# one transport per connection, and a deque is over 600 bytes.
_NO_QUEUE: collections.deque[tuple[bytes, Any]] = collections.deque()
_NO_EXTRA: dict[str, Any] = {}
_pack_segment_size = struct.Struct("=H").pack


class UdpTransport(asyncio.DatagramTransport):
    """asyncio's datagram transport over ``sock``, batching reads and writes.

    ``batches_sent`` counts GSO sends, ``batches_received`` GRO reads that held
    more than one datagram; ``gso_enabled`` and ``gro_enabled`` say whether the
    socket uses them (GSO goes off for good after the first refusal).
    """

    __slots__ = (
        "_address",
        "_buffer",
        "_buffer_size",
        "_closing",
        "_conn_lost",
        "_batch_aware",
        "_fd",
        "_high_water",
        "_loop",
        "_low_water",
        "_poll",
        "_protocol",
        "_protocol_connected",
        "_protocol_paused",
        "_reading",
        "_rearm_handle",
        "_rearm_on_error",
        "_sock",
        "_sockname",
        "_socket",
        "_socket_view",
        "_sparse",
        "_writing",
        "batches_received",
        "batches_sent",
        "gro_enabled",
        "gso_enabled",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        protocol: asyncio.BaseProtocol,
        waiter: asyncio.Future[None] | None = None,
        *,
        at_once: bool = False,
    ) -> None:
        # BaseTransport.__init__, inlined; get_extra_info answers from the slots.
        self._extra = _NO_EXTRA
        try:
            self._sockname: _Address = sock.getsockname()
        except OSError:
            self._sockname = None
        try:
            self._address: _Address = sock.getpeername()
        except OSError:
            self._address = None
        self._loop = loop
        self._sock: socket.socket | None = sock
        self._socket = sock  # kept after close, for get_extra_info("socket")
        self._socket_view: trsock.TransportSocket | None = None
        self._fd = sock.fileno()
        self._buffer: collections.deque[tuple[bytes, _Address]] = _NO_QUEUE
        self._buffer_size = 0
        self._closing = False
        self._conn_lost = 0
        self._reading = False
        self._writing = False
        self._rearm_on_error = not isinstance(loop, asyncio.selector_events.BaseSelectorEventLoop)
        self._rearm_handle: asyncio.Handle | None = None
        self._protocol_paused = False
        self._high_water = 64 * 1024
        self._low_water = 16 * 1024
        self._protocol_connected = False
        self._protocol: Any = None
        self._batch_aware = False  # the protocol has datagrams_done()
        # How many readable events in a row brought one read (see _read_ready).
        self._sparse = 0
        self._poll: Callable[[int], list[tuple[int, int]]] | None = None
        self.set_protocol(protocol)
        self.batches_sent = 0
        self.batches_received = 0
        family = sock.family
        ip = family in (socket.AF_INET, socket.AF_INET6) and sys.platform == "linux"
        self.gso_enabled = ip and _gso_supported(sock, family)
        self.gro_enabled = ip and _enable_gro(sock, family)
        if at_once:
            self._connection_made()
            self._start_reading()
            return
        loop.call_soon(self._connection_made)
        # Only start reading once connection_made() has run.
        loop.call_soon(self._start_reading)
        if waiter is not None:
            loop.call_soon(_set_result_unless_cancelled, waiter)

    def __repr__(self) -> str:
        info = [type(self).__name__]
        if self._sock is None:
            info.append("closed")
        elif self._closing:
            info.append("closing")
        info.append(f"fd={self._fd}")
        if self._sock is not None:
            info.append(f"read={'polling' if self._reading else 'idle'}")
            state = "polling" if self._writing else "idle"
            info.append(f"write=<{state}, bufsize={self._buffer_size}>")
        info.append(f"gso={self.gso_enabled} gro={self.gro_enabled}")
        return f"<{' '.join(info)}>"

    def __del__(self, _warn: Any = warnings.warn) -> None:
        # Only reachable unregistered: a reader or writer keeps the transport alive.
        sock = getattr(self, "_sock", None)
        if sock is not None:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            sock.close()

    # ---------------------------------------------------------- BaseTransport
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``socket`` (a TransportSocket), ``sockname`` and ``peername``, as asyncio's."""
        if name == "sockname":
            return self._sockname
        if name == "peername":
            return self._address
        if name == "socket":
            if self._socket_view is None:
                self._socket_view = trsock.TransportSocket(self._socket)
            return self._socket_view
        return default

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol
        self._batch_aware = hasattr(protocol, "datagrams_done")
        self._protocol_connected = True

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol  # type: ignore[no-any-return]

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """Stop reading; the queued datagrams go, then the socket is closed and
        ``connection_lost(None)`` called."""
        if self._closing:
            return
        self._closing = True
        self._stop_reading()
        if not self._buffer:
            self._conn_lost += 1
            self._stop_writing()
            self._loop.call_soon(self._call_connection_lost, None)

    def abort(self) -> None:
        """Close now, dropping the queued datagrams."""
        self._force_close(None)

    # ------------------------------------------------------- flow control
    def get_write_buffer_size(self) -> int:
        return self._buffer_size

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (self._low_water, self._high_water)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high_water = high
        self._low_water = low
        self._maybe_pause_protocol()

    def _maybe_pause_protocol(self) -> None:
        if self._buffer_size <= self._high_water or self._protocol_paused:
            return
        self._protocol_paused = True
        try:
            self._protocol.pause_writing()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._callback_failed(exc, "protocol.pause_writing() failed")

    def _maybe_resume_protocol(self) -> None:
        if self._protocol_paused and self._buffer_size <= self._low_water:
            self._protocol_paused = False
            try:
                self._protocol.resume_writing()
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._callback_failed(exc, "protocol.resume_writing() failed")

    # ---------------------------------------------------------------- send
    def sendto(self, data: _Buffer, addr: _Address = None) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"data argument must be a bytes-like object, not {type(data).__name__!r}"
            )
        if not data:
            return
        # (_check_address inlined: this is the path of every datagram rudp sends.)
        connected = self._address
        if connected:
            if addr is not None and addr != connected:
                raise ValueError(f"Invalid address: must be None or {connected}")
        if self._conn_lost:
            self._write_after_lost()
            return
        if not self._buffer:
            sock = self._sock
            assert sock is not None
            try:
                if connected:
                    sock.send(data)
                else:
                    sock.sendto(data, addr)
                return
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:
                self._watch_again()
                self._error_received(exc)
                return
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal write error on datagram transport")
                return
        self._enqueue((data,), None if connected else addr)

    def send_batch(self, datagrams: Sequence[_Buffer], addr: _Address = None) -> None:
        """Send ``datagrams`` (bytes-like) in order to ``addr``, as many
        ``sendto`` calls would, but with one ``sendmsg`` per run of equal sizes
        (UDP GSO) where the kernel allows it.  Empty datagrams are skipped."""
        addr = self._check_address(addr)
        if self._conn_lost:
            self._write_after_lost()
            return
        if self._buffer:
            self._enqueue(datagrams, addr)
            return
        sent = self._transmit(datagrams, addr)
        if sent < len(datagrams) and not self._conn_lost:
            self._enqueue(datagrams[sent:], addr)

    def _check_address(self, addr: _Address) -> _Address:
        if self._address:
            if addr not in (None, self._address):
                raise ValueError(f"Invalid address: must be None or {self._address}")
            return None  # a connected socket: send, not sendto
        return addr

    def _write_after_lost(self) -> None:
        if self._conn_lost >= _LOG_THRESHOLD_FOR_CONNLOST_WRITES:
            logger.warning("socket.send() raised exception.")
        self._conn_lost += 1

    def _enqueue(self, datagrams: Sequence[_Buffer], addr: _Address) -> None:
        """Queue what the socket did not take (copied: the caller may reuse its
        buffers) and send it when the socket is writable."""
        entries = [(bytes(data), addr) for data in datagrams if data]
        if not entries:
            return
        size = sum(len(data) for data, _ in entries)
        if self._buffer is _NO_QUEUE:
            self._buffer = collections.deque()
        self._buffer.extend(entries)
        self._buffer_size += size
        self._start_writing()
        self._maybe_pause_protocol()

    def _transmit(self, datagrams: Sequence[_Buffer], addr: _Address) -> int:
        """Send ``datagrams`` in order until the socket would block; return how
        many were dealt with (sent, or dropped after ``error_received``)."""
        sock = self._sock
        assert sock is not None
        connected = bool(self._address)
        count = len(datagrams)
        singles_until = 0  # a GSO run that failed goes again one by one
        i = 0
        while i < count:
            data = datagrams[i]
            size = len(data)
            if not size:
                i += 1
                continue
            end = i + 1
            if self.gso_enabled and i >= singles_until:
                limit = min(count, i + GSO_MAX_SEGMENTS)
                total = size
                while end < limit and total + size <= GSO_MAX_BYTES:
                    length = len(datagrams[end])
                    if length != size:
                        if 0 < length < size:
                            end += 1  # a shorter last segment
                        break
                    total += size
                    end += 1
            try:
                if end - i == 1:
                    if connected:
                        sock.send(data)
                    else:
                        sock.sendto(data, addr)
                else:
                    run = [b"".join(datagrams[i:end])]
                    cmsg = [(SOL_UDP, UDP_SEGMENT, _pack_segment_size(size))]
                    if connected:
                        sock.sendmsg(run, cmsg)
                    else:
                        sock.sendmsg(run, cmsg, 0, addr)
                    self.batches_sent += 1
            except (BlockingIOError, InterruptedError):
                return i
            except OSError as exc:
                if end - i > 1 and exc.errno not in _NOT_GSO_ERRNOS:
                    self.gso_enabled = False
                    singles_until = end
                    continue
                self._watch_again()
                self._error_received(exc)
                if self._buffer or self._conn_lost:
                    # The protocol queued a datagram from that callback (the rest
                    # goes behind it, as if sent by one sendto each), or aborted.
                    return end
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal write error on datagram transport")
                return count
            i = end
        return count

    def _write_ready(self) -> None:
        buffer = self._buffer
        popleft = buffer.popleft
        while buffer:
            # The run stays queued while it goes: a datagram a callback sends
            # meanwhile queues behind it.
            addr = buffer[0][1]
            run: list[bytes] = []
            for data, to in buffer:
                if to != addr or len(run) == GSO_MAX_SEGMENTS:
                    break
                run.append(data)
            sent = self._transmit(run, addr)
            if self._conn_lost:
                return  # a fatal error closed the transport
            if not sent:
                self._watch_again()  # writable, yet it would block: see _rearm
            for _ in range(sent):
                self._buffer_size -= len(popleft()[0])
            if sent < len(run):
                break
        self._maybe_resume_protocol()  # may queue more
        if not buffer:
            self._stop_writing()
            if self._closing:
                self._conn_lost += 1
                self._call_connection_lost(None)

    # ------------------------------------------------------------- receive
    def _read_ready(self) -> None:
        sock = self._sock
        if sock is None or self._closing:
            return
        protocol = self._protocol
        received: Callable[[Any, Any], object] = protocol.datagram_received
        gro = self.gro_enabled
        recvmsg = sock.recvmsg
        recvfrom = sock.recvfrom
        delivered = False
        budget = READ_BUDGET
        sparse = self._sparse
        poll = self._poll
        reads = 0
        for _ in range(READ_BATCH):
            try:
                if gro:
                    data, ancdata, flags, addr = recvmsg(RECV_SIZE, _CMSG_SPACE)
                    segment = _gro_segment_size(ancdata) if ancdata else 0
                else:
                    data, addr = recvfrom(RECV_SIZE)
                    segment = flags = 0
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                # An ICMP error on a connected socket; the next pass reads on.
                self._watch_again()
                self._error_received(exc)
                delivered = True
                break
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal read error on datagram transport")
                return
            delivered = True
            reads += 1
            length = len(data)
            if 0 < segment < length:
                if flags & socket.MSG_TRUNC:
                    length -= length % segment  # a cut last datagram is lost
                self.batches_received += 1
                view = memoryview(data)
                for start in range(0, length, segment):
                    try:
                        received(view[start : start + segment], addr)
                    except (SystemExit, KeyboardInterrupt):
                        raise
                    except BaseException as exc:
                        self._callback_failed(exc, "protocol.datagram_received() failed")
                    if self._closing:
                        return
            else:
                try:
                    received(data, addr)
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:
                    self._callback_failed(exc, "protocol.datagram_received() failed")
                if self._closing:
                    return
            budget -= length
            if budget <= 0:
                break
            if sparse:
                # Sparse traffic (request and reply): a second read would most
                # likely fail with EAGAIN.  Stop after one; a socket that has more
                # is reported readable again in the next loop pass anyway.  Only
                # every SPARSE_PROBE-th time ask the kernel (poll, the cheapest
                # question) whether more waits, and if so read on as a batch:
                # traffic has become dense.
                if sparse % SPARSE_PROBE:
                    break
                if poll is None and _HAS_POLL:
                    # Made at the first check, not the first sparse read: a
                    # client's connection often ends before it gets here.
                    poll = self._poll = _poll_of(self._fd)
                if poll is not None and not poll(0):
                    break
                sparse = 0
        if not delivered:
            self._watch_again()  # readable, yet nothing came: see _rearm
            return
        if reads == 1:
            self._sparse = sparse + 1
        else:
            self._sparse = 0
        if self._batch_aware:
            try:
                protocol.datagrams_done()
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._callback_failed(exc, "protocol.datagrams_done() failed")

    def _error_received(self, exc: OSError) -> None:
        try:
            self._protocol.error_received(exc)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as error:
            self._callback_failed(error, "protocol.error_received() failed")

    # ----------------------------------------------------------- lifecycle
    def _connection_made(self) -> None:
        self._protocol.connection_made(self)

    def _start_reading(self) -> None:
        if not self._closing and not self._reading:
            self._reading = True
            self._loop.add_reader(self._fd, self._read_ready)

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._fd)

    def _start_writing(self) -> None:
        if not self._writing:
            self._writing = True
            self._loop.add_writer(self._fd, self._write_ready)

    def _stop_writing(self) -> None:
        if self._writing:
            self._writing = False
            self._loop.remove_writer(self._fd)

    def _watch_again(self) -> None:
        if self._rearm_on_error and self._rearm_handle is None:
            self._rearm_handle = self._loop.call_soon(self._rearm)

    def _rearm(self) -> None:
        """Register the reader and writer afresh.

        libuv (so uvloop) gives up on a watched fd when poll reports an error on
        it -- POLLERR, as an ICMP error queued on a connected UDP socket raises --
        after calling its callbacks once, and never watches it again.  The error
        is then what the reader receives, or was consumed just before by a send
        (its event already fetched), leaving the reader nothing to read: after
        either, and on a writable event where the send would block, we register
        again, which costs two epoll_ctl calls when the watcher was fine after all.
        The selector loops watch on and need none of this."""
        self._rearm_handle = None
        loop, fd = self._loop, self._fd
        if self._reading:
            loop.remove_reader(fd)
            loop.add_reader(fd, self._read_ready)
        if self._writing:
            loop.remove_writer(fd)
            loop.add_writer(fd, self._write_ready)

    def _callback_failed(self, exc: BaseException, message: str) -> None:
        """A protocol callback raised: the loop's handler hears of it, as asyncio's
        ``_fatal_error`` tells it, but the transport carries on."""
        self._loop.call_exception_handler(
            {"message": message, "exception": exc, "transport": self, "protocol": self._protocol}
        )

    def _fatal_error(self, exc: BaseException, message: str) -> None:
        if not isinstance(exc, OSError):
            self._callback_failed(exc, message)
        self._force_close(exc)

    def _force_close(self, exc: BaseException | None) -> None:
        if self._conn_lost:
            return
        if self._buffer:
            self._buffer.clear()
            self._buffer_size = 0
        if self._rearm_handle is not None:
            self._rearm_handle.cancel()
            self._rearm_handle = None
        self._stop_writing()
        self._closing = True
        self._stop_reading()
        self._conn_lost += 1
        self._loop.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        try:
            if self._protocol_connected:
                self._protocol.connection_lost(exc)
        finally:
            if self._rearm_handle is not None:
                self._rearm_handle.cancel()
                self._rearm_handle = None
            if self._sock is not None:
                self._sock.close()
                self._sock = None
            self._protocol = None
            self._batch_aware = False
            self._poll = None  # (the fd's number may soon be another socket's)


async def create_datagram_endpoint(
    loop: asyncio.AbstractEventLoop,
    protocol_factory: Callable[[], _ProtocolT],
    sock: socket.socket,
) -> tuple[UdpTransport, _ProtocolT]:
    """``loop.create_datagram_endpoint(protocol_factory, sock=sock)`` with a
    ``UdpTransport``: returns once ``connection_made`` has run."""
    if sock.type != socket.SOCK_DGRAM:
        raise ValueError(f"A UDP Socket was expected, got {sock!r}")
    sock.setblocking(False)
    protocol = protocol_factory()
    waiter: asyncio.Future[None] = loop.create_future()
    transport = UdpTransport(loop, sock, protocol, waiter)
    try:
        await waiter
    except BaseException:
        transport.close()
        raise
    return transport, protocol


def open_datagram_endpoint(
    loop: asyncio.AbstractEventLoop, protocol: asyncio.BaseProtocol, sock: socket.socket
) -> UdpTransport:
    """``create_datagram_endpoint`` for a protocol that may hear of its transport
    at once: ``connection_made`` has run and reading has started when it returns,
    with no loop pass in between (rudp's Endpoint, one per client connection)."""
    if sock.getblocking():  # (a flag of the socket object: no system call)
        sock.setblocking(False)
    return UdpTransport(loop, sock, protocol, at_once=True)


def _poll_of(fd: int) -> Callable[[int], list[tuple[int, int]]] | None:
    """``poll(0)`` answers whether a read of ``fd`` would find something now (a
    datagram, or an error to report), without waiting: the cheapest question to
    the kernel (half a FIONREAD ioctl, a third of a recvmsg failing with EAGAIN).
    None where ``select.poll`` is missing (Windows): reading on is the answer."""
    if not _HAS_POLL:
        return None
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return poller.poll


_HAS_POLL = hasattr(select, "poll")


def _gro_segment_size(ancdata: list[tuple[int, int, bytes]]) -> int:
    for level, kind, cdata in ancdata:
        if level == SOL_UDP and kind == UDP_GRO:
            return int.from_bytes(cdata[:4], sys.byteorder)
    return 0


# What the kernel said of GSO and GRO, per address family: it says the same for
# every socket, and a client opens one per connection.
_gso_by_family: dict[int, bool] = {}
_gro_refused: set[int] = set()


def _gso_supported(sock: socket.socket, family: int) -> bool:
    """Linux 4.18+ knows UDP_SEGMENT; older kernels answer ENOPROTOOPT."""
    supported = _gso_by_family.get(family)
    if supported is None:
        try:
            sock.getsockopt(SOL_UDP, UDP_SEGMENT)
            supported = True
        except OSError:
            supported = False
        _gso_by_family[family] = supported
    return supported


def _enable_gro(sock: socket.socket, family: int) -> bool:
    if not _CMSG_SPACE or family in _gro_refused:
        return False
    try:
        sock.setsockopt(SOL_UDP, UDP_GRO, 1)
    except OSError as exc:
        if exc.errno == errno.ENOPROTOOPT:
            _gro_refused.add(family)  # a kernel before 5.0
        return False
    return True


def _set_result_unless_cancelled(waiter: asyncio.Future[None]) -> None:
    if not waiter.cancelled():
        waiter.set_result(None)
