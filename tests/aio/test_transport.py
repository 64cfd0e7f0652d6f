"""What only rudp's transport does, or does its own way: flow control reaching the
peer, RST on abort, isolation of a failing protocol, stats."""

from __future__ import annotations

import asyncio

import pytest

import rudp
from rudp.aio.transport import RudpTransport
from rudp.core.config import Config
from tests.aio.aio_support import FULL_LIFE, HOST, Recorder, Stack, accept_one

TIMEOUT = 10


async def _until(predicate: object, *, step: float = 0.005) -> None:
    """Poll ``predicate()`` (bounded by the test's own timeout)."""
    while not predicate():  # type: ignore[operator]
        await asyncio.sleep(step)


async def test_pause_writing_at_once_then_resume_at_low_water(rudp_stack: Stack) -> None:
    async with asyncio.timeout(TIMEOUT):
        server, client, accepted = await accept_one(rudp_stack)
        transport = client.transport
        assert isinstance(transport, RudpTransport)
        # The connection's send buffer (as SO_SNDBUF) takes Config.send_buffer
        # bytes first; the transport's write buffer counts only what lies beyond.
        socket_buffer = Config().send_buffer
        transport.write(b"x" * (socket_buffer + 100_000))
        assert client.paused_writing == 1  # synchronously, within write()
        assert transport.get_write_buffer_size() == 100_000
        await accepted.received(socket_buffer + 100_000)
        await _until(lambda: client.resumed_writing == 1)
        assert transport.get_write_buffer_size() <= transport.get_write_buffer_limits()[0]
        transport.set_write_buffer_limits(high=10)
        transport.write(b"y" * (socket_buffer + 11))
        assert client.paused_writing == 2
        transport.close()
        await client.lost
        server.close()
        await server.wait_closed()


async def test_rfc9293_3_8_6_2_pause_reading_closes_the_advertised_window(
    rudp_stack: Stack,
) -> None:
    """Backpressure: a paused reader's window closes and the sender stops."""
    size = 1024 * 1024
    async with asyncio.timeout(TIMEOUT):
        server, client, accepted = await accept_one(rudp_stack)
        assert isinstance(accepted.transport, RudpTransport)
        assert isinstance(client.transport, RudpTransport)
        accepted.transport.pause_reading()
        assert not accepted.transport.is_reading()
        client.transport.write(bytes(range(256)) * (size // 256))
        receiver = accepted.transport._conn
        await _until(lambda: receiver.receive_window == 0)
        assert accepted.data == b""
        # The sender's connection still holds what the full receive buffer could
        # not take -- give or take the rounding up of the scaled window, which
        # each ACK may push under one unit further (RFC 7323 2.3, as Linux).
        sender = client.transport._conn
        slack = receiver.stats.segments_sent << receiver.rcv_wscale
        assert sender.send_buffered >= size - receiver.config.receive_buffer - slack
        accepted.transport.resume_reading()
        data = await accepted.received(size)
        assert data == bytes(range(256)) * (size // 256)
        client.transport.close()
        assert await accepted.lost is None
        assert accepted.calls == FULL_LIFE
        server.close()
        await server.wait_closed()


async def test_pause_reading_holds_eof_behind_unread_data(rudp_stack: Stack) -> None:
    async with asyncio.timeout(TIMEOUT):
        server, client, accepted = await accept_one(rudp_stack)
        assert isinstance(accepted.transport, RudpTransport)
        assert client.transport is not None
        accepted.transport.pause_reading()
        client.transport.write(b"last words")
        client.transport.write_eof()
        receiver = accepted.transport._conn
        await _until(lambda: str(receiver.state) == "CLOSE-WAIT")
        await asyncio.sleep(0.01)
        assert accepted.calls == ["connection_made"]
        accepted.transport.resume_reading()
        await accepted.lost
        assert accepted.data == b"last words"
        assert accepted.calls[-2:] == ["eof_received", "connection_lost"]
        assert await client.lost is None
        server.close()
        await server.wait_closed()


async def test_rfc9293_3_10_5_abort_sends_rst(rudp_stack: Stack) -> None:
    async with asyncio.timeout(TIMEOUT):
        server, client, accepted = await accept_one(rudp_stack)
        assert client.transport is not None
        client.transport.write(b"unsent, maybe")
        client.transport.abort()
        assert client.transport.is_closing()
        client.transport.abort()  # a second abort is a no-op
        assert await client.lost is None
        assert isinstance(await accepted.lost, ConnectionResetError)
        assert client.calls == ["connection_made", "connection_lost"]
        server.close()
        await server.wait_closed()


async def test_close_with_unread_data_resets(rudp_stack: Stack) -> None:
    """RFC 2525 2.17, as Linux: closing with unread received data sends RST."""
    async with asyncio.timeout(TIMEOUT):
        server, client, accepted = await accept_one(rudp_stack)
        assert isinstance(accepted.transport, RudpTransport) and client.transport is not None
        accepted.transport.pause_reading()
        client.transport.write(b"never read")
        stats = accepted.transport._conn.stats
        await _until(lambda: stats.bytes_received == 10)
        accepted.transport.close()
        assert isinstance(await client.lost, ConnectionResetError)
        assert await accepted.lost is None
        server.close()
        await server.wait_closed()


async def test_failing_callback_goes_to_the_exception_handler_and_is_isolated(
    loop_errors: list[dict[str, object]],
) -> None:
    class Fragile(Recorder):
        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if data.startswith(b"boom"):
                raise ValueError("protocol bug")

    accepted: list[Fragile] = []

    def factory() -> Fragile:
        accepted.append(Fragile())
        return accepted[-1]

    async with asyncio.timeout(TIMEOUT):
        server = await rudp.create_server(factory, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        victim, victim_protocol = await rudp.create_connection(Recorder, HOST, port)
        healthy, healthy_protocol = await rudp.create_connection(Recorder, HOST, port)
        await _until(lambda: len(accepted) == 2)
        victim.write(b"boom")
        assert isinstance(await victim_protocol.lost, ConnectionResetError)
        assert isinstance(await accepted[0].lost, ValueError)
        healthy.write(b"fine")
        await accepted[1].received(4)
        assert [context["message"] for context in loop_errors] == [
            "Fatal error: protocol.data_received() call failed."
        ]
        loop_errors.clear()
        healthy.close()
        assert await healthy_protocol.lost is None
        server.close()
        await server.wait_closed()


async def test_buffered_protocol_gets_the_data(rudp_stack: Stack) -> None:
    class Buffered(asyncio.BufferedProtocol):
        def __init__(self) -> None:
            self.buffer = bytearray(1000)
            self.received = bytearray()
            self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def get_buffer(self, sizehint: int) -> bytearray:
            return self.buffer

        def buffer_updated(self, nbytes: int) -> None:
            self.received += self.buffer[:nbytes]

        def connection_lost(self, exc: Exception | None) -> None:
            self.lost.set_result(None)

    protocols: list[Buffered] = []

    def factory() -> Buffered:
        protocols.append(Buffered())
        return protocols[-1]

    payload = bytes(range(256)) * 400
    async with asyncio.timeout(TIMEOUT):
        server, port = await rudp_stack.create_server(factory)
        transport, _ = await rudp.create_connection(Recorder, HOST, port)
        transport.write(payload)
        transport.close()
        await _until(lambda: bool(protocols))
        await protocols[0].lost
        assert protocols[0].received == payload
        server.close()
        await server.wait_closed()


async def test_rudp_stats_and_set_protocol(rudp_stack: Stack) -> None:
    async with asyncio.timeout(TIMEOUT):
        server, client, accepted = await accept_one(rudp_stack)
        transport = client.transport
        assert transport is not None
        transport.write(b"counted")
        await accepted.received(7)
        stats = transport.get_extra_info("rudp_stats")
        await _until(lambda: stats.bytes_acked == 7)
        assert stats.bytes_sent >= 7
        # The live values the observability surface promises, beside the counters.
        assert stats.state == "ESTABLISHED"
        assert stats.srtt is not None and stats.rttvar is not None and stats.rto >= 0.2
        assert stats.cwnd > 0 and stats.ssthresh > 0 and stats.bytes_in_flight == 0
        assert stats.as_dict()["bytes_acked"] == 7
        replacement = Recorder()
        transport.set_protocol(replacement)
        assert transport.get_protocol() is replacement
        transport.close()
        assert await replacement.lost is None
        assert not client.lost.done()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("bad", [object(), 42])
async def test_writelines_rejects_what_join_rejects(rudp_stack: Stack, bad: object) -> None:
    async with asyncio.timeout(TIMEOUT):
        server, client, _ = await accept_one(rudp_stack)
        assert client.transport is not None
        with pytest.raises(TypeError):
            client.transport.writelines([b"ok", bad])  # type: ignore[list-item]
        client.transport.close()
        await client.lost
        server.close()
        await server.wait_closed()


async def test_failing_protocol_factory_resets_that_client_only(
    loop_errors: list[dict[str, object]],
) -> None:
    calls = 0

    def factory() -> Recorder:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("factory bug")
        return Recorder()

    async with asyncio.timeout(TIMEOUT):
        server = await rudp.create_server(factory, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        _, first = await rudp.create_connection(Recorder, HOST, port)
        assert isinstance(await first.lost, ConnectionResetError)
        assert [context["message"] for context in loop_errors] == [
            "Error on transport creation for incoming connection"
        ]
        loop_errors.clear()
        second_transport, second = await rudp.create_connection(Recorder, HOST, port)
        second_transport.close()
        assert await second.lost is None
        server.close()
        await server.wait_closed()


async def test_failing_connection_lost_is_reported_and_the_server_goes_on(
    loop_errors: list[dict[str, object]],
) -> None:
    class Sore(Recorder):
        def connection_lost(self, exc: Exception | None) -> None:
            super().connection_lost(exc)
            raise KeyError("connection_lost bug")

    async with asyncio.timeout(TIMEOUT):
        server = await rudp.create_server(Sore, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        for _ in range(2):
            transport, client = await rudp.create_connection(Recorder, HOST, port)
            transport.close()
            assert await client.lost is None
        await _until(lambda: len(loop_errors) == 2)
        assert {context["message"] for context in loop_errors} == {
            "protocol.connection_lost() failed"
        }
        loop_errors.clear()
        server.close()
        await server.wait_closed()


async def test_client_protocol_factory_error_propagates() -> None:
    def factory() -> Recorder:
        raise LookupError("client factory bug")

    async with asyncio.timeout(TIMEOUT):
        server = await rudp.create_server(Recorder, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(LookupError):
            await rudp.create_connection(factory, HOST, port)
        server.close()
        await server.wait_closed()


async def test_rfc9293_3_6_wait_finished_waits_for_the_peers_fin(rudp_stack: Stack) -> None:
    """After close(), a process about to exit waits until the FIN exchange is over:
    while the peer keeps its side open (FIN-WAIT-2) wait_finished() waits; once the
    peer's FIN is acknowledged (TIME-WAIT) it returns."""
    async with asyncio.timeout(TIMEOUT):
        server, client, accepted = await accept_one(rudp_stack, eof_keeps_open=True)
        transport = client.transport
        assert isinstance(transport, RudpTransport)
        transport.close()
        await client.lost
        await _until(lambda: str(transport._conn.state) == "FIN-WAIT-2")
        waiting = asyncio.ensure_future(transport.wait_finished())
        await asyncio.sleep(0.05)
        assert not waiting.done()
        accepted.transport.close()
        await waiting
        assert str(transport._conn.state) == "TIME-WAIT"
        await transport.wait_finished()  # and at once when already finished
        server.close()
        await server.wait_closed()


async def test_wait_finished_after_abort_returns_at_once(rudp_stack: Stack) -> None:
    async with asyncio.timeout(TIMEOUT):
        server, client, _ = await accept_one(rudp_stack)
        transport = client.transport
        assert isinstance(transport, RudpTransport)
        transport.abort()
        await client.lost
        await transport.wait_finished()
        server.close()
        await server.wait_closed()


async def test_stream_writer_wait_finished() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    async with asyncio.timeout(TIMEOUT):
        server = await rudp.start_server(handler, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        _, writer = await rudp.open_connection(HOST, port)
        assert isinstance(writer, rudp.StreamWriter)
        writer.close()
        await writer.wait_closed()
        await writer.wait_finished()
        assert str(writer.transport._conn.state) in ("TIME-WAIT", "CLOSED")  # type: ignore[attr-defined]
        server.close()
        await server.wait_closed()
