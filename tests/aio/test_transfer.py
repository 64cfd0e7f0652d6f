"""Bulk data over real loopback UDP: integrity, concurrency, many clients."""

from __future__ import annotations

import asyncio
import hashlib
import random

import rudp
from tests.aio.aio_support import HOST

TIMEOUT = 20
MIB = 1024 * 1024


def _payload(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


async def _send_and_receive(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes
) -> str:
    """Send ``data`` then half-close, while reading everything the peer sends."""

    async def send() -> None:
        for start in range(0, len(data), 100_000):
            writer.write(data[start : start + 100_000])
            await writer.drain()
        writer.write_eof()

    async def receive() -> str:
        digest = hashlib.sha256()
        while chunk := await reader.read(65536):
            digest.update(chunk)
        return digest.hexdigest()

    _, received = await asyncio.gather(send(), receive())
    return received


async def test_one_mebibyte_each_way_concurrently() -> None:
    client_data, server_data = _payload(1, MIB), _payload(2, MIB)
    server_got: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server_got.set_result(await _send_and_receive(reader, writer, server_data))
        writer.close()
        await writer.wait_closed()

    async with asyncio.timeout(TIMEOUT):
        server = await rudp.start_server(handle, HOST, 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            reader, writer = await rudp.open_connection(HOST, port)
            client_got = await _send_and_receive(reader, writer, client_data)
            writer.close()
            await writer.wait_closed()
            assert client_got == hashlib.sha256(server_data).hexdigest()
            assert await server_got == hashlib.sha256(client_data).hexdigest()
            stats = writer.get_extra_info("rudp_stats")
            assert stats.bytes_acked == MIB
            assert stats.bytes_delivered == MIB


async def test_fifty_clients_at_once_on_one_server() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def client(port: int, index: int) -> bytes:
        reader, writer = await rudp.open_connection(HOST, port)
        writer.write(_payload(index, 20_000))
        writer.write_eof()
        echoed = await reader.read()
        writer.close()
        await writer.wait_closed()
        return echoed

    async with asyncio.timeout(TIMEOUT):
        server = await rudp.start_server(echo, HOST, 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            assert len(server.sockets) == 1
            echoes = await asyncio.gather(*(client(port, i) for i in range(50)))
            assert echoes == [_payload(i, 20_000) for i in range(50)]
