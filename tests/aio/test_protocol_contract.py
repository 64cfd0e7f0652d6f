"""The Protocol/Transport contract of asyncio's TCP, checked on kernel TCP and on rudp.

Each test runs on both stacks (and on both loops): rudp must give the same calls,
in the same order, with the same errors, as asyncio's own TCP transport.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.aio.aio_support import FULL_LIFE, HOST, Stack, accept_one, skip_uvloop_tcp

TIMEOUT = 10


async def test_rfc9293_3_6_client_closes_first(stack: Stack) -> None:
    async with asyncio.timeout(TIMEOUT):
        server, client, accepted = await accept_one(stack)
        assert client.transport is not None
        client.transport.write(b"ping")
        await accepted.received(4)
        client.transport.close()
        assert client.transport.is_closing()
        assert await accepted.lost is None
        assert await client.lost is None
        assert accepted.calls == FULL_LIFE
        assert client.calls == ["connection_made", "connection_lost"]
        server.close()
        await server.wait_closed()


async def test_the_transport_lets_go_of_its_protocol_after_connection_lost(
    stack: Stack,
) -> None:
    async with asyncio.timeout(TIMEOUT):
        server, client, accepted = await accept_one(stack)
        assert client.transport is not None and accepted.transport is not None
        assert client.transport.get_protocol() is client
        client.transport.close()
        await client.lost
        await accepted.lost
        await asyncio.sleep(0)
        assert client.transport.get_protocol() is None
        assert accepted.transport.get_protocol() is None
        server.close()
        await server.wait_closed()


async def test_rfc9293_3_6_server_closes_first(stack: Stack) -> None:
    async with asyncio.timeout(TIMEOUT):
        server, client, accepted = await accept_one(stack)
        assert accepted.transport is not None
        accepted.transport.write(b"hello")
        accepted.transport.close()
        assert await client.lost is None
        assert await accepted.lost is None
        assert client.data == b"hello"
        assert client.calls == FULL_LIFE
        assert accepted.calls == ["connection_made", "connection_lost"]
        server.close()
        await server.wait_closed()


async def test_rfc9293_3_6_simultaneous_close(stack: Stack) -> None:
    async with asyncio.timeout(TIMEOUT):
        server, client, accepted = await accept_one(stack)
        assert client.transport is not None and accepted.transport is not None
        client.transport.close()
        accepted.transport.close()
        assert await client.lost is None
        assert await accepted.lost is None
        assert client.calls == ["connection_made", "connection_lost"]
        assert accepted.calls == ["connection_made", "connection_lost"]
        server.close()
        await server.wait_closed()


async def test_rfc9293_3_6_half_close_eof_received_keeps_open(stack: Stack) -> None:
    async with asyncio.timeout(TIMEOUT):
        server, client, accepted = await accept_one(stack, eof_keeps_open=True)
        assert client.transport is not None and accepted.transport is not None
        client.transport.write(b"question")
        client.transport.write_eof()
        await accepted.eof
        assert accepted.data == b"question"
        assert not accepted.transport.is_closing()
        accepted.transport.write(b"answer")
        accepted.transport.close()
        await client.eof
        assert client.data == b"answer"
        client.transport.close()  # eof_received returned True: closing is ours to do
        assert await client.lost is None
        assert await accepted.lost is None
        assert accepted.calls == FULL_LIFE
        assert client.calls == accepted.calls
        server.close()
        await server.wait_closed()


async def test_write_argument_and_state_checks(stack: Stack) -> None:
    async with asyncio.timeout(TIMEOUT):
        server, client, accepted = await accept_one(stack)
        transport = client.transport
        assert transport is not None
        assert transport.can_write_eof()
        with pytest.raises(TypeError):
            transport.write("text")  # type: ignore[arg-type]
        transport.write(b"")
        transport.writelines([b"a", bytearray(b"b"), memoryview(b"c")])
        transport.write_eof()
        transport.write_eof()  # a second one is ignored
        with pytest.raises(RuntimeError):
            transport.write(b"more")
        await accepted.eof
        assert accepted.data == b"abc"
        assert await client.lost is None
        server.close()
        await server.wait_closed()


async def test_write_after_close_is_silently_dropped(stack: Stack) -> None:
    skip_uvloop_tcp(stack, "it raises RuntimeError on a write after the handle closed")
    async with asyncio.timeout(TIMEOUT):
        server, client, accepted = await accept_one(stack)
        transport = client.transport
        assert transport is not None
        transport.close()
        transport.close()
        for _ in range(3):
            transport.write(b"dropped")
        transport.write_eof()  # ignored after close
        assert await client.lost is None
        transport.write(b"dropped")
        await accepted.lost
        assert accepted.data == b""
        server.close()
        await server.wait_closed()


async def test_write_buffer_limits_follow_flow_control_mixin(stack: Stack) -> None:
    skip_uvloop_tcp(stack, "its default low-water mark is 16 bytes")
    async with asyncio.timeout(TIMEOUT):
        server, client, _ = await accept_one(stack)
        transport = client.transport
        assert transport is not None
        assert transport.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
        transport.set_write_buffer_limits(high=100)
        assert transport.get_write_buffer_limits() == (25, 100)
        transport.set_write_buffer_limits(low=100)
        assert transport.get_write_buffer_limits() == (100, 400)
        transport.set_write_buffer_limits(high=10, low=0)
        assert transport.get_write_buffer_limits() == (0, 10)
        with pytest.raises(ValueError):
            transport.set_write_buffer_limits(high=1, low=2)
        with pytest.raises(ValueError):
            transport.set_write_buffer_limits(high=-1)
        assert transport.get_write_buffer_size() == 0
        transport.close()
        await client.lost
        server.close()
        await server.wait_closed()


async def test_extra_info_addresses(stack: Stack) -> None:
    async with asyncio.timeout(TIMEOUT):
        server, client, accepted = await accept_one(stack)
        assert client.transport is not None and accepted.transport is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        assert client.transport.get_extra_info("peername") == (HOST, port)
        assert accepted.transport.get_extra_info("sockname") == (HOST, port)
        assert client.transport.get_extra_info("sockname") == accepted.transport.get_extra_info(
            "peername"
        )
        assert client.transport.get_extra_info("socket") is not None
        assert client.transport.get_extra_info("no-such-key", "fallback") == "fallback"
        assert client.transport.get_protocol() is client
        assert client.transport.is_reading()
        client.transport.pause_reading()
        assert not client.transport.is_reading()
        client.transport.resume_reading()
        assert client.transport.is_reading()
        client.transport.close()
        assert not client.transport.is_reading()
        await client.lost
        server.close()
        await server.wait_closed()


async def test_streams_echo_and_wait_closed(stack: Stack) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1000):
            writer.write(data)
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    async with asyncio.timeout(TIMEOUT):
        server, port = await stack.start_server(echo)
        async with server:
            reader, writer = await stack.open_connection(port)
            writer.write(b"line one\nline two\n")
            assert await reader.readline() == b"line one\n"
            assert await reader.readline() == b"line two\n"
            writer.write_eof()
            assert await reader.read() == b""
            writer.close()
            await writer.wait_closed()
