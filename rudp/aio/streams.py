"""open_connection and start_server: asyncio's streams over rudp.

Built exactly as CPython's ``asyncio/streams.py`` builds them, on the stdlib's
own StreamReader, StreamReaderProtocol and StreamWriter: only the transport differs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from .api import create_connection, create_server
from .server import Server

_DEFAULT_LIMIT = 2**16  # 64 KiB, as asyncio

ClientConnectedCallback = Callable[
    [asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None] | None
]

__all__ = ["open_connection", "start_server"]


async def open_connection(
    host: str, port: int, *, limit: int = _DEFAULT_LIMIT, **kwds: Any
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A (reader, writer) pair over a new rudp connection; ``kwds`` go to
    :func:`rudp.create_connection`."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport, _ = await create_connection(lambda: protocol, host, port, **kwds)
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
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
    :func:`rudp.create_server`."""
    loop = asyncio.get_running_loop()

    def factory() -> asyncio.StreamReaderProtocol:
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        return asyncio.StreamReaderProtocol(reader, client_connected_cb, loop=loop)

    return await create_server(factory, host, port, **kwds)
