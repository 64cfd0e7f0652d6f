"""The endpoint's single timer, demultiplexing, and name resolution."""

from __future__ import annotations

import asyncio
import socket

import pytest

import rudp
from rudp.aio.endpoint import Endpoint, LoopTimer
from tests.aio.aio_support import HOST, Recorder

TIMEOUT = 10


async def test_one_timer_handle_for_all_connections_of_a_loop() -> None:
    loop = asyncio.get_running_loop()
    scheduled = getattr(loop, "_scheduled", None)
    if scheduled is None:
        pytest.skip("only the default loop exposes its timer heap")
    accepted: list[Recorder] = []

    def factory() -> Recorder:
        accepted.append(Recorder())
        return accepted[-1]

    async with asyncio.timeout(TIMEOUT):
        server = await rudp.create_server(factory, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        clients = [await rudp.create_connection(Recorder, HOST, port) for _ in range(20)]
        for transport, _ in clients:
            transport.write(b"x" * 5000)
        peak = 0
        while sum(len(r.data) for r in accepted) < 20 * 5000:
            live = [
                handle
                for handle in scheduled
                if not handle.cancelled()
                and isinstance(getattr(handle._callback, "__self__", None), (Endpoint, LoopTimer))
            ]
            peak = max(peak, len(live))
            await asyncio.sleep(0)
        # Delayed ACKs and retransmission timers of 20 connections, and of the
        # clients' 20 endpoints: one handle for the loop.
        assert peak == 1
        for transport, _ in clients:
            transport.close()
        for _, protocol in clients:
            assert await protocol.lost is None
        server.close()
        await server.wait_closed()


async def test_connect_tries_each_address_of_a_name() -> None:
    """``localhost`` may resolve to ::1 first; the server listens on 127.0.0.1 only."""
    async with asyncio.timeout(TIMEOUT):
        server = await rudp.create_server(Recorder, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        transport, protocol = await rudp.create_connection(Recorder, "localhost", port)
        assert transport.get_extra_info("peername")[:2] == (HOST, port)
        transport.close()
        assert await protocol.lost is None
        server.close()
        await server.wait_closed()


async def test_server_on_every_interface_gets_one_socket_per_family() -> None:
    async with asyncio.timeout(TIMEOUT):
        server = await rudp.create_server(Recorder, None, 0)
        async with server:
            assert len(server.sockets) >= 1
            port = server.sockets[0].getsockname()[1]
            transport, protocol = await rudp.create_connection(Recorder, HOST, port)
            transport.close()
            assert await protocol.lost is None


async def test_malformed_datagrams_are_ignored() -> None:
    async with asyncio.timeout(TIMEOUT):
        server = await rudp.start_server(lambda reader, writer: writer.close(), HOST, 0)
        port = server.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        junk, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=(HOST, port)
        )
        for size in (0, 1, 19, 20, 60, 1500):
            junk.sendto(b"\xff" * size)
        junk.close()
        reader, writer = await rudp.open_connection(HOST, port)
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()


async def test_client_local_addr_and_family() -> None:
    async with asyncio.timeout(TIMEOUT):
        server = await rudp.create_server(Recorder, HOST, 0, family=socket.AF_INET)
        port = server.sockets[0].getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((HOST, 0))
            local_port = probe.getsockname()[1]
        transport, protocol = await rudp.create_connection(
            Recorder, HOST, port, local_addr=(HOST, local_port), family=socket.AF_INET
        )
        assert transport.get_extra_info("sockname") == (HOST, local_port)
        transport.close()
        assert await protocol.lost is None
        server.close()
        await server.wait_closed()
