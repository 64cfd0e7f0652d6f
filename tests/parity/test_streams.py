"""asyncio streams over kernel TCP and over rudp: the same calls, the same results.

Reading (readexactly, readuntil, readline, read(-1), at_eof), the half-close of
RFC 9293 3.6 in both directions, drain() under backpressure, close and
wait_closed from each side, small-message latency, IPv6, and TLS on top of the
stream.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
import subprocess
from pathlib import Path

import pytest

from tests.parity.parity_support import (
    CHUNK,
    HOST,
    MIB,
    STALL,
    Stack,
    WriterProgress,
    cancel_and_wait,
    first_difference,
    pattern,
    port_of,
    stream_pair,
    until_stalled,
    write_all_draining,
    write_pattern_until_stopped,
)

TIMEOUT = 10
BULK_TIMEOUT = 30


async def test_readexactly_exact_sizes_then_incomplete_read_at_eof(stack: Stack) -> None:
    async with asyncio.timeout(TIMEOUT), stream_pair(stack) as pair:
        for _ in range(10):
            pair.server_writer.write(b"0123456789")
        pair.server_writer.write(b"tail")
        pair.server_writer.write_eof()
        reader = pair.client_reader
        assert await reader.readexactly(0) == b""
        for _ in range(10):
            assert await reader.readexactly(10) == b"0123456789"
        with pytest.raises(asyncio.IncompleteReadError) as short:
            await reader.readexactly(10)
        assert (short.value.partial, short.value.expected) == (b"tail", 10)
        assert reader.at_eof()
        with pytest.raises(asyncio.IncompleteReadError) as empty:
            await reader.readexactly(1)
        assert empty.value.partial == b""


async def test_readexactly_spans_many_segments(stack: Stack) -> None:
    data = pattern(MIB + 3)
    async with asyncio.timeout(TIMEOUT), stream_pair(stack) as pair:
        pair.server_writer.write(data)
        pair.server_writer.write_eof()
        first = await pair.client_reader.readexactly(MIB)
        assert first == data[:MIB], first_difference(first, data[:MIB])
        assert await pair.client_reader.readexactly(3) == data[MIB:]
        assert await pair.client_reader.read() == b""


async def test_readuntil_separator_split_across_writes_then_incomplete_read(
    stack: Stack,
) -> None:
    async with asyncio.timeout(TIMEOUT), stream_pair(stack) as pair:
        writer, reader = pair.server_writer, pair.client_reader
        writer.write(b"alpha\r\nbeta\r\n\r\none--")
        assert await reader.readuntil(b"\r\n") == b"alpha\r\n"
        assert await reader.readuntil(b"\r\n") == b"beta\r\n"
        assert await reader.readuntil(b"\r\n") == b"\r\n"
        # The separator arrives in two writes: readuntil must wait for its second half.
        pending = asyncio.create_task(reader.readuntil(b"----"))
        await writer.drain()
        for _ in range(5):
            await asyncio.sleep(0)
        assert not pending.done()
        writer.write(b"--two|gamma")
        assert await pending == b"one----"
        assert await reader.readuntil(b"|") == b"two|"
        writer.write_eof()
        with pytest.raises(asyncio.IncompleteReadError) as incomplete:
            await reader.readuntil(b"\r\n")
        assert incomplete.value.partial == b"gamma"
        assert reader.at_eof()


async def test_readline_lines_then_unterminated_last_line_then_empty(stack: Stack) -> None:
    async with asyncio.timeout(TIMEOUT), stream_pair(stack) as pair:
        pair.server_writer.write(b"first\nsecond\n\nlast without newline")
        pair.server_writer.write_eof()
        reader = pair.client_reader
        assert await reader.readline() == b"first\n"
        assert await reader.readline() == b"second\n"
        assert await reader.readline() == b"\n"
        assert await reader.readline() == b"last without newline"
        assert await reader.readline() == b""
        assert await reader.readline() == b""
        assert reader.at_eof()


async def test_read_minus_one_returns_everything_until_eof(stack: Stack) -> None:
    data = pattern(2 * MIB, seed=7)
    async with asyncio.timeout(TIMEOUT), stream_pair(stack) as pair:
        assert await pair.client_reader.read(0) == b""
        for start in range(0, len(data), 100_000):
            pair.server_writer.write(data[start : start + 100_000])
        pair.server_writer.write_eof()
        got = await pair.client_reader.read(-1)
        assert got == data, first_difference(got, data)
        assert await pair.client_reader.read() == b""
        assert await pair.client_reader.read(10) == b""


async def test_read_n_returns_at_most_n(stack: Stack) -> None:
    async with asyncio.timeout(TIMEOUT), stream_pair(stack) as pair:
        pair.server_writer.write(b"x" * 5000)
        pair.server_writer.write_eof()
        got = b""
        while chunk := await pair.client_reader.read(700):
            assert 0 < len(chunk) <= 700
            got += chunk
        assert got == b"x" * 5000


async def test_at_eof_only_once_eof_arrived_and_buffer_is_empty(stack: Stack) -> None:
    async with asyncio.timeout(TIMEOUT), stream_pair(stack) as pair:
        reader = pair.client_reader
        assert not reader.at_eof()
        pair.server_writer.write(b"abc")
        assert await reader.readexactly(3) == b"abc"
        assert not reader.at_eof()  # the peer has not half-closed yet
        pair.server_writer.write(b"def")
        pair.server_writer.write_eof()
        with pytest.raises(asyncio.IncompleteReadError) as incomplete:
            await reader.readexactly(4)
        assert incomplete.value.partial == b"def"
        assert reader.at_eof()
        assert reader.exception() is None


async def test_rfc9293_3_6_client_half_close_server_answers(stack: Stack) -> None:
    answer = pattern(256 * 1024, seed=3)
    async with asyncio.timeout(TIMEOUT), stream_pair(stack) as pair:
        client = pair.client_writer
        assert client.can_write_eof()
        client.write(b"request")
        client.write_eof()
        with pytest.raises(RuntimeError):
            client.write(b"after eof")
        assert await pair.server_reader.read() == b"request"
        assert pair.server_reader.at_eof()
        # The other direction still carries data after the client's FIN.
        receiving = asyncio.create_task(pair.client_reader.read())
        pair.server_writer.write(answer)
        await pair.server_writer.drain()
        pair.server_writer.close()
        await pair.server_writer.wait_closed()
        got = await receiving
        assert got == answer, first_difference(got, answer)
        assert pair.client_reader.at_eof()


async def test_rfc9293_3_6_server_half_close_client_keeps_sending(stack: Stack) -> None:
    upload = pattern(MIB, seed=11)
    async with asyncio.timeout(TIMEOUT), stream_pair(stack) as pair:
        pair.server_writer.write(b"greeting, now send")
        pair.server_writer.write_eof()
        assert await pair.client_reader.read() == b"greeting, now send"
        assert pair.client_reader.at_eof()
        receiving = asyncio.create_task(pair.server_reader.read())
        for start in range(0, len(upload), 100_000):
            pair.client_writer.write(upload[start : start + 100_000])
            await pair.client_writer.drain()
        pair.client_writer.write_eof()
        got = await receiving
        assert got == upload, first_difference(got, upload)


@pytest.mark.parametrize("direction", ["client-to-server", "server-to-client"])
async def test_drain_blocks_while_the_peer_does_not_read_and_no_byte_is_lost(
    stack: Stack, direction: str
) -> None:
    """Flow control end to end: the reader stops, its window closes, the writer's
    buffer passes the high-water mark and drain() blocks; once the reader reads
    again every byte arrives, in order, once."""
    progress = WriterProgress()
    async with asyncio.timeout(BULK_TIMEOUT), stream_pair(stack) as pair:
        if direction == "client-to-server":
            writer, reader = pair.client_writer, pair.server_reader
        else:
            writer, reader = pair.server_writer, pair.client_reader
        producer = asyncio.create_task(write_pattern_until_stopped(writer, progress))
        await until_stalled(progress)
        low, _ = writer.transport.get_write_buffer_limits()
        assert writer.transport.get_write_buffer_size() > low
        progress.stop = True
        got = await reader.read()
        await producer
        want = pattern(progress.sent)
        assert got == want, first_difference(got, want)


async def test_slow_reader_with_small_limit_gets_every_byte(stack: Stack) -> None:
    """A reader whose buffer limit is tiny pauses and resumes its transport over
    and over while the writer keeps draining."""
    data = pattern(2 * MIB, seed=9)
    progress = WriterProgress()
    async with asyncio.timeout(BULK_TIMEOUT), stream_pair(stack, server_limit=4096) as pair:
        producer = asyncio.create_task(write_all_draining(pair.client_writer, data, progress))
        digest = hashlib.sha256()
        size = 0
        while chunk := await pair.server_reader.read(3000):
            digest.update(chunk)
            size += len(chunk)
            await asyncio.sleep(0)
        await producer
        assert size == len(data)
        assert digest.hexdigest() == hashlib.sha256(data).hexdigest()


async def test_client_closes_first_and_wait_closed_returns(stack: Stack) -> None:
    async with asyncio.timeout(TIMEOUT), stream_pair(stack) as pair:
        pair.client_writer.write(b"last words")
        pair.client_writer.close()
        assert pair.client_writer.is_closing()
        await pair.client_writer.wait_closed()
        await pair.client_writer.wait_closed()  # again: returns at once
        assert await pair.server_reader.read() == b"last words"
        assert pair.server_reader.at_eof()
        pair.server_writer.close()
        await pair.server_writer.wait_closed()


async def test_server_closes_first_and_wait_closed_returns(stack: Stack) -> None:
    async with asyncio.timeout(TIMEOUT), stream_pair(stack) as pair:
        pair.server_writer.write(b"goodbye")
        pair.server_writer.close()
        await pair.server_writer.wait_closed()
        assert await pair.client_reader.read() == b"goodbye"
        assert pair.client_reader.at_eof()
        pair.client_writer.close()
        await pair.client_writer.wait_closed()


async def test_both_close_at_once(stack: Stack) -> None:
    async with asyncio.timeout(TIMEOUT), stream_pair(stack) as pair:
        pair.client_writer.close()
        pair.server_writer.close()
        await asyncio.gather(pair.client_writer.wait_closed(), pair.server_writer.wait_closed())
        assert pair.client_writer.is_closing() and pair.server_writer.is_closing()


async def test_close_delivers_everything_written_before_it(stack: Stack) -> None:
    data = pattern(2 * MIB, seed=13)
    async with asyncio.timeout(BULK_TIMEOUT), stream_pair(stack) as pair:
        receiving = asyncio.create_task(pair.server_reader.read())
        pair.client_writer.write(data)  # no drain: close() must flush it
        pair.client_writer.close()
        await pair.client_writer.wait_closed()
        got = await receiving
        assert got == data, first_difference(got, data)


async def test_wait_closed_waits_until_the_peer_has_taken_the_data(stack: Stack) -> None:
    """close() with more data queued than the peer takes yet: wait_closed() blocks
    until the peer reads; then every byte arrives and wait_closed() returns."""
    progress = WriterProgress()
    async with asyncio.timeout(BULK_TIMEOUT), stream_pair(stack) as pair:
        writer = pair.client_writer
        producer = asyncio.create_task(write_pattern_until_stopped(writer, progress))
        await until_stalled(progress)
        await cancel_and_wait(producer)
        writer.close()
        closing = asyncio.create_task(writer.wait_closed())
        await asyncio.sleep(STALL)
        assert not closing.done()  # the data, then the FIN, wait for the reader
        got = await pair.server_reader.read()
        await closing
        want = pattern(progress.sent + CHUNK)  # + the chunk whose drain() was cancelled
        assert got == want, first_difference(got, want)


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")
async def test_ipv6_loopback_exchange(stack: Stack) -> None:
    async def echo_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.read())
        writer.close()
        await writer.wait_closed()

    async with asyncio.timeout(TIMEOUT):
        server = await stack.start_server(echo_once, "::1", 0)
        async with server:
            port = port_of(server)
            reader, writer = await stack.open_connection("::1", port)
            assert writer.get_extra_info("peername")[:2] == ("::1", port)
            writer.write(b"over IPv6")
            writer.write_eof()
            assert await reader.read() == b"over IPv6"
            writer.close()
            await writer.wait_closed()


# ------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def tls_contexts(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for 127.0.0.1, made now: (server, client) contexts."""
    folder: Path = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-nodes", "-days", "1",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-keyout", str(key), "-out", str(cert),
            "-subj", "/CN=rudp-parity", "-addext", f"subjectAltName=IP:{HOST}",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))
    return server_context, client_context


async def test_ssl_argument_with_a_self_signed_certificate(
    stack: Stack, tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server_context, client_context = tls_contexts

    async def echo_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async with asyncio.timeout(TIMEOUT):
        server = await stack.start_server(echo_line, HOST, 0, ssl=server_context)
        async with server:
            reader, writer = await stack.open_connection(
                HOST, port_of(server), ssl=client_context, server_hostname=HOST
            )
            assert writer.get_extra_info("ssl_object") is not None
            writer.write(b"secret line\n")
            assert await reader.readline() == b"secret line\n"
            assert await reader.read() == b""
            writer.close()
            await writer.wait_closed()


async def test_start_tls_upgrades_a_plain_connection(
    stack: Stack, tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server_context, client_context = tls_contexts
    async with asyncio.timeout(TIMEOUT), stream_pair(stack) as pair:
        pair.client_writer.write(b"STARTTLS\n")
        assert await pair.server_reader.readline() == b"STARTTLS\n"
        pair.server_writer.write(b"GO\n")
        assert await pair.client_reader.readline() == b"GO\n"
        await asyncio.gather(
            pair.server_writer.start_tls(server_context),
            pair.client_writer.start_tls(client_context, server_hostname=HOST),
        )
        assert pair.client_writer.get_extra_info("ssl_object") is not None
        pair.client_writer.write(b"encrypted hello\n")
        assert await pair.server_reader.readline() == b"encrypted hello\n"
        pair.server_writer.write(b"encrypted answer\n")
        assert await pair.client_reader.readline() == b"encrypted answer\n"


async def test_small_request_response_round_trips_are_not_delayed(stack: Stack) -> None:
    """asyncio sets TCP_NODELAY: a small message goes at once, so a ping-pong of
    small messages runs at loopback speed (a Nagle or delayed-ACK stall of tens of
    milliseconds per exchange would blow the timeout)."""
    async with asyncio.timeout(TIMEOUT), stream_pair(stack) as pair:
        for index in range(300):
            pair.client_writer.write(b"ping %d\n" % index)
            assert await pair.server_reader.readline() == b"ping %d\n" % index
            pair.server_writer.write(b"pong %d\n" % index)
            assert await pair.client_reader.readline() == b"pong %d\n" % index
