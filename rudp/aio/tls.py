"""TLS over rudp on any event loop: asyncio's own TLS layer, put on our transport.

asyncio layers TLS over a stream with ``asyncio.sslproto.SSLProtocol``: an
``ssl.SSLObject`` between two ``ssl.MemoryBIO``, sitting as the protocol of the
stream transport and handing the application an ``_SSLProtocolTransport``.  Both
loops refuse to put it on a transport they did not make (the default loop wants a
``_start_tls_compatible`` transport, uvloop's ``start_tls`` its own), yet the class
is pure Python and asks of the loop only ``call_soon``, ``call_later``, ``time``,
``get_debug`` and ``call_exception_handler``.  So rudp builds it itself, on the
default loop and on uvloop alike, and the application gets exactly what asyncio
gives: the same transport class, handshake before ``connection_made``, close_notify
on ``close()``, no ``write_eof``, the same timeouts and the same ``get_extra_info``
names (``sslcontext``, ``peercert``, ``cipher``, ``compression``, ``ssl_object``,
then those of the RudpTransport underneath: ``peername``, ``sockname``, ...).

The one thing SSLProtocol wants of a transport beyond the public API is the
private ``_force_close(exc)`` of asyncio's socket transports: drop everything and
call ``connection_lost(exc)``.  ``_ForceClosable`` gives it to any transport as
``abort()``, and ``TlsProtocol`` hands the saved error to ``connection_lost``.  So
a connection the TLS layer gives up on (failed handshake or verification, either
timeout, an error in the application's callbacks) ends with an RST, where closing
a kernel socket would send a FIN; the application sees the same errors.

``start_tls`` is ``loop.start_tls`` for any loop and any stream transport;
``streams.StreamWriter.start_tls`` uses it, since both loops' own ``start_tls``
refuse a RudpTransport.
"""

from __future__ import annotations

import asyncio
import ssl
from asyncio import sslproto
from collections.abc import Callable
from typing import Any, cast

__all__ = ["TlsProtocol", "start_tls"]


class TlsProtocol(sslproto.SSLProtocol):
    """asyncio's SSLProtocol over a transport that may lack ``_force_close``."""

    _forced_error: BaseException | None = None

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        app_protocol: asyncio.BaseProtocol,
        sslcontext: ssl.SSLContext | None,
        waiter: asyncio.Future[None] | None,
        *,
        server_side: bool,
        server_hostname: str | None,
        call_connection_made: bool = True,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
    ) -> None:
        # typeshed wants a context, a waiter and int timeouts; asyncio passes None
        # for the first two (a default client context; no one waiting) and floats.
        init: Any = super().__init__
        init(
            loop,
            app_protocol,
            sslcontext,
            waiter,
            server_side,
            server_hostname,
            call_connection_made=call_connection_made,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(_ForceClosable(cast(asyncio.Transport, transport), self))

    def connection_lost(self, exc: BaseException | None) -> None:
        # The abort() standing in for _force_close(error) ends with None.
        super().connection_lost(exc if self._forced_error is None else self._forced_error)


class _ForceClosable(asyncio.Transport):
    """The transport SSLProtocol writes to, with the ``_force_close`` it calls on
    a fatal error or a shutdown timeout."""

    def __init__(self, transport: asyncio.Transport, protocol: TlsProtocol) -> None:
        super().__init__()
        self._transport = transport
        self._protocol = protocol

    def __repr__(self) -> str:
        return f"<TLS over {self._transport!r}>"

    def _force_close(self, exc: BaseException | None) -> None:
        if exc is not None and self._protocol._forced_error is None:
            self._protocol._forced_error = exc
        self._transport.abort()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._transport.write(data)

    def close(self) -> None:
        self._transport.close()

    def abort(self) -> None:
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def __getattr__(self, name: str) -> Any:
        # Any other (private) attribute a later SSLProtocol may read.
        return getattr(self._transport, name)


async def start_tls(
    transport: asyncio.BaseTransport,
    protocol: asyncio.BaseProtocol,
    sslcontext: ssl.SSLContext,
    *,
    server_side: bool = False,
    server_hostname: str | None = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
) -> asyncio.Transport:
    """``loop.start_tls`` for every loop and every stream transport, rudp's included.

    Upgrades the open connection of ``transport`` to TLS and returns the new
    transport ``protocol`` must use from now on, once the handshake is done.
    Fails as ``loop.start_tls`` does (TypeError for a non-SSLContext; the handshake's
    ``ssl.SSLError``; ConnectionAbortedError after ``ssl_handshake_timeout``),
    having closed ``transport``."""
    if not isinstance(sslcontext, ssl.SSLContext):
        raise TypeError(
            f"sslcontext is expected to be an instance of ssl.SSLContext, got {sslcontext!r}"
        )
    loop = asyncio.get_running_loop()
    stream = cast(asyncio.Transport, transport)
    waiter: asyncio.Future[None] | None = loop.create_future()
    tls = TlsProtocol(
        loop,
        protocol,
        sslcontext,
        waiter,
        server_side=server_side,
        server_hostname=server_hostname,
        call_connection_made=False,
        ssl_handshake_timeout=ssl_handshake_timeout,
        ssl_shutdown_timeout=ssl_shutdown_timeout,
    )
    # As asyncio's start_tls: paused first, so that what arrives before the
    # handshake starts waits for the TLS layer instead of reaching the protocol.
    stream.pause_reading()
    stream.set_protocol(tls)
    made = loop.call_soon(tls.connection_made, stream)
    resumed = loop.call_soon(stream.resume_reading)
    app_transport = tls._app_transport  # SSLProtocol forgets it once the connection is lost
    try:
        assert waiter is not None
        await waiter
    except BaseException:
        stream.close()
        made.cancel()
        resumed.cancel()
        waiter = None  # the error it holds would keep the protocol alive (gh-109534)
        raise
    return app_transport


async def finish_client_handshake(
    tls: TlsProtocol, waiter: asyncio.Future[None]
) -> asyncio.Transport:
    """Wait for the handshake that ``tls.connection_made`` started, then return the
    application's transport; on failure or cancellation, close it (which resets
    the connection under it during a handshake)."""
    transport = tls._app_transport  # SSLProtocol forgets it once the connection is lost
    try:
        await waiter
    except BaseException:
        transport.close()
        raise
    return transport


def client_protocol(
    loop: asyncio.AbstractEventLoop,
    app_protocol: asyncio.BaseProtocol,
    ssl_arg: ssl.SSLContext | bool,
    server_hostname: str | None,
    waiter: asyncio.Future[None],
    ssl_handshake_timeout: float | None,
    ssl_shutdown_timeout: float | None,
) -> TlsProtocol:
    """The TLS layer of a client connection; ``ssl=True`` means the default context."""
    context = None if isinstance(ssl_arg, bool) else ssl_arg
    return TlsProtocol(
        loop,
        app_protocol,
        context,
        waiter,
        server_side=False,
        server_hostname=server_hostname,
        ssl_handshake_timeout=ssl_handshake_timeout,
        ssl_shutdown_timeout=ssl_shutdown_timeout,
    )


def server_protocol_factory(
    loop: asyncio.AbstractEventLoop,
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    sslcontext: ssl.SSLContext,
    ssl_handshake_timeout: float | None,
    ssl_shutdown_timeout: float | None,
) -> Callable[[], asyncio.BaseProtocol]:
    """Protocols for a TLS server's connections: the application's, made at accept
    as asyncio does, told of the connection once the handshake is done."""

    def factory() -> asyncio.BaseProtocol:
        # No waiter: a failed handshake is the client's business, as asyncio (out of
        # debug mode) reports it to nobody.
        return TlsProtocol(
            loop,
            protocol_factory(),
            sslcontext,
            None,
            server_side=True,
            server_hostname=None,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
        )

    return factory


def check_client_args(
    host: str | None,
    ssl_arg: ssl.SSLContext | bool | None,
    server_hostname: str | None,
    ssl_handshake_timeout: float | None,
    ssl_shutdown_timeout: float | None,
) -> str | None:
    """asyncio's create_connection checks; returns the server_hostname to use
    (``host`` by default; ``""`` skips the hostname check)."""
    if server_hostname is not None and not ssl_arg:
        raise ValueError("server_hostname is only meaningful with ssl")
    if server_hostname is None and ssl_arg:
        if not host:
            raise ValueError("You must set server_hostname when using ssl without a host")
        server_hostname = host
    if ssl_handshake_timeout is not None and not ssl_arg:
        raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
    if ssl_shutdown_timeout is not None and not ssl_arg:
        raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
    return server_hostname


def check_server_args(
    ssl_arg: object, ssl_handshake_timeout: float | None, ssl_shutdown_timeout: float | None
) -> None:
    """asyncio's create_server checks, and SSLProtocol's own on the timeouts, made
    here rather than at each accept."""
    if isinstance(ssl_arg, bool):
        raise TypeError("ssl argument must be an SSLContext or None")
    if ssl_handshake_timeout is not None and ssl_arg is None:
        raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
    if ssl_shutdown_timeout is not None and ssl_arg is None:
        raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
    for name, timeout in (
        ("ssl_handshake_timeout", ssl_handshake_timeout),
        ("ssl_shutdown_timeout", ssl_shutdown_timeout),
    ):
        if timeout is not None and timeout <= 0:
            raise ValueError(f"{name} should be a positive number, got {timeout}")
