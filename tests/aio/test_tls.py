"""TLS over rudp on the default loop and on uvloop: ``ssl=`` on the four calls,
``rudp.start_tls`` and the streams' ``writer.start_tls``, checked where it makes
sense against asyncio's own TLS over kernel TCP ("tcp").

The certificate is self-signed, for 127.0.0.1 and localhost, made by the
``openssl`` command when the module starts (skipped without it).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import shutil
import socket
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

import rudp
from tests.aio.aio_support import HOST, Recorder

TIMEOUT = 10
MIB = 1024 * 1024

StreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl command to make a self-signed certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-nodes", "-days", "1",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-keyout", str(key), "-out", str(cert),
            "-subj", "/CN=localhost", "-addext", f"subjectAltName=DNS:localhost,IP:{HOST}",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return Certificate(cert, key)


@pytest.fixture
def server_context(certificate: Certificate) -> ssl.SSLContext:
    return certificate.server_context()


@pytest.fixture
def client_context(certificate: Certificate) -> ssl.SSLContext:
    return certificate.client_context()


@pytest.fixture(params=["tcp", "rudp"])
def impl(request: pytest.FixtureRequest) -> str:
    """asyncio's TLS over kernel TCP, then rudp's: the test must pass on both."""
    return cast(str, request.param)


async def start_server(impl: str, handler: StreamHandler, **kwds: Any) -> asyncio.AbstractServer:
    if impl == "tcp":
        return await asyncio.start_server(handler, HOST, 0, **kwds)
    return await rudp.start_server(handler, HOST, 0, **kwds)


async def open_connection(
    impl: str, port: int, **kwds: Any
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if impl == "tcp":
        return await asyncio.open_connection(HOST, port, **kwds)
    return await rudp.open_connection(HOST, port, **kwds)


def port_of(server: asyncio.AbstractServer) -> int:
    return cast(int, server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reads (a ClientHello, say) and never answers."""
    with contextlib.suppress(ConnectionError):
        await reader.read()
    writer.close()


class Echo(Recorder):
    """Echoes what it receives; notes the TLS details it saw in connection_made."""

    seen_at_connection_made: dict[str, Any]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.seen_at_connection_made = {
            name: transport.get_extra_info(name) for name in ("cipher", "ssl_object", "peername")
        }
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        assert self.transport is not None
        self.transport.write(data)


# ------------------------------------------------------------------ ssl= argument
async def test_tls_echo_with_protocols_and_asyncio_extra_info(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    accepted: list[Echo] = []

    def factory() -> Echo:
        accepted.append(Echo())
        return accepted[-1]

    async with asyncio.timeout(TIMEOUT):
        server = await rudp.create_server(factory, HOST, 0, ssl=server_context)
        port = port_of(server)
        async with server:
            transport, client = await rudp.create_connection(
                Recorder, HOST, port, ssl=client_context
            )
            assert client.made.done()  # the handshake is over before create_connection returns
            assert transport.get_extra_info("sslcontext") is client_context
            assert transport.get_extra_info("peercert")["subject"] == (
                (("commonName", "localhost"),),
            )
            cipher = transport.get_extra_info("cipher")
            assert isinstance(cipher, tuple) and len(cipher) == 3
            ssl_object = transport.get_extra_info("ssl_object")
            assert isinstance(ssl_object, ssl.SSLObject)
            assert ssl_object.version() in ("TLSv1.2", "TLSv1.3")
            assert transport.get_extra_info("peername") == (HOST, port)
            assert transport.get_extra_info("sockname")[0] == HOST
            assert transport.get_extra_info("socket").type == socket.SOCK_DGRAM
            assert transport.get_extra_info("no such thing", "default") == "default"
            assert not transport.can_write_eof()

            transport.write(b"over TLS, over TCP, over UDP")
            assert await client.received(28) == b"over TLS, over TCP, over UDP"
            server_side = accepted[0]
            # The server's protocol, too, was told only once the handshake was done.
            assert server_side.seen_at_connection_made["cipher"] == cipher
            assert server_side.seen_at_connection_made["ssl_object"] is not None
            assert server_side.seen_at_connection_made["peername"] == transport.get_extra_info(
                "sockname"
            )
            transport.close()
            assert await client.lost is None
            assert await server_side.lost is None
            # asyncio's TLS layer calls eof_received once the close_notify exchange is over.
            assert client.calls == [
                "connection_made",
                "data_received",
                "eof_received",
                "connection_lost",
            ]


async def test_one_mebibyte_each_way_over_tls(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    client_data = random.Random(1).randbytes(MIB)
    server_data = random.Random(2).randbytes(MIB)
    server_got: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def send(writer: asyncio.StreamWriter, data: bytes) -> None:
        for start in range(0, len(data), 100_000):
            writer.write(data[start : start + 100_000])
            await writer.drain()

    async def exchange(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes
    ) -> str:
        # No write_eof under TLS (as asyncio): each side reads exactly what it expects.
        _, received = await asyncio.gather(send(writer, data), reader.readexactly(MIB))
        return hashlib.sha256(received).hexdigest()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server_got.set_result(await exchange(reader, writer, server_data))
        assert await reader.read() == b""  # the client's close_notify
        writer.close()
        await writer.wait_closed()

    async with asyncio.timeout(TIMEOUT):
        server = await rudp.start_server(handle, HOST, 0, ssl=server_context)
        async with server:
            reader, writer = await rudp.open_connection(HOST, port_of(server), ssl=client_context)
            assert (
                await exchange(reader, writer, client_data)
                == hashlib.sha256(server_data).hexdigest()
            )
            assert await server_got == hashlib.sha256(client_data).hexdigest()
            # The extra info of the connection under TLS: its bytes, and TLS's records.
            assert writer.get_extra_info("rudp_stats").bytes_sent > MIB
            writer.close()
            await writer.wait_closed()


async def test_certificate_verification_failure_as_asyncio(
    impl: str, server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    handled: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handled.append(writer)
        await reader.read()
        writer.close()

    async with asyncio.timeout(TIMEOUT):
        server = await start_server(impl, handle, ssl=server_context)
        port = port_of(server)
        async with server:
            # Not signed by anyone the default context trusts.
            with pytest.raises(ssl.SSLCertVerificationError, match="self-signed certificate"):
                await open_connection(impl, port, ssl=True)
            # Trusted, but not for that name.
            with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
                await open_connection(impl, port, ssl=client_context, server_hostname="rudp.test")
            assert handled == []  # the server's side was never told of them
            # And the right one, after the failures.
            _, writer = await open_connection(impl, port, ssl=client_context)
            writer.close()
            await writer.wait_closed()
        await server.wait_closed()  # every connection of the server has ended
    assert len(handled) == 1


async def test_ssl_true_uses_the_default_context() -> None:
    async with asyncio.timeout(TIMEOUT):
        server = await rudp.start_server(silent, HOST, 0)
        async with server:
            with pytest.raises(ConnectionAbortedError):
                await rudp.open_connection(
                    HOST, port_of(server), ssl=True, ssl_handshake_timeout=0.2
                )


async def test_client_ssl_handshake_timeout_as_asyncio(
    impl: str, client_context: ssl.SSLContext
) -> None:
    async with asyncio.timeout(TIMEOUT):
        server = await start_server(impl, silent)
        async with server:
            with pytest.raises(
                ConnectionAbortedError, match=r"SSL handshake is taking longer than 0\.2 seconds"
            ):
                await open_connection(
                    impl, port_of(server), ssl=client_context, ssl_handshake_timeout=0.2
                )


async def test_server_ssl_handshake_timeout_resets_a_silent_client(
    server_context: ssl.SSLContext,
) -> None:
    made: list[Echo] = []

    def factory() -> Echo:
        made.append(Echo())
        return made[-1]

    async with asyncio.timeout(TIMEOUT):
        server = await rudp.create_server(
            factory, HOST, 0, ssl=server_context, ssl_handshake_timeout=0.2
        )
        async with server:
            _, client = await rudp.create_connection(Recorder, HOST, port_of(server))
            # The server gave up on the handshake and reset the connection.
            assert isinstance(await client.lost, ConnectionResetError)
            assert len(made) == 1 and made[0].calls == []  # never told of it
        await server.wait_closed()


async def test_cancelling_create_connection_during_the_handshake_resets_it(
    client_context: ssl.SSLContext,
) -> None:
    ended: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read()
        except ConnectionError as exc:
            ended.set_result(exc)
        else:
            ended.set_result(None)
        writer.close()

    async with asyncio.timeout(TIMEOUT):
        server = await rudp.start_server(handle, HOST, 0)
        async with server:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2):
                    await rudp.open_connection(HOST, port_of(server), ssl=client_context)
            assert isinstance(await ended, ConnectionResetError)


async def test_a_failing_callback_is_reported_once_and_resets_the_connection(
    server_context: ssl.SSLContext,
    client_context: ssl.SSLContext,
    loop_errors: list[dict[str, Any]],
) -> None:
    class Failing(Recorder):
        def data_received(self, data: bytes) -> None:
            raise RuntimeError("application bug")

    accepted: list[Failing] = []

    def factory() -> Failing:
        accepted.append(Failing())
        return accepted[-1]

    async with asyncio.timeout(TIMEOUT):
        server = await rudp.create_server(factory, HOST, 0, ssl=server_context)
        async with server:
            transport, client = await rudp.create_connection(
                Recorder, HOST, port_of(server), ssl=client_context
            )
            transport.write(b"boom")
            lost = await accepted[0].lost
            assert isinstance(lost, RuntimeError)  # as asyncio's TLS: the error itself
            assert isinstance(await client.lost, ConnectionResetError)
    assert [error["message"] for error in loop_errors] == ["Fatal error on SSL protocol"]
    loop_errors.clear()


# ------------------------------------------------------------------ close
async def test_close_and_wait_closed_under_tls_from_either_side(
    impl: str, server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    server_done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        if line == b"close first\n":
            writer.write(b"bye\n")
            writer.close()
            await writer.wait_closed()
            server_done.set_result(line)
            return
        rest = await reader.read()  # ends with the client's close_notify
        writer.close()
        await writer.wait_closed()
        server_done.set_result(line + rest)

    async with asyncio.timeout(TIMEOUT):
        server = await start_server(impl, handle, ssl=server_context)
        port = port_of(server)
        async with server:
            # The client closes first.
            reader, writer = await open_connection(impl, port, ssl=client_context)
            writer.write(b"hello\nand the rest")
            writer.close()
            assert writer.is_closing()
            writer.write(b"dropped after close, as asyncio does")
            await writer.wait_closed()
            assert await server_done == b"hello\nand the rest"

            # The server closes first.
            server_done = asyncio.get_running_loop().create_future()
            reader, writer = await open_connection(impl, port, ssl=client_context)
            writer.write(b"close first\n")
            assert await reader.read() == b"bye\n"
            writer.close()
            await writer.wait_closed()
            assert await server_done == b"close first\n"
        await server.wait_closed()


# ------------------------------------------------------------------ start_tls
async def test_stream_start_tls_upgrades_mid_stream(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    """STARTTLS: plain text, then TLS on the same rudp connection, on both loops
    (uvloop's own loop.start_tls refuses any transport but its own)."""
    server_saw: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert isinstance(writer, rudp.StreamWriter)
        assert await reader.readline() == b"STARTTLS\n"
        writer.write(b"GO\n")
        await writer.start_tls(server_context)
        line = await reader.readline()
        server_saw.set_result([line, writer.get_extra_info("cipher")])
        writer.write(line.upper())
        await echo(reader, writer)

    async with asyncio.timeout(TIMEOUT):
        server = await rudp.start_server(handle, HOST, 0)
        async with server:
            reader, writer = await rudp.open_connection(HOST, port_of(server))
            assert isinstance(writer, asyncio.StreamWriter)
            assert writer.get_extra_info("sslcontext") is None
            writer.write(b"STARTTLS\n")
            assert await reader.readline() == b"GO\n"
            await writer.start_tls(client_context)
            assert writer.get_extra_info("sslcontext") is client_context
            assert writer.get_extra_info("peercert") is not None
            writer.write(b"secret\n")
            assert await reader.readline() == b"SECRET\n"
            line, cipher = await server_saw
            assert line == b"secret\n"
            assert cipher == writer.get_extra_info("cipher")
            writer.write(b"x" * 100_000)
            assert await reader.readexactly(100_000) == b"x" * 100_000
            writer.close()
            await writer.wait_closed()


async def test_start_tls_function_on_protocols_and_on_kernel_tcp(
    impl: str, server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    """``rudp.start_tls`` is ``loop.start_tls`` for any loop and stream transport:
    rudp's, and asyncio's or uvloop's own TCP transports too."""
    accepted: list[Echo] = []

    def factory() -> Echo:
        accepted.append(Echo())
        return accepted[-1]

    loop = asyncio.get_running_loop()
    async with asyncio.timeout(TIMEOUT):
        if impl == "tcp":
            server: asyncio.AbstractServer = await loop.create_server(factory, HOST, 0)
            plain, client = await loop.create_connection(Recorder, HOST, port_of(server))
        else:
            server = await rudp.create_server(factory, HOST, 0)
            plain, client = await rudp.create_connection(Recorder, HOST, port_of(server))
        async with server:
            plain.write(b"plain")
            assert await client.received(5) == b"plain"
            server_plain = accepted[0].transport
            assert server_plain is not None
            client_tls, server_tls = await asyncio.gather(
                rudp.start_tls(plain, client, client_context, server_hostname=HOST),
                rudp.start_tls(server_plain, accepted[0], server_context, server_side=True),
            )
            assert client_tls.get_extra_info("ssl_object") is not None
            assert server_tls.get_extra_info("peername") == plain.get_extra_info("sockname")
            accepted[0].transport = server_tls  # it echoes over TLS now
            client_tls.write(b" then secret")
            assert await client.received(17) == b"plain then secret"
            with pytest.raises(TypeError, match="sslcontext is expected"):
                await rudp.start_tls(client_tls, client, cast(Any, "no context"))
            client_tls.close()
            assert await client.lost is None
            assert await accepted[0].lost is None


# ------------------------------------------------------------------ arguments
async def test_argument_checks_as_asyncio(server_context: ssl.SSLContext) -> None:
    with pytest.raises(ValueError, match="server_hostname is only meaningful with ssl"):
        await rudp.create_connection(Recorder, HOST, 9, server_hostname="x")
    with pytest.raises(ValueError, match="ssl_handshake_timeout is only meaningful with ssl"):
        await rudp.create_connection(Recorder, HOST, 9, ssl_handshake_timeout=1)
    with pytest.raises(ValueError, match="ssl_shutdown_timeout is only meaningful with ssl"):
        await rudp.open_connection(HOST, 9, ssl_shutdown_timeout=1)
    with pytest.raises(ValueError, match="You must set server_hostname when using ssl"):
        await rudp.create_connection(Recorder, "", 9, ssl=True)
    with pytest.raises(ValueError, match="ssl_handshake_timeout should be a positive number"):
        await rudp.create_connection(Recorder, HOST, 9, ssl=True, ssl_handshake_timeout=0)
    with pytest.raises(TypeError, match="ssl argument must be an SSLContext or None"):
        await rudp.create_server(Recorder, HOST, 0, ssl=cast(Any, True))
    with pytest.raises(ValueError, match="ssl_handshake_timeout is only meaningful with ssl"):
        await rudp.start_server(echo, HOST, 0, ssl_handshake_timeout=1)
    with pytest.raises(ValueError, match="ssl_shutdown_timeout should be a positive number"):
        await rudp.create_server(Recorder, HOST, 0, ssl=server_context, ssl_shutdown_timeout=-1)
