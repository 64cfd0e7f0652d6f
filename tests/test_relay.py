"""The impairment relay over real loopback sockets, on the default loop and on
uvloop (tests/conftest.py runs each test on both).

Counts are drawn from seeded generators, so the bounds below hold for these
seeds; timing is only ever bounded from below (a delay is never cut short) or
very loosely from above, so a slow machine cannot fail them.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import socket
import struct
import time
from collections.abc import Callable
from typing import Any, cast

import pytest

import rudp
from rudp.testing import Impairment, ImpairmentRelay

HOST = "127.0.0.1"
WAIT = 10.0  # seconds any single wait may take before the test fails
_SEQ = struct.Struct("!I")


class Peer(asyncio.DatagramProtocol):
    """A UDP endpoint that keeps what arrives (arrival time, data, source) and,
    as a server, may echo it."""

    def __init__(self, echo: bool = False) -> None:
        self.echo = echo
        self.arrivals: list[tuple[float, bytes, Any]] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.arrivals.append((time.monotonic(), data, addr))
        if self.echo:
            assert self.transport is not None
            self.transport.sendto(data, addr)

    @property
    def data(self) -> list[bytes]:
        return [data for _, data, _ in self.arrivals]

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.sendto(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _socket(connect_to: Any = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        sock.setsockopt(socket.SOL_SOCKET, option, 4 * 1024 * 1024)
    sock.bind((HOST, 0))
    if connect_to is not None:
        sock.connect(connect_to[:2])
    sock.setblocking(False)
    return sock


async def _peer(echo: bool = False, connect_to: Any = None) -> Peer:
    loop = asyncio.get_running_loop()
    _, peer = await loop.create_datagram_endpoint(lambda: Peer(echo), sock=_socket(connect_to))
    return peer


def _port(peer: Peer) -> int:
    assert peer.transport is not None
    return int(peer.transport.get_extra_info("sockname")[1])


async def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def _send_paced(peer: Peer, datagrams: list[bytes], batch: int = 50) -> None:
    """Send in small batches, so that no socket buffer on the way overflows."""
    for start in range(0, len(datagrams), batch):
        for data in datagrams[start : start + batch]:
            peer.send(data)
        await asyncio.sleep(0.001)


def _numbered(count: int, size: int = 64) -> list[bytes]:
    return [_SEQ.pack(n) + bytes(size - _SEQ.size) for n in range(count)]


async def _through_relay(
    count: int, seed: int, to_server: Impairment, size: int = 64
) -> tuple[ImpairmentRelay, Peer]:
    """Send ``count`` numbered datagrams through a fresh relay to a sink; return
    the closed relay and the sink once everything forwarded has arrived."""
    sink = await _peer()
    relay = await ImpairmentRelay.start((HOST, _port(sink)), to_server=to_server, seed=seed)
    client = await _peer(connect_to=relay.address)
    try:
        await _send_paced(client, _numbered(count, size))
        stats = relay.stats.to_server
        await _until(lambda: stats.received + stats.socket_overflows >= count, "the relay")
        await _until(lambda: relay.pending == 0, "the delayed datagrams")
        await _until(lambda: len(sink.arrivals) >= stats.forwarded, "the sink")
    finally:
        client.close()
        sink.close()
        await relay.close()
    return relay, sink


async def test_forwards_both_ways_intact_without_impairment() -> None:
    server = await _peer(echo=True)
    relay = await ImpairmentRelay.start((HOST, _port(server)))
    client = await _peer(connect_to=relay.address)
    sent = [bytes([n]) * (1 + n * 7) for n in range(100)]
    try:
        await _send_paced(client, sent)
        await _until(lambda: len(client.arrivals) == len(sent), "the echoes")
    finally:
        client.close()
        server.close()
        await relay.close()
    assert sorted(client.data) == sorted(sent)
    assert {addr[:2] for _, _, addr in client.arrivals} == {relay.address[:2]}
    # One upstream socket for the one client: the server saw one peer.
    assert len({addr for _, _, addr in server.arrivals}) == 1
    assert relay.clients == [client.transport.get_extra_info("sockname")]  # type: ignore[union-attr]
    for direction in (relay.stats.to_server, relay.stats.to_client):
        assert direction.received == direction.forwarded == len(sent)
        assert direction.bytes_forwarded == sum(map(len, sent))
        assert direction.dropped == 0


async def test_each_client_gets_its_own_upstream_address() -> None:
    server = await _peer(echo=True)
    relay = await ImpairmentRelay.start((HOST, _port(server)))
    clients = [await _peer(connect_to=relay.address) for _ in range(3)]
    try:
        for number, client in enumerate(clients):
            client.send(b"client %d" % number)
        await _until(lambda: all(client.arrivals for client in clients), "the echoes")
    finally:
        for client in clients:
            client.close()
        server.close()
        await relay.close()
    for number, client in enumerate(clients):
        assert client.data == [b"client %d" % number]
    assert len({addr for _, _, addr in server.arrivals}) == 3
    assert len(relay.clients) == 3


async def test_seeded_loss_drops_about_the_right_fraction() -> None:
    relay, sink = await _through_relay(2000, seed=7, to_server=Impairment(loss=0.10))
    stats = relay.stats.to_server
    assert stats.socket_overflows == 0
    assert stats.received == 2000
    assert 140 <= stats.lost <= 260
    assert stats.forwarded == 2000 - stats.lost == len(sink.arrivals)


async def test_the_same_seed_drops_the_same_datagrams() -> None:
    def arrived(sink: Peer) -> set[int]:
        return {_SEQ.unpack_from(data)[0] for data in sink.data}

    loss = Impairment(loss=0.2)
    _, first = await _through_relay(300, seed=3, to_server=loss)
    _, again = await _through_relay(300, seed=3, to_server=loss)
    _, other = await _through_relay(300, seed=4, to_server=loss)
    assert arrived(first) == arrived(again)
    assert arrived(first) != arrived(other)


async def test_delay_is_never_cut_short() -> None:
    server = await _peer(echo=True)
    relay = await ImpairmentRelay.start(
        (HOST, _port(server)),
        to_server=Impairment(delay=0.03),
        to_client=Impairment(delay=0.02),
    )
    client = await _peer(connect_to=relay.address)
    round_trips = []
    try:
        for number in range(5):
            started = time.monotonic()
            client.send(b"%d" % number)
            await _until(lambda n=number: len(client.arrivals) > n, "the echo")
            round_trips.append(client.arrivals[-1][0] - started)
    finally:
        client.close()
        server.close()
        await relay.close()
    assert min(round_trips) >= 0.05
    assert max(round_trips) < 1.0


async def test_rate_limit_serialises_and_drops_the_tail_of_a_full_queue() -> None:
    rate, queue, size, count = 200_000.0, 10_000, 1000, 100
    sink = await _peer()
    relay = await ImpairmentRelay.start(
        (HOST, _port(sink)), to_server=Impairment(rate=rate, queue_limit=queue)
    )
    client = await _peer(connect_to=relay.address)
    stats = relay.stats.to_server
    try:
        started = time.monotonic()
        for data in _numbered(count, size):  # one burst, ten times the queue
            client.send(data)
        await _until(lambda: stats.received == count and relay.pending == 0, "the relay")
        await _until(lambda: len(sink.arrivals) == stats.forwarded, "the sink")
    finally:
        client.close()
        sink.close()
        await relay.close()
    assert stats.queue_drops > 0
    assert stats.forwarded + stats.queue_drops == count
    # The queue holds 10 datagrams; more get in only as the link drains (5 ms each).
    elapsed = sink.arrivals[-1][0] - started
    assert stats.forwarded <= queue // size + elapsed * rate / size + 1
    # Each datagram leaves the link size / rate after the one before it.
    assert elapsed >= stats.forwarded * size / rate
    # What got through is the head of the burst, in order: drop-tail.
    numbers = [_SEQ.unpack_from(data)[0] for data in sink.data]
    assert numbers == sorted(numbers)
    head = min(len(numbers), queue // size)  # (a stalled VM clock can drain less)
    assert numbers[:head] == list(range(head))


async def test_duplicates_are_delivered_twice() -> None:
    relay, sink = await _through_relay(500, seed=5, to_server=Impairment(duplicate=0.2))
    stats = relay.stats.to_server
    assert 60 <= stats.duplicated <= 140
    assert len(sink.arrivals) == stats.forwarded == 500 + stats.duplicated
    assert len(set(sink.data)) == 500


async def test_reordered_datagrams_are_overtaken() -> None:
    imp = Impairment(reorder=0.2, reorder_delay=0.02, delay=0.001)
    relay, sink = await _through_relay(500, seed=6, to_server=imp)
    stats = relay.stats.to_server
    assert 60 <= stats.reordered <= 140
    numbers = [_SEQ.unpack_from(data)[0] for data in sink.data]
    assert sorted(numbers) == list(range(500))
    assert any(later < earlier for earlier, later in itertools.pairwise(numbers))


async def test_corruption_flips_bits() -> None:
    relay, sink = await _through_relay(50, seed=8, to_server=Impairment(corrupt=1.0))
    assert relay.stats.to_server.corrupted == 50
    originals = set(_numbered(50))
    assert all(data not in originals for data in sink.data)
    assert len(sink.arrivals) == 50


async def test_mtu_and_blackhole_drop() -> None:
    sink = await _peer()
    relay = await ImpairmentRelay.start(
        (HOST, _port(sink)), to_server=Impairment(mtu=500, blackholes=((0.0, 0.3),))
    )
    client = await _peer(connect_to=relay.address)
    stats = relay.stats.to_server
    try:
        client.send(b"in the blackhole")
        await _until(lambda: stats.received == 1, "the relay")
        await asyncio.sleep(0.35)
        client.send(bytes(600))
        client.send(b"after it")
        await _until(lambda: len(sink.arrivals) == 1, "the sink")
    finally:
        client.close()
        sink.close()
        await relay.close()
    assert sink.data == [b"after it"]
    assert (stats.blackholed, stats.too_big, stats.dropped) == (1, 1, 2)


async def test_close_stops_relaying_and_is_idempotent() -> None:
    sink = await _peer()
    relay = await ImpairmentRelay.start((HOST, _port(sink)), to_server=Impairment(delay=0.05))
    client = await _peer(connect_to=relay.address)
    client.send(b"delayed, then dropped by close")
    await _until(lambda: relay.pending == 1, "the relay")
    await relay.close()
    await relay.close()
    await asyncio.sleep(0.1)
    client.close()
    sink.close()
    assert sink.arrivals == []
    assert relay.pending == 0


@pytest.mark.parametrize("where", [("10.0.0.1", 9), ("localhost", 9), ("0.0.0.0", 9)])
async def test_refuses_anything_but_loopback(where: tuple[str, int]) -> None:
    with pytest.raises(ValueError, match="loopback"):
        await ImpairmentRelay.start(where)
    with pytest.raises(ValueError, match="loopback"):
        await ImpairmentRelay.start((HOST, 9), host=where[0])


async def test_rudp_transfer_survives_loss_through_the_relay() -> None:
    """The real-socket proof of loss recovery: 1 MiB over rudp, 2 % loss each way."""
    payload = bytes(range(256)) * 4096
    received: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()
        writer.write(hashlib.sha256(data).digest())
        await writer.drain()
        writer.close()
        received.set_result(data)

    server = await rudp.start_server(handle, HOST, 0)
    path = Impairment(loss=0.02, delay=0.005)
    relay = await ImpairmentRelay.start(
        (HOST, server.sockets[0].getsockname()[1]), to_server=path, to_client=path, seed=11
    )
    try:
        async with asyncio.timeout(60):
            reader, writer = await rudp.open_connection(*relay.address[:2])
            writer.write(payload)
            writer.write_eof()
            digest = await reader.read()
            stats = writer.transport.get_extra_info("rudp_stats")
            writer.close()
            await writer.wait_closed()
            data = await received
            # The server's connection ends when our last ACK reaches it: through
            # the relay, so the relay must outlive it.
            server.close()
            await server.wait_closed()
    finally:
        server.close()
        await relay.close()
    assert data == payload
    assert digest == hashlib.sha256(payload).digest()
    assert relay.stats.to_server.lost > 0
    assert stats.retransmitted_segments > 0
