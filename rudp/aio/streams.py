"""open_connection and start_server: asyncio's streams over rudp.

Built exactly as CPython's ``asyncio/streams.py`` builds them, on the stdlib's
own StreamReader, StreamReaderProtocol and StreamWriter: only the transport
differs, and the writer is a StreamWriter subclass whose ``start_tls`` layers TLS
itself (``tls.start_tls``), since no loop's ``start_tls`` takes our transport.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from .api import create_connection, create_server
from .server import Server
from .tls import start_tls

_DEFAULT_LIMIT = 2**16  # 64 KiB, as asyncio

ClientConnectedCallback = Callable[
    [asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None] | None
]

__all__ = ["StreamWriter", "open_connection", "start_server"]


class StreamWriter(asyncio.StreamWriter):
    """asyncio's StreamWriter, with a ``start_tls`` that works on every loop, and
    ``wait_finished`` for a program about to exit."""

    async def wait_finished(self) -> None:
        """After ``close()`` and ``wait_closed()``: until the FIN exchange is
        complete, which a kernel socket finishes after its process has exited
        but a rudp connection cannot (see ``RudpTransport.wait_finished``)."""
        wait = getattr(self.transport, "wait_finished", None)
        if wait is not None:
            await wait()

    async def start_tls(
        self,
        sslcontext: ssl.SSLContext,
        *,
        server_hostname: str | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
    ) -> None:
        """Upgrade the connection to TLS (STARTTLS): the writer, and its reader,
        carry TLS from now on.  As ``asyncio.StreamWriter.start_tls`` (a server's
        writers take the server side), with ``rudp.start_tls`` for the loop's."""
        protocol: Any = self.transport.get_protocol()
        server_side = protocol._client_connected_cb is not None
        await self.drain()
        new_transport = await start_tls(
            self.transport,
            protocol,
            sslcontext,
            server_side=server_side,
            server_hostname=server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
        )
        self._transport = new_transport
        if hasattr(protocol, "_replace_transport"):  # Python 3.13+
            protocol._replace_transport(new_transport)
        else:
            protocol._replace_writer(self)


async def open_connection(
    host: str | None = None, port: int | None = None, *, limit: int = _DEFAULT_LIMIT, **kwds: Any
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A (reader, writer) pair over a new rudp connection; ``kwds`` go to
    :func:`rudp.create_connection` (``ssl=``, ``sock=``, ``local_addr=``, ...).  The
    writer is a :class:`StreamWriter`, typed as asyncio's like the server's."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport, _ = await create_connection(lambda: protocol, host, port, **kwds)
    writer = StreamWriter(transport, protocol, reader, loop)
    return reader, writer


async def start_server(
    client_connected_cb: ClientConnectedCallback,
    host: str | None = None,
    port: int | None = None,
    *,
    limit: int = _DEFAULT_LIMIT,
    **kwds: Any,
) -> Server:
    """A rudp server calling ``client_connected_cb(reader, writer)`` for each
    client (a coroutine function becomes a task); ``kwds`` go to
    :func:`rudp.create_server` (``ssl=``, ``sock=``, ``reuse_port=``, ...)."""
    loop = asyncio.get_running_loop()

    def connected(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Awaitable[None] | None:
        # StreamReaderProtocol makes the writer itself, an asyncio.StreamWriter; a
        # second writer object would close the transport when collected, so the
        # same object becomes ours (a subclass adding no state).
        writer.__class__ = StreamWriter
        return client_connected_cb(reader, writer)

    def factory() -> asyncio.StreamReaderProtocol:
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        return asyncio.StreamReaderProtocol(reader, connected, loop=loop)

    return await create_server(factory, host, port, **kwds)
