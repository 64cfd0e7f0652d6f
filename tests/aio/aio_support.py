"""Helpers of the asyncio tests (the fixtures are in conftest.py): a protocol that
records its calls, and the same server/client calls on kernel TCP (asyncio's own)
and on rudp, so that a test run on both proves rudp mirrors the stdlib."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import pytest

import rudp

HOST = "127.0.0.1"
# Protocol calls of a connection that received data, then EOF, then ended.
FULL_LIFE = ["connection_made", "data_received", "eof_received", "connection_lost"]


class Recorder(asyncio.Protocol):
    """Records the protocol calls, collapsing runs of data_received."""

    def __init__(self, eof_keeps_open: bool | None = None) -> None:
        loop = asyncio.get_running_loop()
        self.eof_keeps_open = eof_keeps_open
        self.calls: list[str] = []
        self.data = bytearray()
        self.transport: asyncio.Transport | None = None
        self.made: asyncio.Future[None] = loop.create_future()
        self.eof: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[Exception | None] = loop.create_future()
        self.paused_writing = 0
        self.resumed_writing = 0
        self._data_waiters: list[tuple[int, asyncio.Future[None]]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.calls.append("connection_made")
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are no subclasses
        self.made.set_result(None)

    def data_received(self, data: bytes) -> None:
        assert self.calls and self.calls[-1] in ("connection_made", "data_received"), self.calls
        if self.calls[-1] != "data_received":
            self.calls.append("data_received")
        self.data += data
        for size, waiter in self._data_waiters:
            if len(self.data) >= size and not waiter.done():
                waiter.set_result(None)

    def eof_received(self) -> bool | None:
        self.calls.append("eof_received")
        self.eof.set_result(None)
        return self.eof_keeps_open

    def connection_lost(self, exc: Exception | None) -> None:
        self.calls.append("connection_lost")
        self.lost.set_result(exc)

    def pause_writing(self) -> None:
        self.paused_writing += 1

    def resume_writing(self) -> None:
        self.resumed_writing += 1

    async def received(self, size: int) -> bytes:
        """Wait until at least ``size`` bytes arrived."""
        if len(self.data) < size:
            waiter = asyncio.get_running_loop().create_future()
            self._data_waiters.append((size, waiter))
            await waiter
        return bytes(self.data)


@dataclass
class Stack:
    """create_server / create_connection / streams of one implementation."""

    name: str

    async def create_server(
        self, factory: Callable[[], asyncio.BaseProtocol], **kwds: Any
    ) -> tuple[asyncio.AbstractServer, int]:
        if self.name == "tcp":
            server: asyncio.AbstractServer = await asyncio.get_running_loop().create_server(
                factory, HOST, 0, **kwds
            )
        else:
            server = await rudp.create_server(factory, HOST, 0, **kwds)
        return server, server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def create_connection(
        self, factory: Callable[[], asyncio.BaseProtocol], port: int
    ) -> tuple[asyncio.Transport, Any]:
        if self.name == "tcp":
            return await asyncio.get_running_loop().create_connection(factory, HOST, port)
        return await rudp.create_connection(factory, HOST, port)

    async def start_server(
        self, callback: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
    ) -> tuple[asyncio.AbstractServer, int]:
        if self.name == "tcp":
            server: asyncio.AbstractServer = await asyncio.start_server(callback, HOST, 0)
        else:
            server = await rudp.start_server(callback, HOST, 0)
        return server, server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def open_connection(self, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.name == "tcp":
            return await asyncio.open_connection(HOST, port)
        return await rudp.open_connection(HOST, port)


def skip_uvloop_tcp(stack: Stack, why: str) -> None:
    """Kernel TCP on uvloop is no reference where uvloop departs from CPython."""
    if stack.name == "tcp" and "uvloop" in type(asyncio.get_running_loop()).__module__:
        pytest.skip(f"uvloop's TCP transport differs from CPython's: {why}")


async def accept_one(
    stack: Stack, *, eof_keeps_open: bool | None = None
) -> tuple[asyncio.AbstractServer, Recorder, Recorder]:
    """A server, a connected client, and the server side's recorder (once made)."""
    accepted: list[Recorder] = []

    def factory() -> Recorder:
        recorder = Recorder(eof_keeps_open)
        accepted.append(recorder)
        return recorder

    server, port = await stack.create_server(factory)
    _, client = await stack.create_connection(lambda: Recorder(eof_keeps_open), port)
    while not accepted:
        await asyncio.sleep(0.001)
    await accepted[0].made
    return server, client, accepted[0]
