"""Failures over kernel TCP and over rudp: the same exceptions, at the same calls.

Refused connections, a port in use, a server closed under its clients, resets,
writes to a peer that has gone, StreamReader limit overruns, cancelled reads,
writes and connects that must leave the connection (or the server) usable, and a
loop closed after the application closed everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
from typing import Any, cast

import pytest

from tests.parity.parity_support import (
    CHUNK,
    HOST,
    MIB,
    Peer,
    Stack,
    WriterProgress,
    cancel_and_wait,
    first_difference,
    pattern,
    port_of,
    stream_pair,
    until_stalled,
    write_pattern_until_stopped,
)

uvloop: Any
try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency on CPython/POSIX
    uvloop = None

TIMEOUT = 10
BULK_TIMEOUT = 30


# -------------------------------------------------------------- refused / closed
async def test_open_connection_to_a_port_nobody_listens_on_is_refused(stack: Stack) -> None:
    async with asyncio.timeout(TIMEOUT):
        with pytest.raises(ConnectionRefusedError):
            await stack.open_connection(HOST, stack.unused_port())


async def test_create_connection_to_a_port_nobody_listens_on_is_refused(stack: Stack) -> None:
    made: list[Peer] = []

    def factory() -> Peer:
        made.append(Peer())
        return made[-1]

    async with asyncio.timeout(TIMEOUT):
        with pytest.raises(ConnectionRefusedError):
            await stack.create_connection(factory, HOST, stack.unused_port())
        assert all(peer.calls == [] for peer in made)  # no connection_made


async def test_connect_after_the_server_closed_is_refused(stack: Stack) -> None:
    async with asyncio.timeout(TIMEOUT):
        server = await stack.start_server(lambda r, w: None, HOST, 0)
        port = port_of(server)
        server.close()
        await server.wait_closed()
        assert not server.is_serving()
        with pytest.raises(ConnectionRefusedError):
            await stack.open_connection(HOST, port)


async def test_server_close_leaves_connected_clients_working(stack: Stack) -> None:
    """asyncio's Server.close() stops listening and leaves established connections
    alone; wait_closed() returns once they are gone."""
    handlers: list[asyncio.Future[bytes]] = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        done = asyncio.get_running_loop().create_future()
        handlers.append(done)
        seen = b""
        while line := await reader.readline():
            seen += line
            writer.write(line)
            await writer.drain()
        writer.close()
        await writer.wait_closed()
        done.set_result(seen)

    async with asyncio.timeout(TIMEOUT):
        server = await stack.start_server(echo, HOST, 0)
        port = port_of(server)
        clients = [await stack.open_connection(HOST, port) for _ in range(3)]
        for index, (reader, writer) in enumerate(clients):
            writer.write(b"before %d\n" % index)
            assert await reader.readline() == b"before %d\n" % index
        server.close()
        assert not server.is_serving()
        with pytest.raises(ConnectionRefusedError):
            await stack.open_connection(HOST, port)
        for index, (reader, writer) in enumerate(clients):
            writer.write(b"after %d\n" % index)
            assert await reader.readline() == b"after %d\n" % index
            writer.write_eof()
            assert await reader.read() == b""
            writer.close()
            await writer.wait_closed()
        await server.wait_closed()
        seen = sorted(await asyncio.gather(*handlers))
        assert seen == [b"before %d\nafter %d\n" % (i, i) for i in range(3)]


async def close_on_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()
    writer.close()
    await writer.wait_closed()


async def test_serve_forever_cancelled_closes_the_server(stack: Stack) -> None:
    async with asyncio.timeout(TIMEOUT):
        server = await stack.start_server(close_on_eof, HOST, 0, start_serving=False)
        port = port_of(server)
        serving = asyncio.create_task(server.serve_forever())
        while not server.is_serving():
            await asyncio.sleep(0)
        _, writer = await stack.open_connection(HOST, port)
        writer.close()
        await writer.wait_closed()
        await cancel_and_wait(serving)
        assert not server.is_serving()
        with pytest.raises(ConnectionRefusedError):
            await stack.open_connection(HOST, port)


async def test_listening_on_a_port_in_use_raises_address_in_use(stack: Stack) -> None:
    async with asyncio.timeout(TIMEOUT):
        server = await stack.start_server(close_on_eof, HOST, 0)
        async with server:
            with pytest.raises(OSError) as in_use:
                await stack.start_server(close_on_eof, HOST, port_of(server))
            assert in_use.value.errno == errno.EADDRINUSE


# --------------------------------------------------------------- resets, errors
async def test_reset_by_the_peer_fails_read_and_drain(stack: Stack) -> None:
    """The peer ends with data unread: RST (RFC 2525 2.17), and this end's read()
    and drain() raise ConnectionResetError."""
    async with asyncio.timeout(TIMEOUT), stream_pair(stack) as pair:
        cast(asyncio.Transport, pair.client_writer.transport).pause_reading()
        pair.server_writer.write(b"never read")
        await pair.server_writer.drain()
        await asyncio.sleep(0.05)  # loopback: the data sits in the client's buffer
        pair.client_writer.transport.abort()
        with pytest.raises(ConnectionResetError):
            await pair.server_reader.read()
        with pytest.raises(ConnectionResetError):
            await pair.server_writer.drain()


async def test_writing_to_a_peer_that_closed_fails(stack: Stack) -> None:
    """The peer closed its socket for good: data sent to it draws RST, and a later
    drain() raises a ConnectionError (reset or broken pipe)."""
    async with asyncio.timeout(TIMEOUT), stream_pair(stack) as pair:
        pair.server_writer.close()
        await pair.server_writer.wait_closed()
        assert await pair.client_reader.read() == b""
        with pytest.raises(ConnectionError):
            for _ in range(200):
                pair.client_writer.write(b"anyone there?")
                await pair.client_writer.drain()
                await asyncio.sleep(0.01)


async def test_peer_abort_fails_a_pending_wait_closed(stack: Stack) -> None:
    """close() with data the peer never reads, then the peer aborts (RST, it has
    unread data): wait_closed() raises a ConnectionError instead of hanging."""
    progress = WriterProgress()
    async with asyncio.timeout(BULK_TIMEOUT), stream_pair(stack) as pair:
        writer = pair.client_writer
        producer = asyncio.create_task(write_pattern_until_stopped(writer, progress))
        await until_stalled(progress)
        await cancel_and_wait(producer)
        writer.close()
        closing = asyncio.create_task(writer.wait_closed())
        await asyncio.sleep(0.05)
        assert not closing.done()
        pair.server_writer.transport.abort()
        await asyncio.wait({closing})
        assert isinstance(closing.exception(), ConnectionError), closing


# -------------------------------------------------------------- limit overruns
async def test_readline_longer_than_limit_raises_value_error_and_skips_the_line(
    stack: Stack,
) -> None:
    async with asyncio.timeout(TIMEOUT), stream_pair(stack, client_limit=100) as pair:
        pair.server_writer.write(b"x" * 200 + b"\nok\n")
        with pytest.raises(ValueError):
            await pair.client_reader.readline()
        assert await pair.client_reader.readline() == b"ok\n"


async def test_readuntil_longer_than_limit_raises_and_keeps_the_data(stack: Stack) -> None:
    async with asyncio.timeout(TIMEOUT), stream_pair(stack, client_limit=100) as pair:
        pair.server_writer.write(b"y" * 150 + b"|end|")
        with pytest.raises(asyncio.LimitOverrunError) as overrun:
            await pair.client_reader.readuntil(b"|")
        assert overrun.value.consumed == 150
        assert await pair.client_reader.readexactly(151) == b"y" * 150 + b"|"
        assert await pair.client_reader.readuntil(b"|") == b"end|"


async def test_server_side_limit_overrun_on_a_long_line(stack: Stack) -> None:
    """readline() raises ValueError for a line over the limit and drops what it
    buffered; how much of the long line is left for the next calls depends on how
    the bytes were cut into segments, so the test reads on until the next line."""
    async with asyncio.timeout(TIMEOUT), stream_pair(stack, server_limit=1024) as pair:
        receiving = asyncio.create_task(pair.server_reader.readline())
        pair.client_writer.write(b"z" * 5000)
        with pytest.raises(ValueError):
            await receiving
        pair.client_writer.write(b"\nshort\n")
        while True:
            try:
                line = await pair.server_reader.readline()
            except ValueError:
                continue  # more of the long line, still over the limit
            if line == b"short\n":
                break
            assert line.endswith(b"\n") and not line[:-1].strip(b"z")  # the long line's tail


async def test_reads_far_beyond_the_limit_pause_and_resume_the_transport(stack: Stack) -> None:
    data = pattern(MIB, seed=21)
    async with asyncio.timeout(BULK_TIMEOUT), stream_pair(stack, client_limit=1024) as pair:
        pair.server_writer.write(data)
        pair.server_writer.write_eof()
        got = await pair.client_reader.readexactly(MIB - 10)
        got += await pair.client_reader.read(100_000)
        assert got == data, first_difference(got, data)
        assert await pair.client_reader.read() == b""


# ------------------------------------------------------------------ cancellation
async def test_cancelled_read_leaves_the_stream_usable(stack: Stack) -> None:
    async with asyncio.timeout(TIMEOUT), stream_pair(stack) as pair:
        for read in (pair.client_reader.read(100), pair.client_reader.readline()):
            pending = asyncio.create_task(read)
            for _ in range(5):
                await asyncio.sleep(0)
            assert not pending.done()
            await cancel_and_wait(pending)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await pair.client_reader.readexactly(1)
        pair.server_writer.write(b"after the cancels\n")
        assert await pair.client_reader.readline() == b"after the cancels\n"


async def test_cancelled_readexactly_keeps_the_partial_data(stack: Stack) -> None:
    async with asyncio.timeout(TIMEOUT), stream_pair(stack) as pair:
        pending = asyncio.create_task(pair.client_reader.readexactly(10))
        pair.server_writer.write(b"part")
        await pair.server_writer.drain()
        await asyncio.sleep(0.05)  # loopback: "part" reaches the reader
        assert not pending.done()
        await cancel_and_wait(pending)
        pair.server_writer.write(b"-rest!")
        assert await pair.client_reader.readexactly(10) == b"part-rest!"


async def test_cancelled_drain_loses_no_byte(stack: Stack) -> None:
    """drain() cancelled while blocked under backpressure: what was written
    before stays queued, and writing goes on afterwards."""
    progress = WriterProgress()
    async with asyncio.timeout(BULK_TIMEOUT), stream_pair(stack) as pair:
        writer = pair.client_writer
        producer = asyncio.create_task(
            write_pattern_until_stopped(writer, progress), name="producer"
        )
        await until_stalled(progress)
        await cancel_and_wait(producer)
        sent = progress.sent + CHUNK  # the chunk whose drain() was cancelled is queued
        receiving = asyncio.create_task(pair.server_reader.read())
        tail = pattern(3 * CHUNK, seed=sent // 4)
        writer.write(tail)
        await writer.drain()
        writer.write_eof()
        got = await receiving
        want = pattern(sent + len(tail))
        assert got == want, first_difference(got, want)


async def test_cancelled_open_connection_leaves_the_server_serving(stack: Stack) -> None:
    ended: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            ended.append(await reader.read())
        except ConnectionResetError:
            ended.append(b"reset")
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    async with asyncio.timeout(TIMEOUT):
        server = await stack.start_server(handler, HOST, 0)
        async with server:
            port = port_of(server)
            for yields in range(8):
                connecting = asyncio.create_task(stack.open_connection(HOST, port))
                for _ in range(yields):
                    await asyncio.sleep(0)
                connecting.cancel()
                await asyncio.wait({connecting})
                if connecting.cancelled():
                    continue
                _, writer = connecting.result()
                writer.close()  # it won the race: fine, close it
                await writer.wait_closed()
            _, writer = await stack.open_connection(HOST, port)
            writer.write(b"still serving")
            writer.write_eof()
            while b"still serving" not in ended:
                await asyncio.sleep(0.005)
            assert set(ended) <= {b"", b"reset", b"still serving"}
            writer.close()
            await writer.wait_closed()


# ------------------------------------------------------------------ loop shutdown
async def _exchange_and_close_everything(stack: Stack) -> None:
    server = await stack.start_server(close_on_eof, HOST, 0)
    reader, writer = await stack.open_connection(HOST, port_of(server))
    writer.write(b"bye")
    writer.write_eof()
    assert await reader.read() == b""
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()


LOOPS = {"asyncio": asyncio.new_event_loop}
if uvloop is not None:
    LOOPS["uvloop"] = uvloop.new_event_loop


@pytest.mark.parametrize("loop_name", list(LOOPS))
def test_closing_the_loop_after_everything_was_closed_reports_nothing(
    stack: Stack, loop_name: str
) -> None:
    """The run_until_complete() then loop.close() idiom (no asyncio.run to cancel
    leftover tasks): once the application closed its connections and its server
    and awaited wait_closed(), nothing of the stack may be left to complain."""
    errors: list[dict[str, Any]] = []
    loop = LOOPS[loop_name]()
    loop.set_exception_handler(lambda _, context: errors.append(context))
    try:
        loop.run_until_complete(asyncio.wait_for(_exchange_and_close_everything(stack), TIMEOUT))
    finally:
        loop.close()
    gc.collect()
    assert [context.get("message") for context in errors] == []
