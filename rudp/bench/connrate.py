"""Connection rate: ``--connections`` (2,000) sequential connect + close, connections/s.

Each connection is opened (the handshake completes) and closed before the next
is opened; no data is sent.  Closing is started at once and finished in the
background (``writer.close()``, then ``await writer.wait_closed()`` in a task;
aioquic: leaving its ``connect()`` context, which waits out QUIC's closing
period of 3 PTO), and the clock stops when every close has finished: kernel TCP
finishes its FIN exchange in the background too.  The server's handler reads
until EOF and closes.  Raw UDP has no connection: its "connect"
is a new socket and one 1-byte datagram echoed back, the least any handshake
over a fresh UDP socket costs.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from typing import Any

from .common import Cell, Metric, Table, script_main
from .latency import EchoServer
from .runner import Plan, Team, run_plan
from .stacks import cpu_seconds, open_stream, open_udp_client

NAME = "connrate"
DEFAULT_CONNECTIONS = 2_000
QUICK_CONNECTIONS = 30

TABLE = Table(
    NAME,
    "Connection rate: sequential connect + close",
    "Connections per second on one client, each opened and closed before the next opens "
    "(closes finish in the background; the clock stops when all have); "
    "client CPU = user + system milliseconds per connection.",
    (
        Metric("conn_per_s", "connections/s", 0, headline=True),
        Metric("client_cpu_ms_per_conn", "client CPU ms/conn", 3),
    ),
)


class ConnrateClient:
    def __init__(self, impl: str, params: dict[str, Any]) -> None:
        self.impl = impl
        self.connections: int = params["connections"]

    async def start(self) -> dict[str, Any]:
        return {}

    async def handle(self, cmd: str, message: dict[str, Any]) -> dict[str, Any]:
        if cmd != "run":
            raise ValueError(f"unknown command {cmd!r}")
        port = message["port"]
        started, cpu_start = time.perf_counter(), cpu_seconds()
        if self.impl == "udp":
            for _ in range(self.connections):
                client = await open_udp_client(port)
                await client.ask(b"h")
                client.transport.close()
        else:
            closing: set[asyncio.Task[None]] = set()
            for _ in range(self.connections):
                conn = await open_stream(self.impl, port)
                task = asyncio.ensure_future(conn.aclose())
                closing.add(task)
                task.add_done_callback(closing.discard)
            await asyncio.gather(*closing)
        elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu_start
        return {"seconds": elapsed, "cpu_s": cpu, "connections": self.connections}


ROLES = {"server": EchoServer, "client": ConnrateClient}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection rate")
    group.add_argument(
        "--connections",
        type=int,
        default=None,
        help=f"connections per run (default {DEFAULT_CONNECTIONS:,}, "
        f"{QUICK_CONNECTIONS} with --quick)",
    )


def run(args: argparse.Namespace) -> list[Cell]:
    connections = args.connections or (QUICK_CONNECTIONS if args.quick else DEFAULT_CONNECTIONS)
    timeout = args.timeout or max(60.0, connections / 20)
    params = {"connections": connections}
    cells: list[Cell] = []
    for loop in args.loops:
        plan = Plan(NAME, "sequential", loop, args.impls, params)
        cells += run_plan(args, plan, _one_run, timeout, _describe)
    return cells


def _one_run(team: Team, timeout: float) -> dict[str, float]:
    answer = team.clients[0].ask("run", timeout, port=team.port)
    return {
        "conn_per_s": answer["connections"] / answer["seconds"],
        "client_cpu_ms_per_conn": answer["cpu_s"] / answer["connections"] * 1000,
    }


def _describe(metrics: dict[str, float]) -> str:
    return f"{metrics['conn_per_s']:.0f} connections/s"


def main(argv: Sequence[str] | None = None) -> int:
    return script_main(argv, "connrate.py", __doc__, add_arguments, run, [TABLE])
