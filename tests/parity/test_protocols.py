"""asyncio Protocols and Transports over kernel TCP and over rudp.

Flow control both ways (pause_reading stopping the sender, pause_writing and
resume_writing), eof_received and the half-close of RFC 9293 3.6, close and
abort with data pending, BufferedProtocol, and the keyword arguments of
create_connection and create_server.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from tests.parity.parity_support import (
    CHUNK,
    HOST,
    MAX_BULK,
    MIB,
    STALL,
    Peer,
    Stack,
    first_difference,
    pattern,
    port_of,
    protocol_pair,
    skip_uvloop_tcp,
)

TIMEOUT = 10
BULK_TIMEOUT = 30


async def until_write_buffer_empty(transport: asyncio.Transport) -> None:
    """No protocol call tells when the peer took everything: poll."""
    while transport.get_write_buffer_size():
        await asyncio.sleep(0.005)


async def pump(sender: Peer, stop: asyncio.Event) -> int:
    """Write pattern chunks whenever the transport lets us (between pause_writing
    and resume_writing we wait) until ``stop``; returns how much was written."""
    assert sender.transport is not None
    sent = 0
    while not stop.is_set():
        if sender.writing_paused:
            await sender.wait_for(lambda: not sender.writing_paused or stop.is_set())
            continue
        assert sent < MAX_BULK, f"wrote {MAX_BULK} bytes and was never held back"
        sender.transport.write(pattern(CHUNK, seed=sent // 4))
        sent += CHUNK
        await asyncio.sleep(0)
    return sent


async def until_held_back(sender: Peer, *, stall: float = STALL) -> None:
    """Return once the sender has stayed paused, with no resume_writing, for ``stall`` s."""
    still, resumes = 0, -1
    while still < 6:
        await asyncio.sleep(stall / 6)
        if sender.writing_paused and sender.resumes == resumes:
            still += 1
        else:
            still, resumes = 0, sender.resumes


@pytest.mark.parametrize("paused", ["server", "client"])
async def test_pause_reading_stops_the_sender_until_resume_reading(
    stack: Stack, paused: str
) -> None:
    """The paused end reads nothing, its window closes, the sender's buffer passes
    the high-water mark (pause_writing) and stays there; resume_reading lets every
    byte through, in order, once."""
    async with asyncio.timeout(BULK_TIMEOUT), protocol_pair(stack) as pair:
        sender, receiver = (pair.client, pair.accepted)
        if paused == "client":
            sender, receiver = receiver, sender
        assert sender.transport is not None and receiver.transport is not None
        receiver.transport.pause_reading()
        assert not receiver.transport.is_reading()
        receiver.transport.pause_reading()  # again: no effect
        stop = asyncio.Event()
        pumping = asyncio.create_task(pump(sender, stop))
        await until_held_back(sender)
        low, _ = sender.transport.get_write_buffer_limits()
        assert sender.transport.get_write_buffer_size() > low
        assert receiver.data == b"" and receiver.calls == ["connection_made"]
        stop.set()
        sender.nudge()
        sent = await pumping
        receiver.transport.resume_reading()
        assert receiver.transport.is_reading()
        receiver.transport.resume_reading()  # again: no effect
        await sender.wait_for(lambda: not sender.writing_paused)
        got = await receiver.received(sent)
        want = pattern(sent)
        assert got == want, first_difference(got, want)
        await until_write_buffer_empty(sender.transport)
        assert sender.pauses == sender.resumes


class Producer(Peer):
    """Writes ``total`` bytes of pattern as fast as flow control allows, then EOF."""

    def __init__(self, total: int) -> None:
        super().__init__()
        self.total = total
        self.offset = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._fill()

    def resume_writing(self) -> None:
        super().resume_writing()
        self._fill()

    def _fill(self) -> None:
        assert self.transport is not None
        while not self.writing_paused and self.offset < self.total:
            size = min(CHUNK, self.total - self.offset)
            self.transport.write(pattern(size, seed=self.offset // 4))
            self.offset += size
            if self.offset == self.total:
                self.transport.write_eof()


async def test_pause_writing_and_resume_writing_pace_a_producer(stack: Stack) -> None:
    total = 4 * MIB
    producer = Producer(total)
    async with asyncio.timeout(BULK_TIMEOUT), protocol_pair(stack, producer) as pair:
        await pair.accepted.eof
        got = bytes(pair.accepted.data)
        want = pattern(total)
        assert got == want, first_difference(got, want)
        # eof_received returned None: the server closed, then so did the client.
        assert await pair.accepted.lost is None
        assert await producer.lost is None
        assert producer.calls == ["connection_made", "eof_received", "connection_lost"]
        # Every pause was lifted before the end (the peer took everything).
        assert producer.pauses >= 1
        assert producer.pauses == producer.resumes, " | ".join(producer.log[-6:])


async def test_rfc9293_3_6_eof_received_falsy_closes_both_ends(stack: Stack) -> None:
    async with asyncio.timeout(TIMEOUT), protocol_pair(stack) as pair:
        assert pair.client.transport is not None
        pair.client.transport.write(b"only this")
        pair.client.transport.write_eof()
        assert await pair.accepted.lost is None
        assert await pair.client.lost is None
        assert pair.accepted.data == b"only this"
        assert pair.accepted.calls == [
            "connection_made",
            "data_received",
            "eof_received",
            "connection_lost",
        ]
        assert pair.client.calls == ["connection_made", "eof_received", "connection_lost"]


async def test_rfc9293_3_6_half_close_each_way_with_eof_received_true(stack: Stack) -> None:
    answer = pattern(256 * 1024, seed=1)
    client = Peer(eof_keeps_open=True)
    async with (
        asyncio.timeout(TIMEOUT),
        protocol_pair(stack, client, accepted=lambda: Peer(eof_keeps_open=True)) as pair,
    ):
        ct, st = pair.client.transport, pair.accepted.transport
        assert ct is not None and st is not None
        ct.write(b"question")
        ct.write_eof()
        await pair.accepted.eof
        assert pair.accepted.data == b"question"
        assert not st.is_closing()
        st.write(answer)
        st.write_eof()
        await pair.client.eof
        got = bytes(pair.client.data)
        assert got == answer, first_difference(got, answer)
        ct.close()
        st.close()
        assert await pair.client.lost is None
        assert await pair.accepted.lost is None
        for peer in (pair.client, pair.accepted):
            assert peer.calls == [
                "connection_made",
                "data_received",
                "eof_received",
                "connection_lost",
            ]


async def test_rfc9293_3_6_both_half_closed_transports_stay_open_until_close(
    stack: Stack,
) -> None:
    client = Peer(eof_keeps_open=True)
    async with (
        asyncio.timeout(TIMEOUT),
        protocol_pair(stack, client, accepted=lambda: Peer(eof_keeps_open=True)) as pair,
    ):
        ct, st = pair.client.transport, pair.accepted.transport
        assert ct is not None and st is not None
        ct.write_eof()
        await pair.accepted.eof
        st.write_eof()
        await pair.client.eof
        await asyncio.sleep(0.1)  # room for a connection_lost that must not come
        assert not ct.is_closing() and not st.is_closing()
        assert not pair.client.lost.done() and not pair.accepted.lost.done()
        ct.close()
        st.close()
        assert await pair.client.lost is None
        assert await pair.accepted.lost is None


@pytest.mark.parametrize("closer", ["client", "server"])
async def test_close_sends_everything_written_before_it(stack: Stack, closer: str) -> None:
    data = pattern(2 * MIB, seed=4)
    async with asyncio.timeout(BULK_TIMEOUT), protocol_pair(stack) as pair:
        writer, reader = (pair.client, pair.accepted)
        if closer == "server":
            writer, reader = reader, writer
        assert writer.transport is not None
        writer.transport.write(data)
        writer.transport.close()
        assert writer.transport.is_closing()
        writer.transport.close()  # again: no effect
        assert await reader.lost is None
        assert await writer.lost is None
        got = bytes(reader.data)
        assert got == data, first_difference(got, data)
        assert reader.calls == [
            "connection_made",
            "data_received",
            "eof_received",
            "connection_lost",
        ]
        assert writer.calls == ["connection_made", "connection_lost"]


async def test_abort_ends_the_connection_at_once_and_the_peer_sees_a_prefix(
    stack: Stack,
) -> None:
    """abort() drops what is buffered: connection_lost(None) comes without waiting
    for the peer, which sees the connection end after some prefix of the data."""
    data = pattern(8 * MIB, seed=2)
    async with asyncio.timeout(BULK_TIMEOUT), protocol_pair(stack) as pair:
        transport = pair.client.transport
        assert transport is not None
        transport.write(data)
        assert transport.get_write_buffer_size() > 0
        transport.abort()
        assert transport.is_closing()
        transport.abort()  # again: no effect
        transport.close()  # no effect either
        assert await pair.client.lost is None
        assert pair.client.calls == ["connection_made", "connection_lost"]
        await pair.accepted.lost  # an EOF or a reset, depending on the stack
        got = bytes(pair.accepted.data)
        assert got == data[: len(got)], first_difference(got, data[: len(got)])
        assert len(got) < len(data)


async def test_abort_with_nothing_unread_ends_the_peer(stack: Stack) -> None:
    """abort() drops what is buffered and ends the connection at once.  The one
    documented departure of this suite: on kernel TCP asyncio's abort() closes the
    socket, which sends FIN when nothing is unread (the peer sees EOF); rudp's
    abort() is RFC 9293 3.10.5 ABORT -- an RST -- as the project specifies, so the
    peer sees ConnectionResetError."""
    async with asyncio.timeout(TIMEOUT), protocol_pair(stack) as pair:
        assert pair.client.transport is not None
        pair.client.transport.write(b"before abort")
        await pair.accepted.received(12)
        pair.client.transport.abort()
        assert await pair.client.lost is None
        if stack.name == "tcp":
            assert await pair.accepted.lost is None
            assert pair.accepted.calls[-2:] == ["eof_received", "connection_lost"]
        else:
            assert isinstance(await pair.accepted.lost, ConnectionResetError)
            assert pair.accepted.calls[-2:] == ["data_received", "connection_lost"]


@pytest.mark.parametrize("ending", ["abort", "close"])
async def test_ending_with_unread_data_resets_the_peer(stack: Stack, ending: str) -> None:
    """RFC 2525 2.17 (as Linux and BSD do): closing a connection whose received
    data was never read sends RST, and the peer's connection_lost gets
    ConnectionResetError."""
    async with asyncio.timeout(TIMEOUT), protocol_pair(stack) as pair:
        client, server_transport = pair.client, pair.accepted.transport
        assert server_transport is not None and client.transport is not None
        client.transport.pause_reading()
        server_transport.write(b"never read")
        await until_write_buffer_empty(server_transport)
        await asyncio.sleep(0.05)  # loopback: the data sits in the client's buffer
        if ending == "abort":
            client.transport.abort()
        else:
            client.transport.close()
        assert await client.lost is None
        assert client.data == b""
        assert isinstance(await pair.accepted.lost, ConnectionResetError)


class Collector(asyncio.BufferedProtocol):
    """A BufferedProtocol with a small buffer; closes on EOF."""

    def __init__(self) -> None:
        self.buffer = bytearray(1000)
        self.data = bytearray()
        self.calls: list[str] = []
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.calls.append("connection_made")

    def get_buffer(self, sizehint: int) -> bytearray:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        if self.calls[-1] != "buffer_updated":
            self.calls.append("buffer_updated")
        self.data += self.buffer[:nbytes]

    def eof_received(self) -> None:
        self.calls.append("eof_received")

    def connection_lost(self, exc: Exception | None) -> None:
        self.calls.append("connection_lost")
        self.lost.set_result(exc)


async def test_buffered_protocol_receives_every_byte(stack: Stack) -> None:
    data = pattern(MIB, seed=8)
    collectors: list[Collector] = []

    def factory() -> Collector:
        collectors.append(Collector())
        return collectors[-1]

    async with asyncio.timeout(TIMEOUT):
        server = await stack.create_server(factory, HOST, 0)
        async with server:
            client = Peer()
            transport, _ = await stack.create_connection(lambda: client, HOST, port_of(server))
            transport.write(data)
            transport.write_eof()
            while not collectors:
                await asyncio.sleep(0.001)
            assert await collectors[0].lost is None
            assert await client.lost is None
            got = bytes(collectors[0].data)
            assert got == data, first_difference(got, data)
            assert collectors[0].calls == [
                "connection_made",
                "buffer_updated",
                "eof_received",
                "connection_lost",
            ]


async def test_write_buffer_drains_to_zero_once_the_peer_has_everything(stack: Stack) -> None:
    data = pattern(MIB, seed=6)
    async with asyncio.timeout(TIMEOUT), protocol_pair(stack) as pair:
        transport = pair.client.transport
        assert transport is not None
        transport.write(data)
        assert transport.get_write_buffer_size() >= 0
        assert await pair.accepted.received(len(data)) == data
        await until_write_buffer_empty(transport)
        assert not pair.client.writing_paused
        assert pair.client.pauses == pair.client.resumes


async def test_data_and_eof_held_while_paused_come_in_order_on_resume(stack: Stack) -> None:
    """What arrives while reading is paused, the peer's FIN included, waits; on
    resume_reading it comes as data_received then eof_received, then the close."""
    async with asyncio.timeout(TIMEOUT), protocol_pair(stack) as pair:
        client, server_transport = pair.client, pair.accepted.transport
        assert client.transport is not None and server_transport is not None
        client.transport.pause_reading()
        server_transport.write(b"held back")
        server_transport.close()
        await asyncio.sleep(STALL)
        assert client.calls == ["connection_made"]
        assert not pair.accepted.lost.done() or await pair.accepted.lost is None
        client.transport.resume_reading()
        assert await client.lost is None
        assert client.data == b"held back"
        assert client.calls == [
            "connection_made",
            "data_received",
            "eof_received",
            "connection_lost",
        ]
        assert await pair.accepted.lost is None


# ------------------------------------------------------------ the API's keywords
def _connected_socket(stack: Stack, port: int) -> socket.socket:
    """A socket of the stack's own kind, connected to ``port`` (for sock=)."""
    sock = socket.socket(socket.AF_INET, stack.socket_type)
    sock.connect((HOST, port))  # TCP: the kernel completes the handshake; UDP: no packet
    sock.setblocking(False)
    return sock


def _bound_socket(stack: Stack) -> socket.socket:
    sock = socket.socket(socket.AF_INET, stack.socket_type)
    sock.bind((HOST, 0))
    return sock


@pytest.mark.parametrize(
    "keyword",
    [
        "family",
        "local_addr",
        "proto",
        "flags",
        "sock",
        "happy_eyeballs_delay",
        "interleave",
    ],
)
async def test_create_connection_takes_asyncio_keyword(stack: Stack, keyword: str) -> None:
    if keyword in ("happy_eyeballs_delay", "interleave"):
        skip_uvloop_tcp(stack, f"its create_connection has no {keyword}=")
    async with asyncio.timeout(TIMEOUT):
        server = await stack.start_server(echo_then_close, HOST, 0)
        async with server:
            port = port_of(server)
            values: dict[str, Any] = {
                "family": socket.AF_INET,
                "local_addr": (HOST, 0),
                "proto": 0,
                "flags": 0,
                "happy_eyeballs_delay": 0.25,
                "interleave": 1,
            }
            target: dict[str, Any] = {"host": HOST, "port": port}
            if keyword == "sock":
                target = {"sock": _connected_socket(stack, port)}
            else:
                target[keyword] = values[keyword]
            client = Peer()
            transport, _ = await stack.create_connection(lambda: client, **target)
            transport.write(b"ping")
            transport.write_eof()
            assert await client.lost is None
            assert client.data == b"ping"


@pytest.mark.parametrize(
    "keyword",
    [
        "family",
        "backlog",
        "reuse_port",
        "start_serving",
        "flags",
        "reuse_address",
        "sock",
    ],
)
async def test_create_server_takes_asyncio_keyword(stack: Stack, keyword: str) -> None:
    values: dict[str, Any] = {
        "family": socket.AF_INET,
        "backlog": 10,
        "reuse_port": True,
        "start_serving": False,
        "flags": socket.AI_PASSIVE,
        "reuse_address": True,
    }
    where: dict[str, Any] = {"host": HOST, "port": 0}
    if keyword == "sock":
        where = {"sock": _bound_socket(stack)}
    else:
        where[keyword] = values[keyword]
    async with asyncio.timeout(TIMEOUT):
        server = await stack.start_server(echo_then_close, **where)
        async with server:
            if keyword == "start_serving":
                assert not server.is_serving()
                await server.start_serving()
            assert server.is_serving()
            reader, writer = await stack.open_connection(HOST, port_of(server))
            writer.write(b"ping")
            writer.write_eof()
            assert await reader.read() == b"ping"
            writer.close()
            await writer.wait_closed()


async def echo_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(await reader.read())
    writer.close()
    await writer.wait_closed()
