"""A deterministic, hostile datagram network on a virtual clock.

Every protocol test runs engines over this network instead of sockets.  Hosts
are attached at addresses (any hashable); each direction ``(src, dst)`` has an
:class:`Impairment` (the network default unless overridden).  Datagrams in
flight sit in one priority queue ordered by ``(deliver_at, seq_no)``; ``run()``
jumps the clock from one deadline (a delivery, a host timer, a scheduled call)
to the next.  :class:`ConnectionHost`, :class:`ListenerHost` and
:class:`ClosedPortHost` put the sans-IO engine on the network.

Invariants: all randomness comes from one ``random.Random(seed)`` and is drawn in
an order fixed by the inputs, so the same seed and the same test give the same
trace; nothing reads the wall clock or sleeps; time never goes backwards.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol, Self, TypeVar

from rudp.core.config import Config
from rudp.core.events import DataReceived, Event
from rudp.core.state import State

from .clock import VirtualClock

if TYPE_CHECKING:
    from rudp.core.connection import Connection
    from rudp.core.listener import Listener

Address = Hashable
Datagram = tuple[bytes, Address]
RunOutcome = Literal["stopped", "idle", "until"]


@dataclass(frozen=True, slots=True)
class GilbertElliott:
    """Two-state burst loss: a *good* and a *bad* state, switched before each datagram."""

    p_good_to_bad: float
    p_bad_to_good: float
    loss_in_bad: float = 1.0
    loss_in_good: float = 0.0

    def __post_init__(self) -> None:
        for name in ("p_good_to_bad", "p_bad_to_good", "loss_in_bad", "loss_in_good"):
            _check_probability(name, getattr(self, name))


@dataclass(frozen=True, slots=True)
class Impairment:
    """What one direction of a path does to the datagrams crossing it.

    Probabilities are per datagram and independent.  ``jitter`` alone never
    reorders (a datagram is not delivered before one sent earlier on the same
    direction); only ``reorder`` does, by holding a datagram back an extra
    ``uniform(0, reorder_delay)`` seconds while later ones overtake it.
    """

    #: Bernoulli loss probability.
    loss: float = 0.0
    #: Probability a datagram is delivered twice (the copy is impaired on its own).
    duplicate: float = 0.0
    #: Probability a datagram is held back so that later ones overtake it.
    reorder: float = 0.0
    #: Longest extra hold of a reordered datagram, in seconds.
    reorder_delay: float = 0.05
    #: Base one-way delay, in seconds.
    delay: float = 0.0
    #: Extra one-way delay drawn from ``uniform(0, jitter)`` per datagram.
    jitter: float = 0.0
    #: Probability of flipping 1 to 3 random bits of a datagram.
    corrupt: float = 0.0
    #: Largest datagram carried; bigger ones are dropped.  None: no limit.
    mtu: int | None = None
    #: Link rate in bytes per second (serialisation delay, FIFO).  None: infinite.
    rate: float | None = None
    #: Bytes the rate-limited link may queue; a datagram that would overflow is dropped.
    queue_limit: int = 64 * 1024
    #: Virtual-time windows ``(start, end)`` in which every datagram sent is dropped.
    blackholes: tuple[tuple[float, float], ...] = ()
    #: Burst loss on top of ``loss``.  None: no bursts.
    gilbert_elliott: GilbertElliott | None = None

    def __post_init__(self) -> None:
        for name in ("loss", "duplicate", "reorder", "corrupt"):
            _check_probability(name, getattr(self, name))
        if min(self.delay, self.jitter, self.reorder_delay) < 0:
            raise ValueError("delay, jitter and reorder_delay must not be negative")
        if self.mtu is not None and self.mtu < 0:
            raise ValueError("mtu must not be negative")
        if self.rate is not None and self.rate <= 0:
            raise ValueError("rate must be positive (None for no limit)")
        if self.queue_limit < 0:
            raise ValueError("queue_limit must not be negative")
        for start, end in self.blackholes:
            if end < start:
                raise ValueError(f"blackhole window ends before it starts: {(start, end)!r}")


def _check_probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability within 0..1, not {value!r}")


@dataclass(slots=True)
class DirectionStats:
    """Counters of one direction ``(src, dst)``."""

    sent: int = 0
    delivered: int = 0
    #: Dropped by ``loss`` or Gilbert-Elliott.
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    corrupted: int = 0
    #: Dropped for exceeding ``mtu``.
    too_big: int = 0
    #: Dropped by a full rate-limit queue.
    overflowed: int = 0
    #: Dropped inside a blackhole window.
    blackholed: int = 0
    #: Arrived at an address where no host is attached.
    unroutable: int = 0
    bytes_sent: int = 0
    bytes_delivered: int = 0

    @property
    def dropped(self) -> int:
        return self.lost + self.too_big + self.overflowed + self.blackholed + self.unroutable

    def __iadd__(self, other: DirectionStats) -> Self:
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self


TraceKind = Literal["send", "deliver", "drop"]


@dataclass(frozen=True, slots=True)
class TraceRecord:
    """One line of the network's trace (kept when ``SimulatedNetwork(trace=True)``)."""

    time: float
    kind: TraceKind
    src: Address
    dst: Address
    data: bytes
    #: For a drop, why; for a delivery, what was done to it on the way ("" if nothing).
    note: str = ""


class Host(Protocol):
    """Anything attached to the network: fed datagrams and timers, polled for output."""

    def deliver(self, data: bytes, src: Address, now: float) -> None: ...

    def poll_transmit(self, now: float) -> list[Datagram]: ...

    def next_timer(self) -> float | None: ...

    def handle_timer(self, now: float) -> None: ...


@dataclass(slots=True)
class _DirectionState:
    """Mutable per-direction state behind the impairments."""

    stats: DirectionStats = field(default_factory=DirectionStats)
    #: Latest delivery time handed to an in-order datagram (jitter keeps FIFO).
    fifo_until: float = float("-inf")
    #: When the rate-limited link finishes serialising what it already holds.
    link_busy_until: float = float("-inf")
    #: Gilbert-Elliott: in the bad (bursty) state.
    in_bad_state: bool = False


_H = TypeVar("_H", bound=Host)
_E = TypeVar("_E", bound=Event)


class StepLimitExceeded(RuntimeError):
    """``run()`` took more steps than allowed: probably a livelock (a timer that never
    clears, or endless traffic)."""


class SimulatedNetwork:
    """Seeded datagram network; see the module docstring."""

    def __init__(
        self,
        seed: int,
        *,
        clock: VirtualClock | None = None,
        default: Impairment | None = None,
        trace: bool = False,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.clock = clock if clock is not None else VirtualClock()
        self.default_impairment = default if default is not None else Impairment()
        self.hosts: dict[Address, Host] = {}
        self.trace: list[TraceRecord] | None = [] if trace else None
        self.steps = 0
        self._overrides: dict[tuple[Address, Address], Impairment] = {}
        self._directions: dict[tuple[Address, Address], _DirectionState] = {}
        # (deliver_at, seq_no, src, dst, data, note)
        self._in_flight: list[tuple[float, int, Address, Address, bytes, str]] = []
        # (when, seq_no, callback)
        self._calls: list[tuple[float, int, Callable[[], object]]] = []
        self._seq_no = 0

    # -- topology ---------------------------------------------------------------

    @property
    def now(self) -> float:
        return self.clock.now

    def attach(self, address: Address, host: _H) -> _H:
        """Attach ``host`` at ``address`` and return it."""
        if address in self.hosts:
            raise ValueError(f"address {address!r} already has a host")
        self.hosts[address] = host
        return host

    def detach(self, address: Address) -> None:
        """Remove the host at ``address``; datagrams to it become unroutable."""
        del self.hosts[address]

    def set_impairment(
        self, src: Address, dst: Address, impairment: Impairment, *, both_ways: bool = False
    ) -> None:
        """Override the default impairment of ``src -> dst`` (and ``dst -> src``)."""
        self._overrides[(src, dst)] = impairment
        if both_ways:
            self._overrides[(dst, src)] = impairment

    def impairment(self, src: Address, dst: Address) -> Impairment:
        return self._overrides.get((src, dst), self.default_impairment)

    def stats(self, src: Address, dst: Address) -> DirectionStats:
        """Counters of ``src -> dst`` (zeros if nothing was sent that way)."""
        return self._direction(src, dst).stats

    def total_stats(self) -> DirectionStats:
        total = DirectionStats()
        for direction in self._directions.values():
            total += direction.stats
        return total

    @property
    def in_flight(self) -> int:
        """Datagrams sent and not yet delivered."""
        return len(self._in_flight)

    def format_trace(
        self,
        describe: Callable[[bytes], str] | None = None,
        *,
        since: float = float("-inf"),
        until: float = float("inf"),
    ) -> str:
        """The trace between two times, one line per record, for reading a failing seed.
        ``describe`` renders a datagram (e.g. ``lambda d: decode(d).describe()``)."""
        if self.trace is None:
            raise ValueError("no trace kept: create the network with trace=True")
        lines = []
        for r in self.trace:
            if since <= r.time <= until:
                shown = describe(r.data) if describe is not None else f"{len(r.data)} bytes"
                lines.append(f"{r.time:10.4f} {r.kind:7} {r.src}->{r.dst} {r.note:20} {shown}")
        return "\n".join(lines)

    # -- scheduling ---------------------------------------------------------------

    def call_at(self, when: float, callback: Callable[[], object]) -> None:
        """Run ``callback()`` at virtual time ``when`` (for tests acting at set times)."""
        heapq.heappush(self._calls, (when, self._next_seq_no(), callback))

    def call_later(self, delay: float, callback: Callable[[], object]) -> None:
        self.call_at(self.clock.now + delay, callback)

    # -- the wire ------------------------------------------------------------------

    def send(self, src: Address, dst: Address, data: bytes) -> None:
        """Put ``data`` on the wire from ``src`` to ``dst`` now, through the impairments."""
        now = self.clock.now
        imp = self.impairment(src, dst)
        direction = self._direction(src, dst)
        stats = direction.stats
        data = bytes(data)
        stats.sent += 1
        stats.bytes_sent += len(data)
        self._record(now, "send", src, dst, data)

        if any(start <= now < end for start, end in imp.blackholes):
            stats.blackholed += 1
            self._record(now, "drop", src, dst, data, "blackhole")
            return
        if imp.mtu is not None and len(data) > imp.mtu:
            stats.too_big += 1
            self._record(now, "drop", src, dst, data, "too big")
            return
        if self._is_lost(imp, direction):
            stats.lost += 1
            self._record(now, "drop", src, dst, data, "lost")
            return
        departs_at = now
        if imp.rate is not None:
            queued_bytes = max(0.0, direction.link_busy_until - now) * imp.rate
            if queued_bytes + len(data) > imp.queue_limit:
                stats.overflowed += 1
                self._record(now, "drop", src, dst, data, "queue full")
                return
            departs_at = max(now, direction.link_busy_until) + len(data) / imp.rate
            direction.link_busy_until = departs_at
        copies = 1
        if imp.duplicate and self.rng.random() < imp.duplicate:
            stats.duplicated += 1
            copies = 2
        for copy_no in range(copies):
            self._launch(src, dst, data, departs_at, imp, direction, duplicate=copy_no > 0)

    def _launch(
        self,
        src: Address,
        dst: Address,
        data: bytes,
        departs_at: float,
        imp: Impairment,
        direction: _DirectionState,
        *,
        duplicate: bool,
    ) -> None:
        notes = ["duplicate"] if duplicate else []
        if imp.corrupt and data and self.rng.random() < imp.corrupt:
            data = _flip_bits(data, self.rng)
            direction.stats.corrupted += 1
            notes.append("corrupted")
        deliver_at = departs_at + imp.delay
        if imp.jitter:
            deliver_at += self.rng.uniform(0.0, imp.jitter)
        if imp.reorder and self.rng.random() < imp.reorder:
            # Held back off the FIFO: datagrams sent later may overtake it.
            deliver_at += self.rng.uniform(0.0, imp.reorder_delay)
            direction.stats.reordered += 1
            notes.append("reordered")
        else:
            deliver_at = max(deliver_at, direction.fifo_until)
            direction.fifo_until = deliver_at
        item = (deliver_at, self._next_seq_no(), src, dst, data, " ".join(notes))
        heapq.heappush(self._in_flight, item)

    def _is_lost(self, imp: Impairment, direction: _DirectionState) -> bool:
        ge = imp.gilbert_elliott
        if ge is not None:
            switch = ge.p_bad_to_good if direction.in_bad_state else ge.p_good_to_bad
            if self.rng.random() < switch:
                direction.in_bad_state = not direction.in_bad_state
            burst_loss = ge.loss_in_bad if direction.in_bad_state else ge.loss_in_good
            if burst_loss and self.rng.random() < burst_loss:
                return True
        return bool(imp.loss) and self.rng.random() < imp.loss

    # -- the loop --------------------------------------------------------------------

    def run(
        self,
        until: float | None = None,
        *,
        stop: Callable[[], bool] | None = None,
        max_steps: int = 1_000_000,
        max_steps_per_instant: int = 100_000,
    ) -> RunOutcome:
        """Drive every host until ``stop()`` is true (``"stopped"``), nothing at all is
        pending (``"idle"``), or the clock would pass ``until`` (``"until"``; the clock
        is left at ``until``).

        Each step: send what every host has to send, jump the clock to the earliest
        deadline, then deliver what is due, run due calls and fire due host timers.
        Raises :class:`StepLimitExceeded` after ``max_steps`` steps, or after
        ``max_steps_per_instant`` steps without the clock moving (a deadline in the
        past that its owner never clears).
        """
        steps = 0
        steps_this_instant = 0
        while True:
            self._transmit_all()
            if stop is not None and stop():
                return "stopped"
            deadline = self._next_deadline()
            if deadline is None:
                return "idle"
            if until is not None and deadline > until:
                self.clock.advance_to(until)
                return "until"
            steps += 1
            self.steps += 1
            steps_this_instant = steps_this_instant + 1 if deadline <= self.now else 0
            if steps > max_steps or steps_this_instant > max_steps_per_instant:
                raise StepLimitExceeded(
                    f"seed {self.seed}: {steps} steps ({steps_this_instant} at this instant),"
                    f" stuck at t={self.now}"
                )
            now = self.clock.advance_to(deadline)
            self._deliver_due(now)
            self._call_due(now)
            for host in list(self.hosts.values()):
                timer = host.next_timer()
                if timer is not None and timer <= now:
                    host.handle_timer(now)

    def _transmit_all(self) -> None:
        now = self.clock.now
        for address, host in list(self.hosts.items()):
            for data, dst in host.poll_transmit(now):
                self.send(address, dst, data)

    def _next_deadline(self) -> float | None:
        deadlines = [host.next_timer() for host in self.hosts.values()]
        if self._in_flight:
            deadlines.append(self._in_flight[0][0])
        if self._calls:
            deadlines.append(self._calls[0][0])
        pending = [d for d in deadlines if d is not None]
        return min(pending) if pending else None

    def _deliver_due(self, now: float) -> None:
        while self._in_flight and self._in_flight[0][0] <= now:
            _, _, src, dst, data, note = heapq.heappop(self._in_flight)
            stats = self._direction(src, dst).stats
            host = self.hosts.get(dst)
            if host is None:
                stats.unroutable += 1
                self._record(now, "drop", src, dst, data, "unroutable")
                continue
            stats.delivered += 1
            stats.bytes_delivered += len(data)
            self._record(now, "deliver", src, dst, data, note)
            host.deliver(data, src, now)
            # The engine's contract: after every input its owner transmits, so a
            # flight arriving at one instant is answered segment by segment.
            for out, to in host.poll_transmit(now):
                self.send(dst, to, out)

    def _call_due(self, now: float) -> None:
        while self._calls and self._calls[0][0] <= now:
            _, _, callback = heapq.heappop(self._calls)
            callback()

    # -- helpers ---------------------------------------------------------------------

    def _direction(self, src: Address, dst: Address) -> _DirectionState:
        direction = self._directions.get((src, dst))
        if direction is None:
            direction = self._directions[(src, dst)] = _DirectionState()
        return direction

    def _next_seq_no(self) -> int:
        self._seq_no += 1
        return self._seq_no

    def _record(
        self, time: float, kind: TraceKind, src: Address, dst: Address, data: bytes, note: str = ""
    ) -> None:
        if self.trace is not None:
            self.trace.append(TraceRecord(time, kind, src, dst, data, note))


def _flip_bits(data: bytes, rng: random.Random) -> bytes:
    """``data`` with 1 to 3 distinct random bits flipped."""
    corrupted = bytearray(data)
    nbits = len(corrupted) * 8
    for bit in rng.sample(range(nbits), min(nbits, rng.randint(1, 3))):
        corrupted[bit >> 3] ^= 1 << (bit & 7)
    return bytes(corrupted)


# -- hosts driving the sans-IO engine -------------------------------------------------

EventHook = Callable[["Connection", Event], None]


class _EngineHost:
    """Keeps, per Connection, every event it produced, in order, and hands each to
    ``on_event(conn, event)`` as it is drained (a test may react: echo, close...).
    Also logs each state the connection is seen in after an input, with the time."""

    def __init__(self, on_event: EventHook | None) -> None:
        self.on_event = on_event
        self.events: dict[Connection, list[Event]] = {}
        self.states: dict[Connection, list[tuple[float, State]]] = {}

    def drain_events(self, conn: Connection) -> None:
        log = self.events.setdefault(conn, [])
        while (event := conn.next_event()) is not None:
            log.append(event)
            if self.on_event is not None:
                self.on_event(conn, event)

    def received(self, conn: Connection) -> bytes:
        """Every byte ``conn`` delivered to the application so far."""
        return b"".join(e.data for e in self.events.get(conn, ()) if isinstance(e, DataReceived))

    def events_of(self, conn: Connection, kind: type[_E]) -> list[_E]:
        """The events of ``conn`` of one type, in order."""
        return [e for e in self.events.get(conn, ()) if isinstance(e, kind)]

    def state_names(self, conn: Connection) -> list[str]:
        """The states ``conn`` was seen in, in order, as the RFC prints them."""
        return [str(state) for _, state in self.states.get(conn, ())]

    def _observe(self, conn: Connection, now: float) -> None:
        self.drain_events(conn)
        log = self.states.setdefault(conn, [])
        if not log or log[-1][1] is not conn.state:
            log.append((now, conn.state))


class ConnectionHost(_EngineHost):
    """One Connection talking to one peer.

    Datagrams from any other address are dropped and counted in ``strays``.  Once the
    connection ``is_closed`` its owner has dropped it: the port is closed, and
    datagrams that still arrive get the RFC 9293 3.10.7.1 RST reply (``reset_config``
    picks its checksum mode) unless ``reset_when_closed`` is false.
    """

    def __init__(
        self,
        conn: Connection,
        address: Address,
        peer_address: Address,
        *,
        on_event: EventHook | None = None,
        reset_when_closed: bool = True,
        reset_config: Config | None = None,
    ) -> None:
        super().__init__(on_event)
        self.conn = conn
        self.address = address
        self.peer_address = peer_address
        self.events[conn] = []
        self.reset_when_closed = reset_when_closed
        self.reset_config = reset_config
        self.strays = 0
        self._resets: list[bytes] = []

    @property
    def log(self) -> list[Event]:
        """The events of ``conn``."""
        return self.events[self.conn]

    def deliver(self, data: bytes, src: Address, now: float) -> None:
        if src != self.peer_address:
            self.strays += 1
            return
        if self.conn.is_closed:
            if self.reset_when_closed:
                reply = _reset_reply(data, self.reset_config)
                if reply is not None:
                    self._resets.append(reply)
            return
        self.conn.receive_datagram(data, now)
        self._observe(self.conn, now)

    def poll_transmit(self, now: float) -> list[Datagram]:
        self._observe(self.conn, now)  # user calls (abort...) may have produced events
        out = [(data, self.peer_address) for data in self.conn.datagrams_to_send(now)]
        out.extend((data, self.peer_address) for data in self._resets)
        self._resets.clear()
        self._observe(self.conn, now)
        return out

    def next_timer(self) -> float | None:
        return None if self.conn.is_closed else self.conn.next_timer()

    def handle_timer(self, now: float) -> None:
        self.conn.handle_timer(now)
        self._observe(self.conn, now)


class ListenerHost(_EngineHost):
    """A server: one Listener and the Connections it accepted, demultiplexed by the
    peer's address (RFC 9293 ports are informational here, as behind NAT).

    A datagram from a peer with no live Connection goes to the Listener, which
    returns a new Connection for a valid SYN or queues its RST reply.  Connections
    that become ``is_closed`` are dropped from ``connections``; ``accepted`` keeps
    every one ever returned, in order.
    """

    def __init__(
        self,
        listener: Listener,
        address: Address,
        *,
        on_event: EventHook | None = None,
        on_accept: Callable[[Connection], object] | None = None,
    ) -> None:
        super().__init__(on_event)
        self.listener = listener
        self.address = address
        self.on_accept = on_accept
        #: Live connections by peer address.
        self.connections: dict[Address, Connection] = {}
        self.accepted: list[Connection] = []
        self.peer_of: dict[Connection, Address] = {}

    def deliver(self, data: bytes, src: Address, now: float) -> None:
        conn = self.connections.get(src)
        if conn is None:
            conn = self.listener.receive_datagram(data, src, now)
            if conn is None:
                return
            self.connections[src] = conn
            self.accepted.append(conn)
            self.peer_of[conn] = src
            if self.on_accept is not None:
                self.on_accept(conn)
        else:
            conn.receive_datagram(data, now)
            if conn.superseded:
                # RFC 6191: a new SYN ended the TIME-WAIT incarnation.
                self._observe(conn, now)
                self._drop_if_closed(src, conn)
                self.deliver(data, src, now)
                return
        self._observe(conn, now)
        self._drop_if_closed(src, conn)

    def poll_transmit(self, now: float) -> list[Datagram]:
        out = list(self.listener.datagrams_to_send())
        for peer, conn in list(self.connections.items()):
            self._observe(conn, now)
            out.extend((data, peer) for data in conn.datagrams_to_send(now))
            self._observe(conn, now)
            self._drop_if_closed(peer, conn)
        return out

    def next_timer(self) -> float | None:
        timers = [t for c in self.connections.values() if (t := c.next_timer()) is not None]
        return min(timers) if timers else None

    def handle_timer(self, now: float) -> None:
        for peer, conn in list(self.connections.items()):
            timer = conn.next_timer()
            if timer is not None and timer <= now:
                conn.handle_timer(now)
                self._observe(conn, now)
                self._drop_if_closed(peer, conn)

    def _drop_if_closed(self, peer: Address, conn: Connection) -> None:
        if conn.is_closed and self.connections.get(peer) is conn:
            del self.connections[peer]


class ClosedPortHost:
    """An address with no listener: every datagram gets the RFC 9293 3.10.7.1 RST
    reply (a SYN here is refused), nothing else."""

    def __init__(self, address: Address, *, config: Config | None = None) -> None:
        self.address = address
        self.config = config
        self.resets_sent = 0
        self._replies: list[Datagram] = []

    def deliver(self, data: bytes, src: Address, now: float) -> None:
        reply = _reset_reply(data, self.config)
        if reply is not None:
            self._replies.append((reply, src))

    def poll_transmit(self, now: float) -> list[Datagram]:
        replies, self._replies = self._replies, []
        self.resets_sent += len(replies)
        return replies

    def next_timer(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None:
        pass


def _reset_reply(data: bytes, config: Config | None) -> bytes | None:
    # Imported here so the network itself works without the engine.
    from rudp.core.listener import reset_reply

    return reset_reply(data, config if config is not None else Config())
