"""Helpers of the parity suite (the fixtures are in conftest.py).

``Stack`` offers asyncio's four entry points with asyncio's own signatures, served
either by asyncio on kernel TCP or by rudp, so a test body is written once against
the stdlib API.  The rest builds connected pairs and watches flow control, with
payloads whose every byte says where it belongs, so that loss, duplication or
reordering shows up as a mismatch.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import pytest

import rudp

HOST = "127.0.0.1"
MIB = 1024 * 1024
# Writers that wait for flow control to stop them give up after this much: far more
# than kernel TCP buffers on loopback for a peer that does not read (tcp_wmem's
# 4 MiB maximum plus the receiver's window; about 6 MiB here).
MAX_BULK = 64 * MIB
CHUNK = 64 * 1024
# Writer progress that stands still this long while blocked means flow control
# stopped it (on loopback an unblocked drain returns within milliseconds).
STALL = 0.3

StreamCallback = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None] | None]


@dataclass
class Stack:
    """asyncio's TCP entry points, on kernel TCP ("tcp") or on rudp ("rudp")."""

    name: str

    @property
    def socket_type(self) -> int:
        return socket.SOCK_STREAM if self.name == "tcp" else socket.SOCK_DGRAM

    # The four entry points, with asyncio's signatures and defaults; arguments go
    # through untouched, so an argument rudp lacks fails as it would for a user.
    async def open_connection(
        self, host: str | None = None, port: int | None = None, **kwds: Any
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        opener = asyncio.open_connection if self.name == "tcp" else rudp.open_connection
        return await opener(host, port, **kwds)  # type: ignore[arg-type]

    async def start_server(
        self,
        client_connected_cb: StreamCallback,
        host: str | None = None,
        port: int | None = None,
        **kwds: Any,
    ) -> asyncio.AbstractServer:
        starter = asyncio.start_server if self.name == "tcp" else rudp.start_server
        return await starter(client_connected_cb, host, port, **kwds)

    async def create_connection(
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: str | None = None,
        port: int | None = None,
        **kwds: Any,
    ) -> tuple[asyncio.Transport, Any]:
        if self.name == "tcp":
            loop = asyncio.get_running_loop()
            return await loop.create_connection(protocol_factory, host, port, **kwds)  # type: ignore[arg-type]
        return await rudp.create_connection(protocol_factory, host, port, **kwds)  # type: ignore[arg-type]

    async def create_server(
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: str | None = None,
        port: int | None = None,
        **kwds: Any,
    ) -> asyncio.AbstractServer:
        if self.name == "tcp":
            loop = asyncio.get_running_loop()
            return await loop.create_server(protocol_factory, host, port, **kwds)
        return await rudp.create_server(protocol_factory, host, port, **kwds)

    def unused_port(self) -> int:
        """A port nothing of this stack listens on (bound, then released)."""
        with socket.socket(socket.AF_INET, self.socket_type) as sock:
            sock.bind((HOST, 0))
            return cast(int, sock.getsockname()[1])


def port_of(server: asyncio.AbstractServer) -> int:
    return cast(int, server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]


def on_uvloop() -> bool:
    return "uvloop" in type(asyncio.get_running_loop()).__module__


def pattern(size: int, seed: int = 0) -> bytes:
    """``size`` bytes in which every 4-byte word holds its own index (plus ``seed``)."""
    words = array.array("I", range(seed, seed + (size + 3) // 4))
    return words.tobytes()[:size]


def first_difference(got: bytes, want: bytes) -> str:
    """A short account of where two long byte strings part (assert messages)."""
    if got == want:
        return "equal"
    at = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), None)
    if at is None:
        at = min(len(got), len(want))
    return f"got {len(got)} bytes, want {len(want)}; first difference at offset {at}"


@dataclass
class StreamPair:
    """Both ends of one connection, as (reader, writer) pairs, and its server."""

    server: asyncio.AbstractServer
    client_reader: asyncio.StreamReader
    client_writer: asyncio.StreamWriter
    server_reader: asyncio.StreamReader
    server_writer: asyncio.StreamWriter


@contextlib.asynccontextmanager
async def stream_pair(
    stack: Stack,
    *,
    client_limit: int | None = None,
    server_limit: int | None = None,
) -> AsyncIterator[StreamPair]:
    """A server with exactly one connected client; every end is closed on exit."""
    accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    server_kwds = {} if server_limit is None else {"limit": server_limit}
    client_kwds = {} if client_limit is None else {"limit": client_limit}
    server = await stack.start_server(
        lambda r, w: accepted.put_nowait((r, w)), HOST, 0, **server_kwds
    )
    writers: list[asyncio.StreamWriter] = []
    try:
        reader, writer = await stack.open_connection(HOST, port_of(server), **client_kwds)
        writers.append(writer)
        server_reader, server_writer = await accepted.get()
        writers.append(server_writer)
        yield StreamPair(server, reader, writer, server_reader, server_writer)
    finally:
        for each in writers:
            each.close()
        for each in writers:
            with contextlib.suppress(ConnectionError):
                await each.wait_closed()
        server.close()
        await server.wait_closed()


class Peer(asyncio.Protocol):
    """A protocol that records its calls and lets a test wait for them."""

    def __init__(self, *, eof_keeps_open: bool | None = None) -> None:
        loop = asyncio.get_running_loop()
        self.eof_keeps_open = eof_keeps_open
        self.calls: list[str] = []  # the Protocol calls but the flow-control ones
        self.log: list[str] = []  # every call, with the write buffer size at the time
        self.data = bytearray()
        self.transport: asyncio.Transport | None = None
        self.made: asyncio.Future[None] = loop.create_future()
        self.eof: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[Exception | None] = loop.create_future()
        self.writing_paused = False
        self.pauses = 0
        self.resumes = 0
        self._changed = asyncio.Event()

    # ------------------------------------------------------------- protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.calls.append("connection_made")
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are no subclasses
        self._log("connection_made")
        self.made.set_result(None)

    def data_received(self, data: bytes) -> None:
        assert self.calls[-1] in ("connection_made", "data_received"), self.calls
        if self.calls[-1] != "data_received":
            self.calls.append("data_received")
        self.data += data
        self._changed.set()

    def eof_received(self) -> bool | None:
        self.calls.append("eof_received")
        self._log("eof_received")
        self.eof.set_result(None)
        return self.eof_keeps_open

    def connection_lost(self, exc: Exception | None) -> None:
        self.calls.append("connection_lost")
        self._log(f"connection_lost({exc!r})")
        self.lost.set_result(exc)
        self._changed.set()

    def pause_writing(self) -> None:
        assert not self.writing_paused, "pause_writing twice without resume_writing"
        self.writing_paused = True
        self.pauses += 1
        self._log("pause_writing")
        self._changed.set()

    def resume_writing(self) -> None:
        assert self.writing_paused, "resume_writing without pause_writing"
        self.writing_paused = False
        self.resumes += 1
        self._log("resume_writing")
        self._changed.set()

    def _log(self, call: str) -> None:
        assert self.transport is not None
        try:
            buffered = str(self.transport.get_write_buffer_size())
        except RuntimeError:  # uvloop, once the handle is closed
            buffered = "closed"
        self.log.append(f"{call} buffered={buffered}")

    # --------------------------------------------------------------- waits
    def nudge(self) -> None:
        """Make ``wait_for`` check its condition again (it changed outside the protocol)."""
        self._changed.set()

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        """Until ``condition()`` holds, re-checked after every protocol call."""
        while not condition():
            self._changed.clear()
            await self._changed.wait()

    async def received(self, size: int) -> bytes:
        await self.wait_for(lambda: len(self.data) >= size or self.lost.done())
        return bytes(self.data)


@dataclass
class ProtocolPair:
    server: asyncio.AbstractServer
    client: Peer
    accepted: Peer


@contextlib.asynccontextmanager
async def protocol_pair(
    stack: Stack,
    client: Peer | None = None,
    accepted: Callable[[], Peer] = Peer,
) -> AsyncIterator[ProtocolPair]:
    """A create_server with exactly one create_connection client; aborted on exit."""
    made: list[Peer] = []

    def factory() -> Peer:
        made.append(accepted())
        return made[-1]

    server = await stack.create_server(factory, HOST, 0)
    client_peer = client or Peer()
    try:
        await stack.create_connection(lambda: client_peer, HOST, port_of(server))
        while not made:
            await asyncio.sleep(0.001)
        await made[0].made
        yield ProtocolPair(server, client_peer, made[0])
    finally:
        for peer in (client_peer, *made):
            if peer.transport is not None and not peer.lost.done():
                peer.transport.abort()
                await peer.lost
        server.close()
        await server.wait_closed()


@dataclass
class WriterProgress:
    """How far a writer got, whether it is blocked in drain(), and a stop request."""

    sent: int = 0
    draining: bool = False
    finished: bool = False
    stop: bool = False


async def write_all_draining(
    writer: asyncio.StreamWriter, data: bytes, progress: WriterProgress
) -> None:
    """Write ``data`` chunk by chunk, awaiting drain() after each; then write_eof()."""
    view = memoryview(data)
    for start in range(0, len(data), CHUNK):
        writer.write(view[start : start + CHUNK])
        progress.draining = True
        await writer.drain()
        progress.draining = False
        progress.sent = min(start + CHUNK, len(data))
    writer.write_eof()
    progress.finished = True


async def write_pattern_until_stopped(
    writer: asyncio.StreamWriter, progress: WriterProgress, *, limit: int = MAX_BULK
) -> None:
    """Write ``pattern(n)`` chunk by chunk, awaiting drain() after each, until
    ``progress.stop`` (then write_eof()): the amount adapts to the buffers of the
    stack under test, whatever their sizes."""
    while not progress.stop:
        assert progress.sent < limit, f"wrote {limit} bytes and was never held back"
        writer.write(pattern(CHUNK, seed=progress.sent // 4))
        progress.draining = True
        await writer.drain()
        progress.draining = False
        progress.sent += CHUNK
    writer.write_eof()
    progress.finished = True


async def until_stalled(progress: WriterProgress, *, stall: float = STALL) -> None:
    """Return once the writer has sat in drain() with no progress for ``stall`` seconds."""
    step = stall / 6
    still = 0
    last = -1
    while still < 6:
        await asyncio.sleep(step)
        assert not progress.finished, "the writer finished: nothing held it back"
        if progress.draining and progress.sent == last:
            still += 1
        else:
            still = 0
            last = progress.sent


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait until it has ended, cancelled.  (Awaiting it under
    ``pytest.raises(CancelledError)`` would also swallow the cancellation of the
    test itself by its timeout, and pass.)"""
    task.cancel()
    await asyncio.wait({task})
    assert task.cancelled(), task


def skip_uvloop_tcp(stack: Stack, why: str) -> None:
    """uvloop's own TCP transport is no reference where it departs from CPython's."""
    if stack.name == "tcp" and on_uvloop():
        pytest.skip(f"uvloop's TCP transport differs from CPython's: {why}")
