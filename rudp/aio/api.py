"""create_connection and create_server: asyncio's TCP calls, on rudp.

A client gets a UDP socket of its own, connected to the server's address; a
server's socket (one per bound address) carries all its connections.  Host names
are resolved as asyncio resolves them, and a client tries each address in turn
until one completes the handshake, raising what asyncio raises when none does.
``ssl=`` puts asyncio's own TLS layer over the connection on any loop (see ``tls``).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Sequence
from ssl import SSLContext
from typing import Any, TypeVar

from ..core.config import Config
from . import tls
from .endpoint import CLIENT_SOCKET_BUFFER, Endpoint, bind_udp_socket, udp_socket
from .server import Server
from .transport import RudpTransport

_ProtocolT = TypeVar("_ProtocolT", bound=asyncio.BaseProtocol)

__all__ = ["create_connection", "create_server"]


async def create_connection(
    protocol_factory: Callable[[], _ProtocolT],
    host: str,
    port: int,
    *,
    ssl: SSLContext | bool | None = None,
    local_addr: tuple[str, int] | None = None,
    family: int = 0,
    server_hostname: str | None = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
    config: Config | None = None,
) -> tuple[asyncio.Transport, _ProtocolT]:
    """Open a connection to ``host:port``; returns once the handshake is complete
    and ``connection_made`` has been called.  Fails with ConnectionRefusedError
    (RST or ICMP port unreachable) or TimeoutError (no answer to ``syn_retries``
    SYNs), as kernel TCP does.

    With ``ssl`` (an SSLContext, or True for ``ssl.create_default_context()``) the
    TLS handshake is part of it too, and fails as asyncio's does (e.g.
    ``ssl.SSLCertVerificationError``; ConnectionAbortedError after
    ``ssl_handshake_timeout`` seconds, 60 by default); ``server_hostname`` is
    checked against the certificate (``host`` by default, ``""`` for no check)."""
    loop = asyncio.get_running_loop()
    config = config or Config()
    server_hostname = tls.check_client_args(
        host, ssl, server_hostname, ssl_handshake_timeout, ssl_shutdown_timeout
    )
    if not ssl:
        return await _connect_any(loop, protocol_factory, host, port, local_addr, family, config)
    app_protocol = protocol_factory()
    handshake: asyncio.Future[None] = loop.create_future()
    tls_protocol = tls.client_protocol(
        loop,
        app_protocol,
        ssl,
        server_hostname,
        handshake,
        ssl_handshake_timeout,
        ssl_shutdown_timeout,
    )
    # The same TLS layer for each address tried: only the one that answers makes it.
    await _connect_any(loop, lambda: tls_protocol, host, port, local_addr, family, config)
    return await tls.finish_client_handshake(tls_protocol, handshake), app_protocol


async def _connect_any(
    loop: asyncio.AbstractEventLoop,
    protocol_factory: Callable[[], _ProtocolT],
    host: str,
    port: int,
    local_addr: tuple[str, int] | None,
    family: int,
    config: Config,
) -> tuple[RudpTransport, _ProtocolT]:
    infos = await _resolve(loop, host, port, family, 0)
    local_infos = None
    if local_addr is not None:
        local_infos = await _resolve(loop, local_addr[0], local_addr[1], family, 0)
    exceptions: list[OSError] = []
    for af, _, _, _, address in infos:
        local = None
        if local_infos is not None:
            local = next((info[4] for info in local_infos if info[0] == af), None)
            if local is None:
                exceptions.append(OSError(f"no local address of family {af!r} to bind"))
                continue
        try:
            return await _connect_to(loop, protocol_factory, af, address, local, config)
        except OSError as exc:
            exceptions.append(exc)
    raise _one_error(exceptions)


async def create_server(
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    host: str | Sequence[str] | None = None,
    port: int | None = None,
    *,
    family: int = socket.AF_UNSPEC,
    backlog: int = 100,
    ssl: SSLContext | None = None,
    reuse_port: bool | None = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
    start_serving: bool = True,
    config: Config | None = None,
) -> Server:
    """Listen on ``host:port`` (every interface when ``host`` is None or "", each
    host of a sequence) with one UDP socket per address.

    With ``ssl`` (an SSLContext) each connection's protocol is told of it
    (``connection_made``) once the TLS handshake is done; a connection whose
    handshake fails or outlasts ``ssl_handshake_timeout`` is reset, unreported,
    as asyncio does."""
    loop = asyncio.get_running_loop()
    config = config or Config()
    tls.check_server_args(ssl, ssl_handshake_timeout, ssl_shutdown_timeout)
    if ssl is not None:
        protocol_factory = tls.server_protocol_factory(
            loop, protocol_factory, ssl, ssl_handshake_timeout, ssl_shutdown_timeout
        )
    if reuse_port and not hasattr(socket, "SO_REUSEPORT"):
        raise ValueError("reuse_port not supported by socket module")
    if isinstance(host, str) or host is None:
        hosts: list[str | None] = [None if host == "" else host]
    else:
        hosts = list(host)
    infos: dict[Any, None] = {}
    for each in hosts:
        for info in await _resolve(loop, each, port, family, socket.AI_PASSIVE):
            infos[info] = None
    server = Server(loop)
    sockets: list[socket.socket] = []
    try:
        for af, _, _, _, address in infos:
            sockets.append(bind_udp_socket(af, address, reuse_port=reuse_port))
        while sockets:
            sock = sockets[0]
            _, endpoint = await loop.create_datagram_endpoint(
                lambda: Endpoint(
                    loop, config, backlog=backlog, server=server, protocol_factory=protocol_factory
                ),
                sock=sock,
            )
            sockets.pop(0)
            server._add_endpoint(endpoint)
    except BaseException:
        for sock in sockets:
            sock.close()
        for endpoint in server._endpoints or ():
            endpoint.close()
        raise
    if start_serving:
        server._start_serving()
        await asyncio.sleep(0)
    return server


async def _connect_to(
    loop: asyncio.AbstractEventLoop,
    protocol_factory: Callable[[], _ProtocolT],
    family: int,
    address: Any,
    local: Any,
    config: Config,
) -> tuple[RudpTransport, _ProtocolT]:
    if local is not None:
        sock = bind_udp_socket(family, local, buffer_size=CLIENT_SOCKET_BUFFER)
    else:
        sock = udp_socket(family, CLIENT_SOCKET_BUFFER)
    try:
        sock.connect(address)  # a UDP connect: no packet, just the default peer
        _, endpoint = await loop.create_datagram_endpoint(lambda: Endpoint(loop, config), sock=sock)
    except BaseException:
        sock.close()
        raise
    try:
        protocol = protocol_factory()
        waiter: asyncio.Future[None] = loop.create_future()
        transport = endpoint.open_connection(protocol, waiter)
        await waiter
    except BaseException:
        endpoint.close()
        raise
    return transport, protocol


async def _resolve(
    loop: asyncio.AbstractEventLoop, host: str | None, port: int | None, family: int, flags: int
) -> list[tuple[Any, ...]]:
    infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_DGRAM, flags=flags)
    if not infos:
        raise OSError("getaddrinfo() returned empty list")
    return list(infos)


def _one_error(exceptions: list[OSError]) -> OSError:
    """As asyncio's create_connection: the error, or one summing them up."""
    if len(exceptions) == 1 or all(str(exc) == str(exceptions[0]) for exc in exceptions):
        return exceptions[0]
    return OSError("Multiple exceptions: {}".format(", ".join(str(exc) for exc in exceptions)))
