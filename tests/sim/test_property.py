"""The big property run (DESIGN.md test tier 3): thousands of seeded scenarios over a
hostile simulated network, each a random mix of impairments (Bernoulli loss up to 30 %
or Gilbert-Elliott bursts, duplication, reordering, delay and jitter, sometimes a rate
limit, a blackhole window or corruption), random writes both ways, random reader stalls
on each side, random settings, and one of every close order.

For every seed: both directions deliver exactly the bytes written, once, in order; each
connection ends in the states its close order implies and is CLOSED; each application
sees ConnectionTerminated exactly once, last; the run goes idle within bounded virtual
time.  An abort mid-stream must reset the peer (or find it already closing) with no byte
delivered twice or out of order.  A side may give up (TimeoutError) only when a trace of the
run shows it earned it: a full user timeout, SYN retry series or keepalive series
without hearing what would have moved it on (then its peer may wait forever, as TCP
without keepalive does, and only "a prefix, in order, once" is checked).  When
corruption slipped past the 16-bit checksum only "never raises" and "never more bytes
than were written" are checked: a forged segment may carry forged bytes, ACKs or FINs,
which no transport can tell.

RUDP_PROPERTY_SEEDS sets the number of seeds (default 2000).  ``replay(seed)`` plays
and judges one seed again (``trace=True`` keeps the datagrams); ``-s`` prints the
figures.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from test_pairs import CLIENT, SERVER, FixedIsn, count_undetectable_corruptions

from rudp.core.config import Config
from rudp.core.connection import Connection
from rudp.core.errors import LocalProtocolError, MalformedSegment
from rudp.core.events import (
    Connected,
    ConnectionTerminated,
    DataReceived,
    EofReceived,
    Event,
)
from rudp.core.listener import Listener
from rudp.core.segment import ACK, RST, SYN, decode
from rudp.core.seq import seq_gt, seq_le, seq_sub
from rudp.testing import (
    ConnectionHost,
    GilbertElliott,
    Impairment,
    ListenerHost,
    SimulatedNetwork,
)

PROPERTY_SEEDS = int(os.environ.get("RUDP_PROPERTY_SEEDS", "2000"))
#: Every scenario must be idle (nothing in flight, no timer armed) by then.
MAX_VIRTUAL_SECONDS = 3600.0

CloseOrder = Literal[
    "client-first",
    "server-first",
    "simultaneous",
    "client-half-close",
    "server-half-close",
    "both-half-close",
    "client-aborts",
    "server-aborts",
]
CLOSE_ORDERS: tuple[CloseOrder, ...] = get_args(CloseOrder)
Name = Literal["client", "server"]


# -- scenarios ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SideScript:
    """What one application does: its writes and reader stalls, times relative to when
    it got its connection, and the Config of its engine."""

    data: bytes
    writes: tuple[tuple[float, int], ...]  # (at, size)
    stalls: tuple[tuple[float, float], ...]  # (at, duration): paused for that long
    config: Config

    @property
    def writes_end(self) -> float:
        return self.writes[-1][0] if self.writes else 0.0


@dataclass(frozen=True)
class Scenario:
    seed: int
    family: str
    up: Impairment  # client -> server
    down: Impairment  # server -> client
    client: SideScript
    server: SideScript
    order: CloseOrder
    abort_at: float  # for the *-aborts orders, relative to the aborter's start

    @property
    def corrupting(self) -> bool:
        return self.up.corrupt > 0 or self.down.corrupt > 0

    @property
    def aborter(self) -> Name | None:
        if self.order == "client-aborts":
            return "client"
        if self.order == "server-aborts":
            return "server"
        return None

    def describe(self) -> str:
        def side(s: SideScript) -> str:
            c = s.config
            return (
                f"{len(s.data)} B in {len(s.writes)} writes until {s.writes_end:.2f}s,"
                f" stalls {[(round(a, 2), round(d, 2)) for a, d in s.stalls]},"
                f" mss={c.max_segment_size} rcvbuf={c.receive_buffer} sack={c.sack}"
                f" ts={c.timestamps} wscale={c.window_scale} dack={c.delayed_ack}"
                f" cc={c.congestion_control} keepalive={c.keepalive} pacing={c.pacing}"
                f" pmtud={c.pmtud and c.pmtud_max_segment_size}"
            )

        abort = f" at {self.abort_at:.2f}s" if self.aborter else ""
        return (
            f"seed={self.seed} [{self.family}] order={self.order}{abort}\n"
            f"  up:   {self.up}\n  down: {self.down}\n"
            f"  client: {side(self.client)}\n  server: {side(self.server)}"
        )


def make_scenario(seed: int) -> Scenario:
    """The seed's impairments, traffic, stalls, settings and close order."""
    rng = random.Random(f"property-{seed}")
    family = rng.choice(["bernoulli", "bernoulli", "bursty", "mixed"])
    up = make_impairment(rng, family)
    down = up if rng.random() < 0.6 else make_impairment(rng, family)
    order = rng.choice(CLOSE_ORDERS)
    aborting = order.endswith("aborts")
    client, server = make_side(rng, aborting), make_side(rng, aborting)
    if client.config.pmtud or server.config.pmtud:
        # RFC 8899: a path narrower than the probes (they are dropped as too big).
        mtu = rng.choice([None, 1500, 3000, 9000])
        up, down = dataclasses.replace(up, mtu=mtu), dataclasses.replace(down, mtu=mtu)
    abort_at = rng.uniform(0.0, 1.2 * max(client.writes_end, server.writes_end, 0.5))
    return Scenario(seed, family, up, down, client, server, order, abort_at)


def make_impairment(rng: random.Random, family: str) -> Impairment:
    loss = rng.uniform(0.0, 0.3) if family != "bursty" else rng.uniform(0.0, 0.02)
    imp = Impairment(
        loss=loss,
        duplicate=rng.choice([0.0, 0.0, 0.02, 0.1]),
        reorder=rng.choice([0.0, 0.0, 0.05, 0.2]),
        reorder_delay=rng.uniform(0.001, 0.1),
        delay=rng.uniform(0.0005, 0.08),
        jitter=rng.choice([0.0, rng.uniform(0.0, 0.03)]),
    )
    if family in ("bursty", "mixed") or rng.random() < 0.1:
        imp = dataclasses.replace(
            imp,
            gilbert_elliott=GilbertElliott(rng.uniform(0.005, 0.05), rng.uniform(0.2, 0.8)),
        )
    if family == "mixed" or rng.random() < 0.1:
        # A slow link with a bounded queue: congestion drops of its own.
        imp = dataclasses.replace(
            imp,
            rate=rng.choice([3e4, 1e5, 1e6, 1e7]),
            queue_limit=rng.choice([4_000, 16_000, 64_000]),
        )
    if rng.random() < 0.15:
        start = rng.uniform(0.0, 4.0)
        imp = dataclasses.replace(imp, blackholes=((start, start + rng.uniform(0.1, 8.0)),))
    if rng.random() < 0.08:
        imp = dataclasses.replace(imp, corrupt=rng.uniform(0.005, 0.05))
    return imp


def make_config(rng: random.Random, aborting: bool) -> Config:
    if rng.random() < 0.25 and not aborting:
        return Config()
    # An abort may leave the peer idle with nothing to send: keepalive (RFC 1122
    # 4.2.3.6) is how it learns, from the RST the closed port answers a probe with.
    keepalive = aborting or rng.random() < 0.15
    return Config(
        max_segment_size=rng.choice([1400, 1400, 536, 200]),
        receive_buffer=(buffer := rng.choice([256 * 1024, 64 * 1024, 16 * 1024, 4096, 1500])),
        # Half fixed (small windows: zero windows and persist probes), half
        # autotuned from that start.
        receive_buffer_max=buffer if rng.random() < 0.5 else max(buffer, 4 << 20),
        sack=rng.random() < 0.7,
        timestamps=rng.random() < 0.7,
        window_scale=rng.random() < 0.7,
        delayed_ack=rng.choice([0.04, 0.0, 0.2]),
        initial_window=rng.choice([10, 4, 1]),
        congestion_control=rng.choice(["newreno", "cubic"]),
        keepalive=keepalive,
        keepalive_idle=rng.uniform(5.0, 30.0),
        keepalive_interval=rng.uniform(1.0, 10.0),
        pacing=rng.random() < 0.2,
        pmtud=rng.random() < 0.15,
        pmtud_max_segment_size=rng.choice([4000, 9000, 65507]),
    )


def make_side(rng: random.Random, aborting: bool) -> SideScript:
    # Log-uniform sizes up to ~100 KB, sometimes nothing at all.
    size = 0 if rng.random() < 0.07 else int(2 ** rng.uniform(0, 16.6))
    ncuts = min(max(size - 1, 0), rng.randint(0, 12))
    cuts = sorted(rng.sample(range(1, size), ncuts)) if ncuts else []
    at = 0.0
    writes = []
    for lo, hi in itertools.pairwise([0, *cuts, size]):
        at += rng.expovariate(1 / 0.3) if rng.random() < 0.7 else 0.0
        writes.append((at, hi - lo))
    stalls = []
    stall_at = 0.0
    for _ in range(rng.choice([0, 0, 1, 2, 3])):
        stall_at += rng.uniform(0.0, 3.0)
        duration = min(rng.expovariate(1 / 2.0), 30.0)
        stalls.append((stall_at, duration))
        stall_at += duration
    return SideScript(rng.randbytes(size), tuple(writes), tuple(stalls), make_config(rng, aborting))


# -- applications -------------------------------------------------------------------------


@dataclass
class App:
    """One side's application: plays its SideScript, reacts to events, and logs
    everything the engine told it, with the virtual time."""

    name: Name
    net: SimulatedNetwork
    script: SideScript
    peer_bytes: int  # how many bytes the peer will write
    order: CloseOrder
    rng: random.Random
    conn: Connection | None = None
    started_at: float = 0.0
    writes_done: bool = False
    received: bytearray = field(default_factory=bytearray)
    events: list[tuple[float, Event]] = field(default_factory=list)
    #: Each connection's state changes, timed (fed by its StateLog).
    states_of: dict[Connection, list[tuple[float, str]]] = field(default_factory=dict)
    closed_at: float | None = None  # close() called
    aborted_at: float | None = None
    eof_before_close: bool = False
    #: LocalProtocolError from a user call where none may come.
    misuse: list[str] = field(default_factory=list)
    on_ready: Callable[[], None] | None = None  # simultaneous close: both ready

    @property
    def states(self) -> list[tuple[float, str]]:
        """The state changes of the application's connection."""
        return self.states_of.get(self.conn, []) if self.conn is not None else []

    # The parts of the close order that concern this side.
    @property
    def closes_first(self) -> bool:
        return self.order == f"{self.name}-first"

    @property
    def closes_on_eof(self) -> bool:
        other = "server" if self.name == "client" else "client"
        return self.order in (f"{other}-first", f"{other}-half-close")

    @property
    def half_closes(self) -> bool:
        return self.order in (f"{self.name}-half-close", "both-half-close") or self.aborting_order

    @property
    def aborting_order(self) -> bool:
        return self.order.endswith("aborts")

    def start(self, conn: Connection, abort_at: float | None) -> None:
        """Play the script on ``conn`` (again, on a new connection, if the server's
        first handshake died before the application ever saw it)."""
        self.conn = conn
        self.started_at = now = self.net.now
        self.events.clear()
        self.received.clear()
        self.writes_done = False
        offset = 0
        for at, size in self.script.writes:
            chunk = self.script.data[offset : offset + size]
            offset += size
            self.net.call_at(now + at, self._for(conn, lambda chunk=chunk: self._write(chunk)))
        self.net.call_at(now + self.script.writes_end, self._for(conn, self._finish_writing))
        for at, duration in self.script.stalls:
            self.net.call_at(now + at, self._for(conn, conn.pause_reading))
            self.net.call_at(now + at + duration, self._for(conn, conn.resume_reading))
        if abort_at is not None:
            self.net.call_at(now + abort_at, self._for(conn, self._abort))

    def _for(self, conn: Connection, action: Callable[[], object]) -> Callable[[], None]:
        """``action``, if ``conn`` is still the application's connection then."""

        def guarded() -> None:
            if self.conn is conn:
                action()

        return guarded

    def accept(self, conn: Connection, abort_at: float | None) -> None:
        """The Listener handed the server application a connection."""
        if self.aborted_at is not None:
            conn.abort()  # the application is gone: it resets whatever comes
        elif self.conn is None or (self.conn.is_closed and not self.connected):
            self.start(conn, abort_at)

    def _user_call(self, what: str, call: Callable[[], object]) -> None:
        try:
            call()
        except LocalProtocolError as exc:
            # After an abort (ours or the peer's RST), the application would learn of
            # it from connection_lost and stop; anywhere else it is a bug.
            if not self.aborting_order:
                self.misuse.append(f"{what} at {self.net.now:.3f}: {exc}")

    def _write(self, chunk: bytes) -> None:
        conn = self.conn
        assert conn is not None
        if self.aborted_at is None and not self.terminated:
            self._user_call("send", lambda: conn.send(chunk))

    def _finish_writing(self) -> None:
        conn = self.conn
        assert conn is not None
        self.writes_done = True
        if self.half_closes and self.aborted_at is None and not self.terminated:
            self._user_call("shutdown_write", conn.shutdown_write)
        self._maybe_close()

    def _abort(self) -> None:
        assert self.conn is not None
        self.aborted_at = self.net.now
        self.conn.abort()

    @property
    def terminated(self) -> bool:
        return any(isinstance(e, ConnectionTerminated) for _, e in self.events)

    @property
    def eof(self) -> bool:
        return any(isinstance(e, EofReceived) for _, e in self.events)

    @property
    def connected(self) -> bool:
        return any(isinstance(e, Connected) for _, e in self.events)

    @property
    def ready(self) -> bool:
        """Connected, wrote everything and read everything the peer will write."""
        return self.connected and self.writes_done and len(self.received) == self.peer_bytes

    def on_event(self, conn: Connection, event: Event) -> None:
        if conn is not self.conn:
            return  # a handshake the application was never given (see accept)
        self.events.append((self.net.now, event))
        if isinstance(event, DataReceived):
            self.received += event.data
        self._maybe_close()

    def _maybe_close(self) -> None:
        if self.closed_at is not None or self.aborted_at is not None or self.terminated:
            return
        passive = self.closes_on_eof and self.eof and self.writes_done
        if (self.closes_first and self.ready) or passive:
            self._close_soon()
        elif self.order == "simultaneous" and self.ready and self.on_ready is not None:
            self.on_ready()

    def _close_soon(self) -> None:
        # An application reacts after a moment, not within the event callback.
        self.closed_at = float("inf")  # decided; the time is set when it happens
        self.net.call_later(self.rng.uniform(0.0, 0.05), self.close)

    def close(self) -> None:
        assert self.conn is not None
        self.closed_at = self.net.now
        self.eof_before_close = self.eof
        self._user_call("close", self.conn.close)


class StateLog:
    """A structlog-like logger for one Connection: keeps its state changes, timed."""

    def __init__(self, net: SimulatedNetwork) -> None:
        self.net = net
        self.states: list[tuple[float, str]] = []

    def info(self, event: str, **fields: Any) -> None:
        if event == "state_change":
            self.states.append((self.net.now, fields["new"]))

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None  # debug(), warning()...: not needed here


# -- running one scenario ------------------------------------------------------------------


@dataclass
class Outcome:
    scenario: Scenario
    failures: list[str]
    virtual_seconds: float
    datagrams: int
    steps: int
    undetectable_corruptions: int = 0
    #: Sides that gave up (TimeoutError); unearned give-ups are also failures.
    gave_up: list[str] = field(default_factory=list)
    resets: int = 0  # aborts whose peer got ConnectionResetError
    #: Failures UNDELIVERED_AT_CLOSE_BUG explains (sides paused when they closed).
    known_bug: list[str] = field(default_factory=list)


@dataclass
class Run:
    outcome: Outcome
    net: SimulatedNetwork
    client: App
    server: App
    client_conn: Connection
    server_host: ListenerHost


def run(scenario: Scenario, *, trace: bool = False) -> Run:
    """Play ``scenario``; the Outcome lists every broken expectation."""
    net = SimulatedNetwork(scenario.seed, default=scenario.up, trace=trace)
    net.set_impairment(SERVER, CLIENT, scenario.down)
    rng = random.Random(f"apps-{scenario.seed}")
    client = App(
        "client", net, scenario.client, len(scenario.server.data), scenario.order, rng
    )
    server = App(
        "server", net, scenario.server, len(scenario.client.data), scenario.order, rng
    )
    abort_at = {scenario.aborter: scenario.abort_at} if scenario.aborter else {}

    def both_close() -> None:
        client.on_ready = server.on_ready = None
        at = net.now + rng.uniform(0.0, 0.05)
        net.call_at(at, client.close)
        net.call_at(at, server.close)

    def on_ready() -> None:
        if client.ready and server.ready:
            both_close()

    client.on_ready = server.on_ready = on_ready

    server_logs: list[StateLog] = []

    def new_server_log(peer: object) -> StateLog:
        server_logs.append(StateLog(net))
        return server_logs[-1]

    def on_accept(conn: Connection) -> None:
        # The Listener builds the Connection (and asks for its logger) just before.
        server.states_of[conn] = server_logs[-1].states
        server.accept(conn, abort_at.get("server"))

    listener = Listener(
        scenario.server.config,
        local_port=SERVER[1],
        isn_source=FixedIsn((scenario.seed * 7919) & 0xFFFFFFFF),
        logger_factory=new_server_log,
    )
    server_host = net.attach(
        SERVER,
        ListenerHost(listener, SERVER, on_event=server.on_event, on_accept=on_accept),
    )
    client_log = StateLog(net)
    conn = Connection(
        scenario.client.config,
        isn=(scenario.seed * 104729 + 2**31) & 0xFFFFFFFF,
        local_port=CLIENT[1],
        remote_port=SERVER[1],
        logger=client_log,
    )
    client.states_of[conn] = client_log.states
    net.attach(CLIENT, ConnectionHost(conn, CLIENT, SERVER, on_event=client.on_event))
    conn.connect(net.now)
    client.start(conn, abort_at.get("client"))

    failures: list[str] = []
    try:
        outcome = net.run(until=MAX_VIRTUAL_SECONDS)
    except Exception as exc:  # the engine must never raise on network input
        failures.append(f"raised {exc!r}")
        outcome = "raised"
    if outcome == "until":
        failures.append(f"not idle after {MAX_VIRTUAL_SECONDS:.0f} virtual seconds")
    result = Outcome(scenario, failures, net.now, net.total_stats().sent, net.steps)
    return Run(result, net, client, server, conn, server_host)


# -- judging a run ----------------------------------------------------------------------------

# Engine bug, reported to the lead (reproducers: the *_while_paused tests in
# tests/core/test_engine_fuzz.py): a connection that reaches CLOSED while its application
# has paused reading loses the unread bytes and the pending EOF -- ConnectionTerminated
# comes first, is_closed lets the owner drop the engine (ListenerHost does), and an owner
# that keeps it (ConnectionHost) gets DataReceived after ConnectionTerminated on
# resume_reading.  While True, a side paused when its connection closed is held only to
# "a prefix, in order, once"; such seeds are counted and printed, not failed.
UNDELIVERED_AT_CLOSE_BUG = False


def judge(played: Run) -> None:
    """Fill ``played.outcome.failures`` with every broken expectation."""
    outcome, scenario = played.outcome, played.outcome.scenario
    client, server = played.client, played.server
    failures = outcome.failures
    if any(f.startswith("raised") for f in failures):
        return
    if scenario.corrupting and played.net.trace is not None:
        outcome.undetectable_corruptions = count_undetectable_corruptions(played.net)
        if outcome.undetectable_corruptions:
            failures += check_forged_world(client, server)
            return
    outcome.gave_up = [app.name for app in (client, server) if terminated_with(app, TimeoutError)]
    for app in (client, server):
        if app.name in outcome.gave_up:
            why = unearned_timeout(played, app)
            if why:
                failures.append(f"{app.name} gave up, yet {why}")
    if scenario.aborter:
        peer = server if scenario.aborter == "client" else client
        outcome.resets = int(terminated_with(peer, ConnectionResetError))
    # A side that rightly gave up leaves its peer waiting, maybe forever (TCP without
    # keepalive never learns): then only what each side did get is judged.
    lenient = bool(outcome.gave_up)
    accepted = played.server_host.accepted
    # More than one server connection is right only when the earlier ones died in the
    # handshake (a retransmitted SYN then opens a new one) or were refused by an
    # application that had aborted.
    connected = [c for c in accepted if played.server_host.events_of(c, Connected)]
    if len(connected) > 1 and scenario.aborter is None:
        failures.append(f"{len(connected)} server connections connected")
    if not lenient:
        failures += [f"server connection {c!r} not closed" for c in accepted if not c.is_closed]
    found = check_app(client, server, scenario, played.client_conn, lenient=lenient)
    found += check_app(server, client, scenario, server.conn, lenient=lenient)
    if scenario.aborter:
        found += check_abort(client, server, scenario)
    elif not lenient:
        found += check_close_order(client, server, scenario)
    for failure in found:
        name = failure.split(":", 1)[0]
        app = client if name == "client" else server
        if name in ("client", "server") and paused_at_close(app) and explained(failure):
            outcome.known_bug.append(failure)
        else:
            failures.append(failure)


def explained(failure: str) -> bool:
    """What UNDELIVERED_AT_CLOSE_BUG does to a side paused when it closed: bytes or the
    EOF never delivered, or delivered after ConnectionTerminated.  (That what it got is
    a prefix, in order, once, is still required.)"""
    return any(
        f": {what}" in failure
        for what in ("got ", "no EofReceived", "data after ConnectionTerminated")
    )

def terminated_with(app: App, kind: type[BaseException]) -> bool:
    return any(
        isinstance(e, ConnectionTerminated) and isinstance(e.error, kind) for _, e in app.events
    )


def paused_at_close(app: App) -> bool:
    """The application had paused reading when its connection reached CLOSED."""
    if not UNDELIVERED_AT_CLOSE_BUG:
        return False
    closed = [t for t, state in app.states if state == "CLOSED"]
    if not closed:
        return False
    at = closed[-1] - app.started_at
    return any(start <= at < start + duration for start, duration in app.script.stalls)


def check_app(
    app: App, peer: App, scenario: Scenario, conn: Connection | None, *, lenient: bool
) -> list[str]:
    """What every application may count on, whatever the close order."""
    name = app.name
    failures = [f"{name}: {m}" for m in app.misuse]
    kinds = [type(e) for _, e in app.events]
    got, sent = bytes(app.received), peer.script.data
    if not sent.startswith(got):
        failures.append(f"{name}: {len(got)} bytes received are not a prefix of the {len(sent)}")
    if not all(e.data for _, e in app.events if isinstance(e, DataReceived)):
        failures.append(f"{name}: empty DataReceived")
    if kinds.count(Connected) > 1 or kinds.count(EofReceived) > 1:
        failures.append(f"{name}: events {summary(app)}")
    if EofReceived in kinds and DataReceived in kinds[kinds.index(EofReceived) :]:
        failures.append(f"{name}: data after EOF: {summary(app)}")
    if conn is None:
        if not lenient and scenario.aborter is None:
            failures.append(f"{name}: no connection")
        return failures
    # ConnectionTerminated exactly once, last -- once the application saw Connected
    # (a handshake the server dropped in SYN-RECEIVED was never the user's business).
    terminations = kinds.count(ConnectionTerminated)
    expected = 1 if (Connected in kinds or name == "client") else terminations
    if lenient:
        expected = min(terminations, 1)
    if terminations != expected:
        failures.append(f"{name}: ConnectionTerminated x{terminations}: {summary(app)}")
    elif terminations and kinds[-1] is not ConnectionTerminated:
        trailing = kinds[kinds.index(ConnectionTerminated) + 1 :]
        what = "data" if set(trailing) == {DataReceived} else "events"
        failures.append(f"{name}: {what} after ConnectionTerminated: {summary(app)}")
    if not conn.is_closed and not (lenient and not terminations):
        failures.append(f"{name}: ends {conn.state}, not closed: {summary(app)}")
    return failures


def check_abort(client: App, server: App, scenario: Scenario) -> list[str]:
    """The aborter ends with None (its own abort), or was reset first; the peer is reset,
    or had already sent its FIN (an RST then ends CLOSING, LAST-ACK and TIME-WAIT
    quietly, RFC 9293 3.10.7.4), or was refused during the handshake.  Bytes: a prefix,
    in order, once (check_app)."""
    failures = []
    aborter = client if scenario.aborter == "client" else server
    peer = server if aborter is client else client
    for app, allowed in (
        (aborter, (ConnectionResetError, TimeoutError)),
        (peer, (ConnectionResetError, ConnectionRefusedError, TimeoutError)),
    ):
        for _, e in app.events:
            if isinstance(e, ConnectionTerminated) and e.error is not None:
                if not isinstance(e.error, allowed):
                    failures.append(f"{app.name}: ended with {e.error!r}: {summary(app)}")
    return failures


def check_close_order(client: App, server: App, scenario: Scenario) -> list[str]:
    """Exact delivery, a clean end and the states the close order implies."""
    failures: list[str] = []
    for app, peer in ((client, server), (server, client)):
        ended = [e for _, e in app.events if isinstance(e, ConnectionTerminated)]
        if ended and ended[0].error is not None:
            failures.append(f"{app.name}: ended with {ended[0].error!r}: {summary(app)}")
        if bytes(app.received) != peer.script.data:
            failures.append(
                f"{app.name}: got {len(app.received)}/{len(peer.script.data)} bytes:"
                f" {summary(app)}"
            )
        # EOF reaches every application still reading when the peer's FIN is in order.
        if not app.eof and not (app.closed_at is not None and not app.eof_before_close):
            failures.append(f"{app.name}: no EofReceived: {summary(app)}")
    failures += check_states(client, server, scenario.order)
    return failures


ACTIVE_ONLY = {"FIN-WAIT-1", "FIN-WAIT-2", "CLOSING", "TIME-WAIT"}
PASSIVE_ONLY = {"CLOSE-WAIT", "LAST-ACK"}


def check_states(client: App, server: App, order: CloseOrder) -> list[str]:
    """RFC 9293 3.6: who sent the first FIN decides the path through figure 5."""
    failures = []
    firsts: dict[str, set[str]] = {
        "client-first": {"client"},
        "server-first": {"server"},
        "client-half-close": {"client"},
        "server-half-close": {"server"},
    }
    for app in (client, server):
        states = [s for _, s in app.states]
        if not states or states[-1] != "CLOSED":
            failures.append(f"{app.name}: states {states} do not end CLOSED")
            continue
        seen = set(states)
        if order in firsts:
            active = app.name in firsts[order]
            if active and (seen & PASSIVE_ONLY or "FIN-WAIT-1" not in seen):
                failures.append(f"{app.name} closed first but went {states}")
            if not active and (seen & ACTIVE_ONLY or not {"CLOSE-WAIT", "LAST-ACK"} <= seen):
                failures.append(f"{app.name} closed second but went {states}")
        elif "FIN-WAIT-1" not in seen:
            # Simultaneous close or both half-closing: whoever hears the other's FIN
            # first may pass CLOSE-WAIT, but both send a FIN of their own.
            if not {"CLOSE-WAIT", "LAST-ACK"} <= seen:
                failures.append(f"{app.name}: states {states} send no FIN")
        if order == "simultaneous" and seen & PASSIVE_ONLY:
            # Both called close() at the same instant, before either FIN could arrive.
            failures.append(f"{app.name}: simultaneous close went {states}")
    return failures


def check_forged_world(client: App, server: App) -> list[str]:
    """A corrupted datagram passed the checksum: its bytes, ACK or flags may be forged,
    so only what no forgery can break is checked."""
    failures = []
    for app, peer in ((client, server), (server, client)):
        if len(app.received) > len(peer.script.data):
            failures.append(f"{app.name}: received more bytes than were written")
        if sum(isinstance(e, ConnectionTerminated) for _, e in app.events) > 1:
            failures.append(f"{app.name}: ConnectionTerminated more than once")
    return failures


def summary(app: App) -> str:
    parts = []
    for t, e in app.events:
        if isinstance(e, DataReceived):
            if parts and parts[-1].startswith("data"):
                continue
            parts.append("data...")
        elif isinstance(e, ConnectionTerminated):
            parts.append(f"{t:.2f} Terminated({type(e.error).__name__ if e.error else ''})")
        else:
            parts.append(f"{t:.2f} {type(e).__name__}")
    return " ".join(parts) + f"; states {[s for _, s in app.states]}"


def unearned_timeout(played: Run, app: App) -> str | None:
    """Why ``app``'s TimeoutError was not earned, or None: a trace must show that the
    network kept from it whatever would have moved it on.  Replays without a trace."""
    if played.net.trace is None:
        played = run(played.outcome.scenario, trace=True)
        app = played.client if app.name == "client" else played.server
    trace = played.net.trace
    assert trace is not None
    conn = app.conn
    assert conn is not None
    config = app.script.config
    address = CLIENT if app.name == "client" else SERVER
    ended_at, error = next(
        (t, e.error) for t, e in app.events if isinstance(e, ConnectionTerminated)
    )
    arrived = []
    for record in trace:
        if record.kind == "deliver" and record.dst == address and record.time <= ended_at:
            try:
                arrived.append((record.time, decode(record.data)))
            except MalformedSegment:
                continue  # corrupted on the way: as good as lost
    message = str(error)
    if "keepalive" in message:
        # RFC 1122 4.2.3.6: anything from the peer restarts the idle time and the count.
        silence = config.keepalive_idle + config.keepalive_probes * config.keepalive_interval
        last = max((t for t, _ in arrived), default=app.started_at)
        if ended_at - last < silence - 1e-6:
            return f"it heard the peer {ended_at - last:.1f} s before, under {silence:.1f} s"
        return None
    if "SYN" in message:
        answers = [seg for _, seg in arrived if seg.flags & SYN]
        if answers:
            return f"SYNs arrived: {answers[:2]}"
        # RFC 6298 (5.5): the SYN's timer backs off, up to max_rto, syn_retries times.
        wait = sum(
            min(config.initial_rto * 2**k, config.max_rto) for k in range(config.syn_retries + 1)
        )
        if ended_at - app.started_at < wait - 1e-6:
            return f"it waited {ended_at - app.started_at:.1f} s for a SYN-ACK, under {wait:.1f} s"
        return None
    # RFC 5482 user timeout: the last acknowledgment of new data came user_timeout or
    # more before, and no acceptable segment acknowledging more arrived since.
    acks = [
        (t, seg) for t, seg in arrived if seg.flags & ACK and not seg.flags & (RST | SYN)
    ]
    progress = min((t for t, seg in acks if seg.ack == conn.snd_una), default=app.started_at)
    if ended_at - progress < config.user_timeout - 1e-6:
        return (
            f"it gave up {ended_at - progress:.1f} s after its last progress, under the"
            f" {config.user_timeout:.0f} s user timeout"
        )
    useful = [
        seg
        for _, seg in acks
        if 0 <= seq_sub(seg.seq, conn.rcv_nxt) <= max(conn.receive_window, 0)
        and seq_gt(seg.ack, conn.snd_una)
        and seq_le(seg.ack, conn.snd_max)
    ]
    return f"acknowledgments arrived: {useful[:2]}" if useful else None


# -- the property ---------------------------------------------------------------------------


def replay(seed: int, *, trace: bool = False) -> Run:
    """Play and judge one seed (for a debugger: ``replay(seed).outcome.failures``)."""
    scenario = make_scenario(seed)
    played = run(scenario, trace=trace or scenario.corrupting)
    judge(played)
    return played


def run_property(seeds: range) -> tuple[list[Outcome], list[Outcome]]:
    started = time.perf_counter()
    # Corrupting seeds keep a trace, to tell corruption the checksum caught from
    # corruption it could not.
    outcomes = [replay(seed).outcome for seed in seeds]
    wall = time.perf_counter() - started
    failed = [o for o in outcomes if o.failures]
    report(outcomes, failed, wall)
    return outcomes, failed


def report(outcomes: list[Outcome], failed: list[Outcome], wall: float) -> None:
    virtual = sum(o.virtual_seconds for o in outcomes)
    slowest = max(outcomes, key=lambda o: o.virtual_seconds)
    payload = sum(len(o.scenario.client.data) + len(o.scenario.server.data) for o in outcomes)
    orders = collections.Counter(o.scenario.order for o in outcomes)
    families = collections.Counter(o.scenario.family for o in outcomes)
    aborts = [o for o in outcomes if o.scenario.aborter]
    print(
        f"\nproperty: {len(outcomes)} seeds, {len(failed)} failed, {wall:.1f} s wall,"
        f" {virtual:.0f} virtual s (longest: seed {slowest.scenario.seed},"
        f" {slowest.virtual_seconds:.1f} s), {payload / 1e6:.1f} MB of payload,"
        f" {sum(o.datagrams for o in outcomes)} datagrams, {sum(o.steps for o in outcomes)}"
        f" steps\n  close orders: {dict(orders)}\n  impairment families: {dict(families)}"
        f"\n  aborts: {len(aborts)}, peer reset in {sum(o.resets for o in aborts)};"
        f" sides that gave up (each checked against a trace):"
        f" {sum(len(o.gave_up) for o in outcomes)};"
        f" seeds hit by UNDELIVERED_AT_CLOSE_BUG (a side paused when it closed):"
        f" {sum(1 for o in outcomes if o.known_bug)};"
        f" seeds with checksum-undetectable corruption:"
        f" {sum(1 for o in outcomes if o.undetectable_corruptions)}"
        f" (of {sum(1 for o in outcomes if o.scenario.corrupting)} corrupting)"
    )
    for o in failed[:10]:
        print(f"  FAIL {o.scenario.describe()}\n    " + "\n    ".join(o.failures))


def test_property_every_close_order_over_a_hostile_network() -> None:
    """RFC 9293 3.5-3.10 over loss up to 30 %, bursts, duplication, reordering, delay,
    jitter, rate limits, blackholes and corruption, with reader stalls and random
    settings: every byte arrives once and in order, both ways; every close order ends
    in its RFC states, CLOSED; ConnectionTerminated once; bounded virtual time."""
    _, failed = run_property(range(PROPERTY_SEEDS))
    assert not failed, "\n".join(
        f"{o.scenario.describe()}\n  {o.failures}" for o in failed[:5]
    )


def test_a_property_seed_replays_exactly() -> None:
    """Same seed, same run: any failing seed above replays under a debugger."""
    one, two = run(make_scenario(7), trace=True), run(make_scenario(7), trace=True)
    assert one.outcome.datagrams == two.outcome.datagrams
    assert one.net.trace == two.net.trace and one.net.trace
