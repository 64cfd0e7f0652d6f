"""Echo latency: ``--round-trips`` (10,000) round trips of 64 bytes on one connection.

The client writes 64 bytes and waits for all 64 to come back before the next;
each round trip is timed with ``perf_counter_ns``, after 200 untimed ones that
warm up the connection (slow start, delayed ACKs, caches).  Client and server
are pinned to the same CPU (``--pin-cpu``, 0 by default), as with ``taskset -c
0``: on a shared machine a wake-up across CPUs costs more, and varies more,
than the work measured.  Raw UDP: one 64-byte datagram each way.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from typing import Any

from .common import Cell, Metric, Table, percentile, script_main
from .runner import Plan, Team, run_plan
from .stacks import UdpEcho, echo, open_stream, open_udp_client, serve_streams, udp_socket

NAME = "latency"
DEFAULT_ROUND_TRIPS = 10_000
QUICK_ROUND_TRIPS = 200
WARMUP = 200
QUICK_WARMUP = 20
MESSAGE = 64

TABLE = Table(
    NAME,
    "Echo latency: 64-byte round trips on one connection",
    "Round-trip time in µs; client and server pinned to one CPU. Per run: p50 and p99 "
    "of its round trips; the table shows the median (min-max) of those over the runs.",
    (
        Metric("p50_us", "p50 µs", 1, headline=True),
        Metric("p99_us", "p99 µs", 1),
        Metric("mean_us", "mean µs", 1),
    ),
)


# ------------------------------------------------------------------ worker side
class EchoServer:
    """An echo server of any implementation (the connection rate measure's too)."""

    def __init__(self, impl: str, params: dict[str, Any]) -> None:
        self.impl = impl
        self._keep: Any = None

    async def start(self) -> dict[str, Any]:
        if self.impl == "udp":
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(UdpEcho, sock=udp_socket())
            self._keep = transport
            return {"port": transport.get_extra_info("sockname")[1]}
        self._keep = await serve_streams(self.impl, echo)
        return {"port": self._keep.port}

    async def handle(self, cmd: str, message: dict[str, Any]) -> dict[str, Any]:
        raise ValueError(f"unknown command {cmd!r}")


class LatencyClient:
    def __init__(self, impl: str, params: dict[str, Any]) -> None:
        self.impl = impl
        self.round_trips: int = params["round_trips"]
        self.warmup: int = params["warmup"]

    async def start(self) -> dict[str, Any]:
        return {}

    async def handle(self, cmd: str, message: dict[str, Any]) -> dict[str, Any]:
        if cmd != "run":
            raise ValueError(f"unknown command {cmd!r}")
        port = message["port"]
        payload = bytes(range(MESSAGE))
        samples: list[int] = []
        clock = time.perf_counter_ns
        if self.impl == "udp":
            client = await open_udp_client(port)
            try:
                for index in range(self.warmup + self.round_trips):
                    started = clock()
                    answer = await client.ask(payload)
                    if index >= self.warmup:
                        samples.append(clock() - started)
                    if answer != payload:
                        raise RuntimeError("wrong echo")
            finally:
                client.transport.close()
        else:
            conn = await open_stream(self.impl, port)
            write, readexactly = conn.writer.write, conn.reader.readexactly
            try:
                for index in range(self.warmup + self.round_trips):
                    started = clock()
                    write(payload)
                    answer = await readexactly(MESSAGE)
                    if index >= self.warmup:
                        samples.append(clock() - started)
                    if answer != payload:
                        raise RuntimeError("wrong echo")
            finally:
                await conn.aclose()
        samples.sort()
        return {
            "p50_us": percentile(samples, 0.50) / 1000,
            "p99_us": percentile(samples, 0.99) / 1000,
            "mean_us": sum(samples) / len(samples) / 1000,
        }


ROLES = {"server": EchoServer, "client": LatencyClient}


# ------------------------------------------------------------------ parent side
def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("latency")
    group.add_argument(
        "--round-trips",
        type=int,
        default=None,
        help=f"timed round trips per run (default {DEFAULT_ROUND_TRIPS:,}, "
        f"{QUICK_ROUND_TRIPS} with --quick)",
    )
    group.add_argument(
        "--pin-cpu",
        type=int,
        default=0,
        help="pin client and server to this CPU; -1 not to pin (default 0)",
    )


def run(args: argparse.Namespace) -> list[Cell]:
    round_trips = args.round_trips or (QUICK_ROUND_TRIPS if args.quick else DEFAULT_ROUND_TRIPS)
    warmup = QUICK_WARMUP if args.quick else WARMUP
    cpu = None if args.pin_cpu < 0 else args.pin_cpu
    timeout = args.timeout or max(60.0, round_trips / 100)
    params = {"round_trips": round_trips, "warmup": warmup, "message": MESSAGE, "cpu": cpu}
    cells: list[Cell] = []
    for loop in args.loops:
        plan = Plan(NAME, f"{MESSAGE} B", loop, args.impls, params, cpu=cpu)
        cells += run_plan(args, plan, _one_run, timeout, _describe)
    return cells


def _one_run(team: Team, timeout: float) -> dict[str, float]:
    answer = team.clients[0].ask("run", timeout, port=team.port)
    return {key: answer[key] for key in ("p50_us", "p99_us", "mean_us")}


def _describe(metrics: dict[str, float]) -> str:
    return f"p50 {metrics['p50_us']:.1f} µs, p99 {metrics['p99_us']:.1f} µs"


def main(argv: Sequence[str] | None = None) -> int:
    return script_main(argv, "latency.py", __doc__, add_arguments, run, [TABLE])
