"""Scale: many clients on one server socket.

Echo: ``--clients`` (1,000) connections to one server, all opened first, then
all at once echo ``--echo-rounds`` (20) round trips of 64 bytes each; figures
are round trips per second over the whole echo phase (first start to last end,
across client processes) and the p50/p99 round trip.

Idle: ``--idle-connections`` (10,000) connections opened and held, each after
one 1-byte echo so the server has surely accepted it; memory per connection is
the growth of the server's resident set size between 10% and 100% of the
connections, divided by the connections added (this leaves out what the first
connections load once).  Only the server's user-space memory counts: kernel TCP
keeps its socket buffers in the kernel.  Clients are spread over processes of
at most 5,000 connections each, and every process raises its RLIMIT_NOFILE
soft limit to the hard limit (a rudp client has one UDP socket per
connection).  Raw UDP has no connections and is left out; aioquic, whose
handshakes cost milliseconds of CPU each, holds at most 1,000.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import time
from collections.abc import Sequence
from typing import Any

from .common import Cell, Metric, Table, percentile, script_main
from .latency import EchoServer
from .procs import Worker, WorkerError
from .runner import Plan, Team, run_plan
from .stacks import (
    StreamConn,
    UdpEchoClient,
    echo,
    open_stream,
    open_udp_client,
    rss_bytes,
    serve_streams,
)

NAME_ECHO = "scale-echo"
NAME_IDLE = "scale-idle"
DEFAULT_CLIENTS, QUICK_CLIENTS = 1_000, 20
DEFAULT_ROUNDS, QUICK_ROUNDS = 20, 3
DEFAULT_IDLE, QUICK_IDLE = 10_000, 50
MESSAGE = 64
CONNECT_CONCURRENCY = 100
IDLE_PER_PROCESS = 5_000
AIOQUIC_IDLE_CAP = 1_000
FIRST_SHARE = 0.1  # the idle measure's baseline: RSS with this share connected

ECHO_TABLE = Table(
    NAME_ECHO,
    "Scale: concurrent echo clients through one server socket",
    "All clients connected first, then every client echoes its round trips of 64 B at "
    "once; round trips/s over the whole echo phase, latency per round trip in ms.",
    (
        Metric("rt_per_s", "round trips/s", 0, headline=True),
        Metric("p50_ms", "p50 ms", 2),
        Metric("p99_ms", "p99 ms", 2),
        Metric("connect_s", "connect all s", 2),
    ),
)
IDLE_TABLE = Table(
    NAME_IDLE,
    "Scale: idle connections held by one server",
    "Server resident memory per connection (growth from 10% to 100% of the connections); "
    "kernel TCP's socket buffers live in the kernel and are not counted. aioquic holds at "
    f"most {AIOQUIC_IDLE_CAP:,}; raw UDP has no connections.",
    (
        Metric("kib_per_conn", "server KiB/connection", 2, headline=True),
        Metric("server_rss_mib", "server RSS MiB", 1),
        Metric("connect_s", "connect all s", 2),
    ),
)


# ------------------------------------------------------------------ worker side
class ScaleServer(EchoServer):
    """An echo server that counts the connections it is serving."""

    def __init__(self, impl: str, params: dict[str, Any]) -> None:
        super().__init__(impl, params)
        self.live = 0

    async def start(self) -> dict[str, Any]:
        if self.impl == "udp":
            return await super().start()
        self._keep = await serve_streams(self.impl, self._counted)
        return {"port": self._keep.port}

    async def _counted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.live += 1
        try:
            await echo(reader, writer)
        finally:
            self.live -= 1

    async def handle(self, cmd: str, message: dict[str, Any]) -> dict[str, Any]:
        if cmd != "rss":
            raise ValueError(f"unknown command {cmd!r}")
        expect = message.get("expect", 0)
        deadline = time.monotonic() + message.get("wait", 30.0)
        while self.live < expect and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self.live < expect:
            raise RuntimeError(f"serving {self.live} connections, expected {expect}")
        gc.collect()
        return {"rss": rss_bytes(), "live": self.live}


class ScaleClient:
    """Opens, exercises and closes many connections to one server."""

    def __init__(self, impl: str, params: dict[str, Any]) -> None:
        self.impl = impl
        self.streams: list[StreamConn] = []
        self.datagrams: list[UdpEchoClient] = []

    async def start(self) -> dict[str, Any]:
        return {}

    async def handle(self, cmd: str, message: dict[str, Any]) -> dict[str, Any]:
        if cmd == "connect":
            return await self._connect(message["port"], message["count"], message["hello"])
        if cmd == "go":
            return await self._echo(message["rounds"])
        if cmd == "close":
            await self._close()
            return {}
        raise ValueError(f"unknown command {cmd!r}")

    async def _connect(self, port: int, count: int, hello: bool) -> dict[str, Any]:
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def one() -> None:
            async with gate:
                if self.impl == "udp":
                    self.datagrams.append(await open_udp_client(port))
                    return
                conn = await open_stream(self.impl, port)
                self.streams.append(conn)
                if hello:
                    conn.writer.write(b"h")
                    await conn.reader.readexactly(1)

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(count)))
        return {"seconds": time.perf_counter() - started}

    async def _echo(self, rounds: int) -> dict[str, Any]:
        payload = bytes(MESSAGE)
        samples: list[int] = []
        clock = time.perf_counter_ns

        async def stream_client(conn: StreamConn) -> None:
            for _ in range(rounds):
                started = clock()
                conn.writer.write(payload)
                await conn.reader.readexactly(MESSAGE)
                samples.append(clock() - started)

        async def datagram_client(client: UdpEchoClient) -> None:
            for _ in range(rounds):
                started = clock()
                await client.ask(payload)
                samples.append(clock() - started)

        jobs = [stream_client(conn) for conn in self.streams]
        jobs += [datagram_client(client) for client in self.datagrams]
        began = time.monotonic()
        await asyncio.gather(*jobs)
        ended = time.monotonic()
        return {"began": began, "ended": ended, "samples_us": [s // 1000 for s in samples]}

    async def _close(self) -> None:
        await asyncio.gather(*(conn.aclose() for conn in self.streams), return_exceptions=True)
        for client in self.datagrams:
            client.transport.close()
        self.streams.clear()
        self.datagrams.clear()


ROLES = {"server": ScaleServer, "client": ScaleClient}


# ------------------------------------------------------------------ parent side
def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("scale")
    group.add_argument(
        "--clients",
        type=int,
        default=None,
        help=f"concurrent echo clients (default {DEFAULT_CLIENTS:,}, {QUICK_CLIENTS} with --quick)",
    )
    group.add_argument(
        "--echo-rounds",
        type=int,
        default=None,
        help=f"round trips per echo client (default {DEFAULT_ROUNDS}, {QUICK_ROUNDS} with --quick)",
    )
    group.add_argument(
        "--idle-connections",
        type=int,
        default=None,
        help=f"idle connections held (default {DEFAULT_IDLE:,}, {QUICK_IDLE} with --quick)",
    )
    group.add_argument(
        "--client-processes",
        type=int,
        default=None,
        help="client processes for the echo measure (default 1); the idle measure uses "
        f"one per {IDLE_PER_PROCESS:,} connections",
    )
    group.add_argument(
        "--scale-only",
        choices=("echo", "idle"),
        default=None,
        help="run only one of the two scale measures",
    )


def run(args: argparse.Namespace) -> list[Cell]:
    cells: list[Cell] = []
    if args.scale_only in (None, "echo"):
        cells += run_echo(args)
    if args.scale_only in (None, "idle"):
        cells += run_idle(args)
    return cells


def run_echo(args: argparse.Namespace) -> list[Cell]:
    clients = args.clients or (QUICK_CLIENTS if args.quick else DEFAULT_CLIENTS)
    rounds = args.echo_rounds or (QUICK_ROUNDS if args.quick else DEFAULT_ROUNDS)
    processes = max(1, min(args.client_processes or 1, clients))
    timeout = args.timeout or max(120.0, clients / 10)
    params = {"clients": clients, "rounds": rounds, "message": MESSAGE, "processes": processes}
    variant = f"{clients:,} clients, {rounds} round trips each"

    def one_run(team: Team, timeout: float) -> dict[str, float]:
        connect_s = _connect_spread(team, clients, False, timeout)
        try:
            for worker in team.clients:
                worker.send("go", rounds=rounds)
            answers = [worker.receive(timeout) for worker in team.clients]
        finally:
            _ask_all(team.clients, "close", timeout)
        samples = sorted(sample for answer in answers for sample in answer["samples_us"])
        span = max(a["ended"] for a in answers) - min(a["began"] for a in answers)
        if len(samples) != clients * rounds:
            raise WorkerError(f"{len(samples)} round trips instead of {clients * rounds}")
        return {
            "rt_per_s": len(samples) / span,
            "p50_ms": percentile(samples, 0.50) / 1000,
            "p99_ms": percentile(samples, 0.99) / 1000,
            "connect_s": connect_s,
        }

    def describe(metrics: dict[str, float]) -> str:
        return f"{metrics['rt_per_s']:.0f} round trips/s, p99 {metrics['p99_ms']:.2f} ms"

    cells: list[Cell] = []
    for loop in args.loops:
        plan = Plan(
            NAME_ECHO, variant, loop, args.impls, params, client_workers=processes, module="scale"
        )
        cells += run_plan(args, plan, one_run, timeout, describe)
    return cells


def run_idle(args: argparse.Namespace) -> list[Cell]:
    wanted = args.idle_connections or (QUICK_IDLE if args.quick else DEFAULT_IDLE)
    impls = [impl for impl in args.impls if impl != "udp"]
    cells: list[Cell] = []
    if not impls:
        return cells
    timeout = args.timeout or max(120.0, wanted / 50)
    for loop in args.loops:
        for impl in impls:
            # Each implementation its own plan: their connection counts may differ.
            count = min(wanted, AIOQUIC_IDLE_CAP) if impl == "aioquic" else wanted
            processes = math.ceil(count / IDLE_PER_PROCESS)
            params = {"connections": count, "processes": processes}

            def one_run(team: Team, timeout: float, count: int = count) -> dict[str, float]:
                return _hold_idle(team, count, timeout)

            plan = Plan(
                NAME_IDLE,
                f"{wanted:,} connections",
                loop,
                [impl],
                params,
                client_workers=processes,
                fresh=True,
                module="scale",
            )
            cells += run_plan(args, plan, one_run, timeout, _describe_idle)
    return cells


def _hold_idle(team: Team, count: int, timeout: float) -> dict[str, float]:
    first = max(1, int(count * FIRST_SHARE))
    connect_s = _connect_spread(team, first, True, timeout)
    base = team.server.ask("rss", timeout, expect=first, wait=timeout)
    connect_s += _connect_spread(team, count - first, True, timeout)
    full = team.server.ask("rss", timeout, expect=count, wait=timeout)
    added = count - first
    growth = full["rss"] - base["rss"]
    return {
        "kib_per_conn": growth / added / 1024 if added else 0.0,
        "server_rss_mib": full["rss"] / (1024 * 1024),
        "connect_s": connect_s,
    }


def _describe_idle(metrics: dict[str, float]) -> str:
    kib, seconds = metrics["kib_per_conn"], metrics["connect_s"]
    return f"{kib:.2f} KiB/connection, connected in {seconds:.1f} s"


def _connect_spread(team: Team, count: int, hello: bool, timeout: float) -> float:
    """Open ``count`` connections spread over the team's client processes; returns
    the seconds the slowest process took."""
    if count <= 0:
        return 0.0
    shares = _split(count, len(team.clients))
    busy = [(worker, share) for worker, share in zip(team.clients, shares, strict=True) if share]
    for worker, share in busy:
        worker.send("connect", port=team.port, count=share, hello=hello)
    return max(float(worker.receive(timeout)["seconds"]) for worker, _ in busy)


def _ask_all(workers: Sequence[Worker], cmd: str, timeout: float) -> None:
    for worker in workers:
        worker.send(cmd)
    for worker in workers:
        worker.receive(timeout)


def _split(total: int, parts: int) -> list[int]:
    share, extra = divmod(total, parts)
    return [share + (1 if index < extra else 0) for index in range(parts)]


def main(argv: Sequence[str] | None = None) -> int:
    return script_main(argv, "scale.py", __doc__, add_arguments, run, [ECHO_TABLE, IDLE_TABLE])
