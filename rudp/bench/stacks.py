"""The stream implementations under test, behind one small interface, and process probes.

rudp, kernel TCP and aioquic all hand the benchmark an asyncio
``(StreamReader, StreamWriter)`` pair; only opening, serving and closing differ.
Raw UDP is no stream: the echo peers here serve the latency, connection-rate
and scale measures; bulk has its own sender and receiver.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import resource
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from .common import HOST

StreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

# Socket buffers for the UDP baseline: room for 64 datagrams of the largest size.
UDP_SOCKET_BUFFER = 4 * 1024 * 1024
BACKLOG = 1024
_ALPN = ["rudp-bench"]
# rudp as configured by default, and with Config(checksum="udp").
RUDP_IMPLS = ("rudp", "rudp-udpsum")


def cpu_seconds() -> float:
    """User + system CPU time of this process (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_bytes() -> int:
    """Resident set size now (Linux), else the peak."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak * 1024 if os.uname().sysname == "Linux" else peak


@dataclass
class StreamConn:
    """One client connection: its streams and how to close it."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    _close: Callable[[], Awaitable[None]]

    async def aclose(self) -> None:
        await self._close()


@dataclass
class StreamServer:
    port: int
    _close: Callable[[], Awaitable[None]]

    async def aclose(self) -> None:
        await self._close()


async def serve_streams(
    impl: str, handler: StreamHandler, datagram_size: int | None = None
) -> StreamServer:
    """Serve ``handler`` on 127.0.0.1, an ephemeral port."""
    if impl in RUDP_IMPLS:
        import rudp

        rudp_server = await rudp.start_server(
            handler, HOST, 0, backlog=BACKLOG, config=_rudp_config(impl, datagram_size)
        )

        async def close_rudp() -> None:
            rudp_server.close()

        return StreamServer(rudp_server.sockets[0].getsockname()[1], close_rudp)
    if impl == "tcp":
        tcp_server = await asyncio.start_server(handler, HOST, 0, backlog=BACKLOG)

        async def close_tcp() -> None:
            tcp_server.close()

        return StreamServer(tcp_server.sockets[0].getsockname()[1], close_tcp)
    if impl == "aioquic":
        return await _serve_quic(handler, datagram_size)
    raise ValueError(f"{impl!r} is not a stream implementation")


async def open_stream(impl: str, port: int, datagram_size: int | None = None) -> StreamConn:
    """Connect to 127.0.0.1:``port``; returns once the handshake is complete."""
    if impl in RUDP_IMPLS:
        import rudp

        config = _rudp_config(impl, datagram_size)
        reader, writer = await rudp.open_connection(HOST, port, config=config)
        return StreamConn(reader, writer, _closer(writer))
    if impl == "tcp":
        reader, writer = await asyncio.open_connection(HOST, port)
        return StreamConn(reader, writer, _closer(writer))
    if impl == "aioquic":
        return await _open_quic(port, datagram_size)
    raise ValueError(f"{impl!r} is not a stream implementation")


def _closer(writer: asyncio.StreamWriter) -> Callable[[], Awaitable[None]]:
    async def close() -> None:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    return close


def _rudp_config(impl: str, datagram_size: int | None) -> Any:
    import rudp

    options: dict[str, Any] = {"checksum": "udp"} if impl == "rudp-udpsum" else {}
    if datagram_size is not None:
        options["max_segment_size"] = datagram_size
    return rudp.Config(**options)


def udp_socket(connect_port: int | None = None) -> socket.socket:
    """A non-blocking UDP socket with large buffers, bound to 127.0.0.1 (and
    connected to ``connect_port`` when given)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, option, UDP_SOCKET_BUFFER)
        sock.bind((HOST, 0))
        if connect_port is not None:
            sock.connect((HOST, connect_port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


# ------------------------------------------------------------------ echo
async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Send back whatever arrives, until EOF."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


class UdpEcho(asyncio.DatagramProtocol):
    """The raw UDP echo server."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(data, addr)


class UdpEchoClient(asyncio.DatagramProtocol):
    """One outstanding datagram at a time; ``ask`` returns its echo."""

    def __init__(self) -> None:
        self.waiter: asyncio.Future[bytes] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    async def ask(self, data: bytes) -> bytes:
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.sendto(data)
        return await self.waiter


async def open_udp_client(port: int) -> UdpEchoClient:
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(UdpEchoClient, sock=udp_socket(port))
    client.transport = transport
    return client


# ------------------------------------------------------------------ aioquic
def _quic_configuration(is_client: bool, datagram_size: int | None) -> Any:
    from aioquic.quic.configuration import QuicConfiguration  # type: ignore[import-not-found,unused-ignore]

    configuration = QuicConfiguration(is_client=is_client, alpn_protocols=_ALPN, idle_timeout=600.0)
    if datagram_size is not None:
        configuration.max_datagram_size = datagram_size
    if is_client:
        import ssl

        configuration.verify_mode = ssl.CERT_NONE
    else:
        configuration.certificate, configuration.private_key = _self_signed()
    return configuration


def _self_signed() -> tuple[Any, Any]:
    """A throwaway certificate for 127.0.0.1 (clients do not verify it)."""
    from cryptography import x509  # type: ignore[import-not-found,unused-ignore]
    from cryptography.hazmat.primitives import hashes  # type: ignore[import-not-found,unused-ignore]
    from cryptography.hazmat.primitives.asymmetric import ec  # type: ignore[import-not-found,unused-ignore]
    from cryptography.x509.oid import NameOID  # type: ignore[import-not-found,unused-ignore]

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certificate, key


def _grow_buffers(transport: Any) -> None:
    """aioquic makes its own sockets: give them the UDP baseline's buffers (rudp's
    server asks for as much), or large datagrams overflow the default ones."""
    sock = transport.get_extra_info("socket")
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, option, UDP_SOCKET_BUFFER)


async def _serve_quic(handler: StreamHandler, datagram_size: int | None) -> StreamServer:
    from aioquic.asyncio.server import serve  # type: ignore[import-not-found,unused-ignore]

    tasks: set[asyncio.Task[None]] = set()

    def on_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(handler(reader, writer))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    server = await serve(
        HOST,
        0,
        configuration=_quic_configuration(False, datagram_size),
        stream_handler=on_stream,
    )

    async def close() -> None:
        server.close()

    transport: Any = server._transport
    _grow_buffers(transport)
    return StreamServer(transport.get_extra_info("sockname")[1], close)


async def _open_quic(port: int, datagram_size: int | None) -> StreamConn:
    from aioquic.asyncio.client import connect  # type: ignore[import-not-found,unused-ignore]

    stack = contextlib.AsyncExitStack()
    try:
        protocol = await stack.enter_async_context(
            connect(HOST, port, configuration=_quic_configuration(True, datagram_size))
        )
        _grow_buffers(protocol._transport)
        reader, writer = await protocol.create_stream()
    except BaseException:
        await stack.aclose()
        raise

    async def close() -> None:
        writer.close()
        await stack.aclose()

    return StreamConn(reader, writer, close)
