"""A UDP relay on loopback that impairs real datagrams, for tests and benchmarks
over real sockets: seeded loss, delay, jitter, reordering, duplication,
corruption and a rate-limited bottleneck with a drop-tail queue.

:class:`ImpairmentRelay` listens on a loopback port; a client sends there
instead of to the server.  Each client address gets an *upstream* socket of its
own, connected to the server, so the server sees one peer per client, as behind
a NAT; what the server answers on it goes back to that client from the
listening address.  The mapping lasts until the relay closes.  Each direction
(``to_server``, ``to_client``) is one link with one :class:`Impairment`, shared by
every client: a rate limit is one bottleneck, not one per client.

Impairments have :class:`~rudp.testing.simnet.SimulatedNetwork`'s meaning
exactly (the decisions are drawn in the same order); ``blackholes`` count
seconds from the relay's start, and the rate limit's queue is
``Impairment.queue_limit`` bytes (64 KiB unless set; size it near one
bandwidth-delay product for a realistic bottleneck).  Each direction draws from
its own ``random.Random`` seeded from ``seed``, so a direction's fate sequence
(which datagram is dropped, duplicated, held back) depends only on the seed and
on the order of its datagrams, not on the other direction's timing.

Datagrams waiting out their delay sit in one heap ordered by delivery time,
with one loop timer armed for the earliest.  Times come from
``time.monotonic()``, stamped after a datagram is read, so a delay is never cut
short (uvloop's own clock ticks in whole milliseconds and lags within a loop
pass); the timer is rounded up to whole milliseconds, so deliveries come in
per-millisecond batches, up to about a millisecond late.  Measured on 2 cores
with 1400-byte datagrams and 20 ms delay: 10,000 datagrams/s cost the relay
about 18 % of a core on uvloop and on the default loop, 60,000/s about 70 %,
with none lost and every delay within 20.0-25 ms; a ``call_at`` handle per
datagram cost 10-20 % more.

Everything stays on loopback: the relay binds to a loopback address and
refuses an upstream that is not one.  It runs on any loop with ``add_reader``
(the default loop on POSIX, uvloop).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import ipaddress
import math
import random
import socket
import struct
import sys
import time
from dataclasses import dataclass, field, fields
from typing import Any, Self

from .simnet import Impairment, _flip_bits

__all__ = ["ImpairmentRelay", "RelayDirectionStats", "RelayStats"]

Address = tuple[Any, ...]

#: Kernel buffers of every relay socket: a burst the relay is slow to read must
#: not be lost before it counts (what is lost anyway shows in ``socket_overflows``).
SOCKET_BUFFER = 4 * 1024 * 1024
#: Datagrams read per readable event before the loop may run something else.
READ_BATCH = 128
#: Granularity of the delivery timer (uvloop's timers count milliseconds).
TIMER_TICK = 0.001
_MAX_DATAGRAM = 65535
# Linux: each datagram read carries the socket's count of datagrams the kernel
# dropped for want of buffer space (SO_RXQ_OVFL, which Python's socket module
# does not name).
_SO_RXQ_OVFL = 40 if sys.platform.startswith("linux") else None
_ANCILLARY = socket.CMSG_SPACE(4) if _SO_RXQ_OVFL is not None else 0
_U32 = struct.Struct("=I")


@dataclass(slots=True)
class RelayDirectionStats:
    """Counters of one direction of the relay (all only grow)."""

    #: Datagrams read from the sender's side, and their bytes.
    received: int = 0
    bytes_received: int = 0
    #: Datagrams sent on (a duplicate counts twice), and their bytes.
    forwarded: int = 0
    bytes_forwarded: int = 0
    #: Dropped by ``loss`` or Gilbert-Elliott bursts.
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    corrupted: int = 0
    #: Dropped for exceeding ``mtu``.
    too_big: int = 0
    #: Dropped at the tail of the rate limit's full queue.
    queue_drops: int = 0
    #: Dropped inside a blackhole window.
    blackholed: int = 0
    #: ``send`` failed (an ICMP error came back, or the socket buffer was full).
    send_errors: int = 0
    #: Dropped by the kernel at the relay's own socket before the relay read them
    #: (Linux's SO_RXQ_OVFL; 0 elsewhere): loss the impairment did not ask for.
    socket_overflows: int = 0

    @property
    def dropped(self) -> int:
        """Datagrams the relay read and did not forward."""
        return self.lost + self.too_big + self.queue_drops + self.blackholed + self.send_errors

    def as_dict(self) -> dict[str, int]:
        counters = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**counters, "dropped": self.dropped}


@dataclass(slots=True)
class RelayStats:
    """Both directions' counters."""

    to_server: RelayDirectionStats = field(default_factory=RelayDirectionStats)
    to_client: RelayDirectionStats = field(default_factory=RelayDirectionStats)

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {"to_server": self.to_server.as_dict(), "to_client": self.to_client.as_dict()}


class _Link:
    """One direction's impairment, decided datagram by datagram as simnet decides it."""

    __slots__ = ("fifo_until", "imp", "in_bad_state", "link_busy_until", "rng", "started", "stats")

    def __init__(
        self, imp: Impairment, rng: random.Random, stats: RelayDirectionStats, started: float
    ) -> None:
        self.imp = imp
        self.rng = rng
        self.stats = stats
        self.started = started
        self.fifo_until = float("-inf")
        self.link_busy_until = float("-inf")
        self.in_bad_state = False

    def admit(self, data: bytes, now: float) -> list[tuple[float, bytes]]:
        """When, and as what, each surviving copy of ``data`` is to be delivered."""
        imp, stats, rng = self.imp, self.stats, self.rng
        stats.received += 1
        stats.bytes_received += len(data)
        since = now - self.started
        if any(start <= since < end for start, end in imp.blackholes):
            stats.blackholed += 1
            return []
        if imp.mtu is not None and len(data) > imp.mtu:
            stats.too_big += 1
            return []
        if self._is_lost():
            stats.lost += 1
            return []
        departs_at = now
        if imp.rate is not None:
            # A FIFO bottleneck: what it still has to serialise is its queue.
            queued_bytes = max(0.0, self.link_busy_until - now) * imp.rate
            if queued_bytes + len(data) > imp.queue_limit:
                stats.queue_drops += 1
                return []
            departs_at = max(now, self.link_busy_until) + len(data) / imp.rate
            self.link_busy_until = departs_at
        copies = 1
        if imp.duplicate and rng.random() < imp.duplicate:
            stats.duplicated += 1
            copies = 2
        return [self._launch(data, departs_at) for _ in range(copies)]

    def _launch(self, data: bytes, departs_at: float) -> tuple[float, bytes]:
        imp, stats, rng = self.imp, self.stats, self.rng
        if imp.corrupt and data and rng.random() < imp.corrupt:
            data = _flip_bits(data, rng)
            stats.corrupted += 1
        deliver_at = departs_at + imp.delay
        if imp.jitter:
            deliver_at += rng.uniform(0.0, imp.jitter)
        if imp.reorder and rng.random() < imp.reorder:
            # Held back off the FIFO: datagrams sent later may overtake it.
            deliver_at += rng.uniform(0.0, imp.reorder_delay)
            stats.reordered += 1
        else:
            deliver_at = max(deliver_at, self.fifo_until)
            self.fifo_until = deliver_at
        return deliver_at, data

    def _is_lost(self) -> bool:
        imp, rng = self.imp, self.rng
        ge = imp.gilbert_elliott
        if ge is not None:
            switch = ge.p_bad_to_good if self.in_bad_state else ge.p_good_to_bad
            if rng.random() < switch:
                self.in_bad_state = not self.in_bad_state
            burst_loss = ge.loss_in_bad if self.in_bad_state else ge.loss_in_good
            if burst_loss and rng.random() < burst_loss:
                return True
        return bool(imp.loss) and rng.random() < imp.loss


@dataclass(slots=True, eq=False)
class _Flow:
    """One client: its address and its own socket towards the server."""

    client: Address
    upstream: socket.socket
    overflows_seen: int = 0


# (deliver_at, tie-break, socket, data, destination or None on a connected socket, stats)
_Pending = tuple[float, int, socket.socket, bytes, Address | None, RelayDirectionStats]


class ImpairmentRelay:
    """A loopback UDP relay between clients and one server; see the module docstring.

    ``await ImpairmentRelay.start(upstream=("127.0.0.1", port), to_server=...,
    to_client=..., seed=1)``; clients connect to ``relay.address``;
    ``relay.stats`` counts each direction; ``await relay.close()`` (or
    ``async with``) stops it, dropping what is still delayed.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        listener: socket.socket,
        upstream: Address,
        to_server: Impairment,
        to_client: Impairment,
        seed: int,
    ) -> None:
        self._loop = loop
        self._listener = listener
        self.upstream = upstream
        self.address: Address = listener.getsockname()
        self.seed = seed
        self.stats = RelayStats()
        started = time.monotonic()
        self._to_server = _Link(
            to_server, random.Random(f"{seed}/to-server"), self.stats.to_server, started
        )
        self._to_client = _Link(
            to_client, random.Random(f"{seed}/to-client"), self.stats.to_client, started
        )
        self._flows: dict[Address, _Flow] = {}
        self._listener_overflows = 0
        self._pending: list[_Pending] = []
        self._tie = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self._closed = False
        loop.add_reader(listener.fileno(), self._read_clients)

    @classmethod
    async def start(
        cls,
        upstream: tuple[str, int],
        *,
        to_server: Impairment | None = None,
        to_client: Impairment | None = None,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> Self:
        """Listen on ``host:port`` (an ephemeral port by default) and relay to
        ``upstream``; both must be loopback addresses."""
        family = _loopback_family(host)
        if _loopback_family(upstream[0]) != family:
            raise ValueError("the relay's address and upstream must be of the same family")
        listener = _udp_socket(family)
        try:
            listener.bind((host, port))
        except BaseException:
            listener.close()
            raise
        loop = asyncio.get_running_loop()
        return cls(
            loop,
            listener,
            tuple(upstream),
            to_server or Impairment(),
            to_client or Impairment(),
            seed,
        )

    @property
    def clients(self) -> list[Address]:
        """Client addresses seen so far, in order of first datagram."""
        return list(self._flows)

    @property
    def pending(self) -> int:
        """Datagrams waiting out their delay."""
        return len(self._pending)

    async def close(self) -> None:
        """Stop relaying; datagrams still delayed are discarded.  Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pending.clear()
        for sock in [self._listener, *(flow.upstream for flow in self._flows.values())]:
            self._loop.remove_reader(sock.fileno())
            sock.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ------------------------------------------------------------ reading
    def _read_clients(self) -> None:
        batch = _read_batch(self._listener)
        # Stamped once read: never before any of them arrived, so never early.
        now = time.monotonic()
        for data, client, overflows in batch:
            if client is None:
                continue
            if overflows is not None:
                self.stats.to_server.socket_overflows += overflows - self._listener_overflows
                self._listener_overflows = overflows
            flow = self._flows.get(client)
            if flow is None:
                flow = self._open_flow(client)
            for deliver_at, copy in self._to_server.admit(data, now):
                self._schedule(deliver_at, flow.upstream, copy, None, self.stats.to_server)
        self._deliver_due()

    def _read_server(self, flow: _Flow) -> None:
        batch = _read_batch(flow.upstream)
        now = time.monotonic()
        for data, _, overflows in batch:
            if overflows is not None:
                self.stats.to_client.socket_overflows += overflows - flow.overflows_seen
                flow.overflows_seen = overflows
            for deliver_at, copy in self._to_client.admit(data, now):
                self._schedule(deliver_at, self._listener, copy, flow.client, self.stats.to_client)
        self._deliver_due()

    def _open_flow(self, client: Address) -> _Flow:
        sock = _udp_socket(self._listener.family)
        try:
            sock.bind((self.address[0], 0))
            sock.connect(self.upstream)
        except BaseException:
            sock.close()
            raise
        flow = self._flows[client] = _Flow(client, sock)
        self._loop.add_reader(sock.fileno(), self._read_server, flow)
        return flow

    # ------------------------------------------------------------ delivering
    def _schedule(
        self,
        deliver_at: float,
        sock: socket.socket,
        data: bytes,
        to: Address | None,
        stats: RelayDirectionStats,
    ) -> None:
        self._tie += 1
        heapq.heappush(self._pending, (deliver_at, self._tie, sock, data, to, stats))

    def _deliver_due(self) -> None:
        """Send what is due, then re-arm the one timer for the earliest left."""
        if self._closed:
            return
        pending = self._pending
        if pending:
            now = time.monotonic()
            while pending and pending[0][0] <= now:
                _, _, sock, data, to, stats = heapq.heappop(pending)
                try:
                    if to is None:
                        sock.send(data)
                    else:
                        sock.sendto(data, to)
                except OSError:
                    stats.send_errors += 1
                    continue
                stats.forwarded += 1
                stats.bytes_forwarded += len(data)
        if not pending:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._timer_at = float("inf")
            return
        next_at = pending[0][0]
        if next_at < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            # Whole ticks, rounded up: a timer that fires before its datagram is
            # due would only be re-armed, again and again, until it is.
            wait = math.ceil((next_at - time.monotonic()) / TIMER_TICK) * TIMER_TICK
            self._timer = self._loop.call_later(max(wait, 0.0), self._on_timer)
            self._timer_at = next_at

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = float("inf")
        self._deliver_due()


def _read_batch(sock: socket.socket) -> list[tuple[bytes, Address | None, int | None]]:
    """Up to READ_BATCH datagrams waiting on ``sock``, each with its sender and the
    socket's overflow count when the kernel reports one."""
    batch: list[tuple[bytes, Address | None, int | None]] = []
    for _ in range(READ_BATCH):
        try:
            if _ANCILLARY:
                data, ancillary, _, source = sock.recvmsg(_MAX_DATAGRAM, _ANCILLARY)
                overflows = _U32.unpack(ancillary[0][2])[0] if ancillary else None
            else:
                data, source = sock.recvfrom(_MAX_DATAGRAM)
                overflows = None
        except (BlockingIOError, InterruptedError):
            break
        except OSError:
            # An ICMP error queued on a connected socket (the server's port is
            # closed): the datagram that caused it is gone already; read on.
            continue
        batch.append((data, source, overflows))
    return batch


def _loopback_family(host: str) -> socket.AddressFamily:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"the relay takes loopback IP literals only, not {host!r}") from None
    if not address.is_loopback:
        raise ValueError(f"the relay stays on loopback: {host!r} is not a loopback address")
    return socket.AF_INET6 if address.version == 6 else socket.AF_INET


def _udp_socket(family: socket.AddressFamily) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setblocking(False)
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
    if _SO_RXQ_OVFL is not None and _ANCILLARY:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, _SO_RXQ_OVFL, 1)
    return sock
