"""Many clients on one server, over kernel TCP and over rudp."""

from __future__ import annotations

import asyncio

from tests.parity.parity_support import HOST, Peer, Stack, pattern, port_of

TIMEOUT = 30
CLIENTS = 200
EACH = 20_000


async def test_200_concurrent_clients_each_get_their_own_bytes_back(stack: Stack) -> None:
    """All 200 connect (more than the default backlog of 100 at once), then all
    exchange at the same time, then all close: every client gets back exactly
    what it sent, and every server handler ends cleanly."""
    finished: list[int] = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        size = 0
        while data := await reader.read(65536):
            size += len(data)
            writer.write(data)
            await writer.drain()
        writer.close()
        await writer.wait_closed()
        finished.append(size)

    async def exchange(
        index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        payload = pattern(EACH, seed=index * EACH)
        writer.write(payload)
        writer.write_eof()
        echoed = await reader.read()
        return echoed == payload

    async with asyncio.timeout(TIMEOUT):
        server = await stack.start_server(echo, HOST, 0)
        async with server:
            port = port_of(server)
            clients = await asyncio.gather(
                *(stack.open_connection(HOST, port) for _ in range(CLIENTS))
            )
            results = await asyncio.gather(
                *(exchange(i, reader, writer) for i, (reader, writer) in enumerate(clients))
            )
            assert results == [True] * CLIENTS
            for _, writer in clients:
                writer.close()
            await asyncio.gather(*(writer.wait_closed() for _, writer in clients))
            while len(finished) < CLIENTS:
                await asyncio.sleep(0.01)
            assert finished == [EACH] * CLIENTS


async def test_200_protocol_clients_then_server_close(stack: Stack) -> None:
    """200 create_connection clients stay connected while the server stops
    listening; each then half-closes and sees the server's close."""
    accepted: list[Peer] = []

    def factory() -> Peer:
        accepted.append(Peer())  # eof_received returns None: closes on the client's FIN
        return accepted[-1]

    async with asyncio.timeout(TIMEOUT):
        server = await stack.create_server(factory, HOST, 0)
        port = port_of(server)
        clients = [Peer() for _ in range(CLIENTS)]

        async def connect(peer: Peer) -> None:
            await stack.create_connection(lambda: peer, HOST, port)

        await asyncio.gather(*(connect(peer) for peer in clients))
        while len(accepted) < CLIENTS:
            await asyncio.sleep(0.01)
        server.close()
        for index, peer in enumerate(clients):
            assert peer.transport is not None
            peer.transport.write(b"client %d" % index)
            peer.transport.write_eof()
        lost = await asyncio.gather(*(peer.lost for peer in (*clients, *accepted)))
        assert lost == [None] * (2 * CLIENTS)
        assert sorted(bytes(peer.data) for peer in accepted) == sorted(
            b"client %d" % index for index in range(CLIENTS)
        )
        await server.wait_closed()
