"""The endpoint's single timer, demultiplexing, and name resolution."""

from __future__ import annotations

import asyncio
import socket
from typing import cast

import pytest

import rudp
from rudp.aio import api
from rudp.aio import endpoint as endpoint_module
from rudp.aio.endpoint import Endpoint, LoopTimer
from rudp.aio.transport import RudpTransport
from rudp.core.state import State
from tests.aio.aio_support import HOST, Recorder

TIMEOUT = 10


async def test_one_timer_handle_for_all_connections_of_a_loop() -> None:
    loop = asyncio.get_running_loop()
    scheduled = getattr(loop, "_scheduled", None)
    if scheduled is None:
        pytest.skip("only the default loop exposes its timer heap")
    accepted: list[Recorder] = []

    def factory() -> Recorder:
        accepted.append(Recorder())
        return accepted[-1]

    async with asyncio.timeout(TIMEOUT):
        server = await rudp.create_server(factory, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        clients = [await rudp.create_connection(Recorder, HOST, port) for _ in range(20)]
        for transport, _ in clients:
            transport.write(b"x" * 5000)
        peak = 0
        while sum(len(r.data) for r in accepted) < 20 * 5000:
            live = [
                handle
                for handle in scheduled
                if not handle.cancelled()
                and isinstance(getattr(handle._callback, "__self__", None), (Endpoint, LoopTimer))
            ]
            peak = max(peak, len(live))
            await asyncio.sleep(0)
        # Delayed ACKs and retransmission timers of 20 connections, and of the
        # clients' 20 endpoints: one handle for the loop.
        assert peak == 1
        for transport, _ in clients:
            transport.close()
        for _, protocol in clients:
            assert await protocol.lost is None
        server.close()
        await server.wait_closed()


async def test_connect_tries_each_address_of_a_name() -> None:
    """``localhost`` may resolve to ::1 first; the server listens on 127.0.0.1 only."""
    async with asyncio.timeout(TIMEOUT):
        server = await rudp.create_server(Recorder, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        transport, protocol = await rudp.create_connection(Recorder, "localhost", port)
        assert transport.get_extra_info("peername")[:2] == (HOST, port)
        transport.close()
        assert await protocol.lost is None
        server.close()
        await server.wait_closed()


async def test_server_on_every_interface_gets_one_socket_per_family() -> None:
    async with asyncio.timeout(TIMEOUT):
        server = await rudp.create_server(Recorder, None, 0)
        async with server:
            assert len(server.sockets) >= 1
            port = server.sockets[0].getsockname()[1]
            transport, protocol = await rudp.create_connection(Recorder, HOST, port)
            transport.close()
            assert await protocol.lost is None


async def test_malformed_datagrams_are_ignored() -> None:
    async with asyncio.timeout(TIMEOUT):
        server = await rudp.start_server(lambda reader, writer: writer.close(), HOST, 0)
        port = server.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        junk, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=(HOST, port)
        )
        for size in (0, 1, 19, 20, 60, 1500):
            junk.sendto(b"\xff" * size)
        junk.close()
        reader, writer = await rudp.open_connection(HOST, port)
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()


async def test_client_local_addr_and_family() -> None:
    async with asyncio.timeout(TIMEOUT):
        server = await rudp.create_server(Recorder, HOST, 0, family=socket.AF_INET)
        port = server.sockets[0].getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((HOST, 0))
            local_port = probe.getsockname()[1]
        transport, protocol = await rudp.create_connection(
            Recorder, HOST, port, local_addr=(HOST, local_port), family=socket.AF_INET
        )
        assert transport.get_extra_info("sockname") == (HOST, local_port)
        transport.close()
        assert await protocol.lost is None
        server.close()
        await server.wait_closed()


async def test_an_echo_round_trip_is_one_datagram_each_way() -> None:
    """The endpoint transmits once the application has had its turn: the reply
    carries the ACK of the request, the next request the ACK of the reply."""
    # Timers far enough away that a slow machine sends no ACK or probe of its own.
    config = rudp.Config(delayed_ack=0.5, initial_rto=2.0, min_rto=2.0)
    writers: list[asyncio.StreamWriter] = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    def sent(writer: asyncio.StreamWriter) -> int:
        return int(writer.get_extra_info("rudp_endpoint_stats").datagrams_sent)

    async with asyncio.timeout(TIMEOUT):
        server = await rudp.start_server(echo, HOST, 0, config=config)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await rudp.open_connection(HOST, port, config=config)
        message = bytes(range(64))
        for _ in range(20):  # past the handshake and slow start
            writer.write(message)
            assert await reader.readexactly(64) == message
        before = sent(writer), sent(writers[0])
        for _ in range(50):
            writer.write(message)
            assert await reader.readexactly(64) == message
        assert (sent(writer) - before[0], sent(writers[0]) - before[1]) == (50, 50)
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()


# ------------------------------------------------------ the endpoint's timer
class _TimedConn:
    """What the endpoint's timer asks of an engine: a deadline the test sets, and
    the times it was woken at."""

    state = State.ESTABLISHED
    is_closed = False
    has_events = False

    def __init__(self) -> None:
        self.deadline: float | None = None
        self.woken: list[float] = []

    def next_timer(self) -> float | None:
        return self.deadline

    def handle_timer(self, now: float) -> None:
        self.woken.append(now)
        self.deadline = None

    def datagrams_to_send(self, now: float, limit: int | None = None) -> list[bytes]:
        return []


class _TimedLink:
    """The parts of a RudpTransport the endpoint's timer and flush use."""

    _dropped = False
    _finish_waiters = None
    _app_done = False
    _peername = None
    _held = None
    _writing_paused = False

    def __init__(self) -> None:
        self._conn = _TimedConn()
        self._timer_at: float | None = None
        self._entry_at: float | None = None

    def _drain_events(self) -> None:
        pass


async def _timed_endpoint() -> tuple[Endpoint, _TimedLink]:
    endpoint = Endpoint(asyncio.get_running_loop(), rudp.Config())
    link = _TimedLink()
    endpoint._links[None] = link  # type: ignore[assignment]
    endpoint._connected = True
    return endpoint, link


async def _set_deadline(endpoint: Endpoint, link: _TimedLink, deadline: float | None) -> None:
    link._conn.deadline = deadline
    endpoint.mark_dirty(link)  # type: ignore[arg-type]
    await asyncio.sleep(0)  # the flush reads the deadline


async def _woken(link: _TimedLink) -> float:
    while not link._conn.woken:
        await asyncio.sleep(0.01)
    return link._conn.woken[0]


async def test_a_deadline_moved_later_keeps_its_entry_and_is_met_at_its_time() -> None:
    """The RTO restarted by every ACK: no heap entry and no timer call per move;
    the early wake-up finds the deadline later, re-arms, and the engine is woken
    once, never before its deadline."""
    async with asyncio.timeout(TIMEOUT):
        endpoint, link = await _timed_endpoint()
        start = asyncio.get_running_loop().time()
        await _set_deadline(endpoint, link, start + 0.05)
        for step in range(1, 11):
            last = start + 0.05 + step * 0.01
            await _set_deadline(endpoint, link, last)
        assert [entry[0] for entry in endpoint._heap] == [start + 0.05]
        assert link._timer_at == last
        assert await _woken(link) >= last
        assert len(link._conn.woken) == 1
        endpoint._timers.disarm(endpoint)


async def test_a_deadline_moved_earlier_is_met_at_the_earlier_time() -> None:
    async with asyncio.timeout(TIMEOUT):
        endpoint, link = await _timed_endpoint()
        start = asyncio.get_running_loop().time()
        await _set_deadline(endpoint, link, start + 5.0)
        await _set_deadline(endpoint, link, start + 0.05)
        assert link._entry_at == start + 0.05
        assert start + 0.05 <= await _woken(link) < start + 5.0
        assert len(link._conn.woken) == 1
        endpoint._timers.disarm(endpoint)


async def test_a_deadline_gone_wakes_no_engine() -> None:
    async with asyncio.timeout(TIMEOUT):
        endpoint, link = await _timed_endpoint()
        start = asyncio.get_running_loop().time()
        await _set_deadline(endpoint, link, start + 0.02)
        await _set_deadline(endpoint, link, None)
        while link._entry_at is not None:  # the entry comes due, finds nothing
            await asyncio.sleep(0.01)
        assert link._conn.woken == [] and not endpoint._heap
        # A new deadline after that is met as usual.
        await _set_deadline(endpoint, link, asyncio.get_running_loop().time() + 0.02)
        await _woken(link)
        endpoint._timers.disarm(endpoint)


async def test_a_lingering_client_wakes_only_for_the_linger_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Once its connection waits in TIME-WAIT, a closed client's endpoint is woken
    at the linger's end and not before: the entry of the FIN's retransmission
    timer, acknowledged since, wakes nobody."""
    monkeypatch.setattr(endpoint_module, "TIME_WAIT_LINGER", 0.3)
    async with asyncio.timeout(TIMEOUT):
        server = await rudp.create_server(Recorder, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        transport, protocol = await rudp.create_connection(Recorder, HOST, port)
        endpoint = cast(RudpTransport, transport)._endpoint
        transport.close()
        assert await protocol.lost is None
        while endpoint._linger_until is None and not endpoint.is_closed:
            await asyncio.sleep(0.01)
        if not endpoint.is_closed:  # (a slow machine may be past the linger already)
            assert endpoint._timer_armed and endpoint._timer_at == endpoint._linger_until
            live = [at for at, _, link in endpoint._heap if link._entry_at == at]
            assert all(at >= endpoint._linger_until for at in live)
        await endpoint.wait_closed()
        server.close()
        await server.wait_closed()


async def test_each_loop_has_its_own_loop_timer() -> None:
    loop = asyncio.get_running_loop()
    timer = LoopTimer.of(loop)
    assert LoopTimer.of(loop) is timer
    other = asyncio.new_event_loop()
    try:
        other_timer = LoopTimer.of(other)
        assert other_timer is not timer and other_timer._loop is other
        assert LoopTimer.of(loop) is timer  # found again after the other loop's
    finally:
        other.close()


def test_numeric_addresses_are_parsed_once_per_address(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[str] = []
    inet_pton = socket.inet_pton

    def counting(family: int, host: str) -> bytes:
        parsed.append(host)
        return inet_pton(family, host)

    monkeypatch.setattr(socket, "inet_pton", counting)
    monkeypatch.setattr(api, "_numeric_infos", {})
    expected = (socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP, "", ("127.0.0.1", 5000))
    assert api._numeric_info("127.0.0.1", 5000, 0, 0) == expected
    assert api._numeric_info("127.0.0.1", "5000", 0, 0) == expected
    assert api._numeric_info("127.0.0.1", 5000, 0, 0) == expected
    assert parsed == ["127.0.0.1", "127.0.0.1"]  # one per distinct key
    # A name is remembered as one: getaddrinfo resolves it, each time.
    assert api._numeric_info("localhost", 80, 0, 0) is None
    assert api._numeric_info("localhost", 80, 0, 0) is None
    assert parsed.count("localhost") == 2  # AF_INET, then AF_INET6, once
    # IPv6, with flow info and scope id, keyed by them too.
    assert api._numeric_info("::1", 80, socket.AF_INET6, 0, 1, 2) == (
        socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_UDP, "", ("::1", 80, 1, 2)
    )
    assert api._numeric_info("::1", 80, socket.AF_INET6, 0)[4] == ("::1", 80, 0, 0)  # type: ignore[index]
    # Arguments of other types are answered without the cache.
    assert api._numeric_info("127.0.0.1", 80.0, 0, 0) is not None
    assert api._numeric_info(b"127.0.0.1", 80, 0, 0) is None
    for port in range(api._NUMERIC_INFOS_MAX + 10):
        api._numeric_info("127.0.0.1", port, 0, 0)
    assert len(api._numeric_infos) <= api._NUMERIC_INFOS_MAX
