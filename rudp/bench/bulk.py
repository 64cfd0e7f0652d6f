"""Bulk transfer: ``--bulk-size`` bytes (64 MiB) one way, MB/s and CPU seconds per side.

Stream implementations: the client writes 64 KiB chunks, each followed by
``drain()``, then ``write_eof()``; the server reads until EOF and answers one
byte, which stops the client's clock (so the figure counts delivery, not
buffering).  Run at rudp's default datagram size, at 8 KiB and at the loopback
path MTU (``Config(max_segment_size=...)``; aioquic's ``max_datagram_size``;
the raw UDP baseline's datagram size; kernel TCP is the same in every variant).

Raw UDP baseline, the ceiling of any Python transport over asyncio's UDP: the
sender keeps 64 datagrams in flight, the receiver acknowledges every 32nd with
its count of datagrams received.  Nothing is retransmitted: if the window stalls
for 50 ms the sender writes off what is outstanding and sends more, until the
receiver has counted enough datagrams.  MB/s is 10**6 bytes per second.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import struct
import time
from collections.abc import Sequence
from typing import Any, cast

from .common import (
    MIB,
    Cell,
    Metric,
    Table,
    loopback_path_mtu,
    parse_size,
    script_main,
)
from .procs import WorkerError
from .runner import Plan, Team, run_plan
from .stacks import StreamConn, cpu_seconds, open_stream, serve_streams, udp_socket

NAME = "bulk"
DEFAULT_SIZE = 64 * MIB
QUICK_SIZE = 1 * MIB
CHUNK = 64 * 1024
UDP_WINDOW = 64  # datagrams in flight
UDP_ACK_EVERY = 32
# aioquic 1.7 fails ("Failed to parse frame") or stalls with datagrams above this.
AIOQUIC_MAX_DATAGRAM = 16384
UDP_STALL = 0.05  # seconds without progress before the window is written off
_HEADER = struct.Struct("!III")  # transfer token, datagrams needed, sequence number
_ACK = struct.Struct("!I")  # datagrams received so far

TABLE = Table(
    NAME,
    "Bulk: one way through the streams API",
    "MB/s = 10^6 bytes/s from the first write to the receiver's acknowledgment of EOF; "
    "CPU = user + system seconds of each process over the transfer. "
    "Variant = UDP datagram size (rudp `max_segment_size`, aioquic `max_datagram_size`, "
    "the raw UDP datagram); kernel TCP is the same in every variant. aioquic is left out "
    f"above {AIOQUIC_MAX_DATAGRAM} B datagrams, where it fails to parse its own frames.",
    (
        Metric("mb_per_s", "MB/s", 1, headline=True),
        Metric("client_cpu_s", "sender CPU s", 2),
        Metric("server_cpu_s", "receiver CPU s", 2),
    ),
)


# ------------------------------------------------------------------ worker side
class BulkServer:
    """Receives transfers and keeps, for each, its byte count and CPU time."""

    def __init__(self, impl: str, params: dict[str, Any]) -> None:
        self.impl = impl
        self.datagram_size: int | None = params.get("datagram_size")
        self.records: list[dict[str, float]] = []
        self._keep: Any = None

    async def start(self) -> dict[str, Any]:
        if self.impl == "udp":
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _UdpReceiver(self.records), sock=udp_socket()
            )
            self._keep = transport
            return {"port": transport.get_extra_info("sockname")[1]}
        self._keep = await serve_streams(self.impl, self._receive, self.datagram_size)
        return {"port": self._keep.port}

    async def _receive(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        cpu_start = cpu_seconds()
        received = 0
        try:
            while chunk := await reader.read(1 << 20):
                received += len(chunk)
            self.records.append({"bytes": received, "cpu_s": cpu_seconds() - cpu_start})
            writer.write(b"k")
            await writer.drain()
        finally:
            writer.close()

    async def handle(self, cmd: str, message: dict[str, Any]) -> dict[str, Any]:
        if cmd == "take":
            deadline = time.monotonic() + 10
            while not self.records and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            if not self.records:
                raise RuntimeError("no transfer was received")
            return self.records.pop(0)
        raise ValueError(f"unknown command {cmd!r}")


class _UdpReceiver(asyncio.DatagramProtocol):
    def __init__(self, records: list[dict[str, float]]) -> None:
        self.records = records
        self.transport: asyncio.DatagramTransport | None = None
        # (peer, token) -> [datagrams counted, bytes counted, CPU at the first one]
        self.peers: dict[Any, list[float]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        token, need, _ = _HEADER.unpack_from(data)
        state = self.peers.get((addr, token))
        if state is None:
            state = self.peers[(addr, token)] = [0, 0, cpu_seconds()]
        state[0] += 1
        count = int(state[0])
        if count <= need:
            state[1] += len(data)
        if count % UDP_ACK_EVERY == 0 or count >= need:
            assert self.transport is not None
            self.transport.sendto(_ACK.pack(count), addr)
        if count == need:
            self.records.append({"bytes": state[1], "cpu_s": cpu_seconds() - state[2]})


class BulkClient:
    def __init__(self, impl: str, params: dict[str, Any]) -> None:
        self.impl = impl
        self.size: int = params["size"]
        self.datagram_size: int | None = params.get("datagram_size")

    async def start(self) -> dict[str, Any]:
        return {}

    async def handle(self, cmd: str, message: dict[str, Any]) -> dict[str, Any]:
        if cmd != "run":
            raise ValueError(f"unknown command {cmd!r}")
        if self.impl == "udp":
            return await self._send_udp(message["port"])
        return await self._send_stream(message["port"])

    async def _send_stream(self, port: int) -> dict[str, Any]:
        conn = await open_stream(self.impl, port, self.datagram_size)
        started, cpu_start = time.perf_counter(), cpu_seconds()
        answer = await send_then_eof(conn, self.size)
        elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu_start
        await conn.aclose()
        check_answer(answer)
        return {"seconds": elapsed, "cpu_s": cpu, "bytes": self.size, "lost": 0}

    async def _send_udp(self, port: int) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        size = self.datagram_size or 1400
        need = math.ceil(self.size / size)
        done: asyncio.Future[None] = loop.create_future()
        transport, sender = await loop.create_datagram_endpoint(
            lambda: _UdpSender(need, size, done), sock=udp_socket(port)
        )
        sender.transport = transport
        try:
            started, cpu_start = time.perf_counter(), cpu_seconds()
            sender.pump()
            await done
            elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu_start
        finally:
            sender.stop()
            transport.close()
        return {"seconds": elapsed, "cpu_s": cpu, "bytes": need * size, "lost": sender.written_off}


async def send_then_eof(conn: StreamConn, size: int) -> bytes:
    """Write ``size`` bytes in CHUNK-sized writes, each drained, then EOF; return
    what the receiver answers once it has read everything (BulkServer: b"k")."""
    writer = conn.writer
    chunk = bytes(CHUNK)
    full, rest = divmod(size, CHUNK)
    for _ in range(full):
        writer.write(chunk)
        await writer.drain()
    if rest:
        writer.write(chunk[:rest])
    writer.write_eof()
    await writer.drain()
    return await conn.reader.read()


def check_answer(answer: bytes) -> None:
    if answer != b"k":
        raise RuntimeError(f"the receiver answered {answer!r}")


class _UdpSender(asyncio.DatagramProtocol):
    def __init__(self, need: int, size: int, done: asyncio.Future[None]) -> None:
        self.need, self.done = need, done
        self.token = random.getrandbits(32)
        self.padding = bytes(size - _HEADER.size)
        self.sent = 0
        self.counted = 0  # the receiver's count, from its acknowledgments
        self.written_off = 0
        self.transport: asyncio.DatagramTransport | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._seen = -1

    def pump(self) -> None:
        assert self.transport is not None
        sendto, pack, padding = self.transport.sendto, _HEADER.pack, self.padding
        token, need = self.token, self.need
        while self.sent - self.counted - self.written_off < UDP_WINDOW:
            sendto(pack(token, need, self.sent) + padding)
            self.sent += 1
        if self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().call_later(UDP_STALL, self._check)

    def _check(self) -> None:
        self._watchdog = None
        if self.done.done():
            return
        if self.counted == self._seen:
            self.written_off = self.sent - self.counted
        self._seen = self.counted
        self.pump()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.counted = max(self.counted, _ACK.unpack(data)[0])
        if self.counted >= self.need:
            if not self.done.done():
                self.done.set_result(None)
        else:
            self.pump()

    def error_received(self, exc: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(exc)

    def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()


ROLES = {"server": BulkServer, "client": BulkClient}


# ------------------------------------------------------------------ parent side
def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("bulk")
    group.add_argument(
        "--bulk-size",
        type=parse_size,
        default=None,
        help="bytes per transfer, e.g. 64MiB (default 64MiB, 1MiB with --quick)",
    )
    group.add_argument(
        "--datagram-sizes",
        default="default,8192,mtu",
        help="UDP datagram sizes to run: 'default' (rudp's Config), a number, or 'mtu' "
        "for the loopback path MTU (default: default,8192,mtu)",
    )


def datagram_sizes(spec: str) -> list[int | None]:
    sizes: list[int | None] = []
    for item in spec.split(","):
        item = item.strip().lower()
        if item == "default":
            sizes.append(None)
        elif item == "mtu":
            sizes.append(loopback_path_mtu())
        elif item:
            sizes.append(parse_size(item))
    return sizes


def run(args: argparse.Namespace) -> list[Cell]:
    from .. import Config

    size = args.bulk_size or (QUICK_SIZE if args.quick else DEFAULT_SIZE)
    # 1 MB/s is a failure, not a figure: give up well before a stall wastes the session.
    timeout = args.timeout or max(60.0, size / 1e6)
    cells: list[Cell] = []
    for datagram_size in datagram_sizes(args.datagram_sizes):
        datagram_size = datagram_size or Config().max_segment_size
        variant = f"{datagram_size} B datagrams"
        if datagram_size == loopback_path_mtu():
            variant += " (path MTU)"
        params = {"size": size, "datagram_size": datagram_size}
        impls = [
            impl
            for impl in args.impls
            if impl != "aioquic" or datagram_size <= AIOQUIC_MAX_DATAGRAM
        ]
        for loop in args.loops:
            plan = Plan(NAME, variant, loop, impls, params)
            cells += run_plan(args, plan, _one_run, timeout, _describe)
    return cells


def _one_run(team: Team, timeout: float) -> dict[str, float]:
    sent = team.clients[0].ask("run", timeout, port=team.port)
    received = team.server.ask("take", timeout)
    if team.impl != "udp" and received["bytes"] != sent["bytes"]:
        raise WorkerError(f"sent {sent['bytes']} bytes, received {received['bytes']}")
    metrics = {
        "mb_per_s": sent["bytes"] / sent["seconds"] / 1e6,
        "seconds": sent["seconds"],
        "client_cpu_s": sent["cpu_s"],
        "server_cpu_s": received["cpu_s"],
    }
    if team.impl == "udp":
        metrics["written_off"] = sent["lost"]
    return metrics


def _describe(metrics: dict[str, float]) -> str:
    return (
        f"{metrics['mb_per_s']:.1f} MB/s, CPU {metrics['client_cpu_s']:.2f} s sender / "
        f"{metrics['server_cpu_s']:.2f} s receiver"
    )


def main(argv: Sequence[str] | None = None) -> int:
    return script_main(argv, "bulk.py", __doc__, add_arguments, run, [TABLE])
