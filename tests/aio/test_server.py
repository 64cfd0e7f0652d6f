"""Opening and refusing connections, and the asyncio.Server API, on rudp."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

import rudp
from rudp.core.state import State
from tests.aio.aio_support import HOST, Recorder

TIMEOUT = 10


def _unused_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
    return port


async def test_refused_when_nothing_listens_icmp_port_unreachable() -> None:
    async with asyncio.timeout(TIMEOUT):
        with pytest.raises(ConnectionRefusedError):
            await rudp.create_connection(Recorder, HOST, _unused_udp_port())


async def test_rfc9293_3_10_7_1_refused_by_rst_when_not_serving() -> None:
    async with asyncio.timeout(TIMEOUT):
        server = await rudp.create_server(Recorder, HOST, 0, start_serving=False)
        assert not server.is_serving()
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(ConnectionRefusedError):
            await rudp.open_connection(HOST, port)
        await server.start_serving()
        assert server.is_serving()
        _, writer = await rudp.open_connection(HOST, port)
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()


async def test_handshake_timeout_when_the_peer_is_silent() -> None:
    config = rudp.Config(syn_retries=1, initial_rto=0.2, min_rto=0.2)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind((HOST, 0))
        port = silent.getsockname()[1]
        async with asyncio.timeout(TIMEOUT):
            with pytest.raises(TimeoutError):
                await rudp.create_connection(Recorder, HOST, port, config=config)
        assert silent.recv(2048)  # the SYNs did go out


async def test_cancelled_connect_closes_its_socket() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind((HOST, 0))
        port = silent.getsockname()[1]
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await rudp.create_connection(Recorder, HOST, port)


async def test_close_refuses_new_connections_and_keeps_existing_ones() -> None:
    accepted = asyncio.Event()

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        while data := await reader.read(1000):
            writer.write(data)
        writer.close()

    async with asyncio.timeout(TIMEOUT):
        server = await rudp.start_server(echo, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await rudp.open_connection(HOST, port)
        await accepted.wait()
        server.close()
        assert not server.is_serving()
        assert server.sockets == ()
        with pytest.raises(ConnectionRefusedError):
            await rudp.open_connection(HOST, port)
        closed = asyncio.ensure_future(server.wait_closed())
        writer.write(b"still here")
        assert await reader.readexactly(10) == b"still here"
        await asyncio.sleep(0.01)
        assert not closed.done()  # the accepted connection is still open
        writer.close()
        await writer.wait_closed()
        await closed


async def test_serve_forever_cancelled_closes_the_server() -> None:
    async with asyncio.timeout(TIMEOUT):
        server = await rudp.create_server(Recorder, HOST, 0, start_serving=False)
        assert server.get_loop() is asyncio.get_running_loop()
        task = asyncio.ensure_future(server.serve_forever())
        await asyncio.sleep(0)
        assert server.is_serving()
        with pytest.raises(RuntimeError):
            await server.serve_forever()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not server.is_serving()
        with pytest.raises(RuntimeError):
            await server.serve_forever()


async def test_async_with_closes_and_waits() -> None:
    async with asyncio.timeout(TIMEOUT):
        async with await rudp.create_server(Recorder, HOST, 0) as server:
            assert isinstance(server, asyncio.AbstractServer)
            assert server.is_serving()
        assert not server.is_serving()


async def test_port_in_use_raises_oserror_like_asyncio() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind((HOST, 0))
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match="address already in use"):
            await rudp.create_server(Recorder, HOST, port)


async def test_client_socket_closes_when_its_connection_is_done() -> None:
    async with asyncio.timeout(TIMEOUT):
        server = await rudp.create_server(Recorder, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        transport, client = await rudp.create_connection(lambda: Recorder(), HOST, port)
        endpoint = transport._endpoint
        transport.abort()
        assert await client.lost is None
        await endpoint.wait_closed()
        server.close()
        await server.wait_closed()


async def test_time_wait_linger_then_socket_closes(monkeypatch: pytest.MonkeyPatch) -> None:
    """RFC 9293 3.6: the active closer lingers in TIME-WAIT, here for a shortened grace."""
    monkeypatch.setattr("rudp.aio.endpoint.TIME_WAIT_LINGER", 0.1)
    async with asyncio.timeout(TIMEOUT):
        server = await rudp.create_server(Recorder, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        transport, client = await rudp.create_connection(Recorder, HOST, port)
        transport.close()
        assert await client.lost is None
        assert str(transport._conn.state) in ("FIN-WAIT-2", "TIME-WAIT")
        assert not transport._endpoint.is_closed
        await transport._endpoint.wait_closed()
        server.close()
        await server.wait_closed()


async def test_reconnect_from_the_same_address_after_the_old_connection_ended() -> None:
    """RFC 9293 3.10.7.2: a SYN from a peer whose old connection is gone opens a new one."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    config = rudp.Config(syn_retries=1, initial_rto=0.2, min_rto=0.2)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((HOST, 0))
        local = probe.getsockname()
    async with asyncio.timeout(TIMEOUT):
        server = await rudp.start_server(handle, HOST, 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            for _ in range(2):
                _, writer = await rudp.open_connection(HOST, port, local_addr=local, config=config)
                writer.close()
                await writer.wait_closed()
                endpoint = writer.transport._endpoint  # type: ignore[attr-defined]
                endpoint.close()  # free the local port now rather than after the linger
                await endpoint.wait_closed()
                while server._active_count:  # the server's side reaches CLOSED
                    await asyncio.sleep(0.005)


async def test_wait_closed_returns_when_a_vanished_client_never_acks_our_fin() -> None:
    """The client closes first, has its FIN acknowledged, and its process goes
    away (its socket closes) before the server's FIN arrives, as a script does
    that exits right after ``wait_closed()``.  The server's connection sits in
    LAST-ACK with every data byte acknowledged and only its FIN unanswered: the
    handler's ``writer.wait_closed()`` and ``Server.wait_closed()`` return at
    once, as over kernel TCP (RFC 9293 3.10.4: CLOSE in CLOSE-WAIT), instead of
    after the user timeout; the engine goes on retransmitting the FIN meanwhile."""
    handler_done = asyncio.Event()
    client_gone = asyncio.Event()
    states: list[State] = []
    replying: list[Any] = []  # the server's engine, once it has replied

    async def reply_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.read())  # all of it, up to the client's FIN
        replying.append(writer.transport._conn)  # type: ignore[attr-defined]
        await client_gone.wait()
        writer.close()
        await writer.wait_closed()
        states.append(writer.transport._conn.state)  # type: ignore[attr-defined]
        handler_done.set()

    async with asyncio.timeout(TIMEOUT):  # the user timeout (300 s) would fail it
        server = await rudp.start_server(reply_then_close, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await rudp.open_connection(HOST, port)
        writer.write(b"ping")
        writer.write_eof()
        assert await reader.readexactly(4) == b"ping"
        [engine] = replying
        while engine.snd_una != engine.snd_max:
            await asyncio.sleep(0)  # until the ACK of the reply is in
        # The client's process ends: its socket closes under the connection.
        writer.transport._endpoint._udp.close()  # type: ignore[attr-defined]
        client_gone.set()
        await handler_done.wait()
        assert states == [State.LAST_ACK]  # the FIN is still outstanding
        server.close()
        await server.wait_closed()
        assert server.stats().connections_active == 1  # still retransmitting its FIN
